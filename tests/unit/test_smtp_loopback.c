/* The server and client engines over real connections on one libuv loop:
 * a listener accepting mg_conns wired to smtp_server, an mg_conn client
 * wired to smtp_client. Fifty messages of up to 1 MiB (lines starting
 * with dots included) go over one connection; every message must arrive
 * byte for byte and every recipient get its own reply. Run over a UNIX
 * socket (LMTP), TCP (LMTP), implicit TLS (SMTP + AUTH) and STARTTLS
 * (SMTP + AUTH). The server answers data_end from a timer callback, as a
 * daemon does after an fsync, so the asynchronous path is the one used. */
#include "testutil.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

#include "common/buf.h"
#include "common/conn.h"
#include "common/listener.h"
#include "common/log.h"
#include "common/tls.h"
#include "lmtp/smtp_client.h"
#include "lmtp/smtp_server.h"

#define MESSAGES 50
#define MAX_RCPTS 3

static char *tmpdir;
static char *cert, *key;

/* ---- the messages ---- */

struct message {
    char *content;
    size_t len;
    size_t pos;             /* read_content position */
    const char *addrs[MAX_RCPTS];
    size_t rcpt_count;
    char addr_buf[MAX_RCPTS][64];
};

static struct message messages[MESSAGES];

static void messages_make(void)
{
    unsigned seed = 4242;
    for (size_t i = 0; i < MESSAGES; i++) {
        struct message *m = &messages[i];
        size_t target = i == 0 ? 0 : i % 10 == 1 ? 1024 * 1024 : (i * 104729u) % 300000;
        struct mg_buf b = MG_BUF_INIT;
        while (b.len < target) {
            seed = seed * 1103515245 + 12345;
            unsigned r = (seed >> 16) % 7;
            if (r == 0)
                mg_buf_append_str(&b, ".");
            else if (r == 1)
                mg_buf_append_str(&b, "..");
            else if (r == 2)
                mg_buf_append_str(&b, ".\r\n");
            size_t n = (seed >> 4) % 120;
            for (size_t k = 0; k < n; k++)
                mg_buf_append_byte(&b, (char)('!' + (seed + k * 13) % 90));
            mg_buf_append_str(&b, "\r\n");
        }
        m->len = b.len;
        m->content = b.len > 0 ? mg_buf_steal(&b, NULL) : strdup("");
        mg_buf_free(&b);
        m->rcpt_count = 1 + i % MAX_RCPTS;
        for (size_t r = 0; r < m->rcpt_count; r++) {
            /* Every seventh message has a recipient the server refuses. */
            snprintf(m->addr_buf[r], sizeof(m->addr_buf[r]), "%s%zu.%zu@d.test",
                     (i % 7 == 3 && r == 1) ? "nobody" : "user", i, r);
            m->addrs[r] = m->addr_buf[r];
        }
    }
}

static void messages_free(void)
{
    for (size_t i = 0; i < MESSAGES; i++)
        free(messages[i].content);
}

/* ---- the server: a daemon in miniature ---- */

struct server {
    struct mg_listener listener;
    struct mg_tls_context *tls;      /* implicit TLS */
    struct mg_tls_context *starttls; /* STARTTLS */
    struct smtp_server_settings set;
    struct mg_buf received[MESSAGES];
    size_t received_count;
    int closed;
};

struct session {
    struct server *srv;
    struct mg_conn *conn;
    struct smtp_server *smtp;
    uv_timer_t timer;                /* answers data_end later */
    struct smtp_server_reply *pending;
    struct smtp_tx *pending_tx;
    struct mg_buf content;
};

static void s_write(void *ctx, const void *data, size_t len)
{
    struct session *s = ctx;
    mg_conn_write(s->conn, data, len);
}

static void s_start_tls(void *ctx)
{
    struct session *s = ctx;
    mg_conn_start_tls_server(s->conn, s->srv->starttls, 5000);
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
    smtp_server_auth_reply(reply, strcmp(authcid, "alice") == 0 && strcmp(password, "secret") == 0,
                           NULL);
}

static void h_rcpt(struct smtp_server *server, struct smtp_server_reply *reply, struct smtp_tx *tx,
                   struct smtp_rcpt *rcpt, void *ctx)
{
    if (strncmp(rcpt->address, "nobody", 6) == 0)
        smtp_server_reply_send(reply, 550, "5.1.1", "no such user");
    else
        smtp_server_reply_send(reply, 250, "2.1.5", "Ok");
}

static void h_chunk(struct smtp_server *server, struct smtp_tx *tx, const char *data, size_t len,
                    void *ctx)
{
    struct session *s = ctx;
    mg_buf_append(&s->content, data, len);
}

static void answer_data_end(struct session *s)
{
    struct smtp_server_reply *reply = s->pending;
    struct smtp_tx *tx = s->pending_tx;
    s->pending = NULL;
    struct server *srv = s->srv;
    assert_true(srv->received_count < MESSAGES);
    struct mg_buf *r = &srv->received[srv->received_count++];
    mg_buf_append(r, s->content.data != NULL ? s->content.data : "", s->content.len);
    mg_buf_reset(&s->content);
    if (smtp_server_protocol(s->smtp) == SMTP_PROTOCOL_SMTP) {
        char text[64];
        snprintf(text, sizeof(text), "Ok: queued as Q%zu", srv->received_count);
        smtp_server_reply_send(reply, 250, "2.0.0", text);
        return;
    }
    for (size_t i = tx->rcpt_count; i-- > 0;) {
        char text[128];
        snprintf(text, sizeof(text), "<%s> saved", tx->rcpts[i]->address);
        smtp_server_rcpt_data_reply(reply, (unsigned)i, 250, "2.0.0", text);
    }
}

static void timer_cb(uv_timer_t *timer)
{
    struct session *s = timer->data;
    answer_data_end(s);
    /* After a later answer the daemon feeds what is buffered. */
    smtp_server_feed(s->smtp, mg_conn_input(s->conn));
}

static void h_data_end(struct smtp_server *server, struct smtp_server_reply *reply,
                       struct smtp_tx *tx, void *ctx)
{
    struct session *s = ctx;
    s->pending = reply;
    s->pending_tx = tx;
    uv_timer_start(&s->timer, timer_cb, 0, 0);
}

static const struct smtp_server_hooks s_hooks = {
    .auth = h_auth,
    .rcpt_to = h_rcpt,
    .data_chunk = h_chunk,
    .data_end = h_data_end,
};

static void s_on_read(struct mg_conn *conn)
{
    struct session *s = mg_conn_data(conn);
    smtp_server_feed(s->smtp, mg_conn_input(conn));
}

static void s_on_tls_ready(struct mg_conn *conn)
{
    struct session *s = mg_conn_data(conn);
    smtp_server_tls_ready(s->smtp);
}

static void s_timer_closed(uv_handle_t *handle)
{
    struct session *s = handle->data;
    mg_buf_free(&s->content);
    free(s);
}

static void s_on_close(struct mg_conn *conn, const char *reason)
{
    struct session *s = mg_conn_data(conn);
    s->srv->closed++;
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
    struct server *srv = l->data;
    assert_int_equal(status, 0);
    struct session *s = calloc(1, sizeof(*s));
    s->srv = srv;
    uv_timer_init(stream->loop, &s->timer);
    s->timer.data = s;
    s->conn = mg_conn_accept(stream, srv->tls, 5000, &s_cb, s);
    assert_non_null(s->conn);
    s->smtp = smtp_server_new(&srv->set, &s_io, s, &s_hooks, s);
}

/* ---- the client ---- */

struct client {
    struct mg_conn *conn;
    struct smtp_client *smtp;
    struct mg_tls_context *tls;
    bool is_implicit_tls;
    size_t next;                     /* next message to send */
    struct smtp_client_rcpt rcpts[MAX_RCPTS];
    struct smtp_client_message msg;
    int done;
    int failures;
    char reason[256];
    bool is_closed;
    int drains;
    uv_timer_t drain_timer;
};

static void c_write(void *ctx, const void *data, size_t len)
{
    struct client *c = ctx;
    mg_conn_write(c->conn, data, len);
}

static void c_start_tls(void *ctx)
{
    struct client *c = ctx;
    mg_conn_start_tls_client(c->conn, c->tls, "localhost", 5000);
}

static void c_close(void *ctx)
{
    struct client *c = ctx;
    mg_conn_close(c->conn);
}

static void drain_timer_cb(uv_timer_t *timer)
{
    struct client *c = timer->data;
    if (c->smtp != NULL && mg_conn_output_pending(c->conn) < MG_CONN_LOW_WATERMARK)
        smtp_client_content_ready(c->smtp);
}

/* mg_conn fires on_drain from a write callback only; when uv_try_write
 * took everything there is none, so a timer looks too. Whichever comes
 * first resumes the content; the second call is ignored. */
static void c_want_drain(void *ctx)
{
    struct client *c = ctx;
    c->drains++;
    mg_conn_want_drain(c->conn);
    uv_timer_start(&c->drain_timer, drain_timer_cb, 1, 0);
}

static const struct smtp_client_io c_io = { c_write, c_start_tls, c_close, c_want_drain };

static long read_content(void *source, struct mg_buf *out, size_t max)
{
    struct message *m = source;
    size_t n = m->len - m->pos;
    if (n > max)
        n = max;
    mg_buf_append(out, m->content + m->pos, n);
    m->pos += n;
    return (long)n;
}

static void send_next(struct client *c)
{
    if (c->next == MESSAGES) {
        smtp_client_quit(c->smtp);
        return;
    }
    struct message *m = &messages[c->next++];
    m->pos = 0;
    memset(c->rcpts, 0, sizeof(c->rcpts));
    for (size_t r = 0; r < m->rcpt_count; r++)
        c->rcpts[r].address = m->addrs[r];
    c->msg = (struct smtp_client_message){
        .mail_from = "sender@b.test",
        .size = m->len,
        .body = SMTP_BODY_8BITMIME,
        .rcpts = c->rcpts,
        .rcpt_count = m->rcpt_count,
        .read_content = read_content,
        .source = m,
    };
    smtp_client_send(c->smtp, &c->msg);
}

static void cb_ready(struct smtp_client *client, const struct smtp_reply *failure,
                     const char *reason, void *ctx)
{
    struct client *c = ctx;
    if (reason != NULL) {
        c->failures++;
        snprintf(c->reason, sizeof(c->reason), "%s", reason);
        return;
    }
    send_next(c);
}

static void cb_done(struct smtp_client *client, struct smtp_client_message *msg,
                    const struct smtp_reply *mail_reply, void *ctx)
{
    struct client *c = ctx;
    c->done++;
    assert_int_equal(mail_reply->code, 250);
    for (size_t r = 0; r < msg->rcpt_count; r++) {
        const struct smtp_client_rcpt *rcpt = &msg->rcpts[r];
        if (strncmp(rcpt->address, "nobody", 6) == 0) {
            assert_false(rcpt->is_accepted);
            assert_int_equal(rcpt->result.code, 550);
            continue;
        }
        assert_true(rcpt->is_accepted);
        assert_int_equal(rcpt->result.code, 250);
        /* LMTP: this recipient's own reply; SMTP: the message's. */
        char want[128];
        snprintf(want, sizeof(want), "<%s> saved", rcpt->address);
        if (strstr(rcpt->result.text, "queued as") == NULL)
            assert_string_equal(rcpt->result.text, want);
    }
    send_next(c);
}

static void cb_failed(struct smtp_client *client, const char *reason, void *ctx)
{
    struct client *c = ctx;
    c->failures++;
    snprintf(c->reason, sizeof(c->reason), "%s", reason);
}

static const struct smtp_client_callbacks c_callbacks = { cb_ready, cb_done, cb_failed };

static void c_on_connect(struct mg_conn *conn, int status)
{
    struct client *c = mg_conn_data(conn);
    assert_int_equal(status, 0);
    if (c->is_implicit_tls)
        mg_conn_start_tls_client(conn, c->tls, "localhost", 5000);
}

static void c_on_read(struct mg_conn *conn)
{
    struct client *c = mg_conn_data(conn);
    smtp_client_feed(c->smtp, mg_conn_input(conn));
}

static void c_on_tls_ready(struct mg_conn *conn)
{
    struct client *c = mg_conn_data(conn);
    assert_true(mg_tls_is_verified(mg_conn_tls(conn)));
    smtp_client_tls_ready(c->smtp);
}

static void c_on_drain(struct mg_conn *conn)
{
    struct client *c = mg_conn_data(conn);
    smtp_client_content_ready(c->smtp);
}

static void c_on_close(struct mg_conn *conn, const char *reason)
{
    struct client *c = mg_conn_data(conn);
    smtp_client_connection_lost(c->smtp, reason);
    smtp_client_free(&c->smtp);
    c->is_closed = true;
}

static const struct mg_conn_callbacks c_cb = {
    .on_connect = c_on_connect,
    .on_read = c_on_read,
    .on_tls_ready = c_on_tls_ready,
    .on_drain = c_on_drain,
    .on_close = c_on_close,
};

/* ---- running ---- */

struct until {
    uv_timer_t timer;
    bool *flag;
    int *count;
    int target;
};

static bool until_done(const struct until *u)
{
    return *u->flag && *u->count >= u->target;
}

static void until_cb(uv_timer_t *t)
{
    if (until_done(t->data))
        uv_stop(t->loop);
}

static void run_until(uv_loop_t *loop, bool *flag, int *count, int target, double seconds)
{
    struct until u = { .flag = flag, .count = count, .target = target };
    uv_timer_init(loop, &u.timer);
    u.timer.data = &u;
    uv_timer_start(&u.timer, until_cb, 5, 5);
    uint64_t deadline = uv_now(loop) + (uint64_t)(seconds * 1000);
    while (!until_done(&u) && uv_now(loop) < deadline) {
        uv_run(loop, UV_RUN_DEFAULT);
        uv_update_time(loop);
    }
    uv_close((uv_handle_t *)&u.timer, NULL);
    uv_run(loop, UV_RUN_NOWAIT);
    if (!until_done(&u))
        fail_msg("loopback run did not finish within %.0f s", seconds);
}

enum transport { T_UNIX, T_TCP, T_TLS, T_STARTTLS };

static struct mg_tls_context *server_ctx(void)
{
    struct mg_tls_server_options o = { .cert_file = cert, .key_file = key };
    struct mg_tls_context *ctx = NULL;
    char *error = NULL;
    if (mg_tls_context_new_server(&o, &ctx, &error) != 0)
        fail_msg("%s", error);
    return ctx;
}

static struct mg_tls_context *client_ctx(void)
{
    struct mg_tls_client_options o = { .ca_file = cert, .require_verification = true };
    struct mg_tls_context *ctx = NULL;
    char *error = NULL;
    if (mg_tls_context_new_client(&o, &ctx, &error) != 0)
        fail_msg("%s", error);
    return ctx;
}

static void run_loopback(enum transport transport)
{
    uv_loop_t loop;
    uv_loop_init(&loop);
    bool is_lmtp = transport == T_UNIX || transport == T_TCP;
    struct server srv = { 0 };
    srv.set = (struct smtp_server_settings){
        .protocol = is_lmtp ? SMTP_PROTOCOL_LMTP : SMTP_PROTOCOL_SMTP,
        .hostname = "mx.test",
        .max_recipients = 10,
        .max_message_size = 2 * 1024 * 1024,
        .bare_newline = SMTP_BARE_NEWLINE_REJECT,
        .offer_starttls = transport == T_STARTTLS,
        .is_tls = transport == T_TLS,
        .offer_auth = !is_lmtp,
        .require_auth = !is_lmtp,
        .offer_chunking = true,
        .offer_dsn = true,
        .offer_smtputf8 = true,
    };
    if (transport == T_TLS)
        srv.tls = server_ctx();
    if (transport == T_STARTTLS)
        srv.starttls = server_ctx();
    char *path = NULL;
    char *error = NULL;
    if (transport == T_UNIX) {
        path = malloc(strlen(tmpdir) + 16);
        sprintf(path, "%s/lmtp.sock", tmpdir);
        if (mg_listener_bind_unix(&srv.listener, &loop, path, 0600, NULL, &error) != 0)
            fail_msg("%s", error);
    } else if (mg_listener_bind_tcp(&srv.listener, &loop, "127.0.0.1", 0, &error) != 0) {
        fail_msg("%s", error);
    }
    srv.listener.data = &srv;
    assert_int_equal(mg_listener_start(&srv.listener, s_on_connection), 0);

    struct client c = { .is_implicit_tls = transport == T_TLS };
    if (transport == T_TLS || transport == T_STARTTLS)
        c.tls = client_ctx();
    struct smtp_client_settings cs = {
        .protocol = srv.set.protocol,
        .helo_name = "client.test",
        .use_starttls = transport == T_STARTTLS,
        .require_starttls = transport == T_STARTTLS,
        .is_tls = transport == T_TLS,
        .auth_user = is_lmtp ? NULL : "alice",
        .auth_password = "secret",
    };
    c.smtp = smtp_client_new(&cs, &c_io, &c, &c_callbacks, &c);
    uv_timer_init(&loop, &c.drain_timer);
    c.drain_timer.data = &c;
    if (transport == T_UNIX) {
        c.conn = mg_conn_connect_unix(&loop, path, 5000, &c_cb, &c);
    } else {
        struct sockaddr_in sin;
        uv_ip4_addr("127.0.0.1", srv.listener.port, &sin);
        c.conn = mg_conn_connect_tcp(&loop, (struct sockaddr *)&sin, 5000, &c_cb, &c);
    }
    assert_non_null(c.conn);
    run_until(&loop, &c.is_closed, &srv.closed, 1, 100);

    if (c.failures > 0)
        fail_msg("client failed: %s (done %d, received %zu, drains %d)", c.reason, c.done, srv.received_count, c.drains);
    assert_int_equal(c.done, MESSAGES);
    assert_int_equal(srv.received_count, MESSAGES);
    for (size_t i = 0; i < MESSAGES; i++) {
        if (srv.received[i].len != messages[i].len ||
            (messages[i].len > 0 &&
             memcmp(srv.received[i].data, messages[i].content, messages[i].len) != 0))
            fail_msg("message %zu differs (%zu bytes received, %zu sent)", i, srv.received[i].len,
                     messages[i].len);
        mg_buf_free(&srv.received[i]);
    }
    /* Large messages went out in steps. */
    assert_true(c.drains > 0);

    mg_tls_context_unref(&c.tls);
    mg_tls_context_unref(&srv.tls);
    mg_tls_context_unref(&srv.starttls);
    mg_listener_close(&srv.listener, NULL);
    testutil_close_loop(&loop);
    free(path);
}

static void test_smtp_loopback_lmtp_unix(void **state)
{
    (void)state;
    run_loopback(T_UNIX);
}

static void test_smtp_loopback_lmtp_tcp(void **state)
{
    (void)state;
    run_loopback(T_TCP);
}

static void test_smtp_loopback_smtp_implicit_tls(void **state)
{
    (void)state;
    run_loopback(T_TLS);
}

static void test_smtp_loopback_smtp_starttls(void **state)
{
    (void)state;
    run_loopback(T_STARTTLS);
}

static int setup(void **state)
{
    (void)state;
    mg_log_init("test_smtp_loopback");
    mg_log_set_level(MG_LOG_ERROR);
    tmpdir = testutil_mkdtemp();
    testutil_make_cert(tmpdir, "mx", "localhost", &cert, &key);
    messages_make();
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    messages_free();
    testutil_rmtree(tmpdir);
    free(tmpdir);
    free(cert);
    free(key);
    return 0;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_smtp_loopback_lmtp_unix),
        cmocka_unit_test(test_smtp_loopback_lmtp_tcp),
        cmocka_unit_test(test_smtp_loopback_smtp_implicit_tls),
        cmocka_unit_test(test_smtp_loopback_smtp_starttls),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
