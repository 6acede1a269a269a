#include "mda/lmtp/lmtp_delivery.h"

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
#include "common/ascii.h"
#include "common/auth_client.h"
#include "common/buf.h"
#include "common/conn.h"
#include "common/fd_io.h"
#include "common/listener.h"
#include "common/tls.h"
#include "common/log.h"
#include "common/settings.h"
#include "common/resolve_cache.h"
#include "common/unique_id.h"
#include "lmtp/smtp_server.h"
#include "mda/store/store.h"

#define LMTP_LISTENERS_MAX 16
/* Content beyond this goes to a spool file instead of memory. */
#define LMTP_MEMORY_MAX (1024 * 1024)
/* RFC 5321 4.5.3.2.7: the server waits at least 5 minutes for commands. */
#define LMTP_IDLE_TIMEOUT_MS (10 * 60 * 1000)
/* Recipients resolved in the last seconds are not asked for again
 * (common/resolve_cache.h). */
#define LMTP_RCPT_CACHE_MS 5000
#define LMTP_RCPT_CACHE_MAX 10000

struct lmtp_session;

struct lmtp_delivery {
    uv_loop_t *loop;
    const struct mg_settings *settings;
    struct store *store;
    struct mg_auth_client *auth;
    struct mg_tls_context *tls;
    struct mg_listener listeners[LMTP_LISTENERS_MAX];
    bool is_tcp[LMTP_LISTENERS_MAX];
    size_t n_listeners;
    struct lmtp_session *sessions;
    unsigned n_sessions;
    char *spool_dir;
    struct smtp_server_settings smtp;
    struct mg_resolve_cache *rcpt_cache;
    bool is_stopping;
};

struct lmtp_session {
    struct lmtp_session *next, *prev;
    struct lmtp_delivery *owner;
    struct mg_conn *conn;
    struct smtp_server *smtp;
    int refcount;
    char id[MG_SESSION_ID_LEN + 1];
};

/* One recipient's final mailboxes. */
struct lmtp_rcpt_data {
    struct lmtp_session *session;
    struct smtp_tx *tx;
    struct smtp_rcpt *rcpt;
    struct smtp_server_reply *reply;
    char **targets;
    uint64_t *quotas;
    size_t n_targets;
};

struct lmtp_tx_data {
    struct mg_buf body;
    int spill_fd;
    char *spill_path;
    uint64_t size;
};

/* The deliveries of one DATA, answered per recipient when all of a
 * recipient's mailboxes are written. */
struct lmtp_batch {
    struct lmtp_session *session;
    struct smtp_server_reply *reply;
    size_t n_rcpts;
    unsigned *pending;     /* per recipient: deliveries outstanding */
    int *worst;            /* per recipient: worst store status */
    unsigned *rcpt_index;
    unsigned outstanding;
    struct lmtp_tx_data *content; /* owned by the batch from data_end on */
};

struct lmtp_job {
    struct lmtp_batch *batch;
    size_t rcpt;            /* index into the batch */
    char *address;
};

static void session_ref(struct lmtp_session *s)
{
    s->refcount++;
}

static void session_unref(struct lmtp_session **sp)
{
    struct lmtp_session *s = *sp;
    *sp = NULL;
    if (s == NULL || --s->refcount > 0)
        return;
    struct lmtp_delivery *owner = s->owner;
    if (s->prev != NULL)
        s->prev->next = s->next;
    else if (owner->sessions == s)
        owner->sessions = s->next;
    if (s->next != NULL)
        s->next->prev = s->prev;
    owner->n_sessions--;
    free(s);
}

static void tx_data_free(struct lmtp_tx_data *d)
{
    if (d == NULL)
        return;
    mg_buf_free(&d->body);
    if (d->spill_fd >= 0)
        close(d->spill_fd);
    if (d->spill_path != NULL) {
        unlink(d->spill_path);
        free(d->spill_path);
    }
    free(d);
}

/* ---- hooks ---- */

static void hook_mail_from(struct smtp_server *server, struct smtp_server_reply *reply,
                           struct smtp_tx *tx, void *ctx)
{
    (void)server;
    (void)ctx;
    struct lmtp_tx_data *d = mg_calloc(1, sizeof(*d));
    d->spill_fd = -1;
    tx->data = d;
    smtp_server_reply_send(reply, 250, "2.1.0", "Ok");
}

/* The engine's rcpt_free hook is the one place recipient data goes: it
 * comes after the answer, so a lookup is never pending here (the lookup's
 * own answer is what lets the engine release the recipient). */
static void rcpt_data_free(struct lmtp_rcpt_data *r)
{
    if (r == NULL)
        return;
    for (size_t i = 0; i < r->n_targets; i++)
        free(r->targets[i]);
    free(r->targets);
    free(r->quotas);
    free(r);
}

static void rcpt_answer(struct lmtp_rcpt_data *r, const struct mg_auth_resolve_result *res);

static void rcpt_resolved(const struct mg_auth_resolve_result *res, void *ctx)
{
    struct lmtp_rcpt_data *r = ctx;
    struct lmtp_session *s = r->session; /* referenced while the lookup ran */
    rcpt_answer(r, res);
    session_unref(&s);
}

static void rcpt_answer(struct lmtp_rcpt_data *r, const struct mg_auth_resolve_result *res)
{
    struct smtp_server_reply *reply = r->reply;
    char av[MG_LOG_VALUE_MAX];
    /* After a reply r belongs to the engine (rcpt_free), so everything
     * that reads it comes first. */
    if (r->session->conn == NULL) {
        smtp_server_reply_send(reply, 451, "4.3.0", "Connection closed");
        return;
    }
    switch (res->status) {
    case MG_AUTH_OK:
        break;
    case MG_AUTH_TEMPFAIL:
        mg_log_warning("lmtp", "recipient lookup failed session=%s to=%s reason=%s", r->session->id,
                       mg_log_str(av, r->rcpt->address), res->reason != NULL ? res->reason : "");
        smtp_server_reply_send(reply, 451, "4.3.0", "Temporary lookup failure, try again later");
        return;
    default:
        smtp_server_reply_send(reply, 550, "5.1.1", "User unknown");
        return;
    }
    size_t local = 0, disabled = 0;
    r->targets = mg_calloc(res->count ? res->count : 1, sizeof(char *));
    r->quotas = mg_calloc(res->count ? res->count : 1, sizeof(uint64_t));
    for (size_t i = 0; i < res->count; i++) {
        const struct mg_auth_target *t = &res->targets[i];
        if (!t->is_local) {
            /* Forwarding is the MTA's business: it resolves aliases before
             * it delivers here. */
            mg_log_warning("lmtp", "alias target is remote, not delivered session=%s to=%s target=%s",
                           r->session->id, mg_log_str(av, r->rcpt->address), t->address);
            continue;
        }
        local++;
        if (!t->is_enabled) {
            disabled++;
            continue;
        }
        r->targets[r->n_targets] = mg_strdup(t->address);
        r->quotas[r->n_targets] = t->quota_bytes;
        r->n_targets++;
    }
    if (r->n_targets == 0) {
        if (local > 0 && disabled == local)
            smtp_server_reply_send(reply, 550, "5.2.1", "Mailbox disabled");
        else
            smtp_server_reply_send(reply, 550, "5.1.1", "User unknown");
        return;
    }
    /* Kept only when every target is a mailbox: a remote one is decided
     * (and logged) again next time. */
    if (local == res->count)
        mg_resolve_cache_put(r->session->owner->rcpt_cache, uv_now(r->session->owner->loop),
                             r->rcpt->address, res);
    smtp_server_reply_send(reply, 250, "2.1.5", "Ok");
}

static void hook_rcpt_to(struct smtp_server *server, struct smtp_server_reply *reply,
                         struct smtp_tx *tx, struct smtp_rcpt *rcpt, void *ctx)
{
    (void)server;
    struct lmtp_session *s = ctx;
    struct lmtp_rcpt_data *r = mg_calloc(1, sizeof(*r));
    r->session = s;
    r->tx = tx;
    r->rcpt = rcpt;
    r->reply = reply;
    rcpt->data = r;
    struct mg_auth_resolve_result cached;
    if (mg_resolve_cache_get(s->owner->rcpt_cache, uv_now(s->owner->loop), rcpt->address,
                             &cached)) {
        rcpt_answer(r, &cached);
        return;
    }
    session_ref(s);
    mg_auth_resolve(s->owner->auth, rcpt->address, rcpt_resolved, r);
}

static void hook_data_begin(struct smtp_server *server, struct smtp_server_reply *reply,
                            struct smtp_tx *tx, void *ctx)
{
    (void)server;
    (void)tx;
    (void)ctx;
    smtp_server_reply_send(reply, 354, NULL, "");
}

static void spill(struct lmtp_session *s, struct lmtp_tx_data *d)
{
    char id[MG_UNIQUE_ID_LEN + 1];
    mg_unique_id_new(id);
    d->spill_path = mg_asprintf("%s/%s", s->owner->spool_dir, id);
    d->spill_fd = open(d->spill_path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (d->spill_fd < 0) {
        mg_log_error("lmtp", "cannot create %s: %s", d->spill_path, strerror(errno));
        mg_free(&d->spill_path);
        return;
    }
}

static void hook_data_chunk(struct smtp_server *server, struct smtp_tx *tx, const char *data,
                            size_t len, void *ctx)
{
    (void)server;
    struct lmtp_session *s = ctx;
    struct lmtp_tx_data *d = tx->data;
    d->size += len;
    if (d->spill_fd < 0 && d->body.len + len > LMTP_MEMORY_MAX && d->spill_path == NULL) {
        spill(s, d);
        if (d->spill_fd >= 0) {
            if (mg_fd_write_all(d->spill_fd, d->body.data, d->body.len) != 0) {
                close(d->spill_fd);
                d->spill_fd = -1;
            }
            mg_buf_free(&d->body);
        }
    }
    if (d->spill_fd >= 0) {
        /* Page-cache writes; the store's fsync makes the copy durable. */
        if (mg_fd_write_all(d->spill_fd, data, len) != 0) {
            close(d->spill_fd);
            d->spill_fd = -1;
        }
        return;
    }
    if (d->spill_path == NULL)
        mg_buf_append(&d->body, data, len);
}

static void batch_rcpt_answer(struct lmtp_batch *b, size_t i)
{
    int st = b->worst[i];
    if (st == STORE_OK)
        smtp_server_rcpt_data_reply(b->reply, b->rcpt_index[i], 250, "2.0.0", "Ok: delivered");
    else if (st == STORE_ERR_OVER_QUOTA)
        smtp_server_rcpt_data_reply(b->reply, b->rcpt_index[i], 552, "5.2.2", "Mailbox full");
    else if (st == STORE_ERR_NO_SPACE)
        smtp_server_rcpt_data_reply(b->reply, b->rcpt_index[i], 452, "4.3.1", "Insufficient system storage");
    else
        smtp_server_rcpt_data_reply(b->reply, b->rcpt_index[i], 451, "4.3.0", "Temporary failure, try again later");
}

static void batch_free(struct lmtp_batch *b)
{
    tx_data_free(b->content);
    free(b->pending);
    free(b->worst);
    free(b->rcpt_index);
    session_unref(&b->session);
    free(b);
}

/* Worse results win: a temporary failure must be retried, a quota
 * failure is final, success only when all succeeded. */
static int status_rank(int st)
{
    switch (st) {
    case STORE_OK: return 0;
    case STORE_ERR_OVER_QUOTA: return 1;
    default: return 2;
    }
}

static void delivered(int status, const char *error, uint32_t uid, void *ctx)
{
    struct lmtp_job *job = ctx;
    struct lmtp_batch *b = job->batch;
    char av[MG_LOG_VALUE_MAX];
    if (status == STORE_OK)
        mg_log_info("lmtp", "delivered session=%s to=%s uid=%u size=%llu", b->session->id,
                    mg_log_str(av, job->address), uid,
                    (unsigned long long)(b->content != NULL ? b->content->size : 0));
    else
        mg_log_warning("lmtp", "delivery failed session=%s to=%s status=%d error=%s", b->session->id,
                       mg_log_str(av, job->address), status, error != NULL ? error : "");
    if (status_rank(status) > status_rank(b->worst[job->rcpt]))
        b->worst[job->rcpt] = status;
    if (--b->pending[job->rcpt] == 0)
        batch_rcpt_answer(b, job->rcpt);
    free(job->address);
    free(job);
    if (--b->outstanding == 0)
        batch_free(b);
}

static void hook_data_end(struct smtp_server *server, struct smtp_server_reply *reply,
                          struct smtp_tx *tx, void *ctx)
{
    (void)server;
    struct lmtp_session *s = ctx;
    struct lmtp_tx_data *d = tx->data;
    if (d->spill_path != NULL && d->spill_fd < 0) {
        /* The spool file failed us: every recipient tries again later. */
        smtp_server_reply_send(reply, 451, "4.3.0", "Temporary failure, try again later");
        return;
    }
    struct lmtp_batch *b = mg_calloc(1, sizeof(*b));
    b->session = s;
    session_ref(s);
    b->reply = reply;
    b->n_rcpts = tx->rcpt_count;
    b->pending = mg_calloc(b->n_rcpts ? b->n_rcpts : 1, sizeof(unsigned));
    b->worst = mg_calloc(b->n_rcpts ? b->n_rcpts : 1, sizeof(int));
    b->rcpt_index = mg_calloc(b->n_rcpts ? b->n_rcpts : 1, sizeof(unsigned));
    /* The content outlives the transaction until every job has it. */
    b->content = d;
    tx->data = NULL;
    const char *from = tx->mail_from;
    char head_from[600];
    snprintf(head_from, sizeof(head_from), "Return-Path: <%s>\r\n", from);
    time_t now = time(NULL);
    /* A mailbox named twice (two aliases of one user) gets one copy. */
    char **done = mg_calloc(1, sizeof(char *));
    size_t n_done = 0;
    b->outstanding = 1; /* held while jobs start */
    for (size_t i = 0; i < tx->rcpt_count; i++) {
        struct smtp_rcpt *rcpt = tx->rcpts[i];
        struct lmtp_rcpt_data *r = rcpt->data;
        b->rcpt_index[i] = rcpt->index;
        b->worst[i] = STORE_OK;
        for (size_t t = 0; r != NULL && t < r->n_targets; t++) {
            bool dup = false;
            for (size_t k = 0; k < n_done; k++)
                dup |= strcmp(done[k], r->targets[t]) == 0;
            if (dup)
                continue;
            done = mg_reallocarray(done, n_done + 1, sizeof(char *));
            done[n_done++] = r->targets[t];
            char *head = mg_asprintf("%sDelivered-To: %s\r\n", head_from, r->targets[t]);
            struct store_delivery del = {
                .address = r->targets[t],
                .quota_bytes = r->quotas[t],
                .head = head,
                .head_len = strlen(head),
                .body = d->body.data != NULL ? d->body.data : "",
                .body_len = d->body.len,
                .body_fd = d->spill_fd,
                .body_fd_len = d->size,
                .received = now,
            };
            struct lmtp_job *job = mg_calloc(1, sizeof(*job));
            job->batch = b;
            job->rcpt = i;
            job->address = mg_strdup(r->targets[t]);
            b->pending[i]++;
            b->outstanding++;
            store_deliver(s->owner->store, &del, delivered, job);
            free(head);
        }
    }
    free(done);
    /* Recipients whose every mailbox was a duplicate are delivered. */
    for (size_t i = 0; i < b->n_rcpts; i++) {
        if (b->pending[i] == 0)
            batch_rcpt_answer(b, i);
    }
    if (--b->outstanding == 0)
        batch_free(b);
}

static void hook_rcpt_free(struct smtp_server *server, struct smtp_tx *tx, struct smtp_rcpt *rcpt,
                           void *ctx)
{
    (void)server;
    (void)tx;
    (void)ctx;
    rcpt_data_free(rcpt->data);
}

static void hook_tx_free(struct smtp_server *server, struct smtp_tx *tx, void *ctx)
{
    (void)server;
    (void)ctx;
    tx_data_free(tx->data);
    tx->data = NULL;
}

static const struct smtp_server_hooks lmtp_hooks = {
    .mail_from = hook_mail_from,
    .rcpt_to = hook_rcpt_to,
    .data_begin = hook_data_begin,
    .data_chunk = hook_data_chunk,
    .data_end = hook_data_end,
    .tx_free = hook_tx_free,
    .rcpt_free = hook_rcpt_free,
};

/* ---- transport ---- */

static void io_write(void *io_ctx, const void *data, size_t len)
{
    struct lmtp_session *s = io_ctx;
    if (s->conn != NULL)
        mg_conn_write(s->conn, data, len);
}

static void io_start_tls(void *io_ctx)
{
    (void)io_ctx; /* STARTTLS is not offered on LMTP */
}

static void io_resume(void *io_ctx)
{
    struct lmtp_session *s = io_ctx;
    if (s->conn != NULL && s->smtp != NULL)
        smtp_server_feed(s->smtp, mg_conn_input(s->conn));
}

static void io_close(void *io_ctx)
{
    struct lmtp_session *s = io_ctx;
    if (s->conn != NULL)
        mg_conn_close(s->conn);
}

static const struct smtp_server_io lmtp_io = {
    .write = io_write,
    .start_tls = io_start_tls,
    .close = io_close,
    .resume = io_resume,
};

static void conn_on_read(struct mg_conn *conn)
{
    struct lmtp_session *s = mg_conn_data(conn);
    if (s->smtp != NULL)
        smtp_server_feed(s->smtp, mg_conn_input(conn));
}

static void conn_on_timeout(struct mg_conn *conn)
{
    struct lmtp_session *s = mg_conn_data(conn);
    smtp_server_timeout(s->smtp);
}

static void conn_on_close(struct mg_conn *conn, const char *reason)
{
    struct lmtp_session *s = mg_conn_data(conn);
    char rv[MG_LOG_VALUE_MAX];
    mg_log_debug("lmtp", "disconnect session=%s reason=%s", s->id,
                 mg_log_str(rv, reason != NULL ? reason : "closed"));
    s->conn = NULL;
    smtp_server_free(&s->smtp);
    session_unref(&s);
}

static void session_begin(struct lmtp_session *s)
{
    s->smtp = smtp_server_new(&s->owner->smtp, &lmtp_io, s, &lmtp_hooks, s);
}

static void conn_on_tls_ready(struct mg_conn *conn)
{
    struct lmtp_session *s = mg_conn_data(conn);
    struct mg_tls *tls = mg_conn_tls(conn);
    const char *cn = mg_tls_peer_common_name(tls);
    /* The link context demands a certificate of the cluster CA; a
     * handshake without one would be a bug, and gets no delivery. */
    if (!mg_tls_is_verified(tls) || cn == NULL) {
        mg_log_error("lmtp", "peer not verified session=%s remote=%s", s->id, mg_conn_peer_ip(conn));
        mg_conn_abort(conn, "peer not verified");
        return;
    }
    char rv[MG_LOG_VALUE_MAX];
    mg_log_info("lmtp", "tls session=%s remote=%s peer=%s version=%s", s->id, mg_conn_peer_ip(conn),
                mg_log_str(rv, cn), mg_tls_version(tls));
    session_begin(s);
}

static const struct mg_conn_callbacks lmtp_conn_cb = {
    .on_read = conn_on_read,
    .on_timeout = conn_on_timeout,
    .on_close = conn_on_close,
    .on_tls_ready = conn_on_tls_ready,
};

static void on_connection(uv_stream_t *stream, int status)
{
    struct mg_listener *l = stream->data;
    struct lmtp_delivery *lmtp = l->data;
    if (status < 0)
        return;
    size_t li = (size_t)(l - lmtp->listeners);
    bool tcp = lmtp->is_tcp[li];
    struct mg_conn *conn = mg_conn_accept(stream, tcp ? lmtp->tls : NULL,
                                          lmtp->settings->tls.handshake_timeout_ms, &lmtp_conn_cb, NULL);
    if (conn == NULL)
        return;
    struct lmtp_session *s = mg_calloc(1, sizeof(*s));
    s->owner = lmtp;
    s->conn = conn;
    s->refcount = 1;
    mg_unique_id_session(s->id);
    s->next = lmtp->sessions;
    if (lmtp->sessions != NULL)
        lmtp->sessions->prev = s;
    lmtp->sessions = s;
    lmtp->n_sessions++;
    mg_conn_set_data(conn, s);
    mg_conn_set_idle_timeout(conn, LMTP_IDLE_TIMEOUT_MS);
    mg_log_debug("lmtp", "connect session=%s remote=%s", s->id, mg_conn_peer_ip(conn));
    if (!tcp)
        session_begin(s);
}

int lmtp_delivery_bind(uv_loop_t *loop, const struct mg_settings *settings,
                       struct lmtp_delivery **lmtp_r, char **error_r)
{
    struct lmtp_delivery *lmtp = mg_calloc(1, sizeof(*lmtp));
    lmtp->loop = loop;
    lmtp->settings = settings;
    if (settings->lmtp.socket[0] != '\0') {
        if (mg_listener_bind_unix(&lmtp->listeners[0], loop, settings->lmtp.socket,
                                  settings->lmtp.socket_mode, settings->lmtp.socket_group, error_r) != 0) {
            free(lmtp);
            return -1;
        }
        lmtp->listeners[0].data = lmtp;
        lmtp->n_listeners = 1;
    }
    const struct mg_listen_list *l = &settings->lmtp.listen;
    for (size_t i = 0; i < l->count && lmtp->n_listeners < LMTP_LISTENERS_MAX; i++) {
        size_t k = lmtp->n_listeners;
        if (mg_listener_bind_tcp(&lmtp->listeners[k], loop, l->addrs[i].host, l->addrs[i].port, error_r) != 0) {
            for (size_t j = 0; j < k; j++)
                mg_listener_close(&lmtp->listeners[j], NULL);
            free(lmtp);
            return -1;
        }
        lmtp->listeners[k].data = lmtp;
        lmtp->is_tcp[k] = true;
        lmtp->n_listeners++;
    }
    struct smtp_server_settings *ss = &lmtp->smtp;
    ss->protocol = SMTP_PROTOCOL_LMTP;
    ss->hostname = settings->hostname;
    ss->greeting_text = "LMTP Mailgenic";
    ss->max_line_length = 4096;
    ss->max_recipients = settings->lmtp.max_recipients;
    ss->max_message_size = settings->lmtp.max_message_size;
    ss->bare_newline = SMTP_BARE_NEWLINE_NORMALIZE;
    ss->offer_chunking = true;
    ss->offer_smtputf8 = true;
    ss->offer_dsn = true;
    lmtp->rcpt_cache = mg_resolve_cache_new(LMTP_RCPT_CACHE_MS, LMTP_RCPT_CACHE_MAX);
    *lmtp_r = lmtp;
    return 0;
}

/* The spool holds large messages while they are delivered, and belongs to
 * this process alone: what is in it at start was left by a crash, for
 * deliveries that were never acknowledged (the client sends them again). */
static void spool_clean(const char *dir)
{
    DIR *d = opendir(dir);
    if (d == NULL)
        return;
    unsigned removed = 0;
    struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        if (de->d_name[0] == '.')
            continue;
        if (unlinkat(dirfd(d), de->d_name, 0) == 0)
            removed++;
    }
    closedir(d);
    if (removed > 0)
        mg_log_notice("lmtp", "removed %u stale spool files from %s", removed, dir);
}

void lmtp_delivery_start(struct lmtp_delivery *lmtp, struct store *store,
                         struct mg_auth_client *auth, struct mg_tls_context *tls)
{
    lmtp->store = store;
    lmtp->auth = auth;
    lmtp->tls = tls;
    lmtp->spool_dir = mg_asprintf("%s/.lmtp", lmtp->settings->mda.mail_dir);
    if (mkdir(lmtp->spool_dir, 0700) != 0 && errno != EEXIST)
        mg_log_fatal("lmtp", "cannot create %s: %s", lmtp->spool_dir, strerror(errno));
    spool_clean(lmtp->spool_dir);
    for (size_t i = 0; i < lmtp->n_listeners; i++) {
        int r = mg_listener_start(&lmtp->listeners[i], on_connection);
        if (r != 0)
            mg_log_fatal("lmtp", "cannot listen on %s: %s", lmtp->listeners[i].name, uv_strerror(r));
        mg_log_info("lmtp", "listening on %s%s", lmtp->listeners[i].name, lmtp->is_tcp[i] ? " (TLS)" : "");
    }
}

void lmtp_delivery_set_tls(struct lmtp_delivery *lmtp, struct mg_tls_context *tls)
{
    lmtp->tls = tls;
}

void lmtp_delivery_stop(struct lmtp_delivery *lmtp)
{
    lmtp->is_stopping = true;
    for (size_t i = 0; i < lmtp->n_listeners; i++)
        mg_listener_close(&lmtp->listeners[i], NULL);
    lmtp->n_listeners = 0;
    for (struct lmtp_session *s = lmtp->sessions; s != NULL; s = s->next) {
        if (s->smtp != NULL)
            smtp_server_shutdown(s->smtp);
    }
}

unsigned lmtp_delivery_session_count(const struct lmtp_delivery *lmtp)
{
    return lmtp->n_sessions;
}

void lmtp_delivery_free(struct lmtp_delivery **lmtp)
{
    if (*lmtp == NULL)
        return;
    mg_resolve_cache_free(&(*lmtp)->rcpt_cache);
    free((*lmtp)->spool_dir);
    free(*lmtp);
    *lmtp = NULL;
}
