/* The SMTP / LMTP client engine: mgsmtpd's delivery to mgimapd (LMTP) and
 * to remote MTAs (SMTP), one engine with a protocol flag.
 *
 * Transport-independent like the server: it writes through struct
 * smtp_client_io and is fed the peer's bytes with smtp_client_feed(). The
 * daemon owns the connection (mg_conn) and does TLS when asked.
 *
 * One client session runs one transaction at a time and can run many in a
 * row on the same connection (RSET between them when needed). Commands are
 * pipelined when the server offers PIPELINING: MAIL FROM, every RCPT TO and
 * DATA go out in one write.
 *
 * Results are per recipient: the reply to RCPT TO, and for LMTP the reply
 * after DATA for each accepted recipient (for SMTP the one reply after DATA
 * applies to every accepted recipient). A refused MAIL FROM is every
 * recipient's result, with or without PIPELINING: the RCPT replies behind
 * it ("503 need MAIL") are not kept. */
#ifndef MG_LMTP_SMTP_CLIENT_H
#define MG_LMTP_SMTP_CLIENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "lmtp/smtp_server.h"

struct mg_buf;
struct smtp_client;

/* A reply as received: code, enhanced status (or ""), full text of all
 * lines joined by "\n" (without codes). Texts in results handed to the
 * daemon live until the next smtp_client_send() or smtp_client_free(). */
struct smtp_reply {
    unsigned code;
    char enhanced[16];
    const char *text;
};

enum smtp_client_ext {
    SMTP_EXT_PIPELINING = 1 << 0,
    SMTP_EXT_SIZE = 1 << 1,
    SMTP_EXT_8BITMIME = 1 << 2,
    SMTP_EXT_SMTPUTF8 = 1 << 3,
    SMTP_EXT_ENHANCEDSTATUSCODES = 1 << 4,
    SMTP_EXT_CHUNKING = 1 << 5,
    SMTP_EXT_DSN = 1 << 6,
    SMTP_EXT_STARTTLS = 1 << 7,
    SMTP_EXT_AUTH_PLAIN = 1 << 8,
    SMTP_EXT_AUTH_LOGIN = 1 << 9,
};

struct smtp_client_settings {
    enum smtp_protocol protocol;
    const char *helo_name;     /* our name in EHLO/LHLO */
    bool use_starttls;         /* when offered (the io decides what to verify) */
    bool require_starttls;     /* fail if not offered */
    const char *auth_user;     /* AUTH PLAIN (or LOGIN) after TLS, if set */
    const char *auth_password;
    size_t max_reply_length;   /* longest reply text kept; 0: 4096 */
    bool is_tls;               /* the transport is already TLS (implicit TLS):
                                * AUTH is only ever sent over TLS */
    const char *log_id;        /* the session id in log lines; NULL: "-" */
};

struct smtp_client_io {
    void (*write)(void *io_ctx, const void *data, size_t len);
    /* Start the TLS handshake now (after "220" to STARTTLS); call
     * smtp_client_tls_ready() when it is done. Input buffered so far is
     * discarded by the engine; the transport must drop its own. */
    void (*start_tls)(void *io_ctx);
    /* Close after the queued output is sent. Called once, when the engine
     * is done with the connection (QUIT answered, or a failure). */
    void (*close)(void *io_ctx);
    /* Optional backpressure: the engine queued SMTP_CLIENT_WRITE_STEP bytes
     * of content and stops; call smtp_client_content_ready() once the
     * output queue has drained (mg_conn_want_drain + on_drain). NULL: the
     * engine writes the whole content at once. */
    void (*want_drain)(void *io_ctx);
};

/* Content bytes read per read_content call, and queued per step before
 * the engine waits for want_drain's smtp_client_content_ready(). */
#define SMTP_CLIENT_READ_CHUNK (64 * 1024)
#define SMTP_CLIENT_WRITE_STEP (256 * 1024)

/* One message to send: envelope plus a content source. */
struct smtp_client_rcpt {
    const char *address;
    unsigned notify;           /* DSN NOTIFY bits (only sent when offered) */
    const char *orcpt;         /* ORCPT address (utf-8 / xtext encoded by us) */
    struct smtp_reply result;  /* filled in: RCPT reply, then data reply;
                                * the MAIL reply when MAIL was refused */
    bool is_accepted;          /* the RCPT TO got 2xx */
    void *data;
};

struct smtp_client_message {
    const char *mail_from;     /* "" for <> */
    uint64_t size;             /* for SIZE=, 0 unknown */
    enum smtp_body_type body;
    bool is_smtputf8;
    enum smtp_dsn_ret ret;
    const char *envid;
    struct smtp_client_rcpt *rcpts;
    size_t rcpt_count;
    /* Reads content (CR LF lines, not dot-stuffed) into out, up to max
     * bytes; returns 0 at the end, the number of bytes appended, -2 for
     * "no data yet" (call smtp_client_content_ready() later, from the event
     * loop, not from inside read_content), or -1 on error. Once DATA got
     * 354 a transfer cannot be taken back (a "." would deliver the part
     * sent): -1 closes the connection and failed() reports it. */
    long (*read_content)(void *source, struct mg_buf *out, size_t max);
    void *source;
};

struct smtp_client_callbacks {
    /* The session is ready for a transaction (greeting, EHLO, TLS, AUTH
     * done), or failed (reply NULL with a reason, or the failing reply). */
    void (*ready)(struct smtp_client *client, const struct smtp_reply *failure,
                  const char *reason, void *ctx);
    /* A transaction ended: each rcpt's result and is_accepted are set.
     * mail_reply is the MAIL FROM reply (or the DATA reply on a whole
     * transaction failure). */
    void (*message_done)(struct smtp_client *client, struct smtp_client_message *msg,
                         const struct smtp_reply *mail_reply, void *ctx);
    /* The connection is unusable (421, protocol error, I/O failure); no
     * more calls follow, and a transaction in progress gets no
     * message_done: its message is for the daemon to retry. The engine has
     * already asked io->close. */
    void (*failed)(struct smtp_client *client, const char *reason, void *ctx);
};

/* Callbacks may call smtp_client_send/quit; smtp_client_free may be
 * called from a callback too (the engine frees itself once its stack has
 * unwound). */
struct smtp_client *smtp_client_new(const struct smtp_client_settings *settings,
                                    const struct smtp_client_io *io, void *io_ctx,
                                    const struct smtp_client_callbacks *cb, void *ctx);
void smtp_client_free(struct smtp_client **client);

/* The peer's bytes. */
void smtp_client_feed(struct smtp_client *client, struct mg_buf *in);
void smtp_client_tls_ready(struct smtp_client *client);
/* The transport died. */
void smtp_client_connection_lost(struct smtp_client *client, const char *reason);

/* Starts a transaction (only when ready and idle). msg must live until
 * message_done. An envelope the server cannot take (SMTPUTF8 needed but
 * not offered, SIZE over the server's limit, control characters in an
 * address, no recipients) fails locally: message_done is called before
 * this returns, with a 5xx result that never went over the wire. */
void smtp_client_send(struct smtp_client *client, struct smtp_client_message *msg);
/* More content is available after read_content returned -2 ("not yet"),
 * or the output drained after io->want_drain: continue sending. Ignored
 * when the engine is not waiting for it. */
void smtp_client_content_ready(struct smtp_client *client);
/* QUIT and close. */
void smtp_client_quit(struct smtp_client *client);

unsigned smtp_client_extensions(const struct smtp_client *client);
uint64_t smtp_client_max_size(const struct smtp_client *client); /* SIZE n, 0 none */
bool smtp_client_is_idle(const struct smtp_client *client);
/* The greeting line's text, for logs. */
const char *smtp_client_greeting(const struct smtp_client *client);

#endif
