#include "common/dotstuff.h"

#include <string.h>

#include "common/buf.h"

enum {
    DS_LINE_START, /* after CR LF, or at the start of the data */
    DS_MID,        /* inside a line */
    DS_CR,         /* after a CR inside a line */
    DS_DOT,        /* after "." at a line start */
    DS_DOT_CR,     /* after ".\r" at a line start */
    DS_DONE,
};

void mg_dotstuff_decoder_init(struct mg_dotstuff_decoder *dec, uint64_t max_size,
                              bool normalize_bare)
{
    memset(dec, 0, sizeof(*dec));
    dec->state = DS_LINE_START;
    dec->max_size = max_size;
    dec->normalize_bare = normalize_bare;
}

static void emit(struct mg_dotstuff_decoder *dec, struct mg_buf *out, const char *p, size_t n)
{
    dec->size += n;
    if (dec->max_size != 0 && dec->size > dec->max_size)
        dec->is_too_big = true;
    if (!dec->is_too_big)
        mg_buf_append(out, p, n);
}

/* A bare CR: written as CR LF when normalising, as is otherwise. */
static void emit_bare_cr(struct mg_dotstuff_decoder *dec, struct mg_buf *out)
{
    dec->bare_cr++;
    if (dec->normalize_bare)
        emit(dec, out, "\r\n", 2);
    else
        emit(dec, out, "\r", 1);
}

static void emit_bare_lf(struct mg_dotstuff_decoder *dec, struct mg_buf *out)
{
    dec->bare_lf++;
    if (dec->normalize_bare)
        emit(dec, out, "\r\n", 2);
    else
        emit(dec, out, "\n", 1);
}

size_t mg_dotstuff_decode(struct mg_dotstuff_decoder *dec, const char *in, size_t len,
                          struct mg_buf *out, bool *is_done_r)
{
    size_t i = 0;
    *is_done_r = false;
    while (i < len && dec->state != DS_DONE) {
        if (dec->state == DS_MID) {
            /* Fast path: copy the run of ordinary bytes at once. */
            size_t j = i;
            while (j < len && in[j] != '\r' && in[j] != '\n')
                j++;
            if (j > i)
                emit(dec, out, in + i, j - i);
            i = j;
            if (i == len)
                break;
        }
        char c = in[i++];
        switch (dec->state) {
        case DS_LINE_START:
            if (c == '.') {
                dec->state = DS_DOT;
                break;
            }
            /* An ordinary first byte: handled as inside a line. */
            __attribute__((fallthrough));
        case DS_MID:
            if (c == '\r') {
                dec->state = DS_CR;
            } else if (c == '\n') {
                /* A bare LF does not start a line: a dot after it is
                 * content, never an end marker. */
                emit_bare_lf(dec, out);
                dec->state = DS_MID;
            } else {
                emit(dec, out, &c, 1);
                dec->state = DS_MID;
            }
            break;
        case DS_CR:
            if (c == '\n') {
                emit(dec, out, "\r\n", 2);
                dec->state = DS_LINE_START;
            } else {
                emit_bare_cr(dec, out);
                i--; /* look at c again as part of the line */
                dec->state = DS_MID;
            }
            break;
        case DS_DOT:
            if (c == '\r') {
                dec->state = DS_DOT_CR;
            } else {
                /* A stuffed dot: drop it, the byte is content. */
                i--;
                dec->state = DS_MID;
            }
            break;
        case DS_DOT_CR:
            if (c == '\n') {
                dec->state = DS_DONE;
            } else {
                /* ".\r" then something else: the dot was stuffing, the CR
                 * is bare. */
                emit_bare_cr(dec, out);
                i--;
                dec->state = DS_MID;
            }
            break;
        }
    }
    *is_done_r = dec->state == DS_DONE;
    return i;
}

void mg_dotstuff_encoder_init(struct mg_dotstuff_encoder *enc)
{
    enc->at_line_start = true;
    enc->ends_with_crlf = true; /* empty content needs no line end */
    enc->last = '\0';
}

void mg_dotstuff_encode(struct mg_dotstuff_encoder *enc, const char *in, size_t len,
                        struct mg_buf *out)
{
    size_t run = 0; /* start of the bytes not yet copied */
    for (size_t i = 0; i < len; i++) {
        if (enc->at_line_start && in[i] == '.') {
            mg_buf_append(out, in + run, i - run);
            mg_buf_append_byte(out, '.');
            run = i;
        }
        /* A line starts after LF: after a bare LF too, because the
         * receiver may treat it as a line end. */
        enc->at_line_start = in[i] == '\n';
    }
    mg_buf_append(out, in + run, len - run);
    if (len == 1)
        enc->ends_with_crlf = enc->last == '\r' && in[0] == '\n';
    else if (len > 1)
        enc->ends_with_crlf = in[len - 2] == '\r' && in[len - 1] == '\n';
    if (len > 0)
        enc->last = in[len - 1];
}

void mg_dotstuff_encode_end(struct mg_dotstuff_encoder *enc, struct mg_buf *out)
{
    if (!enc->ends_with_crlf)
        mg_buf_append(out, "\r\n", 2);
    mg_buf_append(out, ".\r\n", 3);
}
