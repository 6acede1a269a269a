/* Growable byte buffers.
 *
 * A buffer owns its storage; `data` is valid for `len` bytes and is always
 * followed by a NUL byte (not counted in len) once anything was appended, so
 * text can be handed to C string functions without a copy. */
#ifndef MG_COMMON_BUF_H
#define MG_COMMON_BUF_H

#include <stdarg.h>
#include <stddef.h>

struct mg_buf {
    char *data;
    size_t len;
    size_t cap;
};

#define MG_BUF_INIT { NULL, 0, 0 }

/* Releases the storage; the buffer is empty and reusable afterwards. */
void mg_buf_free(struct mg_buf *buf);
/* Makes room for `extra` more bytes without changing len. */
void mg_buf_reserve(struct mg_buf *buf, size_t extra);
void mg_buf_append(struct mg_buf *buf, const void *data, size_t len);
void mg_buf_append_str(struct mg_buf *buf, const char *str);
void mg_buf_append_byte(struct mg_buf *buf, char c);
void mg_buf_printf(struct mg_buf *buf, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
void mg_buf_vprintf(struct mg_buf *buf, const char *fmt, va_list ap)
    __attribute__((format(printf, 2, 0)));
/* Removes the first n bytes (n <= len). */
void mg_buf_consume(struct mg_buf *buf, size_t n);
/* Sets len to n (n <= len). */
void mg_buf_truncate(struct mg_buf *buf, size_t n);
/* Empties the buffer but keeps its storage. */
void mg_buf_reset(struct mg_buf *buf);
/* The contents as a C string ("" for an empty buffer, never NULL). */
const char *mg_buf_cstr(struct mg_buf *buf);
/* Hands the storage to the caller (NUL-terminated, to free()); the buffer
 * is empty afterwards. */
char *mg_buf_steal(struct mg_buf *buf, size_t *len_r);

#endif
