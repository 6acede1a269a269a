/* Buffered connections: one layer between libuv, OpenSSL and the protocols.
 *
 * A connection wraps a TCP or UNIX stream, optionally with TLS (implicit,
 * STARTTLS upgrade, or client side). The protocol sees plaintext only: it
 * reads lines from mg_conn_input() and writes with mg_conn_write().
 *
 * Output is coalesced: writes made while the connection is corked (always
 * during on_read, or between mg_conn_cork/uncork) go out in one write when
 * it ends. A protocol producing large output checks mg_conn_output_pending()
 * against MG_CONN_HIGH_WATERMARK, stops, and resumes in on_drain.
 *
 * Lifetime: the connection owns itself. mg_conn_close() flushes, sends TLS
 * close_notify and closes; mg_conn_abort() closes at once. Either way
 * on_close runs exactly once, from the event loop (never inside the
 * caller's stack), after which the connection is freed: the owner must
 * drop its pointer there. Calls on a closing connection are ignored.
 *
 * Timeouts: one timer per connection. While a TLS handshake runs it is the
 * handshake timeout (the connection is aborted when it fires); otherwise it
 * is the idle timeout, restarted by every byte received or sent, and
 * on_timeout decides what to do. */
#ifndef MG_COMMON_CONN_H
#define MG_COMMON_CONN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

struct mg_buf;
struct mg_tls;
struct mg_tls_context;

/* Output queue marks (bytes): producers pause above the high mark, and
 * on_drain fires when the queue falls below the low mark again. */
#define MG_CONN_HIGH_WATERMARK (256 * 1024)
#define MG_CONN_LOW_WATERMARK (64 * 1024)
/* Unconsumed input beyond this pauses reading (the protocol is busy). */
#define MG_CONN_INPUT_MAX (1024 * 1024)

struct mg_conn;

struct mg_conn_callbacks {
    /* New plaintext is in mg_conn_input(). */
    void (*on_read)(struct mg_conn *conn);
    /* Output fell below MG_CONN_LOW_WATERMARK (after mg_conn_want_drain). */
    void (*on_drain)(struct mg_conn *conn);
    /* The TLS handshake completed. */
    void (*on_tls_ready)(struct mg_conn *conn);
    /* An outbound connection was established (status 0) or failed (a
     * negative libuv error; on_close follows). */
    void (*on_connect)(struct mg_conn *conn, int status);
    /* The idle timeout expired. NULL: close the connection. */
    void (*on_timeout)(struct mg_conn *conn);
    /* Last call: the connection is about to be freed. reason is NULL for
     * a close asked for by the owner, otherwise why it ended ("connection
     * reset by peer", "TLS handshake failed: ..."). */
    void (*on_close)(struct mg_conn *conn, const char *reason);
};

/* Accepts one pending connection from a listening TCP or pipe handle.
 * With tls_ctx the connection starts as a TLS server (implicit TLS).
 * Returns NULL if accept failed (logged). */
struct mg_conn *mg_conn_accept(uv_stream_t *server, struct mg_tls_context *tls_ctx,
                               uint64_t handshake_timeout_ms,
                               const struct mg_conn_callbacks *cb, void *data);
/* Outbound connections; on_connect reports the result. */
struct mg_conn *mg_conn_connect_tcp(uv_loop_t *loop, const struct sockaddr *addr,
                                    uint64_t timeout_ms,
                                    const struct mg_conn_callbacks *cb, void *data);
struct mg_conn *mg_conn_connect_unix(uv_loop_t *loop, const char *path, uint64_t timeout_ms,
                                     const struct mg_conn_callbacks *cb, void *data);

/* STARTTLS, server side: call right after queueing the "go ahead" reply.
 * Unread input is discarded (a client must not pipeline past STARTTLS:
 * CVE-2011-0411); returns how many bytes were dropped. */
size_t mg_conn_start_tls_server(struct mg_conn *conn, struct mg_tls_context *tls_ctx,
                                uint64_t handshake_timeout_ms);
/* TLS, client side, on an established connection (after the peer's "go
 * ahead" for STARTTLS). peer_name: SNI and the name to verify. */
void mg_conn_start_tls_client(struct mg_conn *conn, struct mg_tls_context *tls_ctx,
                              const char *peer_name, uint64_t handshake_timeout_ms);

struct mg_buf *mg_conn_input(struct mg_conn *conn);
void mg_conn_write(struct mg_conn *conn, const void *data, size_t len);
void mg_conn_write_str(struct mg_conn *conn, const char *str);
void mg_conn_printf(struct mg_conn *conn, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
/* Holds writes back until the matching uncork (nests). */
void mg_conn_cork(struct mg_conn *conn);
void mg_conn_uncork(struct mg_conn *conn);
/* Bytes queued and not yet handed to the kernel (plaintext and TLS). */
size_t mg_conn_output_pending(const struct mg_conn *conn);
/* Ask for one on_drain call once output falls below the low mark. */
void mg_conn_want_drain(struct mg_conn *conn);

/* Stop and restart delivering input (while the protocol waits for the
 * auth service or the disk). Input already buffered stays. */
void mg_conn_pause_reading(struct mg_conn *conn);
void mg_conn_resume_reading(struct mg_conn *conn);
/* Calls on_read again if unconsumed input is buffered (after resuming). */
void mg_conn_reprocess_input(struct mg_conn *conn);

/* Idle timeout in milliseconds (0: none). */
void mg_conn_set_idle_timeout(struct mg_conn *conn, uint64_t ms);

void mg_conn_close(struct mg_conn *conn);
void mg_conn_abort(struct mg_conn *conn, const char *reason);
bool mg_conn_is_closing(const struct mg_conn *conn);

void mg_conn_set_data(struct mg_conn *conn, void *data);
void *mg_conn_data(const struct mg_conn *conn);
/* "192.0.2.1" / "2001:db8::1" (IPv4-mapped addresses shown as IPv4), or
 * "local" for a UNIX socket. */
const char *mg_conn_peer_ip(const struct mg_conn *conn);
uint16_t mg_conn_peer_port(const struct mg_conn *conn);
/* The local address as a string, "local" for UNIX sockets. */
const char *mg_conn_local_ip(const struct mg_conn *conn);
uint16_t mg_conn_local_port(const struct mg_conn *conn);
bool mg_conn_is_unix(const struct mg_conn *conn);
/* The socket's file descriptor (for getsockopt), or -1. */
int mg_conn_fileno(const struct mg_conn *conn);
/* The TLS engine (NULL without TLS); for version, cipher, verification. */
struct mg_tls *mg_conn_tls(const struct mg_conn *conn);
bool mg_conn_is_tls_ready(const struct mg_conn *conn);
/* Total plaintext bytes received and sent, for logout/close log lines. */
uint64_t mg_conn_bytes_in(const struct mg_conn *conn);
uint64_t mg_conn_bytes_out(const struct mg_conn *conn);

#endif
