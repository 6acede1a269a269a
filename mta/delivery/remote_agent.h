/* Remote delivery: SMTP to other MTAs. For each destination domain the
 * next hop comes from [relay] transport, or [relay] relayhost, or the
 * domain's MX records (c-ares; A/AAAA fallback per RFC 5321 5.1; null MX
 * per RFC 7505), tried in preference order. Opportunistic STARTTLS (or
 * required, per [relay] tls_verify), PIPELINING, and several messages for
 * the same destination on one connection. */
#ifndef MG_MTA_REMOTE_AGENT_H
#define MG_MTA_REMOTE_AGENT_H

#include <uv.h>

struct mg_settings;
struct queue;
struct queue_agent;
struct remote_agent;

/* NULL with *error_r (to free) for a configuration it cannot use (a bad
 * transport map, an unreadable relayhost password file). */
struct remote_agent *remote_agent_new(uv_loop_t *loop, const struct mg_settings *settings,
                                      struct queue *queue, char **error_r);
struct queue_agent *remote_agent_queue_agent(struct remote_agent *agent);
/* Finishes what is in flight, starts nothing new. */
void remote_agent_stop(struct remote_agent *agent);
/* Deliveries in flight, plus connections still open (a graceful stop
 * waits for their QUIT too). */
unsigned remote_agent_busy(const struct remote_agent *agent);
void remote_agent_free(struct remote_agent **agent);

#endif
