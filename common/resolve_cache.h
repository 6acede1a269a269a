/* Recent recipient resolutions, so that an address seen again within a few
 * seconds is not asked of the auth service again: an MTA delivering a
 * burst (or a client sending one) names the same addresses over and over,
 * and each question is a round trip through mgauthd.
 *
 * Only answers that lead to delivery are kept (status MG_AUTH_OK and no
 * local target disabled): a refusal is decided again next time, so a user
 * created meanwhile is never refused; a user disabled, deleted or given
 * another quota meanwhile is served as before for at most the cache's
 * lifetime, as if the message had come a moment earlier.
 *
 * Not thread-safe: one per event loop. */
#ifndef MG_COMMON_RESOLVE_CACHE_H
#define MG_COMMON_RESOLVE_CACHE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/auth_client.h"

struct mg_resolve_cache;

/* Answers are kept for ttl_ms, at most max of them. */
struct mg_resolve_cache *mg_resolve_cache_new(uint64_t ttl_ms, size_t max);
/* Accepts NULL, sets *cache to NULL. */
void mg_resolve_cache_free(struct mg_resolve_cache **cache);

/* The answer kept for address at now_ms (status MG_AUTH_OK), in
 * *result_r, whose strings and targets stay valid until the next call on
 * the cache. Returns false when there is none. */
bool mg_resolve_cache_get(struct mg_resolve_cache *cache, uint64_t now_ms, const char *address,
                          struct mg_auth_resolve_result *result_r);
/* Keeps a copy of result when it leads to delivery (see above); ignores
 * it otherwise, when a fresh answer for address is kept already (its
 * lifetime is not extended: result may be that answer, from
 * mg_resolve_cache_get), and when the cache is full of fresh answers. */
void mg_resolve_cache_put(struct mg_resolve_cache *cache, uint64_t now_ms, const char *address,
                          const struct mg_auth_resolve_result *result);

#endif
