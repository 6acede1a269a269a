#include "lmtp/smtp_params.h"

#include <string.h>

#include "common/arena.h"
#include "common/ascii.h"
#include "common/buf.h"
#include "common/utf8.h"
#include "lmtp/smtp_xtext.h"

struct param {
    const char *key;
    size_t key_len;
    const char *value; /* NULL: no "=value" */
    size_t value_len;
};

static const struct smtp_status err_syntax = { 501, "5.5.4", "Error: bad parameter syntax" };
static const struct smtp_status err_unknown = { 555, "5.5.4", "Error: unsupported parameter" };
static const struct smtp_status err_duplicate = { 501, "5.5.4", "Error: duplicate parameter" };

static bool is_alnum(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
}

/* esmtp-value = 1*(%d33-60 / %d62-126), plus UTF-8 under SMTPUTF8
 * (RFC 6531 section 3.3); validity of the UTF-8 is each decoder's job. */
static bool is_value_char(unsigned char c, bool allow_8bit)
{
    return (c >= 33 && c <= 126 && c != '=') || (c >= 0x80 && allow_8bit);
}

/* Reads the next "keyword[=value]" at *pos; returns 1 for one, 0 at the
 * end, -1 for a syntax error. Parameters are separated by spaces (one per
 * RFC 5321; more are tolerated, as trailing ones are). */
static int next_param(const char *text, size_t len, size_t *pos, bool allow_8bit,
                      struct param *param_r)
{
    size_t i = *pos;
    if (i < len && text[i] != ' ')
        return -1;
    while (i < len && text[i] == ' ')
        i++;
    if (i == len) {
        *pos = i;
        return 0;
    }
    size_t k = i;
    if (!is_alnum(text[i]))
        return -1;
    while (i < len && (is_alnum(text[i]) || text[i] == '-'))
        i++;
    param_r->key = text + k;
    param_r->key_len = i - k;
    param_r->value = NULL;
    param_r->value_len = 0;
    if (i < len && text[i] == '=') {
        size_t v = ++i;
        while (i < len && is_value_char((unsigned char)text[i], allow_8bit))
            i++;
        if (i == v)
            return -1;
        param_r->value = text + v;
        param_r->value_len = i - v;
    }
    if (i < len && text[i] != ' ')
        return -1;
    *pos = i;
    return 1;
}

static bool key_is(const struct param *p, const char *name)
{
    return mg_ascii_eq(p->key, p->key_len, name);
}

static bool value_is(const struct param *p, const char *word)
{
    return p->value != NULL && mg_ascii_eq(p->value, p->value_len, word);
}

/* size-value = 1*20DIGIT; values past UINT64_MAX saturate, so that the
 * size check refuses them rather than the syntax check. */
static int parse_size(const struct param *p, uint64_t *size_r)
{
    if (p->value == NULL || p->value_len > 20)
        return -1;
    uint64_t v = 0;
    for (size_t i = 0; i < p->value_len; i++) {
        char c = p->value[i];
        if (c < '0' || c > '9')
            return -1;
        unsigned d = (unsigned)(c - '0');
        if (v > (UINT64_MAX - d) / 10)
            v = UINT64_MAX;
        else
            v = v * 10 + d;
    }
    *size_r = v;
    return 0;
}

/* xtext-decodes p's value into the arena, within max bytes. */
static const char *decode_xtext(const struct param *p, size_t max, struct mg_arena *arena)
{
    struct mg_buf buf = MG_BUF_INIT;
    const char *result = NULL;
    if (p->value != NULL && smtp_xtext_decode(p->value, p->value_len, &buf) == 0 &&
        buf.len <= max)
        result = mg_arena_strndup(arena, mg_buf_cstr(&buf), buf.len);
    mg_buf_free(&buf);
    return result;
}

int smtp_params_parse_mail(const char *text, size_t len, const struct smtp_params_options *options,
                           struct mg_arena *arena, struct smtp_mail_params *params_r,
                           struct smtp_status *error_r)
{
    memset(params_r, 0, sizeof(*params_r));
    size_t pos = 0;
    struct param p;
    int r;
    bool seen_body = false, seen_ret = false;
    while ((r = next_param(text, len, &pos, options->allow_smtputf8, &p)) > 0) {
        if (!options->is_esmtp) {
            *error_r = err_unknown;
            return -1;
        }
        if (key_is(&p, "SIZE")) {
            if (params_r->has_size) {
                *error_r = err_duplicate;
                return -1;
            }
            if (parse_size(&p, &params_r->size) < 0) {
                *error_r = (struct smtp_status){ 501, "5.5.4", "Error: bad SIZE value" };
                return -1;
            }
            params_r->has_size = true;
        } else if (key_is(&p, "BODY")) {
            if (seen_body) {
                *error_r = err_duplicate;
                return -1;
            }
            seen_body = true;
            if (value_is(&p, "7BIT")) {
                params_r->body = SMTP_BODY_7BIT;
            } else if (value_is(&p, "8BITMIME")) {
                params_r->body = SMTP_BODY_8BITMIME;
            } else if (value_is(&p, "BINARYMIME")) {
                /* We do not advertise BINARYMIME (RFC 3030 section 3). */
                *error_r = (struct smtp_status){ 555, "5.5.4",
                                                 "Error: BODY=BINARYMIME is not supported" };
                return -1;
            } else {
                *error_r = (struct smtp_status){ 501, "5.5.4", "Error: bad BODY value" };
                return -1;
            }
        } else if (key_is(&p, "SMTPUTF8")) {
            if (!options->allow_smtputf8) {
                *error_r = err_unknown;
                return -1;
            }
            if (params_r->is_smtputf8) {
                *error_r = err_duplicate;
                return -1;
            }
            if (p.value != NULL) {
                *error_r = (struct smtp_status){ 501, "5.5.4", "Error: SMTPUTF8 takes no value" };
                return -1;
            }
            params_r->is_smtputf8 = true;
        } else if (key_is(&p, "RET")) {
            if (!options->allow_dsn) {
                *error_r = err_unknown;
                return -1;
            }
            if (seen_ret) {
                *error_r = err_duplicate;
                return -1;
            }
            seen_ret = true;
            if (value_is(&p, "FULL")) {
                params_r->ret = SMTP_DSN_RET_FULL;
            } else if (value_is(&p, "HDRS")) {
                params_r->ret = SMTP_DSN_RET_HDRS;
            } else {
                *error_r = (struct smtp_status){ 501, "5.5.4", "Error: bad RET value" };
                return -1;
            }
        } else if (key_is(&p, "ENVID")) {
            if (!options->allow_dsn) {
                *error_r = err_unknown;
                return -1;
            }
            if (params_r->envid != NULL) {
                *error_r = err_duplicate;
                return -1;
            }
            params_r->envid = decode_xtext(&p, SMTP_PARAMS_ENVID_MAX, arena);
            if (params_r->envid == NULL || params_r->envid[0] == '\0') {
                *error_r = (struct smtp_status){ 501, "5.5.4", "Error: bad ENVID value" };
                return -1;
            }
        } else if (key_is(&p, "AUTH")) {
            /* RFC 4954 section 5: the daemon may trust it or not; we keep
             * it for the record. */
            if (params_r->auth != NULL) {
                *error_r = err_duplicate;
                return -1;
            }
            params_r->auth = decode_xtext(&p, SMTP_PARAMS_AUTH_MAX, arena);
            if (params_r->auth == NULL || params_r->auth[0] == '\0') {
                *error_r = (struct smtp_status){ 501, "5.5.4", "Error: bad AUTH value" };
                return -1;
            }
        } else {
            *error_r = err_unknown;
            return -1;
        }
    }
    if (r < 0) {
        *error_r = err_syntax;
        return -1;
    }
    return 0;
}

/* NOTIFY=NEVER / NOTIFY=SUCCESS,FAILURE,DELAY (any order, each once). */
static int parse_notify(const struct param *p, unsigned *notify_r)
{
    if (p->value == NULL)
        return -1;
    unsigned bits = 0;
    size_t i = 0;
    while (i <= p->value_len) {
        size_t j = i;
        while (j < p->value_len && p->value[j] != ',')
            j++;
        unsigned bit;
        if (mg_ascii_eq(p->value + i, j - i, "NEVER"))
            bit = SMTP_DSN_NOTIFY_NEVER;
        else if (mg_ascii_eq(p->value + i, j - i, "SUCCESS"))
            bit = SMTP_DSN_NOTIFY_SUCCESS;
        else if (mg_ascii_eq(p->value + i, j - i, "FAILURE"))
            bit = SMTP_DSN_NOTIFY_FAILURE;
        else if (mg_ascii_eq(p->value + i, j - i, "DELAY"))
            bit = SMTP_DSN_NOTIFY_DELAY;
        else
            return -1;
        if (bits & bit)
            return -1;
        bits |= bit;
        i = j + 1;
    }
    /* NEVER excludes the others (RFC 3461 section 4.1). */
    if ((bits & SMTP_DSN_NOTIFY_NEVER) && bits != SMTP_DSN_NOTIFY_NEVER)
        return -1;
    *notify_r = bits;
    return 0;
}

/* ORCPT=addr-type;xtext. rfc822 addresses are xtext, utf-8 ones (RFC 6533)
 * utf-8-addr-xtext, or unitext when the transaction is SMTPUTF8. */
static const char *parse_orcpt(const struct param *p, const struct smtp_params_options *options,
                               struct mg_arena *arena)
{
    if (p->value == NULL)
        return NULL;
    const char *semi = memchr(p->value, ';', p->value_len);
    if (semi == NULL)
        return NULL;
    size_t type_len = (size_t)(semi - p->value);
    const char *addr = semi + 1;
    size_t addr_len = p->value_len - type_len - 1;
    if (addr_len == 0)
        return NULL;
    struct mg_buf buf = MG_BUF_INIT;
    const char *type;
    int r;
    if (mg_ascii_eq(p->value, type_len, "rfc822")) {
        type = "rfc822";
        r = smtp_xtext_decode(addr, addr_len, &buf);
    } else if (mg_ascii_eq(p->value, type_len, "utf-8")) {
        type = "utf-8";
        bool has_8bit = false;
        for (size_t i = 0; i < addr_len; i++)
            has_8bit |= (unsigned char)addr[i] >= 0x80;
        r = has_8bit && !options->is_smtputf8 ? -1 : smtp_xtext_decode_utf8_addr(addr, addr_len, &buf);
    } else {
        r = -1;
        type = NULL;
    }
    const char *result = NULL;
    if (r == 0 && buf.len > 0 && buf.len <= SMTP_PARAMS_ORCPT_MAX)
        result = mg_arena_printf(arena, "%s;%s", type, mg_buf_cstr(&buf));
    mg_buf_free(&buf);
    return result;
}

int smtp_params_parse_rcpt(const char *text, size_t len, const struct smtp_params_options *options,
                           struct mg_arena *arena, struct smtp_rcpt_params *params_r,
                           struct smtp_status *error_r)
{
    memset(params_r, 0, sizeof(*params_r));
    size_t pos = 0;
    struct param p;
    int r;
    bool seen_notify = false;
    while ((r = next_param(text, len, &pos, options->allow_smtputf8, &p)) > 0) {
        if (!options->is_esmtp) {
            *error_r = err_unknown;
            return -1;
        }
        if (key_is(&p, "NOTIFY") && options->allow_dsn) {
            if (seen_notify) {
                *error_r = err_duplicate;
                return -1;
            }
            seen_notify = true;
            if (parse_notify(&p, &params_r->notify) < 0) {
                *error_r = (struct smtp_status){ 501, "5.5.4", "Error: bad NOTIFY value" };
                return -1;
            }
        } else if (key_is(&p, "ORCPT") && options->allow_dsn) {
            if (params_r->orcpt != NULL) {
                *error_r = err_duplicate;
                return -1;
            }
            params_r->orcpt = parse_orcpt(&p, options, arena);
            if (params_r->orcpt == NULL) {
                *error_r = (struct smtp_status){ 501, "5.5.4", "Error: bad ORCPT value" };
                return -1;
            }
        } else {
            *error_r = err_unknown;
            return -1;
        }
    }
    if (r < 0) {
        *error_r = err_syntax;
        return -1;
    }
    return 0;
}
