#include "common/auth_proto.h"

#include <stdbool.h>
#include <string.h>

#include "common/buf.h"

static const char hex[] = "0123456789ABCDEF";

void mg_auth_proto_field(struct mg_buf *out, const char *value, size_t len)
{
    if (out->len > 0)
        mg_buf_append_byte(out, '\t');
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)value[i];
        if (c < 0x20 || c == 0x7f || c == '%') {
            char e[3] = { '%', hex[c >> 4], hex[c & 15] };
            mg_buf_append(out, e, 3);
        } else {
            mg_buf_append_byte(out, (char)c);
        }
    }
}

void mg_auth_proto_cfield(struct mg_buf *out, const char *value)
{
    mg_auth_proto_field(out, value, strlen(value));
}

static int hexval(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    return -1;
}

int mg_auth_proto_split(char *line, size_t len, char **fields_r, size_t max_fields)
{
    size_t n = 0;
    size_t i = 0;
    while (i <= len) {
        if (n >= max_fields)
            return -1;
        char *out = line + i;
        fields_r[n++] = out;
        size_t o = 0;
        while (i < len && line[i] != '\t') {
            if (line[i] == '%') {
                int hi = i + 1 < len ? hexval(line[i + 1]) : -1;
                int lo = i + 2 < len ? hexval(line[i + 2]) : -1;
                if (hi < 0 || lo < 0)
                    return -1;
                out[o++] = (char)(hi * 16 + lo);
                i += 3;
            } else {
                out[o++] = line[i++];
            }
        }
        /* Decoding only shrinks, so writing in place is safe; the
         * terminator lands on the TAB or the end. */
        bool last = i >= len;
        out[o] = '\0';
        i++;
        if (last)
            break;
    }
    return (int)n;
}
