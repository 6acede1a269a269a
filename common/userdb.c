#include "common/userdb.h"

#include <db.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "common/address.h"
#include "common/alloc.h"
#include "common/arena.h"
#include "common/ascii.h"
#include "common/buf.h"
#include "common/log.h"
#include "common/userdb_record.h"

#ifdef MG_SANITIZED
#include <sanitizer/lsan_interface.h>
#endif

/* The directory is small (thousands of users at most), so the cache and
 * log buffer are small too; BDB's defaults are sized for big databases. */
#define USERDB_CACHE_BYTES (1024 * 1024)
#define USERDB_LOG_BUFFER_BYTES (64 * 1024)
#define USERDB_LOG_FILE_BYTES (1024 * 1024)
/* A lock wait longer than this is reported as DB_LOCK_NOTGRANTED when the
 * deadlock detector next runs (on the next conflict, or at a checkpoint). */
#define USERDB_LOCK_TIMEOUT_US (5 * 1000 * 1000)
/* Size of BDB's thread tracking table, which failchk needs. */
#define USERDB_THREAD_COUNT 256
/* Whole-transaction retries after a deadlock or lock timeout. */
#define USERDB_TXN_RETRIES 40
#define USERDB_BACKOFF_MAX_US (50 * 1000)
/* How long a thread waits for the others to leave before it reopens the
 * environment after a failure. */
#define USERDB_REOPEN_WAIT_S 10
/* Work bound for one resolution: addresses examined. */
#define USERDB_RESOLVE_NODES_MAX (10 * MG_USERDB_RESOLVE_MAX)
#define USERDB_ERROR_MAX 512

/* Our callbacks stop a cursor walk with this; BDB never returns it. */
#define USERDB_WALK_STOP INT_MAX

struct mg_userdb {
    /* Shared by every operation; exclusive only to replace the handles
     * after DB_RUNRECOVERY (another process ran recovery, or failchk
     * found a process that died inside a write transaction). */
    pthread_rwlock_t lock;
    uint64_t generation; /* bumped by each reopen */
    char *path;
    DB_ENV *env;
    DB *domains;
    DB *users;
    DB *aliases;
};

/* Reasons handed out through error_r and mg_userdb_last_error(). */
static __thread char userdb_error_text[USERDB_ERROR_MAX];
/* The last message BDB gave this thread through its error callback: BDB's
 * return codes alone are too terse to debug a storage failure. */
static __thread char userdb_bdb_text[USERDB_ERROR_MAX];

static int __attribute__((format(printf, 2, 3))) userdb_fail(int status, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(userdb_error_text, sizeof(userdb_error_text), fmt, ap);
    va_end(ap);
    return status;
}

/* A BDB failure as an operator-facing reason. */
static int userdb_fail_bdb(const char *what, int ret)
{
    if (userdb_bdb_text[0] != '\0')
        return userdb_fail(MG_USERDB_ERROR, "%s: %s (%s)", what, db_strerror(ret), userdb_bdb_text);
    return userdb_fail(MG_USERDB_ERROR, "%s: %s", what, db_strerror(ret));
}

static int userdb_result(int ret, const char **error_r)
{
    if (ret < 0 && error_r != NULL)
        *error_r = userdb_error_text;
    return ret;
}

static void userdb_reset_error(void)
{
    userdb_error_text[0] = '\0';
    userdb_bdb_text[0] = '\0';
}

const char *mg_userdb_last_error(void)
{
    return userdb_error_text;
}

static void userdb_errcall(const DB_ENV *env, const char *prefix, const char *msg)
{
    (void)env;
    (void)prefix;
    snprintf(userdb_bdb_text, sizeof(userdb_bdb_text), "%s", msg);
    mg_log_debug("userdb", "bdb: %s", msg);
}

static void userdb_msgcall(const DB_ENV *env, const char *msg)
{
    (void)env;
    mg_log_debug("userdb", "bdb: %s", msg);
}

/* For failchk: whether a process that registered in the environment still
 * runs. Threads of this process are taken as alive: ours never exit while
 * inside a BDB call. */
static int userdb_isalive(DB_ENV *env, pid_t pid, db_threadid_t tid, uint32_t flags)
{
    (void)env;
    (void)tid;
    (void)flags;
    if (pid == getpid())
        return 1;
    return kill(pid, 0) == 0 || errno == EPERM;
}

static DBT userdb_dbt(const void *data, size_t len)
{
    DBT d;
    memset(&d, 0, sizeof(d));
    d.data = (void *)data;
    d.size = (u_int32_t)len;
    return d;
}

static DBT userdb_dbt_malloc(void)
{
    DBT d;
    memset(&d, 0, sizeof(d));
    d.flags = DB_DBT_MALLOC;
    return d;
}

/* --- environment --- */

static void userdb_env_close(struct mg_userdb *db)
{
    DB **dbs[] = { &db->domains, &db->users, &db->aliases };
    for (size_t i = 0; i < sizeof(dbs) / sizeof(dbs[0]); i++) {
        if (*dbs[i] != NULL)
            (void)(*dbs[i])->close(*dbs[i], 0);
        *dbs[i] = NULL;
    }
    if (db->env != NULL) {
        DB_ENV *env = db->env;
        int ret = env->close(env, 0);
#ifdef MG_SANITIZED
        /* After a panic (another process ran recovery) BDB's close returns
         * early and frees none of the handles: a bounded leak per recovery,
         * in BDB, that would fail every sanitizer run of that path. */
        if (ret == DB_RUNRECOVERY)
            __lsan_ignore_object(env);
#else
        (void)ret;
#endif
    }
    db->env = NULL;
}

/* BDB creates __db.register with mode 0660 minus the umask whatever we ask;
 * the directory holds password hashes, so every file we own becomes 0600. */
static void userdb_fix_modes(const char *path)
{
    DIR *dir = opendir(path);
    if (dir == NULL)
        return;
    struct dirent *de;
    while ((de = readdir(dir)) != NULL) {
        struct stat st;
        if (fstatat(dirfd(dir), de->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0)
            continue;
        if (S_ISREG(st.st_mode) && st.st_uid == geteuid() && (st.st_mode & 07777) != 0600 &&
            fchmodat(dirfd(dir), de->d_name, 0600, 0) < 0)
            mg_log_warning("userdb", "cannot chmod 0600: path=%s/%s: %m", path, de->d_name);
    }
    closedir(dir);
}

static int userdb_db_open(struct mg_userdb *db, DB **dbp_r, const char *name, bool is_create)
{
    DB *dbp;
    int ret = db_create(&dbp, db->env, 0);
    if (ret != 0)
        return userdb_fail_bdb("cannot create a database handle", ret);
    uint32_t flags = DB_AUTO_COMMIT | DB_THREAD | (is_create ? DB_CREATE : 0);
    ret = dbp->open(dbp, NULL, name, NULL, DB_BTREE, flags, 0600);
    if (ret != 0) {
        (void)dbp->close(dbp, 0);
        if (ret == ENOENT)
            return userdb_fail(MG_USERDB_ERROR, "user directory %s: %s is missing", db->path, name);
        char what[256];
        snprintf(what, sizeof(what), "user directory %s: cannot open %s", db->path, name);
        return userdb_fail_bdb(what, ret);
    }
    *dbp_r = dbp;
    return 0;
}

static int userdb_env_open(struct mg_userdb *db, bool is_create)
{
    DB_ENV *env;
    int ret = db_env_create(&env, 0);
    if (ret != 0)
        return userdb_fail_bdb("cannot create an environment handle", ret);
    env->set_errcall(env, userdb_errcall);
    env->set_msgcall(env, userdb_msgcall);
    (void)env->set_cachesize(env, 0, USERDB_CACHE_BYTES, 1);
    (void)env->set_lg_bsize(env, USERDB_LOG_BUFFER_BYTES);
    (void)env->set_lg_max(env, USERDB_LOG_FILE_BYTES);
    (void)env->set_lg_filemode(env, 0600);
    (void)env->set_intermediate_dir_mode(env, "rwx------");
    (void)env->set_lk_detect(env, DB_LOCK_DEFAULT);
    (void)env->set_timeout(env, USERDB_LOCK_TIMEOUT_US, DB_SET_LOCK_TIMEOUT);
    (void)env->set_thread_count(env, USERDB_THREAD_COUNT);
    (void)env->set_isalive(env, userdb_isalive);
    (void)env->log_set_config(env, DB_LOG_AUTO_REMOVE, 1);

    /* DB_REGISTER + DB_RECOVER: recovery runs only when a process died
     * inside the environment. BDB insists on DB_CREATE with DB_RECOVER
     * (BDB1573) because recovery rebuilds the region files; whether the
     * directory itself may be created was decided by the caller, and the
     * databases are opened without DB_CREATE unless asked to. */
    uint32_t flags = DB_CREATE | DB_INIT_TXN | DB_INIT_LOCK | DB_INIT_LOG | DB_INIT_MPOOL |
                     DB_THREAD | DB_REGISTER | DB_RECOVER;
    ret = env->open(env, db->path, flags, 0600);
    if (ret != 0) {
        (void)env->close(env, 0);
        char what[256];
        snprintf(what, sizeof(what), "cannot open user directory %s", db->path);
        return userdb_fail_bdb(what, ret);
    }
    db->env = env;
    if (userdb_db_open(db, &db->domains, "domains.db", is_create) < 0 ||
        userdb_db_open(db, &db->users, "users.db", is_create) < 0 ||
        userdb_db_open(db, &db->aliases, "aliases.db", is_create) < 0) {
        userdb_env_close(db);
        return MG_USERDB_ERROR;
    }
    userdb_fix_modes(db->path);
    return 0;
}

int mg_userdb_open(const char *path, unsigned flags, struct mg_userdb **db_r,
                   const char **error_r)
{
    userdb_reset_error();
    bool is_create = (flags & MG_USERDB_CREATE) != 0;
    struct stat st;
    if (stat(path, &st) < 0) {
        if (errno != ENOENT || !is_create) {
            return userdb_result(userdb_fail(MG_USERDB_ERROR, "user directory %s: %s", path,
                                             strerror(errno)), error_r);
        }
        if (mkdir(path, 0700) < 0 && errno != EEXIST) {
            return userdb_result(userdb_fail(MG_USERDB_ERROR, "cannot create user directory %s: %s",
                                             path, strerror(errno)), error_r);
        }
        /* mkdir's mode is masked by the umask; 0700 whatever the umask. */
        if (chmod(path, 0700) < 0)
            mg_log_warning("userdb", "cannot chmod 0700: path=%s: %m", path);
    } else if (!S_ISDIR(st.st_mode)) {
        return userdb_result(userdb_fail(MG_USERDB_ERROR, "user directory %s: not a directory",
                                         path), error_r);
    }

    struct mg_userdb *db = mg_calloc(1, sizeof(*db));
    /* Writer preference: a reopen must not starve behind a stream of
     * readers. Nothing takes the lock recursively. */
    pthread_rwlockattr_t attr;
    pthread_rwlockattr_init(&attr);
    pthread_rwlockattr_setkind_np(&attr, PTHREAD_RWLOCK_PREFER_WRITER_NONRECURSIVE_NP);
    pthread_rwlock_init(&db->lock, &attr);
    pthread_rwlockattr_destroy(&attr);
    db->path = mg_strdup(path);
    if (userdb_env_open(db, is_create) < 0) {
        pthread_rwlock_destroy(&db->lock);
        free(db->path);
        free(db);
        return userdb_result(MG_USERDB_ERROR, error_r);
    }
    *db_r = db;
    return 0;
}

void mg_userdb_close(struct mg_userdb **dbp)
{
    struct mg_userdb *db = dbp != NULL ? *dbp : NULL;
    if (db == NULL)
        return;
    if (db->env != NULL)
        (void)db->env->txn_checkpoint(db->env, 0, 0, 0);
    userdb_env_close(db);
    pthread_rwlock_destroy(&db->lock);
    free(db->path);
    free(db);
    *dbp = NULL;
}

/* Replaces the handles after DB_RUNRECOVERY, unless another thread did so
 * since generation was read. Opening runs recovery when it is needed. */
static int userdb_reopen(struct mg_userdb *db, uint64_t generation)
{
    struct timespec deadline;
    clock_gettime(CLOCK_REALTIME, &deadline);
    deadline.tv_sec += USERDB_REOPEN_WAIT_S;
    if (pthread_rwlock_timedwrlock(&db->lock, &deadline) != 0)
        return userdb_fail(MG_USERDB_ERROR, "user directory %s needs recovery but is busy",
                           db->path);
    int ret = 0;
    if (db->generation == generation) {
        mg_log_warning("userdb", "reopening the user directory after a failure: path=%s", db->path);
        userdb_env_close(db);
        ret = userdb_env_open(db, false);
        db->generation++;
    }
    pthread_rwlock_unlock(&db->lock);
    return ret;
}

/* Cleans up after processes that died inside the environment: failchk
 * releases their read locks and aborts their transactions, or says that
 * only recovery helps. */
static int userdb_failchk(struct mg_userdb *db)
{
    pthread_rwlock_rdlock(&db->lock);
    uint64_t generation = db->generation;
    int ret = db->env != NULL ? db->env->failchk(db->env, 0) : DB_RUNRECOVERY;
    pthread_rwlock_unlock(&db->lock);
    if (ret == DB_RUNRECOVERY)
        return userdb_reopen(db, generation);
    /* Other failures (EBUSY destroying a dead process's mutex) leave the
     * environment usable. */
    if (ret != 0)
        mg_log_debug("userdb", "failchk: %s", db_strerror(ret));
    return 0;
}

int mg_userdb_checkpoint(struct mg_userdb *db)
{
    userdb_reset_error();
    if (userdb_failchk(db) < 0)
        return MG_USERDB_ERROR;
    pthread_rwlock_rdlock(&db->lock);
    int ret = DB_RUNRECOVERY;
    if (db->env != NULL) {
        /* Lock waits past their timeout end only when the detector runs;
         * run it so that no thread waits forever on a lock of a process
         * that died. */
        (void)db->env->lock_detect(db->env, 0, DB_LOCK_EXPIRE, NULL);
        ret = db->env->txn_checkpoint(db->env, 0, 0, 0);
    }
    pthread_rwlock_unlock(&db->lock);
    if (ret != 0)
        return userdb_fail_bdb("checkpoint failed", ret);
    return 0;
}

/* --- transactions --- */

/* A transaction body returns 0 to commit, a negative mg_userdb_status
 * (reason already set) to abort, or a BDB error, which decides between
 * retrying and failing. It must reset its outputs first: it may run
 * several times. */
typedef int userdb_txn_fn(struct mg_userdb *db, DB_TXN *txn, void *ctx);

static bool userdb_is_status(int ret)
{
    return ret <= MG_USERDB_OK && ret >= MG_USERDB_NOT_LOCAL;
}

static void userdb_backoff(unsigned attempt)
{
    static __thread unsigned seed;
    if (seed == 0)
        seed = (unsigned)getpid() ^ (unsigned)(uintptr_t)&seed;
    long max = 1000L << (attempt < 6 ? attempt : 6);
    if (max > USERDB_BACKOFF_MAX_US)
        max = USERDB_BACKOFF_MAX_US;
    usleep((useconds_t)(rand_r(&seed) % max + 100));
}

static int userdb_txn_once(struct mg_userdb *db, uint32_t txn_flags, userdb_txn_fn *fn, void *ctx)
{
    if (db->env == NULL)
        return DB_RUNRECOVERY;
    DB_TXN *txn;
    int ret = db->env->txn_begin(db->env, NULL, &txn, txn_flags);
    if (ret != 0)
        return ret;
    ret = fn(db, txn, ctx);
    if (ret == 0)
        return txn->commit(txn, 0); /* the handle is gone even on failure */
    int aret = txn->abort(txn);
    return aret == DB_RUNRECOVERY ? aret : ret;
}

/* Runs fn in a transaction, retrying the whole of it on deadlock; after a
 * DB_RUNRECOVERY the handles are reopened (once) and fn runs again. */
static int userdb_run(struct mg_userdb *db, uint32_t txn_flags, userdb_txn_fn *fn, void *ctx)
{
    bool has_reopened = false, has_checked = false;
    for (unsigned attempt = 0;; attempt++) {
        pthread_rwlock_rdlock(&db->lock);
        uint64_t generation = db->generation;
        int ret = userdb_txn_once(db, txn_flags, fn, ctx);
        pthread_rwlock_unlock(&db->lock);
        if (userdb_is_status(ret))
            return ret;
        if (ret == DB_LOCK_DEADLOCK || ret == DB_LOCK_NOTGRANTED) {
            if (attempt + 1 < USERDB_TXN_RETRIES) {
                userdb_backoff(attempt);
                continue;
            }
            /* A lock that stays taken may belong to a dead process. */
            if (!has_checked) {
                has_checked = true;
                attempt = 0;
                if (userdb_failchk(db) == 0)
                    continue;
                return MG_USERDB_ERROR;
            }
            return userdb_fail(MG_USERDB_ERROR, "user directory busy: %s", db_strerror(ret));
        }
        if (ret == DB_RUNRECOVERY && !has_reopened) {
            has_reopened = true;
            if (userdb_reopen(db, generation) < 0)
                return MG_USERDB_ERROR;
            continue;
        }
        return userdb_fail_bdb("storage error", ret);
    }
}

/* --- names --- */

static int userdb_fail_malformed(const char *what, const char *text, const char *reason)
{
    char v[MG_LOG_VALUE_MAX];
    return userdb_fail(MG_USERDB_INVALID, "malformed %s %s: %s", what,
                       mg_log_value(v, sizeof(v), text, strlen(text)), reason);
}

static int userdb_parse_name(struct mg_arena *arena, const char *what, const char *text,
                             bool is_alias, struct mg__userdb_name *name_r)
{
    const char *error;
    if (text == NULL)
        return userdb_fail(MG_USERDB_INVALID, "missing %s", what);
    if (mg__userdb_record_name_parse(arena, text, is_alias, name_r, &error) < 0)
        return userdb_fail_malformed(what, text, error);
    return 0;
}

static int userdb_parse_domain(struct mg_arena *arena, const char *text, const char **domain_r)
{
    const char *error;
    if (text == NULL)
        return userdb_fail(MG_USERDB_INVALID, "missing domain");
    if (mg__userdb_record_domain_parse(arena, text, domain_r, &error) < 0)
        return userdb_fail_malformed("domain", text, error);
    return 0;
}

/* --- record access inside a transaction --- */

/* Reads a value into *data_r (malloc'ed, freed by the caller): 0,
 * DB_NOTFOUND or a BDB error. */
static int userdb_get(DB *dbp, DB_TXN *txn, const void *key, size_t key_len, uint32_t flags,
                      DBT *data_r)
{
    DBT k = userdb_dbt(key, key_len);
    *data_r = userdb_dbt_malloc();
    return dbp->get(dbp, txn, &k, data_r, flags);
}

static int userdb_domain_check(struct mg_userdb *db, DB_TXN *txn, const char *domain,
                               bool *is_local_r)
{
    DBT data;
    int ret = userdb_get(db->domains, txn, domain, strlen(domain), 0, &data);
    *is_local_r = ret == 0;
    if (ret == 0) {
        struct mg__userdb_domain_rec rec;
        const char *error;
        ret = mg__userdb_record_domain_decode(data.data, data.size, &rec, &error);
        free(data.data);
        if (ret < 0) {
            mg_log_error("userdb", "damaged domain record: key=%s error=%s", domain, error);
            return userdb_fail(MG_USERDB_ERROR, "damaged domain record %s: %s", domain, error);
        }
    }
    return ret == DB_NOTFOUND ? 0 : ret;
}

static int userdb_fail_damaged(struct mg_arena *arena, const char *what, const DBT *key,
                               const char *error)
{
    const char *name = mg__userdb_record_key_text(arena, key->data, key->size);
    mg_log_error("userdb", "damaged %s record: key=%s error=%s", what, name, error);
    return userdb_fail(MG_USERDB_ERROR, "damaged %s record %s: %s", what, name, error);
}

static int userdb_user_decode(struct mg_arena *arena, const DBT *key, const DBT *data,
                              struct mg__userdb_user_rec *rec_r)
{
    const char *error;
    if (mg__userdb_record_user_decode_key(key->data, key->size, data->data, data->size, arena,
                                          rec_r, &error) < 0)
        return userdb_fail_damaged(arena, "user", key, error);
    return 0;
}

static int userdb_alias_decode(struct mg_arena *arena, const DBT *key, const DBT *data,
                               struct mg__userdb_alias_rec *rec_r)
{
    const char *error;
    if (mg__userdb_record_alias_decode(data->data, data->size, arena, rec_r, &error) < 0)
        return userdb_fail_damaged(arena, "alias", key, error);
    return 0;
}

typedef int userdb_visit_fn(const DBT *key, const DBT *data, void *ctx);

/* Calls visit for each record whose key starts with prefix (all records
 * for an empty prefix), in key order. */
static int userdb_walk(DB *dbp, DB_TXN *txn, const void *prefix, size_t prefix_len,
                       userdb_visit_fn *visit, void *ctx)
{
    DBC *cursor;
    int ret = dbp->cursor(dbp, txn, &cursor, 0);
    if (ret != 0)
        return ret;
    DBT key, data;
    memset(&key, 0, sizeof(key));
    memset(&data, 0, sizeof(data));
    key.flags = DB_DBT_REALLOC;
    data.flags = DB_DBT_REALLOC;
    key.data = mg_malloc(prefix_len + 1);
    memcpy(key.data, prefix, prefix_len);
    key.size = (u_int32_t)prefix_len;
    uint32_t op = prefix_len > 0 ? DB_SET_RANGE : DB_FIRST;
    for (;;) {
        ret = cursor->get(cursor, &key, &data, op);
        op = DB_NEXT;
        if (ret != 0)
            break;
        if (key.size < prefix_len || memcmp(key.data, prefix, prefix_len) != 0)
            break;
        if ((ret = visit(&key, &data, ctx)) != 0)
            break;
    }
    int cret = cursor->close(cursor);
    free(key.data);
    free(data.data);
    if (ret == DB_NOTFOUND || ret == USERDB_WALK_STOP)
        ret = 0;
    return ret != 0 ? ret : cret;
}

static int userdb_visit_stop(const DBT *key, const DBT *data, void *ctx)
{
    (void)key;
    (void)data;
    *(bool *)ctx = true;
    return USERDB_WALK_STOP;
}

/* Whether dbp holds a key of the domain ("domain\0..."). */
static int userdb_domain_in_use(DB *dbp, DB_TXN *txn, const char *domain, bool *is_used_r)
{
    *is_used_r = false;
    return userdb_walk(dbp, txn, domain, strlen(domain) + 1, userdb_visit_stop, is_used_r);
}

/* --- domains --- */

struct domain_op {
    const char *domain;
    struct mg_buf record;
};

static int domain_add_txn(struct mg_userdb *db, DB_TXN *txn, void *ctx)
{
    struct domain_op *op = ctx;
    DBT key = userdb_dbt(op->domain, strlen(op->domain));
    DBT data = userdb_dbt(op->record.data, op->record.len);
    int ret = db->domains->put(db->domains, txn, &key, &data, DB_NOOVERWRITE);
    if (ret == DB_KEYEXIST)
        return userdb_fail(MG_USERDB_EXISTS, "domain exists: %s", op->domain);
    return ret;
}

int mg_userdb_domain_add(struct mg_userdb *db, const char *domain, const char **error_r)
{
    userdb_reset_error();
    struct mg_arena *arena = mg_arena_new(0);
    struct domain_op op = { NULL, MG_BUF_INIT };
    int ret = userdb_parse_domain(arena, domain, &op.domain);
    if (ret == 0) {
        struct mg__userdb_domain_rec rec = { (int64_t)time(NULL) };
        mg__userdb_record_domain_encode(&op.record, &rec);
        ret = userdb_run(db, 0, domain_add_txn, &op);
    }
    mg_buf_free(&op.record);
    mg_arena_free(&arena);
    return userdb_result(ret, error_r);
}

static int domain_del_txn(struct mg_userdb *db, DB_TXN *txn, void *ctx)
{
    struct domain_op *op = ctx;
    DBT data;
    int ret = userdb_get(db->domains, txn, op->domain, strlen(op->domain), DB_RMW, &data);
    if (ret == DB_NOTFOUND)
        return userdb_fail(MG_USERDB_NOT_FOUND, "unknown domain: %s", op->domain);
    if (ret != 0)
        return ret;
    free(data.data);
    bool is_used;
    if ((ret = userdb_domain_in_use(db->users, txn, op->domain, &is_used)) != 0)
        return ret;
    if (is_used)
        return userdb_fail(MG_USERDB_INVALID, "domain %s still has users", op->domain);
    if ((ret = userdb_domain_in_use(db->aliases, txn, op->domain, &is_used)) != 0)
        return ret;
    if (is_used)
        return userdb_fail(MG_USERDB_INVALID, "domain %s still has aliases", op->domain);
    DBT key = userdb_dbt(op->domain, strlen(op->domain));
    return db->domains->del(db->domains, txn, &key, 0);
}

int mg_userdb_domain_del(struct mg_userdb *db, const char *domain, const char **error_r)
{
    userdb_reset_error();
    struct mg_arena *arena = mg_arena_new(0);
    struct domain_op op = { NULL, MG_BUF_INIT };
    int ret = userdb_parse_domain(arena, domain, &op.domain);
    if (ret == 0)
        ret = userdb_run(db, 0, domain_del_txn, &op);
    mg_arena_free(&arena);
    return userdb_result(ret, error_r);
}

struct domain_exists_op {
    const char *domain;
    bool is_local;
};

static int domain_exists_txn(struct mg_userdb *db, DB_TXN *txn, void *ctx)
{
    struct domain_exists_op *op = ctx;
    return userdb_domain_check(db, txn, op->domain, &op->is_local);
}

int mg_userdb_domain_exists(struct mg_userdb *db, const char *domain)
{
    userdb_reset_error();
    struct mg_arena *arena = mg_arena_new(0);
    struct domain_exists_op op = { NULL, false };
    int ret = userdb_parse_domain(arena, domain, &op.domain);
    if (ret == MG_USERDB_INVALID)
        ret = 0; /* a malformed name is not one of ours */
    else if (ret == 0)
        ret = userdb_run(db, DB_READ_COMMITTED, domain_exists_txn, &op);
    mg_arena_free(&arena);
    return ret < 0 ? ret : op.is_local ? 1 : 0;
}

/* Results of a list walk are collected inside the transaction and handed
 * to the caller's callback after it: a retried transaction would call it
 * twice, and a callback calling back into the directory must not run
 * while we hold locks. */
struct list_op {
    struct mg_arena *arena; /* the items; cleared per attempt */
    struct mg_arena *names; /* the filter */
    const char *domain;     /* filter, or NULL */
    void **items;
    size_t n_items, cap_items;
};

static void list_op_reset(struct list_op *op)
{
    mg_arena_clear(op->arena);
    op->n_items = 0;
}

static void list_op_push(struct list_op *op, void *item)
{
    if (op->n_items == op->cap_items) {
        op->cap_items = op->cap_items == 0 ? 64 : op->cap_items * 2;
        op->items = mg_reallocarray(op->items, op->cap_items, sizeof(*op->items));
    }
    op->items[op->n_items++] = item;
}

static void list_op_free(struct list_op *op)
{
    mg_arena_free(&op->arena);
    mg_arena_free(&op->names);
    free(op->items);
}

/* Runs a list transaction; 0 with op->items filled. */
static int list_run(struct mg_userdb *db, const char *domain, struct list_op *op,
                    userdb_txn_fn *fn)
{
    op->arena = mg_arena_new(0);
    op->names = mg_arena_new(0);
    int ret = 0;
    if (domain != NULL)
        ret = userdb_parse_domain(op->names, domain, &op->domain);
    if (ret == 0)
        ret = userdb_run(db, DB_READ_COMMITTED, fn, op);
    return ret;
}

static int domain_list_visit(const DBT *key, const DBT *data, void *ctx)
{
    struct list_op *op = ctx;
    struct mg__userdb_domain_rec rec;
    const char *error;
    if (memchr(key->data, '\0', key->size) != NULL)
        return userdb_fail_damaged(op->arena, "domain", key, "NUL in key");
    if (mg__userdb_record_domain_decode(data->data, data->size, &rec, &error) < 0)
        return userdb_fail_damaged(op->arena, "domain", key, error);
    list_op_push(op, mg_arena_strndup(op->arena, key->data, key->size));
    return 0;
}

static int domain_list_txn(struct mg_userdb *db, DB_TXN *txn, void *ctx)
{
    struct list_op *op = ctx;
    list_op_reset(op);
    return userdb_walk(db->domains, txn, "", 0, domain_list_visit, op);
}

int mg_userdb_domain_list(struct mg_userdb *db,
                          int (*cb)(const char *domain, void *ctx), void *ctx)
{
    userdb_reset_error();
    struct list_op op = { 0 };
    int ret = list_run(db, NULL, &op, domain_list_txn);
    for (size_t i = 0; ret == 0 && i < op.n_items; i++)
        ret = cb(op.items[i], ctx);
    list_op_free(&op);
    return ret;
}

/* --- users --- */

void mg_user_clear(struct mg_user *user)
{
    if (user == NULL)
        return;
    free(user->address);
    free(user->password_hash);
    memset(user, 0, sizeof(*user));
}

enum user_change {
    USER_CHANGE_PASSWORD,
    USER_CHANGE_ENABLED,
    USER_CHANGE_QUOTA,
};

/* One change of a user or an alias. */
struct name_op {
    struct mg_arena *arena;
    struct mg__userdb_name name;
    struct mg_buf record; /* the value to store */
    enum user_change change;
    const char *password_hash;
    bool is_enabled;
    uint64_t quota_bytes;
    struct mg__userdb_user_rec rec; /* as read */
};

static int name_op_init(struct name_op *op, const char *address, bool is_alias)
{
    op->arena = mg_arena_new(0);
    return userdb_parse_name(op->arena, is_alias ? "alias" : "address", address, is_alias,
                             &op->name);
}

static void name_op_free(struct name_op *op)
{
    mg_buf_free(&op->record);
    mg_arena_free(&op->arena);
}

/* Stores op->record under op->name in dbp if the domain is local and the
 * key is new: both checked in the transaction that writes. */
static int name_add(struct mg_userdb *db, DB_TXN *txn, DB *dbp, struct name_op *op,
                    const char *what)
{
    bool is_local;
    int ret = userdb_domain_check(db, txn, op->name.domain, &is_local);
    if (ret != 0)
        return ret;
    if (!is_local)
        return userdb_fail(MG_USERDB_INVALID, "unknown domain: %s", op->name.domain);
    DBT key = userdb_dbt(op->name.key, op->name.key_len);
    DBT data = userdb_dbt(op->record.data, op->record.len);
    ret = dbp->put(dbp, txn, &key, &data, DB_NOOVERWRITE);
    if (ret == DB_KEYEXIST)
        return userdb_fail(MG_USERDB_EXISTS, "%s exists: %s", what, op->name.address);
    return ret;
}

static int name_del(DB_TXN *txn, DB *dbp, struct name_op *op, const char *what)
{
    DBT key = userdb_dbt(op->name.key, op->name.key_len);
    int ret = dbp->del(dbp, txn, &key, 0);
    if (ret == DB_NOTFOUND)
        return userdb_fail(MG_USERDB_NOT_FOUND, "unknown %s: %s", what, op->name.address);
    return ret;
}

static int user_add_txn(struct mg_userdb *db, DB_TXN *txn, void *ctx)
{
    return name_add(db, txn, db->users, ctx, "user");
}

int mg_userdb_user_add(struct mg_userdb *db, const char *address,
                       const char *password_hash, uint64_t quota_bytes,
                       const char **error_r)
{
    userdb_reset_error();
    struct name_op op = { 0 };
    int ret = name_op_init(&op, address, false);
    if (ret == 0 && !mg__userdb_record_hash_is_valid(password_hash))
        ret = userdb_fail(MG_USERDB_INVALID, "invalid password hash for %s", op.name.address);
    if (ret == 0) {
        struct mg__userdb_user_rec rec = {
            .is_enabled = true,
            .quota_bytes = quota_bytes,
            .created = (int64_t)time(NULL),
            .address = op.name.address,
            .hash = password_hash,
        };
        mg__userdb_record_user_encode(&op.record, &rec);
        ret = userdb_run(db, 0, user_add_txn, &op);
    }
    name_op_free(&op);
    return userdb_result(ret, error_r);
}

static int user_del_txn(struct mg_userdb *db, DB_TXN *txn, void *ctx)
{
    return name_del(txn, db->users, ctx, "user");
}

int mg_userdb_user_del(struct mg_userdb *db, const char *address, const char **error_r)
{
    userdb_reset_error();
    struct name_op op = { 0 };
    int ret = name_op_init(&op, address, false);
    if (ret == 0)
        ret = userdb_run(db, 0, user_del_txn, &op);
    name_op_free(&op);
    return userdb_result(ret, error_r);
}

/* Reads and decodes the user op->name into op->rec. */
static int user_read(struct mg_userdb *db, DB_TXN *txn, struct name_op *op, uint32_t flags)
{
    DBT data;
    int ret = userdb_get(db->users, txn, op->name.key, op->name.key_len, flags, &data);
    if (ret == DB_NOTFOUND)
        return userdb_fail(MG_USERDB_NOT_FOUND, "unknown user: %s", op->name.address);
    if (ret != 0)
        return ret;
    DBT key = userdb_dbt(op->name.key, op->name.key_len);
    ret = userdb_user_decode(op->arena, &key, &data, &op->rec);
    free(data.data);
    return ret;
}

static int user_get_txn(struct mg_userdb *db, DB_TXN *txn, void *ctx)
{
    return user_read(db, txn, ctx, 0);
}

int mg_userdb_user_get(struct mg_userdb *db, const char *address,
                       struct mg_user *user_r, const char **error_r)
{
    userdb_reset_error();
    memset(user_r, 0, sizeof(*user_r));
    struct name_op op = { 0 };
    int ret = name_op_init(&op, address, false);
    if (ret == 0)
        ret = userdb_run(db, DB_READ_COMMITTED, user_get_txn, &op);
    if (ret == 0) {
        user_r->address = mg_strdup(op.rec.address);
        user_r->password_hash = mg_strdup(op.rec.hash);
        user_r->quota_bytes = op.rec.quota_bytes;
        user_r->is_enabled = op.rec.is_enabled;
        user_r->created = op.rec.created;
    }
    name_op_free(&op);
    return userdb_result(ret, error_r);
}

static int user_change_txn(struct mg_userdb *db, DB_TXN *txn, void *ctx)
{
    struct name_op *op = ctx;
    /* DB_RMW takes the write lock at once: two changes of one user queue
     * up instead of deadlocking on a read-lock upgrade. */
    int ret = user_read(db, txn, op, DB_RMW);
    if (ret != 0)
        return ret;
    switch (op->change) {
    case USER_CHANGE_PASSWORD:
        op->rec.hash = op->password_hash;
        break;
    case USER_CHANGE_ENABLED:
        op->rec.is_enabled = op->is_enabled;
        break;
    case USER_CHANGE_QUOTA:
        op->rec.quota_bytes = op->quota_bytes;
        break;
    }
    mg_buf_reset(&op->record);
    mg__userdb_record_user_encode(&op->record, &op->rec);
    DBT key = userdb_dbt(op->name.key, op->name.key_len);
    DBT data = userdb_dbt(op->record.data, op->record.len);
    return db->users->put(db->users, txn, &key, &data, 0);
}

static int user_change(struct mg_userdb *db, const char *address, struct name_op *op,
                       const char **error_r)
{
    userdb_reset_error();
    int ret = name_op_init(op, address, false);
    if (ret == 0 && op->change == USER_CHANGE_PASSWORD &&
        !mg__userdb_record_hash_is_valid(op->password_hash))
        ret = userdb_fail(MG_USERDB_INVALID, "invalid password hash for %s", op->name.address);
    if (ret == 0)
        ret = userdb_run(db, 0, user_change_txn, op);
    name_op_free(op);
    return userdb_result(ret, error_r);
}

int mg_userdb_user_set_password(struct mg_userdb *db, const char *address,
                                const char *password_hash, const char **error_r)
{
    struct name_op op = { .change = USER_CHANGE_PASSWORD, .password_hash = password_hash };
    return user_change(db, address, &op, error_r);
}

int mg_userdb_user_set_enabled(struct mg_userdb *db, const char *address,
                               bool is_enabled, const char **error_r)
{
    struct name_op op = { .change = USER_CHANGE_ENABLED, .is_enabled = is_enabled };
    return user_change(db, address, &op, error_r);
}

int mg_userdb_user_set_quota(struct mg_userdb *db, const char *address,
                             uint64_t quota_bytes, const char **error_r)
{
    struct name_op op = { .change = USER_CHANGE_QUOTA, .quota_bytes = quota_bytes };
    return user_change(db, address, &op, error_r);
}

/* Walks dbp for the list functions: every record, or those of one local
 * domain (a contiguous key range "domain\0..."). */
static int list_walk(struct mg_userdb *db, DB_TXN *txn, DB *dbp, struct list_op *op,
                     userdb_visit_fn *visit)
{
    list_op_reset(op);
    if (op->domain == NULL)
        return userdb_walk(dbp, txn, "", 0, visit, op);
    bool is_local;
    int ret = userdb_domain_check(db, txn, op->domain, &is_local);
    if (ret == 0 && !is_local)
        ret = userdb_fail(MG_USERDB_NOT_FOUND, "unknown domain: %s", op->domain);
    if (ret != 0)
        return ret;
    return userdb_walk(dbp, txn, op->domain, strlen(op->domain) + 1, visit, op);
}

static int user_list_visit(const DBT *key, const DBT *data, void *ctx)
{
    struct list_op *op = ctx;
    struct mg__userdb_user_rec rec;
    int ret = userdb_user_decode(op->arena, key, data, &rec);
    if (ret != 0)
        return ret;
    struct mg_user *user = mg_arena_zalloc(op->arena, sizeof(*user));
    user->address = (char *)rec.address;
    user->password_hash = (char *)rec.hash;
    user->quota_bytes = rec.quota_bytes;
    user->is_enabled = rec.is_enabled;
    user->created = rec.created;
    list_op_push(op, user);
    return 0;
}

static int user_list_txn(struct mg_userdb *db, DB_TXN *txn, void *ctx)
{
    return list_walk(db, txn, db->users, ctx, user_list_visit);
}

int mg_userdb_user_list(struct mg_userdb *db, const char *domain,
                        int (*cb)(const struct mg_user *user, void *ctx), void *ctx)
{
    userdb_reset_error();
    struct list_op op = { 0 };
    int ret = list_run(db, domain, &op, user_list_txn);
    for (size_t i = 0; ret == 0 && i < op.n_items; i++)
        ret = cb(op.items[i], ctx);
    list_op_free(&op);
    return ret;
}

/* --- aliases --- */

static int alias_add_txn(struct mg_userdb *db, DB_TXN *txn, void *ctx)
{
    return name_add(db, txn, db->aliases, ctx, "alias");
}

int mg_userdb_alias_add(struct mg_userdb *db, const char *address,
                        const char *const *targets, size_t n_targets,
                        const char **error_r)
{
    userdb_reset_error();
    struct name_op op = { 0 };
    int ret = name_op_init(&op, address, true);
    if (ret == 0 && (n_targets == 0 || n_targets > MG_USERDB_ALIAS_TARGETS_MAX)) {
        ret = userdb_fail(MG_USERDB_INVALID, "alias %s needs 1 to %d targets",
                          op.name.address, MG_USERDB_ALIAS_TARGETS_MAX);
    }
    const char **stored = NULL;
    if (ret == 0) {
        /* Targets are stored normalised (domain lower-cased, needless
         * quotes dropped) and never as a catch-all. */
        stored = mg_arena_alloc(op.arena, n_targets * sizeof(*stored));
        for (size_t i = 0; ret == 0 && i < n_targets; i++) {
            struct mg__userdb_name t;
            ret = userdb_parse_name(op.arena, "target", targets[i], false, &t);
            stored[i] = t.address;
        }
    }
    if (ret == 0) {
        struct mg__userdb_alias_rec rec = { op.name.address, n_targets, stored };
        mg__userdb_record_alias_encode(&op.record, &rec);
        ret = userdb_run(db, 0, alias_add_txn, &op);
    }
    name_op_free(&op);
    return userdb_result(ret, error_r);
}

static int alias_del_txn(struct mg_userdb *db, DB_TXN *txn, void *ctx)
{
    return name_del(txn, db->aliases, ctx, "alias");
}

int mg_userdb_alias_del(struct mg_userdb *db, const char *address, const char **error_r)
{
    userdb_reset_error();
    struct name_op op = { 0 };
    int ret = name_op_init(&op, address, true);
    if (ret == 0)
        ret = userdb_run(db, 0, alias_del_txn, &op);
    name_op_free(&op);
    return userdb_result(ret, error_r);
}

static int alias_list_visit(const DBT *key, const DBT *data, void *ctx)
{
    struct list_op *op = ctx;
    struct mg__userdb_alias_rec *rec = mg_arena_zalloc(op->arena, sizeof(*rec));
    int ret = userdb_alias_decode(op->arena, key, data, rec);
    if (ret != 0)
        return ret;
    list_op_push(op, rec);
    return 0;
}

static int alias_list_txn(struct mg_userdb *db, DB_TXN *txn, void *ctx)
{
    return list_walk(db, txn, db->aliases, ctx, alias_list_visit);
}

int mg_userdb_alias_list(struct mg_userdb *db, const char *domain,
                         int (*cb)(const char *address, const char *const *targets,
                                   size_t n_targets, void *ctx),
                         void *ctx)
{
    userdb_reset_error();
    struct list_op op = { 0 };
    int ret = list_run(db, domain, &op, alias_list_txn);
    for (size_t i = 0; ret == 0 && i < op.n_items; i++) {
        const struct mg__userdb_alias_rec *rec = op.items[i];
        ret = cb(rec->address, rec->targets, rec->n_targets, ctx);
    }
    list_op_free(&op);
    return ret;
}

/* --- resolution --- */

/* A set of byte strings (keys), for loop and duplicate detection; memory
 * from the resolution's arena. */
struct keyset {
    struct keyset_slot {
        const char *key;
        size_t len;
    } *slots;
    size_t cap, n;
};

static uint64_t keyset_hash(const char *key, size_t len)
{
    uint64_t h = 14695981039346656037ULL; /* FNV-1a */
    for (size_t i = 0; i < len; i++)
        h = (h ^ (unsigned char)key[i]) * 1099511628211ULL;
    return h;
}

static struct keyset_slot *keyset_find(struct keyset_slot *slots, size_t cap, const char *key,
                                       size_t len)
{
    size_t i = (size_t)keyset_hash(key, len) & (cap - 1);
    while (slots[i].key != NULL &&
           (slots[i].len != len || memcmp(slots[i].key, key, len) != 0))
        i = (i + 1) & (cap - 1);
    return &slots[i];
}

/* Adds key; false when it was there already. */
static bool keyset_add(struct keyset *set, struct mg_arena *arena, const char *key, size_t len)
{
    if ((set->n + 1) * 2 > set->cap) {
        size_t cap = set->cap == 0 ? 64 : set->cap * 2;
        struct keyset_slot *slots = mg_arena_zalloc(arena, cap * sizeof(*slots));
        for (size_t i = 0; i < set->cap; i++) {
            if (set->slots[i].key != NULL)
                *keyset_find(slots, cap, set->slots[i].key, set->slots[i].len) = set->slots[i];
        }
        set->slots = slots;
        set->cap = cap;
    }
    struct keyset_slot *slot = keyset_find(set->slots, set->cap, key, len);
    if (slot->key != NULL)
        return false;
    slot->key = mg_arena_memdup(arena, key, len);
    slot->len = len;
    set->n++;
    return true;
}

struct resolve_node {
    const char *address;
    unsigned depth; /* alias expansions that led here */
};

struct resolve_op {
    const char *address; /* as asked, normalised */
    const char *domain;
    const char *delimiters;
    struct mg_userdb_resolution *res;
    /* per attempt */
    struct mg_arena *arena;
    struct resolve_node *queue; /* breadth-first: the shallowest path wins */
    size_t n_queue, cap_queue;
    struct keyset visited;   /* keys already looked up as aliases */
    struct keyset delivered; /* final targets */
};

void mg_userdb_resolution_clear(struct mg_userdb_resolution *res)
{
    if (res == NULL)
        return;
    for (size_t i = 0; i < res->n_targets; i++)
        free(res->targets[i].address);
    free(res->targets);
    res->targets = NULL;
    res->n_targets = 0;
}

static int resolve_add_target(struct resolve_op *op, const char *address, const char *key,
                              size_t key_len, bool is_local, bool is_enabled, uint64_t quota)
{
    if (!keyset_add(&op->delivered, op->arena, key, key_len))
        return 0;
    struct mg_userdb_resolution *res = op->res;
    if (res->n_targets >= MG_USERDB_RESOLVE_MAX) {
        return userdb_fail(MG_USERDB_INVALID, "%s expands to more than %d addresses",
                           op->address, MG_USERDB_RESOLVE_MAX);
    }
    res->targets = mg_reallocarray(res->targets, res->n_targets + 1, sizeof(*res->targets));
    struct mg_userdb_target *t = &res->targets[res->n_targets++];
    t->address = mg_strdup(address);
    t->is_local = is_local;
    t->is_enabled = is_local && is_enabled;
    t->quota_bytes = is_local ? quota : 0;
    return 0;
}

static int resolve_push(struct resolve_op *op, const char *address, unsigned depth)
{
    if (op->n_queue >= USERDB_RESOLVE_NODES_MAX) {
        return userdb_fail(MG_USERDB_INVALID, "expansion of %s is too large", op->address);
    }
    if (op->n_queue == op->cap_queue) {
        op->cap_queue = op->cap_queue == 0 ? 16 : op->cap_queue * 2;
        op->queue = mg_reallocarray(op->queue, op->cap_queue, sizeof(*op->queue));
    }
    op->queue[op->n_queue++] = (struct resolve_node){ address, depth };
    return 0;
}

/* The user with this key, if any, becomes a target. */
static int resolve_user(struct mg_userdb *db, DB_TXN *txn, struct resolve_op *op,
                        const char *key, size_t key_len, bool *is_found_r)
{
    DBT data;
    int ret = userdb_get(db->users, txn, key, key_len, 0, &data);
    *is_found_r = ret == 0;
    if (ret != 0)
        return ret == DB_NOTFOUND ? 0 : ret;
    struct mg__userdb_user_rec rec;
    DBT k = userdb_dbt(key, key_len);
    ret = userdb_user_decode(op->arena, &k, &data, &rec);
    free(data.data);
    if (ret != 0)
        return ret;
    return resolve_add_target(op, rec.address, key, key_len, true, rec.is_enabled,
                              rec.quota_bytes);
}

/* The alias with this key, if any, expands one level further. */
static int resolve_alias(struct mg_userdb *db, DB_TXN *txn, struct resolve_op *op,
                         const char *key, size_t key_len, unsigned depth, bool *is_found_r)
{
    DBT data;
    int ret = userdb_get(db->aliases, txn, key, key_len, 0, &data);
    *is_found_r = ret == 0;
    if (ret != 0)
        return ret == DB_NOTFOUND ? 0 : ret;
    struct mg__userdb_alias_rec rec;
    DBT k = userdb_dbt(key, key_len);
    ret = userdb_alias_decode(op->arena, &k, &data, &rec);
    free(data.data);
    if (ret != 0)
        return ret;
    if (depth >= MG_USERDB_RESOLVE_DEPTH) {
        mg_log_debug("userdb", "alias nested too deeply, dropped: alias=%s",
                     mg__userdb_record_key_text(op->arena, key, key_len));
        return 0;
    }
    for (size_t i = 0; ret == 0 && i < rec.n_targets; i++)
        ret = resolve_push(op, rec.targets[i], depth + 1);
    return ret;
}

/* One address: remote, or looked up in the order of the header comment.
 * An address that leads nowhere adds nothing. */
static int resolve_node(struct mg_userdb *db, DB_TXN *txn, struct resolve_op *op,
                        struct resolve_node node)
{
    struct mg_address a;
    const char *error;
    if (mg_address_parse(node.address, strlen(node.address), MG_ADDRESS_ALLOW_UTF8, op->arena,
                         &a, &error) < 0) {
        /* Targets were validated when the alias was added. */
        mg_log_debug("userdb", "invalid alias target dropped: error=%s", error);
        return 0;
    }
    bool is_found;
    int ret = userdb_domain_check(db, txn, a.domain, &is_found);
    if (ret != 0)
        return ret;
    if (!is_found) {
        const char *address = mg_address_format(op->arena, &a);
        const char *key = mg_address_key(op->arena, &a);
        return resolve_add_target(op, address, key, strlen(key), false, false, 0);
    }

    size_t local_len = strlen(a.local), key_len;
    const char *key = mg__userdb_record_key(op->arena, a.domain, a.local, local_len, &key_len);
    if (!keyset_add(&op->visited, op->arena, key, key_len)) {
        /* Seen before: a loop, or an alias that lists its own address to
         * keep a copy. It is final now: a user, or nothing. */
        return resolve_user(db, txn, op, key, key_len, &is_found);
    }
    if ((ret = resolve_alias(db, txn, op, key, key_len, node.depth, &is_found)) != 0 || is_found)
        return ret;
    if ((ret = resolve_user(db, txn, op, key, key_len, &is_found)) != 0 || is_found)
        return ret;

    size_t base_len = mg_address_base_local_len(a.local, local_len, op->delimiters);
    if (base_len < local_len) {
        key = mg__userdb_record_key(op->arena, a.domain, a.local, base_len, &key_len);
        if (keyset_add(&op->visited, op->arena, key, key_len)) {
            ret = resolve_alias(db, txn, op, key, key_len, node.depth, &is_found);
            if (ret != 0 || is_found)
                return ret;
        }
        if ((ret = resolve_user(db, txn, op, key, key_len, &is_found)) != 0 || is_found)
            return ret;
    }

    key = mg__userdb_record_key(op->arena, a.domain, "", 0, &key_len);
    if (keyset_add(&op->visited, op->arena, key, key_len))
        return resolve_alias(db, txn, op, key, key_len, node.depth, &is_found);
    return 0;
}

/* RFC 5321 4.5.1: postmaster@ every local domain must reach someone. When
 * no alias, user or catch-all takes it, the domain's oldest enabled user
 * does (then the smallest address): as a rule the one who set the domain
 * up. Decided at lookup, not stored, so it follows users as they come and
 * go; an alias points it elsewhere. */
struct postmaster_pick {
    struct resolve_op *op;
    struct mg__userdb_user_rec best;
    const void *key;
    size_t key_len;
    bool is_found;
};

static int postmaster_visit(const DBT *key, const DBT *data, void *ctx)
{
    struct postmaster_pick *pick = ctx;
    struct mg__userdb_user_rec rec;
    int ret = userdb_user_decode(pick->op->arena, key, data, &rec);
    if (ret != 0 || !rec.is_enabled)
        return ret;
    if (pick->is_found && (rec.created > pick->best.created ||
                           (rec.created == pick->best.created &&
                            strcmp(rec.address, pick->best.address) >= 0)))
        return 0;
    pick->best = rec;
    pick->key = mg_arena_memdup(pick->op->arena, key->data, key->size);
    pick->key_len = key->size;
    pick->is_found = true;
    return 0;
}

static int resolve_postmaster(struct mg_userdb *db, DB_TXN *txn, struct resolve_op *op)
{
    size_t local_len = strlen(op->address) - strlen(op->domain) - 1;
    if (!mg_ascii_eq(op->address, local_len, "postmaster"))
        return 0;
    struct postmaster_pick pick = { .op = op };
    int ret = userdb_walk(db->users, txn, op->domain, strlen(op->domain) + 1, postmaster_visit,
                          &pick);
    if (ret != 0 || !pick.is_found)
        return ret;
    return resolve_add_target(op, pick.best.address, pick.key, pick.key_len, true, true,
                              pick.best.quota_bytes);
}

static int resolve_txn(struct mg_userdb *db, DB_TXN *txn, void *ctx)
{
    struct resolve_op *op = ctx;
    mg_userdb_resolution_clear(op->res);
    mg_arena_clear(op->arena);
    op->n_queue = 0;
    memset(&op->visited, 0, sizeof(op->visited));
    memset(&op->delivered, 0, sizeof(op->delivered));

    bool is_local;
    int ret = userdb_domain_check(db, txn, op->domain, &is_local);
    if (ret != 0)
        return ret;
    if (!is_local)
        return userdb_fail(MG_USERDB_NOT_LOCAL, "not a local domain: %s", op->domain);
    if ((ret = resolve_push(op, op->address, 0)) != 0)
        return ret;
    for (size_t i = 0; i < op->n_queue; i++) {
        if ((ret = resolve_node(db, txn, op, op->queue[i])) != 0)
            return ret;
    }
    if (op->res->n_targets == 0 && (ret = resolve_postmaster(db, txn, op)) != 0)
        return ret;
    if (op->res->n_targets == 0)
        return userdb_fail(MG_USERDB_NOT_FOUND, "unknown address: %s", op->address);
    return 0;
}

int mg_userdb_resolve(struct mg_userdb *db, const char *address, const char *delimiters,
                      struct mg_userdb_resolution *res_r, const char **error_r)
{
    userdb_reset_error();
    memset(res_r, 0, sizeof(*res_r));
    struct mg_arena *names = mg_arena_new(0);
    struct mg__userdb_name name;
    int ret = userdb_parse_name(names, "address", address, false, &name);
    if (ret == 0) {
        struct resolve_op op = {
            .address = name.address,
            .domain = name.domain,
            .delimiters = delimiters,
            .res = res_r,
            .arena = mg_arena_new(0),
        };
        ret = userdb_run(db, DB_READ_COMMITTED, resolve_txn, &op);
        mg_arena_free(&op.arena);
        free(op.queue);
    }
    if (ret != 0)
        mg_userdb_resolution_clear(res_r);
    mg_arena_free(&names);
    return userdb_result(ret, error_r);
}
