/* mgimapd's delivery listener: LMTP (RFC 2033) on a UNIX socket, and on
 * TCP with TLS when mgsmtpd runs on another host. Each recipient is
 * resolved through the auth service (aliases, catch-all, sub-addressing),
 * each message written durably to the store before its 250. */
#ifndef MG_MDA_LMTP_DELIVERY_H
#define MG_MDA_LMTP_DELIVERY_H

#include <uv.h>

struct mg_auth_client;
struct mg_settings;
struct mg_tls_context;
struct store;
struct lmtp_delivery;

/* Binds the socket (and TCP listeners) while privileged. */
int lmtp_delivery_bind(uv_loop_t *loop, const struct mg_settings *settings,
                       struct lmtp_delivery **lmtp_r, char **error_r);
/* Starts accepting. tls is needed only for TCP listeners. */
void lmtp_delivery_start(struct lmtp_delivery *lmtp, struct store *store,
                         struct mg_auth_client *auth, struct mg_tls_context *tls);
void lmtp_delivery_set_tls(struct lmtp_delivery *lmtp, struct mg_tls_context *tls);
/* Stops accepting; open sessions get 421 after their current reply. */
void lmtp_delivery_stop(struct lmtp_delivery *lmtp);
unsigned lmtp_delivery_session_count(const struct lmtp_delivery *lmtp);
void lmtp_delivery_free(struct lmtp_delivery **lmtp);

#endif
