#include "common/buf.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/alloc.h"

void mg_buf_free(struct mg_buf *buf)
{
    free(buf->data);
    buf->data = NULL;
    buf->len = 0;
    buf->cap = 0;
}

void mg_buf_reserve(struct mg_buf *buf, size_t extra)
{
    /* +1 keeps room for the terminating NUL. */
    if (extra > SIZE_MAX - buf->len - 1)
        abort();
    size_t need = buf->len + extra + 1;
    if (need <= buf->cap)
        return;
    size_t cap = buf->cap ? buf->cap : 64;
    while (cap < need)
        cap = cap > SIZE_MAX / 2 ? need : cap * 2;
    buf->data = mg_realloc(buf->data, cap);
    buf->cap = cap;
    buf->data[buf->len] = '\0';
}

void mg_buf_append(struct mg_buf *buf, const void *data, size_t len)
{
    mg_buf_reserve(buf, len);
    if (len > 0)
        memcpy(buf->data + buf->len, data, len);
    buf->len += len;
    buf->data[buf->len] = '\0';
}

void mg_buf_append_str(struct mg_buf *buf, const char *str)
{
    mg_buf_append(buf, str, strlen(str));
}

void mg_buf_append_byte(struct mg_buf *buf, char c)
{
    mg_buf_append(buf, &c, 1);
}

void mg_buf_vprintf(struct mg_buf *buf, const char *fmt, va_list ap)
{
    va_list ap2;
    va_copy(ap2, ap);
    char small[256];
    int n = vsnprintf(small, sizeof(small), fmt, ap2);
    va_end(ap2);
    if (n < 0)
        return;
    if ((size_t)n < sizeof(small)) {
        mg_buf_append(buf, small, (size_t)n);
        return;
    }
    mg_buf_reserve(buf, (size_t)n);
    vsnprintf(buf->data + buf->len, (size_t)n + 1, fmt, ap);
    buf->len += (size_t)n;
}

void mg_buf_printf(struct mg_buf *buf, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    mg_buf_vprintf(buf, fmt, ap);
    va_end(ap);
}

void mg_buf_consume(struct mg_buf *buf, size_t n)
{
    if (n >= buf->len) {
        mg_buf_reset(buf);
        return;
    }
    memmove(buf->data, buf->data + n, buf->len - n);
    buf->len -= n;
    buf->data[buf->len] = '\0';
}

void mg_buf_truncate(struct mg_buf *buf, size_t n)
{
    if (n < buf->len) {
        buf->len = n;
        buf->data[n] = '\0';
    }
}

void mg_buf_reset(struct mg_buf *buf)
{
    buf->len = 0;
    if (buf->data != NULL)
        buf->data[0] = '\0';
}

const char *mg_buf_cstr(struct mg_buf *buf)
{
    return buf->data != NULL ? buf->data : "";
}

char *mg_buf_steal(struct mg_buf *buf, size_t *len_r)
{
    mg_buf_reserve(buf, 0);
    buf->data[buf->len] = '\0';
    char *p = buf->data;
    if (len_r != NULL)
        *len_r = buf->len;
    buf->data = NULL;
    buf->len = 0;
    buf->cap = 0;
    return p;
}
