#include "mda/auth/auth_cache.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/alloc.h"
#include "common/password.h"

#define KEY_LEN 32

struct cache_entry {
    unsigned char key[KEY_LEN];
    char *hash;
    uint64_t expires_ms;
    bool is_used;
};

struct auth_cache {
    pthread_mutex_t lock;
    unsigned char secret[32];
    uint64_t ttl_ms;
    struct cache_entry *entries; /* open addressing by key */
    size_t size;
};

static uint64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

struct auth_cache *auth_cache_new(uint64_t ttl_ms)
{
    struct auth_cache *c = mg_calloc(1, sizeof(*c));
    pthread_mutex_init(&c->lock, NULL);
    c->ttl_ms = ttl_ms;
    if (RAND_bytes(c->secret, sizeof(c->secret)) != 1)
        c->ttl_ms = 0; /* no secret, no cache */
    c->size = AUTH_CACHE_MAX_ENTRIES * 2;
    c->entries = mg_calloc(c->size, sizeof(*c->entries));
    return c;
}

void auth_cache_free(struct auth_cache **cache)
{
    struct auth_cache *c = *cache;
    if (c == NULL)
        return;
    for (size_t i = 0; i < c->size; i++)
        free(c->entries[i].hash);
    free(c->entries);
    OPENSSL_cleanse(c->secret, sizeof(c->secret));
    pthread_mutex_destroy(&c->lock);
    free(c);
    *cache = NULL;
}

static void cache_key(struct auth_cache *c, const char *user, const char *password,
                      unsigned char key[KEY_LEN])
{
    /* user NUL password: the NUL keeps ("ab","c") and ("a","bc") apart. */
    size_t ul = strlen(user), pl = strlen(password);
    unsigned char *msg = mg_malloc(ul + pl + 1);
    memcpy(msg, user, ul);
    msg[ul] = '\0';
    memcpy(msg + ul + 1, password, pl);
    unsigned int len = KEY_LEN;
    HMAC(EVP_sha256(), c->secret, sizeof(c->secret), msg, ul + pl + 1, key, &len);
    mg_password_wipe(msg, ul + pl + 1);
    free(msg);
}

static size_t slot_of(const struct auth_cache *c, const unsigned char key[KEY_LEN])
{
    uint64_t h;
    memcpy(&h, key, sizeof(h));
    return (size_t)(h % c->size);
}

bool auth_cache_check(struct auth_cache *c, const char *user, const char *password,
                      const char *stored_hash)
{
    if (c->ttl_ms == 0)
        return false;
    unsigned char key[KEY_LEN];
    cache_key(c, user, password, key);
    uint64_t now = now_ms();
    bool hit = false;
    pthread_mutex_lock(&c->lock);
    struct cache_entry *e = &c->entries[slot_of(c, key)];
    if (e->is_used && CRYPTO_memcmp(e->key, key, KEY_LEN) == 0 && now < e->expires_ms &&
        strcmp(e->hash, stored_hash) == 0)
        hit = true;
    pthread_mutex_unlock(&c->lock);
    OPENSSL_cleanse(key, sizeof(key));
    return hit;
}

void auth_cache_add(struct auth_cache *c, const char *user, const char *password,
                    const char *stored_hash)
{
    if (c->ttl_ms == 0)
        return;
    unsigned char key[KEY_LEN];
    cache_key(c, user, password, key);
    pthread_mutex_lock(&c->lock);
    /* One entry per slot: a collision evicts, which only costs a
     * yescrypt later. */
    struct cache_entry *e = &c->entries[slot_of(c, key)];
    free(e->hash);
    memcpy(e->key, key, KEY_LEN);
    e->hash = mg_strdup(stored_hash);
    e->expires_ms = now_ms() + c->ttl_ms;
    e->is_used = true;
    pthread_mutex_unlock(&c->lock);
    OPENSSL_cleanse(key, sizeof(key));
}
