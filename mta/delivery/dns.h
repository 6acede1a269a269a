/* DNS for remote delivery: MX and address (A + AAAA) look-ups on one
 * c-ares channel driven by the libuv loop.
 *
 * c-ares owns its sockets and tells us, through its socket-state callback,
 * which ones to watch; each gets a uv_poll_t, and a uv_timer_t follows
 * ares_timeout() so that retransmissions and timeouts happen without
 * anybody calling select(). Every look-up is bounded by the channel's
 * timeout and tries.
 *
 * No cache here: a caller keeps what it learned for as long as it needs it
 * (remote delivery: for one batch to a destination). */
#ifndef MG_MTA_DNS_H
#define MG_MTA_DNS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>
#include <uv.h>

/* Longest name looked up (RFC 1035 2.3.4, without the trailing dot). */
#define DNS_NAME_MAX 253
/* Records kept from one answer; the rest are ignored. */
#define DNS_RECORDS_MAX 32

enum dns_status {
    DNS_OK,        /* records found */
    DNS_NXDOMAIN,  /* the name does not exist */
    DNS_NODATA,    /* the name exists but has no record of that type */
    DNS_TEMPFAIL,  /* server failure, refusal, timeout, bad answer: try later */
    DNS_BADNAME,   /* not something that can be looked up */
};

struct dns_mx {
    unsigned pref;
    char *host;    /* without the trailing dot; "" for the root (null MX) */
};

/* What a look-up found. Lives during the callback only. */
struct dns_result {
    enum dns_status status;
    const char *error;                /* why, for logs ("" when DNS_OK) */
    struct dns_mx *mx;                /* MX look-ups, in answer order */
    size_t n_mx;
    struct sockaddr_storage *addrs;   /* address look-ups: IPv4, then IPv6 */
    size_t n_addrs;                   /* ports are 0 */
};

struct dns_resolver_settings {
    const char *server;   /* "ip:port" (or "[ip6]:port"); NULL or "": resolv.conf */
    uint64_t timeout_ms;  /* per try; c-ares doubles it on later rounds */
    unsigned tries;
};

struct dns_resolver;
struct dns_query;

/* Returns 0, or -1 with *error_r (to free) for a server it cannot use. */
int dns_resolver_new(uv_loop_t *loop, const struct dns_resolver_settings *settings,
                     struct dns_resolver **resolver_r, char **error_r);
/* Drops every pending query without calling its callback (handles held
 * by callers become invalid: cancel them first). The memory goes once the
 * loop has closed the handles. Accepts NULL, sets *resolver to NULL. Not
 * from inside a dns callback. */
void dns_resolver_free(struct dns_resolver **resolver);

/* The callback runs exactly once, from the event loop (never before the
 * look-up function returned), unless the query is cancelled first. */
typedef void dns_callback(const struct dns_result *result, void *ctx);

/* MX records of name. */
struct dns_query *dns_lookup_mx(struct dns_resolver *resolver, const char *name, dns_callback *cb,
                                void *ctx);
/* A and AAAA records of name, asked in parallel: DNS_OK when either has
 * addresses; otherwise NXDOMAIN when the name does not exist, TEMPFAIL
 * when either failed, else NODATA. */
struct dns_query *dns_lookup_addrs(struct dns_resolver *resolver, const char *name,
                                   dns_callback *cb, void *ctx);
/* The callback will not run. Accepts NULL, sets *query to NULL. */
void dns_query_cancel(struct dns_query **query);

/* Queries started and not yet answered or cancelled (for tests). */
size_t dns_resolver_pending(const struct dns_resolver *resolver);

const char *dns_status_name(enum dns_status status);

#endif
