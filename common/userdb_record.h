/* Names, keys and stored records of the user directory: the part of it
 * that does not touch storage (internal to common/userdb.c; the unit tests
 * use it to plant damaged records).
 *
 * Keys are byte strings compared by the B-tree's default memcmp order:
 *   domains: lower-cased domain
 *   users:   lower-cased domain, NUL, lower-cased local part
 *   aliases: the same; the catch-all "@domain" has an empty local part
 * so all users and aliases of a domain form one contiguous key range
 * starting at "domain\0".
 *
 * Values are versioned records with explicit byte order (big-endian),
 * never C structs, so that a directory moves between machines and a
 * damaged value is detected instead of read past its end:
 *   domain: u8 version, u8 flags, i64 created
 *   user:   u8 version, u8 flags, u64 quota, i64 created,
 *           u16 length + address as given, u16 length + password hash
 *   alias:  u8 version, u8 flags, u16 length + address as given,
 *           u16 count, count x (u16 length + target address)
 * Strings are not NUL-terminated on disk; decoders reject NUL bytes,
 * invalid UTF-8, lengths beyond the limits below and trailing bytes. */
#ifndef MG_COMMON_USERDB_RECORD_H
#define MG_COMMON_USERDB_RECORD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct mg_arena;
struct mg_buf;

#define MG__USERDB_RECORD_VERSION 1
/* Longest password hash stored (crypt(3) output is at most 384 bytes). */
#define MG__USERDB_HASH_MAX 512

/* User record flags. */
#define MG__USERDB_USER_DISABLED 0x01

struct mg__userdb_domain_rec {
    int64_t created;
};

struct mg__userdb_user_rec {
    bool is_enabled;
    uint64_t quota_bytes;
    int64_t created;
    const char *address; /* as given, domain lower-cased */
    const char *hash;
};

struct mg__userdb_alias_rec {
    const char *address; /* as given; "@domain" for a catch-all */
    size_t n_targets;
    const char **targets;
};

/* A user or alias address, parsed and normalised. */
struct mg__userdb_name {
    const char *address; /* local part as given, domain lower-cased;
                          * "@domain" for a catch-all */
    const char *local;   /* "" for a catch-all */
    const char *domain;  /* lower-cased */
    const char *key;     /* "domain\0local" lower-cased */
    size_t key_len;
};

/* Parses "local@domain" (with MG_ADDRESS_ALLOW_UTF8), or also "@domain"
 * when is_alias. Strings from arena. 0, or -1 with a static reason. */
int mg__userdb_record_name_parse(struct mg_arena *arena, const char *text, bool is_alias,
                                 struct mg__userdb_name *name_r, const char **error_r);
/* Validates and lower-cases a domain name; 0 or -1 with a static reason. */
int mg__userdb_record_domain_parse(struct mg_arena *arena, const char *text,
                                   const char **domain_r, const char **error_r);
/* A password hash fit to store: 1..MG__USERDB_HASH_MAX printable ASCII
 * characters without spaces. */
bool mg__userdb_record_hash_is_valid(const char *hash);
/* "local@domain" (or "@domain") for a users/aliases key, a domain for a
 * domains key; escaped as for the log, for messages about damaged records. */
const char *mg__userdb_record_key_text(struct mg_arena *arena, const void *key, size_t len);

/* The key "domain\0local" with local lower-cased (ASCII), allocated from
 * arena; its length (it holds a NUL) in *len_r. */
char *mg__userdb_record_key(struct mg_arena *arena, const char *domain, const char *local,
                            size_t local_len, size_t *len_r);

void mg__userdb_record_domain_encode(struct mg_buf *out, const struct mg__userdb_domain_rec *rec);
void mg__userdb_record_user_encode(struct mg_buf *out, const struct mg__userdb_user_rec *rec);
void mg__userdb_record_alias_encode(struct mg_buf *out, const struct mg__userdb_alias_rec *rec);

/* Decoders: 0, or -1 with a static reason in *error_r. Strings (and the
 * targets array) are NUL-terminated copies allocated from arena. */
int mg__userdb_record_domain_decode(const void *data, size_t len,
                                    struct mg__userdb_domain_rec *rec_r, const char **error_r);
int mg__userdb_record_user_decode(const void *data, size_t len, struct mg_arena *arena,
                                  struct mg__userdb_user_rec *rec_r, const char **error_r);
/* mg__userdb_record_user_decode() that also checks that the record
 * belongs to its key (the address lower-cases to the key). */
int mg__userdb_record_user_decode_key(const void *key, size_t key_len, const void *data,
                                      size_t len, struct mg_arena *arena,
                                      struct mg__userdb_user_rec *rec_r, const char **error_r);
int mg__userdb_record_alias_decode(const void *data, size_t len, struct mg_arena *arena,
                                   struct mg__userdb_alias_rec *rec_r, const char **error_r);

#endif
