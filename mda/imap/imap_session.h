/* An IMAP session on one connection: assembling commands, dispatching
 * them, the selected mailbox, untagged updates, IDLE. Created by the
 * server for each accepted connection; frees itself when the connection
 * has closed and no job refers to it any more. */
#ifndef MG_MDA_IMAP_SESSION_H
#define MG_MDA_IMAP_SESSION_H

struct imap_server;
struct mg_conn;

/* Starts a session on an accepted (implicit TLS) connection. */
void imap_session_start(struct imap_server *server, struct mg_conn *conn);
/* Server shutdown: "* BYE" and close. */
struct imap_session;
void imap_session_shutdown(struct imap_session *session);

#endif
