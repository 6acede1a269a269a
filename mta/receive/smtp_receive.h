/* mgsmtpd's receiving side: the MX listener (port 25: STARTTLS, local
 * recipients only, no AUTH), submission (port 465: implicit TLS, AUTH
 * required, senders checked against the user), and the local submission
 * socket mgsendmail uses. Each accepted message is in the queue, fsynced,
 * before its 250. */
#ifndef MG_MTA_SMTP_RECEIVE_H
#define MG_MTA_SMTP_RECEIVE_H

#include <uv.h>

struct mg_auth_client;
struct mg_settings;
struct mg_tls_context;
struct queue;
struct smtp_receive;

/* Binds every listener (before privileges are dropped). */
int smtp_receive_bind(uv_loop_t *loop, const struct mg_settings *settings,
                      struct smtp_receive **rx_r, char **error_r);
void smtp_receive_start(struct smtp_receive *rx, struct queue *queue, struct mg_auth_client *auth,
                        struct mg_tls_context *tls);
void smtp_receive_set_tls(struct smtp_receive *rx, struct mg_tls_context *tls);
/* Stops accepting; sessions get 421 after their current reply. */
void smtp_receive_stop(struct smtp_receive *rx);
unsigned smtp_receive_session_count(const struct smtp_receive *rx);
void smtp_receive_free(struct smtp_receive **rx);
/* The first bound port of each kind (tests use port 0). */
uint16_t smtp_receive_port(const struct smtp_receive *rx, int kind);

enum { SMTP_RX_MX, SMTP_RX_SUBMISSION, SMTP_RX_LOCAL };

#endif
