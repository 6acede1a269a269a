#include "mda/mime/mime_transfer.h"

#include <string.h>

#include "common/ascii.h"

enum mime_cte mime_transfer_cte_from_name(const char *name, size_t len)
{
    static const struct {
        const char *name;
        enum mime_cte cte;
    } names[] = {
        { "7bit", MIME_CTE_7BIT },
        { "8bit", MIME_CTE_8BIT },
        { "binary", MIME_CTE_BINARY },
        { "quoted-printable", MIME_CTE_QUOTED_PRINTABLE },
        { "base64", MIME_CTE_BASE64 },
    };
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
        if (mg_ascii_eq(name, len, names[i].name))
            return names[i].cte;
    }
    return MIME_CTE_UNKNOWN;
}

/* 0-63 for the alphabet, 64 for '=', 255 for everything else. */
static const unsigned char b64_value[256] = {
    ['A'] = 0,  ['B'] = 1,  ['C'] = 2,  ['D'] = 3,  ['E'] = 4,  ['F'] = 5,
    ['G'] = 6,  ['H'] = 7,  ['I'] = 8,  ['J'] = 9,  ['K'] = 10, ['L'] = 11,
    ['M'] = 12, ['N'] = 13, ['O'] = 14, ['P'] = 15, ['Q'] = 16, ['R'] = 17,
    ['S'] = 18, ['T'] = 19, ['U'] = 20, ['V'] = 21, ['W'] = 22, ['X'] = 23,
    ['Y'] = 24, ['Z'] = 25, ['a'] = 26, ['b'] = 27, ['c'] = 28, ['d'] = 29,
    ['e'] = 30, ['f'] = 31, ['g'] = 32, ['h'] = 33, ['i'] = 34, ['j'] = 35,
    ['k'] = 36, ['l'] = 37, ['m'] = 38, ['n'] = 39, ['o'] = 40, ['p'] = 41,
    ['q'] = 42, ['r'] = 43, ['s'] = 44, ['t'] = 45, ['u'] = 46, ['v'] = 47,
    ['w'] = 48, ['x'] = 49, ['y'] = 50, ['z'] = 51, ['0'] = 52, ['1'] = 53,
    ['2'] = 54, ['3'] = 55, ['4'] = 56, ['5'] = 57, ['6'] = 58, ['7'] = 59,
    ['8'] = 60, ['9'] = 61, ['+'] = 62, ['/'] = 63, ['='] = 64,
};

static bool b64_is_alpha(unsigned char c)
{
    /* The table is zero-initialised, so 'A' (0) needs its own test. */
    return b64_value[c] != 0 || c == 'A';
}

void mime_transfer_base64_decode(const char *in, size_t len, struct mg_buf *out)
{
    unsigned int acc = 0, nbits = 0;

    mg_buf_reserve(out, len / 4 * 3 + 3);
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)in[i];
        if (!b64_is_alpha(c))
            continue;
        unsigned int v = b64_value[c];
        if (v == 64) {
            /* Padding ends a group. Some encoders pad every line, so
             * decoding goes on with a fresh group. */
            acc = 0;
            nbits = 0;
            continue;
        }
        acc = (acc << 6) | v;
        nbits += 6;
        if (nbits >= 8) {
            nbits -= 8;
            out->data[out->len++] = (char)((acc >> nbits) & 0xff);
        }
    }
    out->data[out->len] = '\0';
}

static int hex_value(unsigned char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    c = (unsigned char)mg_ascii_tolower((char)c);
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    return -1;
}

void mime_transfer_qp_decode(const char *in, size_t len, struct mg_buf *out)
{
    size_t i = 0;

    mg_buf_reserve(out, len);
    while (i < len) {
        /* One line at a time: trailing white space is transport padding
         * (RFC 2045 rule 3) and is removed. */
        const char *nl = memchr(in + i, '\n', len - i);
        size_t line_end = nl == NULL ? len : (size_t)(nl - in);
        size_t content_end = line_end;
        if (nl != NULL && content_end > i && in[content_end - 1] == '\r')
            content_end--;
        while (content_end > i &&
               (in[content_end - 1] == ' ' || in[content_end - 1] == '\t'))
            content_end--;

        bool soft_break = false;
        size_t j = i;
        while (j < content_end) {
            unsigned char c = (unsigned char)in[j];
            if (c != '=') {
                out->data[out->len++] = (char)c;
                j++;
                continue;
            }
            if (j + 1 == content_end) {
                soft_break = true; /* "=" at the end of the line */
                j++;
                continue;
            }
            int hi = -1, lo = -1;
            if (j + 2 < content_end) {
                hi = hex_value((unsigned char)in[j + 1]);
                lo = hex_value((unsigned char)in[j + 2]);
            }
            if (hi >= 0 && lo >= 0) {
                out->data[out->len++] = (char)(hi << 4 | lo);
                j += 3;
            } else {
                out->data[out->len++] = '='; /* invalid escape: keep it */
                j++;
            }
        }
        if (nl != NULL && !soft_break) {
            if (line_end > i && in[line_end - 1] == '\r') {
                out->data[out->len++] = '\r';
            }
            out->data[out->len++] = '\n';
        }
        i = nl == NULL ? len : line_end + 1;
    }
    out->data[out->len] = '\0';
}

void mime_transfer_q_decode(const char *in, size_t len, struct mg_buf *out)
{
    mg_buf_reserve(out, len);
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)in[i];
        if (c == '_') {
            out->data[out->len++] = ' ';
        } else if (c == '=' && i + 2 < len && hex_value((unsigned char)in[i + 1]) >= 0 &&
                   hex_value((unsigned char)in[i + 2]) >= 0) {
            out->data[out->len++] =
                (char)(hex_value((unsigned char)in[i + 1]) << 4 |
                       hex_value((unsigned char)in[i + 2]));
            i += 2;
        } else {
            out->data[out->len++] = (char)c;
        }
    }
    out->data[out->len] = '\0';
}

void mime_transfer_decode(enum mime_cte cte, const char *in, size_t len,
                          struct mg_buf *out)
{
    switch (cte) {
    case MIME_CTE_BASE64:
        mime_transfer_base64_decode(in, len, out);
        break;
    case MIME_CTE_QUOTED_PRINTABLE:
        mime_transfer_qp_decode(in, len, out);
        break;
    default:
        mg_buf_append(out, in, len);
        break;
    }
}
