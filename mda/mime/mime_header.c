#include "mda/mime/mime_header.h"

#include <string.h>

#include "common/ascii.h"
#include "mda/mime/mime_encword.h"

bool mime_header_is_blank_line(const char *data, size_t len, size_t pos,
                               size_t *next_r)
{
    if (pos < len && data[pos] == '\n') {
        *next_r = pos + 1;
        return true;
    }
    if (pos + 1 < len && data[pos] == '\r' && data[pos + 1] == '\n') {
        *next_r = pos + 2;
        return true;
    }
    return false;
}

/* Offset of the next line start after pos (len when there is none), and
 * the end of the line's content (before CR LF) in *content_end_r. */
static size_t line_end(const char *data, size_t len, size_t pos,
                       size_t *content_end_r)
{
    const char *nl = memchr(data + pos, '\n', len - pos);
    if (nl == NULL) {
        *content_end_r = len;
        return len;
    }
    size_t e = (size_t)(nl - data);
    *content_end_r = e > pos && data[e - 1] == '\r' ? e - 1 : e;
    return e + 1;
}

size_t mime_header_parse_field(const char *data, size_t len, size_t pos,
                               struct mime_header_field *field_r)
{
    size_t content_end;
    size_t next = line_end(data, len, pos, &content_end);
    const char *colon = memchr(data + pos, ':', content_end - pos);

    field_r->start = pos;
    field_r->name = data + pos;
    size_t vstart;
    if (colon == NULL) {
        field_r->name_len = content_end - pos;
        vstart = content_end;
    } else {
        size_t n = (size_t)(colon - (data + pos));
        while (n > 0 && (data[pos + n - 1] == ' ' || data[pos + n - 1] == '\t'))
            n--;
        field_r->name_len = n;
        vstart = (size_t)(colon - data) + 1;
    }

    /* Continuation lines start with white space. */
    size_t vend = content_end;
    while (next < len && (data[next] == ' ' || data[next] == '\t')) {
        next = line_end(data, len, next, &content_end);
        vend = content_end;
    }
    if (colon == NULL)
        vend = vstart;

    /* Skip leading white space, including folding before the first
     * character of the value. */
    while (vstart < vend) {
        char c = data[vstart];
        if (c == ' ' || c == '\t' || c == '\r' || c == '\n')
            vstart++;
        else
            break;
    }
    field_r->value = data + vstart;
    field_r->value_len = vend - vstart;
    field_r->end = next;
    return next;
}

void mime_header_iter_init(struct mime_header_iter *iter, const char *data,
                           size_t start, size_t end)
{
    iter->data = data;
    iter->pos = start;
    iter->end = end;
}

bool mime_header_iter_next(struct mime_header_iter *iter,
                           struct mime_header_field *field_r)
{
    size_t next;

    if (iter->pos >= iter->end ||
        mime_header_is_blank_line(iter->data, iter->end, iter->pos, &next))
        return false;
    iter->pos = mime_header_parse_field(iter->data, iter->end, iter->pos,
                                        field_r);
    return true;
}

bool mime_header_field_is(const struct mime_header_field *field,
                          const char *name)
{
    return mg_ascii_eq(field->name, field->name_len, name);
}

bool mime_header_find(const char *data, size_t start, size_t end,
                      const char *name, struct mime_header_field *field_r)
{
    struct mime_header_iter iter;

    mime_header_iter_init(&iter, data, start, end);
    while (mime_header_iter_next(&iter, field_r)) {
        if (mime_header_field_is(field_r, name))
            return true;
    }
    return false;
}

void mime_header_unfold(const char *value, size_t len, struct mg_buf *out)
{
    size_t i = 0;

    mg_buf_reserve(out, len);
    while (i < len) {
        const char *nl = memchr(value + i, '\n', len - i);
        size_t n = nl == NULL ? len - i : (size_t)(nl - (value + i));
        size_t copy = n;
        if (nl != NULL && copy > 0 && value[i + copy - 1] == '\r')
            copy--;
        mg_buf_append(out, value + i, copy);
        i += n + (nl != NULL ? 1 : 0);
    }
}

bool mime_header_get_decoded(const char *data, size_t start, size_t end,
                             const char *name, struct mg_buf *out)
{
    struct mime_header_field field;

    if (!mime_header_find(data, start, end, name, &field))
        return false;
    mime_encword_decode(field.value, field.value_len, out);
    return true;
}
