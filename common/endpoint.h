/* Where a daemon reaches another Mailgenic daemon: a UNIX socket path on
 * one host, or "host:port" over TCP once the MDA has its own host (then
 * always with mutual TLS, see docs/scale-out.md).
 *
 * Written in the configuration as "/run/mailgenic/mda/lmtp.sock",
 * "10.0.0.2:24", "imap.internal:24" or "[fd00::2]:24". Host names are
 * resolved once, when the configuration is read (at start): a daemon that
 * starts with a link it cannot resolve fails at once with a clear message
 * instead of retrying a typo forever. */
#ifndef MG_COMMON_ENDPOINT_H
#define MG_COMMON_ENDPOINT_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>
#include <uv.h>

struct mg_conn;
struct mg_conn_callbacks;

#define MG_ENDPOINT_ADDRS_MAX 8

struct mg_endpoint {
    bool is_unix;
    char *path;  /* is_unix: the socket */
    char *host;  /* TCP: as written, brackets removed; the name TLS checks */
    uint16_t port;
    struct sockaddr_storage addrs[MG_ENDPOINT_ADDRS_MAX];
    size_t n_addrs;
    size_t next_addr; /* where the next connection attempt starts */
};

/* Parses text (and resolves a host name with getaddrinfo, which blocks:
 * call at start, not on the loop). Returns 0, or -1 with a reason (to
 * free) in *error_r. */
int mg_endpoint_parse(const char *text, struct mg_endpoint *ep_r, char **error_r);
/* Whether text names a TCP endpoint (anything but an absolute path). */
bool mg_endpoint_is_tcp(const char *text);
void mg_endpoint_clear(struct mg_endpoint *ep);

/* Opens a connection (common/conn.h; on_connect reports the result). Over
 * TCP each call tries the next address in turn, so a host that went away
 * gives way to its other addresses on the next attempt. TLS is the
 * caller's: start it in on_connect with ep->host as the peer name. */
struct mg_conn *mg_endpoint_connect(struct mg_endpoint *ep, uv_loop_t *loop, uint64_t timeout_ms,
                                    const struct mg_conn_callbacks *cb, void *data);

/* The socket path or "host:port" ("[v6]:port"), for logs. */
const char *mg_endpoint_name(const struct mg_endpoint *ep, char *buf, size_t size);

#endif
