/* Client of the auth service (mgauthd), used by mgimapd (IMAP logins,
 * LMTP recipients) and mgsmtpd (SMTP AUTH, RCPT checks). The protocol is
 * in docs/auth-protocol.md.
 *
 * Asynchronous on a libuv loop: one connection (UNIX socket, or TCP with
 * TLS once the MDA has its own host), many requests in flight, answers
 * matched by request id. The connection is made on first use and again
 * after a failure, with backoff; a request that cannot be sent or answered
 * within the timeout completes with MG_AUTH_TEMPFAIL (the protocols then
 * answer "try again later"), never hangs. A service that cannot be
 * reached gets a second (a restart) before the requests waiting for it
 * fail; after that, new requests fail at once until it is back.
 *
 * Every request completes exactly once through its callback (on the
 * loop, never inside the call that made it), unless cancelled first. */
#ifndef MG_COMMON_AUTH_CLIENT_H
#define MG_COMMON_AUTH_CLIENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

struct mg_auth_client;
struct mg_auth_request;
struct mg_endpoint;
struct mg_tls_context;

enum mg_auth_status {
    MG_AUTH_OK,
    MG_AUTH_FAIL,       /* wrong credentials, unknown or disabled user */
    MG_AUTH_TEMPFAIL,   /* service unreachable, timeout, storage error */
    MG_AUTH_NOT_FOUND,  /* resolve: no such recipient in a local domain */
    MG_AUTH_NOT_LOCAL,  /* resolve: the domain is not ours */
};

struct mg_auth_client_settings {
    /* The service's socket, or host:port (common/endpoint.h); borrowed:
     * it must outlive the client. */
    const struct mg_endpoint *endpoint;
    /* Required for TCP: the cluster client context (our certificate, the
     * private CA to verify the server); borrowed. Unused for sockets. */
    struct mg_tls_context *tls;
    uint64_t timeout_ms;  /* per request; 0: 10 s */
    const char *client_name; /* "mgimapd", "mgsmtpd": in the server's logs */
};

struct mg_auth_client *mg_auth_client_new(uv_loop_t *loop,
                                          const struct mg_auth_client_settings *settings);
/* Connections from now on use tls (after a certificate reload; the
 * caller keeps the old context alive while connections may use it). */
void mg_auth_client_set_tls(struct mg_auth_client *client, struct mg_tls_context *tls);
/* Completes pending requests with MG_AUTH_TEMPFAIL, closes, frees once
 * the loop has run the close callbacks. Accepts NULL; sets *client NULL. */
void mg_auth_client_free(struct mg_auth_client **client);

/* Password check. service: "imap", "smtp"; remote_ip for the service's
 * failure accounting and logs. On MG_AUTH_OK, user is the canonical
 * address (lower-cased) and quota_bytes its quota (0: none). reason is a
 * short text for logs (never the password). */
struct mg_auth_verify_result {
    enum mg_auth_status status;
    const char *user;
    uint64_t quota_bytes;
    const char *reason;
};
typedef void mg_auth_verify_cb(const struct mg_auth_verify_result *result, void *ctx);
struct mg_auth_request *mg_auth_verify(struct mg_auth_client *client, const char *authzid,
                                       const char *authcid, const char *password,
                                       const char *service, const char *remote_ip,
                                       mg_auth_verify_cb *cb, void *ctx);

/* Recipient resolution: the final targets of an address (aliases,
 * catch-all and sub-addressing applied). */
struct mg_auth_target {
    const char *address;
    bool is_local;
    bool is_enabled;
    uint64_t quota_bytes;
};
struct mg_auth_resolve_result {
    enum mg_auth_status status;
    const struct mg_auth_target *targets;
    size_t count;
    const char *reason;
};
typedef void mg_auth_resolve_cb(const struct mg_auth_resolve_result *result, void *ctx);
struct mg_auth_request *mg_auth_resolve(struct mg_auth_client *client, const char *address,
                                        mg_auth_resolve_cb *cb, void *ctx);

/* Whether a domain is local: status MG_AUTH_OK (local) or MG_AUTH_NOT_LOCAL. */
typedef void mg_auth_domain_cb(enum mg_auth_status status, void *ctx);
struct mg_auth_request *mg_auth_domain(struct mg_auth_client *client, const char *domain,
                                       mg_auth_domain_cb *cb, void *ctx);

/* The request's callback will not be called. Accepts NULL; sets *req to
 * NULL. Only valid before the callback ran. */
void mg_auth_cancel(struct mg_auth_request **req);

#endif
