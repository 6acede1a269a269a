#include "mda/imap/mutf7.h"

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

static void flush_shift(struct mg_buf *out, const uint16_t *units, size_t n)
{
    mg_buf_append_byte(out, '&');
    uint32_t bits = 0;
    int nbits = 0;
    for (size_t i = 0; i < n; i++) {
        bits = (bits << 16) | units[i];
        nbits += 16;
        while (nbits >= 6) {
            nbits -= 6;
            mg_buf_append_byte(out, mb64[(bits >> nbits) & 63]);
        }
    }
    if (nbits > 0)
        mg_buf_append_byte(out, mb64[(bits << (6 - nbits)) & 63]);
    mg_buf_append_byte(out, '-');
}

int mutf7_encode(const char *utf8, size_t len, struct mg_buf *out)
{
    uint16_t units[256];
    size_t n = 0;
    size_t i = 0;
    while (i < len) {
        unsigned char c = (unsigned char)utf8[i];
        if (c >= 0x20 && c <= 0x7e) {
            if (n > 0) {
                flush_shift(out, units, n);
                n = 0;
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
        if (l == 0)
            return -1;
        i += l;
        if (n + 2 > sizeof(units) / sizeof(units[0])) {
            flush_shift(out, units, n);
            n = 0;
        }
        if (cp >= 0x10000) {
            cp -= 0x10000;
            units[n++] = (uint16_t)(0xd800 | (cp >> 10));
            units[n++] = (uint16_t)(0xdc00 | (cp & 0x3ff));
        } else {
            units[n++] = (uint16_t)cp;
        }
    }
    if (n > 0)
        flush_shift(out, units, n);
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
                /* Printable ASCII must not be shifted. */
                if (u >= 0x20 && u <= 0x7e)
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
