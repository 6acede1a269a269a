#include "mda/store/index.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "common/alloc.h"
#include "common/buf.h"
#include "common/log.h"
#include "common/strmap.h"

#define RECORD_VERSION 1
/* Longest key: prefix byte and a mailbox name (MAILBOX_NAME_MAX). */
#define MAILBOX_KEY_MAX 1024
/* Handles without references stay open this long: a user's next command
 * or delivery usually follows soon. */
#define USER_IDLE_SECONDS 300

struct index_env {
    DB_ENV *dbenv;
    char *dir;
    pthread_mutex_t lock; /* guards users */
    struct mg_strmap *users;
};

struct index_user_slot {
    struct index_user user;
    time_t last_used;
    pthread_mutex_t open_lock;
};

/* ---- encoding ---- */

static void put_u8(struct mg_buf *b, uint8_t v)
{
    mg_buf_append_byte(b, (char)v);
}

static void put_u32(struct mg_buf *b, uint32_t v)
{
    unsigned char p[4] = { (unsigned char)(v >> 24), (unsigned char)(v >> 16),
                           (unsigned char)(v >> 8), (unsigned char)v };
    mg_buf_append(b, p, 4);
}

static void put_u64(struct mg_buf *b, uint64_t v)
{
    put_u32(b, (uint32_t)(v >> 32));
    put_u32(b, (uint32_t)v);
}

struct reader {
    const unsigned char *p;
    size_t left;
    bool is_bad;
};

static uint8_t get_u8(struct reader *r)
{
    if (r->left < 1) {
        r->is_bad = true;
        return 0;
    }
    r->left--;
    return *r->p++;
}

static uint32_t get_u32(struct reader *r)
{
    if (r->left < 4) {
        r->is_bad = true;
        r->left = 0;
        return 0;
    }
    uint32_t v = (uint32_t)r->p[0] << 24 | (uint32_t)r->p[1] << 16 | (uint32_t)r->p[2] << 8 | r->p[3];
    r->p += 4;
    r->left -= 4;
    return v;
}

static uint64_t get_u64(struct reader *r)
{
    uint64_t hi = get_u32(r);
    return hi << 32 | get_u32(r);
}

static const unsigned char *get_bytes(struct reader *r, size_t n)
{
    if (r->left < n) {
        r->is_bad = true;
        r->left = 0;
        return NULL;
    }
    const unsigned char *p = r->p;
    r->p += n;
    r->left -= n;
    return p;
}

static void key_id(unsigned char *k, char prefix, uint32_t id)
{
    k[0] = (unsigned char)prefix;
    k[1] = (unsigned char)(id >> 24);
    k[2] = (unsigned char)(id >> 16);
    k[3] = (unsigned char)(id >> 8);
    k[4] = (unsigned char)id;
}

static void key_id_uid(unsigned char k[9], char prefix, uint32_t id, uint32_t uid)
{
    key_id(k, prefix, id);
    k[5] = (unsigned char)(uid >> 24);
    k[6] = (unsigned char)(uid >> 16);
    k[7] = (unsigned char)(uid >> 8);
    k[8] = (unsigned char)uid;
}

static void key_id_modseq_uid(unsigned char k[17], char prefix, uint32_t id, uint64_t modseq,
                              uint32_t uid)
{
    key_id(k, prefix, id);
    for (int i = 0; i < 8; i++)
        k[5 + i] = (unsigned char)(modseq >> (56 - 8 * i));
    k[13] = (unsigned char)(uid >> 24);
    k[14] = (unsigned char)(uid >> 16);
    k[15] = (unsigned char)(uid >> 8);
    k[16] = (unsigned char)uid;
}

static uint32_t be32(const unsigned char *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static uint64_t be64(const unsigned char *p)
{
    return (uint64_t)be32(p) << 32 | be32(p + 4);
}

/* ---- low-level get/put ---- */

static int db_get(DB *db, DB_TXN *txn, const void *key, size_t klen, bool for_update,
                  struct mg_buf *out)
{
    DBT k = { .data = (void *)key, .size = (u_int32_t)klen };
    DBT d = { .flags = DB_DBT_MALLOC };
    int r = db->get(db, txn, &k, &d, for_update ? DB_RMW : 0);
    if (r != 0)
        return r;
    mg_buf_reset(out);
    mg_buf_append(out, d.data, d.size);
    free(d.data);
    return 0;
}

static int db_put(DB *db, DB_TXN *txn, const void *key, size_t klen, const void *data,
                  size_t dlen)
{
    DBT k = { .data = (void *)key, .size = (u_int32_t)klen };
    DBT d = { .data = (void *)data, .size = (u_int32_t)dlen };
    return db->put(db, txn, &k, &d, 0);
}

static int db_del(DB *db, DB_TXN *txn, const void *key, size_t klen)
{
    DBT k = { .data = (void *)key, .size = (u_int32_t)klen };
    int r = db->del(db, txn, &k, 0);
    return r == DB_NOTFOUND ? 0 : r;
}

/* ---- environment ---- */

static void index_errcall(const DB_ENV *env, const char *prefix, const char *msg)
{
    (void)env;
    (void)prefix;
    mg_log_error("index", "berkeley-db: %s", msg);
}

int index_env_open(const char *dir, uint64_t cache_bytes, struct index_env **env_r,
                   char **error_r)
{
    if (mkdir(dir, 0700) != 0 && errno != EEXIST) {
        *error_r = mg_asprintf("cannot create %s: %s", dir, strerror(errno));
        return -1;
    }
    DB_ENV *dbenv;
    int r = db_env_create(&dbenv, 0);
    if (r != 0) {
        *error_r = mg_asprintf("db_env_create: %s", db_strerror(r));
        return -1;
    }
    dbenv->set_errcall(dbenv, index_errcall);
    if (cache_bytes == 0)
        cache_bytes = INDEX_CACHE_DEFAULT;
    /* A cache that holds the working set: once it is full, every page
     * read has to evict one first, and with multi-version readers that
     * search dominates the CPU time of a delivery. */
    dbenv->set_cachesize(dbenv, (u_int32_t)(cache_bytes >> 30), (u_int32_t)(cache_bytes & ((1u << 30) - 1)), 1);
    dbenv->set_lk_detect(dbenv, DB_LOCK_DEFAULT);
    /* Every open user database and every snapshot reader needs lock
     * objects and transaction slots; defaults are sized for a handful.
     * These are limits: Berkeley DB allocates lock structures as they are
     * used. */
    dbenv->set_lk_max_lockers(dbenv, 20000);
    dbenv->set_lk_max_locks(dbenv, 200000);
    dbenv->set_lk_max_objects(dbenv, 200000);
    /* The object hash table is allocated whole, and every lock request
     * touches a random bucket of it: sized for the limit above (262,147
     * buckets, 4 MiB) it made each process map megabytes of it. A few
     * thousand objects are locked at a time at most. */
    dbenv->set_lk_tablesize(dbenv, 16381);
    dbenv->set_tx_max(dbenv, 2000);
    dbenv->set_lg_bsize(dbenv, 2u << 20);
    dbenv->set_lg_max(dbenv, 16u << 20);
    dbenv->set_lg_regionmax(dbenv, 4u << 20);
    dbenv->log_set_config(dbenv, DB_LOG_AUTO_REMOVE, 1);
    r = dbenv->open(dbenv, dir,
                    DB_CREATE | DB_INIT_TXN | DB_INIT_LOCK | DB_INIT_LOG | DB_INIT_MPOOL |
                        DB_THREAD | DB_REGISTER | DB_RECOVER,
                    0600);
    if (r != 0) {
        *error_r = mg_asprintf("cannot open the index environment %s: %s", dir, db_strerror(r));
        dbenv->close(dbenv, 0);
        return -1;
    }
    struct index_env *env = mg_calloc(1, sizeof(*env));
    env->dbenv = dbenv;
    env->dir = mg_strdup(dir);
    pthread_mutex_init(&env->lock, NULL);
    env->users = mg_strmap_new();
    *env_r = env;
    return 0;
}

static int close_user_cb(const char *key, void *value, void *ctx)
{
    (void)key;
    (void)ctx;
    struct index_user_slot *slot = value;
    if (slot->user.db != NULL)
        slot->user.db->close(slot->user.db, 0);
    free(slot->user.address);
    free(slot->user.file);
    free(slot->user.synced);
    pthread_mutex_destroy(&slot->open_lock);
    pthread_mutex_destroy(&slot->user.verify_lock);
    pthread_mutex_destroy(&slot->user.subscriptions_lock);
    pthread_mutex_destroy(&slot->user.synced_lock);
    free(slot);
    return 1;
}

void index_env_close(struct index_env **env)
{
    if (*env == NULL)
        return;
    index_env_clear_synced(*env);
    mg_strmap_foreach((*env)->users, close_user_cb, NULL);
    mg_strmap_free(&(*env)->users);
    (*env)->dbenv->txn_checkpoint((*env)->dbenv, 0, 0, 0);
    (*env)->dbenv->close((*env)->dbenv, 0);
    pthread_mutex_destroy(&(*env)->lock);
    free((*env)->dir);
    free(*env);
    *env = NULL;
}

DB_ENV *index_env_dbenv(struct index_env *env)
{
    return env->dbenv;
}

int index_env_checkpoint(struct index_env *env)
{
    int r = env->dbenv->txn_checkpoint(env->dbenv, 0, 0, 0);
    if (r == 0) {
        /* DB_LOG_AUTO_REMOVE drops logs at checkpoints; this call makes
         * sure of it even when no transaction ran since. */
        char **list = NULL;
        if (env->dbenv->log_archive(env->dbenv, &list, DB_ARCH_REMOVE) == 0)
            free(list);
    }
    return r;
}

/* File name of a user's database: the address with anything outside a
 * safe set as %XX, so no name can leave the directory. */
static char *user_file_name(const char *address)
{
    struct mg_buf b = MG_BUF_INIT;
    for (const char *p = address; *p != '\0'; p++) {
        unsigned char c = (unsigned char)*p;
        bool safe = (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' || c == '-' ||
                    c == '+' || c == '@' || (c == '.' && p != address);
        if (safe)
            mg_buf_append_byte(&b, (char)c);
        else
            mg_buf_printf(&b, "%%%02X", c);
    }
    mg_buf_append_str(&b, ".db");
    return mg_buf_steal(&b, NULL);
}

static int user_db_open(struct index_env *env, struct index_user *u, char **error_r)
{
    DB *db;
    int r = db_create(&db, env->dbenv, 0);
    if (r != 0) {
        *error_r = mg_asprintf("db_create: %s", db_strerror(r));
        return -1;
    }
    r = db->open(db, NULL, u->file, NULL, DB_BTREE,
                 DB_CREATE | DB_THREAD | DB_MULTIVERSION | DB_AUTO_COMMIT, 0600);
    if (r != 0) {
        *error_r = mg_asprintf("cannot open index %s: %s", u->file, db_strerror(r));
        db->close(db, 0);
        return -1;
    }
    u->db = db;
    return 0;
}

int index_env_user(struct index_env *env, const char *address, struct index_user **user_r,
                   char **error_r)
{
    pthread_mutex_lock(&env->lock);
    struct index_user_slot *slot = mg_strmap_get(env->users, address);
    if (slot == NULL) {
        slot = mg_calloc(1, sizeof(*slot));
        slot->user.address = mg_strdup(address);
        slot->user.file = user_file_name(address);
        pthread_mutex_init(&slot->open_lock, NULL);
        pthread_mutex_init(&slot->user.verify_lock, NULL);
        pthread_mutex_init(&slot->user.subscriptions_lock, NULL);
        pthread_mutex_init(&slot->user.synced_lock, NULL);
        mg_strmap_set(env->users, address, slot);
    }
    slot->user.refcount++;
    slot->last_used = time(NULL);
    pthread_mutex_unlock(&env->lock);

    /* Opening may block (creating the file): only this user waits. */
    pthread_mutex_lock(&slot->open_lock);
    int r = 0;
    if (slot->user.db == NULL)
        r = user_db_open(env, &slot->user, error_r);
    pthread_mutex_unlock(&slot->open_lock);
    if (r != 0) {
        struct index_user *u = &slot->user;
        index_user_unref(env, &u);
        return -1;
    }
    *user_r = &slot->user;
    return 0;
}

struct index_user *index_env_user_peek(struct index_env *env, const char *address)
{
    pthread_mutex_lock(&env->lock);
    struct index_user_slot *slot = mg_strmap_get(env->users, address);
    struct index_user *u = slot != NULL && slot->user.db != NULL ? &slot->user : NULL;
    pthread_mutex_unlock(&env->lock);
    return u;
}

void index_user_unref(struct index_env *env, struct index_user **user)
{
    if (*user == NULL)
        return;
    pthread_mutex_lock(&env->lock);
    struct index_user_slot *slot = (struct index_user_slot *)*user;
    mg_assert(slot->user.refcount > 0);
    slot->user.refcount--;
    slot->last_used = time(NULL);
    pthread_mutex_unlock(&env->lock);
    *user = NULL;
}

static int close_idle_cb(const char *key, void *value, void *ctx)
{
    (void)key;
    time_t now = *(time_t *)ctx;
    struct index_user_slot *slot = value;
    if (slot->user.refcount > 0 || now - slot->last_used < USER_IDLE_SECONDS)
        return 0;
    pthread_mutex_lock(&slot->user.synced_lock);
    bool has_synced = slot->user.n_synced > 0;
    pthread_mutex_unlock(&slot->user.synced_lock);
    if (has_synced)
        return 0; /* the next housekeeping deletes them first */
    return close_user_cb(key, value, NULL);
}

void index_env_close_idle(struct index_env *env)
{
    time_t now = time(NULL);
    pthread_mutex_lock(&env->lock);
    mg_strmap_foreach(env->users, close_idle_cb, &now);
    pthread_mutex_unlock(&env->lock);
}

struct synced_users {
    struct index_user **users;
    size_t count;
};

static int collect_synced_cb(const char *key, void *value, void *ctx)
{
    (void)key;
    struct synced_users *c = ctx;
    struct index_user_slot *slot = value;
    if (slot->user.db == NULL)
        return 0;
    pthread_mutex_lock(&slot->user.synced_lock);
    bool has_synced = slot->user.n_synced > 0;
    pthread_mutex_unlock(&slot->user.synced_lock);
    if (has_synced) {
        slot->user.refcount++;
        c->users = mg_reallocarray(c->users, c->count + 1, sizeof(*c->users));
        c->users[c->count++] = &slot->user;
    }
    return 0;
}

void index_env_clear_synced(struct index_env *env)
{
    struct synced_users c = { NULL, 0 };
    pthread_mutex_lock(&env->lock);
    mg_strmap_foreach(env->users, collect_synced_cb, &c);
    pthread_mutex_unlock(&env->lock);
    for (size_t i = 0; i < c.count; i++) {
        struct index_user *u = c.users[i];
        size_t n;
        struct index_pending *list = index_user_take_synced(u, &n);
        int r = DB_LOCK_DEADLOCK;
        for (int attempt = 0; attempt < 10 && index_is_retryable(r); attempt++) {
            DB_TXN *txn;
            if ((r = index_txn_begin(env, false, &txn)) != 0)
                break;
            for (size_t k = 0; r == 0 && k < n; k++)
                r = index_del_pending(u->db, txn, list[k].mailbox_id, list[k].uid);
            if (r == 0)
                r = index_txn_commit(txn, false);
            else
                index_txn_abort(txn);
        }
        /* Left for the next round (or the next verification, which checks
         * the files again): never an error for anyone. */
        if (r != 0)
            index_user_return_synced(u, list, n);
        free(list);
        index_user_unref(env, &u);
    }
    free(c.users);
}

void index_user_note_synced(struct index_user *user, uint32_t mailbox_id, uint32_t uid)
{
    pthread_mutex_lock(&user->synced_lock);
    if (user->n_synced == user->cap_synced) {
        user->cap_synced = user->cap_synced ? user->cap_synced * 2 : 8;
        user->synced = mg_reallocarray(user->synced, user->cap_synced, sizeof(*user->synced));
    }
    user->synced[user->n_synced++] = (struct index_pending){ mailbox_id, uid };
    pthread_mutex_unlock(&user->synced_lock);
}

struct index_pending *index_user_take_synced(struct index_user *user, size_t *count_r)
{
    pthread_mutex_lock(&user->synced_lock);
    struct index_pending *list = user->synced;
    *count_r = user->n_synced;
    user->synced = NULL;
    user->n_synced = user->cap_synced = 0;
    pthread_mutex_unlock(&user->synced_lock);
    return list;
}

void index_user_return_synced(struct index_user *user, struct index_pending *list, size_t count)
{
    for (size_t i = 0; i < count; i++)
        index_user_note_synced(user, list[i].mailbox_id, list[i].uid);
}

int index_env_discard_user(struct index_env *env, const char *address)
{
    char *file = user_file_name(address);
    char *path = mg_asprintf("%s/%s", env->dir, file);
    char *aside = mg_asprintf("%s.broken-%ld", path, (long)time(NULL));
    int r = rename(path, aside) == 0 || errno == ENOENT ? 0 : -errno;
    mg_log_warning("index", "moved a damaged index aside user=%s file=%s", address, aside);
    free(file);
    free(path);
    free(aside);
    return r;
}

/* ---- transactions ---- */

int index_txn_begin(struct index_env *env, bool is_read, DB_TXN **txn_r)
{
    /* Readers see a snapshot and never wait for writers. */
    return env->dbenv->txn_begin(env->dbenv, NULL, txn_r, is_read ? DB_TXN_SNAPSHOT : 0);
}

int index_txn_commit(DB_TXN *txn, bool sync)
{
    return txn->commit(txn, sync ? DB_TXN_SYNC : DB_TXN_WRITE_NOSYNC);
}

void index_txn_abort(DB_TXN *txn)
{
    txn->abort(txn);
}

bool index_is_retryable(int err)
{
    return err == DB_LOCK_DEADLOCK || err == DB_LOCK_NOTGRANTED;
}

/* ---- user record ---- */

void index_user_rec_clear(struct index_user_rec *rec)
{
    for (uint32_t i = 0; i < rec->keyword_count; i++)
        free(rec->keywords[i]);
    memset(rec, 0, sizeof(*rec));
}

int index_get_user(DB *db, DB_TXN *txn, bool for_update, struct index_user_rec *rec)
{
    struct mg_buf b = MG_BUF_INIT;
    memset(rec, 0, sizeof(*rec));
    int r = db_get(db, txn, "U", 1, for_update, &b);
    if (r == 0) {
        struct reader rd = { (const unsigned char *)b.data, b.len, false };
        if (get_u8(&rd) != RECORD_VERSION)
            rd.is_bad = true;
        rec->next_mailbox_id = get_u32(&rd);
        rec->last_uidvalidity = get_u32(&rd);
        rec->bytes_used = get_u64(&rd);
        rec->message_count = get_u32(&rd);
        uint8_t n = get_u8(&rd);
        for (uint8_t i = 0; i < n && i < INDEX_KEYWORDS_MAX && !rd.is_bad; i++) {
            uint8_t len = get_u8(&rd);
            const unsigned char *p = get_bytes(&rd, len);
            if (p != NULL)
                rec->keywords[rec->keyword_count++] = mg_strndup((const char *)p, len);
        }
        if (rd.is_bad) {
            index_user_rec_clear(rec);
            r = DB_VERIFY_BAD;
        }
    }
    mg_buf_free(&b);
    return r;
}

int index_put_user(DB *db, DB_TXN *txn, const struct index_user_rec *rec)
{
    struct mg_buf b = MG_BUF_INIT;
    put_u8(&b, RECORD_VERSION);
    put_u32(&b, rec->next_mailbox_id);
    put_u32(&b, rec->last_uidvalidity);
    put_u64(&b, rec->bytes_used);
    put_u32(&b, rec->message_count);
    put_u8(&b, (uint8_t)rec->keyword_count);
    for (uint32_t i = 0; i < rec->keyword_count; i++) {
        size_t len = strlen(rec->keywords[i]);
        put_u8(&b, (uint8_t)(len > 255 ? 255 : len));
        mg_buf_append(&b, rec->keywords[i], len > 255 ? 255 : len);
    }
    int r = db_put(db, txn, "U", 1, b.data, b.len);
    mg_buf_free(&b);
    return r;
}

/* ---- mailboxes ---- */

static void mailbox_key(struct mg_buf *k, char prefix, const char *name)
{
    mg_buf_reset(k);
    mg_buf_append_byte(k, prefix);
    mg_buf_append_str(k, name);
}

static int decode_mailbox(const char *data, size_t len, struct index_mailbox_rec *rec)
{
    struct reader rd = { (const unsigned char *)data, len, false };
    if (get_u8(&rd) != RECORD_VERSION)
        return DB_VERIFY_BAD;
    rec->id = get_u32(&rd);
    rec->uidvalidity = get_u32(&rd);
    rec->uidnext = get_u32(&rd);
    rec->highestmodseq = get_u64(&rd);
    rec->recent_uid = get_u32(&rd);
    rec->messages = get_u32(&rd);
    rec->unseen = get_u32(&rd);
    rec->deleted = get_u32(&rd);
    rec->bytes = get_u64(&rd);
    rec->special_use = get_u8(&rd);
    return rd.is_bad ? DB_VERIFY_BAD : 0;
}

int index_get_mailbox(DB *db, DB_TXN *txn, const char *name, bool for_update,
                      struct index_mailbox_rec *rec)
{
    struct mg_buf k = MG_BUF_INIT, b = MG_BUF_INIT;
    mailbox_key(&k, 'B', name);
    memset(rec, 0, sizeof(*rec));
    int r = db_get(db, txn, k.data, k.len, for_update, &b);
    if (r == 0)
        r = decode_mailbox(b.data, b.len, rec);
    mg_buf_free(&k);
    mg_buf_free(&b);
    return r;
}

int index_put_mailbox(DB *db, DB_TXN *txn, const char *name, const struct index_mailbox_rec *rec,
                      bool with_name)
{
    struct mg_buf k = MG_BUF_INIT, b = MG_BUF_INIT;
    mailbox_key(&k, 'B', name);
    put_u8(&b, RECORD_VERSION);
    put_u32(&b, rec->id);
    put_u32(&b, rec->uidvalidity);
    put_u32(&b, rec->uidnext);
    put_u64(&b, rec->highestmodseq);
    put_u32(&b, rec->recent_uid);
    put_u32(&b, rec->messages);
    put_u32(&b, rec->unseen);
    put_u32(&b, rec->deleted);
    put_u64(&b, rec->bytes);
    put_u8(&b, rec->special_use);
    int r = db_put(db, txn, k.data, k.len, b.data, b.len);
    if (r == 0 && with_name) {
        unsigned char ik[5];
        key_id(ik, 'I', rec->id);
        r = db_put(db, txn, ik, sizeof(ik), name, strlen(name));
    }
    mg_buf_free(&k);
    mg_buf_free(&b);
    return r;
}

int index_del_mailbox(DB *db, DB_TXN *txn, const char *name, uint32_t id)
{
    struct mg_buf k = MG_BUF_INIT;
    mailbox_key(&k, 'B', name);
    int r = db_del(db, txn, k.data, k.len);
    if (r == 0) {
        unsigned char ik[5];
        key_id(ik, 'I', id);
        r = db_del(db, txn, ik, sizeof(ik));
    }
    mg_buf_free(&k);
    return r;
}

int index_get_mailbox_name(DB *db, DB_TXN *txn, uint32_t id, char **name_r)
{
    unsigned char ik[5];
    key_id(ik, 'I', id);
    struct mg_buf b = MG_BUF_INIT;
    int r = db_get(db, txn, ik, sizeof(ik), false, &b);
    if (r == 0)
        *name_r = mg_strndup(b.data, b.len);
    mg_buf_free(&b);
    return r;
}

/* ---- messages ---- */

static int decode_msg(const char *data, size_t len, uint32_t uid, struct index_msg_rec *rec)
{
    struct reader rd = { (const unsigned char *)data, len, false };
    if (get_u8(&rd) != RECORD_VERSION)
        return DB_VERIFY_BAD;
    rec->uid = uid;
    rec->flags = get_u32(&rd);
    rec->keywords = get_u64(&rd);
    rec->internaldate = (int64_t)get_u64(&rd);
    rec->size = get_u64(&rd);
    rec->modseq = get_u64(&rd);
    rec->in_new = get_u8(&rd) != 0;
    uint8_t blen = get_u8(&rd);
    const unsigned char *base = get_bytes(&rd, blen);
    if (rd.is_bad || blen >= sizeof(rec->base))
        return DB_VERIFY_BAD;
    memcpy(rec->base, base, blen);
    rec->base[blen] = '\0';
    return 0;
}

int index_get_msg(DB *db, DB_TXN *txn, uint32_t mailbox_id, uint32_t uid, bool for_update,
                  struct index_msg_rec *rec)
{
    unsigned char k[9];
    key_id_uid(k, 'M', mailbox_id, uid);
    struct mg_buf b = MG_BUF_INIT;
    int r = db_get(db, txn, k, sizeof(k), for_update, &b);
    if (r == 0)
        r = decode_msg(b.data, b.len, uid, rec);
    mg_buf_free(&b);
    return r;
}

int index_put_msg(DB *db, DB_TXN *txn, uint32_t mailbox_id, const struct index_msg_rec *rec,
                  uint64_t old_modseq)
{
    unsigned char k[9];
    key_id_uid(k, 'M', mailbox_id, rec->uid);
    struct mg_buf b = MG_BUF_INIT;
    size_t blen = strlen(rec->base);
    put_u8(&b, RECORD_VERSION);
    put_u32(&b, rec->flags);
    put_u64(&b, rec->keywords);
    put_u64(&b, (uint64_t)rec->internaldate);
    put_u64(&b, rec->size);
    put_u64(&b, rec->modseq);
    put_u8(&b, rec->in_new ? 1 : 0);
    put_u8(&b, (uint8_t)blen);
    mg_buf_append(&b, rec->base, blen);
    int r = db_put(db, txn, k, sizeof(k), b.data, b.len);
    mg_buf_free(&b);
    if (r != 0)
        return r;
    unsigned char q[17];
    if (old_modseq != 0 && old_modseq != rec->modseq) {
        key_id_modseq_uid(q, 'Q', mailbox_id, old_modseq, rec->uid);
        if ((r = db_del(db, txn, q, sizeof(q))) != 0)
            return r;
    }
    key_id_modseq_uid(q, 'Q', mailbox_id, rec->modseq, rec->uid);
    return db_put(db, txn, q, sizeof(q), "", 0);
}

int index_del_msg(DB *db, DB_TXN *txn, uint32_t mailbox_id, const struct index_msg_rec *rec,
                  uint64_t expunge_modseq)
{
    unsigned char k[9];
    key_id_uid(k, 'M', mailbox_id, rec->uid);
    int r = db_del(db, txn, k, sizeof(k));
    if (r != 0)
        return r;
    key_id_uid(k, 'E', mailbox_id, rec->uid);
    if ((r = db_del(db, txn, k, sizeof(k))) != 0)
        return r;
    unsigned char q[17];
    key_id_modseq_uid(q, 'Q', mailbox_id, rec->modseq, rec->uid);
    if ((r = db_del(db, txn, q, sizeof(q))) != 0)
        return r;
    key_id_modseq_uid(q, 'X', mailbox_id, expunge_modseq, rec->uid);
    return db_put(db, txn, q, sizeof(q), "", 0);
}

int index_put_cache(DB *db, DB_TXN *txn, uint32_t mailbox_id, uint32_t uid,
                    const char *envelope, size_t envelope_len, const char *bodystructure,
                    size_t bodystructure_len, const char *body, size_t body_len)
{
    unsigned char k[9];
    key_id_uid(k, 'E', mailbox_id, uid);
    struct mg_buf b = MG_BUF_INIT;
    put_u8(&b, RECORD_VERSION);
    put_u32(&b, (uint32_t)envelope_len);
    mg_buf_append(&b, envelope, envelope_len);
    put_u32(&b, (uint32_t)bodystructure_len);
    mg_buf_append(&b, bodystructure, bodystructure_len);
    put_u32(&b, (uint32_t)body_len);
    mg_buf_append(&b, body, body_len);
    int r = db_put(db, txn, k, sizeof(k), b.data, b.len);
    mg_buf_free(&b);
    return r;
}

int index_get_cache(DB *db, DB_TXN *txn, uint32_t mailbox_id, uint32_t uid,
                    struct mg_buf *out, size_t offsets_r[3], size_t lengths_r[3])
{
    unsigned char k[9];
    key_id_uid(k, 'E', mailbox_id, uid);
    struct mg_buf b = MG_BUF_INIT;
    int r = db_get(db, txn, k, sizeof(k), false, &b);
    if (r != 0) {
        mg_buf_free(&b);
        return r;
    }
    struct reader rd = { (const unsigned char *)b.data, b.len, false };
    if (get_u8(&rd) != RECORD_VERSION)
        rd.is_bad = true;
    for (int i = 0; i < 3 && !rd.is_bad; i++) {
        uint32_t len = get_u32(&rd);
        const unsigned char *p = get_bytes(&rd, len);
        if (p == NULL)
            break;
        offsets_r[i] = out->len;
        lengths_r[i] = len;
        mg_buf_append(out, p, len);
        mg_buf_append_byte(out, '\0');
    }
    mg_buf_free(&b);
    return rd.is_bad ? DB_VERIFY_BAD : 0;
}

int index_put_subscription(DB *db, DB_TXN *txn, const char *name, bool subscribed)
{
    struct mg_buf k = MG_BUF_INIT;
    mailbox_key(&k, 'S', name);
    int r = subscribed ? db_put(db, txn, k.data, k.len, "", 0) : db_del(db, txn, k.data, k.len);
    mg_buf_free(&k);
    return r;
}

int index_put_pending(DB *db, DB_TXN *txn, uint32_t mailbox_id, uint32_t uid)
{
    unsigned char k[9];
    key_id_uid(k, 'P', mailbox_id, uid);
    return db_put(db, txn, k, sizeof(k), "", 0);
}

int index_del_pending(DB *db, DB_TXN *txn, uint32_t mailbox_id, uint32_t uid)
{
    unsigned char k[9];
    key_id_uid(k, 'P', mailbox_id, uid);
    return db_del(db, txn, k, sizeof(k));
}

/* ---- cursor walks ---- */

/* Walks keys in [start, start+start_len...) while they begin with prefix. */
static int walk_prefix(DB *db, DB_TXN *txn, const void *start, size_t start_len,
                       const void *prefix, size_t prefix_len, bool want_data,
                       int (*cb)(const DBT *key, const DBT *data, void *ctx), void *ctx)
{
    DBC *c;
    int r = db->cursor(db, txn, &c, txn != NULL ? 0 : DB_TXN_SNAPSHOT);
    if (r != 0)
        return r;
    unsigned char kbuf[MAILBOX_KEY_MAX];
    if (start_len > sizeof(kbuf)) {
        c->close(c);
        return EINVAL;
    }
    memcpy(kbuf, start, start_len);
    DBT k = { .data = kbuf, .size = (u_int32_t)start_len, .ulen = sizeof(kbuf), .flags = DB_DBT_USERMEM };
    DBT d = { .flags = want_data ? DB_DBT_REALLOC : DB_DBT_USERMEM | DB_DBT_PARTIAL };
    r = c->get(c, &k, &d, DB_SET_RANGE);
    while (r == 0) {
        if (k.size < prefix_len || memcmp(k.data, prefix, prefix_len) != 0)
            break;
        int cr = cb(&k, &d, ctx);
        if (cr != 0) {
            r = cr;
            break;
        }
        r = c->get(c, &k, &d, DB_NEXT);
    }
    if (want_data)
        free(d.data);
    c->close(c);
    return r == DB_NOTFOUND ? 0 : r;
}

struct walk_msgs_ctx {
    uint32_t last;
    index_msg_cb *cb;
    void *ctx;
};

static int walk_msgs_cb(const DBT *key, const DBT *data, void *ctx)
{
    struct walk_msgs_ctx *w = ctx;
    if (key->size != 9)
        return 0;
    uint32_t uid = be32((const unsigned char *)key->data + 5);
    if (uid > w->last)
        return DB_NOTFOUND; /* past the range: stop */
    struct index_msg_rec rec;
    if (decode_msg(data->data, data->size, uid, &rec) != 0) {
        mg_log_error("index", "damaged message record uid=%u", uid);
        return DB_VERIFY_BAD;
    }
    return w->cb(&rec, w->ctx);
}

int index_walk_msgs(DB *db, DB_TXN *txn, uint32_t mailbox_id, uint32_t first, uint32_t last,
                    index_msg_cb *cb, void *ctx)
{
    unsigned char start[9], prefix[5];
    key_id_uid(start, 'M', mailbox_id, first);
    key_id(prefix, 'M', mailbox_id);
    struct walk_msgs_ctx w = { last, cb, ctx };
    int r = walk_prefix(db, txn, start, sizeof(start), prefix, sizeof(prefix), true,
                        walk_msgs_cb, &w);
    return r == DB_NOTFOUND ? 0 : r;
}

struct walk_modseq_ctx {
    int (*cb)(uint32_t uid, uint64_t modseq, void *ctx);
    void *ctx;
};

static int walk_modseq_cb(const DBT *key, const DBT *data, void *ctx)
{
    (void)data;
    struct walk_modseq_ctx *w = ctx;
    if (key->size != 17)
        return 0;
    const unsigned char *k = key->data;
    return w->cb(be32(k + 13), be64(k + 5), w->ctx);
}

static int walk_modseq(DB *db, DB_TXN *txn, char prefix_char, uint32_t mailbox_id,
                       uint64_t after_modseq, int (*cb)(uint32_t uid, uint64_t modseq, void *ctx),
                       void *ctx)
{
    unsigned char start[17], prefix[5];
    key_id_modseq_uid(start, prefix_char, mailbox_id, after_modseq + 1, 0);
    key_id(prefix, prefix_char, mailbox_id);
    struct walk_modseq_ctx w = { cb, ctx };
    return walk_prefix(db, txn, start, sizeof(start), prefix, sizeof(prefix), false,
                       walk_modseq_cb, &w);
}

int index_walk_changes(DB *db, DB_TXN *txn, uint32_t mailbox_id, uint64_t after_modseq,
                       int (*cb)(uint32_t uid, uint64_t modseq, void *ctx), void *ctx)
{
    return walk_modseq(db, txn, 'Q', mailbox_id, after_modseq, cb, ctx);
}

int index_walk_expunges(DB *db, DB_TXN *txn, uint32_t mailbox_id, uint64_t after_modseq,
                        int (*cb)(uint32_t uid, uint64_t modseq, void *ctx), void *ctx)
{
    return walk_modseq(db, txn, 'X', mailbox_id, after_modseq, cb, ctx);
}

struct walk_mailboxes_ctx {
    int (*cb)(const char *name, const struct index_mailbox_rec *rec, void *ctx);
    void *ctx;
};

static int walk_mailboxes_cb(const DBT *key, const DBT *data, void *ctx)
{
    struct walk_mailboxes_ctx *w = ctx;
    struct index_mailbox_rec rec;
    if (decode_mailbox(data->data, data->size, &rec) != 0)
        return DB_VERIFY_BAD;
    char name[1024];
    size_t n = key->size - 1 < sizeof(name) - 1 ? key->size - 1 : sizeof(name) - 1;
    memcpy(name, (const char *)key->data + 1, n);
    name[n] = '\0';
    return w->cb(name, &rec, w->ctx);
}

int index_walk_mailboxes(DB *db, DB_TXN *txn,
                         int (*cb)(const char *name, const struct index_mailbox_rec *rec,
                                   void *ctx),
                         void *ctx)
{
    struct walk_mailboxes_ctx w = { cb, ctx };
    return walk_prefix(db, txn, "B", 1, "B", 1, true, walk_mailboxes_cb, &w);
}

struct walk_subs_ctx {
    int (*cb)(const char *name, void *ctx);
    void *ctx;
};

static int walk_subs_cb(const DBT *key, const DBT *data, void *ctx)
{
    (void)data;
    struct walk_subs_ctx *w = ctx;
    char name[1024];
    size_t n = key->size - 1 < sizeof(name) - 1 ? key->size - 1 : sizeof(name) - 1;
    memcpy(name, (const char *)key->data + 1, n);
    name[n] = '\0';
    return w->cb(name, w->ctx);
}

struct walk_pending_ctx {
    int (*cb)(uint32_t uid, void *ctx);
    void *ctx;
};

static int walk_pending_cb(const DBT *key, const DBT *data, void *ctx)
{
    (void)data;
    struct walk_pending_ctx *w = ctx;
    if (key->size != 9)
        return 0;
    return w->cb(be32((const unsigned char *)key->data + 5), w->ctx);
}

int index_walk_pending(DB *db, DB_TXN *txn, uint32_t mailbox_id,
                       int (*cb)(uint32_t uid, void *ctx), void *ctx)
{
    unsigned char prefix[5];
    key_id(prefix, 'P', mailbox_id);
    struct walk_pending_ctx w = { cb, ctx };
    return walk_prefix(db, txn, prefix, sizeof(prefix), prefix, sizeof(prefix), false,
                       walk_pending_cb, &w);
}

int index_walk_subscriptions(DB *db, DB_TXN *txn, int (*cb)(const char *name, void *ctx),
                             void *ctx)
{
    struct walk_subs_ctx w = { cb, ctx };
    return walk_prefix(db, txn, "S", 1, "S", 1, false, walk_subs_cb, &w);
}

int index_prune_expunges(DB *db, DB_TXN *txn, uint32_t mailbox_id, uint64_t upto_modseq)
{
    DBC *c;
    int r = db->cursor(db, txn, &c, 0);
    if (r != 0)
        return r;
    unsigned char start[17], prefix[5];
    key_id_modseq_uid(start, 'X', mailbox_id, 0, 0);
    key_id(prefix, 'X', mailbox_id);
    unsigned char kbuf[32];
    memcpy(kbuf, start, sizeof(start));
    DBT k = { .data = kbuf, .size = sizeof(start), .ulen = sizeof(kbuf), .flags = DB_DBT_USERMEM };
    DBT d = { .flags = DB_DBT_USERMEM | DB_DBT_PARTIAL };
    r = c->get(c, &k, &d, DB_SET_RANGE);
    while (r == 0 && k.size == 17 && memcmp(kbuf, prefix, 5) == 0 && be64(kbuf + 5) <= upto_modseq) {
        if ((r = c->del(c, 0)) != 0)
            break;
        r = c->get(c, &k, &d, DB_NEXT);
    }
    c->close(c);
    return r == DB_NOTFOUND ? 0 : r;
}
