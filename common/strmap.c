#include "common/strmap.h"

#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include "common/alloc.h"

struct strmap_entry {
    struct strmap_entry *next;
    uint64_t hash;
    void *value;
    char key[];
};

struct mg_strmap {
    struct strmap_entry **buckets;
    size_t nbuckets;
    size_t count;
};

/* FNV-1a, seeded per process so a peer cannot pick colliding keys (IP
 * addresses and user names come from the network). */
static uint64_t strmap_seed;

/* The process's seed, made on first use. Maps live on one thread each, but
 * the seed is shared: threads meeting here first must agree on one (the
 * first to store it wins), or a map would hash its keys with two seeds
 * and lose some. */
static uint64_t strmap_seed_get(void)
{
    uint64_t seed = __atomic_load_n(&strmap_seed, __ATOMIC_ACQUIRE);
    if (seed != 0)
        return seed;
    uint64_t fresh = 0;
    if (getrandom(&fresh, sizeof(fresh), 0) != (ssize_t)sizeof(fresh))
        fresh = (uint64_t)(uintptr_t)&strmap_seed;
    fresh |= 1;
    if (__atomic_compare_exchange_n(&strmap_seed, &seed, fresh, false, __ATOMIC_ACQ_REL,
                                    __ATOMIC_ACQUIRE))
        return fresh;
    return seed; /* another thread's, stored meanwhile */
}

static uint64_t strmap_hash(const char *s)
{
    uint64_t h = 14695981039346656037ull ^ strmap_seed_get();
    for (; *s != '\0'; s++) {
        h ^= (unsigned char)*s;
        h *= 1099511628211ull;
    }
    return h ^ (h >> 29);
}

struct mg_strmap *mg_strmap_new(void)
{
    struct mg_strmap *m = mg_calloc(1, sizeof(*m));
    m->nbuckets = 16;
    m->buckets = mg_calloc(m->nbuckets, sizeof(*m->buckets));
    return m;
}

void mg_strmap_free(struct mg_strmap **map)
{
    if (*map == NULL)
        return;
    for (size_t i = 0; i < (*map)->nbuckets; i++) {
        struct strmap_entry *e = (*map)->buckets[i];
        while (e != NULL) {
            struct strmap_entry *next = e->next;
            free(e);
            e = next;
        }
    }
    free((*map)->buckets);
    free(*map);
    *map = NULL;
}

static struct strmap_entry **strmap_find(const struct mg_strmap *m, const char *key, uint64_t h)
{
    struct strmap_entry **pp = &m->buckets[h & (m->nbuckets - 1)];
    while (*pp != NULL && ((*pp)->hash != h || strcmp((*pp)->key, key) != 0))
        pp = &(*pp)->next;
    return pp;
}

void *mg_strmap_get(const struct mg_strmap *map, const char *key)
{
    struct strmap_entry **pp = strmap_find(map, key, strmap_hash(key));
    return *pp != NULL ? (*pp)->value : NULL;
}

static void strmap_grow(struct mg_strmap *m)
{
    size_t n = m->nbuckets * 2;
    struct strmap_entry **b = mg_calloc(n, sizeof(*b));
    for (size_t i = 0; i < m->nbuckets; i++) {
        struct strmap_entry *e = m->buckets[i];
        while (e != NULL) {
            struct strmap_entry *next = e->next;
            e->next = b[e->hash & (n - 1)];
            b[e->hash & (n - 1)] = e;
            e = next;
        }
    }
    free(m->buckets);
    m->buckets = b;
    m->nbuckets = n;
}

void *mg_strmap_set(struct mg_strmap *map, const char *key, void *value)
{
    uint64_t h = strmap_hash(key);
    struct strmap_entry **pp = strmap_find(map, key, h);
    if (*pp != NULL) {
        void *old = (*pp)->value;
        (*pp)->value = value;
        return old;
    }
    size_t klen = strlen(key);
    struct strmap_entry *e = mg_malloc(sizeof(*e) + klen + 1);
    memcpy(e->key, key, klen + 1);
    e->hash = h;
    e->value = value;
    e->next = NULL;
    *pp = e;
    if (++map->count > map->nbuckets)
        strmap_grow(map);
    return NULL;
}

void *mg_strmap_remove(struct mg_strmap *map, const char *key)
{
    struct strmap_entry **pp = strmap_find(map, key, strmap_hash(key));
    if (*pp == NULL)
        return NULL;
    struct strmap_entry *e = *pp;
    void *value = e->value;
    *pp = e->next;
    free(e);
    map->count--;
    return value;
}

size_t mg_strmap_count(const struct mg_strmap *map)
{
    return map->count;
}

void mg_strmap_foreach(struct mg_strmap *map, int (*cb)(const char *key, void *value, void *ctx),
                       void *ctx)
{
    for (size_t i = 0; i < map->nbuckets; i++) {
        struct strmap_entry **pp = &map->buckets[i];
        while (*pp != NULL) {
            struct strmap_entry *e = *pp;
            if (cb(e->key, e->value, ctx) == 1) {
                *pp = e->next;
                free(e);
                map->count--;
            } else {
                pp = &e->next;
            }
        }
    }
}
