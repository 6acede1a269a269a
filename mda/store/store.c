/* The store's core: opening, jobs, transactions, watchers and reads. */
#include "mda/store/store_private.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/alloc.h"
#include "common/buf.h"
#include "common/log.h"

/* Checkpoints bound recovery time and let old log files go. */
#define STORE_HOUSEKEEPING_MS 30000

const char *store_special_use_name(enum store_special_use use)
{
    switch (use) {
    case STORE_SPECIAL_DRAFTS: return "\\Drafts";
    case STORE_SPECIAL_SENT: return "\\Sent";
    case STORE_SPECIAL_TRASH: return "\\Trash";
    case STORE_SPECIAL_JUNK: return "\\Junk";
    case STORE_SPECIAL_ARCHIVE: return "\\Archive";
    case STORE_SPECIAL_ALL: return "\\All";
    case STORE_SPECIAL_NONE: break;
    }
    return NULL;
}

int store_status_from_errno(int err)
{
    if (err < 0)
        err = -err;
    if (err == ENOSPC || err == EDQUOT)
        return STORE_ERR_NO_SPACE;
    if (err == ENOENT)
        return STORE_ERR_NOT_FOUND;
    return STORE_ERR_INTERNAL;
}

int store_status_from_db(int r)
{
    if (r == 0)
        return STORE_OK;
    if (r == DB_NOTFOUND)
        return STORE_ERR_NOT_FOUND;
    if (r > 0)
        return store_status_from_errno(r);
    if (r == STORE_ERR_OVER_QUOTA || r == STORE_ERR_LIMIT || r == STORE_ERR_NOT_FOUND)
        return r;
    return STORE_ERR_INTERNAL;
}

/* ---- jobs ---- */

static void job_work_cb(uv_work_t *req)
{
    struct store_job *job = req->data;
    job->work(job);
}

static void job_after_cb(uv_work_t *req, int status)
{
    struct store_job *job = req->data;
    struct store *store = job->store;
    if (status == UV_ECANCELED && job->status == 0)
        store_job_set_error(job, STORE_ERR_INTERNAL, "cancelled");
    store->jobs_running--;
    job->after(job);
}

void store_job_start(struct store *store, struct store_job *job,
                     void (*work)(struct store_job *job), void (*after)(struct store_job *job))
{
    job->store = store;
    job->work = work;
    job->after = after;
    job->req.data = job;
    store->jobs_running++;
    int r = uv_queue_work(store->loop, &job->req, job_work_cb, job_after_cb);
    if (r != 0)
        mg_panic("uv_queue_work: %s", uv_strerror(r));
}

void store_job_set_error(struct store_job *job, int status, const char *fmt, ...)
{
    job->status = status;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(job->error, sizeof(job->error), fmt, ap);
    va_end(ap);
}

int store_txn_run(struct store *store, bool sync, int (*body)(DB_TXN *txn, void *ctx),
                  int (*before_commit)(void *ctx), void *ctx)
{
    for (int attempt = 0; attempt < STORE_TXN_RETRIES; attempt++) {
        DB_TXN *txn;
        int r = index_txn_begin(store->index, false, &txn);
        if (r != 0)
            return r;
        r = body(txn, ctx);
        if (r != 0) {
            index_txn_abort(txn);
            if (index_is_retryable(r)) {
                usleep((useconds_t)(100 * (attempt + 1)));
                continue;
            }
            return r;
        }
        if (before_commit != NULL && (r = before_commit(ctx)) != 0) {
            index_txn_abort(txn);
            return r;
        }
        return index_txn_commit(txn, sync);
    }
    return DB_LOCK_DEADLOCK;
}

/* ---- open and close ---- */

static void housekeeping_work(struct store_job *job)
{
    index_env_clear_synced(job->store->index);
    index_env_checkpoint(job->store->index);
    index_env_close_idle(job->store->index);
}

static void housekeeping_after(struct store_job *job)
{
    free(job);
}

static void housekeeping_cb(uv_timer_t *timer)
{
    struct store *store = timer->data;
    struct store_job *job = mg_calloc(1, sizeof(*job));
    store_job_start(store, job, housekeeping_work, housekeeping_after);
}

int store_open(uv_loop_t *loop, const struct store_settings *settings, struct store **store_r,
               char **error_r)
{
    if (mkdir(settings->mail_dir, 0700) != 0 && errno != EEXIST) {
        *error_r = mg_asprintf("cannot create %s: %s", settings->mail_dir, strerror(errno));
        return -1;
    }
    struct index_env *index;
    if (index_env_open(settings->index_dir, settings->index_cache_bytes, &index, error_r) != 0)
        return -1;
    struct store *store = mg_calloc(1, sizeof(*store));
    store->loop = loop;
    store->index = index;
    store->mail_dir = mg_strdup(settings->mail_dir);
    store->users = mg_strmap_new();
    store->watches = mg_strmap_new();
    store->syncer = fsync_pool_new(STORE_SYNC_THREADS);
    uv_timer_init(loop, &store->housekeeping);
    store->housekeeping.data = store;
    uv_timer_start(&store->housekeeping, housekeeping_cb, STORE_HOUSEKEEPING_MS,
                   STORE_HOUSEKEEPING_MS);
    uv_unref((uv_handle_t *)&store->housekeeping);
    *store_r = store;
    return 0;
}

unsigned store_jobs_running(const struct store *store)
{
    return store->jobs_running;
}

static void store_free_cb(uv_handle_t *handle)
{
    struct store *store = handle->data;
    mg_strmap_free(&store->users);
    mg_strmap_free(&store->watches);
    fsync_pool_free(&store->syncer);
    index_env_close(&store->index);
    free(store->mail_dir);
    free(store);
}

void store_close(struct store **store)
{
    if (*store == NULL)
        return;
    struct store *s = *store;
    s->is_closing = true;
    /* Jobs hold pointers into the store: let them finish. */
    while (s->jobs_running > 0)
        uv_run(s->loop, UV_RUN_ONCE);
    if (mg_strmap_count(s->users) > 0)
        mg_log_warning("store", "closing with %zu users still referenced", mg_strmap_count(s->users));
    uv_close((uv_handle_t *)&s->housekeeping, store_free_cb);
    *store = NULL;
}

/* ---- users (handles; opening is in store_user.c) ---- */

void store_user_ref(struct store_user *user)
{
    user->refcount++;
}

void store_user_unref(struct store_user **user)
{
    struct store_user *u = *user;
    if (u == NULL)
        return;
    *user = NULL;
    if (--u->refcount > 0)
        return;
    mg_strmap_remove(u->store->users, u->address);
    index_user_unref(u->store->index, &u->iu);
    free(u->recent);
    free(u->address);
    free(u->root);
    free(u);
}

const char *store_user_address(const struct store_user *user)
{
    return user->address;
}

void store_user_set_quota(struct store_user *user, uint64_t quota_bytes)
{
    user->quota_bytes = quota_bytes;
}

uint64_t store_user_quota(const struct store_user *user)
{
    return user->quota_bytes;
}

/* ---- reads ---- */

/* Read transactions: a snapshot that never waits for writers. */
static int read_begin(struct store_user *user, DB_TXN **txn)
{
    return index_txn_begin(user->store->index, true, txn);
}

static int read_end(DB_TXN *txn, int r)
{
    index_txn_commit(txn, false);
    return r;
}

uint64_t store_user_bytes_used(struct store_user *user)
{
    DB_TXN *txn;
    if (read_begin(user, &txn) != 0)
        return 0;
    struct index_user_rec rec;
    uint64_t used = 0;
    if (index_get_user(user->iu->db, txn, false, &rec) == 0) {
        used = rec.bytes_used;
        index_user_rec_clear(&rec);
    }
    read_end(txn, 0);
    return used;
}

static int map_read_error(int r)
{
    if (r == 0)
        return STORE_OK;
    if (r == DB_NOTFOUND)
        return STORE_ERR_NOT_FOUND;
    mg_log_error("store", "index read failed: %s", db_strerror(r));
    return STORE_ERR_INTERNAL;
}

static bool is_subscribed(struct store_user *user, DB_TXN *txn, const char *name)
{
    struct mg_buf k = MG_BUF_INIT;
    mg_buf_append_byte(&k, 'S');
    mg_buf_append_str(&k, name);
    DBT key = { .data = k.data, .size = (u_int32_t)k.len };
    DBT data = { .flags = DB_DBT_USERMEM | DB_DBT_PARTIAL };
    int r = user->iu->db->get(user->iu->db, txn, &key, &data, 0);
    mg_buf_free(&k);
    return r == 0;
}

int store_mailbox_get(struct store_user *user, const char *name, struct store_mailbox *mbox_r)
{
    DB_TXN *txn;
    if (read_begin(user, &txn) != 0)
        return STORE_ERR_INTERNAL;
    int r = index_get_mailbox(user->iu->db, txn, name, false, &mbox_r->rec);
    if (r == 0) {
        snprintf(mbox_r->name, sizeof(mbox_r->name), "%s", name);
        mbox_r->is_subscribed = is_subscribed(user, txn, name);
    }
    return read_end(txn, map_read_error(r));
}

int store_mailbox_get_by_id(struct store_user *user, uint32_t id, struct store_mailbox *mbox_r)
{
    DB_TXN *txn;
    if (read_begin(user, &txn) != 0)
        return STORE_ERR_INTERNAL;
    char *name = NULL;
    int r = index_get_mailbox_name(user->iu->db, txn, id, &name);
    if (r == 0)
        r = index_get_mailbox(user->iu->db, txn, name, false, &mbox_r->rec);
    if (r == 0) {
        snprintf(mbox_r->name, sizeof(mbox_r->name), "%s", name);
        mbox_r->is_subscribed = is_subscribed(user, txn, name);
    }
    free(name);
    return read_end(txn, map_read_error(r));
}

struct list_ctx {
    struct store_user *user;
    DB_TXN *txn;
    int (*cb)(const struct store_mailbox *mbox, void *ctx);
    void *ctx;
};

static int list_cb(const char *name, const struct index_mailbox_rec *rec, void *ctx)
{
    struct list_ctx *l = ctx;
    struct store_mailbox m;
    snprintf(m.name, sizeof(m.name), "%s", name);
    m.rec = *rec;
    m.is_subscribed = is_subscribed(l->user, l->txn, name);
    return l->cb(&m, l->ctx);
}

int store_mailbox_list(struct store_user *user,
                       int (*cb)(const struct store_mailbox *mbox, void *ctx), void *ctx)
{
    DB_TXN *txn;
    if (read_begin(user, &txn) != 0)
        return STORE_ERR_INTERNAL;
    struct list_ctx l = { user, txn, cb, ctx };
    int r = index_walk_mailboxes(user->iu->db, txn, list_cb, &l);
    return read_end(txn, r < 0 ? map_read_error(r) : r);
}

int store_subscription_list(struct store_user *user, int (*cb)(const char *name, void *ctx),
                            void *ctx)
{
    DB_TXN *txn;
    if (read_begin(user, &txn) != 0)
        return STORE_ERR_INTERNAL;
    int r = index_walk_subscriptions(user->iu->db, txn, cb, ctx);
    return read_end(txn, r < 0 ? map_read_error(r) : r);
}

int store_msg_list(struct store_user *user, uint32_t mailbox_id, uint32_t first, uint32_t last,
                   index_msg_cb *cb, void *ctx)
{
    DB_TXN *txn;
    if (read_begin(user, &txn) != 0)
        return STORE_ERR_INTERNAL;
    int r = index_walk_msgs(user->iu->db, txn, mailbox_id, first, last, cb, ctx);
    return read_end(txn, r < 0 ? map_read_error(r) : r);
}

int store_msg_get(struct store_user *user, uint32_t mailbox_id, uint32_t uid,
                  struct index_msg_rec *rec_r)
{
    DB_TXN *txn;
    if (read_begin(user, &txn) != 0)
        return STORE_ERR_INTERNAL;
    int r = index_get_msg(user->iu->db, txn, mailbox_id, uid, false, rec_r);
    return read_end(txn, map_read_error(r));
}

int store_msg_cache(struct store_user *user, uint32_t mailbox_id, uint32_t uid,
                    struct mg_buf *out, struct store_msg_cache *cache_r)
{
    DB_TXN *txn;
    if (read_begin(user, &txn) != 0)
        return STORE_ERR_INTERNAL;
    size_t off[3], len[3];
    int r = index_get_cache(user->iu->db, txn, mailbox_id, uid, out, off, len);
    if (r == 0) {
        cache_r->envelope_off = off[0];
        cache_r->envelope_len = len[0];
        cache_r->bodystructure_off = off[1];
        cache_r->bodystructure_len = len[1];
        cache_r->body_off = off[2];
        cache_r->body_len = len[2];
    }
    return read_end(txn, map_read_error(r));
}

char *store_folder_path(const char *root, const char *mailbox)
{
    char *disk = mailbox_name_to_disk(mailbox);
    char *path = maildir_folder_path(root, disk);
    free(disk);
    return path;
}

char *store_msg_path(struct store_user *user, const char *mailbox, const struct index_msg_rec *rec)
{
    char *folder = store_folder_path(user->root, mailbox);
    char rel[MAILDIR_BASE_MAX + 16];
    maildir_file_rel(rel, sizeof(rel), rec->base, rec->in_new, rec->flags);
    char *path = mg_asprintf("%s/%s", folder, rel);
    free(folder);
    return path;
}

int store_msg_open(struct store_user *user, const char *mailbox, const struct index_msg_rec *rec)
{
    char *path = store_msg_path(user, mailbox, rec);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    int err = errno;
    free(path);
    if (fd >= 0)
        return fd;
    if (err != ENOENT)
        return -err;
    /* A flag change may have renamed the file since the record was read:
     * read the record again, which names the file as it is now. */
    struct store_mailbox m;
    struct index_msg_rec fresh;
    if (store_mailbox_get(user, mailbox, &m) != 0 ||
        store_msg_get(user, m.rec.id, rec->uid, &fresh) != 0)
        return -ENOENT;
    path = store_msg_path(user, mailbox, &fresh);
    fd = open(path, O_RDONLY | O_CLOEXEC);
    err = errno;
    free(path);
    return fd >= 0 ? fd : -err;
}

int store_changes_since(struct store_user *user, uint32_t mailbox_id, uint64_t modseq,
                        int (*changed_cb)(uint32_t uid, uint64_t modseq, void *ctx),
                        int (*expunged_cb)(uint32_t uid, uint64_t modseq, void *ctx), void *ctx)
{
    DB_TXN *txn;
    if (read_begin(user, &txn) != 0)
        return STORE_ERR_INTERNAL;
    int r = 0;
    if (expunged_cb != NULL)
        r = index_walk_expunges(user->iu->db, txn, mailbox_id, modseq, expunged_cb, ctx);
    if (r == 0 && changed_cb != NULL)
        r = index_walk_changes(user->iu->db, txn, mailbox_id, modseq, changed_cb, ctx);
    return read_end(txn, r < 0 ? map_read_error(r) : r);
}

int store_keywords(struct store_user *user, char ***names_r, unsigned *count_r)
{
    DB_TXN *txn;
    if (read_begin(user, &txn) != 0)
        return STORE_ERR_INTERNAL;
    struct index_user_rec rec;
    int r = index_get_user(user->iu->db, txn, false, &rec);
    *names_r = NULL;
    *count_r = 0;
    if (r == 0) {
        *names_r = mg_calloc(rec.keyword_count + 1, sizeof(char *));
        for (unsigned i = 0; i < rec.keyword_count; i++)
            (*names_r)[i] = mg_strdup(rec.keywords[i]);
        *count_r = rec.keyword_count;
        index_user_rec_clear(&rec);
    }
    if (r == DB_NOTFOUND)
        r = 0;
    return read_end(txn, map_read_error(r));
}

void store_keywords_free(char **names, unsigned count)
{
    for (unsigned i = 0; i < count; i++)
        free(names[i]);
    free(names);
}

/* ---- watchers ---- */

struct store_watch *store_watch_add(struct store_user *user, uint32_t mailbox_id,
                                    void (*cb)(void *ctx), void *ctx)
{
    struct store *store = user->store;
    struct store_watch *w = mg_calloc(1, sizeof(*w));
    w->store = store;
    w->address = mg_strdup(user->address);
    w->mailbox_id = mailbox_id;
    w->cb = cb;
    w->ctx = ctx;
    w->next = mg_strmap_get(store->watches, user->address);
    mg_strmap_set(store->watches, user->address, w);
    return w;
}

void store_watch_remove(struct store_watch **watch)
{
    struct store_watch *w = *watch;
    if (w == NULL)
        return;
    *watch = NULL;
    struct store_watch *head = mg_strmap_get(w->store->watches, w->address);
    struct store_watch **pp = &head;
    while (*pp != NULL && *pp != w)
        pp = &(*pp)->next;
    if (*pp == w)
        *pp = w->next;
    if (head == NULL)
        mg_strmap_remove(w->store->watches, w->address);
    else
        mg_strmap_set(w->store->watches, w->address, head);
    free(w->address);
    free(w);
}

void store_notify(struct store *store, const char *address, uint32_t mailbox_id)
{
    /* Collect first: a callback may add or remove watches. */
    struct store_watch *w = mg_strmap_get(store->watches, address);
    size_t n = 0;
    for (struct store_watch *p = w; p != NULL; p = p->next)
        n++;
    if (n == 0)
        return;
    struct { void (*cb)(void *); void *ctx; } *calls = mg_calloc(n, sizeof(*calls));
    size_t k = 0;
    for (struct store_watch *p = w; p != NULL; p = p->next) {
        if (mailbox_id == 0 || p->mailbox_id == mailbox_id || p->mailbox_id == 0) {
            calls[k].cb = p->cb;
            calls[k].ctx = p->ctx;
            k++;
        }
    }
    for (size_t i = 0; i < k; i++)
        calls[i].cb(calls[i].ctx);
    free(calls);
}
