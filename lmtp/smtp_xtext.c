#include "lmtp/smtp_xtext.h"

#include <stdbool.h>
#include <stdint.h>

#include "common/buf.h"
#include "common/utf8.h"

static int hex_value(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    return -1;
}

/* What a decoded value may contain: printable ASCII, space (a quoted local
 * part in ORCPT), and UTF-8 (checked as a whole afterwards). */
static bool decoded_byte_is_ok(unsigned char c)
{
    return c >= 0x20 && c != 0x7f;
}

int smtp_xtext_decode(const char *text, size_t len, struct mg_buf *out)
{
    size_t start = out->len;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)text[i];
        if (c == '+') {
            if (len - i < 3)
                goto bad;
            int hi = hex_value(text[i + 1]);
            int lo = hex_value(text[i + 2]);
            if (hi < 0 || lo < 0)
                goto bad;
            c = (unsigned char)(hi << 4 | lo);
            i += 2;
        } else if (c < 33 || c > 126 || c == '=') {
            /* xchar is 33..126 except '+' and '='. */
            goto bad;
        }
        if (!decoded_byte_is_ok(c))
            goto bad;
        mg_buf_append_byte(out, (char)c);
    }
    if (!mg_utf8_is_valid(out->data == NULL ? "" : out->data + start, out->len - start))
        goto bad;
    return 0;
bad:
    if (out->data != NULL)
        mg_buf_truncate(out, start);
    return -1;
}

void smtp_xtext_encode(const char *s, size_t len, struct mg_buf *out)
{
    static const char hex[] = "0123456789ABCDEF";
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c < 33 || c > 126 || c == '+' || c == '=') {
            char e[3] = { '+', hex[c >> 4], hex[c & 15] };
            mg_buf_append(out, e, 3);
        } else {
            mg_buf_append_byte(out, (char)c);
        }
    }
}

int smtp_xtext_decode_utf8_addr(const char *text, size_t len, struct mg_buf *out)
{
    size_t start = out->len;
    size_t i = 0;
    while (i < len) {
        unsigned char c = (unsigned char)text[i];
        if (c == '\\') {
            /* "\x{" 1*6HEXDIG "}" */
            if (len - i < 5 || text[i + 1] != 'x' || text[i + 2] != '{')
                goto bad;
            size_t j = i + 3;
            uint32_t cp = 0;
            while (j < len && j - (i + 3) < 6 && hex_value(text[j]) >= 0)
                cp = cp << 4 | (uint32_t)hex_value(text[j++]);
            if (j == i + 3 || j >= len || text[j] != '}')
                goto bad;
            char enc[4];
            size_t n = mg_utf8_encode(cp, enc);
            if (n == 0 || cp < 0x20 || cp == 0x7f)
                goto bad;
            mg_buf_append(out, enc, n);
            i = j + 1;
        } else if (c >= 0x80) {
            uint32_t cp;
            size_t n = mg_utf8_decode(text + i, len - i, &cp);
            if (n == 0)
                goto bad;
            mg_buf_append(out, text + i, n);
            i += n;
        } else if (c < 33 || c > 126 || c == '+' || c == '=') {
            goto bad;
        } else {
            mg_buf_append_byte(out, (char)c);
            i++;
        }
    }
    return 0;
bad:
    if (out->data != NULL)
        mg_buf_truncate(out, start);
    return -1;
}

void smtp_xtext_encode_utf8_addr(const char *s, size_t len, struct mg_buf *out)
{
    size_t i = 0;
    while (i < len) {
        unsigned char c = (unsigned char)s[i];
        uint32_t cp = c;
        size_t n = 1;
        if (c >= 0x80) {
            n = mg_utf8_decode(s + i, len - i, &cp);
            if (n == 0) {
                cp = 0xfffd;
                n = 1;
            }
        }
        if (cp < 33 || cp > 126 || cp == '+' || cp == '=' || cp == '\\')
            mg_buf_printf(out, "\\x{%X}", (unsigned)cp);
        else
            mg_buf_append_byte(out, (char)cp);
        i += n;
    }
}
