/* Header fields of a message or MIME part, read in place.
 *
 * A header block is the byte range [start, end) of a message; the parser
 * (mime_parser.h) records it for every part. Fields are never copied:
 * names and values point into the message data. A value keeps its folding
 * (CR LF followed by white space); mime_header_unfold() removes it.
 *
 * Tolerated malformations: bare LF line endings, white space before the
 * colon ("Subject :"), a line without a colon (the whole line becomes the
 * name, the value is empty), NUL bytes (kept as data). */
#ifndef MG_MDA_MIME_HEADER_H
#define MG_MDA_MIME_HEADER_H

#include <stdbool.h>
#include <stddef.h>

#include "common/buf.h"

struct mime_header_field {
    const char *name;  /* not NUL-terminated */
    size_t name_len;
    /* Raw value: leading white space (and folding before the first
     * character) skipped, the final line break excluded, inner folding
     * kept. Not NUL-terminated. */
    const char *value;
    size_t value_len;
    size_t start; /* offset of the field's first byte */
    size_t end;   /* offset after its last line break (or end of data) */
};

/* Whether data[pos] starts an empty line ("\n" or "\r\n"); *next_r is then
 * the offset after it. */
bool mime_header_is_blank_line(const char *data, size_t len, size_t pos,
                               size_t *next_r);

/* Reads the field starting at data[pos] (a line start that is not a blank
 * line, pos < len) with its continuation lines; returns field_r->end. */
size_t mime_header_parse_field(const char *data, size_t len, size_t pos,
                               struct mime_header_field *field_r);

struct mime_header_iter {
    const char *data;
    size_t pos;
    size_t end;
};

/* Iterates the fields of the header block data[start, end); stops at the
 * blank line or at end. */
void mime_header_iter_init(struct mime_header_iter *iter, const char *data,
                           size_t start, size_t end);
bool mime_header_iter_next(struct mime_header_iter *iter,
                           struct mime_header_field *field_r);

/* Case-insensitive comparison of the field name with name. */
bool mime_header_field_is(const struct mime_header_field *field,
                          const char *name);

/* Finds the first field called name in data[start, end). */
bool mime_header_find(const char *data, size_t start, size_t end,
                      const char *name, struct mime_header_field *field_r);

/* Appends the value with its line breaks removed (the white space that
 * follows each break stays, as RFC 5322 section 2.2.3 says). */
void mime_header_unfold(const char *value, size_t len, struct mg_buf *out);

/* Appends the decoded value of the first field called name in
 * data[start, end) as UTF-8: unfolded, RFC 2047 encoded words decoded
 * (mime_encword.h). Returns false (out unchanged) when there is no such
 * field. */
bool mime_header_get_decoded(const char *data, size_t start, size_t end,
                             const char *name, struct mg_buf *out);

#endif
