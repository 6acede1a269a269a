/* Mutual-TLS TCP front of the auth service: each accepted peer gets its
 * own connection to mgauthd's UNIX socket, bytes flow both ways with
 * backpressure, and either side closing closes the other. */
#include "mda/auth/auth_link.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "common/alloc.h"
#include "common/buf.h"
#include "common/conn.h"
#include "common/listener.h"
#include "common/log.h"
#include "common/settings.h"
#include "common/tls.h"
#include "common/unique_id.h"

#define AUTH_LINK_LISTENERS_MAX 8
/* Above this much output waiting on one side, the other stops reading. */
#define AUTH_LINK_HIGH_WATER (256 * 1024)
#define AUTH_LINK_CONNECT_TIMEOUT_MS 5000
/* The MTA's auth client reconnects on demand: an idle link can go. */
#define AUTH_LINK_IDLE_TIMEOUT_MS (60 * 60 * 1000)

struct auth_link_session {
    struct auth_link *owner;
    struct auth_link_session *prev, *next;
    struct mg_conn *peer;    /* the MTA, over TLS */
    struct mg_conn *service; /* mgauthd, once connecting */
    bool is_service_ready;
    int refcount;            /* one per open connection */
    char id[MG_SESSION_ID_LEN + 1];
};

struct auth_link {
    uv_loop_t *loop;
    const struct mg_settings *settings;
    struct mg_listener listeners[AUTH_LINK_LISTENERS_MAX];
    size_t n_listeners;
    struct mg_tls_context *tls;
    char *auth_socket;
    struct auth_link_session *sessions;
    size_t n_sessions;
    bool is_stopping;
};

static void session_unref(struct auth_link_session *s)
{
    if (--s->refcount > 0)
        return;
    struct auth_link *link = s->owner;
    if (s->prev != NULL)
        s->prev->next = s->next;
    else
        link->sessions = s->next;
    if (s->next != NULL)
        s->next->prev = s->prev;
    link->n_sessions--;
    free(s);
}

/* Moves what arrived on from to to; stops reading from when to is backed
 * up, and asks to hear when it drains. */
static void forward(struct mg_conn *from, struct mg_conn *to)
{
    struct mg_buf *in = mg_conn_input(from);
    if (in->len > 0) {
        mg_conn_write(to, in->data, in->len);
        mg_buf_reset(in);
    }
    if (mg_conn_output_pending(to) > AUTH_LINK_HIGH_WATER) {
        mg_conn_pause_reading(from);
        mg_conn_want_drain(to);
    }
}

static void resume(struct mg_conn *conn)
{
    if (conn != NULL && !mg_conn_is_closing(conn)) {
        mg_conn_resume_reading(conn);
        mg_conn_reprocess_input(conn);
    }
}

/* ---- mgauthd side ---- */

static void service_on_connect(struct mg_conn *conn, int status)
{
    struct auth_link_session *s = mg_conn_data(conn);
    if (status != 0) {
        char rv[MG_LOG_VALUE_MAX];
        mg_log_warning("auth-link", "cannot reach the auth service session=%s socket=%s error=%s",
                       s->id, s->owner->auth_socket, mg_log_str(rv, uv_strerror(status)));
        return; /* on_close follows and closes the peer */
    }
    s->is_service_ready = true;
    resume(s->peer);
}

static void service_on_read(struct mg_conn *conn)
{
    struct auth_link_session *s = mg_conn_data(conn);
    if (s->peer == NULL || mg_conn_is_closing(s->peer)) {
        mg_buf_reset(mg_conn_input(conn));
        return;
    }
    forward(conn, s->peer);
}

static void service_on_drain(struct mg_conn *conn)
{
    struct auth_link_session *s = mg_conn_data(conn);
    resume(s->peer);
}

static void service_on_close(struct mg_conn *conn, const char *reason)
{
    (void)reason;
    struct auth_link_session *s = mg_conn_data(conn);
    s->service = NULL;
    s->is_service_ready = false;
    if (s->peer != NULL && !mg_conn_is_closing(s->peer))
        mg_conn_close(s->peer);
    session_unref(s);
}

static const struct mg_conn_callbacks service_cb = {
    .on_connect = service_on_connect,
    .on_read = service_on_read,
    .on_drain = service_on_drain,
    .on_close = service_on_close,
};

/* ---- the MTA side ---- */

static void peer_on_tls_ready(struct mg_conn *conn)
{
    struct auth_link_session *s = mg_conn_data(conn);
    struct mg_tls *tls = mg_conn_tls(conn);
    const char *cn = mg_tls_peer_common_name(tls);
    char rv[MG_LOG_VALUE_MAX];
    /* The context demands a client certificate of the cluster CA: a
     * handshake that completes without one is a bug, never a peer. */
    if (!mg_tls_is_verified(tls) || cn == NULL) {
        mg_log_error("auth-link", "peer not verified session=%s remote=%s", s->id,
                     mg_conn_peer_ip(conn));
        mg_conn_abort(conn, "peer not verified");
        return;
    }
    mg_log_info("auth-link", "connect session=%s remote=%s peer=%s tls=%s", s->id,
                mg_conn_peer_ip(conn), mg_log_str(rv, cn), mg_tls_version(tls));
    mg_conn_pause_reading(conn);
    s->service = mg_conn_connect_unix(s->owner->loop, s->owner->auth_socket,
                                      AUTH_LINK_CONNECT_TIMEOUT_MS, &service_cb, s);
    s->refcount++;
}

static void peer_on_read(struct mg_conn *conn)
{
    struct auth_link_session *s = mg_conn_data(conn);
    if (!s->is_service_ready) {
        mg_conn_pause_reading(conn);
        return;
    }
    forward(conn, s->service);
}

static void peer_on_drain(struct mg_conn *conn)
{
    struct auth_link_session *s = mg_conn_data(conn);
    resume(s->service);
}

static void peer_on_close(struct mg_conn *conn, const char *reason)
{
    struct auth_link_session *s = mg_conn_data(conn);
    char rv[MG_LOG_VALUE_MAX];
    if (reason != NULL)
        mg_log_info("auth-link", "disconnect session=%s remote=%s reason=%s", s->id,
                    mg_conn_peer_ip(conn), mg_log_str(rv, reason));
    s->peer = NULL;
    if (s->service != NULL && !mg_conn_is_closing(s->service))
        mg_conn_close(s->service);
    session_unref(s);
}

static const struct mg_conn_callbacks peer_cb = {
    .on_tls_ready = peer_on_tls_ready,
    .on_read = peer_on_read,
    .on_drain = peer_on_drain,
    .on_close = peer_on_close,
};

static void on_connection(uv_stream_t *stream, int status)
{
    struct mg_listener *l = stream->data;
    struct auth_link *link = l->data;
    if (status < 0 || link->is_stopping)
        return;
    struct auth_link_session *s = mg_calloc(1, sizeof(*s));
    s->owner = link;
    mg_unique_id_session(s->id);
    s->peer = mg_conn_accept(stream, link->tls, link->settings->tls.handshake_timeout_ms,
                             &peer_cb, s);
    if (s->peer == NULL) {
        free(s);
        return;
    }
    s->refcount = 1;
    mg_conn_set_idle_timeout(s->peer, AUTH_LINK_IDLE_TIMEOUT_MS);
    s->next = link->sessions;
    if (link->sessions != NULL)
        link->sessions->prev = s;
    link->sessions = s;
    link->n_sessions++;
}

int auth_link_bind(uv_loop_t *loop, const struct mg_settings *settings,
                   struct auth_link **link_r, char **error_r)
{
    *link_r = NULL;
    const struct mg_listen_list *l = &settings->auth.listen;
    if (l->count == 0)
        return 0;
    if (l->count > AUTH_LINK_LISTENERS_MAX) {
        *error_r = mg_asprintf("[auth] listen: at most %d addresses", AUTH_LINK_LISTENERS_MAX);
        return -1;
    }
    struct auth_link *link = mg_calloc(1, sizeof(*link));
    link->loop = loop;
    link->settings = settings;
    for (size_t i = 0; i < l->count; i++) {
        if (mg_listener_bind_tcp(&link->listeners[i], loop, l->addrs[i].host, l->addrs[i].port,
                                 error_r) != 0) {
            for (size_t j = 0; j < i; j++)
                mg_listener_close(&link->listeners[j], NULL);
            free(link);
            return -1;
        }
        link->listeners[i].data = link;
        link->n_listeners++;
    }
    *link_r = link;
    return 0;
}

void auth_link_start(struct auth_link *link, struct mg_tls_context *tls, const char *auth_socket)
{
    link->tls = tls;
    link->auth_socket = mg_strdup(auth_socket);
    for (size_t i = 0; i < link->n_listeners; i++) {
        if (mg_listener_start(&link->listeners[i], on_connection) != 0)
            mg_log_fatal("auth-link", "cannot listen on %s", link->listeners[i].name);
        mg_log_info("auth-link", "listening on %s (mutual TLS)", link->listeners[i].name);
    }
}

void auth_link_set_tls(struct auth_link *link, struct mg_tls_context *tls)
{
    link->tls = tls;
}

void auth_link_stop(struct auth_link *link)
{
    link->is_stopping = true;
    for (size_t i = 0; i < link->n_listeners; i++)
        mg_listener_close(&link->listeners[i], NULL);
    link->n_listeners = 0;
    for (struct auth_link_session *s = link->sessions; s != NULL; s = s->next) {
        if (s->peer != NULL && !mg_conn_is_closing(s->peer))
            mg_conn_close(s->peer);
        if (s->service != NULL && !mg_conn_is_closing(s->service))
            mg_conn_close(s->service);
    }
}

size_t auth_link_session_count(const struct auth_link *link)
{
    return link != NULL ? link->n_sessions : 0;
}

void auth_link_free(struct auth_link **link)
{
    if (*link == NULL)
        return;
    free((*link)->auth_socket);
    free(*link);
    *link = NULL;
}
