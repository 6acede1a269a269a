#include "common/ip_limiter.h"

#include <stdlib.h>

#include "common/alloc.h"
#include "common/strmap.h"

struct ip_entry {
    unsigned connections;
    unsigned failures;
    uint64_t window_start_ms;
};

struct mg_ip_limiter {
    struct mg_strmap *map;
    uint64_t window_ms;
    unsigned total;
};

struct mg_ip_limiter *mg_ip_limiter_new(uint64_t failure_window_ms)
{
    struct mg_ip_limiter *lim = mg_calloc(1, sizeof(*lim));
    lim->map = mg_strmap_new();
    lim->window_ms = failure_window_ms;
    return lim;
}

static int free_entry(const char *key, void *value, void *ctx)
{
    (void)key;
    (void)ctx;
    free(value);
    return 1;
}

void mg_ip_limiter_free(struct mg_ip_limiter **lim)
{
    if (*lim == NULL)
        return;
    mg_strmap_foreach((*lim)->map, free_entry, NULL);
    mg_strmap_free(&(*lim)->map);
    free(*lim);
    *lim = NULL;
}

static struct ip_entry *entry(struct mg_ip_limiter *lim, const char *ip)
{
    struct ip_entry *e = mg_strmap_get(lim->map, ip);
    if (e == NULL) {
        e = mg_calloc(1, sizeof(*e));
        mg_strmap_set(lim->map, ip, e);
    }
    return e;
}

static void maybe_drop(struct mg_ip_limiter *lim, const char *ip, struct ip_entry *e)
{
    if (e->connections == 0 && e->failures == 0)
        free(mg_strmap_remove(lim->map, ip));
}

unsigned mg_ip_limiter_connect(struct mg_ip_limiter *lim, const char *ip)
{
    lim->total++;
    return ++entry(lim, ip)->connections;
}

void mg_ip_limiter_disconnect(struct mg_ip_limiter *lim, const char *ip)
{
    struct ip_entry *e = mg_strmap_get(lim->map, ip);
    if (lim->total > 0)
        lim->total--;
    if (e == NULL)
        return;
    if (e->connections > 0)
        e->connections--;
    maybe_drop(lim, ip, e);
}

static void expire_window(struct mg_ip_limiter *lim, struct ip_entry *e, uint64_t now_ms)
{
    if (now_ms - e->window_start_ms > lim->window_ms) {
        e->window_start_ms = now_ms;
        e->failures = 0;
    }
}

void mg_ip_limiter_fail(struct mg_ip_limiter *lim, const char *ip, uint64_t now_ms)
{
    struct ip_entry *e = entry(lim, ip);
    expire_window(lim, e, now_ms);
    e->failures++;
}

unsigned mg_ip_limiter_failures(struct mg_ip_limiter *lim, const char *ip, uint64_t now_ms)
{
    struct ip_entry *e = mg_strmap_get(lim->map, ip);
    if (e == NULL)
        return 0;
    expire_window(lim, e, now_ms);
    unsigned n = e->failures;
    maybe_drop(lim, ip, e);
    return n;
}

unsigned mg_ip_limiter_total(const struct mg_ip_limiter *lim)
{
    return lim->total;
}
