/* RFC 5321 mail addresses: parsing, validation and normalisation.
 *
 * The local part is kept as the sender wrote it, except that a quoted local
 * part that needs no quotes is unquoted ("abc"@x is abc@x), as RFC 5321
 * section 4.1.2 recommends. The domain is lower-cased (ASCII only: IDNA is
 * not done; UTF-8 domains pass unchanged when SMTPUTF8 is allowed).
 *
 * Comparison key: local part and domain both lower-cased (ASCII), because
 * users expect Demo@Example.COM and demo@example.com to be the same
 * mailbox, as in Postfix's virtual maps and Dovecot. */
#ifndef MG_COMMON_ADDRESS_H
#define MG_COMMON_ADDRESS_H

#include <stdbool.h>
#include <stddef.h>

struct mg_arena;

/* RFC 5321 limits (section 4.5.3.1). */
#define MG_ADDRESS_LOCAL_MAX 64
#define MG_ADDRESS_DOMAIN_MAX 255
#define MG_ADDRESS_PATH_MAX 256

enum mg_address_flags {
    /* Accept UTF-8 in local part and domain (SMTPUTF8, RFC 6531). */
    MG_ADDRESS_ALLOW_UTF8 = 1 << 0,
    /* Accept the null reverse-path "<>" (MAIL FROM only). */
    MG_ADDRESS_ALLOW_NULL = 1 << 1,
    /* Accept a bare local part: "postmaster" (RCPT TO:<postmaster>). */
    MG_ADDRESS_ALLOW_NO_DOMAIN = 1 << 2,
};

struct mg_address {
    const char *local;  /* "" for the null path */
    const char *domain; /* lower-cased; "" for the null path or no domain */
};

/* Parses a mailbox "local@domain" (no angle brackets) of exactly len bytes.
 * Strings in *addr_r are allocated from arena. Returns 0, or -1 with a
 * short reason in *error_r (static text). */
int mg_address_parse(const char *text, size_t len, unsigned flags,
                     struct mg_arena *arena, struct mg_address *addr_r,
                     const char **error_r);

/* Parses an SMTP path "<...>" at the start of text (RFC 5321 Path, with
 * an obsolete source route "@a,@b:" accepted and dropped). *consumed_r is
 * the number of bytes up to and including '>'. */
int mg_address_parse_path(const char *text, size_t len, unsigned flags,
                          struct mg_arena *arena, struct mg_address *addr_r,
                          size_t *consumed_r, const char **error_r);

/* Validates a domain name (LDH labels or an address literal in brackets). */
bool mg_address_domain_is_valid(const char *domain, size_t len, unsigned flags);

/* "local@domain" in the form to use on the wire (quoted when needed);
 * "" for the null path. */
char *mg_address_format(struct mg_arena *arena, const struct mg_address *addr);

/* Comparison key: lower-cased local@domain, written into the arena. */
char *mg_address_key(struct mg_arena *arena, const struct mg_address *addr);

/* Whether a local part has to be quoted in a path. */
bool mg_address_local_needs_quotes(const char *local, size_t len);

/* Sub-addressing: the length of the local part before the first delimiter
 * character ("user+tag" → 4 for delimiters "+"); len when there is none, or
 * when the delimiter is the first character (postmaster-style names like
 * "+foo" stay whole). */
size_t mg_address_base_local_len(const char *local, size_t len, const char *delimiters);

#endif
