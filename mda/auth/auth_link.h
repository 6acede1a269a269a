/* The auth service for MTAs on other hosts: a TCP listener ([auth]
 * listen) that accepts only mutual-TLS peers with a certificate of the
 * cluster CA and passes their bytes to mgauthd's UNIX socket and back.
 *
 * mgimapd runs it, not mgauthd: the process that can read password hashes
 * never parses TLS or talks to the network, and a peer that fails the
 * handshake never reaches it. The bytes are not interpreted here; mgauthd
 * reads them exactly as it reads a local client's. */
#ifndef MG_MDA_AUTH_LINK_H
#define MG_MDA_AUTH_LINK_H

#include <stddef.h>
#include <uv.h>

struct mg_settings;
struct mg_tls_context;
struct auth_link;

/* Binds the [auth] listen addresses (before privileges are dropped).
 * With none configured, *link_r is NULL and nothing else is needed.
 * Returns 0, or -1 with a reason (to free). */
int auth_link_bind(uv_loop_t *loop, const struct mg_settings *settings,
                   struct auth_link **link_r, char **error_r);
/* Starts accepting. tls: the cluster server context (client certificates
 * required), borrowed; auth_socket: mgauthd's socket. */
void auth_link_start(struct auth_link *link, struct mg_tls_context *tls, const char *auth_socket);
/* New connections use tls (after a certificate reload). */
void auth_link_set_tls(struct auth_link *link, struct mg_tls_context *tls);
/* Closes the listeners and every connection. */
void auth_link_stop(struct auth_link *link);
size_t auth_link_session_count(const struct auth_link *link);
/* After stop, once the loop ran the close callbacks; accepts NULL. */
void auth_link_free(struct auth_link **link);

#endif
