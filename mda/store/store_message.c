/* Adding messages (APPEND, COPY, MOVE; delivery is in store_deliver.c),
 * changing flags and expunging. Every job does its file work and its
 * index transaction on the thread pool; files reach their final name
 * before the transaction commits, so a process that dies in between leaves
 * a file the next verification adopts. APPEND syncs the directory while
 * the commit flushes the log: after a power cut that kept the commit and
 * lost the rename, verification drops the entry (no client got an OK). */
#include "mda/store/store_private.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/alloc.h"
#include "common/arena.h"
#include "common/buf.h"
#include "common/log.h"
#include "mda/mime/imap_bodystructure.h"
#include "mda/mime/imap_envelope.h"
#include "mda/mime/mime_parser.h"

/* ---- shared pieces ---- */

void store_compute_cache_mem(const char *data, size_t size, struct mg_buf *out, size_t off_r[3],
                             size_t len_r[3])
{
    struct mg_arena *arena = mg_arena_new(16384);
    struct mime_part *root = mime_parser_parse(arena, data, size);
    off_r[0] = out->len;
    imap_envelope_write(out, data, root);
    len_r[0] = out->len - off_r[0];
    off_r[1] = out->len;
    imap_bodystructure_write(out, data, root, IMAP_BODYSTRUCTURE_FLAG_EXTENDED);
    len_r[1] = out->len - off_r[1];
    off_r[2] = out->len;
    imap_bodystructure_write(out, data, root, 0);
    len_r[2] = out->len - off_r[2];
    mg_arena_free(&arena);
}

void store_new_msg_set_cache(struct store_new_msg *msg, const struct mg_buf *cache,
                             const size_t off[3], const size_t len[3])
{
    msg->cache_env = cache->data + off[0];
    msg->cache_env_len = len[0];
    msg->cache_bs = cache->data + off[1];
    msg->cache_bs_len = len[1];
    msg->cache_body = cache->data + off[2];
    msg->cache_body_len = len[2];
}

int store_compute_cache(const char *path, struct mg_buf *out, size_t off_r[3], size_t len_r[3])
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -errno;
    struct stat st;
    if (fstat(fd, &st) != 0) {
        int e = errno;
        close(fd);
        return -e;
    }
    size_t size = (size_t)st.st_size;
    const char *data = "";
    void *map = NULL;
    if (size > 0) {
        map = mmap(NULL, size, PROT_READ, MAP_PRIVATE, fd, 0);
        if (map == MAP_FAILED) {
            int e = errno;
            close(fd);
            return -e;
        }
        data = map;
    }
    close(fd);
    store_compute_cache_mem(data, size, out, off_r, len_r);
    if (map != NULL)
        munmap(map, size);
    return 0;
}

int store_txn_add_msg(DB *db, DB_TXN *txn, struct index_mailbox_rec *mbox,
                      struct index_user_rec *user, struct store_new_msg *msg)
{
    if (msg->uid == 0)
        msg->uid = mbox->uidnext;
    if (msg->uid >= mbox->uidnext)
        mbox->uidnext = msg->uid + 1;
    mbox->highestmodseq++;
    struct index_msg_rec rec = { 0 };
    rec.uid = msg->uid;
    rec.flags = msg->flags & MAILDIR_FLAGS_ALL;
    rec.keywords = msg->keywords;
    rec.internaldate = msg->internaldate;
    rec.size = msg->size;
    rec.modseq = mbox->highestmodseq;
    rec.in_new = msg->in_new;
    snprintf(rec.base, sizeof(rec.base), "%s", msg->base);
    int r = index_put_msg(db, txn, mbox->id, &rec, 0);
    if (r == 0 && msg->cache_env != NULL)
        r = index_put_cache(db, txn, mbox->id, msg->uid, msg->cache_env, msg->cache_env_len,
                            msg->cache_bs, msg->cache_bs_len, msg->cache_body,
                            msg->cache_body_len);
    if (r != 0)
        return r;
    mbox->messages++;
    if (!(rec.flags & MAILDIR_FLAG_SEEN))
        mbox->unseen++;
    if (rec.flags & MAILDIR_FLAG_DELETED)
        mbox->deleted++;
    mbox->bytes += msg->size;
    user->bytes_used += msg->size;
    user->message_count++;
    return 0;
}

/* Keyword names to bits, creating new names in the user record. */
static int keywords_to_bits(struct index_user_rec *user, const struct store_flags *flags,
                            bool create, uint64_t *bits_r, bool *changed_r)
{
    uint64_t bits = 0;
    for (unsigned i = 0; i < flags->keyword_count; i++) {
        const char *kw = flags->keywords[i];
        unsigned k = 0;
        for (; k < user->keyword_count; k++) {
            if (strcasecmp(user->keywords[k], kw) == 0)
                break;
        }
        if (k == user->keyword_count) {
            if (!create)
                continue;
            if (user->keyword_count >= INDEX_KEYWORDS_MAX)
                return STORE_ERR_LIMIT;
            user->keywords[user->keyword_count++] = mg_strdup(kw);
            *changed_r = true;
        }
        bits |= 1ull << k;
    }
    *bits_r = bits;
    return 0;
}

static const char *status_text(int status)
{
    switch (status) {
    case STORE_ERR_NOT_FOUND: return "no such mailbox";
    case STORE_ERR_OVER_QUOTA: return "quota exceeded";
    case STORE_ERR_NO_SPACE: return "out of disk space";
    case STORE_ERR_LIMIT: return "too many keywords";
    default: return "internal error";
    }
}

static void fsync_folder_dirs(const char *folder, bool cur, bool nw)
{
    if (cur) {
        char *p = mg_asprintf("%s/cur", folder);
        maildir_fsync_dir(p);
        free(p);
    }
    if (nw) {
        char *p = mg_asprintf("%s/new", folder);
        maildir_fsync_dir(p);
        free(p);
    }
}

/* Once the highest UIDs are gone, a rebuild from the Maildir could not
 * tell UIDNEXT any more: the folder keeps it (see maildir.h). */
static int write_uidnext(const char *folder, uint32_t uidnext)
{
    char value[16];
    snprintf(value, sizeof(value), "%u", uidnext);
    int r = maildir_folder_write_meta(folder, MAILDIR_UIDNEXT_FILE, value);
    return r < 0 ? -r : 0;
}

/* ---- APPEND ---- */

char *store_user_tmp_path(struct store_user *user, char **base_r)
{
    char base[MAILDIR_BASE_MAX];
    maildir_new_base(base);
    *base_r = mg_strdup(base);
    return mg_asprintf("%s/tmp/%s", user->root, base);
}

struct append_job {
    struct store_job job;
    struct store_user *user;
    char *mailbox;
    char *tmp_base;
    char *folder;
    char **keywords;
    unsigned keyword_count;
    uint32_t flags;
    time_t internaldate;
    uint64_t size;
    struct mg_buf cache;
    size_t cache_off[3], cache_len[3];
    uint32_t uid, uidvalidity, mailbox_id;
    char final_rel[MAILDIR_BASE_MAX + 16];
    char *cur_dir;
    struct fsync_req dir_sync;
    bool is_dir_sync_started;
    store_append_cb *cb;
    void *ctx;
};

static int append_body(DB_TXN *txn, void *ctx)
{
    struct append_job *j = ctx;
    DB *db = j->user->iu->db;
    struct index_user_rec user;
    int r = index_get_user(db, txn, true, &user);
    if (r != 0)
        return r;
    if (j->user->quota_bytes != 0 && user.bytes_used + j->size > j->user->quota_bytes) {
        index_user_rec_clear(&user);
        return STORE_ERR_OVER_QUOTA;
    }
    struct index_mailbox_rec mbox;
    r = index_get_mailbox(db, txn, j->mailbox, true, &mbox);
    if (r != 0) {
        index_user_rec_clear(&user);
        return r;
    }
    struct store_flags f = { j->flags, (const char *const *)j->keywords, j->keyword_count };
    struct store_new_msg msg = { 0 };
    bool kw_changed = false;
    r = keywords_to_bits(&user, &f, true, &msg.keywords, &kw_changed);
    if (r == 0) {
        msg.flags = j->flags;
        msg.internaldate = j->internaldate;
        msg.size = j->size;
        msg.uid = mbox.uidnext;
        maildir_final_base(msg.base, j->tmp_base, j->size, msg.uid);
        store_new_msg_set_cache(&msg, &j->cache, j->cache_off, j->cache_len);
        r = store_txn_add_msg(db, txn, &mbox, &user, &msg);
    }
    if (r == 0)
        r = index_put_mailbox(db, txn, j->mailbox, &mbox, false);
    if (r == 0)
        r = index_put_user(db, txn, &user);
    j->uid = msg.uid;
    j->uidvalidity = mbox.uidvalidity;
    j->mailbox_id = mbox.id;
    maildir_file_rel(j->final_rel, sizeof(j->final_rel), msg.base, false, msg.flags);
    index_user_rec_clear(&user);
    return r;
}

static int append_before_commit(void *ctx)
{
    struct append_job *j = ctx;
    char *from = mg_asprintf("%s/tmp/%s", j->user->root, j->tmp_base);
    char *to = mg_asprintf("%s/%s", j->folder, j->final_rel);
    int r = rename(from, to) == 0 ? 0 : errno;
    free(from);
    free(to);
    if (r == 0) {
        /* The directory's sync runs while the commit flushes the log (a
         * crash that keeps the commit and loses the rename leaves an
         * entry without a file, which the next verification drops: the
         * client got no OK). */
        j->cur_dir = mg_asprintf("%s/cur", j->folder);
        fsync_pool_dirsync(j->job.store->syncer, &j->dir_sync, j->cur_dir);
        j->is_dir_sync_started = true;
    }
    return r;
}

static void append_work(struct store_job *job)
{
    struct append_job *j = (struct append_job *)job;
    char *tmp = mg_asprintf("%s/tmp/%s", j->user->root, j->tmp_base);
    struct stat st;
    int r = 0;
    int fd = open(tmp, O_RDONLY | O_CLOEXEC);
    /* The file's mtime is the INTERNALDATE a rebuild of the index reads
     * back (as in Dovecot's Maildir): fsync, not fdatasync, keeps it. */
    struct timespec times[2] = { { .tv_nsec = UTIME_OMIT }, { .tv_sec = j->internaldate } };
    if (fd < 0 || fstat(fd, &st) != 0 || futimens(fd, times) != 0 || fsync(fd) != 0)
        r = -errno;
    if (fd >= 0)
        close(fd);
    if (r == 0) {
        j->size = (uint64_t)st.st_size;
        r = store_compute_cache(tmp, &j->cache, j->cache_off, j->cache_len);
    }
    if (r == 0) {
        r = store_txn_run(job->store, true, append_body, append_before_commit, j);
        r = r == 0 ? 0 : r == DB_NOTFOUND ? STORE_ERR_NOT_FOUND : r;
        if (j->is_dir_sync_started) {
            int dr = fsync_pool_wait(job->store->syncer, &j->dir_sync);
            if (r == 0 && dr != 0) {
                mg_log_error("store", "cannot sync an APPEND user=%s uid=%u error=%s",
                             j->user->address, j->uid, strerror(-dr));
                r = -dr;
            }
        }
    }
    if (r != 0) {
        unlink(tmp);
        int status = r < 0 && r >= STORE_ERR_LIMIT ? r : store_status_from_db(r);
        store_job_set_error(job, status, "%s", status_text(status));
    }
    free(tmp);
}

static void append_after(struct store_job *job)
{
    struct append_job *j = (struct append_job *)job;
    if (job->status == 0)
        store_notify(job->store, j->user->address, j->mailbox_id);
    j->cb(job->status, job->status ? job->error : NULL, j->uidvalidity, j->uid, j->ctx);
    store_user_unref(&j->user);
    free(j->mailbox);
    free(j->tmp_base);
    free(j->folder);
    free(j->cur_dir);
    for (unsigned i = 0; i < j->keyword_count; i++)
        free(j->keywords[i]);
    free(j->keywords);
    mg_buf_free(&j->cache);
    free(j);
}

static char **copy_keywords(const struct store_flags *flags)
{
    if (flags == NULL || flags->keyword_count == 0)
        return NULL;
    char **k = mg_calloc(flags->keyword_count, sizeof(char *));
    for (unsigned i = 0; i < flags->keyword_count; i++)
        k[i] = mg_strdup(flags->keywords[i]);
    return k;
}

void store_append(struct store_user *user, const char *mailbox, const char *tmp_base,
                  const struct store_flags *flags, time_t internaldate, store_append_cb *cb,
                  void *ctx)
{
    struct append_job *j = mg_calloc(1, sizeof(*j));
    j->user = user;
    store_user_ref(user);
    j->mailbox = mg_strdup(mailbox);
    j->tmp_base = mg_strdup(tmp_base);
    j->folder = store_folder_path(user->root, mailbox);
    j->flags = flags != NULL ? flags->flags : 0;
    j->keywords = copy_keywords(flags);
    j->keyword_count = flags != NULL ? flags->keyword_count : 0;
    j->internaldate = internaldate;
    j->cb = cb;
    j->ctx = ctx;
    store_job_start(user->store, &j->job, append_work, append_after);
}

/* ---- COPY and MOVE ---- */

struct copy_job {
    struct store_job job;
    struct store_user *user;
    uint32_t src_id;
    uint32_t *uids;
    uint32_t *new_uids;
    size_t count;
    char *dst;
    bool is_move;
    char *src_name;
    char *src_folder;
    char *dst_folder;
    uint32_t dst_uidvalidity, dst_id;
    uint32_t src_uidnext;
    struct link_op { char *from, *to; } *links;
    size_t n_links;
    store_copy_cb *cb;
    void *ctx;
};

static void copy_reset_links(struct copy_job *j)
{
    for (size_t i = 0; i < j->n_links; i++) {
        free(j->links[i].from);
        free(j->links[i].to);
    }
    j->n_links = 0;
}

static int copy_body(DB_TXN *txn, void *ctx)
{
    struct copy_job *j = ctx;
    DB *db = j->user->iu->db;
    copy_reset_links(j);
    free(j->src_name);
    j->src_name = NULL;
    int r = index_get_mailbox_name(db, txn, j->src_id, &j->src_name);
    if (r != 0)
        return r;
    struct index_mailbox_rec src, dst;
    if ((r = index_get_mailbox(db, txn, j->src_name, true, &src)) != 0)
        return r;
    if ((r = index_get_mailbox(db, txn, j->dst, true, &dst)) != 0)
        return r;
    bool same = src.id == dst.id;
    struct index_user_rec user;
    if ((r = index_get_user(db, txn, true, &user)) != 0)
        return r;
    uint64_t src_modseq = src.highestmodseq + 1;
    uint64_t added = 0;
    j->src_uidnext = src.uidnext;
    for (size_t i = 0; r == 0 && i < j->count; i++) {
        j->new_uids[i] = 0;
        struct index_msg_rec rec;
        int g = index_get_msg(db, txn, j->src_id, j->uids[i], true, &rec);
        if (g == DB_NOTFOUND)
            continue; /* expunged meanwhile */
        if (g != 0) {
            r = g;
            break;
        }
        struct mg_buf cache = MG_BUF_INIT;
        size_t off[3] = { 0 }, len[3] = { 0 };
        bool have_cache = index_get_cache(db, txn, j->src_id, rec.uid, &cache, off, len) == 0;
        struct store_new_msg msg = { 0 };
        msg.flags = rec.flags;
        msg.keywords = rec.keywords;
        msg.internaldate = rec.internaldate;
        msg.size = rec.size;
        msg.uid = (same ? src.uidnext : dst.uidnext);
        char unique[MAILDIR_BASE_MAX];
        maildir_new_base(unique);
        maildir_final_base(msg.base, unique, rec.size, msg.uid);
        if (have_cache) {
            store_new_msg_set_cache(&msg, &cache, off, len);
        }
        r = store_txn_add_msg(db, txn, same ? &src : &dst, &user, &msg);
        mg_buf_free(&cache);
        if (r != 0)
            break;
        added += rec.size;
        j->new_uids[i] = msg.uid;
        char from_rel[MAILDIR_BASE_MAX + 16], to_rel[MAILDIR_BASE_MAX + 16];
        maildir_file_rel(from_rel, sizeof(from_rel), rec.base, rec.in_new, rec.flags);
        maildir_file_rel(to_rel, sizeof(to_rel), msg.base, false, msg.flags);
        j->links = mg_reallocarray(j->links, j->n_links + 1, sizeof(*j->links));
        j->links[j->n_links].from = mg_asprintf("%s/%s", j->src_folder, from_rel);
        j->links[j->n_links].to = mg_asprintf("%s/%s", j->dst_folder, to_rel);
        j->n_links++;
        if (j->is_move) {
            r = index_del_msg(db, txn, j->src_id, &rec, src_modseq);
            src.messages--;
            if (!(rec.flags & MAILDIR_FLAG_SEEN))
                src.unseen--;
            if (rec.flags & MAILDIR_FLAG_DELETED)
                src.deleted--;
            src.bytes -= rec.size;
            user.bytes_used -= rec.size;
            user.message_count--;
        }
    }
    if (r == 0 && !j->is_move && j->user->quota_bytes != 0 &&
        user.bytes_used > j->user->quota_bytes && added > 0)
        r = STORE_ERR_OVER_QUOTA;
    if (r == 0 && j->is_move && src.highestmodseq < src_modseq)
        src.highestmodseq = src_modseq;
    if (r == 0)
        r = index_put_mailbox(db, txn, j->src_name, &src, false);
    if (r == 0 && !same)
        r = index_put_mailbox(db, txn, j->dst, &dst, false);
    if (r == 0)
        r = index_put_user(db, txn, &user);
    j->dst_uidvalidity = same ? src.uidvalidity : dst.uidvalidity;
    j->dst_id = dst.id;
    index_user_rec_clear(&user);
    return r;
}

static int copy_before_commit(void *ctx)
{
    struct copy_job *j = ctx;
    /* COPY links (the file is shared, and never changed in place); MOVE
     * renames. Either is atomic per file. */
    if (j->is_move && j->n_links > 0) {
        int r = write_uidnext(j->src_folder, j->src_uidnext);
        if (r != 0)
            return r;
    }
    for (size_t i = 0; i < j->n_links; i++) {
        int r = j->is_move ? rename(j->links[i].from, j->links[i].to)
                           : link(j->links[i].from, j->links[i].to);
        if (r != 0) {
            int e = errno;
            /* Undo what was done so far: the transaction aborts, and the
             * index must keep describing the files. */
            for (size_t k = 0; k < i; k++) {
                if (j->is_move)
                    rename(j->links[k].to, j->links[k].from);
                else
                    unlink(j->links[k].to);
            }
            return e;
        }
    }
    if (j->n_links > 0) {
        fsync_folder_dirs(j->dst_folder, true, false);
        if (j->is_move)
            fsync_folder_dirs(j->src_folder, true, true);
    }
    return 0;
}

/* The folder of mailbox_id, its name read in a transaction of its own:
 * NULL with the job's error set (gone: what to say) when the mailbox no
 * longer exists. */
static char *job_folder(struct store_job *job, struct store_user *user, uint32_t mailbox_id,
                        const char *gone)
{
    DB_TXN *txn;
    char *name = NULL;
    if (index_txn_begin(job->store->index, true, &txn) == 0) {
        index_get_mailbox_name(user->iu->db, txn, mailbox_id, &name);
        index_txn_commit(txn, false);
    }
    if (name == NULL) {
        store_job_set_error(job, STORE_ERR_NOT_FOUND, "%s", gone);
        return NULL;
    }
    char *folder = store_folder_path(user->root, name);
    free(name);
    return folder;
}

static void copy_work(struct store_job *job)
{
    struct copy_job *j = (struct copy_job *)job;
    j->src_folder = job_folder(job, j->user, j->src_id, "source mailbox is gone");
    if (j->src_folder == NULL)
        return;
    j->dst_folder = store_folder_path(j->user->root, j->dst);
    int r = store_txn_run(job->store, true, copy_body, copy_before_commit, j);
    if (r != 0) {
        int status = r < 0 && r >= STORE_ERR_LIMIT ? r : store_status_from_db(r);
        store_job_set_error(job, status, "%s", status_text(status));
    }
}

static void copy_after(struct store_job *job)
{
    struct copy_job *j = (struct copy_job *)job;
    if (job->status == 0) {
        store_notify(job->store, j->user->address, j->dst_id);
        if (j->is_move && j->dst_id != j->src_id)
            store_notify(job->store, j->user->address, j->src_id);
    }
    j->cb(job->status, job->status ? job->error : NULL, j->dst_uidvalidity, j->uids,
          j->new_uids, j->count, j->ctx);
    store_user_unref(&j->user);
    copy_reset_links(j);
    free(j->links);
    free(j->uids);
    free(j->new_uids);
    free(j->dst);
    free(j->src_name);
    free(j->src_folder);
    free(j->dst_folder);
    free(j);
}

void store_copy(struct store_user *user, uint32_t src_id, const uint32_t *uids, size_t count,
                const char *dst, bool is_move, store_copy_cb *cb, void *ctx)
{
    struct copy_job *j = mg_calloc(1, sizeof(*j));
    j->user = user;
    store_user_ref(user);
    j->src_id = src_id;
    j->uids = mg_reallocarray(NULL, count ? count : 1, sizeof(*uids));
    memcpy(j->uids, uids, count * sizeof(*uids));
    j->new_uids = mg_calloc(count ? count : 1, sizeof(*uids));
    j->count = count;
    j->dst = mg_strdup(dst);
    j->is_move = is_move;
    j->cb = cb;
    j->ctx = ctx;
    store_job_start(user->store, &j->job, copy_work, copy_after);
}

/* ---- flags ---- */

struct flags_job {
    struct store_job job;
    struct store_user *user;
    uint32_t mailbox_id;
    uint32_t *uids;
    size_t count;
    enum store_flag_op op;
    uint32_t flags;
    char **keywords;
    unsigned keyword_count;
    char *folder;
    struct store_flag_change *changes;
    size_t n_changes;
    struct link_op *renames;
    size_t n_renames;
    store_flags_cb *cb;
    void *ctx;
};

static int flags_body(DB_TXN *txn, void *ctx)
{
    struct flags_job *j = ctx;
    DB *db = j->user->iu->db;
    j->n_changes = 0;
    for (size_t i = 0; i < j->n_renames; i++) {
        free(j->renames[i].from);
        free(j->renames[i].to);
    }
    j->n_renames = 0;
    char *name = NULL;
    int r = index_get_mailbox_name(db, txn, j->mailbox_id, &name);
    if (r != 0)
        return r;
    struct index_mailbox_rec mbox;
    r = index_get_mailbox(db, txn, name, true, &mbox);
    struct index_user_rec user;
    if (r == 0)
        r = index_get_user(db, txn, j->keyword_count > 0 && j->op != STORE_FLAGS_REMOVE, &user);
    if (r != 0) {
        free(name);
        return r;
    }
    struct store_flags f = { j->flags, (const char *const *)j->keywords, j->keyword_count };
    uint64_t kw_bits = 0;
    bool kw_changed = false;
    r = keywords_to_bits(&user, &f, j->op != STORE_FLAGS_REMOVE, &kw_bits, &kw_changed);
    uint64_t modseq = mbox.highestmodseq + 1;
    for (size_t i = 0; r == 0 && i < j->count; i++) {
        struct index_msg_rec rec;
        int g = index_get_msg(db, txn, j->mailbox_id, j->uids[i], true, &rec);
        if (g == DB_NOTFOUND)
            continue;
        if (g != 0) {
            r = g;
            break;
        }
        uint32_t nf = rec.flags;
        uint64_t nk = rec.keywords;
        switch (j->op) {
        case STORE_FLAGS_REPLACE: nf = j->flags; nk = kw_bits; break;
        case STORE_FLAGS_ADD: nf |= j->flags; nk |= kw_bits; break;
        case STORE_FLAGS_REMOVE: nf &= ~j->flags; nk &= ~kw_bits; break;
        }
        nf &= MAILDIR_FLAGS_ALL;
        if (nf == rec.flags && nk == rec.keywords)
            continue;
        if ((rec.flags & MAILDIR_FLAG_SEEN) != (nf & MAILDIR_FLAG_SEEN))
            mbox.unseen += (nf & MAILDIR_FLAG_SEEN) ? -1 : 1;
        if ((rec.flags & MAILDIR_FLAG_DELETED) != (nf & MAILDIR_FLAG_DELETED))
            mbox.deleted += (nf & MAILDIR_FLAG_DELETED) ? 1 : -1;
        char from_rel[MAILDIR_BASE_MAX + 16], to_rel[MAILDIR_BASE_MAX + 16];
        maildir_file_rel(from_rel, sizeof(from_rel), rec.base, rec.in_new, rec.flags);
        maildir_file_rel(to_rel, sizeof(to_rel), rec.base, false, nf);
        uint64_t old_modseq = rec.modseq;
        rec.flags = nf;
        rec.keywords = nk;
        rec.modseq = modseq;
        bool was_new = rec.in_new;
        rec.in_new = false;
        if ((r = index_put_msg(db, txn, j->mailbox_id, &rec, old_modseq)) != 0)
            break;
        if (strcmp(from_rel, to_rel) != 0 || was_new) {
            j->renames = mg_reallocarray(j->renames, j->n_renames + 1, sizeof(*j->renames));
            j->renames[j->n_renames].from = mg_asprintf("%s/%s", j->folder, from_rel);
            j->renames[j->n_renames].to = mg_asprintf("%s/%s", j->folder, to_rel);
            j->n_renames++;
        }
        j->changes = mg_reallocarray(j->changes, j->n_changes + 1, sizeof(*j->changes));
        j->changes[j->n_changes++] = (struct store_flag_change){ rec.uid, nf, nk, modseq };
    }
    if (r == 0 && j->n_changes > 0) {
        mbox.highestmodseq = modseq;
        r = index_put_mailbox(db, txn, name, &mbox, false);
    }
    if (r == 0 && kw_changed)
        r = index_put_user(db, txn, &user);
    index_user_rec_clear(&user);
    free(name);
    return r;
}

static int flags_before_commit(void *ctx)
{
    struct flags_job *j = ctx;
    /* File names follow the flags so that Maildir tools see them; the
     * index is the authority, so a rename that fails is not fatal. */
    for (size_t i = 0; i < j->n_renames; i++)
        rename(j->renames[i].from, j->renames[i].to);
    return 0;
}

static void flags_work(struct store_job *job)
{
    struct flags_job *j = (struct flags_job *)job;
    j->folder = job_folder(job, j->user, j->mailbox_id, "mailbox is gone");
    if (j->folder == NULL)
        return;
    /* Flag changes are frequent and cheap to lose in a power cut: no
     * fsync (the log still reaches the OS, so a daemon crash loses none). */
    int r = store_txn_run(job->store, false, flags_body, flags_before_commit, j);
    if (r != 0) {
        int status = r < 0 && r >= STORE_ERR_LIMIT ? r : store_status_from_db(r);
        store_job_set_error(job, status, "%s", status_text(status));
    }
}

static void flags_after(struct store_job *job)
{
    struct flags_job *j = (struct flags_job *)job;
    if (job->status == 0 && j->n_changes > 0)
        store_notify(job->store, j->user->address, j->mailbox_id);
    j->cb(job->status, job->status ? job->error : NULL, j->changes, j->n_changes, j->ctx);
    store_user_unref(&j->user);
    for (size_t i = 0; i < j->n_renames; i++) {
        free(j->renames[i].from);
        free(j->renames[i].to);
    }
    free(j->renames);
    free(j->changes);
    free(j->uids);
    for (unsigned i = 0; i < j->keyword_count; i++)
        free(j->keywords[i]);
    free(j->keywords);
    free(j->folder);
    free(j);
}

void store_set_flags(struct store_user *user, uint32_t mailbox_id, const uint32_t *uids,
                     size_t count, enum store_flag_op op, const struct store_flags *flags,
                     store_flags_cb *cb, void *ctx)
{
    struct flags_job *j = mg_calloc(1, sizeof(*j));
    j->user = user;
    store_user_ref(user);
    j->mailbox_id = mailbox_id;
    j->uids = mg_reallocarray(NULL, count ? count : 1, sizeof(*uids));
    memcpy(j->uids, uids, count * sizeof(*uids));
    j->count = count;
    j->op = op;
    j->flags = flags->flags;
    j->keywords = copy_keywords(flags);
    j->keyword_count = flags->keyword_count;
    j->cb = cb;
    j->ctx = ctx;
    store_job_start(user->store, &j->job, flags_work, flags_after);
}

/* ---- EXPUNGE ---- */

struct expunge_job {
    struct store_job job;
    struct store_user *user;
    uint32_t mailbox_id;
    uint32_t *uids;
    size_t count;
    bool only_deleted;
    char *folder;
    uint32_t *removed;
    size_t n_removed;
    char **files;
    uint32_t uidnext;
    store_expunge_cb *cb;
    void *ctx;
};

static int expunge_body(DB_TXN *txn, void *ctx)
{
    struct expunge_job *j = ctx;
    DB *db = j->user->iu->db;
    for (size_t i = 0; i < j->n_removed; i++)
        free(j->files[i]);
    j->n_removed = 0;
    char *name = NULL;
    int r = index_get_mailbox_name(db, txn, j->mailbox_id, &name);
    if (r != 0)
        return r;
    struct index_mailbox_rec mbox;
    struct index_user_rec user;
    if ((r = index_get_mailbox(db, txn, name, true, &mbox)) == 0)
        r = index_get_user(db, txn, true, &user);
    if (r != 0) {
        free(name);
        return r;
    }
    uint64_t modseq = mbox.highestmodseq + 1;
    j->uidnext = mbox.uidnext;
    for (size_t i = 0; r == 0 && i < j->count; i++) {
        struct index_msg_rec rec;
        int g = index_get_msg(db, txn, j->mailbox_id, j->uids[i], true, &rec);
        if (g == DB_NOTFOUND)
            continue;
        if (g != 0) {
            r = g;
            break;
        }
        if (j->only_deleted && !(rec.flags & MAILDIR_FLAG_DELETED))
            continue;
        if ((r = index_del_msg(db, txn, j->mailbox_id, &rec, modseq)) != 0)
            break;
        mbox.messages--;
        if (!(rec.flags & MAILDIR_FLAG_SEEN))
            mbox.unseen--;
        if (rec.flags & MAILDIR_FLAG_DELETED)
            mbox.deleted--;
        mbox.bytes -= rec.size;
        user.bytes_used -= rec.size < user.bytes_used ? rec.size : user.bytes_used;
        if (user.message_count > 0)
            user.message_count--;
        char rel[MAILDIR_BASE_MAX + 16];
        maildir_file_rel(rel, sizeof(rel), rec.base, rec.in_new, rec.flags);
        j->removed[j->n_removed] = rec.uid;
        j->files[j->n_removed] = mg_asprintf("%s/%s", j->folder, rel);
        j->n_removed++;
    }
    if (r == 0 && j->n_removed > 0) {
        mbox.highestmodseq = modseq;
        r = index_put_mailbox(db, txn, name, &mbox, false);
        if (r == 0)
            r = index_put_user(db, txn, &user);
    }
    index_user_rec_clear(&user);
    free(name);
    return r;
}

static int expunge_before_commit(void *ctx)
{
    struct expunge_job *j = ctx;
    return j->n_removed > 0 ? write_uidnext(j->folder, j->uidnext) : 0;
}

static void expunge_work(struct store_job *job)
{
    struct expunge_job *j = (struct expunge_job *)job;
    j->folder = job_folder(job, j->user, j->mailbox_id, "mailbox is gone");
    if (j->folder == NULL)
        return;
    int r = store_txn_run(job->store, true, expunge_body, expunge_before_commit, j);
    if (r != 0) {
        store_job_set_error(job, store_status_from_db(r), "%s", status_text(store_status_from_db(r)));
        j->n_removed = 0;
        return;
    }
    /* The index no longer knows them: now the files go. A crash before
     * the unlinks leaves files that the next verification adopts again
     * (with new UIDs), never a lost message the user wanted. */
    for (size_t i = 0; i < j->n_removed; i++)
        unlink(j->files[i]);
    if (j->n_removed > 0)
        fsync_folder_dirs(j->folder, true, true);
}

static void expunge_after(struct store_job *job)
{
    struct expunge_job *j = (struct expunge_job *)job;
    if (job->status == 0 && j->n_removed > 0)
        store_notify(job->store, j->user->address, j->mailbox_id);
    j->cb(job->status, job->status ? job->error : NULL, j->removed, j->n_removed, j->ctx);
    store_user_unref(&j->user);
    for (size_t i = 0; i < j->n_removed; i++)
        free(j->files[i]);
    free(j->files);
    free(j->removed);
    free(j->uids);
    free(j->folder);
    free(j);
}

void store_expunge(struct store_user *user, uint32_t mailbox_id, const uint32_t *uids,
                   size_t count, bool only_deleted, store_expunge_cb *cb, void *ctx)
{
    struct expunge_job *j = mg_calloc(1, sizeof(*j));
    j->user = user;
    store_user_ref(user);
    j->mailbox_id = mailbox_id;
    j->uids = mg_reallocarray(NULL, count ? count : 1, sizeof(*uids));
    memcpy(j->uids, uids, count * sizeof(*uids));
    j->count = count;
    j->only_deleted = only_deleted;
    j->removed = mg_calloc(count ? count : 1, sizeof(uint32_t));
    j->files = mg_calloc(count ? count : 1, sizeof(char *));
    j->cb = cb;
    j->ctx = ctx;
    store_job_start(user->store, &j->job, expunge_work, expunge_after);
}

/* ---- \Recent ---- */

struct recent_job {
    struct store_job job;
    struct store_user *user;
    uint32_t mailbox_id;
    uint32_t upto;
};

static int recent_body(DB_TXN *txn, void *ctx)
{
    struct recent_job *j = ctx;
    DB *db = j->user->iu->db;
    char *name = NULL;
    int r = index_get_mailbox_name(db, txn, j->mailbox_id, &name);
    struct index_mailbox_rec mbox;
    if (r == 0)
        r = index_get_mailbox(db, txn, name, true, &mbox);
    if (r == 0 && j->upto > mbox.recent_uid) {
        mbox.recent_uid = j->upto;
        r = index_put_mailbox(db, txn, name, &mbox, false);
    }
    free(name);
    return r;
}

static void recent_work(struct store_job *job)
{
    struct recent_job *j = (struct recent_job *)job;
    int r = store_txn_run(job->store, false, recent_body, NULL, j);
    if (r != 0 && r != DB_NOTFOUND)
        mg_log_warning("store", "cannot record recent user=%s error=%s", j->user->address,
                       r > 0 ? strerror(r) : db_strerror(r));
}

static void recent_after(struct store_job *job)
{
    struct recent_job *j = (struct recent_job *)job;
    store_user_unref(&j->user);
    free(j);
}

static struct store_recent_mark *recent_slot(struct store_user *user, uint32_t mailbox_id)
{
    for (size_t i = 0; i < user->n_recent; i++) {
        if (user->recent[i].mailbox_id == mailbox_id)
            return &user->recent[i];
    }
    user->recent = mg_reallocarray(user->recent, user->n_recent + 1, sizeof(*user->recent));
    struct store_recent_mark *m = &user->recent[user->n_recent++];
    m->mailbox_id = mailbox_id;
    m->mark = 0;
    return m;
}

uint32_t store_recent_mark(struct store_user *user, uint32_t mailbox_id, uint32_t index_mark)
{
    for (size_t i = 0; i < user->n_recent; i++) {
        if (user->recent[i].mailbox_id == mailbox_id && user->recent[i].mark > index_mark)
            return user->recent[i].mark;
    }
    return index_mark;
}

uint32_t store_claim_recent(struct store_user *user, uint32_t mailbox_id, uint32_t index_mark,
                            uint32_t upto_uid)
{
    struct store_recent_mark *m = recent_slot(user, mailbox_id);
    uint32_t previous = m->mark > index_mark ? m->mark : index_mark;
    if (upto_uid <= previous)
        return previous;
    /* Taken now, on the loop: the next session to ask sees it at once. */
    m->mark = upto_uid;
    struct recent_job *j = mg_calloc(1, sizeof(*j));
    j->user = user;
    store_user_ref(user);
    j->mailbox_id = mailbox_id;
    j->upto = upto_uid;
    store_job_start(user->store, &j->job, recent_work, recent_after);
    return previous;
}
