#include "common/auth_client.h"

#include <stdlib.h>
#include <string.h>

#include "common/alloc.h"
#include "common/auth_proto.h"
#include "common/buf.h"
#include "common/conn.h"
#include "common/endpoint.h"
#include "common/line_reader.h"
#include "common/log.h"
#include "common/password.h"
#include "common/tls.h"

#define AUTH_DEFAULT_TIMEOUT_MS 10000
#define AUTH_CONNECT_TIMEOUT_MS 5000
#define AUTH_BACKOFF_MAX_MS 5000
/* A service that cannot be reached is given this long (a connection
 * attempt at each look of the timer) before waiting requests fail: a
 * restart of mgauthd, or mgimapd starting it, is a blip, not a 4xx. */
#define AUTH_DOWN_GRACE_MS 1000
#define AUTH_GRACE_RETRY_MS 100
/* Timeouts and reconnections are looked at this often. */
#define AUTH_TIMER_MS 250

enum request_kind { REQ_VERIFY, REQ_RESOLVE, REQ_DOMAIN };

struct mg_auth_request {
    struct mg_auth_request *next, *prev;
    struct mg_auth_client *client;
    enum request_kind kind;
    unsigned id;
    uint64_t deadline;
    struct mg_buf line;   /* the request, kept until sent */
    bool is_sent;
    bool is_done;         /* completed, waiting in the done list */
    /* The answer, delivered from the loop. */
    enum mg_auth_status status;
    char *reason;
    char *user;
    uint64_t quota;
    struct mg_auth_target *targets;
    size_t n_targets;
    union {
        mg_auth_verify_cb *verify;
        mg_auth_resolve_cb *resolve;
        mg_auth_domain_cb *domain;
    } cb;
    void *ctx;
};

struct mg_auth_client {
    uv_loop_t *loop;
    const struct mg_endpoint *endpoint;
    char address[300];     /* the endpoint's name, for logs */
    struct mg_tls_context *tls;
    bool is_down;          /* unreachable for longer than the grace */
    uint64_t down_since;   /* loop time of the first failed attempt; 0: none */
    char *client_name;
    uint64_t timeout_ms;
    struct mg_conn *conn;
    bool is_connected;     /* connected and HELLO sent */
    struct mg_line_reader reader;
    struct mg_auth_request *pending; /* waiting for an answer or to be sent */
    struct mg_auth_request *done;    /* answered, callbacks not yet run */
    unsigned next_id;
    uv_timer_t timer;      /* timeouts, reconnect backoff */
    uv_check_t check;      /* runs completed callbacks */
    uint64_t backoff_ms;
    uint64_t next_connect;
    bool is_freeing;
};

static void client_connect(struct mg_auth_client *c);

static void list_remove(struct mg_auth_request **head, struct mg_auth_request *r)
{
    if (r->prev != NULL)
        r->prev->next = r->next;
    else if (*head == r)
        *head = r->next;
    if (r->next != NULL)
        r->next->prev = r->prev;
    r->next = r->prev = NULL;
}

static void list_push(struct mg_auth_request **head, struct mg_auth_request *r)
{
    r->prev = NULL;
    r->next = *head;
    if (*head != NULL)
        (*head)->prev = r;
    *head = r;
}

static void request_free(struct mg_auth_request *r)
{
    /* The request line may hold a password. */
    if (r->line.data != NULL)
        mg_password_wipe(r->line.data, r->line.len);
    mg_buf_free(&r->line);
    free(r->reason);
    free(r->user);
    for (size_t i = 0; i < r->n_targets; i++)
        free((char *)r->targets[i].address);
    free(r->targets);
    free(r);
}

static void check_cb(uv_check_t *h);

/* Moves a request to the done list; its callback runs from the check
 * handle, never inside the caller's stack. */
static void request_complete(struct mg_auth_request *r, enum mg_auth_status status, const char *reason)
{
    struct mg_auth_client *c = r->client;
    list_remove(&c->pending, r);
    r->status = status;
    if (reason != NULL && r->reason == NULL)
        r->reason = mg_strdup(reason);
    r->is_done = true;
    list_push(&c->done, r);
    uv_check_start(&c->check, check_cb);
}

static void run_callback(struct mg_auth_request *r)
{
    switch (r->kind) {
    case REQ_VERIFY: {
        struct mg_auth_verify_result res = { r->status, r->user, r->quota, r->reason };
        r->cb.verify(&res, r->ctx);
        break;
    }
    case REQ_RESOLVE: {
        struct mg_auth_resolve_result res = { r->status, r->targets, r->n_targets, r->reason };
        r->cb.resolve(&res, r->ctx);
        break;
    }
    case REQ_DOMAIN:
        r->cb.domain(r->status, r->ctx);
        break;
    }
}

static void check_cb(uv_check_t *h)
{
    struct mg_auth_client *c = h->data;
    uv_check_stop(h);
    /* Callbacks may start new requests: take the list first. */
    struct mg_auth_request *list = c->done;
    c->done = NULL;
    while (list != NULL) {
        struct mg_auth_request *r = list;
        list = r->next;
        run_callback(r);
        request_free(r);
    }
}

static void fail_all(struct mg_auth_client *c, const char *reason)
{
    while (c->pending != NULL)
        request_complete(c->pending, MG_AUTH_TEMPFAIL, reason);
}

/* ---- answers ---- */

static void handle_answer(struct mg_auth_client *c, char **f, int n)
{
    if (n < 2)
        return;
    if (strcmp(f[0], "HELLO") == 0)
        return;
    unsigned id = (unsigned)strtoul(f[1], NULL, 10);
    struct mg_auth_request *r = c->pending;
    while (r != NULL && !(r->id == id && r->is_sent))
        r = r->next;
    if (r == NULL)
        return; /* cancelled or timed out meanwhile */
    if (strcmp(f[0], "TEMPFAIL") == 0) {
        request_complete(r, MG_AUTH_TEMPFAIL, n > 2 ? f[2] : "temporary failure");
        return;
    }
    if (strcmp(f[0], "FAIL") == 0) {
        enum mg_auth_status st = MG_AUTH_FAIL;
        if (r->kind == REQ_RESOLVE)
            st = n > 2 && strcmp(f[2], "notlocal") == 0 ? MG_AUTH_NOT_LOCAL : MG_AUTH_NOT_FOUND;
        request_complete(r, st, n > 2 ? f[2] : "failed");
        return;
    }
    if (strcmp(f[0], "OK") != 0) {
        request_complete(r, MG_AUTH_TEMPFAIL, "protocol error");
        return;
    }
    switch (r->kind) {
    case REQ_VERIFY:
        if (n < 4) {
            request_complete(r, MG_AUTH_TEMPFAIL, "protocol error");
            return;
        }
        r->user = mg_strdup(f[2]);
        r->quota = strtoull(f[3], NULL, 10);
        request_complete(r, MG_AUTH_OK, NULL);
        return;
    case REQ_RESOLVE: {
        size_t groups = (size_t)(n - 2) / 4;
        if ((n - 2) % 4 != 0 || groups == 0) {
            request_complete(r, MG_AUTH_TEMPFAIL, "protocol error");
            return;
        }
        r->targets = mg_calloc(groups, sizeof(*r->targets));
        for (size_t i = 0; i < groups; i++) {
            char **g = f + 2 + i * 4;
            r->targets[i].is_local = strcmp(g[0], "L") == 0;
            r->targets[i].address = mg_strdup(g[1]);
            r->targets[i].is_enabled = strcmp(g[2], "1") == 0;
            r->targets[i].quota_bytes = strtoull(g[3], NULL, 10);
        }
        r->n_targets = groups;
        request_complete(r, MG_AUTH_OK, NULL);
        return;
    }
    case REQ_DOMAIN:
        request_complete(r, n > 2 && strcmp(f[2], "local") == 0 ? MG_AUTH_OK : MG_AUTH_NOT_LOCAL, NULL);
        return;
    }
}

/* ---- connection ---- */

static void send_pending(struct mg_auth_client *c)
{
    if (!c->is_connected)
        return;
    mg_conn_cork(c->conn);
    for (struct mg_auth_request *r = c->pending; r != NULL; r = r->next) {
        if (r->is_sent)
            continue;
        mg_conn_write(c->conn, r->line.data, r->line.len);
        mg_password_wipe(r->line.data, r->line.len);
        mg_buf_free(&r->line);
        r->is_sent = true;
    }
    mg_conn_uncork(c->conn);
}

static void conn_on_read(struct mg_conn *conn)
{
    struct mg_auth_client *c = mg_conn_data(conn);
    struct mg_buf *in = mg_conn_input(conn);
    struct mg_line line;
    enum mg_line_status st;
    while ((st = mg_line_reader_next(&c->reader, in, &line)) != MG_LINE_NEED_MORE) {
        if (st != MG_LINE_OK) {
            mg_conn_abort(conn, "auth service sent an over-long line");
            return;
        }
        char buf[MG_AUTH_PROTO_LINE_MAX + 1];
        memcpy(buf, line.data, line.len);
        buf[line.len] = '\0';
        char *fields[MG_AUTH_PROTO_FIELDS_MAX];
        int n = mg_auth_proto_split(buf, line.len, fields, MG_AUTH_PROTO_FIELDS_MAX);
        if (n > 0)
            handle_answer(c, fields, n);
    }
    mg_line_reader_compact(&c->reader, in);
}

/* Connected, and over TCP through the TLS handshake: greet and send. */
static void conn_on_ready(struct mg_conn *conn)
{
    struct mg_auth_client *c = mg_conn_data(conn);
    /* The connect timeout would stay as an idle timeout: a quiet link would
     * be cut every 5 s, and a request written as the timer fired would
     * fail ("connection lost": a login refused for nothing). Requests have
     * their own deadlines; the link stays until either side closes it. */
    mg_conn_set_idle_timeout(conn, 0);
    c->is_connected = true;
    c->is_down = false;
    c->down_since = 0;
    c->backoff_ms = 0;
    struct mg_buf hello = MG_BUF_INIT;
    mg_auth_proto_cfield(&hello, "HELLO");
    mg_auth_proto_cfield(&hello, "1");
    mg_auth_proto_cfield(&hello, c->client_name);
    mg_buf_append_byte(&hello, '\n');
    mg_conn_write(conn, hello.data, hello.len);
    mg_buf_free(&hello);
    send_pending(c);
}

static void conn_on_connect(struct mg_conn *conn, int status)
{
    struct mg_auth_client *c = mg_conn_data(conn);
    if (status != 0)
        return;
    if (c->endpoint->is_unix) {
        conn_on_ready(conn);
        return;
    }
    /* TCP: always mutual TLS; the server's certificate must carry the
     * name or address we connect to. */
    mg_conn_start_tls_client(conn, c->tls, c->endpoint->host, AUTH_CONNECT_TIMEOUT_MS);
}

static void conn_on_tls_ready(struct mg_conn *conn)
{
    conn_on_ready(conn);
}

static void conn_on_close(struct mg_conn *conn, const char *reason)
{
    struct mg_auth_client *c = mg_conn_data(conn);
    bool was_connected = c->is_connected;
    c->conn = NULL;
    c->is_connected = false;
    if (c->is_freeing)
        return;
    bool is_grace = false;
    if (!was_connected) {
        /* The service cannot be reached. After the grace, say so to
         * everyone waiting now, and to newcomers until the next attempt,
         * instead of letting each one wait for its timeout (an SMTP
         * client would sit 10 s on each RCPT before its 451). */
        uint64_t now = uv_now(c->loop);
        if (c->down_since == 0)
            c->down_since = now;
        is_grace = now - c->down_since < AUTH_DOWN_GRACE_MS;
        if (!is_grace) {
            c->is_down = true;
            fail_all(c, "auth service unavailable");
        }
    }
    /* Requests already sent may or may not have been answered: they fail
     * temporarily; requests not sent yet wait for the next connection. */
    struct mg_auth_request *r = c->pending;
    while (r != NULL) {
        struct mg_auth_request *next = r->next;
        if (r->is_sent)
            request_complete(r, MG_AUTH_TEMPFAIL, "auth service connection lost");
        r = next;
    }
    char rv[MG_LOG_VALUE_MAX];
    mg_log_warning("auth", "connection to the auth service closed address=%s reason=%s", c->address,
                   mg_log_str(rv, reason != NULL ? reason : "closed"));
    if (is_grace) {
        /* Again soon (the timer looks every AUTH_TIMER_MS); the backoff
         * starts once the service is known down. */
        c->next_connect = uv_now(c->loop) + AUTH_GRACE_RETRY_MS;
        return;
    }
    c->backoff_ms = c->backoff_ms == 0 ? 100 : c->backoff_ms * 2;
    if (c->backoff_ms > AUTH_BACKOFF_MAX_MS)
        c->backoff_ms = AUTH_BACKOFF_MAX_MS;
    c->next_connect = uv_now(c->loop) + c->backoff_ms;
    /* Whoever waits for a connection now waits no longer than the backoff
     * allows: fail them if the service stays away past their deadline. */
}

static const struct mg_conn_callbacks auth_conn_cb = {
    .on_read = conn_on_read,
    .on_connect = conn_on_connect,
    .on_tls_ready = conn_on_tls_ready,
    .on_close = conn_on_close,
};

static void client_connect(struct mg_auth_client *c)
{
    if (c->conn != NULL || c->is_freeing)
        return;
    if (uv_now(c->loop) < c->next_connect)
        return;
    mg_line_reader_init(&c->reader, MG_AUTH_PROTO_LINE_MAX);
    c->conn = mg_endpoint_connect((struct mg_endpoint *)c->endpoint, c->loop,
                                  AUTH_CONNECT_TIMEOUT_MS, &auth_conn_cb, c);
}

static void timer_cb(uv_timer_t *t)
{
    struct mg_auth_client *c = t->data;
    uint64_t now = uv_now(c->loop);
    struct mg_auth_request *r = c->pending;
    while (r != NULL) {
        struct mg_auth_request *next = r->next;
        if (now >= r->deadline)
            request_complete(r, MG_AUTH_TEMPFAIL, c->is_connected ? "auth service timeout"
                                                                  : "auth service unavailable");
        r = next;
    }
    if (c->pending != NULL && c->conn == NULL)
        client_connect(c);
}

struct mg_auth_client *mg_auth_client_new(uv_loop_t *loop,
                                          const struct mg_auth_client_settings *settings)
{
    struct mg_auth_client *c = mg_calloc(1, sizeof(*c));
    c->loop = loop;
    c->endpoint = settings->endpoint;
    mg_endpoint_name(settings->endpoint, c->address, sizeof(c->address));
    c->tls = settings->tls;
    if (!c->endpoint->is_unix && c->tls == NULL)
        mg_panic("auth client: TCP endpoint %s without a TLS context", c->address);
    c->client_name = mg_strdup(settings->client_name != NULL ? settings->client_name : "client");
    c->timeout_ms = settings->timeout_ms ? settings->timeout_ms : AUTH_DEFAULT_TIMEOUT_MS;
    c->next_id = 1;
    uv_timer_init(loop, &c->timer);
    c->timer.data = c;
    uv_timer_start(&c->timer, timer_cb, AUTH_TIMER_MS, AUTH_TIMER_MS);
    uv_unref((uv_handle_t *)&c->timer);
    uv_check_init(loop, &c->check);
    c->check.data = c;
    return c;
}

static void client_free_cb(uv_handle_t *h)
{
    struct mg_auth_client *c = h->data;
    free(c->client_name);
    free(c);
}

static void timer_closed_cb(uv_handle_t *h)
{
    struct mg_auth_client *c = h->data;
    uv_close((uv_handle_t *)&c->check, client_free_cb);
}

void mg_auth_client_free(struct mg_auth_client **client)
{
    struct mg_auth_client *c = *client;
    if (c == NULL)
        return;
    *client = NULL;
    fail_all(c, "shutting down");
    check_cb(&c->check);
    c->is_freeing = true;
    if (c->conn != NULL)
        mg_conn_abort(c->conn, NULL);
    uv_close((uv_handle_t *)&c->timer, timer_closed_cb);
}

/* ---- requests ---- */

static struct mg_auth_request *request_new(struct mg_auth_client *c, enum request_kind kind,
                                           const char *verb, void *ctx)
{
    struct mg_auth_request *r = mg_calloc(1, sizeof(*r));
    r->client = c;
    r->kind = kind;
    r->id = c->next_id++;
    if (c->next_id == 0)
        c->next_id = 1;
    r->ctx = ctx;
    r->deadline = uv_now(c->loop) + c->timeout_ms;
    mg_auth_proto_cfield(&r->line, verb);
    char id[16];
    snprintf(id, sizeof(id), "%u", r->id);
    mg_auth_proto_cfield(&r->line, id);
    return r;
}

static struct mg_auth_request *request_start(struct mg_auth_client *c, struct mg_auth_request *r)
{
    mg_buf_append_byte(&r->line, '\n');
    list_push(&c->pending, r);
    if (c->is_connected)
        send_pending(c);
    else if (c->is_down && c->conn == NULL && uv_now(c->loop) < c->next_connect)
        request_complete(r, MG_AUTH_TEMPFAIL, "auth service unavailable");
    else
        client_connect(c);
    return r;
}

struct mg_auth_request *mg_auth_verify(struct mg_auth_client *client, const char *authzid,
                                       const char *authcid, const char *password,
                                       const char *service, const char *remote_ip,
                                       mg_auth_verify_cb *cb, void *ctx)
{
    struct mg_auth_request *r = request_new(client, REQ_VERIFY, "VERIFY", ctx);
    r->cb.verify = cb;
    mg_auth_proto_cfield(&r->line, service);
    mg_auth_proto_cfield(&r->line, remote_ip != NULL ? remote_ip : "");
    mg_auth_proto_cfield(&r->line, authzid != NULL ? authzid : "");
    mg_auth_proto_cfield(&r->line, authcid);
    mg_auth_proto_cfield(&r->line, password);
    return request_start(client, r);
}

struct mg_auth_request *mg_auth_resolve(struct mg_auth_client *client, const char *address,
                                        mg_auth_resolve_cb *cb, void *ctx)
{
    struct mg_auth_request *r = request_new(client, REQ_RESOLVE, "RESOLVE", ctx);
    r->cb.resolve = cb;
    mg_auth_proto_cfield(&r->line, address);
    return request_start(client, r);
}

struct mg_auth_request *mg_auth_domain(struct mg_auth_client *client, const char *domain,
                                       mg_auth_domain_cb *cb, void *ctx)
{
    struct mg_auth_request *r = request_new(client, REQ_DOMAIN, "DOMAIN", ctx);
    r->cb.domain = cb;
    mg_auth_proto_cfield(&r->line, domain);
    return request_start(client, r);
}

void mg_auth_cancel(struct mg_auth_request **req)
{
    struct mg_auth_request *r = *req;
    if (r == NULL)
        return;
    *req = NULL;
    struct mg_auth_client *c = r->client;
    if (r->is_done)
        list_remove(&c->done, r);
    else
        list_remove(&c->pending, r);
    request_free(r);
}

void mg_auth_client_set_tls(struct mg_auth_client *client, struct mg_tls_context *tls)
{
    if (tls != NULL)
        client->tls = tls;
}
