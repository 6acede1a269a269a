/* Next hops for remote mail.
 *
 * For a destination domain the next hop is, in this order:
 *   1. its [relay] transport entry ("example.com=mx.example.net:25",
 *      ".example.com" for every subdomain), or
 *   2. [relay] relayhost (a smarthost, TLS required, optionally AUTH), or
 *   3. the domain's MX records (RFC 5321 5.1).
 * A configured host in brackets ("[mx.example.net]:25", "[192.0.2.7]") is
 * used as it is: its A/AAAA records, or the address itself. A host without
 * brackets is looked up like a domain: MX records, then A/AAAA.
 *
 * MX handling (route_mx_prepare): preference order, equal preferences in
 * random order, null MX (RFC 7505), and no delivery to ourselves: when our
 * own hostname is an MX host, it and every host of equal or worse
 * preference are dropped (as Postfix does); nothing left is a mail loop.
 *
 * Resolution (route_resolve_*) turns a next hop into the addresses to try,
 * in order: each host's IPv4 then IPv6 addresses, host after host. Its
 * failures carry the SMTP status the recipients get: permanent only for
 * the recipient domain's own DNS facts (no such domain 5.1.2, null MX
 * 5.1.10, loop 5.4.6, no address 5.4.4); a configured relay that does not
 * resolve is a temporary failure, never a bounce. */
#ifndef MG_MTA_ROUTE_H
#define MG_MTA_ROUTE_H

#include <netinet/in.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

struct dns_resolver;
struct mg_settings_relay;

#define ROUTE_SMTP_PORT 25
/* Entries in [relay] transport. */
#define ROUTE_TRANSPORT_MAX 1000
/* MX hosts kept per destination, and addresses tried per destination
 * (like Postfix's smtp_mx_address_limit, a bound on one delivery's
 * connection attempts). */
#define ROUTE_MX_MAX 10
#define ROUTE_TARGETS_MAX 20
/* Longest destination key (route_hop_key). */
#define ROUTE_KEY_MAX 300

/* A "host", "host:port", "[host]:port" or "[2001:db8::1]:port". */
struct route_host {
    char *name;       /* lower case, without brackets */
    uint16_t port;
    bool is_literal;  /* in brackets: no MX look-up */
    bool is_ip;       /* name is an IPv4 or IPv6 address */
};

/* Parses text[0..len); default_port when none is given. Returns 0, or -1
 * with a reason (static text) in *error_r. */
int route_host_parse(const char *text, size_t len, uint16_t default_port,
                     struct route_host *host_r, const char **error_r);
void route_host_free(struct route_host *host);

enum route_kind {
    ROUTE_MX,         /* the recipient domain's MX records */
    ROUTE_TRANSPORT,  /* a [relay] transport entry */
    ROUTE_RELAYHOST,  /* [relay] relayhost */
};

enum route_tls {
    ROUTE_TLS_MAY,       /* STARTTLS when offered */
    ROUTE_TLS_STARTTLS,  /* STARTTLS required */
    ROUTE_TLS_IMPLICIT,  /* TLS from the first byte (port 465) */
};

/* Where mail for one destination goes. Strings point into the table or
 * the domain given to route_choose(). */
struct route_hop {
    enum route_kind kind;
    const char *domain;     /* the recipient domain asked about */
    const char *name;       /* ROUTE_MX: the domain; otherwise the configured host */
    uint16_t port;
    bool use_mx;            /* look up MX records of name first */
    bool is_ip;             /* name is an address: no DNS at all */
    enum route_tls tls;
    bool require_verified;  /* [relay] tls_verify = verify */
    bool use_auth;          /* AUTH with the relayhost credentials */
};

struct route_table;

/* Parses [relay] transport, relayhost and the TLS policy. Returns 0, or -1
 * with *error_r (to free) naming the key and the bad entry. */
int route_table_new(const struct mg_settings_relay *relay, struct route_table **table_r,
                    char **error_r);
void route_table_free(struct route_table **table);
size_t route_table_transport_count(const struct route_table *table);

/* The next hop for a (lower-case) domain. Returns 0, or -1 with a reason
 * (static text) when the domain cannot be a destination (empty, or a
 * malformed address literal "[...]"). */
int route_choose(const struct route_table *table, const char *domain, struct route_hop *hop_r,
                 const char **error_r);
/* The destination key: deliveries with the same key share connections.
 * "example.com" (MX), "transport:[192.0.2.7]:2525", "relayhost". */
void route_hop_key(const struct route_hop *hop, char key[ROUTE_KEY_MAX]);

/* ---- MX records ---- */

struct route_mx {
    unsigned pref;
    char *host;             /* "" is the root: a null MX */
};

enum route_mx_status {
    ROUTE_MX_OK,    /* hosts left in order */
    ROUTE_MX_NULL,  /* "MX 0 .": the domain accepts no mail */
    ROUTE_MX_LOOP,  /* only we (or worse) are left */
};

/* A uniformly distributed random number; NULL: arc4random(). */
typedef uint32_t route_random_fn(void *ctx);

/* Sorts mx[0..*n) by preference with equal preferences shuffled, detects
 * a null MX (nothing but the root, usually one record; a root record
 * among real hosts is dropped), drops our own host (self, compared
 * without case and trailing dot) with every host of equal or worse
 * preference, and keeps at most ROUTE_MX_MAX. Dropped hosts' strings are
 * freed; *n is updated. */
enum route_mx_status route_mx_prepare(struct route_mx *mx, size_t *n, const char *self,
                                      route_random_fn *rnd, void *rnd_ctx);
bool route_name_eq(const char *a, const char *b);

/* ---- resolution ---- */

struct route_target {
    char *host;                    /* for logs and TLS: the MX host, or the address */
    struct sockaddr_storage addr;  /* with the port */
    char ip[INET6_ADDRSTRLEN];
    uint16_t port;
};

struct route_result {
    int result;        /* 0: targets found; 4 or 5: the failure for every recipient */
    char dsn[16];
    char *text;        /* the failure, for the recipients and logs */
    struct route_target *targets;
    size_t n_targets;
};

void route_result_free(struct route_result *result);
/* For a hop with is_ip: its single target, no DNS. */
void route_result_literal(const struct route_hop *hop, struct route_result *result_r);

struct route_resolve;
/* The callback takes over result's contents (route_result_free them). */
typedef void route_resolve_cb(struct route_result *result, void *ctx);

/* Resolves a hop without is_ip. self: our hostname (loop detection). The
 * callback runs once, from the event loop, unless cancelled. */
struct route_resolve *route_resolve_start(struct dns_resolver *dns, const struct route_hop *hop,
                                          const char *self, route_random_fn *rnd, void *rnd_ctx,
                                          route_resolve_cb *cb, void *ctx);
/* Accepts NULL, sets *resolve to NULL; the callback will not run. */
void route_resolve_cancel(struct route_resolve **resolve);

#endif
