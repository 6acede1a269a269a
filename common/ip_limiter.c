#include "common/ip_limiter.h"

#include <stdbool.h>
#include <stdlib.h>

#include "common/alloc.h"
#include "common/strmap.h"

struct ip_entry {
    unsigned connections;
    unsigned failures;
    uint64_t window_start_ms;
};

/* Entries with failures but no connection stay until their window ends;
 * nothing would look at them again, so mg_ip_limiter_fail sweeps expired
 * ones whenever the map has doubled since the last sweep (amortised O(1)):
 * memory follows the addresses that failed within one window, not every
 * address that ever failed. */
#define IP_LIMITER_SWEEP_MIN 1024

struct mg_ip_limiter {
    struct mg_strmap *map;
    uint64_t window_ms;
    unsigned total;
    size_t sweep_at;
};

struct mg_ip_limiter *mg_ip_limiter_new(uint64_t failure_window_ms)
{
    struct mg_ip_limiter *lim = mg_calloc(1, sizeof(*lim));
    lim->map = mg_strmap_new();
    lim->window_ms = failure_window_ms;
    lim->sweep_at = IP_LIMITER_SWEEP_MIN;
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
    /* Only a connection that was counted is uncounted: the total stays
     * the sum of the per-address counts. */
    if (e == NULL || e->connections == 0)
        return;
    e->connections--;
    lim->total--;
    maybe_drop(lim, ip, e);
}

static bool window_expired(const struct mg_ip_limiter *lim, const struct ip_entry *e,
                           uint64_t now_ms)
{
    return now_ms - e->window_start_ms > lim->window_ms;
}

static void expire_window(struct mg_ip_limiter *lim, struct ip_entry *e, uint64_t now_ms)
{
    if (e->failures > 0 && window_expired(lim, e, now_ms))
        e->failures = 0;
}

struct sweep_ctx {
    struct mg_ip_limiter *lim;
    uint64_t now_ms;
};

static int sweep_entry(const char *key, void *value, void *ctx)
{
    struct sweep_ctx *sc = ctx;
    struct ip_entry *e = value;
    (void)key;
    expire_window(sc->lim, e, sc->now_ms);
    if (e->connections > 0 || e->failures > 0)
        return 0;
    free(e);
    return 1;
}

void mg_ip_limiter_fail(struct mg_ip_limiter *lim, const char *ip, uint64_t now_ms)
{
    if (mg_strmap_count(lim->map) >= lim->sweep_at) {
        struct sweep_ctx sc = { lim, now_ms };
        mg_strmap_foreach(lim->map, sweep_entry, &sc);
        size_t live = mg_strmap_count(lim->map);
        lim->sweep_at = live < IP_LIMITER_SWEEP_MIN / 2 ? IP_LIMITER_SWEEP_MIN : live * 2;
    }
    struct ip_entry *e = entry(lim, ip);
    expire_window(lim, e, now_ms);
    /* The window opens with the first failure, not at time 0 (monotonic
     * time is small on a freshly booted host). */
    if (e->failures == 0)
        e->window_start_ms = now_ms;
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

size_t mg_ip_limiter_count(const struct mg_ip_limiter *lim)
{
    return mg_strmap_count(lim->map);
}
