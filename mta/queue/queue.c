/* The queue manager (see queue.h): messages in memory, their recipients'
 * states, the scheduler, results. The spool's files are queue_spool.c's.
 *
 * The scheduler never walks the whole queue. A message is looked at when
 * something about it changed (it arrived, a delivery ended, a look-up
 * answered, the administrator acted: it is "dirty") or when its time has
 * come (a binary min-heap of messages by the next retry, the end of their
 * lifetime or the delay warning). Looking at a message ("planning" it)
 * puts it at the end of the FIFO of due work of each agent it has due
 * recipients for. Work is then handed out from the front of each FIFO
 * only while the agent takes it: the oldest due work goes first, and a
 * full agent costs one refused offer per pass, not one per message. */
#include "mta/queue/queue_private.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "common/alloc.h"
#include "common/fd_io.h"
#include "common/arena.h"
#include "common/ascii.h"
#include "common/auth_client.h"
#include "common/buf.h"
#include "common/datetime.h"
#include "common/log.h"
#include "common/settings.h"
#include "common/strmap.h"

/* A delivery that was not even attempted (the MDA is restarting, say) is
 * offered again this soon: mail goes out as soon as the MDA is back. */
#define QUEUE_NOT_ATTEMPTED_RETRY_MS 2000
/* Recipients not resolvable now are retried like a delivery. */
#define QUEUE_RESOLVE_RETRY_MS 60000
/* The remote agent refuses a delivery when its destination cannot get a
 * connection now; other destinations may still take theirs, so a pass
 * goes on after a refusal, until this many. */
#define QUEUE_REMOTE_REFUSALS_MAX 64

static void msg_free(struct queue *q, struct queue_msg *m);
static bool msg_is_done(const struct queue_msg *m);
static void msg_settle(struct queue *q, struct queue_msg *m, struct mg_buf *lines, bool sync);
static void msg_touch(struct queue *q, struct queue_msg *m);
static void list_remove(struct queue *q, struct queue_msg *m, enum queue_list l);
static void timer_remove(struct queue *q, struct queue_msg *m);

struct queue_msg *queue_find(struct queue *queue, const char *id)
{
    return mg_strmap_get(queue->by_id, id);
}

static uint64_t now_ms(struct queue *q)
{
    return uv_now(q->loop);
}

/* ---- adding messages to memory ---- */

static struct queue_msg *msg_add(struct queue *q, const struct queue_envelope *env,
                                 const char *path, uint64_t off, uint64_t len, uint64_t file_size)
{
    struct queue_msg *m = mg_calloc(1, sizeof(*m));
    m->arena = mg_arena_new(1024);
    m->env = *env;
    m->env.from = mg_arena_strdup(m->arena, env->from);
    m->env.envid = env->envid != NULL ? mg_arena_strdup(m->arena, env->envid) : NULL;
    m->env.auth_user = env->auth_user != NULL ? mg_arena_strdup(m->arena, env->auth_user) : NULL;
    m->env.client = env->client != NULL ? mg_arena_strdup(m->arena, env->client) : NULL;
    m->env.rcpts = NULL;
    m->n_rcpts = env->n_rcpts;
    m->rcpts = mg_calloc(env->n_rcpts ? env->n_rcpts : 1, sizeof(*m->rcpts));
    for (size_t i = 0; i < env->n_rcpts; i++) {
        m->rcpts[i].route = env->rcpts[i].route;
        m->rcpts[i].address = mg_strdup(env->rcpts[i].address);
        m->rcpts[i].orcpt = env->rcpts[i].orcpt != NULL ? mg_strdup(env->rcpts[i].orcpt) : NULL;
        m->rcpts[i].notify = env->rcpts[i].notify;
    }
    m->path = mg_strdup(path);
    m->log_path = mg_asprintf("%s/%s", q->log_dir, env->id);
    m->content_off = off;
    m->content_len = len;
    m->file_size = file_size;
    m->timer_idx = QUEUE_NO_TIMER;
    m->next = q->msgs;
    if (q->msgs != NULL)
        q->msgs->prev = m;
    q->msgs = m;
    q->n_msgs++;
    mg_strmap_set(q->by_id, m->env.id, m);
    return m;
}

static void msg_free(struct queue *q, struct queue_msg *m)
{
    for (int l = 0; l < QUEUE_LISTS; l++)
        list_remove(q, m, (enum queue_list)l);
    timer_remove(q, m);
    mg_strmap_remove(q->by_id, m->env.id);
    if (m->prev != NULL)
        m->prev->next = m->next;
    else if (q->msgs == m)
        q->msgs = m->next;
    if (m->next != NULL)
        m->next->prev = m->prev;
    q->n_msgs--;
    for (size_t i = 0; i < m->n_rcpts; i++) {
        free(m->rcpts[i].address);
        free(m->rcpts[i].orcpt);
        free(m->rcpts[i].last_error);
        free(m->rcpts[i].last_relay);
    }
    free(m->rcpts);
    free(m->path);
    free(m->log_path);
    mg_buf_free(&m->notice_lines);
    mg_arena_free(&m->arena);
    free(m);
}

/* The message's files go (in the thread pool), and the message with
 * them. said: lines for the log once they are gone (or NULL). */
static void msg_remove(struct queue *q, struct queue_msg *m, struct mg_buf *said)
{
    queue_spool_remove(q, m->path, m->has_log ? m->log_path : NULL, m->file_size, said);
    msg_free(q, m);
}

void queue_msg_committed(struct queue *queue, const struct queue_envelope *env, const char *path,
                         uint64_t content_off, uint64_t content_len, uint64_t file_size)
{
    msg_touch(queue, msg_add(queue, env, path, content_off, content_len, file_size));
}

/* ---- the status log ---- */

/* Lines: "<index> <state> <time> <dsn> <text>", state one of delivered,
 * bounced, deferred (an attempt that failed) or waiting (not attempted:
 * the next hop was unreachable); "hold"/"release"/"warned" lines without
 * index. A torn last line (crash while appending) is ignored. */
static void log_replay(struct queue_msg *m)
{
    FILE *f = fopen(m->log_path, "re");
    if (f == NULL)
        return;
    m->has_log = true;
    char line[2048];
    while (fgets(line, sizeof(line), f) != NULL) {
        size_t len = strlen(line);
        if (len == 0 || line[len - 1] != '\n')
            break; /* torn */
        line[len - 1] = '\0';
        if (strncmp(line, "hold ", 5) == 0) {
            m->is_held = true;
            continue;
        }
        if (strncmp(line, "release ", 8) == 0) {
            m->is_held = false;
            continue;
        }
        if (strncmp(line, "warned ", 7) == 0) {
            m->is_warned = true;
            continue;
        }
        if (strncmp(line, "deleted ", 8) == 0) {
            /* Deleted by the administrator: final for everyone. */
            for (size_t i = 0; i < m->n_rcpts; i++)
                m->rcpts[i].state = RCPT_BOUNCED;
            m->is_deleted = true;
            continue;
        }
        char state[16];
        unsigned long idx;
        long long when;
        char dsn[16];
        int n = 0;
        if (sscanf(line, "%lu %15s %lld %15s %n", &idx, state, &when, dsn, &n) < 4 || idx >= m->n_rcpts)
            continue;
        struct queue_rcpt *r = &m->rcpts[idx];
        snprintf(r->dsn, sizeof(r->dsn), "%s", dsn);
        free(r->last_error);
        r->last_error = mg_strdup(line + n);
        if (strcmp(state, "delivered") == 0)
            r->state = RCPT_DELIVERED;
        else if (strcmp(state, "bounced") == 0)
            r->state = RCPT_BOUNCED;
        else if (strcmp(state, "deferred") == 0)
            r->attempts++;
    }
    fclose(f);
}

static void log_line(struct mg_buf *out, size_t idx, const char *state, const char *dsn,
                     const char *text)
{
    mg_buf_printf(out, "%zu %s %lld %s ", idx, state, (long long)time(NULL),
                  dsn != NULL && dsn[0] != '\0' ? dsn : "-");
    for (const char *p = text != NULL ? text : ""; *p != '\0'; p++)
        mg_buf_append_byte(out, *p == '\n' || *p == '\r' ? ' ' : *p);
    mg_buf_append_byte(out, '\n');
}

/* ---- opening ---- */

static int msg_cmp_id(const void *a, const void *b)
{
    const struct queue_msg *const *x = a, *const *y = b;
    return strcmp((*x)->env.id, (*y)->env.id);
}

static void load_spool(struct queue *q)
{
    DIR *d = opendir(q->msg_dir);
    if (d == NULL)
        return;
    struct dirent *de;
    size_t loaded = 0, bad = 0, finished = 0;
    struct queue_msg **order = NULL;
    size_t n_order = 0, cap_order = 0;
    while ((de = readdir(d)) != NULL) {
        if (!mg_unique_id_is_valid(de->d_name))
            continue;
        char *path = mg_asprintf("%s/%s", q->msg_dir, de->d_name);
        struct mg_arena *arena = mg_arena_new(4096);
        struct queue_envelope env;
        uint64_t off, len;
        const char *error = "the ID does not match the file name";
        if (queue_file_read(path, arena, &env, &off, &len, &error) != 0 ||
            strcmp(env.id, de->d_name) != 0) {
            /* Never deliver a damaged file: keep it for the operator. */
            char *to = mg_asprintf("%s/%s", q->corrupt_dir, de->d_name);
            rename(path, to);
            mg_log_error("queue", "damaged queue file moved aside id=%s error=%s path=%s", de->d_name,
                         error, to);
            free(to);
            bad++;
        } else {
            uint64_t size = off + len + strlen("end \n") + strlen(env.id);
            struct queue_msg *m = msg_add(q, &env, path, off, len, size);
            log_replay(m);
            if (msg_is_done(m)) {
                /* Every result was logged, the files were not removed yet
                 * (a crash, or a delete): they go now. */
                unlink(m->path);
                unlink(m->log_path);
                msg_free(q, m);
                finished++;
            } else {
                if (n_order == cap_order) {
                    cap_order = cap_order ? cap_order * 2 : 64;
                    order = mg_reallocarray(order, cap_order, sizeof(*order));
                }
                order[n_order++] = m;
                loaded++;
            }
        }
        mg_arena_free(&arena);
        free(path);
    }
    closedir(d);
    queue_spool_clean(q);
    /* Logs whose message is gone (deleted after the last result). */
    d = opendir(q->log_dir);
    if (d != NULL) {
        while ((de = readdir(d)) != NULL) {
            if (de->d_name[0] == '.' || queue_find(q, de->d_name) != NULL)
                continue;
            char *path = mg_asprintf("%s/%s", q->log_dir, de->d_name);
            unlink(path);
            free(path);
        }
        closedir(d);
    }
    /* Planned oldest first: the order of their work. */
    if (n_order > 0)
        qsort(order, n_order, sizeof(*order), msg_cmp_id);
    for (size_t i = 0; i < n_order; i++)
        msg_touch(q, order[i]);
    free(order);
    if (loaded > 0 || bad > 0 || finished > 0)
        mg_log_info("queue", "queue loaded messages=%zu damaged=%zu finished=%zu", loaded, bad, finished);
}

static void queue_schedule(struct queue *q);

static void timer_cb(uv_timer_t *t)
{
    queue_schedule(t->data);
}

static void kick_cb(uv_idle_t *h)
{
    struct queue *q = h->data;
    uv_idle_stop(h);
    q->is_kicked = false;
    queue_schedule(q);
}

static void queue_free_paths(struct queue *q)
{
    free(q->dir);
    free(q->tmp_dir);
    free(q->msg_dir);
    free(q->log_dir);
    free(q->corrupt_dir);
    free(q->free_dir);
}

int queue_open(uv_loop_t *loop, const struct mg_settings *settings, struct queue **queue_r,
               char **error_r)
{
    struct queue *q = mg_calloc(1, sizeof(*q));
    q->loop = loop;
    q->settings = settings;
    q->dir = mg_strdup(settings->mta.queue_dir);
    q->tmp_dir = mg_asprintf("%s/tmp", q->dir);
    q->msg_dir = mg_asprintf("%s/msg", q->dir);
    q->log_dir = mg_asprintf("%s/log", q->dir);
    q->corrupt_dir = mg_asprintf("%s/corrupt", q->dir);
    q->free_dir = mg_asprintf("%s/free", q->dir);
    q->lock_fd = -1;
    if (queue_spool_init(q, error_r) != 0)
        goto fail;
    /* One process works on the spool at a time: mgsmtpd, or mgqueue while
     * mgsmtpd is stopped. Two would deliver everything twice and remove
     * each other's files. The lock goes with the process, also on kill -9. */
    char *lock_path = mg_asprintf("%s/lock", q->dir);
    q->lock_fd = open(lock_path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (q->lock_fd < 0 || flock(q->lock_fd, LOCK_EX | LOCK_NB) != 0) {
        *error_r = errno == EWOULDBLOCK
                       ? mg_asprintf("the queue %s is in use by another process (mgsmtpd running?)", q->dir)
                       : mg_asprintf("cannot lock %s: %s", lock_path, strerror(errno));
        free(lock_path);
        goto fail;
    }
    free(lock_path);
    q->by_id = mg_strmap_new();
    uv_timer_init(loop, &q->timer);
    q->timer.data = q;
    uv_idle_init(loop, &q->kick);
    q->kick.data = q;
    load_spool(q);
    *queue_r = q;
    queue_kick(q);
    return 0;
fail:
    if (q->lock_fd >= 0)
        close(q->lock_fd);
    queue_free_paths(q);
    free(q);
    return -1;
}

void queue_set_auth(struct queue *queue, struct mg_auth_client *auth)
{
    queue->auth = auth;
}

void queue_set_agents(struct queue *queue, struct queue_agent *local, struct queue_agent *remote)
{
    queue->local = local;
    queue->remote = remote;
    queue_kick(queue);
}

static void queue_free_cb(uv_handle_t *h)
{
    struct queue *q = h->data;
    while (q->msgs != NULL)
        msg_free(q, q->msgs);
    queue_spool_free(q);
    mg_strmap_free(&q->by_id);
    free(q->timers);
    if (q->lock_fd >= 0)
        close(q->lock_fd);
    queue_free_paths(q);
    free(q);
}

static void timer_closed_cb(uv_handle_t *h)
{
    struct queue *q = h->data;
    uv_close((uv_handle_t *)&q->kick, queue_free_cb);
}

void queue_close(struct queue **queue)
{
    struct queue *q = *queue;
    if (q == NULL)
        return;
    *queue = NULL;
    q->is_closing = true;
    while (q->jobs_running > 0)
        uv_run(q->loop, UV_RUN_ONCE);
    uv_close((uv_handle_t *)&q->timer, timer_closed_cb);
}

unsigned queue_jobs_running(const struct queue *queue)
{
    return queue->jobs_running;
}

size_t queue_count(const struct queue *queue)
{
    return queue->n_msgs;
}

void queue_kick(struct queue *queue)
{
    if (queue->is_kicked || queue->is_closing)
        return;
    queue->is_kicked = true;
    uv_idle_start(&queue->kick, kick_cb);
}

/* ---- the scheduler's lists and timers ---- */

static void list_append(struct queue *q, struct queue_msg *m, enum queue_list l)
{
    if (m->is_listed[l])
        return;
    m->is_listed[l] = true;
    m->list_next[l] = NULL;
    m->list_prev[l] = q->list_tail[l];
    if (q->list_tail[l] != NULL)
        q->list_tail[l]->list_next[l] = m;
    else
        q->list_head[l] = m;
    q->list_tail[l] = m;
}

static void list_prepend(struct queue *q, struct queue_msg *m, enum queue_list l)
{
    if (m->is_listed[l])
        return;
    m->is_listed[l] = true;
    m->list_prev[l] = NULL;
    m->list_next[l] = q->list_head[l];
    if (q->list_head[l] != NULL)
        q->list_head[l]->list_prev[l] = m;
    else
        q->list_tail[l] = m;
    q->list_head[l] = m;
}

static void list_remove(struct queue *q, struct queue_msg *m, enum queue_list l)
{
    if (!m->is_listed[l])
        return;
    m->is_listed[l] = false;
    if (m->list_prev[l] != NULL)
        m->list_prev[l]->list_next[l] = m->list_next[l];
    else
        q->list_head[l] = m->list_next[l];
    if (m->list_next[l] != NULL)
        m->list_next[l]->list_prev[l] = m->list_prev[l];
    else
        q->list_tail[l] = m->list_prev[l];
    m->list_next[l] = m->list_prev[l] = NULL;
}

/* Something about m changed: planned again on the next pass. */
static void msg_touch(struct queue *q, struct queue_msg *m)
{
    list_append(q, m, QUEUE_LIST_DIRTY);
    queue_kick(q);
}

static void timer_swap(struct queue *q, size_t i, size_t j)
{
    struct queue_msg *t = q->timers[i];
    q->timers[i] = q->timers[j];
    q->timers[j] = t;
    q->timers[i]->timer_idx = i;
    q->timers[j]->timer_idx = j;
}

static void timer_up(struct queue *q, size_t i)
{
    while (i > 0) {
        size_t parent = (i - 1) / 2;
        if (q->timers[parent]->wake_ms <= q->timers[i]->wake_ms)
            break;
        timer_swap(q, i, parent);
        i = parent;
    }
}

static void timer_down(struct queue *q, size_t i)
{
    for (;;) {
        size_t l = 2 * i + 1, r = l + 1, min = i;
        if (l < q->n_timers && q->timers[l]->wake_ms < q->timers[min]->wake_ms)
            min = l;
        if (r < q->n_timers && q->timers[r]->wake_ms < q->timers[min]->wake_ms)
            min = r;
        if (min == i)
            return;
        timer_swap(q, i, min);
        i = min;
    }
}

static void timer_remove(struct queue *q, struct queue_msg *m)
{
    size_t i = m->timer_idx;
    if (i == QUEUE_NO_TIMER)
        return;
    size_t last = --q->n_timers;
    if (i != last) {
        timer_swap(q, i, last);
        timer_up(q, i);
        timer_down(q, i);
    }
    m->timer_idx = QUEUE_NO_TIMER;
}

/* m needs a look at loop time when (UINT64_MAX: never). */
static void timer_set(struct queue *q, struct queue_msg *m, uint64_t when)
{
    if (when == UINT64_MAX) {
        timer_remove(q, m);
        return;
    }
    if (m->timer_idx != QUEUE_NO_TIMER) {
        if (when == m->wake_ms)
            return;
        bool is_earlier = when < m->wake_ms;
        m->wake_ms = when;
        if (is_earlier)
            timer_up(q, m->timer_idx);
        else
            timer_down(q, m->timer_idx);
        return;
    }
    if (q->n_timers == q->cap_timers) {
        q->cap_timers = q->cap_timers ? q->cap_timers * 2 : 64;
        q->timers = mg_reallocarray(q->timers, q->cap_timers, sizeof(*q->timers));
    }
    m->wake_ms = when;
    m->timer_idx = q->n_timers;
    q->timers[q->n_timers++] = m;
    timer_up(q, m->timer_idx);
}

/* ---- scheduling ---- */

static bool rcpt_is_final(const struct queue_rcpt *r)
{
    return r->state == RCPT_DELIVERED || r->state == RCPT_BOUNCED;
}

static bool msg_is_done(const struct queue_msg *m)
{
    for (size_t i = 0; i < m->n_rcpts; i++) {
        if (!rcpt_is_final(&m->rcpts[i]))
            return false;
    }
    return true;
}

/* Whether r is due for an agent now. */
static bool rcpt_is_due(const struct queue_rcpt *r, uint64_t now, char route)
{
    return r->state == RCPT_PENDING && r->next_try_ms <= now && r->route == route;
}

static const char *rcpt_domain(const char *address)
{
    const char *at = strrchr(address, '@');
    return at != NULL ? at + 1 : "";
}

static uint64_t backoff_ms(const struct queue *q, unsigned attempts)
{
    uint64_t d = q->settings->queue.retry_min_ms;
    for (unsigned i = 1; i < attempts && d < q->settings->queue.retry_max_ms; i++)
        d *= 2;
    return d > q->settings->queue.retry_max_ms ? q->settings->queue.retry_max_ms : d;
}

static uint64_t msg_age_ms(const struct queue_msg *m)
{
    time_t now = time(NULL);
    return now > m->env.arrival ? (uint64_t)(now - m->env.arrival) * 1000u : 0;
}

struct resolve_ctx {
    struct queue *queue;
    char id[MG_UNIQUE_ID_LEN + 1];
    size_t idx;
    /* The bare "postmaster" (double bounces): the domain asked about now,
     * a suffix of the host name, as for RCPT TO:<postmaster>. */
    const char *postmaster_domain;
};

static void resolved_cb(const struct mg_auth_resolve_result *res, void *ctx);

/* "mail.example.com" gives "example.com", which gives NULL. */
static const char *parent_domain(const char *domain)
{
    const char *dot = strchr(domain, '.');
    return dot != NULL && strchr(dot + 1, '.') != NULL ? dot + 1 : NULL;
}

static void resolve_start(struct resolve_ctx *rc, const char *address)
{
    char pm[300];
    if (rc->postmaster_domain != NULL) {
        snprintf(pm, sizeof(pm), "postmaster@%s", rc->postmaster_domain);
        address = pm;
    }
    mg_auth_resolve(rc->queue->auth, address, resolved_cb, rc);
}

static void resolved_cb(const struct mg_auth_resolve_result *res, void *ctx)
{
    struct resolve_ctx *rc = ctx;
    struct queue *q = rc->queue;
    struct queue_msg *m = queue_find(q, rc->id);
    if (m != NULL && rc->idx < m->n_rcpts && m->rcpts[rc->idx].state == RCPT_RESOLVING &&
        res->status == MG_AUTH_NOT_LOCAL && rc->postmaster_domain != NULL &&
        (rc->postmaster_domain = parent_domain(rc->postmaster_domain)) != NULL) {
        resolve_start(rc, NULL); /* one label up */
        return;
    }
    if (m != NULL && rc->idx < m->n_rcpts && m->rcpts[rc->idx].state == RCPT_RESOLVING) {
        struct queue_rcpt *r = &m->rcpts[rc->idx];
        r->state = RCPT_PENDING;
        if (res->status == MG_AUTH_NOT_LOCAL && strchr(r->address, '@') == NULL) {
            /* No domain of the host name is ours: nobody to tell. */
            r->route = QUEUE_ROUTE_LOCAL; /* LMTP refuses it: 5.1.1 */
        } else if (res->status == MG_AUTH_OK && res->count > 0 && res->targets[0].is_local) {
            /* A generated message goes to the mailbox the address
             * reaches (the first: bounces have one recipient). */
            r->route = QUEUE_ROUTE_LOCAL;
            free(r->address);
            r->address = mg_strdup(res->targets[0].address);
        } else if (res->status == MG_AUTH_OK && res->count > 0) {
            r->route = QUEUE_ROUTE_REMOTE;
            free(r->address);
            r->address = mg_strdup(res->targets[0].address);
        } else if (res->status == MG_AUTH_NOT_LOCAL) {
            r->route = QUEUE_ROUTE_REMOTE;
        } else if (res->status == MG_AUTH_NOT_FOUND) {
            r->route = QUEUE_ROUTE_LOCAL; /* LMTP will refuse it: 5.1.1 */
            if (rc->postmaster_domain != NULL) {
                free(r->address); /* the one asked about, for the logs */
                r->address = mg_asprintf("postmaster@%s", rc->postmaster_domain);
            }
        } else {
            r->next_try_ms = now_ms(q) + QUEUE_RESOLVE_RETRY_MS;
        }
        msg_touch(q, m);
    }
    free(rc);
}

static void resolve_rcpt(struct queue *q, struct queue_msg *m, size_t idx)
{
    struct queue_rcpt *r = &m->rcpts[idx];
    if (q->auth == NULL) {
        r->route = strchr(r->address, '@') != NULL ? QUEUE_ROUTE_REMOTE : QUEUE_ROUTE_LOCAL;
        return;
    }
    struct resolve_ctx *rc = mg_calloc(1, sizeof(*rc));
    rc->queue = q;
    memcpy(rc->id, m->env.id, sizeof(rc->id));
    rc->idx = idx;
    if (strchr(r->address, '@') == NULL)
        rc->postmaster_domain = q->settings->hostname;
    r->state = RCPT_RESOLVING;
    resolve_start(rc, r->address);
}

static struct queue_delivery *delivery_new(struct queue_msg *m, const char *destination)
{
    struct queue_delivery *d = mg_calloc(1, sizeof(*d));
    d->id = m->env.id;
    d->from = m->env.from;
    d->envid = m->env.envid;
    d->ret = m->env.ret;
    d->body = m->env.body;
    d->is_smtputf8 = m->env.is_smtputf8;
    d->destination = destination != NULL ? mg_strdup(destination) : NULL;
    d->spool_path = m->path;
    d->content_off = m->content_off;
    d->content_len = m->content_len;
    return d;
}

/* Indexes of the delivery's recipients in the message travel with it. */
struct delivery_meta {
    struct queue_msg *msg;
    size_t *idx;
};

static void delivery_add(struct queue_delivery *d, struct delivery_meta *meta, size_t i,
                         struct queue_rcpt *r)
{
    d->rcpts = mg_reallocarray(d->rcpts, d->n_rcpts + 1, sizeof(*d->rcpts));
    meta->idx = mg_reallocarray(meta->idx, d->n_rcpts + 1, sizeof(*meta->idx));
    struct queue_delivery_rcpt *dr = &d->rcpts[d->n_rcpts];
    memset(dr, 0, sizeof(*dr));
    dr->address = r->address;
    dr->orcpt = r->orcpt;
    dr->notify = r->notify;
    meta->idx[d->n_rcpts] = i;
    d->n_rcpts++;
}

static void delivery_free(struct queue_delivery *d)
{
    for (size_t i = 0; i < d->n_rcpts; i++)
        free(d->rcpts[i].text);
    free(d->rcpts);
    free((char *)d->destination);
    free(d->relay);
    free(d);
}

/* Hands d to agent; on refusal everything is as before. */
static bool delivery_offer(struct queue_agent *agent, struct queue_msg *m, struct queue_delivery *d,
                           struct delivery_meta *meta)
{
    d->agent_data = meta;
    for (size_t k = 0; k < d->n_rcpts; k++)
        m->rcpts[meta->idx[k]].state = RCPT_IN_FLIGHT;
    m->in_flight++;
    if (agent->deliver(agent, d))
        return true;
    for (size_t k = 0; k < d->n_rcpts; k++)
        m->rcpts[meta->idx[k]].state = RCPT_PENDING;
    m->in_flight--;
    free(meta->idx);
    free(meta);
    d->agent_data = NULL;
    delivery_free(d);
    return false;
}

/* All due local recipients of m in one LMTP transaction. Returns false
 * when the agent was full. */
static bool offer_local(struct queue *q, struct queue_msg *m, uint64_t now)
{
    struct queue_delivery *d = NULL;
    struct delivery_meta *meta = NULL;
    for (size_t i = 0; i < m->n_rcpts; i++) {
        struct queue_rcpt *r = &m->rcpts[i];
        if (!rcpt_is_due(r, now, QUEUE_ROUTE_LOCAL))
            continue;
        if (d == NULL) {
            d = delivery_new(m, NULL);
            meta = mg_calloc(1, sizeof(*meta));
            meta->msg = m;
        }
        delivery_add(d, meta, i, r);
    }
    return d == NULL || delivery_offer(q->local, m, d, meta);
}

/* One delivery per destination domain of m's due remote recipients; a
 * refused domain's recipients wait for the next pass. Returns whether
 * every due remote recipient was taken. */
static bool offer_remote(struct queue *q, struct queue_msg *m, uint64_t now, unsigned *refusals)
{
    bool *is_refused = NULL;
    bool is_all = true;
    for (size_t i = 0; i < m->n_rcpts; i++) {
        struct queue_rcpt *r = &m->rcpts[i];
        if (!rcpt_is_due(r, now, QUEUE_ROUTE_REMOTE) || (is_refused != NULL && is_refused[i]))
            continue;
        if (*refusals >= QUEUE_REMOTE_REFUSALS_MAX) {
            is_all = false;
            break;
        }
        const char *dom = rcpt_domain(r->address);
        struct queue_delivery *d = delivery_new(m, dom);
        struct delivery_meta *meta = mg_calloc(1, sizeof(*meta));
        meta->msg = m;
        for (size_t k = i; k < m->n_rcpts; k++) {
            struct queue_rcpt *o = &m->rcpts[k];
            if (rcpt_is_due(o, now, QUEUE_ROUTE_REMOTE) &&
                mg_ascii_strcasecmp(rcpt_domain(o->address), dom) == 0)
                delivery_add(d, meta, k, o);
        }
        size_t *idx = mg_calloc(d->n_rcpts, sizeof(*idx));
        size_t n = d->n_rcpts;
        memcpy(idx, meta->idx, n * sizeof(*idx));
        if (!delivery_offer(q->remote, m, d, meta)) {
            if (is_refused == NULL)
                is_refused = mg_calloc(m->n_rcpts, sizeof(*is_refused));
            for (size_t k = 0; k < n; k++)
                is_refused[idx[k]] = true;
            is_all = false;
            ++*refusals;
        }
        free(idx);
    }
    free(is_refused);
    return is_all;
}

static void expire_msg(struct queue *q, struct queue_msg *m);
static void warn_msg(struct queue *q, struct queue_msg *m);

/* Loop time at which a message of this age is older than limit. */
static uint64_t deadline_after(uint64_t now, uint64_t age, uint64_t limit)
{
    return now + (limit > age ? limit - age : 0) + 1000;
}

/* A finished message goes (with its files). Returns true when it did. */
static bool msg_settle_if_done(struct queue *q, struct queue_msg *m)
{
    if (!msg_is_done(m) || m->in_flight != 0 || m->notices_pending != 0)
        return false;
    struct mg_buf none = MG_BUF_INIT;
    msg_settle(q, m, &none, false);
    return true;
}

/* Looks at m: expiry, the delay warning, look-ups to start, the agents'
 * FIFOs it belongs in, and when to look again. */
static void msg_plan(struct queue *q, struct queue_msg *m)
{
    const struct mg_settings_queue *set = &q->settings->queue;
    if (m->is_held || m->is_deleted || msg_is_done(m)) {
        /* Nothing to do (a finished message may wait for its notices). */
        list_remove(q, m, QUEUE_LIST_LOCAL);
        list_remove(q, m, QUEUE_LIST_REMOTE);
        timer_remove(q, m);
        if (!m->is_held)
            msg_settle_if_done(q, m);
        return;
    }
    uint64_t now = now_ms(q);
    uint64_t age = msg_age_ms(m);
    if (age > set->lifetime_ms && m->in_flight == 0) {
        expire_msg(q, m);
        return;
    }
    if (set->delay_warning_ms != 0 && !m->is_warned && age > set->delay_warning_ms)
        warn_msg(q, m);
    bool is_due_local = false, is_due_remote = false, is_waiting = false;
    uint64_t next = UINT64_MAX;
    for (size_t i = 0; i < m->n_rcpts; i++) {
        struct queue_rcpt *r = &m->rcpts[i];
        is_waiting |= !rcpt_is_final(r);
        if (r->state != RCPT_PENDING)
            continue;
        if (r->next_try_ms > now) {
            next = r->next_try_ms < next ? r->next_try_ms : next;
            continue;
        }
        if (r->route == QUEUE_ROUTE_UNKNOWN) {
            resolve_rcpt(q, m, i); /* without an auth service: known at once */
            if (r->state != RCPT_PENDING)
                continue;
        }
        is_due_local |= r->route == QUEUE_ROUTE_LOCAL;
        is_due_remote |= r->route == QUEUE_ROUTE_REMOTE;
    }
    if (is_due_local)
        list_append(q, m, QUEUE_LIST_LOCAL);
    else
        list_remove(q, m, QUEUE_LIST_LOCAL);
    if (is_due_remote)
        list_append(q, m, QUEUE_LIST_REMOTE);
    else
        list_remove(q, m, QUEUE_LIST_REMOTE);
    /* The end of the lifetime and the delay warning are due at their
     * time, not at the next retry (which may be hours away). Ages count
     * whole seconds: a second later they are surely past. */
    if (is_waiting) {
        uint64_t due = deadline_after(now, age, set->lifetime_ms);
        if (set->delay_warning_ms != 0 && !m->is_warned) {
            uint64_t warn = deadline_after(now, age, set->delay_warning_ms);
            due = warn < due ? warn : due;
        }
        next = due < next ? due : next;
    }
    timer_set(q, m, next);
    msg_settle_if_done(q, m);
}

/* Local work from the front of its FIFO while the agent takes it. */
static void dispatch_local(struct queue *q, uint64_t now)
{
    struct queue_msg *m;
    while (q->local != NULL && (m = q->list_head[QUEUE_LIST_LOCAL]) != NULL) {
        list_remove(q, m, QUEUE_LIST_LOCAL);
        /* An agent may finish a delivery before deliver() returns (the
         * spool file cannot be read), and a finished message is freed:
         * hold it until we are done. */
        m->in_flight++;
        bool is_taken = offer_local(q, m, now);
        m->in_flight--;
        if (!is_taken) {
            list_prepend(q, m, QUEUE_LIST_LOCAL); /* first when there is room */
            return;
        }
        msg_settle_if_done(q, m);
    }
}

/* Remote work: the agent refuses per destination, so refused messages
 * keep their place and the pass goes on, up to a number of refusals. */
static void dispatch_remote(struct queue *q, uint64_t now)
{
    if (q->remote == NULL)
        return;
    unsigned refusals = 0;
    struct queue_msg *m = q->list_head[QUEUE_LIST_REMOTE];
    while (m != NULL && refusals < QUEUE_REMOTE_REFUSALS_MAX) {
        struct queue_msg *next = m->list_next[QUEUE_LIST_REMOTE];
        m->in_flight++;
        bool is_all = offer_remote(q, m, now, &refusals);
        m->in_flight--;
        if (is_all)
            list_remove(q, m, QUEUE_LIST_REMOTE);
        msg_settle_if_done(q, m);
        m = next;
    }
}

static void queue_schedule(struct queue *q)
{
    if (q->is_closing)
        return;
    struct queue_msg *m;
    while ((m = q->list_head[QUEUE_LIST_DIRTY]) != NULL) {
        list_remove(q, m, QUEUE_LIST_DIRTY);
        msg_plan(q, m);
    }
    uint64_t now = now_ms(q);
    while (q->n_timers > 0 && q->timers[0]->wake_ms <= now) {
        m = q->timers[0];
        timer_remove(q, m);
        msg_plan(q, m);
    }
    dispatch_local(q, now);
    dispatch_remote(q, now);
    if (q->n_timers > 0) {
        uint64_t next = q->timers[0]->wake_ms;
        uv_timer_start(&q->timer, timer_cb, (next > now ? next - now : 0) + 10, 0);
    } else {
        uv_timer_stop(&q->timer);
    }
}

/* ---- results ---- */

/* A notice about m is on disk: its failures may now be logged final. */
static void notice_done(struct queue *q, const char *id)
{
    struct queue_msg *m = queue_find(q, id);
    if (m == NULL)
        return;
    m->notices_pending--;
    struct mg_buf lines = MG_BUF_INIT;
    if (m->notices_pending == 0) {
        lines = m->notice_lines;
        m->notice_lines = (struct mg_buf)MG_BUF_INIT;
    }
    msg_settle(q, m, &lines, true);
}

/* Sends a notice; the log lines wait for it when one is sent. */
static void notify_then_log(struct queue *q, struct queue_msg *m, const size_t *idx, size_t n,
                            enum bounce_action action, struct mg_buf *final_lines,
                            struct mg_buf *lines)
{
    if (bounce_send(q, m, idx, n, action, notice_done)) {
        m->notices_pending++;
        mg_buf_append(&m->notice_lines, final_lines->data, final_lines->len);
    } else {
        mg_buf_append(lines, final_lines->data, final_lines->len);
    }
    mg_buf_reset(final_lines);
}

struct result_job {
    uv_work_t req;
    struct queue *queue;
    char id[MG_UNIQUE_ID_LEN + 1];
    char *log_path;
    int status;
};

static void result_work(uv_work_t *req)
{
    struct result_job *j = req->data;
    int fd = open(j->log_path, O_WRONLY | O_APPEND | O_CLOEXEC);
    if (fd < 0) {
        if (errno != ENOENT) /* no log yet: nothing to sync */
            j->status = -errno;
        return;
    }
    if (fdatasync(fd) != 0)
        j->status = -errno;
    close(fd);
}

static void result_after(uv_work_t *req, int status)
{
    (void)status;
    struct result_job *j = req->data;
    j->queue->jobs_running--;
    if (j->status != 0)
        mg_log_error("queue", "cannot sync the queue log id=%s error=%s", j->id, strerror(-j->status));
    free(j->log_path);
    free(j);
}

/* Appends lines to m's status log at once: a write into the page cache,
 * which survives a crash of the process (kill -9), so that a result is in
 * the log before anything else happens, also before the line about it in
 * the daemon's log. What survives a crash of the machine is the
 * fdatasync's business (result_sync_start). */
static void status_append(struct queue_msg *m, struct mg_buf *lines)
{
    if (lines->len == 0)
        return;
    m->has_log = true;
    int fd = open(m->log_path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
    int r = fd < 0 ? -errno : mg_fd_write_all(fd, lines->data, lines->len);
    if (fd >= 0)
        close(fd);
    if (r != 0)
        mg_log_error("queue", "cannot write the queue log id=%s error=%s", m->env.id, strerror(-r));
    mg_buf_reset(lines);
}

/* An fdatasync of m's status log in the thread pool. */
static void result_sync_start(struct queue *q, struct queue_msg *m)
{
    struct result_job *j = mg_calloc(1, sizeof(*j));
    j->queue = q;
    memcpy(j->id, m->env.id, sizeof(j->id));
    j->log_path = mg_strdup(m->log_path);
    j->req.data = j;
    q->jobs_running++;
    uv_queue_work(q->loop, &j->req, result_work, result_after);
}

static void format_result(struct mg_buf *out, const struct queue_msg *m, const struct queue_rcpt *r,
                          const char *status, const char *relay)
{
    char tv[MG_LOG_VALUE_MAX], rv[MG_LOG_VALUE_MAX];
    uint64_t delay = msg_age_ms(m) / 1000;
    mg_buf_printf(out, "%s to=%s relay=%s delay=%llus dsn=%s status=%s reply=%s", m->env.id,
                  mg_log_str(tv, r->address), relay != NULL ? relay : "none", (unsigned long long)delay,
                  r->dsn[0] ? r->dsn : "-", status,
                  mg_log_str(rv, r->last_error != NULL ? r->last_error : ""));
}

static void log_result(const struct queue_msg *m, const struct queue_rcpt *r, const char *status,
                       const char *relay)
{
    if (mg_log_get_level() > MG_LOG_INFO)
        return;
    struct mg_buf b = MG_BUF_INIT;
    format_result(&b, m, r, status, relay);
    mg_log_info("delivery", "%s", b.data);
    mg_buf_free(&b);
}

/* The message is done with: remove it, or log what happened (sync: the
 * log holds final results written since the last sync). */
static void msg_settle(struct queue *q, struct queue_msg *m, struct mg_buf *lines, bool sync)
{
    if (msg_is_done(m) && m->in_flight == 0 && m->notices_pending == 0) {
        /* The final results first: a crash before the files are gone
         * does not bring them back (no second bounce). */
        status_append(m, lines);
        mg_buf_free(lines);
        msg_remove(q, m, NULL);
        return;
    }
    status_append(m, lines);
    mg_buf_free(lines);
    if (sync)
        result_sync_start(q, m);
}

void queue_delivery_done(struct queue *q, struct queue_delivery *d)
{
    struct delivery_meta *meta = d->agent_data;
    struct queue_msg *m = meta->msg;
    m->in_flight--;
    struct mg_buf lines = MG_BUF_INIT;
    struct mg_buf bounce_lines = MG_BUF_INIT;
    bool sync = false;
    size_t *bounced = mg_calloc(d->n_rcpts ? d->n_rcpts : 1, sizeof(size_t));
    size_t n_bounced = 0;
    size_t *success = mg_calloc(d->n_rcpts ? d->n_rcpts : 1, sizeof(size_t));
    size_t n_success = 0;
    /* What to say about each recipient in the daemon's log, once its
     * result is in the status log. */
    const char **said = mg_calloc(d->n_rcpts ? d->n_rcpts : 1, sizeof(*said));
    for (size_t k = 0; k < d->n_rcpts; k++) {
        struct queue_delivery_rcpt *dr = &d->rcpts[k];
        struct queue_rcpt *r = &m->rcpts[meta->idx[k]];
        if (r->state != RCPT_IN_FLIGHT)
            continue; /* deleted meanwhile */
        bool is_same_reason = r->last_error != NULL && dr->text != NULL &&
                              strcmp(r->last_error, dr->text) == 0;
        snprintf(r->dsn, sizeof(r->dsn), "%s", dr->dsn);
        free(r->last_error);
        r->last_error = dr->text;
        dr->text = NULL;
        free(r->last_relay);
        r->last_relay = d->relay != NULL ? mg_strdup(d->relay) : NULL;
        if (dr->result == 2) {
            r->state = RCPT_DELIVERED;
            said[k] = "sent";
            log_line(&lines, meta->idx[k], "delivered", r->dsn, r->last_error);
            sync = true;
            if (r->notify & 2 /* SUCCESS */)
                success[n_success++] = meta->idx[k];
        } else if (dr->result == 5) {
            r->state = RCPT_BOUNCED;
            said[k] = "bounced";
            log_line(&bounce_lines, meta->idx[k], "bounced", r->dsn, r->last_error);
            sync = true;
            bounced[n_bounced++] = meta->idx[k];
        } else if (dr->result == 0) {
            /* Not attempted (the next hop was unreachable before anything
             * about this message was said): soon again, not counted. It
             * is logged when the reason is new, not at every retry (every
             * QUEUE_NOT_ATTEMPTED_RETRY_MS while the MDA is down), and
             * kept in the status log as "waiting" (mgqueue shows it
             * while mgsmtpd is stopped; no attempt is counted at load). */
            r->state = RCPT_PENDING;
            r->next_try_ms = now_ms(q) + QUEUE_NOT_ATTEMPTED_RETRY_MS;
            if (!is_same_reason) {
                said[k] = "deferred";
                log_line(&lines, meta->idx[k], "waiting", r->dsn, r->last_error);
            }
        } else {
            r->state = RCPT_PENDING;
            r->attempts++;
            r->next_try_ms = now_ms(q) + backoff_ms(q, r->attempts);
            said[k] = "deferred";
            log_line(&lines, meta->idx[k], "deferred", r->dsn, r->last_error);
        }
    }
    if (msg_is_done(m) && m->in_flight == 0 && m->notices_pending == 0 && n_bounced == 0 &&
        n_success == 0) {
        /* Every recipient delivered, nobody to tell: no status log. The
         * files go in the thread pool, and the delivery lines are logged
         * once they are gone, so that a message logged as sent is never
         * delivered again after a crash of mgsmtpd (until then it may
         * be: the window of a delivery in flight). */
        struct mg_buf out = MG_BUF_INIT;
        if (mg_log_get_level() <= MG_LOG_INFO) {
            for (size_t k = 0; k < d->n_rcpts; k++) {
                if (said[k] == NULL)
                    continue;
                format_result(&out, m, &m->rcpts[meta->idx[k]], said[k], d->relay);
                mg_buf_append_byte(&out, '\n');
            }
        }
        msg_remove(q, m, &out);
        mg_buf_free(&out);
        mg_buf_free(&lines);
    } else {
        /* Deliveries are in the status log before anything else: a crash
         * from here on does not deliver them again. */
        status_append(m, &lines);
        for (size_t k = 0; k < d->n_rcpts; k++) {
            if (said[k] != NULL)
                log_result(m, &m->rcpts[meta->idx[k]], said[k], d->relay);
        }
        /* The bounce is on disk before the failure is logged as final, so
         * a crash in between bounces twice rather than never. */
        if (n_bounced > 0)
            notify_then_log(q, m, bounced, n_bounced, BOUNCE_FAILED, &bounce_lines, &lines);
        if (n_success > 0)
            bounce_send(q, m, success, n_success, BOUNCE_DELIVERED, NULL);
        bool is_gone = msg_is_done(m) && m->in_flight == 0 && m->notices_pending == 0;
        msg_settle(q, m, &lines, sync);
        if (!is_gone)
            msg_touch(q, m); /* retries, look-ups: planned again */
    }
    mg_buf_free(&bounce_lines);
    free(said);
    free(bounced);
    free(success);
    free(meta->idx);
    free(meta);
    d->agent_data = NULL;
    delivery_free(d);
    queue_kick(q);
}

/* "5 days", "2 hours", "90 seconds": the largest unit that divides ms. */
static void format_duration(uint64_t ms, char *out, size_t size)
{
    static const struct { uint64_t ms; const char *name; } units[] = {
        { 86400000, "day" }, { 3600000, "hour" }, { 60000, "minute" }, { 1000, "second" },
    };
    for (size_t i = 0; i < sizeof(units) / sizeof(units[0]); i++) {
        if (ms >= units[i].ms && ms % units[i].ms == 0) {
            uint64_t n = ms / units[i].ms;
            snprintf(out, size, "%llu %s%s", (unsigned long long)n, units[i].name, n == 1 ? "" : "s");
            return;
        }
    }
    snprintf(out, size, "%llu ms", (unsigned long long)ms);
}

static void expire_msg(struct queue *q, struct queue_msg *m)
{
    char lifetime[64];
    format_duration(q->settings->queue.lifetime_ms, lifetime, sizeof(lifetime));
    struct mg_buf lines = MG_BUF_INIT;
    size_t *idx = mg_calloc(m->n_rcpts ? m->n_rcpts : 1, sizeof(size_t));
    size_t n = 0;
    for (size_t i = 0; i < m->n_rcpts; i++) {
        struct queue_rcpt *r = &m->rcpts[i];
        if (rcpt_is_final(r))
            continue;
        r->state = RCPT_BOUNCED;
        if (r->dsn[0] == '\0' || r->dsn[0] != '5')
            snprintf(r->dsn, sizeof(r->dsn), "4.4.7");
        char *why = mg_asprintf("message expired after %s in the queue; last error: %s", lifetime,
                                r->last_error != NULL ? r->last_error : "none");
        free(r->last_error);
        r->last_error = why;
        log_result(m, r, "bounced", r->last_relay);
        log_line(&lines, i, "bounced", r->dsn, r->last_error);
        idx[n++] = i;
    }
    struct mg_buf out = MG_BUF_INIT;
    if (n > 0)
        notify_then_log(q, m, idx, n, BOUNCE_FAILED, &lines, &out);
    mg_buf_free(&lines);
    free(idx);
    /* Nothing is due any more: out of the agents' FIFOs and the timers
     * (it stays, waiting for its notice, or goes now). */
    list_remove(q, m, QUEUE_LIST_LOCAL);
    list_remove(q, m, QUEUE_LIST_REMOTE);
    timer_remove(q, m);
    msg_settle(q, m, &out, true);
}

static void warn_msg(struct queue *q, struct queue_msg *m)
{
    size_t *idx = mg_calloc(m->n_rcpts ? m->n_rcpts : 1, sizeof(size_t));
    size_t n = 0;
    /* Recipients that have waited for a reason: a failed attempt, or a
     * next hop that could not be reached at all (the MDA is down). */
    for (size_t i = 0; i < m->n_rcpts; i++) {
        const struct queue_rcpt *r = &m->rcpts[i];
        if (r->state == RCPT_PENDING && (r->attempts > 0 || r->last_error != NULL))
            idx[n++] = i;
    }
    m->is_warned = true;
    if (n > 0) {
        bounce_send(q, m, idx, n, BOUNCE_DELAYED, NULL);
        struct mg_buf lines = MG_BUF_INIT;
        mg_buf_printf(&lines, "warned %lld\n", (long long)time(NULL));
        status_append(m, &lines);
        mg_buf_free(&lines);
    }
    free(idx);
}

/* ---- administration ---- */

void queue_list(struct queue *q, struct mg_buf *out)
{
    if (q->msgs == NULL) {
        mg_buf_append_str(out, "Mail queue is empty\n");
        return;
    }
    mg_buf_append_str(out, "-Queue ID-------- --Size-- ----Arrival Time---- -Sender/Recipient-------\n");
    /* Oldest first (IDs sort by creation time), whatever order the
     * messages were loaded or accepted in. */
    struct queue_msg **sorted = mg_calloc(q->n_msgs, sizeof(*sorted));
    size_t count = 0;
    for (struct queue_msg *m = q->msgs; m != NULL && count < q->n_msgs; m = m->next)
        sorted[count++] = m;
    qsort(sorted, count, sizeof(*sorted), msg_cmp_id);
    size_t n = 0;
    uint64_t bytes = 0;
    for (size_t k = 0; k < count; k++) {
        const struct queue_msg *m = sorted[k];
        char when[64];
        struct tm tm;
        localtime_r(&m->env.arrival, &tm);
        strftime(when, sizeof(when), "%a %b %e %H:%M:%S", &tm);
        mg_buf_printf(out, "%s%c %8llu %s  %s\n", m->env.id, m->is_held ? '!' : ' ',
                      (unsigned long long)m->content_len, when,
                      m->env.from[0] != '\0' ? m->env.from : "MAILER-DAEMON");
        for (size_t i = 0; i < m->n_rcpts; i++) {
            const struct queue_rcpt *r = &m->rcpts[i];
            if (rcpt_is_final(r))
                continue;
            if (r->last_error != NULL)
                mg_buf_printf(out, "    (%s)\n", r->last_error);
            mg_buf_printf(out, "                                         %s\n", r->address);
        }
        mg_buf_append_byte(out, '\n');
        n++;
        bytes += m->content_len;
    }
    free(sorted);
    mg_buf_printf(out, "-- %llu Kbytes in %zu Request%s.\n", (unsigned long long)((bytes + 1023) / 1024), n,
                  n == 1 ? "" : "s");
}

void queue_flush(struct queue *q)
{
    for (struct queue_msg *m = q->msgs; m != NULL; m = m->next) {
        for (size_t i = 0; i < m->n_rcpts; i++)
            m->rcpts[i].next_try_ms = 0;
        msg_touch(q, m);
    }
}

int queue_delete(struct queue *q, const char *id)
{
    struct queue_msg *m = queue_find(q, id);
    if (m == NULL)
        return -1;
    mg_log_notice("queue", "%s deleted by the administrator", id);
    for (size_t i = 0; i < m->n_rcpts; i++) {
        if (!rcpt_is_final(&m->rcpts[i]))
            m->rcpts[i].state = RCPT_BOUNCED; /* silently: no bounce */
    }
    m->is_deleted = true;
    /* In the status log at once: a crash before the files are gone does
     * not bring the message back. */
    struct mg_buf lines = MG_BUF_INIT;
    mg_buf_printf(&lines, "deleted %lld\n", (long long)time(NULL));
    status_append(m, &lines);
    mg_buf_free(&lines);
    if (m->in_flight == 0) {
        msg_remove(q, m, NULL);
    } else {
        result_sync_start(q, m);
        msg_touch(q, m);
    }
    return 0;
}

int queue_hold(struct queue *q, const char *id, bool hold)
{
    struct queue_msg *m = queue_find(q, id);
    if (m == NULL)
        return -1;
    m->is_held = hold;
    struct mg_buf lines = MG_BUF_INIT;
    mg_buf_printf(&lines, "%s %lld\n", hold ? "hold" : "release", (long long)time(NULL));
    status_append(m, &lines);
    mg_buf_free(&lines);
    result_sync_start(q, m);
    mg_log_notice("queue", "%s %s by the administrator", id, hold ? "held" : "released");
    msg_touch(q, m);
    return 0;
}
