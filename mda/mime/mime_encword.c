#include "mda/mime/mime_encword.h"

#include <string.h>

#include "common/ascii.h"
#include "mda/mime/mime_charset.h"
#include "mda/mime/mime_transfer.h"

struct encword {
    const char *charset; /* without the RFC 2231 "*lang" suffix */
    size_t charset_len;
    char encoding;       /* 'b' or 'q' */
    const char *text;
    size_t text_len;
    size_t end;          /* offset after "?=" */
};

struct decode_ctx {
    struct mg_buf *out;
    struct mg_buf pending; /* decoded bytes of adjacent words, one charset */
    struct mg_buf tmp;
    char charset[MIME_CHARSET_NAME_MAX + 1];
    bool has_pending;
};

static bool is_wsp(char c)
{
    return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

/* in[pos] == '=' and in[pos + 1] == '?'. */
static bool parse_encword(const char *in, size_t len, size_t pos,
                          struct encword *w)
{
    size_t limit = len - pos > MIME_ENCWORD_MAX_LEN ? pos + MIME_ENCWORD_MAX_LEN : len;
    size_t p = pos + 2;

    /* charset: a token up to '?' */
    w->charset = in + p;
    while (p < limit && in[p] != '?') {
        if (is_wsp(in[p]) || in[p] == '=')
            return false;
        p++;
    }
    if (p >= limit || p == pos + 2)
        return false;
    const char *star = memchr(w->charset, '*', (size_t)(in + p - w->charset));
    w->charset_len = (size_t)((star != NULL ? star : in + p) - w->charset);
    if (w->charset_len == 0 || w->charset_len > MIME_CHARSET_NAME_MAX)
        return false;

    /* "?B?" or "?Q?" */
    if (p + 2 >= limit || in[p + 2] != '?')
        return false;
    w->encoding = mg_ascii_tolower(in[p + 1]);
    if (w->encoding != 'b' && w->encoding != 'q')
        return false;
    p += 3;

    /* encoded text up to "?=" (folding white space tolerated) */
    const char *q = memchr(in + p, '?', limit - p);
    if (q == NULL || (size_t)(q - in) + 1 >= limit || q[1] != '=')
        return false;
    w->text = in + p;
    w->text_len = (size_t)(q - w->text);
    w->end = (size_t)(q - in) + 2;
    return true;
}

static void flush_pending(struct decode_ctx *ctx)
{
    if (!ctx->has_pending)
        return;
    mime_charset_to_utf8(ctx->charset, ctx->pending.data, ctx->pending.len,
                         ctx->out);
    mg_buf_reset(&ctx->pending);
    ctx->has_pending = false;
}

static void add_word(struct decode_ctx *ctx, const struct encword *w)
{
    char charset[MIME_CHARSET_NAME_MAX + 1];

    memcpy(charset, w->charset, w->charset_len);
    charset[w->charset_len] = '\0';
    if (ctx->has_pending && mg_ascii_strcasecmp(charset, ctx->charset) != 0)
        flush_pending(ctx);
    if (!ctx->has_pending) {
        memcpy(ctx->charset, charset, w->charset_len + 1);
        ctx->has_pending = true;
    }

    if (w->encoding == 'b') {
        /* base64 skips folding and other white space by itself */
        mime_transfer_base64_decode(w->text, w->text_len, &ctx->pending);
        return;
    }
    /* Q: drop line breaks and the indentation of continuation lines;
     * plain spaces (invalid, but seen) are kept */
    mg_buf_reset(&ctx->tmp);
    for (size_t i = 0; i < w->text_len; i++) {
        char c = w->text[i];
        if (c == '\r')
            continue;
        if (c == '\n') {
            while (i + 1 < w->text_len && (w->text[i + 1] == ' ' || w->text[i + 1] == '\t'))
                i++;
            continue;
        }
        mg_buf_append_byte(&ctx->tmp, c);
    }
    mime_transfer_q_decode(ctx->tmp.data, ctx->tmp.len, &ctx->pending);
}

/* Plain text: runs of white space with a line break become one space. */
static void add_plain(struct decode_ctx *ctx, const char *in, size_t len)
{
    size_t i = 0;

    flush_pending(ctx);
    while (i < len) {
        size_t start = i;
        while (i < len && !is_wsp(in[i]))
            i++;
        mime_charset_utf8_sanitize(in + start, i - start, ctx->out);
        start = i;
        bool folded = false;
        while (i < len && is_wsp(in[i])) {
            if (in[i] == '\r' || in[i] == '\n')
                folded = true;
            i++;
        }
        if (folded)
            mg_buf_append_byte(ctx->out, ' ');
        else
            mg_buf_append(ctx->out, in + start, i - start);
    }
}

static bool only_wsp(const char *in, size_t len)
{
    for (size_t i = 0; i < len; i++) {
        if (!is_wsp(in[i]))
            return false;
    }
    return true;
}

void mime_encword_decode(const char *in, size_t len, struct mg_buf *out)
{
    struct decode_ctx ctx = { .out = out, .pending = MG_BUF_INIT, .tmp = MG_BUF_INIT };

    while (len > 0 && is_wsp(in[0])) {
        in++;
        len--;
    }
    while (len > 0 && is_wsp(in[len - 1]))
        len--;

    size_t plain_start = 0, i = 0;
    bool after_word = false;
    while (i + 1 < len) {
        const char *p = memchr(in + i, '=', len - 1 - i);
        if (p == NULL)
            break;
        i = (size_t)(p - in);
        struct encword w;
        if (in[i + 1] != '?' || !parse_encword(in, len, i, &w)) {
            i++;
            continue;
        }
        if (!(after_word && only_wsp(in + plain_start, i - plain_start)))
            add_plain(&ctx, in + plain_start, i - plain_start);
        add_word(&ctx, &w);
        i = plain_start = w.end;
        after_word = true;
    }
    if (plain_start < len)
        add_plain(&ctx, in + plain_start, len - plain_start);
    flush_pending(&ctx);
    mg_buf_free(&ctx.pending);
    mg_buf_free(&ctx.tmp);
    mg_buf_reserve(out, 0); /* out->data is valid even when nothing was added */
}
