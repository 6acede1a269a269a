#include "mta/delivery/local_agent.h"

#include <stdlib.h>
#include <string.h>

#include "common/alloc.h"
#include "common/conn.h"
#include "common/endpoint.h"
#include "common/log.h"
#include "common/settings.h"
#include "lmtp/smtp_client.h"
#include "mta/delivery/client_conn.h"
#include "mta/delivery/outbound.h"
#include "mta/queue/queue.h"

/* An idle connection is kept this long for the next message. */
#define LOCAL_IDLE_MS 30000
#define LOCAL_CONNECT_TIMEOUT_MS 10000
/* After a failed connection no new one is tried for this long. */
#define LOCAL_BACKOFF_MS 1000
/* Replies take as long as an fsync of a big message may take. */
#define LOCAL_REPLY_TIMEOUT_MS (10 * 60 * 1000)

struct lmtp_link;

struct local_agent {
    struct queue_agent agent;
    uv_loop_t *loop;
    const struct mg_settings *settings;
    struct queue *queue;
    struct mg_endpoint *endpoint; /* borrowed */
    char target[300];             /* its name, for logs */
    struct mg_tls_context *tls;   /* TCP only: the cluster client context */
    struct lmtp_link *links;
    unsigned n_links;
    unsigned busy;
    uint64_t retry_after;
    uv_timer_t backoff;
    bool is_stopping;
};

enum link_state { LINK_CONNECTING, LINK_IDLE, LINK_BUSY, LINK_CLOSED };

struct lmtp_link {
    struct lmtp_link *next, *prev;
    struct local_agent *agent;
    struct client_conn cc;            /* the connection and its engine */
    enum link_state state;
    struct queue_delivery *delivery;  /* waiting or in progress */
    struct outbound ob;
    bool has_ob;
};

static void link_start(struct lmtp_link *l);

static void link_finish_delivery(struct lmtp_link *l)
{
    struct queue_delivery *d = l->delivery;
    if (d == NULL)
        return;
    l->delivery = NULL;
    if (l->has_ob) {
        outbound_free(&l->ob);
        l->has_ob = false;
    }
    l->agent->busy--;
    if (d->relay == NULL)
        d->relay = mg_asprintf("lmtp:%s", l->agent->target);
    queue_delivery_done(l->agent->queue, d);
}

static void link_remove(struct lmtp_link *l)
{
    struct local_agent *a = l->agent;
    if (l->prev != NULL)
        l->prev->next = l->next;
    else if (a->links == l)
        a->links = l->next;
    if (l->next != NULL)
        l->next->prev = l->prev;
    a->n_links--;
    free(l);
}

/* ---- engine callbacks ---- */

static void client_ready(struct smtp_client *client, const struct smtp_reply *failure,
                         const char *reason, void *ctx)
{
    (void)client;
    struct lmtp_link *l = ctx;
    if (failure != NULL || reason != NULL) {
        /* failed() follows and cleans up. */
        return;
    }
    l->state = LINK_IDLE;
    mg_conn_set_idle_timeout(l->cc.conn, LOCAL_IDLE_MS);
    if (l->delivery != NULL)
        link_start(l);
    else
        queue_kick(l->agent->queue);
}

static void client_message_done(struct smtp_client *client, struct smtp_client_message *msg,
                                const struct smtp_reply *mail_reply, void *ctx)
{
    (void)client;
    (void)msg;
    struct lmtp_link *l = ctx;
    outbound_results(&l->ob, mail_reply);
    /* Recipients without any answer (the transaction stopped early) are
     * tried again. */
    outbound_fail_all(l->delivery, 4, "4.4.2", "no answer from the mail store");
    l->state = LINK_IDLE;
    mg_conn_set_idle_timeout(l->cc.conn, LOCAL_IDLE_MS);
    link_finish_delivery(l);
    queue_kick(l->agent->queue);
}

static void client_failed(struct smtp_client *client, const char *reason, void *ctx)
{
    (void)client;
    struct lmtp_link *l = ctx;
    char rv[MG_LOG_VALUE_MAX];
    mg_log_warning("lmtp-client", "connection to the mail store failed target=%s reason=%s", l->agent->target,
                   mg_log_str(rv, reason != NULL ? reason : "unknown"));
    if (l->delivery != NULL) {
        /* Not the message's fault: back soon, not counted as an attempt. */
        outbound_fail_all(l->delivery, 0, "4.4.1", reason != NULL ? reason : "mail store unavailable");
        link_finish_delivery(l);
    }
    l->state = LINK_CLOSED;
}

static const struct smtp_client_callbacks client_cb = {
    .ready = client_ready,
    .message_done = client_message_done,
    .failed = client_failed,
};

/* ---- transport ---- */

static void link_begin(struct lmtp_link *l)
{
    struct smtp_client_settings cs = {
        .protocol = SMTP_PROTOCOL_LMTP,
        .helo_name = l->agent->settings->hostname,
        .is_tls = !l->agent->endpoint->is_unix,
    };
    l->cc.client = smtp_client_new(&cs, &client_conn_io, &l->cc, &client_cb, l);
}

static void conn_on_connect(struct mg_conn *conn, int status)
{
    struct lmtp_link *l = client_conn_owner(conn);
    struct local_agent *a = l->agent;
    if (status != 0) {
        a->retry_after = uv_now(a->loop) + LOCAL_BACKOFF_MS;
        return; /* on_close follows */
    }
    mg_conn_set_idle_timeout(conn, LOCAL_REPLY_TIMEOUT_MS);
    /* TCP: mutual TLS, and the MDA's certificate must carry the name or
     * address we connect to. */
    if (!a->endpoint->is_unix)
        mg_conn_start_tls_client(conn, a->tls, a->endpoint->host,
                                 a->settings->tls.handshake_timeout_ms);
    else
        link_begin(l);
}

static void conn_on_tls_ready(struct mg_conn *conn)
{
    link_begin(client_conn_owner(conn));
}

static void conn_on_timeout(struct mg_conn *conn)
{
    struct lmtp_link *l = client_conn_owner(conn);
    if (l->state == LINK_IDLE && l->cc.client != NULL)
        smtp_client_quit(l->cc.client);
    else
        mg_conn_abort(conn, "timeout");
}

static void conn_on_close(struct mg_conn *conn, const char *reason)
{
    struct lmtp_link *l = client_conn_owner(conn);
    client_conn_closed(&l->cc, reason != NULL ? reason : "closed");
    if (l->delivery != NULL) {
        outbound_fail_all(l->delivery, 0, "4.4.1", reason != NULL ? reason : "mail store unavailable");
        link_finish_delivery(l);
    }
    struct local_agent *a = l->agent;
    link_remove(l);
    queue_kick(a->queue);
}

static const struct mg_conn_callbacks link_conn_cb = {
    .on_read = client_conn_on_read,
    .on_drain = client_conn_on_drain,
    .on_connect = conn_on_connect,
    .on_tls_ready = conn_on_tls_ready,
    .on_timeout = conn_on_timeout,
    .on_close = conn_on_close,
};

static struct lmtp_link *link_new(struct local_agent *a)
{
    struct lmtp_link *l = mg_calloc(1, sizeof(*l));
    l->agent = a;
    l->cc.owner = l;
    l->state = LINK_CONNECTING;
    l->next = a->links;
    if (a->links != NULL)
        a->links->prev = l;
    a->links = l;
    a->n_links++;
    l->cc.conn =
        mg_endpoint_connect(a->endpoint, a->loop, LOCAL_CONNECT_TIMEOUT_MS, &link_conn_cb, &l->cc);
    return l;
}

static void link_start(struct lmtp_link *l)
{
    if (outbound_init(&l->ob, l->delivery) != 0) {
        link_finish_delivery(l);
        return;
    }
    l->has_ob = true;
    l->state = LINK_BUSY;
    mg_conn_set_idle_timeout(l->cc.conn, LOCAL_REPLY_TIMEOUT_MS);
    smtp_client_send(l->cc.client, &l->ob.msg);
}

static void backoff_cb(uv_timer_t *t)
{
    struct local_agent *a = t->data;
    queue_kick(a->queue);
}

static bool agent_deliver(struct queue_agent *qa, struct queue_delivery *d)
{
    struct local_agent *a = qa->ctx;
    if (a->is_stopping)
        return false;
    for (struct lmtp_link *l = a->links; l != NULL; l = l->next) {
        if (l->state == LINK_IDLE && l->delivery == NULL && l->cc.client != NULL) {
            l->delivery = d;
            a->busy++;
            link_start(l);
            return true;
        }
    }
    if (a->n_links >= a->settings->queue.local_concurrency)
        return false;
    uint64_t now = uv_now(a->loop);
    if (now < a->retry_after) {
        uv_timer_start(&a->backoff, backoff_cb, a->retry_after - now, 0);
        return false;
    }
    struct lmtp_link *l = link_new(a);
    l->delivery = d;
    a->busy++;
    return true;
}

struct local_agent *local_agent_new(uv_loop_t *loop, const struct mg_settings *settings,
                                    struct queue *queue, struct mg_endpoint *endpoint,
                                    struct mg_tls_context *tls)
{
    if (!endpoint->is_unix && tls == NULL)
        mg_panic("local agent: LMTP over TCP without a TLS context");
    struct local_agent *a = mg_calloc(1, sizeof(*a));
    a->loop = loop;
    a->settings = settings;
    a->queue = queue;
    a->endpoint = endpoint;
    mg_endpoint_name(endpoint, a->target, sizeof(a->target));
    a->tls = tls;
    a->agent.deliver = agent_deliver;
    a->agent.ctx = a;
    uv_timer_init(loop, &a->backoff);
    a->backoff.data = a;
    uv_unref((uv_handle_t *)&a->backoff);
    return a;
}

void local_agent_set_tls(struct local_agent *agent, struct mg_tls_context *tls)
{
    if (tls != NULL)
        agent->tls = tls;
}

struct queue_agent *local_agent_queue_agent(struct local_agent *agent)
{
    return &agent->agent;
}

void local_agent_stop(struct local_agent *agent)
{
    agent->is_stopping = true;
    uv_timer_stop(&agent->backoff);
    for (struct lmtp_link *l = agent->links; l != NULL; l = l->next) {
        if (l->state == LINK_IDLE && l->cc.client != NULL)
            smtp_client_quit(l->cc.client);
    }
}

unsigned local_agent_busy(const struct local_agent *agent)
{
    return agent->busy + agent->n_links;
}

static void agent_free_cb(uv_handle_t *h)
{
    struct local_agent *a = h->data;
    free(a);
}

void local_agent_free(struct local_agent **agent)
{
    if (*agent == NULL)
        return;
    uv_close((uv_handle_t *)&(*agent)->backoff, agent_free_cb);
    *agent = NULL;
}
