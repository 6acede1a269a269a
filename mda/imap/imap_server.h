/* The IMAP server: listeners, per-address limits, the shared services the
 * sessions use (store, auth client, TLS context). */
#ifndef MG_MDA_IMAP_SERVER_H
#define MG_MDA_IMAP_SERVER_H

#include <stdbool.h>
#include <stdint.h>
#include <uv.h>

struct mg_auth_client;
struct mg_settings;
struct mg_tls_context;
struct store;
struct imap_server;

/* Binds the listeners of settings->imap.listen (before privileges are
 * dropped). Returns 0, or -1 with *error_r (to free). */
int imap_server_bind(uv_loop_t *loop, const struct mg_settings *settings,
                     struct imap_server **server_r, char **error_r);
/* Starts accepting. tls, store and auth are referenced, not owned. */
void imap_server_start(struct imap_server *server, struct mg_tls_context *tls,
                       struct store *store, struct mg_auth_client *auth);
/* A new TLS context for new connections (reload). */
void imap_server_set_tls(struct imap_server *server, struct mg_tls_context *tls);
/* Stops accepting and says BYE to every session. */
void imap_server_stop(struct imap_server *server);
/* Sessions still open. */
unsigned imap_server_session_count(const struct imap_server *server);
void imap_server_free(struct imap_server **server);
/* The first bound port (tests bind port 0). */
uint16_t imap_server_port(const struct imap_server *server);

#endif
