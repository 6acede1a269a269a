/* The spool's files: new messages written and committed (queue_new_*),
 * and finished messages removed.
 *
 * A new message collects in memory (its head and content) and reaches the
 * disk in the thread pool at its commit: write, fdatasync, rename into
 * msg/, then one fsync of msg/ for every message renamed meanwhile (group
 * commit). A message larger than QUEUE_NEW_BUFFER_MAX gets its file as
 * soon as the buffer is full and is written as it arrives.
 *
 * Files are reused rather than created: a finished message's file is
 * renamed into free/ (a pool of at most QUEUE_POOL_FILES files) and a new
 * message overwrites one of those, cut to its length, instead of creating
 * a file in tmp/. Creating a file costs an inode allocation and freeing
 * one costs a block release (and a discard on such mounts); on ext4
 * without a journal the allocation also walks past every inode freed in
 * the last minutes, which under mail traffic is most of the CPU a message
 * costs. A pool file becomes usable only once a sync of msg/ that started
 * after it left msg/ has ended: until then a crash of the machine could
 * bring its old name back, and the file must still hold what that name
 * promised. tmp/ and free/ are emptied at start.
 *
 * Removals are batched: one job of the thread pool renames (or unlinks)
 * the files of every message finished meanwhile. */
#include "mta/queue/queue_private.h"

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
#include "common/fd_io.h"
#include "common/arena.h"
#include "common/buf.h"
#include "common/log.h"
#include "common/settings.h"

/* Content kept in memory before a message gets its file. */
#define QUEUE_NEW_BUFFER_MAX (64 * 1024)
/* The pool of files for reuse: at most this many, none larger. */
#define QUEUE_POOL_FILES 512
#define QUEUE_POOL_FILE_SIZE_MAX (256 * 1024)

struct queue_new {
    struct queue_new *next;
    struct queue *queue;
    struct queue_envelope env;
    struct mg_arena *arena;
    struct mg_buf buf;          /* written, not yet in the file */
    int fd;                     /* -1: no file opened yet */
    char *file_path;            /* free/<n> (reused) or tmp/<ID> (created) */
    struct queue_pool_file *pool; /* the reused file, NULL when created */
    char *msg_path;
    size_t length_offset;
    bool is_length_flushed;     /* the head is in the file: patch it there */
    char length[21];
    uint64_t content_len;
    uint64_t file_len;          /* the file's length once complete */
    int status;
    queue_commit_cb *cb;
    void *ctx;
    uv_work_t work;
};

/* ---- directories ---- */

static int mkdir_p(const char *path)
{
    if (mkdir(path, 0700) == 0 || errno == EEXIST)
        return 0;
    return -errno;
}

int queue_spool_init(struct queue *q, char **error_r)
{
    const char *dirs[] = { q->dir, q->tmp_dir, q->msg_dir, q->log_dir, q->corrupt_dir, q->free_dir };
    for (size_t i = 0; i < sizeof(dirs) / sizeof(dirs[0]); i++) {
        int r = mkdir_p(dirs[i]);
        if (r != 0) {
            *error_r = mg_asprintf("cannot create %s: %s", dirs[i], strerror(-r));
            return -1;
        }
    }
    return 0;
}

static void empty_dir(const char *path)
{
    DIR *d = opendir(path);
    if (d == NULL)
        return;
    struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        if (de->d_name[0] == '.')
            continue;
        char *p = mg_asprintf("%s/%s", path, de->d_name);
        unlink(p);
        free(p);
    }
    closedir(d);
}

void queue_spool_clean(struct queue *q)
{
    /* Messages in tmp/ were never acknowledged. The files of free/ are
     * not taken back either: after a crash of the machine one of them may
     * still be a message's file under its old name in msg/ too. */
    empty_dir(q->tmp_dir);
    empty_dir(q->free_dir);
}

static void pool_list_free(struct queue_pool_file *p)
{
    while (p != NULL) {
        struct queue_pool_file *next = p->next;
        free(p);
        p = next;
    }
}

void queue_spool_free(struct queue *q)
{
    pool_list_free(q->pool_ready);
    pool_list_free(q->pool_pending);
    q->pool_ready = q->pool_pending = q->pool_pending_tail = NULL;
    q->pool_count = 0;
}

/* ---- the pool of files ---- */

static char *pool_path(const struct queue *q, const struct queue_pool_file *p)
{
    return mg_asprintf("%s/%llu", q->free_dir, (unsigned long long)p->number);
}

static void dir_sync_start(struct queue *q, bool force);

/* A file to overwrite, or NULL: create one. */
static struct queue_pool_file *pool_take(struct queue *q)
{
    struct queue_pool_file *p = q->pool_ready;
    if (p == NULL) {
        /* Files waiting for a sync of msg/: when no commit is going to
         * make one soon, one is made for them. */
        if (q->pool_pending != NULL && !q->is_dir_syncing)
            dir_sync_start(q, true);
        return NULL;
    }
    q->pool_ready = p->next;
    p->next = NULL;
    q->pool_count--;
    return p;
}

/* The most recently used file first: its pages are likely cached. */
static void pool_put_ready(struct queue *q, struct queue_pool_file *p)
{
    p->next = q->pool_ready;
    q->pool_ready = p;
    q->pool_count++;
}

/* Sync number `generation` of msg/ has ended. */
static void pool_promote(struct queue *q, uint64_t generation)
{
    while (q->pool_pending != NULL && q->pool_pending->generation < generation) {
        struct queue_pool_file *p = q->pool_pending;
        q->pool_pending = p->next;
        if (q->pool_pending == NULL)
            q->pool_pending_tail = NULL;
        q->pool_count--;
        pool_put_ready(q, p);
    }
}

/* ---- writing ---- */

/* Opens the message's file: a pool file to overwrite, else a new one in
 * tmp/. From the loop (a large message) or the thread pool (at commit);
 * m->pool was chosen on the loop. */
static int new_open(struct queue_new *m)
{
    if (m->pool != NULL) {
        m->fd = open(m->file_path, O_WRONLY | O_CLOEXEC);
        if (m->fd >= 0)
            return 0;
        /* Gone (removed by hand?): make one after all. */
        free(m->pool);
        m->pool = NULL;
        free(m->file_path);
        m->file_path = NULL;
    }
    if (m->file_path == NULL)
        m->file_path = mg_asprintf("%s/%s", m->queue->tmp_dir, m->env.id);
    m->fd = open(m->file_path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    return m->fd >= 0 ? 0 : -errno;
}

/* On the loop: which file the message will go to. */
static void new_choose_file(struct queue_new *m)
{
    if (m->file_path != NULL || m->pool != NULL)
        return;
    m->pool = pool_take(m->queue);
    if (m->pool != NULL)
        m->file_path = pool_path(m->queue, m->pool);
}

static int new_flush(struct queue_new *m)
{
    if (m->status != 0)
        return m->status;
    if (m->fd < 0) {
        new_choose_file(m);
        int r = new_open(m);
        if (r != 0) {
            mg_log_error("queue", "cannot create %s: %s", m->file_path, strerror(-r));
            return m->status = r;
        }
    }
    int r = mg_fd_write_all(m->fd, m->buf.data, m->buf.len);
    if (r != 0)
        return m->status = r;
    m->is_length_flushed = true;
    mg_buf_reset(&m->buf);
    return 0;
}

struct queue_new *queue_new_begin(struct queue *queue, struct queue_envelope *env,
                                  const char **error_r)
{
    (void)error_r;
    struct queue_new *m = mg_calloc(1, sizeof(*m));
    m->queue = queue;
    m->fd = -1;
    mg_unique_id_new(env->id);
    if (env->arrival == 0)
        env->arrival = time(NULL);
    m->msg_path = mg_asprintf("%s/%s", queue->msg_dir, env->id);
    /* A private copy of the envelope: the caller's goes away. */
    m->arena = mg_arena_new(2048);
    m->env = *env;
    m->env.from = mg_arena_strdup(m->arena, env->from);
    m->env.envid = env->envid ? mg_arena_strdup(m->arena, env->envid) : NULL;
    m->env.auth_user = env->auth_user ? mg_arena_strdup(m->arena, env->auth_user) : NULL;
    m->env.client = env->client ? mg_arena_strdup(m->arena, env->client) : NULL;
    m->env.rcpts = mg_arena_alloc(m->arena, (env->n_rcpts ? env->n_rcpts : 1) * sizeof(*env->rcpts));
    for (size_t i = 0; i < env->n_rcpts; i++) {
        m->env.rcpts[i] = env->rcpts[i];
        m->env.rcpts[i].address = mg_arena_strdup(m->arena, env->rcpts[i].address);
        m->env.rcpts[i].orcpt = env->rcpts[i].orcpt ? mg_arena_strdup(m->arena, env->rcpts[i].orcpt) : NULL;
    }
    queue_file_write_head(&m->env, &m->buf);
    m->length_offset = queue_file_length_offset(&m->buf);
    m->file_len = m->buf.len;
    return m;
}

int queue_new_write(struct queue_new *m, const void *data, size_t len)
{
    if (m->status != 0)
        return m->status;
    mg_buf_append(&m->buf, data, len);
    m->content_len += len;
    m->file_len += len;
    if (m->buf.len >= QUEUE_NEW_BUFFER_MAX)
        return new_flush(m);
    return 0;
}

uint64_t queue_new_size(const struct queue_new *m)
{
    return m->content_len;
}

static void new_free(struct queue_new *m)
{
    free(m->file_path);
    free(m->msg_path);
    free(m->pool);
    mg_buf_free(&m->buf);
    mg_arena_free(&m->arena);
    free(m);
}

void queue_new_abort(struct queue_new **mp)
{
    struct queue_new *m = *mp;
    if (m == NULL)
        return;
    *mp = NULL;
    if (m->fd >= 0)
        close(m->fd);
    if (m->pool != NULL && m->fd >= 0) {
        /* Never in msg/ under this message's name: back at once. */
        struct queue *q = m->queue;
        uint64_t written = m->file_len - m->buf.len;
        if (written > m->pool->size)
            m->pool->size = written;
        pool_put_ready(q, m->pool);
        m->pool = NULL;
    } else if (m->file_path != NULL && m->fd >= 0) {
        unlink(m->file_path);
    }
    new_free(m);
}

/* ---- committing ---- */

static void commit_finish(struct queue_new *m)
{
    struct queue *q = m->queue;
    if (m->status == 0) {
        queue_msg_committed(q, &m->env, m->msg_path, m->length_offset + 21, m->content_len, m->file_len);
    } else {
        if (m->file_path != NULL)
            unlink(m->file_path);
        unlink(m->msg_path);
    }
    if (m->cb != NULL)
        m->cb(m->status, m->env.id, m->ctx);
    new_free(m);
}

struct dir_sync_job {
    uv_work_t req;
    struct queue *queue;
    struct queue_new *list;
    uint64_t generation;
    int status;
};

static void dir_sync_run(uv_work_t *req)
{
    struct dir_sync_job *j = req->data;
    int fd = open(j->queue->msg_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    j->status = fd >= 0 && fsync(fd) == 0 ? 0 : -EIO;
    if (fd >= 0)
        close(fd);
}

static void dir_sync_after(uv_work_t *req, int status)
{
    (void)status;
    struct dir_sync_job *j = req->data;
    struct queue *q = j->queue;
    q->jobs_running--;
    q->is_dir_syncing = false;
    if (j->status == 0)
        pool_promote(q, j->generation);
    struct queue_new *m = j->list;
    while (m != NULL) {
        struct queue_new *next = m->next;
        if (j->status != 0 && m->status == 0)
            m->status = j->status;
        commit_finish(m);
        m = next;
    }
    free(j);
    dir_sync_start(q, false);
}

/* One fsync of msg/ for every message renamed since the last one: group
 * commit of directory entries. With force, also for none (files of the
 * pool wait for one). */
static void dir_sync_start(struct queue *q, bool force)
{
    if (q->is_dir_syncing || (q->dir_sync_waiting == NULL && !force))
        return;
    struct dir_sync_job *j = mg_calloc(1, sizeof(*j));
    j->queue = q;
    j->list = q->dir_sync_waiting;
    j->generation = ++q->dir_syncs_started;
    q->dir_sync_waiting = q->dir_sync_waiting_tail = NULL;
    j->req.data = j;
    q->is_dir_syncing = true;
    q->jobs_running++;
    uv_queue_work(q->loop, &j->req, dir_sync_run, dir_sync_after);
}

static void commit_work(uv_work_t *req)
{
    struct queue_new *m = req->data;
    if (m->status == 0 && m->fd < 0)
        m->status = new_open(m);
    if (m->status == 0)
        m->status = mg_fd_write_all(m->fd, m->buf.data, m->buf.len);
    if (m->status == 0 && m->is_length_flushed &&
        pwrite(m->fd, m->length, 20, (off_t)m->length_offset) != 20)
        m->status = -(errno ? errno : EIO);
    /* A reused file longer than this message: cut off the rest. */
    if (m->status == 0 && m->pool != NULL && m->pool->size > m->file_len &&
        ftruncate(m->fd, (off_t)m->file_len) != 0)
        m->status = -errno;
    if (m->status == 0 && fdatasync(m->fd) != 0)
        m->status = -errno;
    if (m->fd >= 0 && close(m->fd) != 0 && m->status == 0)
        m->status = -errno;
    m->fd = -1;
    if (m->status == 0 && rename(m->file_path, m->msg_path) != 0)
        m->status = -errno;
}

static void commit_after(uv_work_t *req, int status)
{
    (void)status;
    struct queue_new *m = req->data;
    struct queue *q = m->queue;
    q->jobs_running--;
    if (m->status != 0) {
        mg_log_error("queue", "cannot write %s: %s", m->file_path != NULL ? m->file_path : m->msg_path,
                     strerror(-m->status));
        commit_finish(m);
        return;
    }
    /* The file is msg/<ID> now, no longer the pool's. */
    free(m->file_path);
    m->file_path = NULL;
    /* In the order they became ready: the order they are scheduled in. */
    m->next = NULL;
    if (q->dir_sync_waiting_tail != NULL)
        q->dir_sync_waiting_tail->next = m;
    else
        q->dir_sync_waiting = m;
    q->dir_sync_waiting_tail = m;
    dir_sync_start(q, false);
}

void queue_new_commit(struct queue_new *m, queue_commit_cb *cb, void *ctx)
{
    struct queue *q = m->queue;
    m->cb = cb;
    m->ctx = ctx;
    if (m->status == 0) {
        struct mg_buf trailer = MG_BUF_INIT;
        queue_file_write_trailer(m->env.id, &trailer);
        mg_buf_append(&m->buf, trailer.data, trailer.len);
        m->file_len += trailer.len;
        mg_buf_free(&trailer);
        queue_file_format_length(m->content_len, m->length);
        if (!m->is_length_flushed)
            memcpy(m->buf.data + m->length_offset, m->length, 20);
        if (m->fd < 0)
            new_choose_file(m);
    }
    /* Each file is written and synced in its own job (they overlap in
     * the thread pool); the directory is synced once for all that are
     * ready. */
    m->work.data = m;
    q->jobs_running++;
    uv_queue_work(q->loop, &m->work, commit_work, commit_after);
}

/* ---- removing ---- */

struct queue_removal {
    struct queue_removal *next;
    char *msg_path;
    char *log_path;
    struct queue_pool_file *pool;   /* where the file goes; NULL: unlinked */
    bool is_pool_lost;
    struct mg_buf said;
};

struct removal_job {
    uv_work_t req;
    struct queue *queue;
    struct queue_removal *list;
};

static void removal_work(uv_work_t *req)
{
    struct removal_job *j = req->data;
    for (struct queue_removal *r = j->list; r != NULL; r = r->next) {
        /* No fsync of msg/: if the removal is lost in a crash of the
         * machine the message is delivered again, the duplicate window
         * the RFCs accept. */
        if (r->pool != NULL) {
            char *to = pool_path(j->queue, r->pool);
            if (rename(r->msg_path, to) != 0) {
                r->is_pool_lost = true;
                unlink(r->msg_path);
            }
            free(to);
        } else {
            unlink(r->msg_path);
        }
        if (r->log_path != NULL)
            unlink(r->log_path);
    }
}

static void removal_start(struct queue *q);

static void removal_after(uv_work_t *req, int status)
{
    (void)status;
    struct removal_job *j = req->data;
    struct queue *q = j->queue;
    q->jobs_running--;
    q->is_removing = false;
    struct queue_removal *r = j->list;
    while (r != NULL) {
        struct queue_removal *next = r->next;
        /* What became of the recipients is logged once the message is
         * gone: a line "status=sent" is never followed by a delivery of
         * the same message after a crash of mgsmtpd. */
        char *line = r->said.len > 0 ? r->said.data : NULL;
        while (line != NULL && *line != '\0') {
            char *end = strchr(line, '\n');
            if (end != NULL)
                *end = '\0';
            mg_log_info("delivery", "%s", line);
            line = end != NULL ? end + 1 : NULL;
        }
        if (r->pool != NULL) {
            if (r->is_pool_lost) {
                free(r->pool);
                q->pool_count--;
            } else {
                r->pool->generation = q->dir_syncs_started;
                if (q->pool_pending_tail != NULL)
                    q->pool_pending_tail->next = r->pool;
                else
                    q->pool_pending = r->pool;
                q->pool_pending_tail = r->pool;
            }
        }
        free(r->msg_path);
        free(r->log_path);
        mg_buf_free(&r->said);
        free(r);
        r = next;
    }
    free(j);
    removal_start(q);
}

static void removal_start(struct queue *q)
{
    if (q->is_removing || q->removals_waiting == NULL)
        return;
    struct removal_job *j = mg_calloc(1, sizeof(*j));
    j->queue = q;
    j->list = q->removals_waiting;
    q->removals_waiting = q->removals_waiting_tail = NULL;
    j->req.data = j;
    q->is_removing = true;
    q->jobs_running++;
    uv_queue_work(q->loop, &j->req, removal_work, removal_after);
}

void queue_spool_remove(struct queue *q, const char *msg_path, const char *log_path,
                        uint64_t file_size, struct mg_buf *said)
{
    struct queue_removal *r = mg_calloc(1, sizeof(*r));
    r->msg_path = mg_strdup(msg_path);
    r->log_path = log_path != NULL ? mg_strdup(log_path) : NULL;
    if (said != NULL) {
        r->said = *said;
        *said = (struct mg_buf)MG_BUF_INIT;
    }
    if (file_size <= QUEUE_POOL_FILE_SIZE_MAX && q->pool_count < QUEUE_POOL_FILES) {
        r->pool = mg_calloc(1, sizeof(*r->pool));
        r->pool->number = q->pool_next_number++;
        r->pool->size = file_size;
        q->pool_count++;
    }
    if (q->removals_waiting_tail != NULL)
        q->removals_waiting_tail->next = r;
    else
        q->removals_waiting = r;
    q->removals_waiting_tail = r;
    removal_start(q);
}

/* ---- injecting our own messages ---- */

void queue_inject(struct queue *queue, struct queue_envelope *env, const char *content,
                  size_t len, queue_commit_cb *cb, void *ctx)
{
    const char *error;
    struct queue_new *m = queue_new_begin(queue, env, &error);
    if (m == NULL) {
        if (cb != NULL)
            cb(-EIO, "", ctx);
        return;
    }
    queue_new_write(m, content, len);
    queue_new_commit(m, cb, ctx);
}
