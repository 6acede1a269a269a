/* TLS over libuv and the connection layer, on loopback: implicit TLS and
 * STARTTLS servers, clients with and without verification, large and
 * one-byte transfers, a stalled peer, garbage instead of a ClientHello,
 * close_notify, certificate reload, UNIX sockets; and the server policy
 * (docs/tls.md) as a scanner sees it: protocol versions, the exact cipher
 * suites and groups, server order, no compression, no renegotiation,
 * resumption by ID and ticket across ticket key rotation, ALPN, unknown
 * SNI, client certificates, weak keys. */
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
#include <sys/time.h>
#include <unistd.h>
#include <uv.h>

#include "common/alloc.h"
#include "common/buf.h"
#include "common/conn.h"
#include "common/listener.h"
#include "common/log.h"
#include "common/tls.h"

static char *tmpdir;
static char *cert1, *key1, *cert2, *key2;
static char *rsa_cert, *rsa_key; /* RSA-2048 for "localhost" */

/* ---- echo server ---- */

struct server {
    struct mg_listener listener;
    struct mg_tls_context *tls;  /* implicit TLS when set */
    struct mg_tls_context *starttls; /* offered with "STARTTLS" otherwise */
    uint64_t handshake_ms;
    int accepted;
    int closed;
    int tls_ready;
    int resumed;
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

static void server_on_tls_ready(struct mg_conn *conn)
{
    struct server *srv = mg_conn_data(conn);
    srv->tls_ready++;
    if (mg_tls_is_resumed(mg_conn_tls(conn)))
        srv->resumed++;
}

static const struct mg_conn_callbacks server_cb = {
    .on_read = server_on_read,
    .on_tls_ready = server_on_tls_ready,
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

static struct mg_tls_context *server_ctx_opts(const struct mg_tls_server_options *o)
{
    struct mg_tls_context *ctx = NULL;
    char *error = NULL;
    if (mg_tls_context_new_server(o, &ctx, &error) != 0)
        fail_msg("%s", error);
    return ctx;
}

static struct mg_tls_context *server_ctx(const char *cert, const char *key)
{
    struct mg_tls_server_options o = { .cert_file = cert, .key_file = key };
    return server_ctx_opts(&o);
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

/* ---- scanner-like clients: blocking OpenSSL (or raw bytes) in a thread,
 * against the loop's server ---- */

struct probe {
    uint16_t port;
    int min_version;          /* 0: TLS 1.0 */
    int max_version;          /* 0: the newest */
    const char *ciphers;      /* TLS 1.2 list; NULL: every cipher OpenSSL has */
    const char *ciphersuites; /* TLS 1.3; NULL: OpenSSL's */
    const char *groups;       /* NULL: OpenSSL's */
    const char *alpn;         /* "h2,http/1.1"; NULL: no ALPN extension */
    const char *sni;
    const char *cert, *key;   /* client certificate */
    SSL_SESSION *session;     /* resume this one */
    bool no_ticket;
    bool renegotiate;
    /* results */
    atomic_bool done;
    bool handshake_ok;
    bool exchanged;           /* "x" went to the echo server and came back */
    bool renegotiation_ok;
    bool reused;
    char version[32];
    char cipher[64];
    char group[32];
    char alpn_selected[32];
    char error[256];
    SSL_SESSION *session_out; /* to free */
};

static int probe_connect(uint16_t port)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sin = loopback(port);
    if (fd < 0 || connect(fd, (struct sockaddr *)&sin, sizeof(sin)) != 0)
        fail_msg("connect to port %u failed", port);
    struct timeval tv = { .tv_sec = 10 };
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    return fd;
}

static void probe_error(struct probe *p)
{
    unsigned long e = ERR_peek_error();
    if (e != 0 && p->error[0] == '\0')
        ERR_error_string_n(e, p->error, sizeof(p->error));
    ERR_clear_error();
}

/* ALPN "a,b" in wire format; returns the length. */
static unsigned int alpn_wire(const char *list, unsigned char *out, size_t size)
{
    unsigned int n = 0;
    const char *p = list;
    while (*p != '\0') {
        size_t len = strcspn(p, ",");
        assert_true(len > 0 && len < 256 && n + len + 1 <= size);
        out[n++] = (unsigned char)len;
        memcpy(out + n, p, len);
        n += (unsigned int)len;
        p += len;
        if (*p == ',')
            p++;
    }
    return n;
}

static void *probe_thread(void *arg)
{
    struct probe *p = arg;
    int fd = probe_connect(p->port);
    SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
    SSL_CTX_set_security_level(ctx, 0);
    SSL_CTX_set_min_proto_version(ctx, p->min_version != 0 ? p->min_version : TLS1_VERSION);
    if (p->max_version != 0)
        SSL_CTX_set_max_proto_version(ctx, p->max_version);
    assert_int_equal(SSL_CTX_set_cipher_list(ctx, p->ciphers != NULL ? p->ciphers
                                                  : "ALL:COMPLEMENTOFALL:@SECLEVEL=0"), 1);
    if (p->ciphersuites != NULL)
        assert_int_equal(SSL_CTX_set_ciphersuites(ctx, p->ciphersuites), 1);
    if (p->groups != NULL)
        assert_int_equal(SSL_CTX_set1_groups_list(ctx, p->groups), 1);
    if (p->alpn != NULL) {
        unsigned char wire[256];
        unsigned int len = alpn_wire(p->alpn, wire, sizeof(wire));
        assert_int_equal(SSL_CTX_set_alpn_protos(ctx, wire, len), 0);
    }
    if (p->cert != NULL) {
        assert_int_equal(SSL_CTX_use_certificate_chain_file(ctx, p->cert), 1);
        assert_int_equal(SSL_CTX_use_PrivateKey_file(ctx, p->key, SSL_FILETYPE_PEM), 1);
    }
    if (p->no_ticket)
        SSL_CTX_set_options(ctx, SSL_OP_NO_TICKET);
    SSL *ssl = SSL_new(ctx);
    SSL_set_fd(ssl, fd);
    if (p->sni != NULL)
        SSL_set_tlsext_host_name(ssl, p->sni);
    if (p->session != NULL)
        SSL_set_session(ssl, p->session);
    p->handshake_ok = SSL_connect(ssl) == 1;
    if (!p->handshake_ok) {
        probe_error(p);
        goto out;
    }
    snprintf(p->version, sizeof(p->version), "%s", SSL_get_version(ssl));
    snprintf(p->cipher, sizeof(p->cipher), "%s", SSL_get_cipher_name(ssl));
    int group = SSL_get_negotiated_group(ssl);
    snprintf(p->group, sizeof(p->group), "%s", group > 0 ? OBJ_nid2sn(group) : "");
    const unsigned char *sel = NULL;
    unsigned int sel_len = 0;
    SSL_get0_alpn_selected(ssl, &sel, &sel_len);
    snprintf(p->alpn_selected, sizeof(p->alpn_selected), "%.*s", (int)sel_len, (const char *)sel);
    p->reused = SSL_session_reused(ssl) == 1;
    /* One round trip: a TLS 1.3 server's verdict on our certificate and
     * its session tickets come after the handshake. */
    char buf[16];
    p->exchanged = SSL_write(ssl, "x", 1) == 1 && SSL_read(ssl, buf, sizeof(buf)) == 1 &&
                   buf[0] == 'x';
    if (!p->exchanged)
        probe_error(p);
    p->session_out = SSL_get1_session(ssl);
    if (p->exchanged && p->renegotiate) {
        int r = SSL_renegotiate(ssl);
        if (r == 1) {
            r = SSL_do_handshake(ssl);
            /* The server refuses: the exchange must not complete. */
            SSL_write(ssl, "x", 1);
            int n = SSL_read(ssl, buf, sizeof(buf));
            p->renegotiation_ok = r == 1 && n > 0 && SSL_renegotiate_pending(ssl) == 0;
        }
    }
    SSL_shutdown(ssl);
out:
    ERR_clear_error();
    SSL_free(ssl);
    SSL_CTX_free(ctx);
    close(fd);
    atomic_store(&p->done, true);
    return NULL;
}

static void probe_run(uv_loop_t *loop, struct probe *p)
{
    pthread_t th;
    pthread_create(&th, NULL, probe_thread, p);
    run_until(loop, &p->done, NULL, NULL, 0, 20);
    pthread_join(th, NULL);
}

/* One probe and nothing kept: whether the handshake and a round trip
 * worked. */
static bool probe_accepts(uv_loop_t *loop, struct probe p)
{
    probe_run(loop, &p);
    if (p.session_out != NULL)
        SSL_SESSION_free(p.session_out);
    return p.handshake_ok && p.exchanged;
}

/* An echo server over implicit TLS with these options. */
static void policy_server_start(struct server *srv, uv_loop_t *loop,
                                const struct mg_tls_server_options *o)
{
    memset(srv, 0, sizeof(*srv));
    srv->handshake_ms = 5000;
    srv->tls = server_ctx_opts(o);
    server_start(srv, loop);
}

static void policy_server_stop(struct server *srv, uv_loop_t *loop)
{
    mg_tls_context_unref(&srv->tls);
    mg_listener_close(&srv->listener, NULL);
    testutil_close_loop(loop);
}

static void test_tls_versions(void **state)
{
    (void)state;
    uv_loop_t loop;
    uv_loop_init(&loop);
    struct server srv;
    struct mg_tls_server_options o = { .cert_file = cert1, .key_file = key1 };
    policy_server_start(&srv, &loop, &o);
    static const struct {
        int version;
        bool is_offered;
    } cases[] = {
        { TLS1_VERSION, false },
        { TLS1_1_VERSION, false },
        { TLS1_2_VERSION, true },
        { TLS1_3_VERSION, true },
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct probe p = { .port = srv.listener.port, .min_version = cases[i].version,
                           .max_version = cases[i].version };
        assert_int_equal(probe_accepts(&loop, p), cases[i].is_offered);
    }
    policy_server_stop(&srv, &loop);

    /* min_version = TLSv1.3 leaves TLS 1.2 out. */
    uv_loop_init(&loop);
    o.min_version = "TLSv1.3";
    policy_server_start(&srv, &loop, &o);
    struct probe p12 = { .port = srv.listener.port, .max_version = TLS1_2_VERSION };
    assert_false(probe_accepts(&loop, p12));
    struct probe p13 = { .port = srv.listener.port, .min_version = TLS1_3_VERSION };
    assert_true(probe_accepts(&loop, p13));
    policy_server_stop(&srv, &loop);
}

static int name_cmp(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Tries every TLS 1.2 cipher OpenSSL knows, one per handshake, as
 * sslscan does, and checks the accepted ones are exactly the policy's. */
static void test_tls_cipher_suites_exact(void **state)
{
    (void)state;
    uv_loop_t loop;
    uv_loop_init(&loop);
    struct server srv;
    struct mg_tls_server_options o = { .cert_file = cert1, .key_file = key1,
                                       .alt_cert_file = rsa_cert, .alt_key_file = rsa_key };
    policy_server_start(&srv, &loop, &o);

    SSL_CTX *all = SSL_CTX_new(TLS_client_method());
    assert_int_equal(SSL_CTX_set_cipher_list(all, "ALL:COMPLEMENTOFALL:@SECLEVEL=0"), 1);
    STACK_OF(SSL_CIPHER) *list = SSL_CTX_get_ciphers(all);
    const char *accepted[64];
    size_t n_accepted = 0, n_tried = 0;
    for (int i = 0; i < sk_SSL_CIPHER_num(list); i++) {
        const SSL_CIPHER *c = sk_SSL_CIPHER_value(list, i);
        if (SSL_CIPHER_get_kx_nid(c) == NID_kx_any)
            continue; /* TLS 1.3 suites below */
        char one[128];
        snprintf(one, sizeof(one), "%s:@SECLEVEL=0", SSL_CIPHER_get_name(c));
        struct probe p = { .port = srv.listener.port, .max_version = TLS1_2_VERSION,
                           .ciphers = one };
        n_tried++;
        if (probe_accepts(&loop, p)) {
            assert_true(n_accepted < 64);
            accepted[n_accepted++] = SSL_CIPHER_get_name(c);
        }
    }
    assert_true(n_tried > 50);
    qsort(accepted, n_accepted, sizeof(accepted[0]), name_cmp);
    static const char *const want[] = {
        "ECDHE-ECDSA-AES128-GCM-SHA256", "ECDHE-ECDSA-AES256-GCM-SHA384",
        "ECDHE-ECDSA-CHACHA20-POLY1305", "ECDHE-RSA-AES128-GCM-SHA256",
        "ECDHE-RSA-AES256-GCM-SHA384",   "ECDHE-RSA-CHACHA20-POLY1305",
    };
    assert_int_equal(n_accepted, 6);
    for (size_t i = 0; i < 6; i++)
        assert_string_equal(accepted[i], want[i]);
    SSL_CTX_free(all);

    static const struct {
        const char *suite;
        bool is_offered;
    } tls13[] = {
        { "TLS_AES_256_GCM_SHA384", true },
        { "TLS_CHACHA20_POLY1305_SHA256", true },
        { "TLS_AES_128_GCM_SHA256", true },
        { "TLS_AES_128_CCM_SHA256", false },
        { "TLS_AES_128_CCM_8_SHA256", false },
    };
    for (size_t i = 0; i < sizeof(tls13) / sizeof(tls13[0]); i++) {
        struct probe p = { .port = srv.listener.port, .min_version = TLS1_3_VERSION,
                           .ciphersuites = tls13[i].suite };
        assert_int_equal(probe_accepts(&loop, p), tls13[i].is_offered);
    }
    policy_server_stop(&srv, &loop);
}

static void test_tls_cipher_list_policy(void **state)
{
    (void)state;
    static const struct {
        const char *ciphers;
        const char *error; /* NULL: accepted */
    } cases[] = {
        { "ECDHE-ECDSA-AES256-GCM-SHA384", NULL },
        { "ECDHE-RSA-CHACHA20-POLY1305:ECDHE-ECDSA-AES128-GCM-SHA256", NULL },
        { "ALL", "is not ECDHE" },
        { "AES128-SHA", "is not ECDHE" },                     /* RSA key exchange, CBC */
        { "ECDHE-ECDSA-AES128-SHA256", "is not ECDHE" },      /* CBC */
        { "DHE-RSA-AES128-GCM-SHA256", "is not ECDHE" },      /* finite-field DH */
        { "ECDHE-ECDSA-AES128-GCM-SHA256:AES256-GCM-SHA384", "AES256-GCM-SHA384" },
        { "NOSUCHCIPHER", "no usable cipher" },
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct mg_tls_server_options o = { .cert_file = cert1, .key_file = key1,
                                           .ciphers = cases[i].ciphers };
        struct mg_tls_context *ctx = NULL;
        char *error = NULL;
        int r = mg_tls_context_new_server(&o, &ctx, &error);
        if (cases[i].error == NULL) {
            if (r != 0)
                fail_msg("%s: %s", cases[i].ciphers, error);
            mg_tls_context_unref(&ctx);
            continue;
        }
        assert_int_equal(r, -1);
        if (strstr(error, cases[i].error) == NULL)
            fail_msg("%s: %s", cases[i].ciphers, error);
        free(error);
        /* The links' client side follows the same policy. */
        struct mg_tls_client_options co = { .ciphers = cases[i].ciphers };
        assert_int_equal(mg_tls_context_new_client(&co, &ctx, &error), -1);
        free(error);
    }
}

static void test_tls_server_cipher_order(void **state)
{
    (void)state;
    uv_loop_t loop;
    uv_loop_init(&loop);
    struct server srv;
    struct mg_tls_server_options o = { .cert_file = cert1, .key_file = key1 };
    policy_server_start(&srv, &loop, &o);
    static const struct {
        int version;
        const char *offer;
        const char *chosen;
    } cases[] = {
        /* Ours first, whatever the client prefers... */
        { TLS1_2_VERSION, "ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-ECDSA-AES128-GCM-SHA256",
          "ECDHE-ECDSA-AES128-GCM-SHA256" },
        { TLS1_3_VERSION, "TLS_AES_128_GCM_SHA256:TLS_AES_256_GCM_SHA384",
          "TLS_AES_256_GCM_SHA384" },
        /* ...except ChaCha20 for a client that wants it most. */
        { TLS1_2_VERSION, "ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-ECDSA-AES128-GCM-SHA256",
          "ECDHE-ECDSA-CHACHA20-POLY1305" },
        { TLS1_3_VERSION, "TLS_CHACHA20_POLY1305_SHA256:TLS_AES_256_GCM_SHA384",
          "TLS_CHACHA20_POLY1305_SHA256" },
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        bool is13 = cases[i].version == TLS1_3_VERSION;
        struct probe p = { .port = srv.listener.port, .min_version = cases[i].version,
                           .max_version = cases[i].version,
                           .ciphers = is13 ? NULL : cases[i].offer,
                           .ciphersuites = is13 ? cases[i].offer : NULL };
        probe_run(&loop, &p);
        assert_true(p.exchanged);
        assert_string_equal(p.cipher, cases[i].chosen);
        SSL_SESSION_free(p.session_out);
    }
    policy_server_stop(&srv, &loop);
}

static void test_tls_groups(void **state)
{
    (void)state;
    uv_loop_t loop;
    uv_loop_init(&loop);
    struct server srv;
    struct mg_tls_server_options o = { .cert_file = cert1, .key_file = key1,
                                       .alt_cert_file = rsa_cert, .alt_key_file = rsa_key };
    policy_server_start(&srv, &loop, &o);
    static const struct {
        const char *group;
        const char *name; /* negotiated; NULL: refused */
    } cases[] = {
        { "X25519", "X25519" },
        { "P-256", "prime256v1" },
        { "P-384", "secp384r1" },
        { "P-521", NULL },
        { "ffdhe2048", NULL },
        { "ffdhe3072", NULL },
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        /* TLS 1.3, and TLS 1.2 with the RSA certificate (an ECDSA P-256
         * certificate needs P-256 among the client's TLS 1.2 groups). */
        for (int v = TLS1_2_VERSION; v <= TLS1_3_VERSION; v++) {
            struct probe p = { .port = srv.listener.port, .min_version = v, .max_version = v,
                               .groups = cases[i].group,
                               .ciphers = "ECDHE-RSA-AES128-GCM-SHA256" };
            probe_run(&loop, &p);
            if (cases[i].name == NULL) {
                assert_false(p.handshake_ok);
            } else {
                assert_true(p.exchanged);
                assert_string_equal(p.group, cases[i].name);
            }
            if (p.session_out != NULL)
                SSL_SESSION_free(p.session_out);
        }
    }
    /* TLS 1.2: the server's order among what the client offers (TLS 1.3
     * takes the group of the client's key share rather than ask for
     * another). */
    struct probe p = { .port = srv.listener.port, .max_version = TLS1_2_VERSION,
                       .groups = "P-384:P-256:X25519", .ciphers = "ECDHE-RSA-AES128-GCM-SHA256" };
    probe_run(&loop, &p);
    assert_string_equal(p.group, "X25519");
    SSL_SESSION_free(p.session_out);
    policy_server_stop(&srv, &loop);
}

/* A TLS 1.2 ClientHello offering DEFLATE before null compression, with
 * ECDHE-ECDSA-AES128-GCM-SHA256, X25519 and P-256 (OpenSSL as a client
 * cannot offer compression: it is built without zlib). */
static const unsigned char deflate_hello[] = {
    0x16, 0x03, 0x01, 0x00, 0x48,             /* handshake record, 72 bytes */
    0x01, 0x00, 0x00, 0x44,                   /* ClientHello, 68 bytes */
    0x03, 0x03,                               /* TLS 1.2 */
    0x4d, 0x47, 0x4d, 0x47, 0x4d, 0x47, 0x4d, 0x47, 0x4d, 0x47, 0x4d, 0x47, 0x4d, 0x47,
    0x4d, 0x47, 0x4d, 0x47, 0x4d, 0x47, 0x4d, 0x47, 0x4d, 0x47, 0x4d, 0x47, 0x4d, 0x47,
    0x4d, 0x47, 0x4d, 0x47,                   /* random */
    0x00,                                     /* no session ID */
    0x00, 0x02, 0xc0, 0x2b,                   /* cipher suites */
    0x02, 0x01, 0x00,                         /* compression: DEFLATE, null */
    0x00, 0x18,                               /* extensions, 24 bytes */
    0x00, 0x0a, 0x00, 0x06, 0x00, 0x04, 0x00, 0x1d, 0x00, 0x17, /* groups */
    0x00, 0x0b, 0x00, 0x02, 0x01, 0x00,       /* EC point formats: uncompressed */
    0x00, 0x0d, 0x00, 0x04, 0x00, 0x02, 0x04, 0x03, /* ecdsa_secp256r1_sha256 */
};

struct raw_hello {
    uint16_t port;
    atomic_bool done;
    int compression; /* the ServerHello's compression method, -1: none */
    int cipher;
};

static void *raw_hello_thread(void *arg)
{
    struct raw_hello *r = arg;
    int fd = probe_connect(r->port);
    r->compression = r->cipher = -1;
    assert_int_equal(write(fd, deflate_hello, sizeof(deflate_hello)), sizeof(deflate_hello));
    unsigned char buf[4096];
    size_t len = 0;
    while (len < 5 + 4 + 2 + 32 + 1) {
        ssize_t n = read(fd, buf + len, sizeof(buf) - len);
        if (n <= 0)
            goto out;
        len += (size_t)n;
    }
    if (buf[0] != 0x16 || buf[5] != 0x02) /* handshake, ServerHello */
        goto out;
    size_t at = 5 + 4 + 2 + 32;
    at += 1 + buf[at];                        /* session ID */
    while (len < at + 3) {
        ssize_t n = read(fd, buf + len, sizeof(buf) - len);
        if (n <= 0)
            goto out;
        len += (size_t)n;
    }
    r->cipher = buf[at] << 8 | buf[at + 1];
    r->compression = buf[at + 2];
out:
    close(fd);
    atomic_store(&r->done, true);
    return NULL;
}

static void test_tls_no_compression(void **state)
{
    (void)state;
    uv_loop_t loop;
    uv_loop_init(&loop);
    struct server srv;
    struct mg_tls_server_options o = { .cert_file = cert1, .key_file = key1 };
    policy_server_start(&srv, &loop, &o);
    struct raw_hello r = { .port = srv.listener.port };
    pthread_t th;
    pthread_create(&th, NULL, raw_hello_thread, &r);
    run_until(&loop, &r.done, NULL, NULL, 0, 10);
    pthread_join(th, NULL);
    assert_int_equal(r.cipher, 0xc02b);
    assert_int_equal(r.compression, 0);
    policy_server_stop(&srv, &loop);
}

static void test_tls_renegotiation_refused(void **state)
{
    (void)state;
    uv_loop_t loop;
    uv_loop_init(&loop);
    struct server srv;
    struct mg_tls_server_options o = { .cert_file = cert1, .key_file = key1 };
    policy_server_start(&srv, &loop, &o);
    struct probe p = { .port = srv.listener.port, .max_version = TLS1_2_VERSION,
                       .renegotiate = true };
    probe_run(&loop, &p);
    assert_true(p.exchanged);
    assert_string_equal(p.version, "TLSv1.2");
    assert_false(p.renegotiation_ok);
    SSL_SESSION_free(p.session_out);
    policy_server_stop(&srv, &loop);
}

/* Connects with `session` (NULL: a new one); returns whether it was
 * resumed, and the session to use next in *next_r (to free). */
static bool resume(uv_loop_t *loop, struct server *srv, int version, bool no_ticket,
                   SSL_SESSION *session, SSL_SESSION **next_r)
{
    int before = srv->resumed;
    struct probe p = { .port = srv->listener.port, .min_version = version,
                       .max_version = version, .no_ticket = no_ticket, .session = session };
    probe_run(loop, &p);
    assert_true(p.exchanged);
    assert_string_equal(p.version, version == TLS1_3_VERSION ? "TLSv1.3" : "TLSv1.2");
    /* The server saw the same (mg_tls_is_resumed); its on_tls_ready ran
     * before it echoed. */
    assert_int_equal(srv->resumed - before, p.reused ? 1 : 0);
    assert_non_null(p.session_out);
    assert_true(SSL_SESSION_is_resumable(p.session_out));
    if (next_r != NULL)
        *next_r = p.session_out;
    else
        SSL_SESSION_free(p.session_out);
    return p.reused;
}

static void test_tls_resumption(void **state)
{
    (void)state;
    uv_loop_t loop;
    uv_loop_init(&loop);
    struct server srv;
    struct mg_tls_server_options o = { .cert_file = cert1, .key_file = key1 };
    policy_server_start(&srv, &loop, &o);

    /* TLS 1.2 by ticket, TLS 1.2 by session ID, TLS 1.3 by ticket. */
    static const struct {
        int version;
        bool no_ticket;
    } ways[] = { { TLS1_2_VERSION, false }, { TLS1_2_VERSION, true }, { TLS1_3_VERSION, false } };
    for (size_t i = 0; i < 3; i++) {
        SSL_SESSION *s = NULL;
        assert_false(resume(&loop, &srv, ways[i].version, ways[i].no_ticket, NULL, &s));
        assert_true(resume(&loop, &srv, ways[i].version, ways[i].no_ticket, s, NULL));
        SSL_SESSION_free(s);
    }

    /* A ticket outlives two rotations of the key (an hour each), not a
     * third: the key that made it is erased. One of an older key is
     * replaced by one of the newest. */
    for (int v = TLS1_2_VERSION; v <= TLS1_3_VERSION; v++) {
        SSL_SESSION *s0 = NULL, *s1 = NULL;
        assert_false(resume(&loop, &srv, v, false, NULL, &s0));
        mg__tls_context_rotate_ticket_keys(srv.tls);
        assert_true(resume(&loop, &srv, v, false, s0, &s1));
        mg__tls_context_rotate_ticket_keys(srv.tls);
        assert_true(resume(&loop, &srv, v, false, s0, NULL));
        mg__tls_context_rotate_ticket_keys(srv.tls);
        assert_false(resume(&loop, &srv, v, false, s0, NULL));
        assert_true(resume(&loop, &srv, v, false, s1, NULL));
        SSL_SESSION_free(s0);
        SSL_SESSION_free(s1);
    }
    policy_server_stop(&srv, &loop);
}

static void test_tls_alpn(void **state)
{
    (void)state;
    static const struct {
        const char *server;  /* mg_tls_server_options.alpn */
        const char *offer;   /* NULL: no ALPN extension */
        const char *selected; /* NULL: the handshake fails */
    } cases[] = {
        { "imap", "imap", "imap" },
        { "imap", "http/1.1,imap", "imap" },
        { "imap", NULL, "" },                  /* every mail client today */
        { "imap", "h2,http/1.1", NULL },       /* a browser sent here (ALPACA) */
        { "imap", "smtp", NULL },
        { NULL, "imap", "" },                  /* SMTP: ALPN ignored */
        { NULL, "h2,http/1.1", "" },
        { NULL, NULL, "" },
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        uv_loop_t loop;
        uv_loop_init(&loop);
        struct server srv;
        struct mg_tls_server_options o = { .cert_file = cert1, .key_file = key1,
                                           .alpn = cases[i].server };
        policy_server_start(&srv, &loop, &o);
        for (int v = TLS1_2_VERSION; v <= TLS1_3_VERSION; v++) {
            struct probe p = { .port = srv.listener.port, .min_version = v, .max_version = v,
                               .alpn = cases[i].offer };
            probe_run(&loop, &p);
            if (cases[i].selected == NULL) {
                assert_false(p.handshake_ok);
                if (strstr(p.error, "no application protocol") == NULL)
                    fail_msg("case %zu: %s", i, p.error);
            } else {
                assert_true(p.exchanged);
                assert_string_equal(p.alpn_selected, cases[i].selected);
            }
            if (p.session_out != NULL)
                SSL_SESSION_free(p.session_out);
        }
        policy_server_stop(&srv, &loop);
    }
}

/* SNI is not looked at: any name (or none) gets the one certificate. */
static void test_tls_sni_unknown_name(void **state)
{
    (void)state;
    uv_loop_t loop;
    uv_loop_init(&loop);
    struct server srv;
    struct mg_tls_server_options o = { .cert_file = cert1, .key_file = key1 };
    policy_server_start(&srv, &loop, &o);
    static const char *const names[] = { "localhost", "unknown.example", NULL };
    for (size_t i = 0; i < 3; i++) {
        struct probe p = { .port = srv.listener.port, .sni = names[i] };
        assert_true(probe_accepts(&loop, p));
    }
    policy_server_stop(&srv, &loop);
}

/* The links between hosts: no client certificate of the CA, no session,
 * with TLS 1.2 (refused in the handshake) and 1.3 (refused right after
 * it: the server's verdict follows the client's Finished). */
static void test_tls_client_certificate_required(void **state)
{
    (void)state;
    uv_loop_t loop;
    uv_loop_init(&loop);
    struct server srv;
    struct mg_tls_server_options o = { .cert_file = cert1, .key_file = key1,
                                       .client_ca_file = cert1 };
    policy_server_start(&srv, &loop, &o);
    for (int v = TLS1_2_VERSION; v <= TLS1_3_VERSION; v++) {
        struct probe none = { .port = srv.listener.port, .min_version = v, .max_version = v };
        probe_run(&loop, &none);
        assert_false(none.exchanged);
        if (strstr(none.error, v == TLS1_3_VERSION ? "certificate required"
                                                   : "handshake failure") == NULL)
            fail_msg("TLS %x: %s", v, none.error);
        if (none.session_out != NULL)
            SSL_SESSION_free(none.session_out);
        struct probe other = { .port = srv.listener.port, .min_version = v, .max_version = v,
                               .cert = cert2, .key = key2 };
        assert_false(probe_accepts(&loop, other));
        struct probe good = { .port = srv.listener.port, .min_version = v, .max_version = v,
                              .cert = cert1, .key = key1 };
        assert_true(probe_accepts(&loop, good));
    }
    policy_server_stop(&srv, &loop);
}

static void make_rsa_cert(const char *dir, const char *base, int bits, char **cert_r,
                          char **key_r)
{
    *cert_r = mg_asprintf("%s/%s.pem", dir, base);
    *key_r = mg_asprintf("%s/%s.key", dir, base);
    char *cmd = mg_asprintf("openssl req -x509 -newkey rsa:%d -nodes -days 30 -subj /CN=localhost "
                            "-addext subjectAltName=DNS:localhost,IP:127.0.0.1 "
                            "-keyout %s -out %s >/dev/null 2>&1",
                            bits, *key_r, *cert_r);
    assert_int_equal(system(cmd), 0);
    free(cmd);
}

/* Security level 2: an RSA key under 2048 bits is refused at load. */
static void test_tls_weak_key_refused(void **state)
{
    (void)state;
    char *cert = NULL, *key = NULL;
    make_rsa_cert(tmpdir, "rsa1024", 1024, &cert, &key);
    struct mg_tls_server_options o = { .cert_file = cert, .key_file = key };
    struct mg_tls_context *ctx = NULL;
    char *error = NULL;
    assert_int_equal(mg_tls_context_new_server(&o, &ctx, &error), -1);
    if (strstr(error, "too small") == NULL)
        fail_msg("%s", error);
    free(error);
    free(cert);
    free(key);
}

/* A ClientHello, then silence: the server answers, waits for the rest of
 * the handshake for handshake_timeout and no longer. */
struct hello_stall {
    uint16_t port;
    atomic_bool done;
    size_t received;
    bool is_closed;
};

static void *hello_stall_thread(void *arg)
{
    struct hello_stall *h = arg;
    int fd = probe_connect(h->port);
    assert_int_equal(write(fd, deflate_hello, sizeof(deflate_hello)), sizeof(deflate_hello));
    unsigned char buf[4096];
    ssize_t n;
    while ((n = read(fd, buf, sizeof(buf))) > 0)
        h->received += (size_t)n;
    h->is_closed = n == 0;
    close(fd);
    atomic_store(&h->done, true);
    return NULL;
}

static void test_tls_hello_then_stall(void **state)
{
    (void)state;
    uv_loop_t loop;
    uv_loop_init(&loop);
    struct server srv = { .handshake_ms = 300, .tls = server_ctx(cert1, key1) };
    server_start(&srv, &loop);
    struct hello_stall h = { .port = srv.listener.port };
    pthread_t th;
    uint64_t t0 = uv_now(&loop);
    pthread_create(&th, NULL, hello_stall_thread, &h);
    run_until(&loop, &h.done, NULL, NULL, 0, 10);
    pthread_join(th, NULL);
    uv_update_time(&loop);
    assert_true(h.received > 0); /* ServerHello, certificate... */
    assert_true(h.is_closed);
    assert_true(uv_now(&loop) - t0 >= 250);
    run_until(&loop, NULL, NULL, &srv.closed, 1, 5);
    assert_string_equal(srv.reason, "TLS handshake timed out");
    policy_server_stop(&srv, &loop);
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
    make_rsa_cert(tmpdir, "rsa", 2048, &rsa_cert, &rsa_key);
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
    free(rsa_cert);
    free(rsa_key);
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
        cmocka_unit_test(test_tls_hello_then_stall),
        cmocka_unit_test(test_tls_versions),
        cmocka_unit_test(test_tls_cipher_suites_exact),
        cmocka_unit_test(test_tls_cipher_list_policy),
        cmocka_unit_test(test_tls_server_cipher_order),
        cmocka_unit_test(test_tls_groups),
        cmocka_unit_test(test_tls_no_compression),
        cmocka_unit_test(test_tls_renegotiation_refused),
        cmocka_unit_test(test_tls_resumption),
        cmocka_unit_test(test_tls_alpn),
        cmocka_unit_test(test_tls_sni_unknown_name),
        cmocka_unit_test(test_tls_client_certificate_required),
        cmocka_unit_test(test_tls_weak_key_refused),
        cmocka_unit_test(test_tls_reload_certificate),
        cmocka_unit_test(test_conn_unix_socket),
        cmocka_unit_test(test_conn_connect_refused),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
