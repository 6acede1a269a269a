/* The IMAP server: listeners (implicit TLS only), connection limits in
 * total and per address, and the services sessions share. */
#include "mda/imap/imap_private.h"

#include <stdlib.h>
#include <string.h>

#include "common/alloc.h"
#include "common/conn.h"
#include "common/log.h"
#include "common/settings.h"
#include "common/strmap.h"
#include "common/tls.h"

int imap_server_bind(uv_loop_t *loop, const struct mg_settings *settings,
                     struct imap_server **server_r, char **error_r)
{
    struct imap_server *server = mg_calloc(1, sizeof(*server));
    server->loop = loop;
    server->settings = settings;
    server->per_ip = mg_strmap_new();
    const struct mg_listen_list *l = &settings->imap.listen;
    for (size_t i = 0; i < l->count && i < IMAP_LISTENERS_MAX; i++) {
        if (mg_listener_bind_tcp(&server->listeners[i], loop, l->addrs[i].host, l->addrs[i].port,
                                 error_r) != 0) {
            for (size_t k = 0; k < i; k++)
                mg_listener_close(&server->listeners[k], NULL);
            mg_strmap_free(&server->per_ip);
            free(server);
            return -1;
        }
        server->listeners[i].data = server;
        server->n_listeners++;
    }
    *server_r = server;
    return 0;
}

static void on_connection(uv_stream_t *stream, int status)
{
    struct mg_listener *listener = stream->data;
    struct imap_server *server = listener->data;
    if (status < 0) {
        mg_log_warning("imap", "accept error=%s", uv_strerror(status));
        return;
    }
    struct mg_conn *conn = mg_conn_accept(stream, server->tls, server->settings->tls.handshake_timeout_ms,
                                          imap_session_conn_callbacks(), NULL);
    if (conn == NULL)
        return;
    const char *ip = mg_conn_peer_ip(conn);
    struct imap_ip_stats *st = mg_strmap_get(server->per_ip, ip);
    if (st == NULL) {
        st = mg_calloc(1, sizeof(*st));
        mg_strmap_set(server->per_ip, ip, st);
    }
    st->connections++;
    imap_session_start(server, conn);
    struct imap_session *s = mg_conn_data(conn);
    if (server->is_stopping) {
        s->refusal = "Server shutting down.";
    } else if (server->n_sessions > server->settings->imap.max_connections) {
        s->refusal = "Too many connections, try again later.";
        mg_log_warning("imap", "connection refused remote=%s reason=max-connections", ip);
    } else if (st->connections > server->settings->imap.max_connections_per_ip) {
        s->refusal = "Too many connections from your address.";
        mg_log_warning("imap", "connection refused remote=%s reason=max-connections-per-ip", ip);
    }
}

void imap_server_start(struct imap_server *server, struct mg_tls_context *tls, struct store *store,
                       struct mg_auth_client *auth)
{
    server->tls = tls;
    server->store = store;
    server->auth = auth;
    for (size_t i = 0; i < server->n_listeners; i++) {
        int r = mg_listener_start(&server->listeners[i], on_connection);
        if (r != 0)
            mg_log_fatal("imap", "cannot listen on %s: %s", server->listeners[i].name, uv_strerror(r));
        mg_log_info("imap", "listening on %s", server->listeners[i].name);
    }
}

void imap_server_set_tls(struct imap_server *server, struct mg_tls_context *tls)
{
    server->tls = tls;
}

void imap_server_stop(struct imap_server *server)
{
    server->is_stopping = true;
    for (size_t i = 0; i < server->n_listeners; i++)
        mg_listener_close(&server->listeners[i], NULL);
    server->n_listeners = 0;
    for (struct imap_session *s = server->sessions; s != NULL; s = s->next)
        imap_session_shutdown(s);
}

unsigned imap_server_session_count(const struct imap_server *server)
{
    return server->n_sessions;
}

static int free_stats_cb(const char *key, void *value, void *ctx)
{
    (void)key;
    (void)ctx;
    free(value);
    return 1;
}

void imap_server_free(struct imap_server **server)
{
    if (*server == NULL)
        return;
    mg_strmap_foreach((*server)->per_ip, free_stats_cb, NULL);
    mg_strmap_free(&(*server)->per_ip);
    free(*server);
    *server = NULL;
}

uint16_t imap_server_port(const struct imap_server *server)
{
    return server->n_listeners > 0 ? server->listeners[0].port : 0;
}
