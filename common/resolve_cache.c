#include "common/resolve_cache.h"

#include <stdlib.h>

#include "common/alloc.h"
#include "common/strmap.h"

struct mg_resolve_cache {
    struct mg_strmap *entries; /* address -> struct cache_entry */
    uint64_t ttl_ms;
    size_t max;
};

struct cache_entry {
    uint64_t expires_ms;
    size_t count;
    struct mg_auth_target *targets; /* addresses owned */
};

static void entry_free(struct cache_entry *e)
{
    for (size_t i = 0; i < e->count; i++)
        free((char *)e->targets[i].address);
    free(e->targets);
    free(e);
}

static int entry_free_cb(const char *key, void *value, void *ctx)
{
    (void)key;
    (void)ctx;
    entry_free(value);
    return 1;
}

static int entry_drop_expired_cb(const char *key, void *value, void *ctx)
{
    (void)key;
    struct cache_entry *e = value;
    if (e->expires_ms > *(const uint64_t *)ctx)
        return 0;
    entry_free(e);
    return 1;
}

struct mg_resolve_cache *mg_resolve_cache_new(uint64_t ttl_ms, size_t max)
{
    struct mg_resolve_cache *cache = mg_calloc(1, sizeof(*cache));
    cache->entries = mg_strmap_new();
    cache->ttl_ms = ttl_ms;
    cache->max = max;
    return cache;
}

void mg_resolve_cache_free(struct mg_resolve_cache **cache)
{
    struct mg_resolve_cache *c = *cache;
    if (c == NULL)
        return;
    mg_strmap_foreach(c->entries, entry_free_cb, NULL);
    mg_strmap_free(&c->entries);
    free(c);
    *cache = NULL;
}

bool mg_resolve_cache_get(struct mg_resolve_cache *cache, uint64_t now_ms, const char *address,
                          struct mg_auth_resolve_result *result_r)
{
    struct cache_entry *e = mg_strmap_get(cache->entries, address);
    if (e == NULL)
        return false;
    if (e->expires_ms <= now_ms) {
        mg_strmap_remove(cache->entries, address);
        entry_free(e);
        return false;
    }
    *result_r = (struct mg_auth_resolve_result){
        .status = MG_AUTH_OK,
        .targets = e->targets,
        .count = e->count,
        .reason = NULL,
    };
    return true;
}

void mg_resolve_cache_put(struct mg_resolve_cache *cache, uint64_t now_ms, const char *address,
                          const struct mg_auth_resolve_result *result)
{
    if (result->status != MG_AUTH_OK || result->count == 0)
        return;
    /* A fresh answer stays as it is: its lifetime does not grow with use
     * (a user disabled meanwhile would never be noticed), and result may
     * be that answer itself, from mg_resolve_cache_get. */
    struct cache_entry *fresh = mg_strmap_get(cache->entries, address);
    if (fresh != NULL && fresh->expires_ms > now_ms)
        return;
    for (size_t i = 0; i < result->count; i++) {
        if (result->targets[i].is_local && !result->targets[i].is_enabled)
            return;
    }
    if (mg_strmap_count(cache->entries) >= cache->max) {
        mg_strmap_foreach(cache->entries, entry_drop_expired_cb, &now_ms);
        if (mg_strmap_count(cache->entries) >= cache->max)
            return;
    }
    struct cache_entry *e = mg_calloc(1, sizeof(*e));
    e->expires_ms = now_ms + cache->ttl_ms;
    e->count = result->count;
    e->targets = mg_calloc(result->count, sizeof(*e->targets));
    for (size_t i = 0; i < result->count; i++) {
        e->targets[i] = result->targets[i];
        e->targets[i].address = mg_strdup(result->targets[i].address);
    }
    struct cache_entry *old = mg_strmap_set(cache->entries, address, e);
    if (old != NULL)
        entry_free(old);
}
