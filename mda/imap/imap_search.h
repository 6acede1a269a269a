/* SEARCH programs (RFC 3501 6.4.4): parsing into a tree and matching
 * messages. Keys on flags, sizes, dates and sets need only the index;
 * header and body keys need the message, which the matcher loads only
 * when such a key is reached (AND short-circuits), and only from the
 * thread pool. */
#ifndef MG_MDA_IMAP_SEARCH_H
#define MG_MDA_IMAP_SEARCH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "mda/imap/imap_parser.h"
#include "mda/imap/imap_seqset.h"
#include "mda/mime/mime_search.h"

struct mg_arena;
struct index_msg_rec;

enum search_key_type {
    SK_ALL,
    SK_AND,
    SK_OR,
    SK_NOT,
    SK_SEQSET,
    SK_UIDSET,
    SK_FLAGS_SET,     /* all of mask set */
    SK_FLAGS_UNSET,   /* all of mask clear */
    SK_KEYWORD,
    SK_UNKEYWORD,
    SK_NEW,
    SK_OLD,
    SK_RECENT,
    SK_LARGER,
    SK_SMALLER,
    SK_BEFORE,
    SK_ON,
    SK_SINCE,
    SK_SENTBEFORE,
    SK_SENTON,
    SK_SENTSINCE,
    SK_HEADER,        /* FROM, TO, CC, BCC, SUBJECT, HEADER */
    SK_BODY,
    SK_TEXT,
};

struct search_key {
    enum search_key_type type;
    struct search_key *children; /* AND: list; OR: two; NOT: one */
    size_t n_children;
    struct imap_seqset set;
    uint32_t flags;
    int keyword;                 /* keyword bit, -1: unknown keyword */
    uint64_t number;
    long days;
    const char *field;           /* header name */
    struct mime_search search;
};

/* Per-message facts the matcher needs. */
struct search_msg {
    uint32_t seq;
    uint32_t uid;
    uint32_t flags;
    uint64_t keywords;
    uint64_t size;
    int64_t internaldate;
    bool is_recent;
    /* Content, loaded on demand by the matcher (thread pool only). */
    int (*load)(void *ctx, const char **data_r, size_t *len_r);
    void *load_ctx;
};

/* Parses args[0..n) (after an optional CHARSET, handled by the caller).
 * keywords: the user's keyword names; max_seq / max_uid give '*'.
 * Returns 0, or -1 with a reason for BAD. */
int search_parse(struct mg_arena *arena, const struct imap_arg *args, size_t n,
                 char *const *keywords, unsigned keyword_count, struct search_key **root_r,
                 const char **error_r);
void search_free(struct search_key *root);
/* Whether the program needs message content. */
bool search_needs_content(const struct search_key *key);
/* Matches one message; max_seq and max_uid give '*'. */
bool search_match(struct search_key *key, struct search_msg *msg, uint32_t max_seq,
                  uint32_t max_uid);

#endif
