#include "mda/imap/mutf7.h"

#include <stdbool.h>
#include <stdint.h>

#include "common/buf.h"
#include "common/utf8.h"

/* RFC 2152 base64 with ',' instead of '/'. */
static const char mb64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+,";

static int mb64_value(char c)
{
    if (c >= 'A' && c <= 'Z')
        return c - 'A';
    if (c >= 'a' && c <= 'z')
        return c - 'a' + 26;
    if (c >= '0' && c <= '9')
        return c - '0' + 52;
    if (c == '+')
        return 62;
    if (c == ',')
        return 63;
    return -1;
}

/* Appends the 16-bit unit u to a base64 shift in progress. */
static void shift_unit(struct mg_buf *out, uint32_t *bits, int *nbits, uint32_t u)
{
    *bits = (*bits << 16) | u;
    *nbits += 16;
    while (*nbits >= 6) {
        *nbits -= 6;
        mg_buf_append_byte(out, mb64[(*bits >> *nbits) & 63]);
    }
    *bits &= (1u << *nbits) - 1;
}

/* Ends a shift: the last bits zero-padded, then '-'. */
static void shift_end(struct mg_buf *out, uint32_t bits, int nbits)
{
    if (nbits > 0)
        mg_buf_append_byte(out, mb64[(bits << (6 - nbits)) & 63]);
    mg_buf_append_byte(out, '-');
}

int mutf7_encode(const char *utf8, size_t len, struct mg_buf *out)
{
    /* One shift for each run of non-printable characters, however long:
     * the decoder refuses adjacent shifts ("&AGE-&AGE-"). */
    size_t start = out->len;
    bool in_shift = false;
    uint32_t bits = 0;
    int nbits = 0;
    size_t i = 0;
    while (i < len) {
        unsigned char c = (unsigned char)utf8[i];
        if (c >= 0x20 && c <= 0x7e) {
            if (in_shift) {
                shift_end(out, bits, nbits);
                in_shift = false;
            }
            if (c == '&')
                mg_buf_append_str(out, "&-");
            else
                mg_buf_append_byte(out, (char)c);
            i++;
            continue;
        }
        uint32_t cp;
        size_t l = mg_utf8_decode(utf8 + i, len - i, &cp);
        if (l == 0 || cp == 0) {
            mg_buf_truncate(out, start);
            return -1;
        }
        i += l;
        if (!in_shift) {
            mg_buf_append_byte(out, '&');
            in_shift = true;
            bits = 0;
            nbits = 0;
        }
        if (cp >= 0x10000) {
            cp -= 0x10000;
            shift_unit(out, &bits, &nbits, 0xd800 | (cp >> 10));
            shift_unit(out, &bits, &nbits, 0xdc00 | (cp & 0x3ff));
        } else {
            shift_unit(out, &bits, &nbits, cp);
        }
    }
    if (in_shift)
        shift_end(out, bits, nbits);
    return 0;
}

int mutf7_decode(const char *s, size_t len, struct mg_buf *out)
{
    size_t start = out->len;
    size_t i = 0;
    while (i < len) {
        unsigned char c = (unsigned char)s[i];
        if (c < 0x20 || c > 0x7e)
            goto bad;
        if (c != '&') {
            mg_buf_append_byte(out, (char)c);
            i++;
            continue;
        }
        i++;
        if (i < len && s[i] == '-') {
            mg_buf_append_byte(out, '&');
            i++;
            continue;
        }
        uint32_t bits = 0;
        int nbits = 0;
        uint32_t high = 0; /* pending high surrogate */
        size_t units = 0;
        while (i < len && s[i] != '-') {
            int v = mb64_value(s[i]);
            if (v < 0)
                goto bad;
            bits = (bits << 6) | (uint32_t)v;
            nbits += 6;
            i++;
            if (nbits < 16)
                continue;
            nbits -= 16;
            uint32_t u = (bits >> nbits) & 0xffff;
            units++;
            if (high != 0) {
                if (u < 0xdc00 || u > 0xdfff)
                    goto bad;
                uint32_t cp = 0x10000 + ((high - 0xd800) << 10) + (u - 0xdc00);
                char enc[4];
                mg_buf_append(out, enc, mg_utf8_encode(cp, enc));
                high = 0;
            } else if (u >= 0xd800 && u <= 0xdbff) {
                high = u;
            } else if (u >= 0xdc00 && u <= 0xdfff) {
                goto bad;
            } else {
                /* Printable ASCII must not be shifted; NUL is no
                 * character of a name. */
                if ((u >= 0x20 && u <= 0x7e) || u == 0)
                    goto bad;
                char enc[4];
                size_t l = mg_utf8_encode(u, enc);
                if (l == 0)
                    goto bad;
                mg_buf_append(out, enc, l);
            }
        }
        /* Unterminated, empty, surrogate left over, or leftover bits that
         * are not zero padding. */
        if (i >= len || units == 0 || high != 0 || nbits >= 6 ||
            (bits & ((1u << nbits) - 1)) != 0)
            goto bad;
        i++; /* '-' */
        /* "&AGE-&AGE-" must have been one shift. */
        if (i < len && s[i] == '&' && !(i + 1 < len && s[i + 1] == '-'))
            goto bad;
    }
    return 0;
bad:
    mg_buf_truncate(out, start);
    return -1;
}
