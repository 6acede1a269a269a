/* Remote delivery end to end, in one process on loopback: a real queue
 * (queue_open on a temporary spool, messages injected with queue_inject,
 * recipients routed 'R'), the remote agent, and an SMTP sink built from
 * lmtp/smtp_server.h on mg_conn that records every transaction (envelope,
 * exact bytes, TLS, AUTH) and every connection. Routes come from the
 * transport map ([127.0.0.1]:port needs no DNS) or from a dnsmasq child
 * (MX failover, null MX, NXDOMAIN); tests that need dnsmasq are skipped
 * without it.
 *
 * Bounces go to sender@sender.test, which the transport map sends to the
 * sink as well, so a bounce is seen arriving (from <>). */
#include "testutil.h"

#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <uv.h>

#include "common/alloc.h"
#include "common/buf.h"
#include "common/conn.h"
#include "common/listener.h"
#include "common/log.h"
#include "common/settings.h"
#include "common/tls.h"
#include "lmtp/smtp_server.h"
#include "mta/delivery/remote_agent.h"
#include "mta/queue/queue.h"

#define SINK_MAX_TX 64
#define SINK_MAX_RCPTS 8

static char *tmpdir;
static char *cert, *key;

/* ---- dnsmasq ---- */

static struct testutil_dnsmasq *dnsmasq;

static const char *const dns_records[] = {
    "--mx-host=fo.test,mx-a.fo.test,10",
    "--mx-host=fo.test,mx-b.fo.test,20",
    "--host-record=mx-a.fo.test,127.0.0.2",
    "--host-record=mx-b.fo.test,127.0.0.1",
    "--mx-host=dead.test,mx-a.fo.test,10",
    "--mx-host=dead.test,mx-c.fo.test,20",
    "--host-record=mx-c.fo.test,127.0.0.3",
    "--mx-host=null.test,.,0",
    "--mx-host=drop.test,mx-b.fo.test,10",
    "--mx-host=drop.test,mx-d.fo.test,20",
    "--host-record=mx-d.fo.test,127.0.0.1",
};

/* ---- the sink ---- */

struct sink_tx {
    char *from;
    char *rcpts[SINK_MAX_RCPTS];
    size_t n_rcpts;
    struct mg_buf content;
    unsigned session;
    bool is_tls;
    char auth_user[64];
};

struct sink {
    struct mg_listener listener;
    struct mg_tls_context *implicit_tls;
    struct mg_tls_context *starttls;
    struct smtp_server_settings set;
    const char *password;          /* AUTH: user alice with this password */
    unsigned data_delay_ms;
    bool is_starttls_broken;       /* drop the connection instead of a handshake */
    unsigned drop_at_rcpt;         /* this session (1, 2, ...) dies at its first RCPT */
    unsigned drop_at_data_end;     /* this one after the content, unanswered */
    unsigned data_ends;            /* content received completely, answered or not */
    unsigned connections, open, max_open;
    unsigned auth_ok, auth_failed;
    struct sink_tx txs[SINK_MAX_TX];
    size_t n_txs;
};

struct session {
    struct sink *sink;
    struct mg_conn *conn;
    struct smtp_server *smtp;
    uv_timer_t timer;
    struct smtp_server_reply *pending;
    struct sink_tx cur;
    unsigned index;
    bool is_starttls;
    bool is_tls;
    char auth_user[64];
};

static void tx_clear(struct sink_tx *tx)
{
    free(tx->from);
    for (size_t i = 0; i < tx->n_rcpts; i++)
        free(tx->rcpts[i]);
    mg_buf_free(&tx->content);
    memset(tx, 0, sizeof(*tx));
}

static void s_write(void *ctx, const void *data, size_t len)
{
    struct session *s = ctx;
    mg_conn_write(s->conn, data, len);
}

static void s_start_tls(void *ctx)
{
    struct session *s = ctx;
    s->is_starttls = true;
    if (s->sink->is_starttls_broken) {
        /* "220 Go ahead" (queued), then no handshake: bytes that are not
         * TLS, and the end. */
        mg_conn_write_str(s->conn, "this is not a TLS server hello\r\n");
        mg_conn_close(s->conn);
        return;
    }
    mg_conn_start_tls_server(s->conn, s->sink->starttls, 5000);
}

static void s_close(void *ctx)
{
    struct session *s = ctx;
    mg_conn_close(s->conn);
}

static const struct smtp_server_io s_io = { s_write, s_start_tls, s_close, NULL };

static void h_auth(struct smtp_server *server, struct smtp_server_reply *reply, const char *authzid,
                   const char *authcid, const char *password, void *ctx)
{
    (void)server;
    (void)authzid;
    struct session *s = ctx;
    bool ok = s->sink->password != NULL && strcmp(authcid, "alice") == 0 &&
              strcmp(password, s->sink->password) == 0;
    if (ok) {
        s->sink->auth_ok++;
        snprintf(s->auth_user, sizeof(s->auth_user), "%s", authcid);
    } else {
        s->sink->auth_failed++;
    }
    smtp_server_auth_reply(reply, ok, NULL);
}

static void h_mail(struct smtp_server *server, struct smtp_server_reply *reply, struct smtp_tx *tx,
                   void *ctx)
{
    (void)server;
    struct session *s = ctx;
    if (strncmp(tx->mail_from, "reject", 6) == 0) {
        smtp_server_reply_send(reply, 550, "5.7.1", "sender refused");
        return;
    }
    tx_clear(&s->cur);
    s->cur.from = mg_strdup(tx->mail_from);
    smtp_server_reply_send(reply, 250, "2.1.0", "Ok");
}

static void h_rcpt(struct smtp_server *server, struct smtp_server_reply *reply, struct smtp_tx *tx,
                   struct smtp_rcpt *rcpt, void *ctx)
{
    (void)server;
    (void)tx;
    struct session *s = ctx;
    if (s->index == s->sink->drop_at_rcpt) {
        mg_conn_abort(s->conn, "dropped at RCPT");
        smtp_server_reply_send(reply, 451, "4.3.0", "gone"); /* never sent */
        return;
    }
    if (strncmp(rcpt->address, "nobody", 6) == 0) {
        smtp_server_reply_send(reply, 550, "5.1.1", "no such user");
    } else if (strncmp(rcpt->address, "busy", 4) == 0) {
        smtp_server_reply_send(reply, 450, "4.2.0", "mailbox busy");
    } else {
        if (s->cur.n_rcpts < SINK_MAX_RCPTS)
            s->cur.rcpts[s->cur.n_rcpts++] = mg_strdup(rcpt->address);
        smtp_server_reply_send(reply, 250, "2.1.5", "Ok");
    }
}

static void h_chunk(struct smtp_server *server, struct smtp_tx *tx, const char *data, size_t len,
                    void *ctx)
{
    (void)server;
    (void)tx;
    struct session *s = ctx;
    mg_buf_append(&s->cur.content, data, len);
}

static void answer_data_end(struct session *s)
{
    struct sink *k = s->sink;
    struct smtp_server_reply *reply = s->pending;
    s->pending = NULL;
    assert_true(k->n_txs < SINK_MAX_TX);
    struct sink_tx *tx = &k->txs[k->n_txs++];
    *tx = s->cur;
    memset(&s->cur, 0, sizeof(s->cur));
    tx->session = s->index;
    tx->is_tls = s->is_tls;
    snprintf(tx->auth_user, sizeof(tx->auth_user), "%s", s->auth_user);
    char text[64];
    snprintf(text, sizeof(text), "Ok: queued as S%zu", k->n_txs);
    smtp_server_reply_send(reply, 250, "2.0.0", text);
}

static void timer_cb(uv_timer_t *timer)
{
    struct session *s = timer->data;
    answer_data_end(s);
    smtp_server_feed(s->smtp, mg_conn_input(s->conn));
}

static void h_data_end(struct smtp_server *server, struct smtp_server_reply *reply, struct smtp_tx *tx,
                       void *ctx)
{
    (void)server;
    (void)tx;
    struct session *s = ctx;
    s->sink->data_ends++;
    if (s->index == s->sink->drop_at_data_end) {
        mg_conn_abort(s->conn, "dropped after the content");
        smtp_server_reply_send(reply, 451, "4.3.0", "gone"); /* never sent */
        return;
    }
    s->pending = reply;
    if (s->sink->data_delay_ms == 0) {
        answer_data_end(s);
        return;
    }
    uv_timer_start(&s->timer, timer_cb, s->sink->data_delay_ms, 0);
}

static void h_tx_free(struct smtp_server *server, struct smtp_tx *tx, void *ctx)
{
    (void)server;
    (void)tx;
    struct session *s = ctx;
    if (s->pending == NULL)
        tx_clear(&s->cur);
}

static const struct smtp_server_hooks s_hooks = {
    .auth = h_auth,
    .mail_from = h_mail,
    .rcpt_to = h_rcpt,
    .data_chunk = h_chunk,
    .data_end = h_data_end,
    .tx_free = h_tx_free,
};

static void s_on_read(struct mg_conn *conn)
{
    struct session *s = mg_conn_data(conn);
    smtp_server_feed(s->smtp, mg_conn_input(conn));
}

static void s_on_tls_ready(struct mg_conn *conn)
{
    struct session *s = mg_conn_data(conn);
    s->is_tls = true;
    if (s->is_starttls)
        smtp_server_tls_ready(s->smtp);
}

static void s_timer_closed(uv_handle_t *handle)
{
    struct session *s = handle->data;
    tx_clear(&s->cur);
    free(s);
}

static void s_on_close(struct mg_conn *conn, const char *reason)
{
    (void)reason;
    struct session *s = mg_conn_data(conn);
    s->sink->open--;
    smtp_server_free(&s->smtp);
    if (s->pending != NULL) {
        smtp_server_reply_send(s->pending, 451, "4.3.0", "gone"); /* inert */
        s->pending = NULL;
    }
    uv_close((uv_handle_t *)&s->timer, s_timer_closed);
}

static const struct mg_conn_callbacks s_cb = {
    .on_read = s_on_read,
    .on_tls_ready = s_on_tls_ready,
    .on_close = s_on_close,
};

static void s_on_connection(uv_stream_t *stream, int status)
{
    struct mg_listener *l = stream->data;
    struct sink *k = l->data;
    assert_int_equal(status, 0);
    struct session *s = calloc(1, sizeof(*s));
    s->sink = k;
    s->index = ++k->connections;
    uv_timer_init(stream->loop, &s->timer);
    s->timer.data = s;
    s->conn = mg_conn_accept(stream, k->implicit_tls, 5000, &s_cb, s);
    assert_non_null(s->conn);
    if (++k->open > k->max_open)
        k->max_open = k->open;
    s->smtp = smtp_server_new(&k->set, &s_io, s, &s_hooks, s);
}

static struct mg_tls_context *server_tls(void)
{
    struct mg_tls_server_options o = { .cert_file = cert, .key_file = key };
    struct mg_tls_context *ctx = NULL;
    char *error = NULL;
    if (mg_tls_context_new_server(&o, &ctx, &error) != 0)
        fail_msg("%s", error);
    return ctx;
}

enum sink_tls { SINK_PLAIN, SINK_STARTTLS, SINK_IMPLICIT };

static void sink_start(struct sink *k, uv_loop_t *loop, enum sink_tls tls)
{
    memset(k, 0, sizeof(*k));
    if (tls == SINK_STARTTLS)
        k->starttls = server_tls();
    if (tls == SINK_IMPLICIT)
        k->implicit_tls = server_tls();
    k->set = (struct smtp_server_settings){
        .protocol = SMTP_PROTOCOL_SMTP,
        .hostname = "sink.test",
        .greeting_text = "ESMTP sink",
        .max_line_length = 4096,
        .max_recipients = 100,
        .max_message_size = 10 * 1024 * 1024,
        .bare_newline = SMTP_BARE_NEWLINE_REJECT,
        .offer_starttls = tls == SINK_STARTTLS,
        .is_tls = tls == SINK_IMPLICIT,
        .offer_auth = tls == SINK_IMPLICIT,
        .offer_dsn = true,
        .offer_smtputf8 = true,
    };
    char *error = NULL;
    if (mg_listener_bind_tcp(&k->listener, loop, "127.0.0.1", 0, &error) != 0)
        fail_msg("%s", error);
    k->listener.data = k;
    assert_int_equal(mg_listener_start(&k->listener, s_on_connection), 0);
}

static void sink_free(struct sink *k)
{
    for (size_t i = 0; i < k->n_txs; i++)
        tx_clear(&k->txs[i]);
    mg_tls_context_unref(&k->implicit_tls);
    mg_tls_context_unref(&k->starttls);
}

/* ---- the fixture: loop, sink, queue, agent ---- */

struct fixture {
    uv_loop_t loop;
    struct sink sink;
    char *dir;
    struct mg_settings *settings;
    struct queue *queue;
    struct remote_agent *agent;
    int committed;
    char *log_path;     /* stderr captured */
};

/* relay and queue: the keys of those sections ("%PORT%" is the sink's). */
static void fixture_start(struct fixture *f, enum sink_tls tls, const char *relay, const char *queue_keys)
{
    memset(f, 0, sizeof(*f));
    uv_loop_init(&f->loop);
    sink_start(&f->sink, &f->loop, tls);
    f->dir = testutil_mkdtemp();
    struct mg_buf conf = MG_BUF_INIT;
    mg_buf_printf(&conf, "hostname = mailgenic.test\n[mta]\nqueue_dir = %s/queue\n[relay]\nconnect_timeout = 2s\n",
                  f->dir);
    char port[16];
    snprintf(port, sizeof(port), "%u", f->sink.listener.port);
    for (const char *p = relay; *p != '\0';) {
        const char *m = strstr(p, "%PORT%");
        if (m == NULL) {
            mg_buf_append_str(&conf, p);
            break;
        }
        mg_buf_append(&conf, p, (size_t)(m - p));
        mg_buf_append_str(&conf, port);
        p = m + 6;
    }
    mg_buf_printf(&conf, "\n[queue]\n%s\n", queue_keys != NULL ? queue_keys : "");
    char *error = NULL;
    if (mg_settings_load_string(conf.data, conf.len, "test.conf", &f->settings, &error) != 0)
        fail_msg("%s\n%s", error, conf.data);
    mg_buf_free(&conf);
    if (queue_open(&f->loop, f->settings, &f->queue, &error) != 0)
        fail_msg("queue: %s", error);
    f->agent = remote_agent_new(&f->loop, f->settings, f->queue, &error);
    if (f->agent == NULL)
        fail_msg("remote agent: %s", error);
    queue_set_agents(f->queue, NULL, remote_agent_queue_agent(f->agent));
}

static bool agent_idle(void *ctx)
{
    struct fixture *f = ctx;
    return remote_agent_busy(f->agent) == 0;
}

static bool sink_closed(void *ctx)
{
    struct fixture *f = ctx;
    return f->sink.open == 0;
}

static void fixture_stop(struct fixture *f)
{
    remote_agent_stop(f->agent);
    if (!testutil_run_until(&f->loop, agent_idle, f, 10))
        fail_msg("the agent did not stop: busy %u", remote_agent_busy(f->agent));
    remote_agent_free(&f->agent);
    assert_null(f->agent);
    queue_close(&f->queue);
    mg_listener_close(&f->sink.listener, NULL);
    if (!testutil_run_until(&f->loop, sink_closed, f, 10))
        fail_msg("sink sessions still open: %u", f->sink.open);
    testutil_close_loop(&f->loop);
    sink_free(&f->sink);
    mg_settings_free(&f->settings);
    testutil_rmtree(f->dir);
    free(f->dir);
}

/* While stderr goes to a file, a failing test would fail silently. */
static int capture_saved_stderr = -1;

static void capture_restore(void)
{
    if (capture_saved_stderr < 0)
        return;
    fflush(stderr);
    dup2(capture_saved_stderr, 2);
    close(capture_saved_stderr);
    capture_saved_stderr = -1;
    mg_log_set_level(MG_LOG_ERROR);
}

static void commit_cb(int status, const char *id, void *ctx)
{
    (void)id;
    struct fixture *f = ctx;
    assert_int_equal(status, 0);
    f->committed++;
}

static bool committed_done(void *ctx)
{
    struct fixture *f = ctx;
    return f->committed > 0;
}

/* Queues a message from `from` to the comma-separated rcpts. */
static void inject(struct fixture *f, const char *from, const char *rcpts, const char *content, size_t len)
{
    struct queue_file_rcpt r[SINK_MAX_RCPTS];
    char *copy = mg_strdup(rcpts);
    size_t n = 0;
    for (char *save = NULL, *tok = strtok_r(copy, ",", &save); tok != NULL && n < SINK_MAX_RCPTS;
         tok = strtok_r(NULL, ",", &save))
        r[n++] = (struct queue_file_rcpt){ QUEUE_ROUTE_REMOTE, tok, NULL, 0 };
    struct queue_envelope env = { 0 };
    env.from = from;
    env.rcpts = r;
    env.n_rcpts = n;
    env.client = "test";
    f->committed = 0;
    queue_inject(f->queue, &env, content, len, commit_cb, f);
    if (!testutil_run_until(&f->loop, committed_done, f, 10)) {
        capture_restore();
        fail_msg("inject did not commit");
    }
    free(copy);
}

struct wait_for {
    struct fixture *f;
    size_t txs;
    size_t queued;
};

static bool delivered_done(void *ctx)
{
    struct wait_for *w = ctx;
    return w->f->sink.n_txs >= w->txs && queue_count(w->f->queue) == w->queued &&
           queue_jobs_running(w->f->queue) == 0;
}

/* Waits until the sink has txs transactions and the queue holds queued
 * messages. */
static void wait_delivered(struct fixture *f, size_t txs, size_t queued)
{
    struct wait_for w = { f, txs, queued };
    if (!testutil_run_until(&f->loop, delivered_done, &w, 20)) {
        struct mg_buf b = MG_BUF_INIT;
        queue_list(f->queue, &b);
        capture_restore();
        fail_msg("sink has %zu transactions (want %zu), queue %zu (want %zu):\n%s", f->sink.n_txs, txs,
                 queue_count(f->queue), queued, b.data);
    }
}

struct wait_list {
    struct fixture *f;
    const char *text;
};

static bool list_has(void *ctx)
{
    struct wait_list *w = ctx;
    struct mg_buf b = MG_BUF_INIT;
    queue_list(w->f->queue, &b);
    bool ok = strstr(b.data, w->text) != NULL;
    mg_buf_free(&b);
    return ok && queue_jobs_running(w->f->queue) == 0;
}

/* Waits until queue_list shows text (a deferral's reason). */
static void wait_list(struct fixture *f, const char *text)
{
    struct wait_list w = { f, text };
    if (!testutil_run_until(&f->loop, list_has, &w, 20)) {
        struct mg_buf b = MG_BUF_INIT;
        queue_list(f->queue, &b);
        capture_restore();
        fail_msg("queue never showed \"%s\":\n%s", text, b.data);
    }
}

static void capture_begin(struct fixture *f)
{
    fflush(stderr);
    f->log_path = mg_asprintf("%s/log.txt", f->dir);
    int fd = open(f->log_path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    assert_true(fd >= 0);
    capture_saved_stderr = dup(2);
    dup2(fd, 2);
    close(fd);
    mg_log_set_level(MG_LOG_INFO);
}

static char *capture_end(struct fixture *f)
{
    fflush(stderr);
    capture_restore();
    char *log = testutil_read_file(f->log_path, NULL);
    free(f->log_path);
    f->log_path = NULL;
    assert_non_null(log);
    return log;
}

static void assert_log(const char *log, const char *text)
{
    if (strstr(log, text) == NULL)
        fail_msg("log lacks \"%s\":\n%s", text, log);
}

static const char dotted[] = "From: sender@sender.test\r\n"
                             "To: user@dest.test\r\n"
                             "Subject: dots\r\n"
                             "\r\n"
                             ".leading dot\r\n"
                             "..two dots\r\n"
                             ".\r\n"
                             "a line\r\n"
                             ". \r\n"
                             "...\r\n"
                             "last line\r\n";

#define TRANSPORT(extra) "transport = dest.test=[127.0.0.1]:%PORT%, sender.test=[127.0.0.1]:%PORT%" extra "\n"

static const struct sink_tx *find_tx(const struct sink *k, const char *from, const char *rcpt)
{
    for (size_t i = 0; i < k->n_txs; i++) {
        const struct sink_tx *tx = &k->txs[i];
        if (strcmp(tx->from, from) != 0)
            continue;
        for (size_t r = 0; r < tx->n_rcpts; r++) {
            if (strcmp(tx->rcpts[r], rcpt) == 0)
                return tx;
        }
    }
    fail_msg("no transaction from <%s> to <%s>", from, rcpt);
    return NULL;
}

/* ---- tests ---- */

static void test_remote_plain_exact_bytes(void **state)
{
    (void)state;
    struct fixture f;
    fixture_start(&f, SINK_PLAIN, TRANSPORT(""), NULL);
    /* A big one too: content goes out in steps (want_drain). */
    struct mg_buf big = MG_BUF_INIT;
    for (int i = 0; big.len < 600 * 1024; i++)
        mg_buf_printf(&big, "%s line %d of a long message .\r\n", i % 5 == 0 ? "." : "", i);
    capture_begin(&f);
    inject(&f, "sender@sender.test", "a@dest.test,B@Dest.Test", dotted, sizeof(dotted) - 1);
    inject(&f, "sender@sender.test", "c@dest.test", big.data, big.len);
    wait_delivered(&f, 2, 0);
    char *log = capture_end(&f);

    const struct sink_tx *tx = find_tx(&f.sink, "sender@sender.test", "a@dest.test");
    assert_int_equal(tx->n_rcpts, 2);
    assert_string_equal(tx->rcpts[1], "B@dest.test"); /* the sink lower-cases domains */
    assert_int_equal(tx->content.len, sizeof(dotted) - 1);
    assert_memory_equal(tx->content.data, dotted, sizeof(dotted) - 1);
    assert_false(tx->is_tls);
    tx = find_tx(&f.sink, "sender@sender.test", "c@dest.test");
    assert_int_equal(tx->content.len, big.len);
    assert_memory_equal(tx->content.data, big.data, big.len);

    /* One line per connection; the queue's line per recipient is complete. */
    char want[200];
    snprintf(want, sizeof(want), "host=127.0.0.1 addr=127.0.0.1 port=%u tls=no", f.sink.listener.port);
    assert_log(log, want);
    snprintf(want, sizeof(want), "relay=127.0.0.1[127.0.0.1]:%u", f.sink.listener.port);
    assert_log(log, want);
    assert_log(log, "to=a@dest.test");
    assert_log(log, "dsn=2.0.0 status=sent reply=\"250 2.0.0 Ok: queued as");
    free(log);
    mg_buf_free(&big);
    fixture_stop(&f);
}

static void test_remote_starttls_opportunistic(void **state)
{
    (void)state;
    struct fixture f;
    fixture_start(&f, SINK_STARTTLS, TRANSPORT(""), NULL);
    capture_begin(&f);
    inject(&f, "sender@sender.test", "user@dest.test", dotted, sizeof(dotted) - 1);
    wait_delivered(&f, 1, 0);
    char *log = capture_end(&f);
    const struct sink_tx *tx = find_tx(&f.sink, "sender@sender.test", "user@dest.test");
    assert_true(tx->is_tls);
    assert_memory_equal(tx->content.data, dotted, sizeof(dotted) - 1);
    /* Encrypted, not verified (self-signed), and said so. */
    assert_log(log, "tls=TLSv1.");
    assert_log(log, "cipher=");
    assert_log(log, "verified=no verify_error=");
    assert_log(log, "status=sent");
    free(log);
    fixture_stop(&f);
}

static void test_remote_tls_verify(void **state)
{
    (void)state;
    /* verify without the sink's CA: refused after the handshake, 4.7.5. */
    struct fixture f;
    fixture_start(&f, SINK_STARTTLS, TRANSPORT("") "tls_verify = verify\n", NULL);
    capture_begin(&f);
    inject(&f, "sender@sender.test", "user@dest.test", dotted, sizeof(dotted) - 1);
    wait_list(&f, "not verified");
    char *log = capture_end(&f);
    assert_int_equal(f.sink.n_txs, 0);
    assert_int_equal(queue_count(f.queue), 1);
    char want[200];
    snprintf(want, sizeof(want), "last: 127.0.0.1[127.0.0.1]:%u: TLS certificate of 127.0.0.1 not verified",
             f.sink.listener.port);
    wait_list(&f, want);
    assert_log(log, "dsn=4.7.5 status=deferred");
    free(log);
    fixture_stop(&f);

    /* verify with the sink's certificate as the trust anchor: delivered. */
    char *conf = mg_asprintf("%stls_verify = verify\ntls_ca_file = %s\n", TRANSPORT(""), cert);
    fixture_start(&f, SINK_STARTTLS, conf, NULL);
    capture_begin(&f);
    inject(&f, "sender@sender.test", "user@dest.test", dotted, sizeof(dotted) - 1);
    wait_delivered(&f, 1, 0);
    log = capture_end(&f);
    assert_true(f.sink.txs[0].is_tls);
    assert_log(log, "verified=yes");
    free(log);
    fixture_stop(&f);

    /* verify against a server without STARTTLS: nothing is sent. */
    fixture_start(&f, SINK_PLAIN, conf, NULL);
    inject(&f, "sender@sender.test", "user@dest.test", dotted, sizeof(dotted) - 1);
    wait_list(&f, "STARTTLS not offered");
    assert_int_equal(f.sink.n_txs, 0);
    assert_int_equal(queue_count(f.queue), 1);
    fixture_stop(&f);
    free(conf);
}

static bool first_delivered(void *ctx)
{
    struct fixture *f = ctx;
    return f->sink.n_txs == 1 && queue_count(f->queue) == 0;
}

static void test_remote_connection_reuse(void **state)
{
    (void)state;
    struct fixture f;
    fixture_start(&f, SINK_PLAIN, TRANSPORT(""), NULL);
    inject(&f, "sender@sender.test", "one@dest.test", dotted, sizeof(dotted) - 1);
    assert_true(testutil_run_until(&f.loop, first_delivered, &f, 10));
    /* The connection is idle now; the next message takes it. */
    inject(&f, "sender@sender.test", "two@dest.test", dotted, sizeof(dotted) - 1);
    wait_delivered(&f, 2, 0);
    assert_int_equal(f.sink.connections, 1);
    assert_int_equal(f.sink.txs[0].session, 1);
    assert_int_equal(f.sink.txs[1].session, 1);
    assert_string_equal(f.sink.txs[1].rcpts[0], "two@dest.test");
    assert_int_equal(f.sink.open, 1);
    /* Stopping QUITs idle connections at once (not after the idle
     * timeout of several seconds). */
    uint64_t start = uv_hrtime();
    remote_agent_stop(f.agent);
    assert_true(testutil_run_until(&f.loop, agent_idle, &f, 10));
    assert_true(testutil_run_until(&f.loop, sink_closed, &f, 10));
    assert_true((uv_hrtime() - start) / 1000000 < 2000);
    /* Nothing new is taken while stopping. */
    inject(&f, "sender@sender.test", "three@dest.test", dotted, sizeof(dotted) - 1);
    uv_run(&f.loop, UV_RUN_NOWAIT);
    assert_int_equal(remote_agent_busy(f.agent), 0);
    assert_int_equal(f.sink.connections, 1);
    fixture_stop(&f);
}

static void test_remote_mx_failover(void **state)
{
    (void)state;
    if (dnsmasq == NULL)
        skip();
    char *conf = mg_asprintf("transport = fo.test=fo.test:%%PORT%%, dead.test=dead.test:%%PORT%%, "
                             "sender.test=[127.0.0.1]:%%PORT%%\nresolver = %s\n",
                             dnsmasq->server);
    struct fixture f;
    fixture_start(&f, SINK_PLAIN, conf, NULL);
    capture_begin(&f);
    /* The better MX (127.0.0.2) refuses; the second one takes it. */
    inject(&f, "sender@sender.test", "user@fo.test", dotted, sizeof(dotted) - 1);
    wait_delivered(&f, 1, 0);
    /* Every MX refuses: deferred, naming the last host and its error. */
    inject(&f, "sender@sender.test", "user@dead.test", dotted, sizeof(dotted) - 1);
    char want[200];
    snprintf(want, sizeof(want), "delivery to dead.test failed on every host; last: mx-c.fo.test[127.0.0.3]:%u:",
             f.sink.listener.port);
    wait_list(&f, want);
    char *log = capture_end(&f);
    assert_int_equal(f.sink.n_txs, 1);
    assert_string_equal(f.sink.txs[0].rcpts[0], "user@fo.test");
    assert_int_equal(queue_count(f.queue), 1);
    assert_log(log, "connection failed");
    assert_log(log, "host=mx-a.fo.test addr=127.0.0.2");
    assert_log(log, "connected session=");
    assert_log(log, "host=mx-b.fo.test addr=127.0.0.1");
    assert_log(log, "dsn=4.4.1 status=deferred");
    snprintf(want, sizeof(want), "relay=mx-b.fo.test[127.0.0.1]:%u", f.sink.listener.port);
    assert_log(log, want);
    free(log);
    fixture_stop(&f);
    free(conf);
}

static void test_remote_relayhost_tls_auth(void **state)
{
    (void)state;
    char *pwfile = mg_asprintf("%s/relay.pw", tmpdir);
    testutil_write_file(pwfile, "s3cret\nignored second line\n", 27);
    char *conf = mg_asprintf("relayhost = [127.0.0.1]:%%PORT%%\nrelayhost_security = tls\n"
                             "relayhost_user = alice\nrelayhost_password_file = %s\n",
                             pwfile);
    struct fixture f;
    fixture_start(&f, SINK_IMPLICIT, conf, NULL);
    f.sink.set.require_auth = true;
    f.sink.password = "s3cret";
    capture_begin(&f);
    /* Any domain goes to the relayhost, the bounce address included. */
    inject(&f, "sender@sender.test", "someone@far.example,other@elsewhere.example", dotted, sizeof(dotted) - 1);
    wait_delivered(&f, 2, 0);
    char *log = capture_end(&f);
    const struct sink_tx *tx = find_tx(&f.sink, "sender@sender.test", "someone@far.example");
    assert_true(tx->is_tls);
    assert_string_equal(tx->auth_user, "alice");
    tx = find_tx(&f.sink, "sender@sender.test", "other@elsewhere.example");
    assert_true(tx->is_tls);
    assert_int_equal(f.sink.auth_failed, 0);
    /* One destination ("relayhost") for both domains: two deliveries of
     * one message, at most one connection each. */
    assert_true(f.sink.connections >= 1 && f.sink.connections <= 2);
    char want[200];
    snprintf(want, sizeof(want), "relay=127.0.0.1[127.0.0.1]:%u", f.sink.listener.port);
    assert_log(log, want);
    assert_log(log, "verified=no");
    free(log);
    fixture_stop(&f);

    /* A wrong password: temporary failure, nothing sent. */
    testutil_write_file(pwfile, "wrong", 5);
    fixture_start(&f, SINK_IMPLICIT, conf, NULL);
    f.sink.set.require_auth = true;
    f.sink.password = "s3cret";
    inject(&f, "sender@sender.test", "someone@far.example", dotted, sizeof(dotted) - 1);
    wait_list(&f, "authentication failed");
    assert_int_equal(f.sink.n_txs, 0);
    assert_true(f.sink.auth_failed >= 1);
    assert_int_equal(queue_count(f.queue), 1);
    fixture_stop(&f);
    free(conf);
    free(pwfile);
}

static void test_remote_null_mx_and_nxdomain(void **state)
{
    (void)state;
    if (dnsmasq == NULL)
        skip();
    char *conf = mg_asprintf("transport = sender.test=[127.0.0.1]:%%PORT%%\nresolver = %s\n", dnsmasq->server);
    struct fixture f;
    fixture_start(&f, SINK_PLAIN, conf, NULL);
    inject(&f, "sender@sender.test", "user@null.test", dotted, sizeof(dotted) - 1);
    inject(&f, "sender@sender.test", "user@nx.test", dotted, sizeof(dotted) - 1);
    /* Two bounces, no connection for the failed mail. */
    wait_delivered(&f, 2, 0);
    assert_int_equal(f.sink.n_txs, 2);
    bool saw_null = false, saw_nx = false;
    for (size_t i = 0; i < f.sink.n_txs; i++) {
        const struct sink_tx *tx = &f.sink.txs[i];
        assert_string_equal(tx->from, "");
        assert_string_equal(tx->rcpts[0], "sender@sender.test");
        char *text = mg_strndup(tx->content.data, tx->content.len);
        if (strstr(text, "Status: 5.1.10") != NULL) {
            assert_non_null(strstr(text, "domain null.test does not accept mail (null MX)"));
            assert_non_null(strstr(text, "Final-Recipient: rfc822; user@null.test"));
            saw_null = true;
        }
        if (strstr(text, "Status: 5.1.2") != NULL) {
            assert_non_null(strstr(text, "domain nx.test not found"));
            saw_nx = true;
        }
        free(text);
    }
    assert_true(saw_null);
    assert_true(saw_nx);
    fixture_stop(&f);
    free(conf);
}

static void test_remote_permanent_failures_bounce(void **state)
{
    (void)state;
    struct fixture f;
    fixture_start(&f, SINK_PLAIN, TRANSPORT(""), NULL);
    /* 5xx to one RCPT: the other is delivered, this one bounced. */
    inject(&f, "sender@sender.test", "ok@dest.test,nobody@dest.test", dotted, sizeof(dotted) - 1);
    wait_delivered(&f, 2, 0);
    const struct sink_tx *tx = find_tx(&f.sink, "sender@sender.test", "ok@dest.test");
    assert_int_equal(tx->n_rcpts, 1);
    tx = find_tx(&f.sink, "", "sender@sender.test");
    char *text = mg_strndup(tx->content.data, tx->content.len);
    assert_non_null(strstr(text, "Final-Recipient: rfc822; nobody@dest.test"));
    assert_non_null(strstr(text, "Status: 5.1.1"));
    assert_non_null(strstr(text, "Diagnostic-Code: smtp; 550 5.1.1 no such user"));
    char want[200];
    snprintf(want, sizeof(want), "Remote-MTA: dns; 127.0.0.1[127.0.0.1]:%u", f.sink.listener.port);
    assert_non_null(strstr(text, want));
    assert_null(strstr(text, "Final-Recipient: rfc822; ok@dest.test"));
    free(text);

    /* 5xx to MAIL FROM: every recipient bounces. */
    inject(&f, "reject@sender.test", "a@dest.test,b@dest.test", dotted, sizeof(dotted) - 1);
    wait_delivered(&f, 3, 0);
    tx = find_tx(&f.sink, "", "reject@sender.test");
    text = mg_strndup(tx->content.data, tx->content.len);
    assert_non_null(strstr(text, "Final-Recipient: rfc822; a@dest.test"));
    assert_non_null(strstr(text, "Final-Recipient: rfc822; b@dest.test"));
    assert_non_null(strstr(text, "550 5.7.1 sender refused"));
    free(text);
    fixture_stop(&f);
}

static void test_remote_temporary_failure_stays(void **state)
{
    (void)state;
    struct fixture f;
    fixture_start(&f, SINK_PLAIN, TRANSPORT(""), NULL);
    capture_begin(&f);
    inject(&f, "sender@sender.test", "busy@dest.test,ok@dest.test", dotted, sizeof(dotted) - 1);
    wait_list(&f, "(450 4.2.0 mailbox busy)");
    char *log = capture_end(&f);
    /* ok went, busy waits for its retry; no bounce. */
    assert_int_equal(f.sink.n_txs, 1);
    assert_int_equal(f.sink.txs[0].n_rcpts, 1);
    assert_string_equal(f.sink.txs[0].rcpts[0], "ok@dest.test");
    assert_int_equal(queue_count(f.queue), 1);
    struct mg_buf b = MG_BUF_INIT;
    queue_list(f.queue, &b);
    assert_non_null(strstr(b.data, "busy@dest.test"));
    assert_null(strstr(b.data, "ok@dest.test"));
    mg_buf_free(&b);
    assert_log(log, "to=busy@dest.test");
    assert_log(log, "dsn=4.2.0 status=deferred");
    free(log);
    fixture_stop(&f);
}

static void test_remote_concurrency_limits(void **state)
{
    (void)state;
    /* Per destination: at most 2 of the sink's sessions at once. */
    struct fixture f;
    fixture_start(&f, SINK_PLAIN, TRANSPORT(""), "destination_concurrency = 2\n");
    f.sink.data_delay_ms = 150;
    for (int i = 0; i < 6; i++) {
        char rcpt[64];
        snprintf(rcpt, sizeof(rcpt), "user%d@dest.test", i);
        inject(&f, "sender@sender.test", rcpt, dotted, sizeof(dotted) - 1);
    }
    wait_delivered(&f, 6, 0);
    assert_int_equal(f.sink.max_open, 2);
    assert_int_equal(f.sink.connections, 2);
    fixture_stop(&f);

    /* In total: one connection for two destinations. */
    fixture_start(&f, SINK_PLAIN,
                  "transport = dest.test=[127.0.0.1]:%PORT%, other.test=[127.0.0.1]:%PORT%, "
                  "sender.test=[127.0.0.1]:%PORT%\n",
                  "remote_concurrency = 1\ndestination_concurrency = 4\n");
    f.sink.data_delay_ms = 50;
    inject(&f, "sender@sender.test", "a@dest.test", dotted, sizeof(dotted) - 1);
    inject(&f, "sender@sender.test", "b@other.test", dotted, sizeof(dotted) - 1);
    inject(&f, "sender@sender.test", "c@dest.test", dotted, sizeof(dotted) - 1);
    inject(&f, "sender@sender.test", "d@other.test", dotted, sizeof(dotted) - 1);
    wait_delivered(&f, 4, 0);
    assert_int_equal(f.sink.max_open, 1);
    fixture_stop(&f);

    /* A destination that cannot get a connection holds up only itself:
     * mail for the destination that has the connection goes on it, on
     * the same connection, while the other waits for its turn (and then
     * fails: nobody listens there). */
    fixture_start(&f, SINK_PLAIN,
                  "transport = dest.test=[127.0.0.1]:%PORT%, other.test=[127.0.0.1]:1, "
                  "sender.test=[127.0.0.1]:%PORT%\n",
                  "remote_concurrency = 1\ndestination_concurrency = 4\n");
    f.sink.data_delay_ms = 100;
    /* all four in the queue before one pass offers them (as after a
     * restart), the refused one between the others */
    queue_set_agents(f.queue, NULL, NULL);
    inject(&f, "sender@sender.test", "a@dest.test", dotted, sizeof(dotted) - 1);
    inject(&f, "sender@sender.test", "b@other.test", dotted, sizeof(dotted) - 1);
    inject(&f, "sender@sender.test", "c@dest.test", dotted, sizeof(dotted) - 1);
    inject(&f, "sender@sender.test", "d@dest.test", dotted, sizeof(dotted) - 1);
    queue_set_agents(f.queue, NULL, remote_agent_queue_agent(f.agent));
    queue_kick(f.queue);
    wait_delivered(&f, 3, 1);
    for (int i = 0; i < 3; i++)
        assert_int_equal(f.sink.txs[i].session, f.sink.txs[0].session);
    assert_int_equal(f.sink.connections, 1);
    fixture_stop(&f);
}

static void test_remote_tls_fallback_and_loop(void **state)
{
    (void)state;
    /* Opportunistic STARTTLS whose handshake dies: the same address again
     * without TLS. */
    struct fixture f;
    fixture_start(&f, SINK_STARTTLS, TRANSPORT(""), NULL);
    f.sink.is_starttls_broken = true;
    capture_begin(&f);
    inject(&f, "sender@sender.test", "user@dest.test", dotted, sizeof(dotted) - 1);
    wait_delivered(&f, 1, 0);
    char *log = capture_end(&f);
    assert_int_equal(f.sink.connections, 2);
    assert_false(f.sink.txs[0].is_tls);
    assert_int_equal(f.sink.txs[0].session, 2);
    assert_log(log, "TLS handshake failed, trying without TLS");
    assert_log(log, "tls=no");
    free(log);
    fixture_stop(&f);

    /* Required TLS never falls back. */
    fixture_start(&f, SINK_STARTTLS, TRANSPORT("") "tls_verify = verify\n", NULL);
    f.sink.is_starttls_broken = true;
    inject(&f, "sender@sender.test", "user@dest.test", dotted, sizeof(dotted) - 1);
    wait_list(&f, "failed on every host");
    assert_int_equal(f.sink.connections, 1);
    assert_int_equal(f.sink.n_txs, 0);
    fixture_stop(&f);

    /* A server that greets with our own name is us: a loop, deferred. */
    fixture_start(&f, SINK_PLAIN, TRANSPORT(""), NULL);
    f.sink.set.hostname = "MailGenic.test";
    inject(&f, "sender@sender.test", "user@dest.test", dotted, sizeof(dotted) - 1);
    wait_list(&f, "failed on every host; last: ");
    wait_list(&f, "the server greets with our own hostname: mail loops back to myself");
    assert_int_equal(f.sink.n_txs, 0);
    assert_int_equal(queue_count(f.queue), 1);
    fixture_stop(&f);
}

static void test_remote_lost_connection(void **state)
{
    (void)state;
    /* Cut after the content, before the reply: maybe delivered, so not
     * sent again now; deferred, and said why. */
    struct fixture f;
    fixture_start(&f, SINK_PLAIN, TRANSPORT(""), NULL);
    f.sink.drop_at_data_end = 1;
    inject(&f, "sender@sender.test", "user@dest.test", dotted, sizeof(dotted) - 1);
    wait_list(&f, "after the end of data (the message may arrive twice)");
    assert_int_equal(f.sink.data_ends, 1);
    assert_int_equal(f.sink.connections, 1);
    assert_int_equal(queue_count(f.queue), 1);
    fixture_stop(&f);

    /* Cut during the envelope: nothing was delivered, so the next host
     * gets the message at once (two MX hosts, both the sink). */
    if (dnsmasq == NULL)
        skip();
    char *conf = mg_asprintf("transport = drop.test=drop.test:%%PORT%%, sender.test=[127.0.0.1]:%%PORT%%\n"
                             "resolver = %s\n",
                             dnsmasq->server);
    fixture_start(&f, SINK_PLAIN, conf, NULL);
    f.sink.drop_at_rcpt = 1;
    capture_begin(&f);
    inject(&f, "sender@sender.test", "user@drop.test", dotted, sizeof(dotted) - 1);
    wait_delivered(&f, 1, 0);
    char *log = capture_end(&f);
    assert_int_equal(f.sink.connections, 2);
    assert_int_equal(f.sink.txs[0].session, 2);
    assert_memory_equal(f.sink.txs[0].content.data, dotted, sizeof(dotted) - 1);
    assert_log(log, "stage=transaction");
    assert_log(log, "host=mx-b.fo.test");
    assert_log(log, "host=mx-d.fo.test");
    free(log);
    fixture_stop(&f);
    free(conf);
}

static bool content_arrived(void *ctx)
{
    struct fixture *f = ctx;
    return f->sink.data_ends > 0;
}

static void test_remote_free_in_flight(void **state)
{
    (void)state;
    /* The daemon's grace period ran out: freeing the agent with a
     * transaction in flight hands the delivery back to the queue (the
     * content was sent: a counted temporary failure) and cuts the
     * connection. LeakSanitizer checks the rest. */
    struct fixture f;
    fixture_start(&f, SINK_PLAIN, TRANSPORT(""), NULL);
    f.sink.data_delay_ms = 5000;
    inject(&f, "sender@sender.test", "slow@dest.test", dotted, sizeof(dotted) - 1);
    assert_true(testutil_run_until(&f.loop, content_arrived, &f, 10));
    assert_true(remote_agent_busy(f.agent) >= 1);
    remote_agent_free(&f.agent);
    f.agent = NULL;
    struct mg_buf b = MG_BUF_INIT;
    queue_list(f.queue, &b);
    assert_non_null(strstr(b.data, "mail system stopped during the transaction"));
    mg_buf_free(&b);
    assert_int_equal(queue_count(f.queue), 1);
    queue_close(&f.queue);
    mg_listener_close(&f.sink.listener, NULL);
    if (!testutil_run_until(&f.loop, sink_closed, &f, 10))
        fail_msg("sink sessions still open: %u", f.sink.open);
    assert_int_equal(f.sink.n_txs, 0);
    testutil_close_loop(&f.loop);
    sink_free(&f.sink);
    mg_settings_free(&f.settings);
    testutil_rmtree(f.dir);
    free(f.dir);
}

static void test_remote_stop_with_waiting(void **state)
{
    (void)state;
    /* One connection, two messages: stopping during the first lets it
     * finish and hands the second back untried (not counted). */
    struct fixture f;
    fixture_start(&f, SINK_PLAIN, TRANSPORT(""), "destination_concurrency = 1\n");
    f.sink.data_delay_ms = 300;
    inject(&f, "sender@sender.test", "first@dest.test", dotted, sizeof(dotted) - 1);
    inject(&f, "sender@sender.test", "second@dest.test", dotted, sizeof(dotted) - 1);
    assert_true(testutil_run_until(&f.loop, content_arrived, &f, 10));
    remote_agent_stop(f.agent);
    assert_true(testutil_run_until(&f.loop, agent_idle, &f, 10));
    assert_int_equal(f.sink.n_txs, 1);
    assert_string_equal(f.sink.txs[0].rcpts[0], "first@dest.test");
    wait_list(&f, "(mail system is stopping)");
    assert_int_equal(queue_count(f.queue), 1);
    struct mg_buf b = MG_BUF_INIT;
    queue_list(f.queue, &b);
    assert_non_null(strstr(b.data, "second@dest.test"));
    assert_null(strstr(b.data, "no reply"));
    mg_buf_free(&b);
    fixture_stop(&f);
}

static void test_remote_config_errors(void **state)
{
    (void)state;
    uv_loop_t loop;
    uv_loop_init(&loop);
    char *missing = mg_asprintf("%s/no-such-file", tmpdir);
    char *empty = mg_asprintf("%s/empty.pw", tmpdir);
    testutil_write_file(empty, "\n", 1);
    struct {
        char *conf;
        const char *error;
    } cases[] = {
        { mg_strdup("transport = a.test=[192.0.2.1, b.test=x\n"),
          "[relay] transport: entry 1 \"a.test=[192.0.2.1\": missing ']'" },
        { mg_strdup("relayhost = [smtp.example]:0\n"), "[relay] relayhost \"[smtp.example]:0\": invalid port" },
        { mg_strdup("relayhost = [smtp.example]\nrelayhost_user = alice\n"),
          "[relay] relayhost_user needs relayhost_password_file" },
        { mg_asprintf("relayhost = [smtp.example]\nrelayhost_user = alice\nrelayhost_password_file = %s\n", missing),
          "cannot open [relay] relayhost_password_file" },
        { mg_asprintf("relayhost = [smtp.example]\nrelayhost_user = alice\nrelayhost_password_file = %s\n", empty),
          "the first line is empty" },
        { mg_strdup("resolver = nonsense\n"), "[relay] resolver: invalid DNS server \"nonsense\"" },
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char *text = mg_asprintf("hostname = mailgenic.test\n[relay]\n%s", cases[i].conf);
        struct mg_settings *set = NULL;
        char *error = NULL;
        if (mg_settings_load_string(text, strlen(text), "t.conf", &set, &error) != 0)
            fail_msg("%s", error);
        struct remote_agent *a = remote_agent_new(&loop, set, NULL, &error);
        if (a != NULL)
            fail_msg("case %zu accepted", i);
        if (strstr(error, cases[i].error) == NULL)
            fail_msg("case %zu: \"%s\" lacks \"%s\"", i, error, cases[i].error);
        free(error);
        mg_settings_free(&set);
        free(text);
        free(cases[i].conf);
    }
    free(missing);
    free(empty);
    testutil_close_loop(&loop);
}

static int setup(void **state)
{
    (void)state;
    mg_log_init("test_remote_agent");
    mg_log_set_level(MG_LOG_ERROR);
    signal(SIGPIPE, SIG_IGN);
    tmpdir = testutil_mkdtemp();
    testutil_make_cert(tmpdir, "sink", "localhost", &cert, &key);
    if (testutil_dnsmasq_start(dns_records, sizeof(dns_records) / sizeof(dns_records[0]), &dnsmasq) != 0) {
        fprintf(stderr, "test_remote_agent: dnsmasq unavailable: DNS tests are skipped\n");
    }
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    testutil_dnsmasq_stop(&dnsmasq);
    testutil_rmtree(tmpdir);
    free(tmpdir);
    free(cert);
    free(key);
    return 0;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_remote_plain_exact_bytes),
        cmocka_unit_test(test_remote_starttls_opportunistic),
        cmocka_unit_test(test_remote_tls_verify),
        cmocka_unit_test(test_remote_connection_reuse),
        cmocka_unit_test(test_remote_mx_failover),
        cmocka_unit_test(test_remote_relayhost_tls_auth),
        cmocka_unit_test(test_remote_null_mx_and_nxdomain),
        cmocka_unit_test(test_remote_permanent_failures_bounce),
        cmocka_unit_test(test_remote_temporary_failure_stays),
        cmocka_unit_test(test_remote_concurrency_limits),
        cmocka_unit_test(test_remote_tls_fallback_and_loop),
        cmocka_unit_test(test_remote_lost_connection),
        cmocka_unit_test(test_remote_free_in_flight),
        cmocka_unit_test(test_remote_stop_with_waiting),
        cmocka_unit_test(test_remote_config_errors),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
