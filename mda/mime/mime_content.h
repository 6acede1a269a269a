/* Content-* header values: Content-Type and Content-Disposition with their
 * parameters (RFC 2045, RFC 2183, RFC 2231), Content-Language (RFC 3282),
 * Content-Transfer-Encoding.
 *
 * Values are the raw header values (mime_header.h: folding included). The
 * rules follow Dovecot's where the RFCs leave room, so that BODYSTRUCTURE
 * matches what Dovecot users see:
 *  - parameters are "; attribute = value", value a token or a quoted
 *    string; "name=" gives an empty value; a value that starts with "=?"
 *    (an unquoted RFC 2047 word, as some mailers send) runs to the next
 *    ';'. Unlike Dovecot, a parameter whose ';' is missing still counts
 *    ("multipart/mixed boundary=x"), and an unquoted value may hold
 *    tspecials other than ';', '"', '(', ')' and '\' (real boundaries such
 *    as gc0pJq0M:08jU534c0p); other garbage is skipped;
 *  - RFC 2231 continuations "name*0", "name*1*", ... are merged when their
 *    numbers run 0..n-1 without gaps, otherwise each is kept as written.
 *    raw_name/raw_value keep the merged but undecoded form that Dovecot
 *    puts into BODYSTRUCTURE ("title*" "us-ascii'en'This%20is");
 *    name/value hold the decoded UTF-8 (charset and %XX applied, RFC 2047
 *    words in ordinary values decoded too, as mail clients do);
 *  - at most MIME_CONTENT_MAX_PARAMS parameters per header are kept.
 * NUL bytes in values are replaced with 0x80 (an invalid UTF-8 byte, so
 * decoded values show U+FFFD) because the results are C strings. */
#ifndef MG_MDA_MIME_CONTENT_H
#define MG_MDA_MIME_CONTENT_H

#include <stddef.h>

#include "common/arena.h"
#include "common/buf.h"

#define MIME_CONTENT_MAX_PARAMS 64
#define MIME_CONTENT_MAX_LANGUAGES 32

struct mime_param {
    const char *name;      /* lower-cased, RFC 2231 '*' suffixes removed */
    const char *value;     /* decoded UTF-8 */
    const char *language;  /* RFC 2231 language tag, or NULL */
    const char *raw_name;  /* as written; "name*" when RFC 2231 encoded */
    const char *raw_value; /* undecoded, continuations merged */
};

/* Scratch state shared by the parse functions; results go to arena. */
struct mime_content_ctx {
    struct mg_arena *arena;
    struct mg_buf buf;
    struct mg_buf buf2;
    struct mg_buf raw;
};

void mime_content_ctx_init(struct mime_content_ctx *ctx, struct mg_arena *arena);
void mime_content_ctx_deinit(struct mime_content_ctx *ctx);

/* "type/subtype *(; parameter)". Type and subtype are lower-cased. Returns
 * -1 when there is no "token/token" (RFC 2045 section 5.2 then says to
 * assume text/plain; the caller decides). */
int mime_content_parse_type(struct mime_content_ctx *ctx, const char *value,
                            size_t len, const char **type_r,
                            const char **subtype_r,
                            const struct mime_param **params_r,
                            unsigned int *param_count_r);

/* "disposition *(; parameter)"; the disposition keeps its case. Returns -1
 * when there is no token. */
int mime_content_parse_disposition(struct mime_content_ctx *ctx,
                                   const char *value, size_t len,
                                   const char **disposition_r,
                                   const struct mime_param **params_r,
                                   unsigned int *param_count_r);

/* Comma-separated language tags (atoms). Returns -1 when there is none. */
int mime_content_parse_language(struct mime_content_ctx *ctx,
                                const char *value, size_t len,
                                const char *const **languages_r,
                                unsigned int *count_r);

/* A single token followed by nothing but white space or comments. Returns
 * -1 otherwise (the part then counts as 7bit, as in Dovecot). */
int mime_content_parse_cte(struct mime_content_ctx *ctx, const char *value,
                           size_t len, const char **cte_r);

/* The decoded value of the first parameter called name (ASCII
 * case-insensitive), or NULL. */
const char *mime_param_get(const struct mime_param *params, unsigned int count,
                           const char *name);

/* The same for the undecoded value (e.g. a boundary, matched bytewise). */
const char *mime_param_get_raw(const struct mime_param *params,
                               unsigned int count, const char *name);

/* Copies s[0..len) into the arena, NUL bytes replaced with 0x80. */
char *mime_content_strdup(struct mg_arena *arena, const char *s, size_t len);

#endif
