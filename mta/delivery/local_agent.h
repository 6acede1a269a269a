/* Local delivery: LMTP to mgimapd over its UNIX socket (or TCP with TLS
 * when the MDA has its own host), with a bounded pool of connections that
 * are reused for message after message. A recipient's LMTP answer is its
 * result; an MDA that cannot be reached leaves the mail queued and tried
 * again within seconds, without counting as an attempt. */
#ifndef MG_MTA_LOCAL_AGENT_H
#define MG_MTA_LOCAL_AGENT_H

#include <stdint.h>
#include <uv.h>

struct mg_endpoint;
struct mg_settings;
struct mg_tls_context;
struct queue;
struct queue_agent;
struct local_agent;

/* endpoint: the MDA's LMTP socket or host:port (borrowed; it outlives
 * the agent). tls: for TCP, the cluster client context (borrowed). */
struct local_agent *local_agent_new(uv_loop_t *loop, const struct mg_settings *settings,
                                    struct queue *queue, struct mg_endpoint *endpoint,
                                    struct mg_tls_context *tls);
/* New connections use tls (after a reload); the caller keeps the old
 * context alive while connections may use it. NULL: unchanged. */
void local_agent_set_tls(struct local_agent *agent, struct mg_tls_context *tls);
struct queue_agent *local_agent_queue_agent(struct local_agent *agent);
/* Closes idle connections and refuses new work. */
void local_agent_stop(struct local_agent *agent);
unsigned local_agent_busy(const struct local_agent *agent);
void local_agent_free(struct local_agent **agent);

#endif
