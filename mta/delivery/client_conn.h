/* The client engine (lmtp/smtp_client) over a buffered connection
 * (mg_conn): the engine's io writes to, drains and closes the connection,
 * and the connection's input and drain events feed the engine. The local
 * (LMTP) and remote (SMTP) links each embed one, so that the glue between
 * the two layers is written once.
 *
 * The connection's data pointer is the struct client_conn: a link passes
 * &link->cc to the connect call, gets itself back with client_conn_owner()
 * and puts client_conn_on_read/client_conn_on_drain in its callbacks. */
#ifndef MG_MTA_CLIENT_CONN_H
#define MG_MTA_CLIENT_CONN_H

struct mg_conn;
struct smtp_client;
struct smtp_client_io;

struct client_conn {
    struct mg_conn *conn;       /* NULL until connected and once closed */
    struct smtp_client *client; /* NULL until the session begins */
    void *owner;                /* the link */
    /* The engine asks for TLS (STARTTLS accepted): start the handshake and
     * call smtp_client_tls_ready() when it is done. NULL for a link whose
     * sessions never use STARTTLS. */
    void (*start_tls)(void *owner);
};

/* The io for smtp_client_new(), with the struct client_conn as io_ctx.
 * Calls after the connection closed (cc->conn NULL) do nothing. */
extern const struct smtp_client_io client_conn_io;

/* The owner of the client_conn that conn carries as its data. */
void *client_conn_owner(const struct mg_conn *conn);

/* mg_conn callbacks: hand input, and the drained output queue, to the
 * engine (nothing before the session begins). */
void client_conn_on_read(struct mg_conn *conn);
void client_conn_on_drain(struct mg_conn *conn);

/* For the link's on_close: forgets the connection, tells the engine it is
 * gone (reason: why, never NULL) and frees the engine. */
void client_conn_closed(struct client_conn *cc, const char *reason);

#endif
