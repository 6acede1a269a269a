#include "mta/delivery/client_conn.h"

#include <stddef.h>

#include "common/conn.h"
#include "lmtp/smtp_client.h"

/* The connection, or NULL once it closed: the engine may still write or
 * close while it reports a lost connection (client_conn_closed). */
static struct mg_conn *io_conn(void *io_ctx)
{
    const struct client_conn *cc = io_ctx;
    return cc->conn;
}

static void io_write(void *io_ctx, const void *data, size_t len)
{
    struct mg_conn *conn = io_conn(io_ctx);
    if (conn != NULL)
        mg_conn_write(conn, data, len);
}

static void io_start_tls(void *io_ctx)
{
    const struct client_conn *cc = io_ctx;
    if (cc->conn != NULL && cc->start_tls != NULL)
        cc->start_tls(cc->owner);
}

static void io_close(void *io_ctx)
{
    struct mg_conn *conn = io_conn(io_ctx);
    if (conn != NULL)
        mg_conn_close(conn);
}

static void io_want_drain(void *io_ctx)
{
    struct mg_conn *conn = io_conn(io_ctx);
    if (conn != NULL)
        mg_conn_want_drain(conn);
}

const struct smtp_client_io client_conn_io = {
    .write = io_write,
    .start_tls = io_start_tls,
    .close = io_close,
    .want_drain = io_want_drain,
};

void *client_conn_owner(const struct mg_conn *conn)
{
    const struct client_conn *cc = mg_conn_data(conn);
    return cc->owner;
}

void client_conn_on_read(struct mg_conn *conn)
{
    struct client_conn *cc = mg_conn_data(conn);
    if (cc->client != NULL)
        smtp_client_feed(cc->client, mg_conn_input(conn));
}

void client_conn_on_drain(struct mg_conn *conn)
{
    struct client_conn *cc = mg_conn_data(conn);
    if (cc->client != NULL)
        smtp_client_content_ready(cc->client);
}

void client_conn_closed(struct client_conn *cc, const char *reason)
{
    cc->conn = NULL;
    if (cc->client != NULL) {
        smtp_client_connection_lost(cc->client, reason);
        smtp_client_free(&cc->client);
    }
}
