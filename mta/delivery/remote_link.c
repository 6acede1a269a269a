/* One SMTP connection of remote delivery (a "link"): connect, TLS
 * (implicit, or STARTTLS with the verification policy), the session
 * through the client engine, messages one after the other, and what a
 * failure means: the next address while the session is being set up, the
 * delivery back to its destination (or a temporary failure) when a
 * transaction is cut short. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/alloc.h"
#include "common/conn.h"
#include "common/log.h"
#include "common/settings.h"
#include "common/tls.h"
#include "lmtp/smtp_client.h"
#include "mta/delivery/client_conn.h"
#include "mta/delivery/remote_private.h"

static void link_connect(struct remote_link *l);

/* ---- links: the SMTP session ---- */

static void link_set_failure(struct remote_link *l, const char *dsn, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void link_set_failure(struct remote_link *l, const char *dsn, const char *fmt, ...)
{
    if (l->failure != NULL)
        return; /* the first reason is the real one */
    va_list ap;
    va_start(ap, fmt);
    char buf[600];
    vsnprintf(buf, sizeof(buf), fmt, ap);
    va_end(ap);
    for (char *p = buf; *p != '\0'; p++) {
        if (*p == '\n' || *p == '\r')
            *p = ' ';
    }
    l->failure = mg_strdup(buf);
    snprintf(l->failure_dsn, sizeof(l->failure_dsn), "%s", dsn);
    l->failure_dsn[0] = '4'; /* a connection's failure is never the message's */
}

static void link_log_ready(struct remote_link *l)
{
    const struct route_target *t = remote_link_target(l);
    struct mg_tls *tls = mg_conn_tls(l->cc.conn);
    char dv[MG_LOG_VALUE_MAX], hv[MG_LOG_VALUE_MAX], ev[MG_LOG_VALUE_MAX];
    mg_log_value(dv, sizeof(dv), l->dest->key, strlen(l->dest->key));
    mg_log_value(hv, sizeof(hv), t->host, strlen(t->host));
    if (tls == NULL || !mg_conn_is_tls_ready(l->cc.conn)) {
        mg_log_info("relay", "connected session=%s dest=%s host=%s addr=%s port=%u tls=no%s", l->id,
                    dv, hv, t->ip, t->port, l->is_plaintext ? " reason=\"TLS handshake failed before\"" : "");
        return;
    }
    bool ok = mg_tls_is_verified(tls);
    if (ok)
        mg_log_info("relay", "connected session=%s dest=%s host=%s addr=%s port=%u tls=%s cipher=%s verified=yes",
                    l->id, dv, hv, t->ip, t->port, mg_tls_version(tls), mg_tls_cipher(tls));
    else
        mg_log_info("relay",
                    "connected session=%s dest=%s host=%s addr=%s port=%u tls=%s cipher=%s verified=no verify_error=%s",
                    l->id, dv, hv, t->ip, t->port, mg_tls_version(tls), mg_tls_cipher(tls),
                    mg_log_str(ev, mg_tls_verify_error(tls)));
}

/* The greeting's first word is the server's name: our own means the
 * address leads back to us (a mail loop, RFC 5321 5.1). */
static bool greeting_is_ours(const struct remote_link *l)
{
    const char *g = smtp_client_greeting(l->cc.client);
    const char *self = l->dest->agent->settings->hostname;
    size_t n = strcspn(g, " \n");
    char word[DNS_NAME_MAX + 2];
    if (self == NULL || self[0] == '\0' || n == 0 || n >= sizeof(word))
        return false;
    memcpy(word, g, n);
    word[n] = '\0';
    return route_name_eq(word, self);
}

static void client_ready(struct smtp_client *client, const struct smtp_reply *failure,
                         const char *reason, void *ctx)
{
    (void)client;
    struct remote_link *l = ctx;
    if (l->dest == NULL)
        return;
    if (reason != NULL || failure != NULL) {
        /* The engine closes; on_close moves on to the next address. */
        const char *dsn = failure != NULL && failure->enhanced[0] != '\0' ? failure->enhanced : "4.4.2";
        link_set_failure(l, dsn, "%s", reason != NULL ? reason : "session setup failed");
        return;
    }
    if (greeting_is_ours(l)) {
        mg_log_warning("relay", "host greeted me with my own hostname session=%s host=%s addr=%s", l->id,
                       remote_link_target(l)->host, remote_link_target(l)->ip);
        link_set_failure(l, "4.4.6", "the server greets with our own hostname: mail loops back to myself");
        mg_conn_abort(l->cc.conn, NULL);
        return;
    }
    link_log_ready(l);
    l->state = LINK_IDLE;
    mg_conn_set_idle_timeout(l->cc.conn, REMOTE_IDLE_MS);
    remote_agent_mark_dest(l->dest);
}

static void client_message_done(struct smtp_client *client, struct smtp_client_message *msg,
                                const struct smtp_reply *mail_reply, void *ctx)
{
    (void)client;
    (void)msg; /* its results reach the delivery through l->ob */
    struct remote_link *l = ctx;
    if (l->dest == NULL || l->job == NULL)
        return; /* orphaned: remote_agent_free finished the job */
    struct remote_job *job = l->job;
    l->job = NULL;
    outbound_results(&l->ob, mail_reply);
    outbound_free(&l->ob);
    l->has_ob = false;
    l->messages++;
    l->state = LINK_IDLE;
    if (l->cc.conn != NULL)
        mg_conn_set_idle_timeout(l->cc.conn, REMOTE_IDLE_MS);
    remote_agent_finish_job(l->dest->agent, job, l->relay);
    remote_agent_mark_dest(l->dest);
}

static void client_failed(struct smtp_client *client, const char *reason, void *ctx)
{
    (void)client;
    struct remote_link *l = ctx;
    if (l->dest != NULL)
        link_set_failure(l, "4.4.2", "%s", reason != NULL ? reason : "connection failed");
}

static const struct smtp_client_callbacks client_cb = {
    .ready = client_ready,
    .message_done = client_message_done,
    .failed = client_failed,
};

/* STARTTLS accepted: the handshake, with the name of the host we meant
 * to reach. */
static void link_start_tls(void *owner)
{
    struct remote_link *l = owner;
    l->is_tls_started = true;
    const struct route_target *t = remote_link_target(l);
    mg_conn_start_tls_client(l->cc.conn, l->dest->agent->tls, t->host,
                             l->dest->agent->settings->tls.handshake_timeout_ms);
}

static void link_begin_smtp(struct remote_link *l)
{
    struct remote_agent *a = l->dest->agent;
    const struct route_hop *hop = &l->dest->hop;
    struct smtp_client_settings cs = {
        .protocol = SMTP_PROTOCOL_SMTP,
        .helo_name = a->settings->hostname,
        .use_starttls = hop->tls != ROUTE_TLS_IMPLICIT && !l->is_plaintext,
        .require_starttls = hop->tls == ROUTE_TLS_STARTTLS,
        .auth_user = hop->use_auth ? a->settings->relay.relayhost_user : NULL,
        .auth_password = hop->use_auth ? a->password : NULL,
        .is_tls = hop->tls == ROUTE_TLS_IMPLICIT,
        .log_id = l->id,
    };
    l->state = LINK_SETUP;
    l->cc.client = smtp_client_new(&cs, &client_conn_io, &l->cc, &client_cb, l);
}

static void conn_on_connect(struct mg_conn *conn, int status)
{
    struct remote_link *l = client_conn_owner(conn);
    if (l->dest == NULL)
        return;
    if (status != 0) {
        link_set_failure(l, "4.4.1", "connect failed: %s", uv_strerror(status));
        return; /* on_close follows */
    }
    mg_conn_set_idle_timeout(conn, REMOTE_REPLY_TIMEOUT_MS);
    if (l->dest->hop.tls == ROUTE_TLS_IMPLICIT) {
        l->is_tls_started = true;
        mg_conn_start_tls_client(conn, l->dest->agent->tls, remote_link_target(l)->host,
                                 l->dest->agent->settings->tls.handshake_timeout_ms);
    } else {
        link_begin_smtp(l);
    }
}

static void conn_on_tls_ready(struct mg_conn *conn)
{
    struct remote_link *l = client_conn_owner(conn);
    if (l->dest == NULL)
        return;
    struct mg_tls *tls = mg_conn_tls(conn);
    l->is_tls_done = true;
    if (l->dest->hop.require_verified && !mg_tls_is_verified(tls)) {
        /* Nothing more is said over a connection we cannot trust. */
        link_set_failure(l, "4.7.5", "TLS certificate of %s not verified: %s", remote_link_target(l)->host,
                         mg_tls_verify_error(tls));
        mg_conn_abort(conn, NULL);
        return;
    }
    if (l->cc.client == NULL)
        link_begin_smtp(l); /* implicit TLS */
    else
        smtp_client_tls_ready(l->cc.client);
}

static void conn_on_timeout(struct mg_conn *conn)
{
    struct remote_link *l = client_conn_owner(conn);
    switch (l->state) {
    case LINK_IDLE:
        if (l->cc.client != NULL) {
            l->state = LINK_QUIT;
            smtp_client_quit(l->cc.client);
            return;
        }
        break;
    case LINK_CONNECTING:
        if (l->dest != NULL)
            link_set_failure(l, "4.4.1", "connect timed out");
        break;
    case LINK_SETUP:
    case LINK_BUSY:
        if (l->dest != NULL)
            link_set_failure(l, "4.4.2", "timed out waiting for a reply");
        break;
    case LINK_QUIT:
        break;
    }
    mg_conn_abort(conn, NULL);
}

void remote_link_free(struct remote_link *l)
{
    if (l->has_ob)
        outbound_free(&l->ob);
    smtp_client_free(&l->cc.client);
    free(l->failure);
    free(l);
}

void remote_link_unlink(struct remote_link *l)
{
    struct remote_dest *dest = l->dest;
    if (l->prev != NULL)
        l->prev->next = l->next;
    else
        dest->links = l->next;
    if (l->next != NULL)
        l->next->prev = l->prev;
    dest->n_links--;
    dest->agent->n_links--;
}

/* The connection of l ended (on_close). */
static void link_closed(struct remote_link *l, const char *conn_reason)
{
    struct remote_dest *dest = l->dest;
    struct remote_agent *a = dest->agent;
    const struct route_target *t = remote_link_target(l);
    const char *why = l->failure != NULL ? l->failure
                      : conn_reason != NULL ? conn_reason
                                            : "connection closed";
    bool is_setup = l->state == LINK_CONNECTING || l->state == LINK_SETUP;
    bool is_busy = l->state == LINK_BUSY && l->job != NULL;
    char hv[MG_LOG_VALUE_MAX], wv[MG_LOG_VALUE_MAX], dv[MG_LOG_VALUE_MAX];
    mg_log_str(hv, t->host);
    mg_log_str(wv, why);
    mg_log_str(dv, dest->key);
    if (is_setup || is_busy) {
        /* A failure of this address: remembered for the batch. */
        free(dest->last_error);
        free(dest->last_relay);
        dest->last_error = mg_asprintf("%s: %s", l->relay, why);
        dest->last_relay = mg_strdup(l->relay);
        snprintf(dest->last_dsn, sizeof(dest->last_dsn), "%s",
                 l->failure != NULL ? l->failure_dsn : is_setup ? "4.4.1" : "4.4.2");
        mg_log_info("relay", "connection failed session=%s dest=%s host=%s addr=%s port=%u stage=%s reason=%s",
                    l->id, dv, hv, t->ip, t->port,
                    l->state == LINK_CONNECTING ? "connect" : is_setup ? "setup" : "transaction", wv);
    } else {
        mg_log_debug("relay", "disconnected session=%s host=%s addr=%s messages=%u", l->id, hv, t->ip,
                     l->messages);
    }
    if (is_busy) {
        struct remote_job *job = l->job;
        l->job = NULL;
        if (l->has_ob) {
            outbound_free(&l->ob);
            l->has_ob = false;
        }
        if (!l->is_data_sent && job->retries < REMOTE_JOB_RETRIES && !a->is_stopping) {
            /* Nothing was delivered: another connection may do better. */
            job->retries++;
            remote_agent_push_job(dest, job, true);
        } else {
            char *text = mg_asprintf("lost connection with %s %s: %s", l->relay,
                                     l->is_data_sent ? "after the end of data (the message may arrive twice)"
                                                     : "while sending the message",
                                     why);
            remote_agent_fail_rcpts(job->d, 4, dest->last_dsn, text);
            free(text);
            remote_agent_finish_job(a, job, l->relay);
        }
    }
    if (is_setup || is_busy)
        dest->is_dead[l->target] = true;
    /* Opportunistic TLS that failed in the handshake: the same address
     * again in plaintext, as encryption was never promised. */
    bool tls_broke = is_setup && l->is_tls_started && !l->is_tls_done;
    if (tls_broke && dest->hop.tls == ROUTE_TLS_MAY && !dest->hop.require_verified && !l->is_plaintext &&
        !a->is_stopping) {
        mg_log_info("relay", "TLS handshake failed, trying without TLS session=%s host=%s addr=%s", l->id, hv,
                    t->ip);
        dest->is_dead[l->target] = false;
        l->is_plaintext = true;
        link_connect(l);
        return;
    }
    size_t next;
    if (is_setup && !a->is_stopping && remote_agent_next_target(dest, l->target + 1, &next)) {
        l->target = next;
        l->is_plaintext = false;
        link_connect(l);
        return;
    }
    remote_link_unlink(l);
    remote_link_free(l);
    remote_agent_mark_dest(dest);
    remote_agent_capacity_freed(a);
}

static void conn_on_close(struct mg_conn *conn, const char *reason)
{
    struct remote_link *l = client_conn_owner(conn);
    client_conn_closed(&l->cc, reason != NULL ? reason : "connection closed");
    if (l->dest == NULL) {
        remote_link_free(l); /* orphaned by remote_agent_free */
        return;
    }
    link_closed(l, reason);
}

static const struct mg_conn_callbacks link_conn_cb = {
    .on_read = client_conn_on_read,
    .on_drain = client_conn_on_drain,
    .on_connect = conn_on_connect,
    .on_tls_ready = conn_on_tls_ready,
    .on_timeout = conn_on_timeout,
    .on_close = conn_on_close,
};

/* (Re)connects l to its target. */
static void link_connect(struct remote_link *l)
{
    struct remote_agent *a = l->dest->agent;
    const struct route_target *t = remote_link_target(l);
    free(l->failure);
    l->failure = NULL;
    l->is_tls_started = false;
    l->is_tls_done = false;
    l->state = LINK_CONNECTING;
    snprintf(l->id, sizeof(l->id), "R%llu", (unsigned long long)++a->link_serial);
    snprintf(l->relay, sizeof(l->relay), "%s[%s]:%u", t->host, t->ip, t->port);
    l->cc.conn = mg_conn_connect_tcp(a->loop, (const struct sockaddr *)&t->addr,
                                  a->settings->relay.connect_timeout_ms, &link_conn_cb, &l->cc);
}

struct remote_link *remote_link_new(struct remote_dest *dest, size_t target)
{
    struct remote_link *l = mg_calloc(1, sizeof(*l));
    l->dest = dest;
    l->cc.owner = l;
    l->cc.start_tls = link_start_tls;
    l->target = target;
    l->next = dest->links;
    if (dest->links != NULL)
        dest->links->prev = l;
    dest->links = l;
    dest->n_links++;
    dest->agent->n_links++;
    link_connect(l);
    return l;
}

/* Notes when the content has all gone out: from then on a lost
 * connection may have delivered the message. */
static long link_read_content(void *source, struct mg_buf *out, size_t max)
{
    struct remote_link *l = source;
    long n = l->read_content(&l->ob, out, max);
    if (n == 0) {
        l->is_data_sent = true;
        if (l->cc.conn != NULL)
            mg_conn_set_idle_timeout(l->cc.conn, REMOTE_DATA_END_TIMEOUT_MS);
    }
    return n;
}

void remote_link_start(struct remote_link *l, struct remote_job *job)
{
    struct remote_agent *a = l->dest->agent;
    l->job = job;
    if (outbound_init(&l->ob, job->d) != 0) {
        l->job = NULL;
        remote_agent_finish_job(a, job, NULL);
        remote_agent_mark_dest(l->dest);
        return;
    }
    l->has_ob = true;
    l->read_content = l->ob.msg.read_content;
    l->ob.msg.read_content = link_read_content;
    l->ob.msg.source = l;
    l->is_data_sent = false;
    l->state = LINK_BUSY;
    mg_conn_set_idle_timeout(l->cc.conn, REMOTE_REPLY_TIMEOUT_MS);
    smtp_client_send(l->cc.client, &l->ob.msg);
}

