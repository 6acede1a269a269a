#include "common/conn.h"

#include <arpa/inet.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/alloc.h"
#include "common/buf.h"
#include "common/log.h"
#include "common/tls.h"

/* How long a closing connection may take to flush before it is cut. */
#define CONN_CLOSE_TIMEOUT_MS 10000
/* Buffers bigger than this are released once empty, so that a connection
 * that once sent a large FETCH does not keep the memory, and an idle one
 * (thousands of IMAP IDLE sessions) keeps none: a new buffer for the next
 * burst costs a malloc, next to a system call and TLS. */
#define CONN_BUF_KEEP 0

enum conn_timer_mode {
    TIMER_NONE,
    TIMER_HANDSHAKE,
    TIMER_IDLE,
    TIMER_CLOSE,
};

struct mg_conn {
    union {
        uv_handle_t handle;
        uv_stream_t stream;
        uv_tcp_t tcp;
        uv_pipe_t pipe;
    } s;
    uv_timer_t timer;
    uv_connect_t connect_req;
    uv_write_t write_req;
    uv_shutdown_t shutdown_req;

    const struct mg_conn_callbacks *cb;
    void *data;
    struct mg_tls *tls;

    struct mg_buf in;      /* plaintext for the protocol */
    struct mg_buf out;     /* bytes for the socket, not yet written */
    struct mg_buf writing; /* bytes of the write in flight */

    int cork;
    int handles_open;
    enum conn_timer_mode timer_mode;
    uint64_t idle_timeout_ms;
    uint64_t handshake_timeout_ms;

    bool is_unix;
    bool is_connected;
    bool is_reading;         /* uv_read_start is active */
    bool is_paused;          /* by the protocol */
    bool is_input_full;      /* by us: too much unconsumed input */
    bool is_write_in_flight;
    bool is_closing;         /* close asked: flushing */
    bool is_dead;            /* handles closing; no more I/O at all */
    bool is_shutdown_sent;
    bool want_drain;
    bool is_in_read;         /* inside the read path: on_read runs later */
    bool notified_tls_ready;

    const char *close_reason;
    char reason_buf[300];

    char peer_ip[INET6_ADDRSTRLEN];
    uint16_t peer_port;
    char local_ip[INET6_ADDRSTRLEN];
    uint16_t local_port;
    uint64_t bytes_in;
    uint64_t bytes_out;
};

static void conn_flush(struct mg_conn *conn);
static void conn_finish_close(struct mg_conn *conn);
static void conn_update_reading(struct mg_conn *conn);
static void conn_process_input(struct mg_conn *conn);

/* One read buffer per thread: libuv calls read_cb right after alloc_cb,
 * and read_cb copies the bytes out, so connections need not each own a
 * read buffer. */
static __thread char conn_read_buffer[65536];

static void conn_alloc_cb(uv_handle_t *handle, size_t suggested, uv_buf_t *buf)
{
    (void)handle;
    (void)suggested;
    buf->base = conn_read_buffer;
    buf->len = sizeof(conn_read_buffer);
}

static void conn_handle_close_cb(uv_handle_t *handle)
{
    struct mg_conn *conn = handle->data;
    if (--conn->handles_open > 0)
        return;
    if (conn->cb->on_close != NULL)
        conn->cb->on_close(conn, conn->close_reason);
    mg_tls_free(&conn->tls);
    mg_buf_free(&conn->in);
    mg_buf_free(&conn->out);
    mg_buf_free(&conn->writing);
    free(conn);
}

void mg_conn_abort(struct mg_conn *conn, const char *reason)
{
    if (conn->is_dead)
        return;
    conn->is_dead = true;
    conn->is_closing = true;
    if (reason != NULL && conn->close_reason == NULL) {
        snprintf(conn->reason_buf, sizeof(conn->reason_buf), "%s", reason);
        conn->close_reason = conn->reason_buf;
    }
    /* A pending write or connect request completes with UV_ECANCELED
     * before the close callbacks run. */
    uv_close(&conn->s.handle, conn_handle_close_cb);
    uv_close((uv_handle_t *)&conn->timer, conn_handle_close_cb);
}

static void conn_fail(struct mg_conn *conn, const char *what, int uv_status)
{
    char reason[200];
    snprintf(reason, sizeof(reason), "%s: %s", what, uv_strerror(uv_status));
    mg_conn_abort(conn, reason);
}

static void conn_timer_set(struct mg_conn *conn, enum conn_timer_mode mode, uint64_t ms);

static void conn_timer_cb(uv_timer_t *timer)
{
    struct mg_conn *conn = timer->data;
    switch (conn->timer_mode) {
    case TIMER_HANDSHAKE:
        mg_conn_abort(conn, "TLS handshake timed out");
        break;
    case TIMER_CLOSE:
        mg_conn_abort(conn, "timed out while closing");
        break;
    case TIMER_IDLE:
        if (conn->cb->on_timeout != NULL)
            conn->cb->on_timeout(conn);
        else
            mg_conn_abort(conn, "idle timeout");
        break;
    case TIMER_NONE:
        break;
    }
}

static void conn_timer_set(struct mg_conn *conn, enum conn_timer_mode mode, uint64_t ms)
{
    if (conn->is_dead)
        return;
    conn->timer_mode = mode;
    if (mode == TIMER_NONE || ms == 0) {
        conn->timer_mode = TIMER_NONE;
        uv_timer_stop(&conn->timer);
        return;
    }
    uv_timer_start(&conn->timer, conn_timer_cb, ms, 0);
}

/* Any progress restarts the idle timer (not the handshake timer: a peer
 * must finish the handshake within its limit however it trickles). */
static void conn_touch(struct mg_conn *conn)
{
    if (conn->timer_mode == TIMER_IDLE)
        conn_timer_set(conn, TIMER_IDLE, conn->idle_timeout_ms);
}

static void conn_after_handshake(struct mg_conn *conn)
{
    if (conn->notified_tls_ready || !mg_tls_is_handshake_done(conn->tls))
        return;
    conn->notified_tls_ready = true;
    conn_timer_set(conn, TIMER_IDLE, conn->idle_timeout_ms);
    if (conn->cb->on_tls_ready != NULL && !conn->is_closing)
        conn->cb->on_tls_ready(conn);
}

static void conn_read_cb(uv_stream_t *stream, ssize_t nread, const uv_buf_t *buf)
{
    struct mg_conn *conn = stream->data;
    if (nread == 0 || conn->is_dead)
        return;
    if (nread < 0) {
        if (conn->is_closing) {
            /* We were waiting for the peer to go away. */
            mg_conn_abort(conn, NULL);
        } else if (nread == UV_EOF) {
            mg_conn_abort(conn, "connection closed by peer");
        } else {
            conn_fail(conn, "read error", (int)nread);
        }
        return;
    }
    conn_touch(conn);
    if (conn->tls == NULL) {
        mg_buf_append(&conn->in, buf->base, (size_t)nread);
        conn->bytes_in += (uint64_t)nread;
    } else {
        size_t before = conn->in.len;
        mg_tls_feed(conn->tls, buf->base, (size_t)nread);
        enum mg_tls_status st = mg_tls_read(conn->tls, &conn->in);
        conn->bytes_in += conn->in.len - before;
        if (st == MG_TLS_ERROR) {
            snprintf(conn->reason_buf, sizeof(conn->reason_buf), "%s", mg_tls_error(conn->tls));
            conn->close_reason = conn->reason_buf;
            conn->is_closing = true;
            conn_update_reading(conn);
            /* Send the alert OpenSSL queued, then go. */
            conn_flush(conn);
            if (!conn->is_write_in_flight)
                mg_conn_abort(conn, NULL);
            else
                conn_timer_set(conn, TIMER_CLOSE, CONN_CLOSE_TIMEOUT_MS);
            return;
        }
        conn_flush(conn); /* handshake messages, tickets, key updates */
        conn_after_handshake(conn);
        if (st == MG_TLS_CLOSED) {
            /* Serve what came before the peer's close_notify, then go. */
            conn_process_input(conn);
            if (conn->close_reason == NULL) {
                snprintf(conn->reason_buf, sizeof(conn->reason_buf), "connection closed by peer");
                conn->close_reason = conn->reason_buf;
            }
            mg_conn_close(conn);
            return;
        }
    }
    conn_process_input(conn);
}

static void conn_process_input(struct mg_conn *conn)
{
    if (conn->is_closing || conn->is_paused || conn->in.len == 0)
        return;
    if (conn->is_in_read)
        return; /* the outer call loops */
    conn->is_in_read = true;
    mg_conn_cork(conn);
    conn->cb->on_read(conn);
    conn->is_in_read = false;
    if (!conn->is_dead) {
        /* Give idle connections' memory back. */
        if (conn->in.len == 0 && conn->in.cap > CONN_BUF_KEEP)
            mg_buf_free(&conn->in);
        conn_update_reading(conn);
        mg_conn_uncork(conn);
    }
}

static void conn_update_reading(struct mg_conn *conn)
{
    if (conn->is_dead || !conn->is_connected)
        return;
    conn->is_input_full = conn->in.len >= MG_CONN_INPUT_MAX;
    /* A peer that does not read our output must not make us queue
     * unbounded replies: stop reading its commands meanwhile. */
    bool output_full = mg_conn_output_pending(conn) >= MG_CONN_HIGH_WATERMARK * 4;
    bool want = !conn->is_closing && !conn->is_paused && !conn->is_input_full && !output_full;
    if (want && !conn->is_reading) {
        if (uv_read_start(&conn->s.stream, conn_alloc_cb, conn_read_cb) == 0)
            conn->is_reading = true;
    } else if (!want && conn->is_reading) {
        uv_read_stop(&conn->s.stream);
        conn->is_reading = false;
    }
}

static void conn_shutdown_cb(uv_shutdown_t *req, int status)
{
    struct mg_conn *conn = req->data;
    (void)status;
    /* Our side is done; do not wait for the peer's FIN. */
    mg_conn_abort(conn, NULL);
}

static void conn_finish_close(struct mg_conn *conn)
{
    if (conn->is_dead || conn->is_shutdown_sent)
        return;
    if (!conn->is_connected) {
        mg_conn_abort(conn, NULL);
        return;
    }
    conn->is_shutdown_sent = true;
    conn->shutdown_req.data = conn;
    if (uv_shutdown(&conn->shutdown_req, &conn->s.stream, conn_shutdown_cb) != 0)
        mg_conn_abort(conn, NULL);
}

static void conn_write_cb(uv_write_t *req, int status)
{
    struct mg_conn *conn = req->data;
    conn->is_write_in_flight = false;
    if (conn->writing.cap > CONN_BUF_KEEP)
        mg_buf_free(&conn->writing);
    else
        mg_buf_reset(&conn->writing);
    if (conn->is_dead)
        return;
    if (status < 0) {
        conn_fail(conn, "write error", status);
        return;
    }
    conn_touch(conn);
    conn_flush(conn);
    if (conn->is_dead)
        return;
    if (conn->is_closing) {
        if (!conn->is_write_in_flight && conn->out.len == 0)
            conn_finish_close(conn);
        return;
    }
    conn_update_reading(conn);
    if (conn->want_drain && mg_conn_output_pending(conn) < MG_CONN_LOW_WATERMARK) {
        conn->want_drain = false;
        if (conn->cb->on_drain != NULL) {
            mg_conn_cork(conn);
            conn->cb->on_drain(conn);
            mg_conn_uncork(conn);
        }
    }
}

static void conn_flush(struct mg_conn *conn)
{
    if (conn->is_dead || !conn->is_connected)
        return;
    if (conn->tls != NULL)
        mg_tls_take_output(conn->tls, &conn->out);
    if (conn->is_write_in_flight || conn->out.len == 0)
        return;
    /* Most replies fit the socket buffer: write them now, without a
     * request and a callback. */
    uv_buf_t b = uv_buf_init(conn->out.data, (unsigned int)conn->out.len);
    int n = uv_try_write(&conn->s.stream, &b, 1);
    if (n > 0)
        mg_buf_consume(&conn->out, (size_t)n);
    else if (n < 0 && n != UV_EAGAIN && n != UV_ENOSYS) {
        conn_fail(conn, "write error", n);
        return;
    }
    if (conn->out.len == 0) {
        if (conn->out.cap > CONN_BUF_KEEP)
            mg_buf_free(&conn->out);
        return;
    }
    struct mg_buf tmp = conn->writing;
    conn->writing = conn->out;
    conn->out = tmp;
    mg_buf_reset(&conn->out);
    b = uv_buf_init(conn->writing.data, (unsigned int)conn->writing.len);
    conn->write_req.data = conn;
    int r = uv_write(&conn->write_req, &conn->s.stream, &b, 1, conn_write_cb);
    if (r < 0) {
        conn_fail(conn, "write error", r);
        return;
    }
    conn->is_write_in_flight = true;
}

static struct mg_conn *conn_new(uv_loop_t *loop, bool is_unix,
                                const struct mg_conn_callbacks *cb, void *data)
{
    struct mg_conn *conn = mg_calloc(1, sizeof(*conn));
    conn->cb = cb;
    conn->data = data;
    conn->is_unix = is_unix;
    if (is_unix)
        uv_pipe_init(loop, &conn->s.pipe, 0);
    else
        uv_tcp_init(loop, &conn->s.tcp);
    conn->s.handle.data = conn;
    uv_timer_init(loop, &conn->timer);
    conn->timer.data = conn;
    conn->handles_open = 2;
    return conn;
}

static void sockaddr_to_ip(const struct sockaddr_storage *ss, char *ip, size_t size,
                           uint16_t *port_r)
{
    if (ss->ss_family == AF_INET) {
        const struct sockaddr_in *sin = (const struct sockaddr_in *)ss;
        uv_ip4_name(sin, ip, size);
        *port_r = ntohs(sin->sin_port);
    } else if (ss->ss_family == AF_INET6) {
        const struct sockaddr_in6 *sin6 = (const struct sockaddr_in6 *)ss;
        if (IN6_IS_ADDR_V4MAPPED(&sin6->sin6_addr)) {
            /* Dual-stack listeners see IPv4 peers as ::ffff:a.b.c.d; limits
             * and logs key on the IPv4 address. */
            inet_ntop(AF_INET, &sin6->sin6_addr.s6_addr[12], ip, (socklen_t)size);
        } else {
            uv_ip6_name(sin6, ip, size);
        }
        *port_r = ntohs(sin6->sin6_port);
    } else {
        snprintf(ip, size, "unknown");
        *port_r = 0;
    }
}

static void conn_fill_addresses(struct mg_conn *conn)
{
    if (conn->is_unix) {
        snprintf(conn->peer_ip, sizeof(conn->peer_ip), "local");
        snprintf(conn->local_ip, sizeof(conn->local_ip), "local");
        return;
    }
    struct sockaddr_storage ss;
    int len = sizeof(ss);
    if (uv_tcp_getpeername(&conn->s.tcp, (struct sockaddr *)&ss, &len) == 0)
        sockaddr_to_ip(&ss, conn->peer_ip, sizeof(conn->peer_ip), &conn->peer_port);
    else
        snprintf(conn->peer_ip, sizeof(conn->peer_ip), "unknown");
    len = sizeof(ss);
    if (uv_tcp_getsockname(&conn->s.tcp, (struct sockaddr *)&ss, &len) == 0)
        sockaddr_to_ip(&ss, conn->local_ip, sizeof(conn->local_ip), &conn->local_port);
    else
        snprintf(conn->local_ip, sizeof(conn->local_ip), "unknown");
    /* We coalesce writes ourselves; Nagle would only add latency to
     * pipelined replies. Keepalive finds clients that vanished in IDLE. */
    uv_tcp_nodelay(&conn->s.tcp, 1);
    uv_tcp_keepalive(&conn->s.tcp, 1, 300);
}

struct mg_conn *mg_conn_accept(uv_stream_t *server, struct mg_tls_context *tls_ctx,
                               uint64_t handshake_timeout_ms,
                               const struct mg_conn_callbacks *cb, void *data)
{
    bool is_unix = server->type == UV_NAMED_PIPE;
    struct mg_conn *conn = conn_new(server->loop, is_unix, cb, data);
    int r = uv_accept(server, &conn->s.stream);
    if (r != 0) {
        mg_log_warning("conn", "accept failed error=%s", uv_strerror(r));
        /* Nobody holds this connection yet: close without on_close. */
        static const struct mg_conn_callbacks silent = { 0 };
        conn->cb = &silent;
        mg_conn_abort(conn, NULL);
        return NULL;
    }
    conn->is_connected = true;
    conn_fill_addresses(conn);
    if (tls_ctx != NULL) {
        conn->tls = mg_tls_new_server(tls_ctx);
        conn->handshake_timeout_ms = handshake_timeout_ms;
        conn_timer_set(conn, TIMER_HANDSHAKE, handshake_timeout_ms);
    }
    conn_update_reading(conn);
    return conn;
}

static void conn_connect_cb(uv_connect_t *req, int status)
{
    struct mg_conn *conn = req->data;
    if (conn->is_dead)
        return;
    if (status < 0) {
        if (conn->cb->on_connect != NULL)
            conn->cb->on_connect(conn, status);
        conn_fail(conn, "connect failed", status);
        return;
    }
    conn->is_connected = true;
    conn_fill_addresses(conn);
    conn_timer_set(conn, conn->idle_timeout_ms ? TIMER_IDLE : TIMER_NONE, conn->idle_timeout_ms);
    conn_update_reading(conn);
    if (conn->cb->on_connect != NULL)
        conn->cb->on_connect(conn, 0);
    if (!conn->is_dead)
        conn_flush(conn);
}

struct mg_conn *mg_conn_connect_tcp(uv_loop_t *loop, const struct sockaddr *addr,
                                    uint64_t timeout_ms,
                                    const struct mg_conn_callbacks *cb, void *data)
{
    struct mg_conn *conn = conn_new(loop, false, cb, data);
    conn->connect_req.data = conn;
    conn->idle_timeout_ms = timeout_ms;
    int r = uv_tcp_connect(&conn->connect_req, &conn->s.tcp, addr, conn_connect_cb);
    if (r != 0) {
        /* Report through the callbacks, from the loop, like any failure. */
        conn_fail(conn, "connect failed", r);
        return conn;
    }
    /* The idle timer doubles as the connect timeout. */
    conn_timer_set(conn, TIMER_IDLE, timeout_ms);
    return conn;
}

struct mg_conn *mg_conn_connect_unix(uv_loop_t *loop, const char *path, uint64_t timeout_ms,
                                     const struct mg_conn_callbacks *cb, void *data)
{
    struct mg_conn *conn = conn_new(loop, true, cb, data);
    conn->connect_req.data = conn;
    conn->idle_timeout_ms = timeout_ms;
    uv_pipe_connect(&conn->connect_req, &conn->s.pipe, path, conn_connect_cb);
    conn_timer_set(conn, TIMER_IDLE, timeout_ms);
    return conn;
}

size_t mg_conn_start_tls_server(struct mg_conn *conn, struct mg_tls_context *tls_ctx,
                                uint64_t handshake_timeout_ms)
{
    mg_assert(conn->tls == NULL);
    /* The reply to STARTTLS goes out in plaintext first. */
    conn_flush(conn);
    size_t dropped = conn->in.len;
    mg_buf_reset(&conn->in);
    conn->tls = mg_tls_new_server(tls_ctx);
    conn->handshake_timeout_ms = handshake_timeout_ms;
    conn_timer_set(conn, TIMER_HANDSHAKE, handshake_timeout_ms);
    return dropped;
}

void mg_conn_start_tls_client(struct mg_conn *conn, struct mg_tls_context *tls_ctx,
                              const char *peer_name, uint64_t handshake_timeout_ms)
{
    mg_assert(conn->tls == NULL);
    conn_flush(conn);
    mg_buf_reset(&conn->in);
    conn->tls = mg_tls_new_client(tls_ctx, peer_name);
    conn->handshake_timeout_ms = handshake_timeout_ms;
    conn_timer_set(conn, TIMER_HANDSHAKE, handshake_timeout_ms);
    conn_flush(conn); /* the ClientHello */
}

struct mg_buf *mg_conn_input(struct mg_conn *conn)
{
    return &conn->in;
}

void mg_conn_write(struct mg_conn *conn, const void *data, size_t len)
{
    if (conn->is_closing || len == 0)
        return;
    conn->bytes_out += len;
    if (conn->tls != NULL) {
        if (mg_tls_write(conn->tls, data, len) != MG_TLS_OK) {
            mg_conn_abort(conn, mg_tls_error(conn->tls));
            return;
        }
    } else {
        mg_buf_append(&conn->out, data, len);
    }
    if (conn->cork == 0)
        conn_flush(conn);
}

void mg_conn_write_str(struct mg_conn *conn, const char *str)
{
    mg_conn_write(conn, str, strlen(str));
}

void mg_conn_printf(struct mg_conn *conn, const char *fmt, ...)
{
    char small[512];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(small, sizeof(small), fmt, ap);
    va_end(ap);
    if (n < 0)
        return;
    if ((size_t)n < sizeof(small)) {
        mg_conn_write(conn, small, (size_t)n);
        return;
    }
    struct mg_buf b = MG_BUF_INIT;
    va_start(ap, fmt);
    mg_buf_vprintf(&b, fmt, ap);
    va_end(ap);
    mg_conn_write(conn, b.data, b.len);
    mg_buf_free(&b);
}

void mg_conn_cork(struct mg_conn *conn)
{
    conn->cork++;
}

void mg_conn_uncork(struct mg_conn *conn)
{
    mg_assert(conn->cork > 0);
    if (--conn->cork == 0)
        conn_flush(conn);
}

size_t mg_conn_output_pending(const struct mg_conn *conn)
{
    size_t n = conn->out.len + conn->writing.len;
    if (conn->tls != NULL)
        n += mg_tls_output_pending(conn->tls);
    return n;
}

void mg_conn_want_drain(struct mg_conn *conn)
{
    conn->want_drain = true;
    if (conn->is_dead || !conn->is_connected || conn->is_write_in_flight)
        return;
    /* Everything may have gone out already (uv_try_write): no write
     * callback would ever come. An empty write completes on the next loop
     * iteration and its callback calls on_drain, never this caller's
     * stack. */
    conn_flush(conn);
    if (conn->is_write_in_flight || conn->is_dead)
        return;
    static char empty[1];
    uv_buf_t b = uv_buf_init(empty, 0);
    conn->write_req.data = conn;
    if (uv_write(&conn->write_req, &conn->s.stream, &b, 1, conn_write_cb) == 0)
        conn->is_write_in_flight = true;
}

void mg_conn_pause_reading(struct mg_conn *conn)
{
    conn->is_paused = true;
    conn_update_reading(conn);
}

void mg_conn_resume_reading(struct mg_conn *conn)
{
    if (!conn->is_paused)
        return;
    conn->is_paused = false;
    conn_update_reading(conn);
}

void mg_conn_reprocess_input(struct mg_conn *conn)
{
    conn_process_input(conn);
}

void mg_conn_set_idle_timeout(struct mg_conn *conn, uint64_t ms)
{
    conn->idle_timeout_ms = ms;
    if (conn->timer_mode == TIMER_HANDSHAKE || conn->timer_mode == TIMER_CLOSE)
        return;
    conn_timer_set(conn, ms ? TIMER_IDLE : TIMER_NONE, ms);
}

void mg_conn_close(struct mg_conn *conn)
{
    if (conn->is_closing)
        return;
    conn->is_closing = true;
    conn_update_reading(conn);
    if (!conn->is_connected) {
        mg_conn_abort(conn, NULL);
        return;
    }
    if (conn->tls != NULL)
        mg_tls_shutdown(conn->tls);
    conn_flush(conn);
    if (conn->is_dead)
        return;
    conn_timer_set(conn, TIMER_CLOSE, CONN_CLOSE_TIMEOUT_MS);
    if (!conn->is_write_in_flight && conn->out.len == 0)
        conn_finish_close(conn);
}

bool mg_conn_is_closing(const struct mg_conn *conn)
{
    return conn->is_closing;
}

void mg_conn_set_data(struct mg_conn *conn, void *data)
{
    conn->data = data;
}

void *mg_conn_data(const struct mg_conn *conn)
{
    return conn->data;
}

const char *mg_conn_peer_ip(const struct mg_conn *conn)
{
    return conn->peer_ip[0] != '\0' ? conn->peer_ip : "unknown";
}

uint16_t mg_conn_peer_port(const struct mg_conn *conn)
{
    return conn->peer_port;
}

const char *mg_conn_local_ip(const struct mg_conn *conn)
{
    return conn->local_ip[0] != '\0' ? conn->local_ip : "unknown";
}

uint16_t mg_conn_local_port(const struct mg_conn *conn)
{
    return conn->local_port;
}

bool mg_conn_is_unix(const struct mg_conn *conn)
{
    return conn->is_unix;
}

int mg_conn_fileno(const struct mg_conn *conn)
{
    uv_os_fd_t fd;
    if (conn->is_dead || uv_fileno(&conn->s.handle, &fd) != 0)
        return -1;
    return fd;
}

struct mg_tls *mg_conn_tls(const struct mg_conn *conn)
{
    return conn->tls;
}

bool mg_conn_is_tls_ready(const struct mg_conn *conn)
{
    return conn->tls != NULL && mg_tls_is_handshake_done(conn->tls);
}

uint64_t mg_conn_bytes_in(const struct mg_conn *conn)
{
    return conn->bytes_in;
}

uint64_t mg_conn_bytes_out(const struct mg_conn *conn)
{
    return conn->bytes_out;
}
