/* RFC 5322 address lists (From, To, Cc, ...) as IMAP ENVELOPE needs them.
 *
 * The result mirrors IMAP's address structure: a list where a group
 * "name: a, b;" is a start marker (mailbox = group name, domain = NULL),
 * its members, and an end marker (every field NULL). Names are the raw
 * phrase (quoted strings unescaped, words joined with single spaces, RFC
 * 2047 words not decoded: ENVELOPE sends them raw; decode with
 * mime_encword_decode() for display or SEARCH).
 *
 * Obsolete and broken syntax is tolerated the way Dovecot does it
 * (lib-mail/message-address.c): routes "<@a,@b:user@host>", a comment
 * after an addr-spec becomes the display name ("user@host (Name)"), a bare
 * word is a mailbox without domain, unparseable input is cut at the first
 * error. With MIME_ADDRESS_FLAG_FILL_MISSING the holes are filled the way
 * Dovecot shows them in ENVELOPE: "MISSING_MAILBOX", "MISSING_DOMAIN",
 * "SYNTAX_ERROR", "INVALID_ROUTE". */
#ifndef MG_MDA_MIME_ADDRESS_H
#define MG_MDA_MIME_ADDRESS_H

#include <stdbool.h>
#include <stddef.h>

#include "common/arena.h"

/* Addresses kept per header; the rest is ignored. */
#define MIME_ADDRESS_MAX 10000

enum mime_address_flags {
    MIME_ADDRESS_FLAG_FILL_MISSING = 1 << 0,
};

struct mime_address {
    struct mime_address *next;
    const char *name;    /* display name or NULL */
    const char *route;   /* obs-route ("@a,@b") or NULL */
    const char *mailbox; /* local part; group name; NULL at group end */
    const char *domain;  /* NULL for group markers */
    bool invalid_syntax;
};

/* Parses a raw header value (folding allowed). Returns NULL for an empty
 * list. Strings are allocated from arena (NUL bytes become 0x80). */
struct mime_address *mime_address_parse(struct mg_arena *arena,
                                        const char *value, size_t len,
                                        unsigned int flags);

#endif
