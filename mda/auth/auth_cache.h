/* Remembered password checks, so that a client opening five connections
 * pays for one yescrypt. Entries are keyed by HMAC-SHA-256 (with a secret
 * made at start) of user and password, never the password itself, and
 * hold the stored hash the check was made against: the caller accepts a
 * hit only while the user's current hash is still that one, so a
 * password change invalidates at once. Thread-safe. */
#ifndef MG_MDA_AUTH_CACHE_H
#define MG_MDA_AUTH_CACHE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define AUTH_CACHE_MAX_ENTRIES 10000

struct auth_cache;

/* ttl_ms 0: a cache that never remembers anything. */
struct auth_cache *auth_cache_new(uint64_t ttl_ms);
void auth_cache_free(struct auth_cache **cache);
/* Whether (user, password) was verified against stored_hash recently. */
bool auth_cache_check(struct auth_cache *cache, const char *user, const char *password,
                      const char *stored_hash);
void auth_cache_add(struct auth_cache *cache, const char *user, const char *password,
                    const char *stored_hash);

#endif
