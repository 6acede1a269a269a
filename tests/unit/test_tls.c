/* TLS over libuv and the connection layer, on loopback: implicit TLS and
 * STARTTLS servers, clients with and without verification, large and
 * one-byte transfers, a stalled peer, garbage instead of a ClientHello,
 * old protocol versions, renegotiation, close_notify, certificate reload,
 * UNIX sockets. */
#include "testutil.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <openssl/err.h>
#include <openssl/rand.h>
#include <openssl/ssl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
#include <uv.h>

#include "common/buf.h"
#include "common/conn.h"
#include "common/listener.h"
#include "common/log.h"
#include "common/tls.h"

static char *tmpdir;
static char *cert1, *key1, *cert2, *key2;

/* ---- echo server ---- */

struct server {
    struct mg_listener listener;
    struct mg_tls_context *tls;  /* implicit TLS when set */
    struct mg_tls_context *starttls; /* offered with "STARTTLS" otherwise */
    uint64_t handshake_ms;
    int accepted;
    int closed;
    size_t dropped;
    char reason[300];
};

static void server_on_read(struct mg_conn *conn)
{
    struct server *srv = mg_conn_data(conn);
    struct mg_buf *in = mg_conn_input(conn);
    if (srv->starttls != NULL && mg_conn_tls(conn) == NULL) {
        const char *nl = memchr(in->data, '\n', in->len);
        if (nl == NULL)
            return;
        size_t line = (size_t)(nl - in->data) + 1;
        if (line >= 9 && memcmp(in->data, "STARTTLS\r\n", 10) == 0) {
            mg_buf_consume(in, line);
            mg_conn_write_str(conn, "GO\r\n");
            srv->dropped = mg_conn_start_tls_server(conn, srv->starttls, 5000);
            return;
        }
    }
    mg_conn_write(conn, in->data, in->len);
    mg_buf_reset(in);
}

static void server_on_close(struct mg_conn *conn, const char *reason)
{
    struct server *srv = mg_conn_data(conn);
    srv->closed++;
    snprintf(srv->reason, sizeof(srv->reason), "%s", reason != NULL ? reason : "(none)");
}

static const struct mg_conn_callbacks server_cb = {
    .on_read = server_on_read,
    .on_close = server_on_close,
};

static void server_on_connection(uv_stream_t *stream, int status)
{
    struct mg_listener *l = stream->data;
    struct server *srv = l->data;
    assert_int_equal(status, 0);
    struct mg_conn *c = mg_conn_accept(stream, srv->tls, srv->handshake_ms, &server_cb, srv);
    assert_non_null(c);
    srv->accepted++;
}

static void server_start(struct server *srv, uv_loop_t *loop)
{
    char *error = NULL;
    if (mg_listener_bind_tcp(&srv->listener, loop, "127.0.0.1", 0, &error) != 0)
        fail_msg("%s", error);
    srv->listener.data = srv;
    assert_int_equal(mg_listener_start(&srv->listener, server_on_connection), 0);
}

static struct mg_tls_context *server_ctx(const char *cert, const char *key)
{
    struct mg_tls_server_options o = { .cert_file = cert, .key_file = key };
    struct mg_tls_context *ctx = NULL;
    char *error = NULL;
    if (mg_tls_context_new_server(&o, &ctx, &error) != 0)
        fail_msg("%s", error);
    return ctx;
}

static struct mg_tls_context *client_ctx(const char *ca, bool require)
{
    struct mg_tls_client_options o = { .ca_file = ca, .require_verification = require };
    struct mg_tls_context *ctx = NULL;
    char *error = NULL;
    if (mg_tls_context_new_client(&o, &ctx, &error) != 0)
        fail_msg("%s", error);
    return ctx;
}

/* ---- client ---- */

struct client {
    struct mg_tls_context *tls;
    const char *peer_name;
    bool starttls;        /* send STARTTLS in plaintext first */
    const char *prefix;   /* written right after STARTTLS, before TLS */
    const char *data;
    size_t len;
    size_t chunk;         /* 0: one write */
    struct mg_buf received;
    bool is_closed;
    bool tls_ready;
    bool verified;
    char version[32];
    char verify_error[128];
    char reason[300];
    char peer_cn[64];
};

static void client_send(struct mg_conn *conn, struct client *c)
{
    if (c->chunk == 0) {
        mg_conn_write(conn, c->data, c->len);
        return;
    }
    for (size_t off = 0; off < c->len; off += c->chunk) {
        size_t n = c->len - off < c->chunk ? c->len - off : c->chunk;
        mg_conn_write(conn, c->data + off, n);
    }
}

static void client_on_connect(struct mg_conn *conn, int status)
{
    struct client *c = mg_conn_data(conn);
    if (status != 0)
        return;
    if (c->starttls) {
        mg_conn_printf(conn, "STARTTLS\r\n%s", c->prefix != NULL ? c->prefix : "");
        return;
    }
    if (c->tls != NULL)
        mg_conn_start_tls_client(conn, c->tls, c->peer_name, 5000);
    else
        client_send(conn, c);
}

static void client_on_tls_ready(struct mg_conn *conn)
{
    struct client *c = mg_conn_data(conn);
    struct mg_tls *tls = mg_conn_tls(conn);
    c->tls_ready = true;
    snprintf(c->version, sizeof(c->version), "%s", mg_tls_version(tls));
    c->verified = mg_tls_is_verified(tls);
    snprintf(c->verify_error, sizeof(c->verify_error), "%s", mg_tls_verify_error(tls));
    const char *cn = mg_tls_peer_common_name(tls);
    snprintf(c->peer_cn, sizeof(c->peer_cn), "%s", cn != NULL ? cn : "");
    client_send(conn, c);
}

static void client_on_read(struct mg_conn *conn)
{
    struct client *c = mg_conn_data(conn);
    struct mg_buf *in = mg_conn_input(conn);
    if (c->starttls && mg_conn_tls(conn) == NULL) {
        if (in->len < 4)
            return;
        assert_memory_equal(in->data, "GO\r\n", 4);
        mg_buf_consume(in, 4);
        mg_conn_start_tls_client(conn, c->tls, c->peer_name, 5000);
        return;
    }
    mg_buf_append(&c->received, in->data, in->len);
    mg_buf_reset(in);
    if (c->received.len >= c->len)
        mg_conn_close(conn);
}

static void client_on_close(struct mg_conn *conn, const char *reason)
{
    struct client *c = mg_conn_data(conn);
    c->is_closed = true;
    snprintf(c->reason, sizeof(c->reason), "%s", reason != NULL ? reason : "(none)");
}

static const struct mg_conn_callbacks client_cb = {
    .on_connect = client_on_connect,
    .on_tls_ready = client_on_tls_ready,
    .on_read = client_on_read,
    .on_close = client_on_close,
};

static struct sockaddr_in loopback(uint16_t port)
{
    struct sockaddr_in sin;
    uv_ip4_addr("127.0.0.1", port, &sin);
    return sin;
}

/* Runs the loop until *flag becomes true (or fails after seconds). */
struct until {
    uv_timer_t timer;
    atomic_bool *flag;
    bool *plain_flag;
    int *count;
    int target;
};

static void until_cb(uv_timer_t *t)
{
    struct until *u = t->data;
    bool done = (u->flag != NULL && atomic_load(u->flag)) ||
                (u->plain_flag != NULL && *u->plain_flag) ||
                (u->count != NULL && *u->count >= u->target);
    if (done)
        uv_stop(t->loop);
}

static void run_until(uv_loop_t *loop, atomic_bool *flag, bool *plain_flag, int *count,
                      int target, double seconds)
{
    struct until u = { .flag = flag, .plain_flag = plain_flag, .count = count, .target = target };
    uv_timer_init(loop, &u.timer);
    u.timer.data = &u;
    uv_timer_start(&u.timer, until_cb, 2, 2);
    uint64_t deadline = uv_now(loop) + (uint64_t)(seconds * 1000);
    while (uv_now(loop) < deadline) {
        uv_run(loop, UV_RUN_DEFAULT);
        bool done = (flag != NULL && atomic_load(flag)) || (plain_flag != NULL && *plain_flag) ||
                    (count != NULL && *count >= target);
        if (done)
            break;
        uv_update_time(loop);
    }
    uv_close((uv_handle_t *)&u.timer, NULL);
    uv_run(loop, UV_RUN_NOWAIT);
    bool done = (flag != NULL && atomic_load(flag)) || (plain_flag != NULL && *plain_flag) ||
                (count != NULL && *count >= target);
    if (!done)
        fail_msg("condition not reached within %.1f s", seconds);
}

static char *random_data(size_t len)
{
    char *d = malloc(len);
    RAND_bytes((unsigned char *)d, (int)len);
    return d;
}

static void echo_roundtrip(size_t len, size_t chunk, bool starttls)
{
    uv_loop_t loop;
    uv_loop_init(&loop);
    struct server srv = { .handshake_ms = 5000 };
    if (starttls)
        srv.starttls = server_ctx(cert1, key1);
    else
        srv.tls = server_ctx(cert1, key1);
    server_start(&srv, &loop);

    struct client c = { .tls = client_ctx(cert1, true), .peer_name = "localhost",
                        .starttls = starttls, .prefix = starttls ? "INJECTED\r\n" : NULL,
                        .data = random_data(len), .len = len, .chunk = chunk };
    struct sockaddr_in sin = loopback(srv.listener.port);
    assert_non_null(mg_conn_connect_tcp(&loop, (struct sockaddr *)&sin, 5000, &client_cb, &c));
    run_until(&loop, NULL, &c.is_closed, NULL, 0, 30);
    run_until(&loop, NULL, NULL, &srv.closed, 1, 5);

    assert_true(c.tls_ready);
    assert_true(c.verified);
    assert_string_equal(c.peer_cn, "localhost");
    assert_true(strcmp(c.version, "TLSv1.3") == 0 || strcmp(c.version, "TLSv1.2") == 0);
    assert_int_equal(c.received.len, len);
    assert_memory_equal(c.received.data, c.data, len);
    assert_string_equal(c.reason, "(none)");
    /* The client closed with close_notify; the server saw a clean close. */
    assert_string_equal(srv.reason, "connection closed by peer");
    if (starttls)
        assert_int_equal(srv.dropped, strlen("INJECTED\r\n"));

    free((void *)c.data);
    mg_buf_free(&c.received);
    mg_tls_context_unref(&c.tls);
    mg_tls_context_unref(&srv.tls);
    mg_tls_context_unref(&srv.starttls);
    mg_listener_close(&srv.listener, NULL);
    testutil_close_loop(&loop);
}

static void test_tls_large_transfer(void **state)
{
    (void)state;
    echo_roundtrip(4 * 1024 * 1024, 0, false);
}

static void test_tls_one_byte_writes(void **state)
{
    (void)state;
    echo_roundtrip(3000, 1, false);
}

static void test_tls_starttls_discards_pipelined_input(void **state)
{
    (void)state;
    echo_roundtrip(100000, 1000, true);
}

static void test_tls_unverified_peer(void **state)
{
    (void)state;
    uv_loop_t loop;
    uv_loop_init(&loop);
    struct server srv = { .handshake_ms = 5000, .tls = server_ctx(cert1, key1) };
    server_start(&srv, &loop);
    struct sockaddr_in sin = loopback(srv.listener.port);

    /* Opportunistic: the handshake completes, the result says untrusted. */
    struct client c = { .tls = client_ctx(cert2, false), .peer_name = "localhost",
                        .data = "hello", .len = 5 };
    mg_conn_connect_tcp(&loop, (struct sockaddr *)&sin, 5000, &client_cb, &c);
    run_until(&loop, NULL, &c.is_closed, NULL, 0, 10);
    assert_true(c.tls_ready);
    assert_false(c.verified);
    assert_true(strlen(c.verify_error) > 0);
    assert_int_equal(c.received.len, 5);
    mg_buf_free(&c.received);
    mg_tls_context_unref(&c.tls);

    /* Required: the handshake fails. */
    struct client r = { .tls = client_ctx(cert2, true), .peer_name = "localhost",
                        .data = "hello", .len = 5 };
    mg_conn_connect_tcp(&loop, (struct sockaddr *)&sin, 5000, &client_cb, &r);
    run_until(&loop, NULL, &r.is_closed, NULL, 0, 10);
    assert_false(r.tls_ready);
    assert_non_null(strstr(r.reason, "TLS handshake failed"));
    assert_non_null(strstr(r.reason, "certificate verify failed"));
    mg_tls_context_unref(&r.tls);

    /* Wrong name, trusted CA: fails too when verification is required. */
    struct client n = { .tls = client_ctx(cert1, true), .peer_name = "other.example",
                        .data = "hello", .len = 5 };
    mg_conn_connect_tcp(&loop, (struct sockaddr *)&sin, 5000, &client_cb, &n);
    run_until(&loop, NULL, &n.is_closed, NULL, 0, 10);
    assert_false(n.tls_ready);
    mg_tls_context_unref(&n.tls);

    mg_tls_context_unref(&srv.tls);
    mg_listener_close(&srv.listener, NULL);
    testutil_close_loop(&loop);
}

/* A plain TCP client that sends fixed bytes (or nothing) and reads. */
static void test_tls_stalled_peer_and_garbage(void **state)
{
    (void)state;
    uv_loop_t loop;
    uv_loop_init(&loop);
    struct server srv = { .handshake_ms = 300, .tls = server_ctx(cert1, key1) };
    server_start(&srv, &loop);
    struct sockaddr_in sin = loopback(srv.listener.port);

    /* Stalled: connects, sends nothing. */
    struct client stall = { .data = "", .len = 1 };
    mg_conn_connect_tcp(&loop, (struct sockaddr *)&sin, 5000, &client_cb, &stall);
    uint64_t t0 = uv_now(&loop);
    run_until(&loop, NULL, NULL, &srv.closed, 1, 5);
    assert_string_equal(srv.reason, "TLS handshake timed out");
    assert_true(uv_now(&loop) - t0 >= 250);
    run_until(&loop, NULL, &stall.is_closed, NULL, 0, 5);

    /* Garbage instead of a ClientHello: the server drops the peer. */
    const char *http = "GET / HTTP/1.0\r\nHost: x\r\n\r\n";
    struct client garbage = { .data = http, .len = strlen(http) };
    mg_conn_connect_tcp(&loop, (struct sockaddr *)&sin, 5000, &client_cb, &garbage);
    run_until(&loop, NULL, NULL, &srv.closed, 2, 5);
    assert_non_null(strstr(srv.reason, "TLS handshake failed"));
    run_until(&loop, NULL, &garbage.is_closed, NULL, 0, 5);
    mg_buf_free(&garbage.received);
    mg_buf_free(&stall.received);

    mg_tls_context_unref(&srv.tls);
    mg_listener_close(&srv.listener, NULL);
    testutil_close_loop(&loop);
}

/* Blocking OpenSSL clients in a thread, against the loop's server. */
struct raw_client {
    uint16_t port;
    int max_version;    /* 0: default */
    bool renegotiate;
    atomic_bool done;
    int handshake_ok;
    int renegotiation_ok;
    char version[32];
};

static void *raw_client_thread(void *arg)
{
    struct raw_client *rc = arg;
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sin = loopback(rc->port);
    if (connect(fd, (struct sockaddr *)&sin, sizeof(sin)) != 0) {
        atomic_store(&rc->done, true);
        return NULL;
    }
    SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
    SSL_CTX_set_security_level(ctx, 0);
    SSL_CTX_set_min_proto_version(ctx, TLS1_VERSION);
    if (rc->max_version != 0)
        SSL_CTX_set_max_proto_version(ctx, rc->max_version);
    SSL_CTX_set_cipher_list(ctx, "ALL:@SECLEVEL=0");
    SSL *ssl = SSL_new(ctx);
    SSL_set_fd(ssl, fd);
    rc->handshake_ok = SSL_connect(ssl) == 1;
    if (rc->handshake_ok) {
        snprintf(rc->version, sizeof(rc->version), "%s", SSL_get_version(ssl));
        if (rc->renegotiate) {
            int r = SSL_renegotiate(ssl);
            if (r == 1) {
                r = SSL_do_handshake(ssl);
                /* The server refuses: the exchange must not complete. */
                char buf[16];
                SSL_write(ssl, "x", 1);
                int n = SSL_read(ssl, buf, sizeof(buf));
                rc->renegotiation_ok = r == 1 && n > 0 && SSL_renegotiate_pending(ssl) == 0;
            }
        }
        SSL_shutdown(ssl);
    }
    ERR_clear_error();
    SSL_free(ssl);
    SSL_CTX_free(ctx);
    close(fd);
    atomic_store(&rc->done, true);
    return NULL;
}

static void test_tls_old_versions_and_renegotiation(void **state)
{
    (void)state;
    uv_loop_t loop;
    uv_loop_init(&loop);
    struct server srv = { .handshake_ms = 5000, .tls = server_ctx(cert1, key1) };
    server_start(&srv, &loop);

    static const int old[] = { TLS1_VERSION, TLS1_1_VERSION };
    for (size_t i = 0; i < 2; i++) {
        struct raw_client rc = { .port = srv.listener.port, .max_version = old[i] };
        pthread_t th;
        pthread_create(&th, NULL, raw_client_thread, &rc);
        run_until(&loop, &rc.done, NULL, NULL, 0, 10);
        pthread_join(th, NULL);
        assert_false(rc.handshake_ok);
    }

    struct raw_client ok = { .port = srv.listener.port, .max_version = TLS1_2_VERSION,
                             .renegotiate = true };
    pthread_t th;
    pthread_create(&th, NULL, raw_client_thread, &ok);
    run_until(&loop, &ok.done, NULL, NULL, 0, 10);
    pthread_join(th, NULL);
    assert_true(ok.handshake_ok);
    assert_string_equal(ok.version, "TLSv1.2");
    assert_false(ok.renegotiation_ok);

    mg_tls_context_unref(&srv.tls);
    mg_listener_close(&srv.listener, NULL);
    testutil_close_loop(&loop);
}

static void test_tls_reload_certificate(void **state)
{
    (void)state;
    uv_loop_t loop;
    uv_loop_init(&loop);
    struct server srv = { .handshake_ms = 5000, .tls = server_ctx(cert1, key1) };
    server_start(&srv, &loop);
    struct sockaddr_in sin = loopback(srv.listener.port);

    struct client a = { .tls = client_ctx(cert1, true), .peer_name = "localhost",
                        .data = "first", .len = 5 };
    mg_conn_connect_tcp(&loop, (struct sockaddr *)&sin, 5000, &client_cb, &a);
    run_until(&loop, NULL, &a.is_closed, NULL, 0, 10);
    assert_string_equal(a.peer_cn, "localhost");

    /* Reload: new connections get the new certificate. */
    struct mg_tls_context *next = server_ctx(cert2, key2);
    mg_tls_context_unref(&srv.tls);
    srv.tls = next;
    struct client b = { .tls = client_ctx(cert2, true), .peer_name = "mail.example",
                        .data = "second", .len = 6 };
    mg_conn_connect_tcp(&loop, (struct sockaddr *)&sin, 5000, &client_cb, &b);
    run_until(&loop, NULL, &b.is_closed, NULL, 0, 10);
    assert_true(b.verified);
    assert_string_equal(b.peer_cn, "mail.example");
    assert_int_equal(b.received.len, 6);

    /* A broken pair is refused with a clear reason and changes nothing. */
    struct mg_tls_server_options bad = { .cert_file = cert1, .key_file = key2 };
    struct mg_tls_context *ctx = NULL;
    char *error = NULL;
    assert_int_equal(mg_tls_context_new_server(&bad, &ctx, &error), -1);
    assert_non_null(strstr(error, "does not match"));
    free(error);
    struct mg_tls_server_options missing = { .cert_file = "/nonexistent.pem", .key_file = key1 };
    assert_int_equal(mg_tls_context_new_server(&missing, &ctx, &error), -1);
    assert_non_null(strstr(error, "cannot load certificate /nonexistent.pem"));
    free(error);

    mg_buf_free(&a.received);
    mg_buf_free(&b.received);
    mg_tls_context_unref(&a.tls);
    mg_tls_context_unref(&b.tls);
    mg_tls_context_unref(&srv.tls);
    mg_listener_close(&srv.listener, NULL);
    testutil_close_loop(&loop);
}

static void test_conn_unix_socket(void **state)
{
    (void)state;
    uv_loop_t loop;
    uv_loop_init(&loop);
    struct server srv = { 0 };
    char *path = NULL;
    char *error = NULL;
    path = malloc(strlen(tmpdir) + 16);
    sprintf(path, "%s/echo.sock", tmpdir);
    if (mg_listener_bind_unix(&srv.listener, &loop, path, 0600, NULL, &error) != 0)
        fail_msg("%s", error);
    srv.listener.data = &srv;
    assert_int_equal(mg_listener_start(&srv.listener, server_on_connection), 0);

    /* A second bind on a live socket is refused. */
    struct mg_listener second;
    assert_true(mg_listener_bind_unix(&second, &loop, path, 0600, NULL, &error) != 0);
    assert_non_null(strstr(error, "in use"));
    free(error);

    struct client c = { .data = "over a unix socket", .len = 18 };
    mg_conn_connect_unix(&loop, path, 5000, &client_cb, &c);
    run_until(&loop, NULL, &c.is_closed, NULL, 0, 10);
    assert_int_equal(c.received.len, 18);
    assert_memory_equal(c.received.data, "over a unix socket", 18);
    mg_buf_free(&c.received);

    mg_listener_close(&srv.listener, NULL);
    testutil_close_loop(&loop);
    free(path);
}

static void test_conn_connect_refused(void **state)
{
    (void)state;
    uv_loop_t loop;
    uv_loop_init(&loop);
    /* Bind and close a port to get one nobody listens on. */
    struct mg_listener l;
    char *error = NULL;
    assert_int_equal(mg_listener_bind_tcp(&l, &loop, "127.0.0.1", 0, &error), 0);
    uint16_t port = l.port;
    mg_listener_close(&l, NULL);
    uv_run(&loop, UV_RUN_NOWAIT);
    struct client c = { .data = "x", .len = 1 };
    struct sockaddr_in sin = loopback(port);
    mg_conn_connect_tcp(&loop, (struct sockaddr *)&sin, 5000, &client_cb, &c);
    run_until(&loop, NULL, &c.is_closed, NULL, 0, 5);
    assert_non_null(strstr(c.reason, "connect failed"));
    testutil_close_loop(&loop);
}

static int setup(void **state)
{
    (void)state;
    mg_log_init("test_tls");
    mg_log_set_level(MG_LOG_ERROR);
    tmpdir = testutil_mkdtemp();
    testutil_make_cert(tmpdir, "one", "localhost", &cert1, &key1);
    testutil_make_cert(tmpdir, "two", "mail.example", &cert2, &key2);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    testutil_rmtree(tmpdir);
    free(tmpdir);
    free(cert1);
    free(key1);
    free(cert2);
    free(key2);
    return 0;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_tls_large_transfer),
        cmocka_unit_test(test_tls_one_byte_writes),
        cmocka_unit_test(test_tls_starttls_discards_pipelined_input),
        cmocka_unit_test(test_tls_unverified_peer),
        cmocka_unit_test(test_tls_stalled_peer_and_garbage),
        cmocka_unit_test(test_tls_old_versions_and_renegotiation),
        cmocka_unit_test(test_tls_reload_certificate),
        cmocka_unit_test(test_conn_unix_socket),
        cmocka_unit_test(test_conn_connect_refused),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
