#include "mda/mime/mime_content.h"

#include <string.h>

#include "common/ascii.h"
#include "mda/mime/mime_charset.h"
#include "mda/mime/mime_encword.h"
#include "mda/mime/mime_lex.h"

/* A parameter as lexed: offsets into ctx->raw. */
struct raw_param {
    size_t attr_off, attr_len;
    size_t value_off, value_len;
    /* RFC 2231 */
    size_t base_len;   /* attribute length without the '*' suffix */
    unsigned int index;
    bool is_section;   /* name*N or name*N* or name* */
    bool is_extended;  /* ends with '*' */
    bool used;
};

void mime_content_ctx_init(struct mime_content_ctx *ctx, struct mg_arena *arena)
{
    memset(ctx, 0, sizeof(*ctx));
    ctx->arena = arena;
}

void mime_content_ctx_deinit(struct mime_content_ctx *ctx)
{
    mg_buf_free(&ctx->buf);
    mg_buf_free(&ctx->buf2);
    mg_buf_free(&ctx->raw);
}

char *mime_content_strdup(struct mg_arena *arena, const char *s, size_t len)
{
    char *d = mg_arena_strndup(arena, s, len);
    for (size_t i = 0; i < len; i++) {
        if (d[i] == '\0')
            d[i] = (char)0x80;
    }
    return d;
}

static char *strdup_lower(struct mg_arena *arena, const char *s, size_t len)
{
    char *d = mime_content_strdup(arena, s, len);
    mg_ascii_lower(d, len);
    return d;
}

/* Splits "name*N*" / "name*N" / "name*" into the RFC 2231 fields. */
static void rfc2231_classify(const char *attr, struct raw_param *rp)
{
    const char *star = memchr(attr, '*', rp->attr_len);
    rp->is_section = false;
    if (star == NULL || star == attr)
        return;
    size_t i = (size_t)(star - attr) + 1;
    unsigned long index = 0;
    bool has_digits = false;
    while (i < rp->attr_len && attr[i] >= '0' && attr[i] <= '9') {
        if (index < 100000)
            index = index * 10 + (unsigned long)(attr[i] - '0');
        has_digits = true;
        i++;
    }
    bool extended = false;
    if (!has_digits) {
        extended = true; /* "name*": the star itself marks the encoding */
    } else if (i < rp->attr_len && attr[i] == '*') {
        extended = true;
        i++;
    }
    if (i != rp->attr_len)
        return; /* "a*b", "a**": an ordinary (odd) attribute name */
    rp->is_section = true;
    rp->is_extended = extended;
    rp->index = has_digits ? (unsigned int)index : 0;
    rp->base_len = (size_t)(star - attr);
}

/* Lexes the parameters that follow the current position into ctx->raw and
 * rps[]; returns how many. */
static unsigned int lex_params(struct mime_content_ctx *ctx, struct mime_lex *lx,
                               struct raw_param *rps)
{
    unsigned int count = 0;

    mg_buf_reset(&ctx->raw);
    while (lx->p < lx->end && count < MIME_CONTENT_MAX_PARAMS) {
        if (*lx->p == ';') {
            lx->p++;
            if (mime_lex_skip_cfws(lx) <= 0)
                break;
        } else if (!mime_lex_is_token(*lx->p)) {
            /* garbage: skip it */
            lx->p++;
            (void)mime_lex_skip_cfws(lx);
            continue;
        }
        /* An attribute; the ';' before it is often missing in real mail
         * ("multipart/mixed boundary=x"), so a "token=" counts anyway. */
        struct raw_param *rp = &rps[count];
        memset(rp, 0, sizeof(*rp));
        rp->attr_off = ctx->raw.len;
        if (mime_lex_token(lx, &ctx->raw) < 0)
            break;
        rp->attr_len = ctx->raw.len - rp->attr_off;
        if (rp->attr_len == 0 || lx->p >= lx->end || *lx->p != '=') {
            mg_buf_truncate(&ctx->raw, rp->attr_off);
            continue;
        }
        lx->p++;
        rp->value_off = ctx->raw.len;
        int ret = mime_lex_skip_cfws(lx);
        if (ret < 0)
            break;
        if (ret == 0) {
            /* "name=" at the end: empty value */
        } else if (*lx->p == '"') {
            (void)mime_lex_quoted(lx, &ctx->raw);
        } else if (*lx->p == '=') {
            /* name==?utf-8?b?...?= : the encoded words run to ';' */
            const unsigned char *start = lx->p;
            bool encoded = lx->end - lx->p >= 2 && lx->p[1] == '?';
            while (lx->p < lx->end && *lx->p != ';' && *lx->p != '\r' &&
                   *lx->p != '\n' && (encoded || (*lx->p != ' ' && *lx->p != '\t')))
                lx->p++;
            const unsigned char *e = lx->p;
            while (e > start && (e[-1] == ' ' || e[-1] == '\t'))
                e--;
            mg_buf_append(&ctx->raw, start, (size_t)(e - start));
            (void)mime_lex_skip_cfws(lx);
        } else {
            /* A token; tspecials such as ':' or '/' are accepted too
             * (boundary=gc0pJq0M:08jU534c0p, unquoted in much real mail):
             * only what cannot be part of a value ends it. */
            const unsigned char *start = lx->p;
            while (lx->p < lx->end && *lx->p > ' ' && *lx->p != 0x7f &&
                   strchr(";\"()\\", *lx->p) == NULL)
                lx->p++;
            mg_buf_append(&ctx->raw, start, (size_t)(lx->p - start));
            (void)mime_lex_skip_cfws(lx);
        }
        rp->value_len = ctx->raw.len - rp->value_off;
        count++;
    }
    return count;
}

/* Decoded value of an ordinary (non-RFC 2231) parameter. */
static const char *decode_plain_value(struct mime_content_ctx *ctx,
                                      const char *raw_value, size_t len)
{
    mg_buf_reset(&ctx->buf2);
    if (memmem(raw_value, len, "=?", 2) != NULL)
        mime_encword_decode(raw_value, len, &ctx->buf2);
    else
        mime_charset_utf8_sanitize(raw_value, len, &ctx->buf2);
    if (ctx->buf2.len == len && memcmp(ctx->buf2.data, raw_value, len) == 0)
        return NULL; /* unchanged: share the raw copy */
    return mg_arena_strndup(ctx->arena, ctx->buf2.data, ctx->buf2.len);
}

static int hex_digit(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    c = mg_ascii_tolower(c);
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    return -1;
}

static void percent_decode(const char *s, size_t len, struct mg_buf *out)
{
    for (size_t i = 0; i < len; i++) {
        int hi, lo;
        if (s[i] == '%' && i + 2 < len &&
            (hi = hex_digit(s[i + 1])) >= 0 && (lo = hex_digit(s[i + 2])) >= 0) {
            mg_buf_append_byte(out, (char)(hi << 4 | lo));
            i += 2;
        } else {
            mg_buf_append_byte(out, s[i]);
        }
    }
}

static bool ascii_caseeq(const char *a, const char *b, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (mg_ascii_tolower(a[i]) != mg_ascii_tolower(b[i]))
            return false;
    }
    return true;
}

static int raw_param_cmp_index(const struct raw_param *a, const struct raw_param *b)
{
    return a->index < b->index ? -1 : a->index > b->index ? 1 : 0;
}

/* Merges the RFC 2231 sections of the parameter rps[first] (and every
 * later section with the same base name) into *param. */
static void merge_sections(struct mime_content_ctx *ctx, struct raw_param *rps,
                           unsigned int count, unsigned int first,
                           struct mime_param *params, unsigned int *nparams)
{
    const char *raw = ctx->raw.data;
    const char *base = raw + rps[first].attr_off;
    size_t base_len = rps[first].base_len;
    struct raw_param *sec[MIME_CONTENT_MAX_PARAMS];
    unsigned int nsec = 0;
    bool any_extended = false;

    for (unsigned int i = first; i < count; i++) {
        struct raw_param *rp = &rps[i];
        if (rp->used || !rp->is_section || rp->base_len != base_len ||
            !ascii_caseeq(raw + rp->attr_off, base, base_len))
            continue;
        rp->used = true;
        any_extended |= rp->is_extended;
        /* insertion sort by index: there are few sections */
        unsigned int j = nsec++;
        while (j > 0 && raw_param_cmp_index(sec[j - 1], rp) > 0) {
            sec[j] = sec[j - 1];
            j--;
        }
        sec[j] = rp;
    }

    bool contiguous = true;
    for (unsigned int i = 0; i < nsec; i++) {
        if (sec[i]->index != i)
            contiguous = false;
    }
    if (!contiguous) {
        /* Not a valid RFC 2231 set: keep every section as written. */
        for (unsigned int i = 0; i < nsec; i++) {
            struct mime_param *p = &params[(*nparams)++];
            const struct raw_param *rp = sec[i];
            p->raw_name = mime_content_strdup(ctx->arena, raw + rp->attr_off, rp->attr_len);
            p->name = strdup_lower(ctx->arena, raw + rp->attr_off, rp->attr_len);
            p->raw_value = mime_content_strdup(ctx->arena, raw + rp->value_off, rp->value_len);
            p->value = decode_plain_value(ctx, p->raw_value, rp->value_len);
            if (p->value == NULL)
                p->value = p->raw_value;
            p->language = NULL;
        }
        return;
    }

    /* Raw form, as Dovecot writes it into BODYSTRUCTURE. */
    struct mg_buf *rawv = &ctx->buf;
    mg_buf_reset(rawv);
    if (any_extended && !sec[0]->is_extended)
        mg_buf_append(rawv, "''", 2);
    for (unsigned int i = 0; i < nsec; i++) {
        const char *v = raw + sec[i]->value_off;
        size_t vlen = sec[i]->value_len;
        if (any_extended && !sec[i]->is_extended) {
            for (size_t k = 0; k < vlen; k++) {
                if (v[k] == '%')
                    mg_buf_append(rawv, "%25", 3);
                else
                    mg_buf_append_byte(rawv, v[k]);
            }
        } else {
            mg_buf_append(rawv, v, vlen);
        }
    }

    struct mime_param *p = &params[(*nparams)++];
    p->raw_value = mime_content_strdup(ctx->arena, rawv->data, rawv->len);
    p->name = strdup_lower(ctx->arena, base, base_len);
    p->language = NULL;
    if (!any_extended) {
        p->raw_name = mime_content_strdup(ctx->arena, base, base_len);
        p->value = decode_plain_value(ctx, p->raw_value, rawv->len);
        if (p->value == NULL)
            p->value = p->raw_value;
        return;
    }
    mg_buf_reset(&ctx->buf2);
    mg_buf_append(&ctx->buf2, base, base_len);
    mg_buf_append_byte(&ctx->buf2, '*');
    p->raw_name = mime_content_strdup(ctx->arena, ctx->buf2.data, ctx->buf2.len);

    /* Decoded form: charset'language'%XX... in the first section. */
    char charset[MIME_CHARSET_NAME_MAX + 1] = "";
    struct mg_buf bytes = MG_BUF_INIT;
    for (unsigned int i = 0; i < nsec; i++) {
        const char *v = raw + sec[i]->value_off;
        size_t vlen = sec[i]->value_len;
        if (i == 0 && sec[i]->is_extended) {
            const char *q1 = memchr(v, '\'', vlen);
            const char *q2 = q1 == NULL ? NULL : memchr(q1 + 1, '\'', vlen - (size_t)(q1 + 1 - v));
            if (q2 != NULL) {
                size_t clen = (size_t)(q1 - v);
                if (clen <= MIME_CHARSET_NAME_MAX) {
                    memcpy(charset, v, clen);
                    charset[clen] = '\0';
                }
                if (q2 > q1 + 1)
                    p->language = mime_content_strdup(ctx->arena, q1 + 1, (size_t)(q2 - q1 - 1));
                vlen -= (size_t)(q2 + 1 - v);
                v = q2 + 1;
            }
        }
        if (i > 0 && sec[i]->is_extended && charset[0] != '\0') {
            /* Some mailers repeat "charset'" (and "lang'") in every
             * section; RFC 2231 has it in the first one only. */
            size_t clen = strlen(charset);
            if (vlen > clen && v[clen] == '\'' && ascii_caseeq(v, charset, clen)) {
                size_t skip = clen + 1, k = skip;
                while (k < vlen && k - skip <= 16 &&
                       ((v[k] >= 'a' && v[k] <= 'z') || (v[k] >= 'A' && v[k] <= 'Z') ||
                        (v[k] >= '0' && v[k] <= '9') || v[k] == '-'))
                    k++;
                if (k < vlen && v[k] == '\'')
                    skip = k + 1; /* and the "lang'" */
                v += skip;
                vlen -= skip;
            }
        }
        if (sec[i]->is_extended)
            percent_decode(v, vlen, &bytes);
        else
            mg_buf_append(&bytes, v, vlen);
    }
    mg_buf_reset(&ctx->buf2);
    for (size_t i = 0; i < bytes.len; i++) {
        if (bytes.data[i] == '\0')
            bytes.data[i] = (char)0x80;
    }
    mime_charset_to_utf8(charset[0] != '\0' ? charset : NULL, bytes.data,
                         bytes.len, &ctx->buf2);
    mg_buf_free(&bytes);
    p->value = mg_arena_strndup(ctx->arena, ctx->buf2.data, ctx->buf2.len);
}

static void parse_params(struct mime_content_ctx *ctx, struct mime_lex *lx,
                         const struct mime_param **params_r,
                         unsigned int *count_r)
{
    struct raw_param rps[MIME_CONTENT_MAX_PARAMS];
    unsigned int count = lex_params(ctx, lx, rps);

    *params_r = NULL;
    *count_r = 0;
    if (count == 0)
        return;

    const char *raw = ctx->raw.data;
    struct mime_param *params = mg_arena_alloc(ctx->arena, sizeof(*params) * count);
    unsigned int n = 0;
    for (unsigned int i = 0; i < count; i++)
        rfc2231_classify(raw + rps[i].attr_off, &rps[i]);
    for (unsigned int i = 0; i < count; i++) {
        struct raw_param *rp = &rps[i];
        if (rp->used)
            continue;
        if (rp->is_section) {
            merge_sections(ctx, rps, count, i, params, &n);
            continue;
        }
        rp->used = true;
        struct mime_param *p = &params[n++];
        p->raw_name = mime_content_strdup(ctx->arena, raw + rp->attr_off, rp->attr_len);
        p->name = strdup_lower(ctx->arena, raw + rp->attr_off, rp->attr_len);
        p->raw_value = mime_content_strdup(ctx->arena, raw + rp->value_off, rp->value_len);
        p->value = decode_plain_value(ctx, p->raw_value, rp->value_len);
        if (p->value == NULL)
            p->value = p->raw_value;
        p->language = NULL;
    }
    *params_r = params;
    *count_r = n;
}

int mime_content_parse_type(struct mime_content_ctx *ctx, const char *value,
                            size_t len, const char **type_r,
                            const char **subtype_r,
                            const struct mime_param **params_r,
                            unsigned int *param_count_r)
{
    struct mime_lex lx;

    *params_r = NULL;
    *param_count_r = 0;
    mime_lex_init(&lx, value, len);
    mg_buf_reset(&ctx->buf);
    if (mime_lex_skip_cfws(&lx) <= 0 || mime_lex_token(&lx, &ctx->buf) <= 0 ||
        ctx->buf.len == 0 || *lx.p != '/')
        return -1;
    size_t type_len = ctx->buf.len;
    lx.p++;
    if (mime_lex_skip_cfws(&lx) <= 0 || mime_lex_token(&lx, &ctx->buf) < 0 ||
        ctx->buf.len == type_len)
        return -1;
    *type_r = strdup_lower(ctx->arena, ctx->buf.data, type_len);
    *subtype_r = strdup_lower(ctx->arena, ctx->buf.data + type_len,
                              ctx->buf.len - type_len);
    parse_params(ctx, &lx, params_r, param_count_r);
    return 0;
}

int mime_content_parse_disposition(struct mime_content_ctx *ctx,
                                   const char *value, size_t len,
                                   const char **disposition_r,
                                   const struct mime_param **params_r,
                                   unsigned int *param_count_r)
{
    struct mime_lex lx;

    *params_r = NULL;
    *param_count_r = 0;
    mime_lex_init(&lx, value, len);
    mg_buf_reset(&ctx->buf);
    if (mime_lex_skip_cfws(&lx) <= 0 || mime_lex_token(&lx, &ctx->buf) < 0 ||
        ctx->buf.len == 0)
        return -1;
    *disposition_r = mime_content_strdup(ctx->arena, ctx->buf.data, ctx->buf.len);
    parse_params(ctx, &lx, params_r, param_count_r);
    return 0;
}

int mime_content_parse_language(struct mime_content_ctx *ctx,
                                const char *value, size_t len,
                                const char *const **languages_r,
                                unsigned int *count_r)
{
    const char *langs[MIME_CONTENT_MAX_LANGUAGES];
    unsigned int count = 0;
    struct mime_lex lx;

    mime_lex_init(&lx, value, len);
    (void)mime_lex_skip_cfws(&lx);
    while (count < MIME_CONTENT_MAX_LANGUAGES) {
        mg_buf_reset(&ctx->buf);
        int ret = mime_lex_atom(&lx, &ctx->buf);
        if (ret < 0 && ctx->buf.len == 0)
            break;
        langs[count++] = mime_content_strdup(ctx->arena, ctx->buf.data, ctx->buf.len);
        if (ret <= 0 || *lx.p != ',')
            break;
        lx.p++;
        if (mime_lex_skip_cfws(&lx) <= 0)
            break;
    }
    if (count == 0)
        return -1;
    const char **list = mg_arena_alloc(ctx->arena, sizeof(*list) * count);
    memcpy(list, langs, sizeof(*list) * count);
    *languages_r = list;
    *count_r = count;
    return 0;
}

int mime_content_parse_cte(struct mime_content_ctx *ctx, const char *value,
                           size_t len, const char **cte_r)
{
    struct mime_lex lx;

    mime_lex_init(&lx, value, len);
    mg_buf_reset(&ctx->buf);
    if (mime_lex_skip_cfws(&lx) <= 0 || mime_lex_token(&lx, &ctx->buf) != 0 ||
        ctx->buf.len == 0)
        return -1;
    *cte_r = mime_content_strdup(ctx->arena, ctx->buf.data, ctx->buf.len);
    return 0;
}

const char *mime_param_get(const struct mime_param *params, unsigned int count,
                           const char *name)
{
    for (unsigned int i = 0; i < count; i++) {
        if (mg_ascii_strcasecmp(params[i].name, name) == 0)
            return params[i].value;
    }
    return NULL;
}

const char *mime_param_get_raw(const struct mime_param *params,
                               unsigned int count, const char *name)
{
    for (unsigned int i = 0; i < count; i++) {
        if (mg_ascii_strcasecmp(params[i].name, name) == 0)
            return params[i].raw_value;
    }
    return NULL;
}
