#include "common/line_reader.h"

#include <string.h>

#include "common/buf.h"

void mg_line_reader_init(struct mg_line_reader *reader, size_t max_len)
{
    memset(reader, 0, sizeof(*reader));
    reader->max_len = max_len;
}

enum mg_line_status mg_line_reader_next(struct mg_line_reader *reader, struct mg_buf *in,
                                        struct mg_line *line_r)
{
    memset(line_r, 0, sizeof(*line_r));
    for (;;) {
        size_t avail = in->len - reader->pos;
        if (avail == 0 || in->data == NULL)
            return MG_LINE_NEED_MORE;
        const char *start = in->data + reader->pos;

        if (reader->literal_left > 0) {
            size_t n = avail < reader->literal_left ? avail : (size_t)reader->literal_left;
            line_r->data = start;
            line_r->len = n;
            reader->pos += n;
            reader->literal_left -= n;
            line_r->is_literal_end = reader->literal_left == 0;
            return MG_LINE_LITERAL;
        }

        /* Search only the bytes not searched before: a line arriving one
         * byte at a time must not cost quadratic time. */
        const char *lf = memchr(start + reader->scan, '\n', avail - reader->scan);
        if (lf == NULL) {
            reader->scan = avail;
            if (reader->is_skipping) {
                reader->pos = in->len;
                reader->scan = 0;
                return MG_LINE_NEED_MORE;
            }
            /* max_len counts the content; allow for a CR still to come. */
            if (avail > reader->max_len + 1) {
                reader->is_skipping = true;
                reader->pos = in->len;
                reader->scan = 0;
                return MG_LINE_TOO_LONG;
            }
            return MG_LINE_NEED_MORE;
        }

        size_t len = (size_t)(lf - start);
        reader->pos += len + 1;
        reader->scan = 0;
        if (reader->is_skipping) {
            reader->is_skipping = false;
            continue;
        }
        bool has_cr = len > 0 && start[len - 1] == '\r';
        size_t content_len = has_cr ? len - 1 : len;
        if (content_len > reader->max_len)
            return MG_LINE_TOO_LONG;
        line_r->data = start;
        line_r->len = content_len;
        line_r->is_bare_lf = !has_cr;
        return MG_LINE_OK;
    }
}

void mg_line_reader_expect_literal(struct mg_line_reader *reader, uint64_t size)
{
    reader->literal_left = size;
    reader->scan = 0;
}

bool mg_line_reader_in_literal(const struct mg_line_reader *reader)
{
    return reader->literal_left > 0;
}

void mg_line_reader_compact(struct mg_line_reader *reader, struct mg_buf *in)
{
    if (reader->pos == 0)
        return;
    mg_buf_consume(in, reader->pos);
    reader->pos = 0;
}

size_t mg_line_reader_discard(struct mg_line_reader *reader, struct mg_buf *in)
{
    size_t dropped = in->len - reader->pos;
    mg_buf_reset(in);
    reader->pos = 0;
    reader->scan = 0;
    reader->literal_left = 0;
    reader->is_skipping = false;
    return dropped;
}

size_t mg_line_reader_pending(const struct mg_line_reader *reader, const struct mg_buf *in)
{
    return in->len - reader->pos;
}

int mg_line_literal_announcement(const char *line, size_t len, uint64_t *size_r,
                                 bool *is_nonsync_r, size_t *prefix_len_r)
{
    if (len < 3 || line[len - 1] != '}')
        return 0;
    size_t end = len - 1;
    bool nonsync = false;
    if (line[end - 1] == '+') {
        nonsync = true;
        end--;
    }
    size_t i = end;
    while (i > 0 && line[i - 1] >= '0' && line[i - 1] <= '9')
        i--;
    if (i == 0 || line[i - 1] != '{')
        return 0;
    size_t digits = end - i;
    /* "{}" or "{+}" is a malformed announcement, not plain text. */
    if (digits == 0 || digits > 10)
        return -1;
    uint64_t size = 0;
    for (size_t k = i; k < end; k++)
        size = size * 10 + (uint64_t)(line[k] - '0');
    if (size > UINT32_MAX)
        return -1;
    *size_r = size;
    *is_nonsync_r = nonsync;
    *prefix_len_r = i - 1;
    return 1;
}
