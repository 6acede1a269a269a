/* Delivery (LMTP) into a user's INBOX.
 *
 * A delivery waits on three disk flushes: its message file, the directory
 * entry that names the file in new/, and the index log that records it.
 * They run at the same time (fsync_pool.h), so a delivery costs about one
 * flush of latency, and concurrent deliveries share the index log's flush
 * (Berkeley DB's group commit) and a folder's directory flush:
 *
 *   1. write tmp/<base> (not synced yet);
 *   2. parse the message from memory (ENVELOPE, BODYSTRUCTURE);
 *   3. in a transaction: allocate the UID, write the records and a 'P'
 *      record, rename the file to new/<base>,C=<crc32c>,S=<size>,U=<uid>,
 *      start the fdatasync of the file and the fsync of new/, commit (the
 *      log flush);
 *   4. wait for the two syncs; only then the caller answers 250.
 *
 * The file's sync starts after the rename, not before: on ext4 without a
 * journal, the first fsync of a new file also writes out the directory
 * that holds it (ext4_sync_parent). After the rename that is new/, which
 * has to reach the disk anyway; before it, tmp/ was written out for
 * nothing, about 1.4 synchronous disk writes more per delivery.
 *
 * The rename can reach the disk before the file's data. Until the 'P'
 * record goes (in a later write, once the file is known to be durable), a
 * verification after a crash checks the file against the size and
 * checksum its name carries and sets it aside when it was cut short; a
 * file the index never recorded is checked the same way before it is
 * adopted (store_user.c). docs/storage.md has the whole argument.
 *
 * Messages that came through the LMTP spool file (large ones) are copied
 * in the kernel and made durable before the rename, as before. */
#include "mda/store/store_private.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/alloc.h"
#include "common/fd_io.h"
#include "common/buf.h"
#include "common/log.h"

struct deliver_job {
    struct store_job job;
    struct store_delivery d;      /* strings owned below */
    char *address;
    char *msg;                    /* head and body, when in memory */
    size_t msg_len;
    char *head;                   /* head alone, when the body is in a file */
    char *root;
    char *folder;
    char *new_dir;                /* <folder>/new */
    char tmp_base[MAILDIR_BASE_MAX];
    struct mg_buf cache;
    size_t cache_off[3], cache_len[3];
    uint64_t size;
    /* Renamed into place before its data is durable: the name carries a
     * checksum and the index a 'P' record. */
    bool is_checked;
    uint32_t checksum;
    int fd;                       /* the message file, until its sync is done */
    struct fsync_req file_sync, dir_sync;
    bool is_file_sync_started, is_dir_sync_started;
    bool is_renamed;
    /* 'P' records of earlier deliveries, durable since, that this
     * transaction deletes. */
    struct index_pending *clear;
    size_t n_clear;
    struct index_user *iu;
    uint32_t uid;
    uint32_t mailbox_id;
    char final_rel[MAILDIR_BASE_MAX + 16];
    store_deliver_cb *cb;
    void *ctx;
};

static char *tmp_path(const struct deliver_job *j)
{
    return mg_asprintf("%s/tmp/%s", j->folder, j->tmp_base);
}

/* Writes the file into tmp/ and leaves it open in j->fd. A message from
 * the spool file is synced here; one from memory is synced in the pool
 * once it is renamed (deliver_before_commit). */
static int deliver_write_tmp(struct deliver_job *j)
{
    maildir_new_base(j->tmp_base);
    char *path = tmp_path(j);
    int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    int r = fd < 0 ? -errno : 0;
    if (r == 0 && j->msg != NULL)
        r = mg_fd_write_all(fd, j->msg, j->msg_len);
    if (r == 0 && j->msg == NULL) {
        r = mg_fd_write_all(fd, j->d.head, j->d.head_len);
        /* A large message waits in a spool file: copy it in the kernel. */
        off_t off = 0;
        uint64_t left = j->d.body_fd_len;
        while (r == 0 && left > 0) {
            ssize_t n = copy_file_range(j->d.body_fd, &off, fd, NULL, left, 0);
            if (n < 0)
                r = -errno;
            else if (n == 0)
                r = -EIO;
            else
                left -= (uint64_t)n;
        }
        if (r == 0 && fdatasync(fd) != 0)
            r = -errno;
    }
    if (r != 0) {
        if (fd >= 0) {
            close(fd);
            unlink(path);
        }
        free(path);
        return r;
    }
    j->fd = fd;
    free(path);
    return 0;
}

static int deliver_body(DB_TXN *txn, void *ctx)
{
    struct deliver_job *j = ctx;
    DB *db = j->iu->db;
    struct index_user_rec user;
    int r = index_get_user(db, txn, true, &user);
    if (r != 0)
        return r;
    if (j->d.quota_bytes != 0 && user.bytes_used + j->size > j->d.quota_bytes) {
        index_user_rec_clear(&user);
        return STORE_ERR_OVER_QUOTA;
    }
    struct index_mailbox_rec mbox;
    r = index_get_mailbox(db, txn, "INBOX", true, &mbox);
    if (r == 0) {
        struct store_new_msg msg = { 0 };
        msg.internaldate = j->d.received;
        msg.size = j->size;
        msg.in_new = true;
        msg.uid = mbox.uidnext;
        if (j->is_checked)
            maildir_final_base_checked(msg.base, j->tmp_base, j->size, msg.uid, j->checksum);
        else
            maildir_final_base(msg.base, j->tmp_base, j->size, msg.uid);
        store_new_msg_set_cache(&msg, &j->cache, j->cache_off, j->cache_len);
        r = store_txn_add_msg(db, txn, &mbox, &user, &msg);
        if (r == 0 && j->is_checked)
            r = index_put_pending(db, txn, mbox.id, msg.uid);
        for (size_t i = 0; r == 0 && i < j->n_clear; i++)
            r = index_del_pending(db, txn, j->clear[i].mailbox_id, j->clear[i].uid);
        if (r == 0)
            r = index_put_mailbox(db, txn, "INBOX", &mbox, false);
        if (r == 0)
            r = index_put_user(db, txn, &user);
        j->uid = msg.uid;
        j->mailbox_id = mbox.id;
        maildir_file_rel(j->final_rel, sizeof(j->final_rel), msg.base, true, 0);
    }
    index_user_rec_clear(&user);
    return r;
}

/* The file takes its final name while the transaction holds the user's
 * records: a verification (which takes them too) never sees it renamed
 * and unknown. The file's and the directory's syncs start now and run
 * while the commit flushes the log. */
static int deliver_before_commit(void *ctx)
{
    struct deliver_job *j = ctx;
    char *from = tmp_path(j);
    char *to = mg_asprintf("%s/%s", j->folder, j->final_rel);
    int r = rename(from, to) == 0 ? 0 : errno;
    free(from);
    free(to);
    if (r != 0)
        return r;
    j->is_renamed = true;
    if (j->is_checked) {
        fsync_pool_datasync(j->job.store->syncer, &j->file_sync, j->fd);
        j->is_file_sync_started = true;
    }
    fsync_pool_dirsync(j->job.store->syncer, &j->dir_sync, j->new_dir);
    j->is_dir_sync_started = true;
    return 0;
}

static void deliver_fail(struct deliver_job *j, int r)
{
    int status = store_status_from_db(r);
    store_job_set_error(&j->job, status, "%s",
                        status == STORE_ERR_OVER_QUOTA ? "quota exceeded"
                        : r > 0                        ? strerror(r)
                                                       : db_strerror(r));
}

static void deliver_work(struct store_job *job)
{
    struct deliver_job *j = (struct deliver_job *)job;
    struct store *store = job->store;
    char *err = NULL;
    if (index_env_user(store->index, j->address, &j->iu, &err) != 0) {
        store_job_set_error(job, STORE_ERR_INTERNAL, "%s", err);
        free(err);
        return;
    }
    int r = store_verify_user(store, j->iu, j->root, job->error, sizeof(job->error));
    if (r != 0) {
        job->status = store_status_from_errno(r > 0 ? r : EIO);
        return;
    }
    r = deliver_write_tmp(j);
    if (r != 0) {
        store_job_set_error(job, store_status_from_errno(r), "cannot write message: %s",
                            strerror(-r));
        return;
    }
    if (j->msg != NULL) {
        store_compute_cache_mem(j->msg, j->msg_len, &j->cache, j->cache_off, j->cache_len);
        j->checksum = maildir_checksum(0, j->msg, j->msg_len);
    } else {
        char *path = tmp_path(j);
        r = store_compute_cache(path, &j->cache, j->cache_off, j->cache_len);
        free(path);
    }
    if (r == 0) {
        j->clear = index_user_take_synced(j->iu, &j->n_clear);
        r = store_txn_run(store, true, deliver_body, deliver_before_commit, j);
        if (r != 0)
            index_user_return_synced(j->iu, j->clear, j->n_clear);
    }
    int sync_r = 0;
    if (j->is_file_sync_started)
        sync_r = fsync_pool_wait(store->syncer, &j->file_sync);
    if (j->is_dir_sync_started) {
        int dr = fsync_pool_wait(store->syncer, &j->dir_sync);
        if (sync_r == 0)
            sync_r = dr;
    }
    close(j->fd);
    j->fd = -1;
    if (r != 0) {
        /* The index does not know the file: it goes, wherever it is, so
         * that no verification adopts a message that got no 250. */
        char *path = j->is_renamed ? mg_asprintf("%s/%s", j->folder, j->final_rel) : tmp_path(j);
        unlink(path);
        free(path);
        deliver_fail(j, r);
        return;
    }
    if (sync_r != 0) {
        /* Recorded, but not known to be on disk: no 250. The 'P' record
         * stays, so the next verification checks the file. */
        mg_log_error("store", "cannot sync a delivery user=%s uid=%u error=%s", j->address, j->uid,
                     strerror(-sync_r));
        store_job_set_error(job, store_status_from_errno(sync_r), "cannot sync message: %s",
                            strerror(-sync_r));
        return;
    }
    if (j->is_checked)
        index_user_note_synced(j->iu, j->mailbox_id, j->uid);
}

static void deliver_after(struct store_job *job)
{
    struct deliver_job *j = (struct deliver_job *)job;
    if (j->iu != NULL)
        index_user_unref(job->store->index, &j->iu);
    if (job->status == 0)
        store_notify(job->store, j->address, j->mailbox_id);
    j->cb(job->status, job->status != 0 ? job->error : NULL, j->uid, j->ctx);
    free(j->address);
    free(j->msg);
    free(j->head);
    free(j->root);
    free(j->folder);
    free(j->new_dir);
    free(j->clear);
    mg_buf_free(&j->cache);
    free(j);
}

void store_deliver(struct store *store, const struct store_delivery *delivery,
                   store_deliver_cb *cb, void *ctx)
{
    struct deliver_job *j = mg_calloc(1, sizeof(*j));
    j->d = *delivery;
    j->fd = -1;
    j->address = mg_strdup(delivery->address);
    j->d.address = j->address;
    if (delivery->body_fd < 0) {
        /* One copy, head and body together: the file's content, which the
         * MIME parser reads too. The caller's buffer may go away before
         * the job runs. */
        j->msg_len = delivery->head_len + delivery->body_len;
        j->msg = mg_malloc(j->msg_len + 1);
        memcpy(j->msg, delivery->head, delivery->head_len);
        memcpy(j->msg + delivery->head_len, delivery->body, delivery->body_len);
        j->msg[j->msg_len] = '\0';
        j->d.head = j->msg;
        j->d.body = j->msg + delivery->head_len;
        j->is_checked = true;
    } else {
        j->head = mg_strndup(delivery->head, delivery->head_len);
        j->d.head = j->head;
        j->d.body = NULL;
    }
    j->size = delivery->head_len + (delivery->body_fd < 0 ? delivery->body_len : delivery->body_fd_len);
    j->root = maildir_user_root(store->mail_dir, j->address);
    j->folder = mg_strdup(j->root);
    j->new_dir = mg_asprintf("%s/new", j->folder);
    j->cb = cb;
    j->ctx = ctx;
    store_job_start(store, &j->job, deliver_work, deliver_after);
}
