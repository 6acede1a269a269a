/* The SMTP / LMTP server engine, shared by mgsmtpd (SMTP on ports 25 and
 * 465) and mgimapd (LMTP, RFC 2033). One state machine, a protocol flag:
 * LMTP greets with LHLO and answers DATA once per accepted recipient.
 *
 * Transport-independent: the engine takes bytes (smtp_server_feed) and
 * writes through struct smtp_server_io, so the daemons plug it onto an
 * mg_conn (TCP, UNIX socket, TLS) and tests and fuzzers drive it from
 * memory.
 *
 * Policy lives in the daemon, behind struct smtp_server_hooks. A hook may
 * answer at once or later (after asking the auth service, after an fsync):
 * while an answer is pending the engine reads no further command, so
 * pipelined commands are answered in order (RFC 2920). Every hook answers
 * exactly once, through the smtp_server_reply_* functions.
 *
 * What the daemon hangs on a transaction (tx->data) and on a recipient
 * (rcpt->data) comes back to it through a hook, exactly once, whatever
 * ends it: tx_free for the transaction, rcpt_free for each recipient (see
 * there). The engine never frees daemon data itself and never drops it
 * silently.
 *
 * Limits (line length, recipients, message size, errors) are enforced
 * here; hitting one sends the RFC reply and, for the error limit, closes.
 * Message content reaches the daemon un-dot-stuffed, in chunks, through
 * data_chunk; it is never held whole in memory by the engine. */
#ifndef MG_LMTP_SMTP_SERVER_H
#define MG_LMTP_SMTP_SERVER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct mg_buf;
struct smtp_server;

enum smtp_protocol {
    SMTP_PROTOCOL_SMTP,
    SMTP_PROTOCOL_LMTP,
};

enum smtp_body_type {
    SMTP_BODY_UNSPECIFIED,
    SMTP_BODY_7BIT,
    SMTP_BODY_8BITMIME,
    SMTP_BODY_BINARYMIME,
};

/* RFC 3461 DSN parameters. */
enum smtp_dsn_ret { SMTP_DSN_RET_UNSPECIFIED, SMTP_DSN_RET_FULL, SMTP_DSN_RET_HDRS };
enum smtp_dsn_notify {
    SMTP_DSN_NOTIFY_UNSPECIFIED = 0,
    SMTP_DSN_NOTIFY_NEVER = 1 << 0,
    SMTP_DSN_NOTIFY_SUCCESS = 1 << 1,
    SMTP_DSN_NOTIFY_FAILURE = 1 << 2,
    SMTP_DSN_NOTIFY_DELAY = 1 << 3,
};

/* Bare CR or LF inside message content (see docs/smtp.md). */
enum smtp_bare_newline_policy {
    SMTP_BARE_NEWLINE_REJECT,    /* refuse the message: 554 5.6.0 after data */
    SMTP_BARE_NEWLINE_NORMALIZE, /* store it as CR LF */
};

struct smtp_server_settings {
    enum smtp_protocol protocol;
    const char *hostname;      /* in the greeting and EHLO reply */
    const char *greeting_text; /* after "220 <hostname> ", e.g. "ESMTP Mailgenic" */
    size_t max_line_length;    /* command lines; at least 512 (RFC 5321 4.5.3.1.4) */
    size_t max_recipients;     /* per transaction; more get 452 4.5.3 */
    uint64_t max_message_size; /* SIZE; 0: no limit */
    unsigned max_errors;       /* bad commands before 421 and close; 0: 20 */
    enum smtp_bare_newline_policy bare_newline;
    bool offer_starttls;       /* advertise STARTTLS (not yet in TLS) */
    bool is_tls;               /* the transport is already encrypted */
    bool offer_auth;           /* advertise AUTH PLAIN LOGIN (only over TLS) */
    bool require_auth;         /* MAIL FROM needs AUTH first (submission) */
    bool offer_chunking;       /* CHUNKING / BDAT */
    bool offer_dsn;            /* DSN parameters */
    bool offer_smtputf8;
    const char *log_id;        /* the session id in log lines; NULL: "-" */
};

/* One recipient of a transaction. */
struct smtp_rcpt {
    const char *address;       /* as given, without angle brackets */
    const char *orcpt;         /* ORCPT=, "type;address" with the address
                                * decoded from xtext ("rfc822;a@b"), or NULL */
    unsigned notify;           /* enum smtp_dsn_notify bits */
    unsigned index;            /* position among accepted recipients */
    void *data;                /* the daemon's */
};

/* A mail transaction: MAIL FROM to the end of data (or RSET). Freed by the
 * engine after the last reply about it. */
struct smtp_tx {
    const char *mail_from;     /* "" for the null reverse-path */
    uint64_t size_param;       /* SIZE=, 0 if absent */
    enum smtp_body_type body;
    bool is_smtputf8;
    enum smtp_dsn_ret ret;
    const char *envid;         /* ENVID=, decoded, or NULL */
    const char *auth_param;    /* AUTH= of MAIL FROM, or NULL */
    struct smtp_rcpt **rcpts;  /* accepted recipients, in order */
    size_t rcpt_count;
    uint64_t data_size;        /* content bytes so far */
    void *data;                /* the daemon's */
};

/* Writes and transport changes the engine asks for. */
struct smtp_server_io {
    /* Queue bytes for the peer. */
    void (*write)(void *io_ctx, const void *data, size_t len);
    /* Begin TLS now: the "220 Go ahead" is already queued. Input buffered
     * so far must be discarded (the engine discards its own). */
    void (*start_tls)(void *io_ctx);
    /* Close after the queued output is sent. */
    void (*close)(void *io_ctx);
    /* Optional: an answer given after its hook returned left the engine
     * ready for input again; call smtp_server_feed() with the buffered
     * input (pipelined commands wait there). Not called from inside
     * smtp_server_feed(). */
    void (*resume)(void *io_ctx);
};

/* Reply handle for asynchronous answers. */
struct smtp_server_reply;

struct smtp_server_hooks {
    /* EHLO/HELO/LHLO accepted (domain as given). Optional. */
    void (*helo)(struct smtp_server *server, const char *domain, void *ctx);
    /* AUTH PLAIN/LOGIN with decoded credentials: answer with
     * smtp_server_auth_reply(). authzid may be "". The strings live only
     * during the call (the password is wiped when it returns): copy what
     * an asynchronous check needs. */
    void (*auth)(struct smtp_server *server, struct smtp_server_reply *reply,
                 const char *authzid, const char *authcid, const char *password, void *ctx);
    /* MAIL FROM (syntax and parameters already checked). tx_free follows
     * for this tx whatever the answer, so tx->data may be set here. */
    void (*mail_from)(struct smtp_server *server, struct smtp_server_reply *reply,
                      struct smtp_tx *tx, void *ctx);
    /* RCPT TO: the recipient is added to tx->rcpts only on a 2xx reply.
     * rcpt->data may be set here. The engine frees a refused rcpt after
     * the answer, and an accepted one with its transaction; what
     * rcpt->data holds then goes to rcpt_free. Without rcpt_free, the
     * daemon releases rcpt->data itself before answering other than 2xx
     * and in tx_free, and a candidate answered 2xx after the session was
     * closed or freed leaks: set rcpt_free. */
    void (*rcpt_to)(struct smtp_server *server, struct smtp_server_reply *reply,
                    struct smtp_tx *tx, struct smtp_rcpt *rcpt, void *ctx);
    /* The first DATA/BDAT of a transaction with at least one recipient:
     * prepare to receive content. Answer 354 (DATA) or 250 (the engine
     * answers each BDAT chunk itself); any code below 400 means "go ahead"
     * (for DATA the engine sends 354 with the answer's text, or its own if
     * the text is empty), 4xx/5xx refuse (DATA: sent as the DATA reply; BDAT:
     * sent after the chunk is read, and the transaction ends). */
    void (*data_begin)(struct smtp_server *server, struct smtp_server_reply *reply,
                       struct smtp_tx *tx, void *ctx);
    /* Content, un-stuffed, in order. Synchronous, no reply. */
    void (*data_chunk)(struct smtp_server *server, struct smtp_tx *tx, const char *data,
                       size_t len, void *ctx);
    /* The end of content: make it durable, then answer. SMTP: one
     * smtp_server_reply_send() on reply. LMTP: one
     * smtp_server_rcpt_data_reply() per accepted recipient, in any order;
     * the engine sends them in recipient order, each as soon as those
     * before it are out. In LMTP, smtp_server_reply_send() answers every
     * recipient not answered yet. Not called when the engine refuses the
     * content itself (size limit, bare newline policy): the daemon sees
     * tx_free only. */
    void (*data_end)(struct smtp_server *server, struct smtp_server_reply *reply,
                     struct smtp_tx *tx, void *ctx);
    /* The transaction is gone (RSET, end of data, new MAIL, HELO, QUIT,
     * refused MAIL, disconnect at any point, mid-DATA included): free what
     * tx->data holds. Called once per transaction, after rcpt_free for
     * each of its recipients. Must not call into the engine. */
    void (*tx_free)(struct smtp_server *server, struct smtp_tx *tx, void *ctx);
    /* A recipient is gone and rcpt->data is not NULL: free what it holds
     * (the engine sets rcpt->data to NULL afterwards). Called exactly
     * once for every recipient that rcpt_to saw and whose data is still
     * set when the engine lets it go:
     *   - refused (any answer but 2xx): after the answer was acted on, so
     *     the daemon may answer without releasing first, and must not
     *     touch rcpt after answering;
     *   - accepted: when its transaction ends, just before tx_free;
     *   - answered after the session was closed (timeout, too many errors)
     *     or freed (the client went away before the answer): when the
     *     answer is given, whatever it is. After smtp_server_free, server
     *     and tx are NULL: ctx must stay valid until every reply handle
     *     has been answered.
     * tx_free then finds rcpt->data NULL for every recipient. Optional
     * (without it the engine leaves rcpt->data alone: see rcpt_to); must
     * not call into the engine. */
    void (*rcpt_free)(struct smtp_server *server, struct smtp_tx *tx, struct smtp_rcpt *rcpt,
                      void *ctx);
};

/* Creates a session and queues the greeting. ctx is passed to hooks;
 * io_ctx to io. Strings in settings must outlive the session. */
struct smtp_server *smtp_server_new(const struct smtp_server_settings *settings,
                                    const struct smtp_server_io *io, void *io_ctx,
                                    const struct smtp_server_hooks *hooks, void *ctx);
/* Frees the session (the transport is gone). Pending reply handles become
 * inert: answering them later is allowed and writes nothing (the handle is
 * freed by its last answer, so it must still be answered); answering a
 * pending RCPT hands its recipient's data to rcpt_free then (server and
 * tx NULL). rcpt_free and tx_free are called for a transaction in
 * progress and its accepted recipients. May be called from inside a hook
 * or an io callback: the engine then finishes its own work first, and
 * makes no further io call. Accepts NULL, sets *server to NULL. */
void smtp_server_free(struct smtp_server **server);

/* Consumes complete commands (and content) from in, up to the first one
 * that waits for an asynchronous answer. Call again when more input
 * arrives and after each answer (smtp_server_wants_input tells): an answer
 * given outside a hook call never reads input itself. Always pass the same
 * buffer; consumed bytes are removed from it before returning. Answers
 * given synchronously inside a hook are acted on when the hook returns,
 * and processing continues in the same call; a feed called from inside a
 * hook does nothing (the outer call goes on). */
void smtp_server_feed(struct smtp_server *server, struct mg_buf *in);
/* Whether the engine can take input now (no answer pending, not closing). */
bool smtp_server_wants_input(const struct smtp_server *server);
/* Whether a hook's answer is awaited (an open session only). */
bool smtp_server_is_answer_pending(const struct smtp_server *server);

/* The transport became TLS (after start_tls, once the handshake is done):
 * the session resets to the greeting state, as RFC 3207 requires. */
void smtp_server_tls_ready(struct smtp_server *server);
/* The idle timeout fired: 421 4.4.2 and close. */
void smtp_server_timeout(struct smtp_server *server);
/* Shutting down: 421 4.3.2 and close (at once, or after the current
 * reply). */
void smtp_server_shutdown(struct smtp_server *server);

/* Answers for hooks. code: 3-digit SMTP code; enhanced: "2.1.0" or NULL;
 * text: one line (no CR/LF; the engine refuses to send control
 * characters). The engine copies the strings; a NULL or malformed enhanced
 * code becomes "<class>.0.0", and a code outside 2xx-5xx (or a 3xx but for
 * data_begin's 354) becomes 451 4.3.0 with an error logged. The handle is
 * freed by the answer (LMTP: by the last recipient's): do not use it
 * afterwards. Answering twice is a bug (assertion). */
void smtp_server_reply_send(struct smtp_server_reply *reply, unsigned code,
                            const char *enhanced, const char *text);
/* LMTP after data_end: the answer for recipient rcpt_index. */
void smtp_server_rcpt_data_reply(struct smtp_server_reply *reply, unsigned rcpt_index,
                                 unsigned code, const char *enhanced, const char *text);
/* AUTH answer: is_ok 235 2.7.0, otherwise 535 5.7.8 (which counts
 * towards max_errors). username: the identity to record (NULL: the
 * authcid given). */
void smtp_server_auth_reply(struct smtp_server_reply *reply, bool is_ok,
                            const char *username);

/* Session facts for the hooks. */
const char *smtp_server_helo(const struct smtp_server *server);          /* NULL before */
const char *smtp_server_auth_user(const struct smtp_server *server);     /* NULL before */
bool smtp_server_is_esmtp(const struct smtp_server *server);
enum smtp_protocol smtp_server_protocol(const struct smtp_server *server);

#endif
