#include "common/base64.h"

#include <stdint.h>

#include "common/buf.h"

static const char b64_alphabet[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

void mg_base64_encode(const void *data, size_t len, struct mg_buf *out)
{
    const unsigned char *p = data;
    mg_buf_reserve(out, (len + 2) / 3 * 4);
    size_t i = 0;
    for (; i + 3 <= len; i += 3) {
        uint32_t v = (uint32_t)p[i] << 16 | (uint32_t)p[i + 1] << 8 | p[i + 2];
        char q[4] = { b64_alphabet[v >> 18], b64_alphabet[(v >> 12) & 63],
                      b64_alphabet[(v >> 6) & 63], b64_alphabet[v & 63] };
        mg_buf_append(out, q, 4);
    }
    if (i < len) {
        uint32_t v = (uint32_t)p[i] << 16;
        if (i + 1 < len)
            v |= (uint32_t)p[i + 1] << 8;
        char q[4] = { b64_alphabet[v >> 18], b64_alphabet[(v >> 12) & 63],
                      i + 1 < len ? b64_alphabet[(v >> 6) & 63] : '=', '=' };
        mg_buf_append(out, q, 4);
    }
}

static int b64_value(char c)
{
    if (c >= 'A' && c <= 'Z')
        return c - 'A';
    if (c >= 'a' && c <= 'z')
        return c - 'a' + 26;
    if (c >= '0' && c <= '9')
        return c - '0' + 52;
    if (c == '+')
        return 62;
    if (c == '/')
        return 63;
    return -1;
}

int mg_base64_decode(const char *text, size_t len, struct mg_buf *out)
{
    if (len % 4 != 0)
        return -1;
    size_t start = out->len;
    for (size_t i = 0; i < len; i += 4) {
        int v[4];
        int pad = 0;
        for (int j = 0; j < 4; j++) {
            char c = text[i + j];
            if (c == '=' && i + 4 == len && j >= 2) {
                v[j] = 0;
                pad++;
                continue;
            }
            if (pad > 0)
                goto bad; /* data after padding */
            v[j] = b64_value(c);
            if (v[j] < 0)
                goto bad;
        }
        uint32_t w = (uint32_t)v[0] << 18 | (uint32_t)v[1] << 12 | (uint32_t)v[2] << 6 | (uint32_t)v[3];
        unsigned char b[3] = { (unsigned char)(w >> 16), (unsigned char)(w >> 8), (unsigned char)w };
        /* Canonical form: the bits that padding drops must be zero. */
        if ((pad == 1 && (w & 0xff) != 0) || (pad == 2 && (w & 0xffff) != 0))
            goto bad;
        mg_buf_append(out, b, (size_t)(3 - pad));
    }
    return 0;
bad:
    mg_buf_truncate(out, start);
    return -1;
}
