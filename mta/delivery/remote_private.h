/* Internals of remote delivery shared by remote_agent.c (destinations,
 * the pump, the queue interface) and remote_link.c (one SMTP connection). */
#ifndef MG_MTA_REMOTE_PRIVATE_H
#define MG_MTA_REMOTE_PRIVATE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "mta/delivery/client_conn.h"
#include "mta/delivery/dns.h"
#include "mta/delivery/outbound.h"
#include "mta/delivery/route.h"
#include "mta/queue/queue.h"

struct mg_conn;
struct mg_settings;
struct mg_strmap;
struct mg_tls_context;
struct smtp_client;

/* An idle connection waits this long for the next message, then QUITs. */
#define REMOTE_IDLE_MS 5000
/* RFC 5321 4.5.3.2: at least 5 minutes for the greeting and each command,
 * 10 for the reply to the end of data. */
#define REMOTE_REPLY_TIMEOUT_MS (5 * 60 * 1000)
#define REMOTE_DATA_END_TIMEOUT_MS (10 * 60 * 1000)
/* DNS: per try (doubled on the second), two tries. */
#define REMOTE_DNS_TIMEOUT_MS 5000
#define REMOTE_DNS_TRIES 2
/* A transaction cut short before its end of data is tried again on
 * another connection at most this often within one batch. */
#define REMOTE_JOB_RETRIES 2
/* Deliveries waiting in the agent, in total (memory bound). */
#define REMOTE_WAITING_MAX 10000
/* The relayhost password file: its first line, at most this long. */
#define REMOTE_PASSWORD_MAX 1024

struct remote_dest;
struct remote_link;

/* A delivery the queue handed us. */
struct remote_job {
    struct remote_job *next;
    struct queue_delivery *d;
    unsigned retries;
};

struct remote_agent {
    struct queue_agent agent;
    uv_loop_t *loop;
    const struct mg_settings *settings;
    struct queue *queue;
    struct route_table *routes;
    struct dns_resolver *dns;
    struct mg_tls_context *tls;
    char *password;                 /* relayhost AUTH; wiped when freed */
    struct mg_strmap *dests_by_key;
    struct remote_dest *dests;
    struct remote_dest *dirty;      /* destinations for the pump */
    uv_timer_t pump;
    unsigned n_links;               /* connections, every destination */
    unsigned busy;                  /* deliveries taken and not done */
    unsigned waiting;               /* of those, not on a connection yet */
    uint64_t link_serial;
    bool is_stopping;
};

enum dest_state {
    DEST_NEW,        /* the next hop is not resolved yet */
    DEST_RESOLVING,
    DEST_READY,      /* targets known */
    DEST_FAILED,     /* the next hop failed: every delivery gets route */
};

struct remote_dest {
    struct remote_dest *next, *prev;
    struct remote_dest *next_dirty;
    bool is_dirty;
    struct remote_agent *agent;
    char *key;
    char *domain;                   /* of the first delivery, for logs */
    char *name;                     /* hop.name, owned */
    struct route_hop hop;
    enum dest_state state;
    struct route_resolve *resolving;
    struct route_result route;      /* targets, or the failure */
    bool *is_dead;                  /* per target */
    struct remote_job *waiting, *waiting_tail;
    unsigned n_waiting;
    struct remote_link *links;
    unsigned n_links;
    char *last_error;               /* "host[ip]:port: reason" of the last failed attempt */
    char *last_relay;
    char last_dsn[16];
};

enum link_state {
    LINK_CONNECTING, /* TCP connect, and the handshake for implicit TLS */
    LINK_SETUP,      /* greeting, EHLO, STARTTLS, AUTH */
    LINK_IDLE,
    LINK_BUSY,       /* a transaction */
    LINK_QUIT,
};

struct remote_link {
    struct remote_link *next, *prev;
    struct remote_dest *dest;       /* NULL once orphaned by remote_agent_free */
    struct client_conn cc;          /* the connection and its engine */
    enum link_state state;
    size_t target;
    bool is_plaintext;              /* again without STARTTLS after a failed handshake */
    bool is_tls_started;
    bool is_tls_done;               /* the handshake completed (verified or not) */
    char *failure;                  /* why the connection ends, when we know better than conn */
    char failure_dsn[16];
    struct remote_job *job;
    struct outbound ob;
    bool has_ob;
    bool is_data_sent;              /* the content's end went out: "." */
    long (*read_content)(void *source, struct mg_buf *out, size_t max);
    unsigned messages;
    char id[24];
    char relay[DNS_NAME_MAX + 64];  /* "host[ip]:port" */
};

static inline const struct route_target *remote_link_target(const struct remote_link *l)
{
    return &l->dest->route.targets[l->target];
}

/* remote_agent.c */

/* Looks at dest again on the next loop iteration (the pump). */
void remote_agent_mark_dest(struct remote_dest *dest);
/* Queues job on dest (at the front: it was interrupted). */
void remote_agent_push_job(struct remote_dest *dest, struct remote_job *job, bool at_front);
/* The first live target at or after from. */
bool remote_agent_next_target(const struct remote_dest *dest, size_t from, size_t *target_r);
/* Gives recipients of d that have no result yet (result 0 without a
 * text) this one. */
void remote_agent_fail_rcpts(struct queue_delivery *d, int result, const char *dsn, const char *text);
/* The delivery is done (recipients without a result get a temporary
 * one); hands it back to the queue and frees job. */
void remote_agent_finish_job(struct remote_agent *a, struct remote_job *job, const char *relay);
/* A connection went away: its capacity may serve anyone waiting. */
void remote_agent_capacity_freed(struct remote_agent *a);

/* remote_link.c */

/* A new connection of dest to its target. */
struct remote_link *remote_link_new(struct remote_dest *dest, size_t target);
/* Sends job's message on an idle link. */
void remote_link_start(struct remote_link *l, struct remote_job *job);
/* Takes l out of its destination's list and the counts. */
void remote_link_unlink(struct remote_link *l);
void remote_link_free(struct remote_link *l);

#endif
