#include "mta/receive/smtp_receive.h"

#include <errno.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>

#include "common/alloc.h"
#include "common/ascii.h"
#include "common/auth_client.h"
#include "common/buf.h"
#include "common/conn.h"
#include "common/datetime.h"
#include "common/ip_limiter.h"
#include "common/listener.h"
#include "common/log.h"
#include "common/resolve_cache.h"
#include "common/settings.h"
#include "common/tls.h"
#include "common/unique_id.h"
#include "lmtp/smtp_server.h"
#include "mta/queue/queue.h"

#define RX_LISTENERS_MAX 32
/* The header is held back (to add Message-ID and Date on submission) up
 * to this size; a longer header is passed on as it is. */
#define RX_HEADER_HOLD_MAX (256 * 1024)
#define RX_AUTH_FAILURE_WINDOW_MS (10 * 60 * 1000)
/* Recipients resolved in the last seconds are not asked for again
 * (common/resolve_cache.h): mail for a busy mailbox comes in bursts. */
#define RX_RCPT_CACHE_MS 5000
#define RX_RCPT_CACHE_MAX 10000

struct rx_session;

struct smtp_receive {
    uv_loop_t *loop;
    const struct mg_settings *settings;
    struct queue *queue;
    struct mg_auth_client *auth;
    struct mg_resolve_cache *rcpt_cache;
    struct mg_tls_context *tls;
    struct mg_listener listeners[RX_LISTENERS_MAX];
    int kinds[RX_LISTENERS_MAX];
    size_t n_listeners;
    struct smtp_server_settings engine[3];
    struct mg_ip_limiter *limiter;
    struct rx_session *sessions;
    unsigned n_sessions;
    bool is_stopping;
};

struct rx_session {
    struct rx_session *next, *prev;
    struct smtp_receive *rx;
    int kind;
    struct mg_conn *conn;
    struct smtp_server *smtp;
    int refcount;
    bool is_output_held;    /* conn corked while an answer is pending */
    char id[MG_SESSION_ID_LEN + 1];
    char ip[64];
    char *auth_user;
    unsigned auth_failures;
    uv_timer_t *delay_timer;
    struct smtp_server_reply *delayed_reply;
    const char *refusal;
    char local_user[64];    /* submit socket: the peer's user */
};

struct rx_target {
    char route;
    char *address;
};

struct rx_rcpt {
    struct rx_session *s;
    struct smtp_server_reply *reply;
    struct smtp_rcpt *rcpt;
    struct mg_auth_request *req;
    struct rx_target *targets;
    size_t n_targets;
    /* A bare "postmaster": the domain (a suffix of the host name) asked
     * about now; NULL for any other address. */
    const char *postmaster_domain;
};

struct rx_tx {
    struct rx_session *s;
    struct queue_new *qn;
    struct smtp_server_reply *from_reply;
    struct mg_auth_request *from_req;
    struct mg_buf held;         /* header bytes not yet written */
    bool is_header_done;
    bool add_headers;           /* submission: add Message-ID, Date */
    bool is_committing;
    char id[MG_UNIQUE_ID_LEN + 1];
};

/* Every answer that comes back later (the auth service's, a delay timer)
 * holds a reference: the client may be gone by then (s->smtp is NULL),
 * and the answer must still be given, to the then inert reply handle,
 * which frees it. */
static void session_ref(struct rx_session *s)
{
    s->refcount++;
}

static void session_unref(struct rx_session *s)
{
    if (--s->refcount > 0)
        return;
    struct smtp_receive *rx = s->rx;
    if (s->prev != NULL)
        s->prev->next = s->next;
    else if (rx->sessions == s)
        rx->sessions = s->next;
    if (s->next != NULL)
        s->next->prev = s->prev;
    rx->n_sessions--;
    free(s->auth_user);
    free(s);
}

static const char *kind_name(int kind)
{
    return kind == SMTP_RX_MX ? "smtp" : kind == SMTP_RX_SUBMISSION ? "submission" : "local";
}

/* ---- AUTH (submission) ---- */

struct auth_ctx {
    struct rx_session *s;
    struct smtp_server_reply *reply;
    char user[256];
};

static void delay_closed(uv_handle_t *h)
{
    free(h);
}

static void auth_fail_now(struct rx_session *s, struct smtp_server_reply *reply)
{
    smtp_server_auth_reply(reply, false, NULL);
    if (s->auth_failures >= s->rx->settings->submission.max_auth_failures && s->conn != NULL) {
        mg_log_notice("submission", "too many failed logins session=%s remote=%s", s->id, s->ip);
        mg_conn_close(s->conn);
    }
}

static void delay_cb(uv_timer_t *t)
{
    struct rx_session *s = t->data;
    uv_close((uv_handle_t *)t, delay_closed);
    s->delay_timer = NULL;
    struct smtp_server_reply *reply = s->delayed_reply;
    s->delayed_reply = NULL;
    auth_fail_now(s, reply);
    session_unref(s);
}

static void auth_verified(const struct mg_auth_verify_result *res, void *ctx)
{
    struct auth_ctx *ac = ctx;
    struct rx_session *s = ac->s;
    char uv[MG_LOG_VALUE_MAX];
    if (s->smtp == NULL) {
        /* The client left meanwhile: a wrong password still counts. */
        if (res->status == MG_AUTH_FAIL)
            mg_ip_limiter_fail(s->rx->limiter, s->ip, mg_datetime_monotonic_ms());
        smtp_server_auth_reply(ac->reply, false, NULL);
    } else if (res->status == MG_AUTH_OK) {
        free(s->auth_user);
        s->auth_user = mg_strdup(res->user);
        mg_log_info("submission", "login session=%s user=%s remote=%s", s->id, mg_log_str(uv, res->user), s->ip);
        smtp_server_auth_reply(ac->reply, true, res->user);
    } else if (res->status == MG_AUTH_TEMPFAIL) {
        mg_log_warning("submission", "login failed temporarily session=%s remote=%s reason=%s", s->id, s->ip,
                       res->reason != NULL ? res->reason : "");
        smtp_server_reply_send(ac->reply, 454, "4.7.0", "Temporary authentication failure");
    } else {
        s->auth_failures++;
        mg_ip_limiter_fail(s->rx->limiter, s->ip, mg_datetime_monotonic_ms());
        mg_log_notice("submission", "login failed session=%s user=%s remote=%s reason=%s", s->id,
                      mg_log_str(uv, ac->user), s->ip, res->reason != NULL ? res->reason : "");
        uint64_t delay = s->rx->settings->submission.auth_failure_delay_ms;
        if (delay == 0 || s->conn == NULL) {
            auth_fail_now(s, ac->reply);
        } else {
            s->delay_timer = mg_malloc(sizeof(*s->delay_timer));
            uv_timer_init(s->rx->loop, s->delay_timer);
            s->delay_timer->data = s;
            s->delayed_reply = ac->reply;
            session_ref(s);
            uv_timer_start(s->delay_timer, delay_cb, delay, 0);
        }
    }
    free(ac);
    session_unref(s);
}

static void hook_auth(struct smtp_server *server, struct smtp_server_reply *reply,
                      const char *authzid, const char *authcid, const char *password, void *ctx)
{
    (void)server;
    struct rx_session *s = ctx;
    if (s->kind != SMTP_RX_SUBMISSION) {
        smtp_server_reply_send(reply, 503, "5.5.1", "AUTH not available");
        return;
    }
    if (mg_ip_limiter_failures(s->rx->limiter, s->ip, mg_datetime_monotonic_ms()) >=
        s->rx->settings->imap.max_auth_failures_per_ip) {
        smtp_server_reply_send(reply, 454, "4.7.0", "Too many failed logins from your address, try later");
        return;
    }
    struct auth_ctx *ac = mg_calloc(1, sizeof(*ac));
    ac->s = s;
    ac->reply = reply;
    snprintf(ac->user, sizeof(ac->user), "%s", authcid);
    session_ref(s);
    mg_auth_verify(s->rx->auth, authzid, authcid, password, "smtp", s->ip, auth_verified, ac);
}

/* ---- MAIL FROM ---- */

static void tx_data_free(struct rx_tx *t)
{
    if (t == NULL)
        return;
    if (t->from_req != NULL) {
        /* The session is being freed while the sender check runs (no
         * command is read while it does): the reply handle is inert and
         * is freed by its answer. */
        mg_auth_cancel(&t->from_req);
        smtp_server_reply_send(t->from_reply, 421, "4.3.2", "Session closed");
        t->from_reply = NULL;
    }
    queue_new_abort(&t->qn);
    mg_buf_free(&t->held);
    free(t);
}

static bool owns_address(const char *user, const char *address, const char *delimiters)
{
    if (mg_ascii_strcasecmp(user, address) == 0)
        return true;
    /* user+tag@domain is the user's. */
    const char *at = strrchr(address, '@');
    const char *uat = strrchr(user, '@');
    if (at == NULL || uat == NULL || mg_ascii_strcasecmp(at, uat) != 0)
        return false;
    size_t ulen = (size_t)(uat - user);
    size_t alen = (size_t)(at - address);
    return alen > ulen && strncasecmp(address, user, ulen) == 0 &&
           strchr(delimiters, address[ulen]) != NULL;
}

static void sender_resolved(const struct mg_auth_resolve_result *res, void *ctx)
{
    struct rx_tx *t = ctx;
    struct rx_session *s = t->s;
    t->from_req = NULL;
    struct smtp_server_reply *reply = t->from_reply;
    t->from_reply = NULL;
    if (res->status == MG_AUTH_TEMPFAIL) {
        smtp_server_reply_send(reply, 451, "4.3.0", "Temporary lookup failure, try again later");
        return;
    }
    /* An alias the user is a target of is the user's to send from. */
    for (size_t i = 0; res->status == MG_AUTH_OK && i < res->count; i++) {
        if (res->targets[i].is_local && mg_ascii_strcasecmp(res->targets[i].address, s->auth_user) == 0) {
            smtp_server_reply_send(reply, 250, "2.1.0", "Ok");
            return;
        }
    }
    mg_log_notice("submission", "sender refused session=%s user=%s", s->id, s->auth_user);
    smtp_server_reply_send(reply, 553, "5.7.1", "Sender address rejected: not owned by user");
}

static void hook_mail_from(struct smtp_server *server, struct smtp_server_reply *reply,
                           struct smtp_tx *tx, void *ctx)
{
    (void)server;
    struct rx_session *s = ctx;
    struct rx_tx *t = mg_calloc(1, sizeof(*t));
    t->s = s;
    t->add_headers = s->kind != SMTP_RX_MX;
    tx->data = t;
    if (s->kind != SMTP_RX_SUBMISSION) {
        smtp_server_reply_send(reply, 250, "2.1.0", "Ok");
        return;
    }
    if (tx->mail_from[0] == '\0') {
        smtp_server_reply_send(reply, 553, "5.7.1", "Sender address rejected: not owned by user");
        return;
    }
    if (owns_address(s->auth_user, tx->mail_from, s->rx->settings->userdb.recipient_delimiter)) {
        smtp_server_reply_send(reply, 250, "2.1.0", "Ok");
        return;
    }
    t->from_reply = reply;
    t->from_req = mg_auth_resolve(s->rx->auth, tx->mail_from, sender_resolved, t);
}

/* ---- RCPT TO ---- */

static void rcpt_data_free(struct rx_rcpt *r)
{
    if (r == NULL)
        return;
    if (r->req != NULL) {
        mg_auth_cancel(&r->req);
        session_unref(r->s);
    }
    for (size_t i = 0; i < r->n_targets; i++)
        free(r->targets[i].address);
    free(r->targets);
    free(r);
}

static void rcpt_add_target(struct rx_rcpt *r, char route, const char *address)
{
    r->targets = mg_reallocarray(r->targets, r->n_targets + 1, sizeof(*r->targets));
    r->targets[r->n_targets].route = route;
    r->targets[r->n_targets].address = mg_strdup(address);
    r->n_targets++;
}

/* The engine hands r back through hook_rcpt_free once the answer is
 * out: r is gone when this returns. */
static void rcpt_refuse(struct rx_rcpt *r, unsigned code, const char *enh, const char *text)
{
    smtp_server_reply_send(r->reply, code, enh, text);
}

static void rcpt_resolved(const struct mg_auth_resolve_result *res, void *ctx);

/* The domain one label up, if it still has a dot: "mail.example.com" gives
 * "example.com", which gives NULL. */
static const char *parent_domain(const char *domain)
{
    const char *dot = strchr(domain, '.');
    return dot != NULL && strchr(dot + 1, '.') != NULL ? dot + 1 : NULL;
}

/* Asks about a recipient; the session is held until rcpt_resolved. */
static void rcpt_resolve(struct rx_rcpt *r, const char *address)
{
    session_ref(r->s);
    r->req = mg_auth_resolve(r->s->rx->auth, address, rcpt_resolved, r);
}

static void rcpt_resolve_postmaster(struct rx_rcpt *r)
{
    char pm[300];
    snprintf(pm, sizeof(pm), "postmaster@%s", r->postmaster_domain);
    rcpt_resolve(r, pm);
}

static void rcpt_check(struct rx_rcpt *r, const struct mg_auth_resolve_result *res);

static void rcpt_resolved(const struct mg_auth_resolve_result *res, void *ctx)
{
    struct rx_rcpt *r = ctx;
    struct rx_session *s = r->s;
    r->req = NULL;
    if (s->smtp == NULL)
        rcpt_refuse(r, 421, "4.3.2", "Session closed"); /* to the inert reply: frees both */
    else
        rcpt_check(r, res);
    session_unref(s);
}

static void rcpt_check(struct rx_rcpt *r, const struct mg_auth_resolve_result *res)
{
    struct rx_session *s = r->s;
    char av[MG_LOG_VALUE_MAX];
    switch (res->status) {
    case MG_AUTH_OK:
        break;
    case MG_AUTH_NOT_LOCAL:
        if (r->postmaster_domain != NULL) {
            /* RFC 5321 4.5.1: "postmaster" is ours, never relayed. The host
             * name is often a name in the mail domain (mail.example.com):
             * walk up to the first domain that is local. */
            r->postmaster_domain = parent_domain(r->postmaster_domain);
            if (r->postmaster_domain != NULL) {
                rcpt_resolve_postmaster(r);
                return;
            }
            rcpt_refuse(r, 550, "5.1.1", "User unknown");
            return;
        }
        if (s->kind == SMTP_RX_MX) {
            mg_log_notice("smtp", "relay denied session=%s remote=%s to=%s", s->id, s->ip,
                          mg_log_str(av, r->rcpt->address));
            rcpt_refuse(r, 554, "5.7.1", "Relay access denied");
            return;
        }
        rcpt_add_target(r, QUEUE_ROUTE_REMOTE, r->rcpt->address);
        smtp_server_reply_send(r->reply, 250, "2.1.5", "Ok");
        return;
    case MG_AUTH_TEMPFAIL:
        rcpt_refuse(r, 451, "4.3.0", "Temporary lookup failure, try again later");
        return;
    default:
        mg_log_info(kind_name(s->kind), "unknown recipient session=%s remote=%s to=%s", s->id, s->ip,
                    mg_log_str(av, r->rcpt->address));
        rcpt_refuse(r, 550, "5.1.1", "User unknown");
        return;
    }
    size_t local = 0, disabled = 0;
    for (size_t i = 0; i < res->count; i++) {
        const struct mg_auth_target *tg = &res->targets[i];
        if (tg->is_local) {
            local++;
            if (!tg->is_enabled) {
                disabled++;
                continue;
            }
            rcpt_add_target(r, QUEUE_ROUTE_LOCAL, tg->address);
        } else {
            rcpt_add_target(r, QUEUE_ROUTE_REMOTE, tg->address);
        }
    }
    if (r->n_targets == 0) {
        if (local > 0 && disabled == local)
            rcpt_refuse(r, 550, "5.2.1", "Mailbox disabled");
        else
            rcpt_refuse(r, 550, "5.1.1", "User unknown");
        return;
    }
    /* res answers the address itself unless a bare postmaster was asked
     * about (under another name). */
    if (r->postmaster_domain == NULL)
        mg_resolve_cache_put(s->rx->rcpt_cache, uv_now(s->rx->loop), r->rcpt->address, res);
    smtp_server_reply_send(r->reply, 250, "2.1.5", "Ok");
}

static void hook_rcpt_to(struct smtp_server *server, struct smtp_server_reply *reply,
                         struct smtp_tx *tx, struct smtp_rcpt *rcpt, void *ctx)
{
    (void)server;
    (void)tx;
    struct rx_session *s = ctx;
    struct rx_rcpt *r = mg_calloc(1, sizeof(*r));
    r->s = s;
    r->reply = reply;
    r->rcpt = rcpt;
    rcpt->data = r;
    /* RFC 5321 4.5.1: "postmaster" without a domain must be accepted (the
     * parser takes no other address without one). */
    if (strchr(rcpt->address, '@') == NULL) {
        r->postmaster_domain = s->rx->settings->hostname;
        rcpt_resolve_postmaster(r);
        return;
    }
    struct mg_auth_resolve_result cached;
    if (mg_resolve_cache_get(s->rx->rcpt_cache, uv_now(s->rx->loop), rcpt->address, &cached)) {
        rcpt_check(r, &cached);
        return;
    }
    rcpt_resolve(r, rcpt->address);
}

/* ---- DATA ---- */

static void write_received(struct rx_session *s, struct smtp_tx *tx, struct rx_tx *t, struct mg_buf *out)
{
    const struct mg_settings *set = s->rx->settings;
    const char *helo = smtp_server_helo(s->smtp);
    struct mg_tls *tls = s->conn != NULL ? mg_conn_tls(s->conn) : NULL;
    bool esmtp = smtp_server_is_esmtp(s->smtp);
    const char *proto = !esmtp ? "SMTP" : tls != NULL ? (s->auth_user ? "ESMTPSA" : "ESMTPS")
                                                      : (s->auth_user ? "ESMTPA" : "ESMTP");
    char date[MG_DATETIME_RFC5322_SIZE];
    mg_datetime_rfc5322(time(NULL), date);
    char hv[MG_LOG_VALUE_MAX];
    /* The HELO name is the client's claim: printable characters only. */
    mg_log_value(hv, sizeof(hv), helo != NULL ? helo : "unknown", strlen(helo != NULL ? helo : "unknown"));
    for (char *p = hv; *p != '\0'; p++) {
        if (*p == '"' || *p == '\\' || *p == '(' || *p == ')')
            *p = '_';
    }
    if (s->kind == SMTP_RX_LOCAL)
        mg_buf_printf(out, "Received: by %s (Mailgenic, from userid %s)\r\n\tid %s", set->hostname,
                      s->local_user, t->id);
    else
        mg_buf_printf(out, "Received: from %s ([%s])\r\n\tby %s (Mailgenic) with %s id %s", hv, s->ip,
                      set->hostname, proto, t->id);
    if (tls != NULL)
        mg_buf_printf(out, "\r\n\t(using %s with cipher %s)", mg_tls_version(tls), mg_tls_cipher(tls));
    if (tx->rcpt_count == 1)
        mg_buf_printf(out, "\r\n\tfor <%s>", tx->rcpts[0]->address);
    mg_buf_printf(out, "; %s\r\n", date);
}

static void hook_data_begin(struct smtp_server *server, struct smtp_server_reply *reply,
                            struct smtp_tx *tx, void *ctx)
{
    (void)server;
    struct rx_session *s = ctx;
    struct rx_tx *t = tx->data;
    /* The queue's envelope: every target of every accepted recipient,
     * each once. */
    size_t cap = 0;
    for (size_t i = 0; i < tx->rcpt_count; i++) {
        struct rx_rcpt *r = tx->rcpts[i]->data;
        cap += r != NULL ? r->n_targets : 0;
    }
    struct queue_file_rcpt *rcpts = mg_calloc(cap ? cap : 1, sizeof(*rcpts));
    char **orcpts = mg_calloc(cap ? cap : 1, sizeof(char *));
    size_t n = 0;
    for (size_t i = 0; i < tx->rcpt_count; i++) {
        struct smtp_rcpt *rcpt = tx->rcpts[i];
        struct rx_rcpt *r = rcpt->data;
        for (size_t k = 0; r != NULL && k < r->n_targets; k++) {
            bool dup = false;
            for (size_t j = 0; j < n; j++)
                dup |= mg_ascii_strcasecmp(rcpts[j].address, r->targets[k].address) == 0;
            if (dup)
                continue;
            rcpts[n].route = r->targets[k].route;
            rcpts[n].address = r->targets[k].address;
            rcpts[n].notify = rcpt->notify;
            /* The address the sender used, for DSNs: the ORCPT given, or
             * the RCPT address when an alias changed it. */
            if (rcpt->orcpt != NULL)
                orcpts[n] = mg_strdup(rcpt->orcpt);
            else if (mg_ascii_strcasecmp(rcpt->address, r->targets[k].address) != 0)
                orcpts[n] = mg_asprintf("rfc822;%s", rcpt->address);
            rcpts[n].orcpt = orcpts[n];
            n++;
        }
    }
    char client[400];
    const char *helo = smtp_server_helo(s->smtp);
    snprintf(client, sizeof(client), "[%s] %s", s->ip, helo != NULL ? helo : "");
    struct queue_envelope env = { 0 };
    env.from = tx->mail_from;
    env.envid = tx->envid;
    env.ret = tx->ret == SMTP_DSN_RET_FULL ? QUEUE_RET_FULL : tx->ret == SMTP_DSN_RET_HDRS ? QUEUE_RET_HDRS
                                                                                       : QUEUE_RET_DEFAULT;
    env.body = tx->body == SMTP_BODY_8BITMIME ? QUEUE_BODY_8BITMIME
               : tx->body == SMTP_BODY_7BIT  ? QUEUE_BODY_7BIT
                                              : QUEUE_BODY_DEFAULT;
    env.is_smtputf8 = tx->is_smtputf8;
    env.auth_user = s->auth_user;
    env.client = client;
    env.rcpts = rcpts;
    env.n_rcpts = n;
    const char *error = NULL;
    t->qn = n > 0 ? queue_new_begin(s->rx->queue, &env, &error) : NULL;
    for (size_t i = 0; i < n; i++)
        free(orcpts[i]);
    free(orcpts);
    free(rcpts);
    if (t->qn == NULL) {
        smtp_server_reply_send(reply, 451, "4.3.0", "Temporary failure, try again later");
        return;
    }
    memcpy(t->id, env.id, sizeof(t->id));
    struct mg_buf rec = MG_BUF_INIT;
    write_received(s, tx, t, &rec);
    queue_new_write(t->qn, rec.data, rec.len);
    mg_buf_free(&rec);
    smtp_server_reply_send(reply, 354, NULL, "");
}

/* The length of the header in h: up to and with the empty line (CR LF
 * or a bare LF one, as BDAT content may have), or all of h. */
static size_t header_length(const struct mg_buf *h)
{
    const char *p = h->data;
    size_t len = h->len;
    for (size_t i = 0; i < len; i++) {
        /* An empty line: at the start, or right after an LF. */
        if (i == 0 || p[i - 1] == '\n') {
            if (p[i] == '\n')
                return i + 1;
            if (p[i] == '\r' && i + 1 < len && p[i + 1] == '\n')
                return i + 2;
        }
    }
    return len;
}

/* Whether a field with this name starts a line of the header in h (not
 * of the body: a quoted "Date:" there does not count). */
static bool header_has(const struct mg_buf *h, const char *name)
{
    size_t hlen = header_length(h);
    size_t nl = strlen(name);
    for (size_t i = 0; i + nl <= hlen; i++) {
        if ((i == 0 || h->data[i - 1] == '\n') && mg_ascii_has_prefix(h->data + i, hlen - i, name))
            return true;
    }
    return false;
}

/* Writes the held header, with Message-ID and Date added when missing. */
static void flush_header(struct rx_session *s, struct rx_tx *t)
{
    if (t->add_headers) {
        struct mg_buf add = MG_BUF_INIT;
        if (!header_has(&t->held, "message-id:"))
            mg_buf_printf(&add, "Message-ID: <%s@%s>\r\n", t->id, s->rx->settings->hostname);
        if (!header_has(&t->held, "date:")) {
            char date[MG_DATETIME_RFC5322_SIZE];
            mg_datetime_rfc5322(time(NULL), date);
            mg_buf_printf(&add, "Date: %s\r\n", date);
        }
        if (add.len > 0)
            queue_new_write(t->qn, add.data, add.len);
        mg_buf_free(&add);
    }
    queue_new_write(t->qn, t->held.data, t->held.len);
    mg_buf_free(&t->held);
    t->is_header_done = true;
}

static void hook_data_chunk(struct smtp_server *server, struct smtp_tx *tx, const char *data,
                            size_t len, void *ctx)
{
    (void)server;
    struct rx_session *s = ctx;
    struct rx_tx *t = tx->data;
    if (t->qn == NULL)
        return;
    if (t->is_header_done || !t->add_headers) {
        queue_new_write(t->qn, data, len);
        return;
    }
    size_t before = t->held.len;
    mg_buf_append(&t->held, data, len);
    /* The header ends at the first empty line (or at once, for a message
     * that starts with one). */
    size_t from = before > 3 ? before - 3 : 0;
    const char *end = NULL;
    if (t->held.len >= 2 && memcmp(t->held.data, "\r\n", 2) == 0)
        end = t->held.data;
    else if (t->held.len >= 4)
        end = memmem(t->held.data + from, t->held.len - from, "\r\n\r\n", 4);
    if (end != NULL || t->held.len > RX_HEADER_HOLD_MAX)
        flush_header(s, t);
}

static void committed(int status, const char *id, void *ctx)
{
    struct smtp_server_reply *reply = ctx;
    if (status != 0) {
        /* "accepted" was logged when the content ended: say what became of it. */
        mg_log_error("smtp", "%s not queued: cannot write the queue file error=%s", id, strerror(-status));
        smtp_server_reply_send(reply, 451, "4.3.0", "Temporary failure writing the queue, try again later");
        return;
    }
    char text[64];
    snprintf(text, sizeof(text), "Ok: queued as %s", id);
    smtp_server_reply_send(reply, 250, "2.0.0", text);
}

static void hook_data_end(struct smtp_server *server, struct smtp_server_reply *reply,
                          struct smtp_tx *tx, void *ctx)
{
    (void)server;
    struct rx_session *s = ctx;
    struct rx_tx *t = tx->data;
    if (t->qn == NULL) {
        smtp_server_reply_send(reply, 451, "4.3.0", "Temporary failure, try again later");
        return;
    }
    if (!t->is_header_done)
        flush_header(s, t);
    char fv[MG_LOG_VALUE_MAX];
    mg_log_info(kind_name(s->kind), "%s accepted session=%s remote=%s from=%s rcpts=%zu size=%llu%s%s", t->id,
                s->id, s->ip, mg_log_str(fv, tx->mail_from[0] ? tx->mail_from : "<>"), tx->rcpt_count,
                (unsigned long long)queue_new_size(t->qn), s->auth_user ? " user=" : "",
                s->auth_user ? s->auth_user : "");
    struct queue_new *qn = t->qn;
    t->qn = NULL;
    queue_new_commit(qn, committed, reply);
}

/* Every recipient's data, accepted or refused, whatever ended it; the
 * session may be gone (server and tx NULL), never ctx. */
static void hook_rcpt_free(struct smtp_server *server, struct smtp_tx *tx,
                           struct smtp_rcpt *rcpt, void *ctx)
{
    (void)server;
    (void)tx;
    (void)ctx;
    rcpt_data_free(rcpt->data);
    rcpt->data = NULL;
}

static void hook_tx_free(struct smtp_server *server, struct smtp_tx *tx, void *ctx)
{
    (void)server;
    (void)ctx;
    tx_data_free(tx->data);
    tx->data = NULL;
}

static const struct smtp_server_hooks rx_hooks = {
    .auth = hook_auth,
    .mail_from = hook_mail_from,
    .rcpt_to = hook_rcpt_to,
    .data_begin = hook_data_begin,
    .data_chunk = hook_data_chunk,
    .data_end = hook_data_end,
    .rcpt_free = hook_rcpt_free,
    .tx_free = hook_tx_free,
};

/* ---- transport ---- */

/* Replies wait while a hook's answer is pending, so that pipelined
 * commands get theirs in one write: MAIL's 250 goes out with RCPT's and
 * DATA's once the recipient is looked up, not alone before. RFC 2920
 * lets a server buffer replies as long as it does not wait for the client
 * meanwhile; here it waits only for its own answer, which releases them. */
static void output_hold_update(struct rx_session *s)
{
    bool hold = s->conn != NULL && s->smtp != NULL && smtp_server_is_answer_pending(s->smtp);
    if (hold == s->is_output_held || s->conn == NULL)
        return;
    s->is_output_held = hold;
    if (hold)
        mg_conn_cork(s->conn);
    else
        mg_conn_uncork(s->conn);
}

static void io_write(void *io_ctx, const void *data, size_t len)
{
    struct rx_session *s = io_ctx;
    if (s->conn != NULL)
        mg_conn_write(s->conn, data, len);
}

static void io_start_tls(void *io_ctx)
{
    struct rx_session *s = io_ctx;
    if (s->conn != NULL)
        mg_conn_start_tls_server(s->conn, s->rx->tls, s->rx->settings->tls.handshake_timeout_ms);
}

static void io_resume(void *io_ctx)
{
    struct rx_session *s = io_ctx;
    if (s->conn != NULL && s->smtp != NULL)
        smtp_server_feed(s->smtp, mg_conn_input(s->conn));
    output_hold_update(s);
}

static void io_close(void *io_ctx)
{
    struct rx_session *s = io_ctx;
    if (s->conn != NULL)
        mg_conn_close(s->conn);
}

static const struct smtp_server_io rx_io = {
    .write = io_write,
    .start_tls = io_start_tls,
    .close = io_close,
    .resume = io_resume,
};

static void conn_on_read(struct mg_conn *conn)
{
    struct rx_session *s = mg_conn_data(conn);
    if (s->smtp != NULL)
        smtp_server_feed(s->smtp, mg_conn_input(conn));
    output_hold_update(s);
}

static void session_begin(struct rx_session *s)
{
    if (s->refusal != NULL) {
        mg_conn_printf(s->conn, "421 4.7.0 %s %s\r\n", s->rx->settings->hostname, s->refusal);
        mg_conn_close(s->conn);
        return;
    }
    struct smtp_server_settings st = s->rx->engine[s->kind];
    st.log_id = s->id;
    st.is_tls = s->conn != NULL && mg_conn_tls(s->conn) != NULL;
    s->smtp = smtp_server_new(&st, &rx_io, s, &rx_hooks, s);
}

static void conn_on_tls_ready(struct mg_conn *conn)
{
    struct rx_session *s = mg_conn_data(conn);
    if (s->smtp == NULL)
        session_begin(s); /* implicit TLS: the greeting comes now */
    else
        smtp_server_tls_ready(s->smtp);
}

static void conn_on_timeout(struct mg_conn *conn)
{
    struct rx_session *s = mg_conn_data(conn);
    if (s->smtp != NULL)
        smtp_server_timeout(s->smtp);
    else
        mg_conn_close(conn);
}

static void conn_on_close(struct mg_conn *conn, const char *reason)
{
    struct rx_session *s = mg_conn_data(conn);
    char rv[MG_LOG_VALUE_MAX];
    mg_log_debug(kind_name(s->kind), "disconnect session=%s remote=%s reason=%s", s->id, s->ip,
                 mg_log_str(rv, reason != NULL ? reason : "closed"));
    s->conn = NULL;
    if (s->kind != SMTP_RX_LOCAL)
        mg_ip_limiter_disconnect(s->rx->limiter, s->ip);
    smtp_server_free(&s->smtp);
    session_unref(s);
}

static const struct mg_conn_callbacks rx_conn_cb = {
    .on_read = conn_on_read,
    .on_tls_ready = conn_on_tls_ready,
    .on_timeout = conn_on_timeout,
    .on_close = conn_on_close,
};

static void on_connection(uv_stream_t *stream, int status)
{
    struct mg_listener *l = stream->data;
    struct smtp_receive *rx = l->data;
    if (status < 0)
        return;
    int kind = rx->kinds[l - rx->listeners];
    struct mg_conn *conn = mg_conn_accept(stream, kind == SMTP_RX_SUBMISSION ? rx->tls : NULL,
                                          rx->settings->tls.handshake_timeout_ms, &rx_conn_cb, NULL);
    if (conn == NULL)
        return;
    struct rx_session *s = mg_calloc(1, sizeof(*s));
    s->rx = rx;
    s->kind = kind;
    s->conn = conn;
    s->refcount = 1;
    mg_unique_id_session(s->id);
    snprintf(s->ip, sizeof(s->ip), "%s", mg_conn_peer_ip(conn));
    s->next = rx->sessions;
    if (rx->sessions != NULL)
        rx->sessions->prev = s;
    rx->sessions = s;
    rx->n_sessions++;
    mg_conn_set_data(conn, s);
    mg_conn_set_idle_timeout(conn, rx->settings->smtp.timeout_ms);
    if (kind == SMTP_RX_LOCAL) {
        /* Who is on the other end of the socket: for the Received line
         * and the logs (the kernel says, not the client). */
        struct ucred cred;
        socklen_t len = sizeof(cred);
        int fd = mg_conn_fileno(conn);
        snprintf(s->local_user, sizeof(s->local_user), "unknown");
        if (fd >= 0 && getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) == 0) {
            struct passwd *pw = getpwuid(cred.uid);
            if (pw != NULL)
                snprintf(s->local_user, sizeof(s->local_user), "%s", pw->pw_name);
            else
                snprintf(s->local_user, sizeof(s->local_user), "%u", (unsigned)cred.uid);
        }
        snprintf(s->ip, sizeof(s->ip), "local:%.57s", s->local_user);
    } else {
        unsigned per_ip = mg_ip_limiter_connect(rx->limiter, s->ip);
        if (rx->is_stopping)
            s->refusal = "Service shutting down";
        else if (mg_ip_limiter_total(rx->limiter) > rx->settings->smtp.max_connections)
            s->refusal = "Too many connections, try again later";
        else if (per_ip > rx->settings->smtp.max_connections_per_ip)
            s->refusal = "Too many connections from your address";
    }
    mg_log_debug(kind_name(kind), "connect session=%s remote=%s", s->id, s->ip);
    if (kind != SMTP_RX_SUBMISSION)
        session_begin(s);
}

/* ---- set-up ---- */

static int bind_list(struct smtp_receive *rx, uv_loop_t *loop, const struct mg_listen_list *l, int kind,
                     char **error_r)
{
    for (size_t i = 0; i < l->count; i++) {
        if (rx->n_listeners >= RX_LISTENERS_MAX) {
            *error_r = mg_strdup("too many listen addresses");
            return -1;
        }
        struct mg_listener *lis = &rx->listeners[rx->n_listeners];
        if (mg_listener_bind_tcp(lis, loop, l->addrs[i].host, l->addrs[i].port, error_r) != 0)
            return -1;
        lis->data = rx;
        rx->kinds[rx->n_listeners++] = kind;
    }
    return 0;
}

static void engine_settings(struct smtp_receive *rx, int kind)
{
    const struct mg_settings *set = rx->settings;
    struct smtp_server_settings *e = &rx->engine[kind];
    memset(e, 0, sizeof(*e));
    e->protocol = SMTP_PROTOCOL_SMTP;
    e->hostname = set->hostname;
    e->greeting_text = "ESMTP Mailgenic";
    e->max_line_length = 2048;
    e->max_recipients = set->smtp.max_recipients;
    e->max_message_size = set->smtp.max_message_size;
    e->max_errors = (unsigned)set->smtp.max_errors;
    /* Submission clients are ours: their bare newlines are normalised
     * rather than refused; port 25 follows the setting. */
    e->bare_newline = kind == SMTP_RX_MX && strcmp(set->smtp.bare_newline, "reject") == 0
                          ? SMTP_BARE_NEWLINE_REJECT
                          : SMTP_BARE_NEWLINE_NORMALIZE;
    e->offer_starttls = kind == SMTP_RX_MX;
    e->is_tls = kind == SMTP_RX_SUBMISSION;
    e->offer_auth = kind == SMTP_RX_SUBMISSION;
    e->require_auth = kind == SMTP_RX_SUBMISSION;
    e->offer_chunking = true;
    e->offer_dsn = true;
    e->offer_smtputf8 = true;
}

int smtp_receive_bind(uv_loop_t *loop, const struct mg_settings *settings,
                      struct smtp_receive **rx_r, char **error_r)
{
    struct smtp_receive *rx = mg_calloc(1, sizeof(*rx));
    rx->loop = loop;
    rx->settings = settings;
    if (bind_list(rx, loop, &settings->smtp.listen, SMTP_RX_MX, error_r) != 0 ||
        bind_list(rx, loop, &settings->submission.listen, SMTP_RX_SUBMISSION, error_r) != 0)
        goto fail;
    if (settings->mta.submit_socket[0] != '\0') {
        struct mg_listener *lis = &rx->listeners[rx->n_listeners];
        /* Any local user may hand mail in, as with sendmail. */
        if (mg_listener_bind_unix(lis, loop, settings->mta.submit_socket, 0666, NULL, error_r) != 0)
            goto fail;
        lis->data = rx;
        rx->kinds[rx->n_listeners++] = SMTP_RX_LOCAL;
    }
    for (int k = 0; k < 3; k++)
        engine_settings(rx, k);
    rx->limiter = mg_ip_limiter_new(RX_AUTH_FAILURE_WINDOW_MS);
    *rx_r = rx;
    return 0;
fail:
    for (size_t i = 0; i < rx->n_listeners; i++)
        mg_listener_close(&rx->listeners[i], NULL);
    free(rx);
    return -1;
}

void smtp_receive_start(struct smtp_receive *rx, struct queue *queue, struct mg_auth_client *auth,
                        struct mg_tls_context *tls)
{
    rx->queue = queue;
    rx->auth = auth;
    rx->rcpt_cache = mg_resolve_cache_new(RX_RCPT_CACHE_MS, RX_RCPT_CACHE_MAX);
    rx->tls = tls;
    for (size_t i = 0; i < rx->n_listeners; i++) {
        int r = mg_listener_start(&rx->listeners[i], on_connection);
        if (r != 0)
            mg_log_fatal("smtp", "cannot listen on %s: %s", rx->listeners[i].name, uv_strerror(r));
        mg_log_info(kind_name(rx->kinds[i]), "listening on %s", rx->listeners[i].name);
    }
}

void smtp_receive_set_tls(struct smtp_receive *rx, struct mg_tls_context *tls)
{
    rx->tls = tls;
}

void smtp_receive_stop(struct smtp_receive *rx)
{
    rx->is_stopping = true;
    for (size_t i = 0; i < rx->n_listeners; i++)
        mg_listener_close(&rx->listeners[i], NULL);
    rx->n_listeners = 0;
    for (struct rx_session *s = rx->sessions; s != NULL; s = s->next) {
        if (s->smtp != NULL)
            smtp_server_shutdown(s->smtp);
        else if (s->conn != NULL)
            mg_conn_close(s->conn);
    }
}

unsigned smtp_receive_session_count(const struct smtp_receive *rx)
{
    return rx->n_sessions;
}

uint16_t smtp_receive_port(const struct smtp_receive *rx, int kind)
{
    for (size_t i = 0; i < rx->n_listeners; i++) {
        if (rx->kinds[i] == kind)
            return rx->listeners[i].port;
    }
    return 0;
}

void smtp_receive_free(struct smtp_receive **rx)
{
    if (*rx == NULL)
        return;
    mg_ip_limiter_free(&(*rx)->limiter);
    mg_resolve_cache_free(&(*rx)->rcpt_cache);
    free(*rx);
    *rx = NULL;
}
