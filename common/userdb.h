/* The user directory: domains, users (with password hashes) and aliases,
 * kept in a Berkeley DB 5.3 Transactional Data Store environment.
 *
 * Several processes use one environment at once (mgadm while the auth
 * service runs), and every change is a transaction: a crash or kill -9 at any
 * point leaves the directory consistent, and the next open recovers it.
 * Within a process all functions are thread-safe (the auth service calls
 * them from worker threads).
 *
 * Names: domains are compared and stored lower-cased. Local parts are
 * compared case-insensitively (ASCII) and stored as given. Addresses are
 * validated with common/address.h; non-ASCII local parts are accepted
 * (SMTPUTF8).
 *
 * Errors: functions return 0 on success or a negative enum mg_userdb_status
 * and, where they take one, a reason in *error_r: static or thread-local
 * text, valid until the next userdb call on the same thread. Reasons are fit
 * to show to an operator ("user exists: demo@mailgenic.test"). */
#ifndef MG_COMMON_USERDB_H
#define MG_COMMON_USERDB_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct mg_userdb;

enum mg_userdb_status {
    MG_USERDB_OK = 0,
    MG_USERDB_ERROR = -1,     /* storage failure (disk, locks, corruption) */
    MG_USERDB_NOT_FOUND = -2, /* no such domain, user or alias */
    MG_USERDB_EXISTS = -3,    /* add of something already there */
    MG_USERDB_INVALID = -4,   /* malformed address, unknown domain, ... */
    MG_USERDB_NOT_LOCAL = -5, /* resolve: the domain is not ours */
};

enum mg_userdb_open_flags {
    /* Create the environment and databases when missing (mode 0700
     * directory, 0600 files). Without it a missing directory is an error. */
    MG_USERDB_CREATE = 1 << 0,
};

int mg_userdb_open(const char *path, unsigned flags, struct mg_userdb **db_r,
                   const char **error_r);
/* Checkpoints and closes; accepts NULL and *db == NULL; sets *db to NULL. */
void mg_userdb_close(struct mg_userdb **db);
/* Writes a checkpoint and removes log files no longer needed. The auth
 * service calls this periodically; mgadm at close.
 * It also cleans up after another process that died inside the directory
 * (BDB failchk: its locks are released, its transaction rolled back, or
 * the handles reopened with recovery), which frees threads waiting for
 * its locks: call it every few seconds, from a thread that is not itself
 * inside a userdb call.
 * Open the directory once per process and share the handle between
 * threads (BDB's DB_REGISTER tracks processes, not handles); a handle must
 * not be used across fork(). */
int mg_userdb_checkpoint(struct mg_userdb *db);

/* The reason for the last failure of a userdb call on this thread, for the
 * functions without error_r (the list walks, domain_exists, checkpoint);
 * "" when there was none. Same lifetime as *error_r texts. */
const char *mg_userdb_last_error(void);

/* --- domains --- */
int mg_userdb_domain_add(struct mg_userdb *db, const char *domain, const char **error_r);
/* Refuses (MG_USERDB_INVALID) while users or aliases of the domain exist. */
int mg_userdb_domain_del(struct mg_userdb *db, const char *domain, const char **error_r);
/* 1 local, 0 not, negative on error. domain in any case. */
int mg_userdb_domain_exists(struct mg_userdb *db, const char *domain);
/* Calls cb for each domain in order; cb returning non-zero stops the walk
 * and is returned. */
int mg_userdb_domain_list(struct mg_userdb *db,
                          int (*cb)(const char *domain, void *ctx), void *ctx);

/* --- users --- */
struct mg_user {
    char *address;       /* local part as given, domain lower-cased */
    char *password_hash; /* crypt(3) string */
    uint64_t quota_bytes;  /* 0: no limit */
    bool is_enabled;
    int64_t created;     /* seconds since the epoch */
};

/* Frees the strings of a struct filled by the functions below. */
void mg_user_clear(struct mg_user *user);

/* The domain must exist; the address must not be a user yet. The hash is
 * stored as given (see common/password.h). */
int mg_userdb_user_add(struct mg_userdb *db, const char *address,
                       const char *password_hash, uint64_t quota_bytes,
                       const char **error_r);
int mg_userdb_user_del(struct mg_userdb *db, const char *address, const char **error_r);
/* Looks up a user by address (case-insensitively), no alias expansion. */
int mg_userdb_user_get(struct mg_userdb *db, const char *address,
                       struct mg_user *user_r, const char **error_r);
int mg_userdb_user_set_password(struct mg_userdb *db, const char *address,
                                const char *password_hash, const char **error_r);
int mg_userdb_user_set_enabled(struct mg_userdb *db, const char *address,
                               bool is_enabled, const char **error_r);
int mg_userdb_user_set_quota(struct mg_userdb *db, const char *address,
                             uint64_t quota_bytes, const char **error_r);
/* Users of one domain (or of all, domain NULL) in order of domain, then
 * lower-cased local part. The struct is valid during the callback only. */
int mg_userdb_user_list(struct mg_userdb *db, const char *domain,
                        int (*cb)(const struct mg_user *user, void *ctx), void *ctx);

/* --- aliases --- */
/* address is "local@domain" or "@domain" (catch-all); the domain must be
 * local. Targets are addresses, local or remote; adding to an existing
 * alias is MG_USERDB_EXISTS (delete and add again to change it). At most
 * MG_USERDB_ALIAS_TARGETS_MAX targets. */
#define MG_USERDB_ALIAS_TARGETS_MAX 1000
int mg_userdb_alias_add(struct mg_userdb *db, const char *address,
                        const char *const *targets, size_t n_targets,
                        const char **error_r);
int mg_userdb_alias_del(struct mg_userdb *db, const char *address, const char **error_r);
int mg_userdb_alias_list(struct mg_userdb *db, const char *domain,
                         int (*cb)(const char *address, const char *const *targets,
                                   size_t n_targets, void *ctx),
                         void *ctx);

/* --- resolution: where does mail to an address go? ---
 *
 * Order, as in Postfix's virtual alias maps: an alias for the exact
 * address; a user with that address; then, when the local part carries a
 * sub-address (user+tag with delimiters "+"), the same two for the base
 * address; then the domain's catch-all alias. Alias targets expand again
 * (depth at most MG_USERDB_RESOLVE_DEPTH, loops cut, duplicates dropped);
 * a local target that leads nowhere is dropped. Last, postmaster@ a local
 * domain that none of these takes reaches the domain's oldest enabled user
 * (RFC 5321 4.5.1: every mail domain has a postmaster). */
#define MG_USERDB_RESOLVE_DEPTH 8
#define MG_USERDB_RESOLVE_MAX 1000

struct mg_userdb_target {
    char *address;       /* final address: a local user, or a remote address */
    bool is_local;       /* a user of this directory */
    bool is_enabled;     /* local only */
    uint64_t quota_bytes; /* local only; 0: no limit */
};

struct mg_userdb_resolution {
    struct mg_userdb_target *targets;
    size_t n_targets;
};

void mg_userdb_resolution_clear(struct mg_userdb_resolution *res);

/* Returns 0 with at least one target, MG_USERDB_NOT_FOUND (unknown in a
 * local domain), MG_USERDB_NOT_LOCAL, MG_USERDB_INVALID (malformed) or
 * MG_USERDB_ERROR. delimiters: the sub-address separators ("+", or "" to
 * turn sub-addressing off). */
int mg_userdb_resolve(struct mg_userdb *db, const char *address, const char *delimiters,
                      struct mg_userdb_resolution *res_r, const char **error_r);

#endif
