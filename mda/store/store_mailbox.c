/* Mailbox jobs: CREATE, DELETE, RENAME, SUBSCRIBE. */
#include "mda/store/store_private.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "common/alloc.h"
#include "common/buf.h"
#include "common/log.h"

struct mailbox_job {
    struct store_job job;
    struct store_user *user;
    char *name;
    char *to;
    enum store_special_use use;
    bool flag;
    uint32_t notify_id;
    store_done_cb *cb;
    void *ctx;
};

static void mailbox_after(struct store_job *job)
{
    struct mailbox_job *j = (struct mailbox_job *)job;
    if (job->status == 0)
        store_notify(job->store, j->user->address, j->notify_id);
    j->cb(job->status, job->status ? job->error : NULL, j->ctx);
    store_user_unref(&j->user);
    free(j->name);
    free(j->to);
    free(j);
}

static struct mailbox_job *mailbox_job_new(struct store_user *user, const char *name,
                                           store_done_cb *cb, void *ctx)
{
    struct mailbox_job *j = mg_calloc(1, sizeof(*j));
    j->user = user;
    store_user_ref(user);
    j->name = mg_strdup(name);
    j->cb = cb;
    j->ctx = ctx;
    return j;
}

/* ---- CREATE ---- */

static bool mailbox_exists(struct store *store, struct store_user *user, const char *name,
                           struct index_mailbox_rec *rec)
{
    DB_TXN *txn;
    struct index_mailbox_rec tmp;
    bool exists = false;
    if (index_txn_begin(store->index, true, &txn) == 0) {
        exists = index_get_mailbox(user->iu->db, txn, name, false, rec != NULL ? rec : &tmp) == 0;
        index_txn_commit(txn, false);
    }
    return exists;
}

static void create_work(struct store_job *job)
{
    struct mailbox_job *j = (struct mailbox_job *)job;
    if (mailbox_exists(job->store, j->user, j->name, NULL)) {
        store_job_set_error(job, STORE_ERR_EXISTS, "Mailbox already exists");
        return;
    }
    /* Parents are created too (RFC 3501 6.3.3: CREATE a/b/c creates a and
     * a/b when needed), as ordinary selectable mailboxes like Dovecot. */
    char *path = mg_strdup(j->name);
    for (char *p = strchr(path, MAILBOX_SEPARATOR); p != NULL; p = strchr(p + 1, MAILBOX_SEPARATOR)) {
        *p = '\0';
        if (!mailbox_exists(job->store, j->user, path, NULL)) {
            int r = store_create_mailbox_locked(job->store, j->user->iu, j->user->root, path,
                                                STORE_SPECIAL_NONE, false, NULL);
            if (r != 0) {
                store_job_set_error(job, store_status_from_errno(r > 0 ? r : EIO),
                                    "Cannot create mailbox");
                free(path);
                return;
            }
        }
        *p = MAILBOX_SEPARATOR;
    }
    free(path);
    bool created = false;
    int r = store_create_mailbox_locked(job->store, j->user->iu, j->user->root, j->name, j->use,
                                        false, &created);
    if (r != 0)
        store_job_set_error(job, store_status_from_errno(r > 0 ? r : EIO), "Cannot create mailbox");
    else if (!created)
        store_job_set_error(job, STORE_ERR_EXISTS, "Mailbox already exists");
}

void store_mailbox_create(struct store_user *user, const char *name, enum store_special_use use,
                          store_done_cb *cb, void *ctx)
{
    struct mailbox_job *j = mailbox_job_new(user, name, cb, ctx);
    j->use = use;
    store_job_start(user->store, &j->job, create_work, mailbox_after);
}

/* ---- DELETE ---- */

static int has_children_cb(const char *name, const struct index_mailbox_rec *rec, void *ctx)
{
    (void)rec;
    const char *parent = ctx;
    return mailbox_name_is_child(parent, name) ? 1 : 0;
}

static int rmtree(const char *path)
{
    DIR *d = opendir(path);
    if (d == NULL)
        return errno == ENOENT ? 0 : -errno;
    struct dirent *de;
    int r = 0;
    while ((de = readdir(d)) != NULL) {
        if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
            continue;
        char *p = mg_asprintf("%s/%s", path, de->d_name);
        struct stat st;
        if (lstat(p, &st) == 0 && S_ISDIR(st.st_mode))
            r = rmtree(p);
        else if (unlink(p) != 0)
            r = -errno;
        free(p);
        if (r != 0)
            break;
    }
    closedir(d);
    if (r == 0 && rmdir(path) != 0)
        r = -errno;
    return r;
}

struct delete_ctx {
    struct mailbox_job *j;
    DB *db;
};

static int collect_for_delete(const struct index_msg_rec *rec, void *ctx)
{
    struct { uint32_t *uids; size_t n; } *c = ctx;
    c->uids = mg_reallocarray(c->uids, c->n + 1, sizeof(*c->uids));
    c->uids[c->n++] = rec->uid;
    return 0;
}

static int delete_body(DB_TXN *txn, void *ctx)
{
    struct delete_ctx *d = ctx;
    struct index_mailbox_rec mbox;
    int r = index_get_mailbox(d->db, txn, d->j->name, true, &mbox);
    if (r != 0)
        return r;
    d->j->notify_id = mbox.id;
    struct { uint32_t *uids; size_t n; } c = { NULL, 0 };
    r = index_walk_msgs(d->db, txn, mbox.id, 1, UINT32_MAX, collect_for_delete, &c);
    /* Cleared below on every path, also when the walk failed (a deadlock
     * with a concurrent writer is retried) and the record was never read. */
    struct index_user_rec user = { 0 };
    if (r == 0)
        r = index_get_user(d->db, txn, true, &user);
    for (size_t i = 0; r == 0 && i < c.n; i++) {
        struct index_msg_rec rec;
        if ((r = index_get_msg(d->db, txn, mbox.id, c.uids[i], true, &rec)) != 0)
            break;
        r = index_del_msg(d->db, txn, mbox.id, &rec, mbox.highestmodseq + 1);
        user.bytes_used -= rec.size < user.bytes_used ? rec.size : user.bytes_used;
        if (user.message_count > 0)
            user.message_count--;
    }
    free(c.uids);
    if (r == 0)
        r = index_prune_expunges(d->db, txn, mbox.id, UINT64_MAX);
    if (r == 0)
        r = index_del_mailbox(d->db, txn, d->j->name, mbox.id);
    if (r == 0)
        r = index_put_user(d->db, txn, &user);
    index_user_rec_clear(&user);
    return r;
}

static void delete_work(struct store_job *job)
{
    struct mailbox_job *j = (struct mailbox_job *)job;
    if (mailbox_name_is_inbox(j->name)) {
        store_job_set_error(job, STORE_ERR_INVALID, "INBOX cannot be deleted");
        return;
    }
    DB_TXN *txn;
    int children = 0;
    if (index_txn_begin(job->store->index, true, &txn) == 0) {
        children = index_walk_mailboxes(j->user->iu->db, txn, has_children_cb, j->name);
        index_txn_commit(txn, false);
    }
    if (children == 1) {
        /* Like Dovecot: children first (a \Noselect ghost of the parent
         * would confuse more clients than it helps). */
        store_job_set_error(job, STORE_ERR_HAS_CHILDREN, "Mailbox has children, delete them first");
        return;
    }
    struct delete_ctx d = { j, j->user->iu->db };
    int r = store_txn_run(job->store, true, delete_body, NULL, &d);
    if (r == DB_NOTFOUND) {
        store_job_set_error(job, STORE_ERR_NOT_FOUND, "Mailbox doesn't exist");
        return;
    }
    if (r != 0) {
        store_job_set_error(job, STORE_ERR_INTERNAL, "Cannot delete mailbox");
        return;
    }
    /* Gone from the index: take the folder away. A crash before this only
     * leaves a folder that the next verification picks up again. */
    char *folder = store_folder_path(j->user->root, j->name);
    char *trash = mg_asprintf("%s/.deleted-%ld-%u", j->user->root, (long)time(NULL), j->notify_id);
    if (rename(folder, trash) == 0) {
        maildir_fsync_dir(j->user->root);
        rmtree(trash);
    }
    free(folder);
    free(trash);
}

void store_mailbox_delete(struct store_user *user, const char *name, store_done_cb *cb, void *ctx)
{
    struct mailbox_job *j = mailbox_job_new(user, name, cb, ctx);
    store_job_start(user->store, &j->job, delete_work, mailbox_after);
}

/* ---- RENAME ---- */

struct rename_item {
    char *from, *to;
    struct index_mailbox_rec rec;
};

struct rename_ctx {
    struct mailbox_job *j;
    DB *db;
    struct rename_item *items;
    size_t n;
};

static int rename_collect_cb(const char *name, const struct index_mailbox_rec *rec, void *ctx)
{
    struct rename_ctx *c = ctx;
    if (strcmp(name, c->j->name) != 0 && !mailbox_name_is_child(c->j->name, name))
        return 0;
    c->items = mg_reallocarray(c->items, c->n + 1, sizeof(*c->items));
    c->items[c->n].from = mg_strdup(name);
    c->items[c->n].to = mg_asprintf("%s%s", c->j->to, name + strlen(c->j->name));
    c->items[c->n].rec = *rec;
    c->n++;
    return 0;
}

static void rename_items_free(struct rename_ctx *c)
{
    for (size_t i = 0; i < c->n; i++) {
        free(c->items[i].from);
        free(c->items[i].to);
    }
    free(c->items);
    c->items = NULL;
    c->n = 0;
}

static int rename_body(DB_TXN *txn, void *ctx)
{
    struct rename_ctx *c = ctx;
    rename_items_free(c);
    int r = index_walk_mailboxes(c->db, txn, rename_collect_cb, c);
    if (r != 0)
        return r;
    if (c->n == 0)
        return DB_NOTFOUND;
    for (size_t i = 0; i < c->n; i++) {
        struct index_mailbox_rec exists;
        if (index_get_mailbox(c->db, txn, c->items[i].to, false, &exists) == 0)
            return STORE_ERR_EXISTS;
    }
    for (size_t i = 0; r == 0 && i < c->n; i++) {
        r = index_del_mailbox(c->db, txn, c->items[i].from, c->items[i].rec.id);
        if (r == 0)
            r = index_put_mailbox(c->db, txn, c->items[i].to, &c->items[i].rec, true);
        /* Subscriptions follow the mailbox. */
        struct mg_buf k = MG_BUF_INIT;
        mg_buf_append_byte(&k, 'S');
        mg_buf_append_str(&k, c->items[i].from);
        DBT key = { .data = k.data, .size = (u_int32_t)k.len };
        DBT data = { .flags = DB_DBT_USERMEM | DB_DBT_PARTIAL };
        if (r == 0 && c->db->get(c->db, txn, &key, &data, 0) == 0) {
            r = index_put_subscription(c->db, txn, c->items[i].from, false);
            if (r == 0)
                r = index_put_subscription(c->db, txn, c->items[i].to, true);
        }
        mg_buf_free(&k);
    }
    return r;
}

static int rename_before_commit(void *ctx)
{
    struct rename_ctx *c = ctx;
    /* Parents before children: renaming ".A" does not move ".A.B" (Maildir++
     * is flat), so every folder is renamed on its own. */
    for (size_t i = 0; i < c->n; i++) {
        char *from = store_folder_path(c->j->user->root, c->items[i].from);
        char *to = store_folder_path(c->j->user->root, c->items[i].to);
        int r = rename(from, to) == 0 ? 0 : errno;
        free(from);
        free(to);
        if (r != 0 && r != ENOENT)
            return r;
    }
    maildir_fsync_dir(c->j->user->root);
    return 0;
}

static void rename_work(struct store_job *job)
{
    struct mailbox_job *j = (struct mailbox_job *)job;
    if (mailbox_name_is_inbox(j->to) || mailbox_name_is_child(j->name, j->to) ||
        strcmp(j->name, j->to) == 0) {
        store_job_set_error(job, STORE_ERR_INVALID, "Cannot rename a mailbox to that name");
        return;
    }
    if (mailbox_exists(job->store, j->user, j->to, NULL)) {
        store_job_set_error(job, STORE_ERR_EXISTS, "Target mailbox already exists");
        return;
    }
    if (mailbox_name_is_inbox(j->name)) {
        /* RFC 3501 6.3.5: renaming INBOX moves its messages to a new
         * mailbox and leaves INBOX empty. */
        int r = store_create_mailbox_locked(job->store, j->user->iu, j->user->root, j->to,
                                            STORE_SPECIAL_NONE, false, NULL);
        if (r != 0)
            store_job_set_error(job, STORE_ERR_INTERNAL, "Cannot create the target mailbox");
        else
            j->flag = true; /* the loop side moves the messages */
        return;
    }
    /* Parents of the target are created like CREATE does. */
    char *path = mg_strdup(j->to);
    for (char *p = strchr(path, MAILBOX_SEPARATOR); p != NULL; p = strchr(p + 1, MAILBOX_SEPARATOR)) {
        *p = '\0';
        if (!mailbox_exists(job->store, j->user, path, NULL))
            store_create_mailbox_locked(job->store, j->user->iu, j->user->root, path,
                                        STORE_SPECIAL_NONE, false, NULL);
        *p = MAILBOX_SEPARATOR;
    }
    free(path);
    struct rename_ctx c = { j, j->user->iu->db, NULL, 0 };
    /* Subscriptions follow the mailboxes (rename_body). */
    pthread_mutex_lock(&j->user->iu->subscriptions_lock);
    int r = store_txn_run(job->store, true, rename_body, rename_before_commit, &c);
    if (r == 0)
        store_save_subscriptions(job->store, j->user->iu, j->user->root);
    pthread_mutex_unlock(&j->user->iu->subscriptions_lock);
    rename_items_free(&c);
    if (r == DB_NOTFOUND)
        store_job_set_error(job, STORE_ERR_NOT_FOUND, "Mailbox doesn't exist");
    else if (r == STORE_ERR_EXISTS)
        store_job_set_error(job, STORE_ERR_EXISTS, "Target mailbox already exists");
    else if (r != 0)
        store_job_set_error(job, STORE_ERR_INTERNAL, "Cannot rename mailbox");
}

struct inbox_move {
    struct mailbox_job *j;
};

static int collect_all_cb(const struct index_msg_rec *rec, void *ctx)
{
    struct { uint32_t *uids; size_t n; } *c = ctx;
    c->uids = mg_reallocarray(c->uids, c->n + 1, sizeof(*c->uids));
    c->uids[c->n++] = rec->uid;
    return 0;
}

static void inbox_moved_cb(int status, const char *error, uint32_t dst_uidvalidity,
                           const uint32_t *uids, const uint32_t *new_uids, size_t count, void *ctx)
{
    (void)dst_uidvalidity;
    (void)uids;
    (void)new_uids;
    (void)count;
    struct mailbox_job *j = ctx;
    j->cb(status, error, j->ctx);
    store_user_unref(&j->user);
    free(j->name);
    free(j->to);
    free(j);
}

static void rename_after(struct store_job *job)
{
    struct mailbox_job *j = (struct mailbox_job *)job;
    if (job->status == 0 && j->flag) {
        struct store_mailbox inbox;
        struct { uint32_t *uids; size_t n; } c = { NULL, 0 };
        if (store_mailbox_get(j->user, "INBOX", &inbox) == 0)
            store_msg_list(j->user, inbox.rec.id, 1, UINT32_MAX, collect_all_cb, &c);
        store_copy(j->user, inbox.rec.id, c.uids, c.n, j->to, true, inbox_moved_cb, j);
        free(c.uids);
        return;
    }
    mailbox_after(job);
}

void store_mailbox_rename(struct store_user *user, const char *from, const char *to,
                          store_done_cb *cb, void *ctx)
{
    struct mailbox_job *j = mailbox_job_new(user, from, cb, ctx);
    j->to = mg_strdup(to);
    store_job_start(user->store, &j->job, rename_work, rename_after);
}

/* ---- SUBSCRIBE ---- */

static int subscribe_body(DB_TXN *txn, void *ctx)
{
    struct mailbox_job *j = ctx;
    return index_put_subscription(j->user->iu->db, txn, j->name, j->flag);
}

static void subscribe_work(struct store_job *job)
{
    struct mailbox_job *j = (struct mailbox_job *)job;
    struct index_user *iu = j->user->iu;
    pthread_mutex_lock(&iu->subscriptions_lock);
    int r = store_txn_run(job->store, false, subscribe_body, NULL, j);
    if (r == 0)
        r = store_save_subscriptions(job->store, iu, j->user->root);
    pthread_mutex_unlock(&iu->subscriptions_lock);
    if (r != 0)
        store_job_set_error(job, STORE_ERR_INTERNAL, "Cannot change subscription");
}

void store_subscribe(struct store_user *user, const char *name, bool subscribe,
                     store_done_cb *cb, void *ctx)
{
    struct mailbox_job *j = mailbox_job_new(user, name, cb, ctx);
    j->flag = subscribe;
    j->notify_id = UINT32_MAX; /* nobody watches subscriptions */
    store_job_start(user->store, &j->job, subscribe_work, mailbox_after);
}
