/* The layout of struct smtp_server and the functions its files share:
 *   smtp_server.c       session core: input loop, state, replies, hooks' answers
 *   smtp_server_cmds.c  the command table and the envelope commands
 *   smtp_server_auth.c  AUTH PLAIN / LOGIN and STARTTLS
 *   smtp_server_data.c  DATA and BDAT content, end-of-data replies
 * Nothing here is for the daemons: they see lmtp/smtp_server.h only. */
#ifndef MG_LMTP_SMTP_SERVER_PRIVATE_H
#define MG_LMTP_SMTP_SERVER_PRIVATE_H

#include "common/buf.h"
#include "common/dotstuff.h"
#include "common/line_reader.h"
#include "lmtp/smtp_reply.h"
#include "lmtp/smtp_server.h"

struct mg_arena;

/* Hard limits, all in one place. */
#define SMTP_SERVER_LINE_DEFAULT 2048     /* max_line_length 0 */
#define SMTP_SERVER_LINE_MIN 512          /* RFC 5321 section 4.5.3.1.4 */
#define SMTP_SERVER_AUTH_LINE_MAX 12288   /* RFC 4954 section 4: AUTH lines */
#define SMTP_SERVER_RECIPIENTS_DEFAULT 1000
#define SMTP_SERVER_ERRORS_DEFAULT 20
#define SMTP_SERVER_CHUNK_MAX (64 * 1024) /* content bytes per data_chunk call */

/* What the next input is. Changed only by smtp_server_set_state(). An
 * answer pending from a hook is not a state: it is server->pending, and
 * while it is set no input is read whatever the state. */
enum smtp_server_state {
    SMTP_SERVER_STATE_HELO,     /* commands; HELO/EHLO/LHLO not seen yet */
    SMTP_SERVER_STATE_READY,    /* commands; no transaction */
    SMTP_SERVER_STATE_MAIL,     /* commands; MAIL accepted: RCPT, DATA, BDAT */
    SMTP_SERVER_STATE_CHUNKING, /* commands; between BDAT chunks */
    SMTP_SERVER_STATE_DATA,     /* DATA content up to CR LF . CR LF */
    SMTP_SERVER_STATE_BDAT,     /* the bytes of one BDAT chunk */
    SMTP_SERVER_STATE_AUTH,     /* a SASL response line */
    SMTP_SERVER_STATE_STARTTLS, /* no input until the TLS handshake is done */
    SMTP_SERVER_STATE_CLOSED,   /* closing or freed: nothing is read or written */
};

/* The transaction behind the public struct smtp_tx. */
struct smtp_server_tx {
    struct smtp_tx tx;          /* what hooks see; first member */
    struct mg_arena *arena;     /* MAIL FROM strings */
    size_t rcpt_alloc;          /* capacity of tx.rcpts */
    bool has_data_begun;        /* data_begin said go */
};

enum smtp_server_reply_kind {
    SMTP_SERVER_REPLY_AUTH,
    SMTP_SERVER_REPLY_MAIL,
    SMTP_SERVER_REPLY_RCPT,
    SMTP_SERVER_REPLY_DATA_BEGIN,
    SMTP_SERVER_REPLY_DATA_END,
};

struct smtp_server_answer {
    unsigned code;
    char enhanced[SMTP_REPLY_ENHANCED_MAX + 1];
    char *text;                 /* sanitised copy */
    bool is_set;
};

/* A hook's reply handle. Allocated per hook call; freed once every answer
 * it expects has been given and acted on. When the session is freed first,
 * server becomes NULL and the handle lives on, inert, until answered. */
struct smtp_server_reply {
    struct smtp_server *server;
    /* The session's hooks and their ctx: an inert RCPT handle still hands
     * its candidate's data to rcpt_free. */
    const struct smtp_server_hooks *hooks;
    void *ctx;
    enum smtp_server_reply_kind kind;
    /* The hook call has not returned yet: answers are stored and acted on
     * when it returns, so that no state changes under the hook's feet and
     * the call stack never grows with pipelined commands. */
    bool is_in_hook;
    bool is_bdat;               /* DATA_BEGIN / DATA_END for BDAT */
    struct smtp_rcpt *rcpt;     /* RCPT: the candidate, owned until accepted;
                                 * its data goes to rcpt_free with the handle */
    char *username;             /* AUTH: who logged in */
    bool is_auth_ok;
    size_t answer_count;        /* 1, or the accepted recipients (LMTP DATA_END) */
    size_t answered;
    size_t next_to_send;        /* LMTP: replies go out in recipient order */
    struct smtp_server_answer *answers;
};

struct smtp_server {
    struct smtp_server_settings set; /* strings borrowed from the caller */
    const struct smtp_server_io *io;
    void *io_ctx;
    const struct smtp_server_hooks *hooks;
    void *ctx;

    enum smtp_server_state state;
    struct mg_line_reader reader;
    struct mg_buf *in;               /* the input, while smtp_server_feed runs */
    struct mg_arena *cmd_arena;      /* one command's parse; cleared per command */
    struct mg_buf out;               /* a reply being formatted */

    char *helo;
    char *auth_user;
    bool is_esmtp;
    bool is_tls;
    unsigned errors;

    struct smtp_server_tx *tx;
    struct smtp_server_reply *pending;

    unsigned busy;                   /* entry depth: freeing waits for 0 */
    bool is_free_requested;
    bool is_io_closed;
    bool is_shutdown_requested;

    /* AUTH exchange */
    bool is_auth_login;              /* LOGIN, else PLAIN */
    char *auth_login_user;           /* LOGIN: the decoded user name */

    /* DATA */
    struct mg_dotstuff_decoder decoder;
    struct mg_buf chunk;             /* decoded content for data_chunk */
    bool is_data_discarding;         /* too big or bare newline: stop passing */

    /* BDAT chunk being read */
    uint64_t bdat_size;
    bool is_bdat_last;
    bool is_bdat_discarding;         /* read and drop, then send bdat_error */
    struct smtp_status bdat_error;   /* static strings or the two below */
    char bdat_error_enhanced[SMTP_REPLY_ENHANCED_MAX + 1];
    char bdat_error_text[SMTP_REPLY_TEXT_MAX + 1];
};

/* smtp_server.c */
void smtp_server_set_state(struct smtp_server *server, enum smtp_server_state state);
/* One reply line (enhanced may be NULL). Nothing once closed. */
void smtp_server_reply(struct smtp_server *server, unsigned code, const char *enhanced,
                       const char *text);
void smtp_server_reply_status(struct smtp_server *server, const struct smtp_status *status);
/* A reply to a bad command: counts towards max_errors, and at the limit
 * adds 421 and closes. */
void smtp_server_reply_error(struct smtp_server *server, unsigned code, const char *enhanced,
                             const char *text);
void smtp_server_reply_error_status(struct smtp_server *server, const struct smtp_status *status);
/* Asks the transport to close after the queued output (once). */
void smtp_server_close(struct smtp_server *server);
/* The state to return to outside a transaction: HELO or READY. */
enum smtp_server_state smtp_server_idle_state(const struct smtp_server *server);

struct smtp_server_reply *smtp_server_reply_new(struct smtp_server *server,
                                                enum smtp_server_reply_kind kind,
                                                size_t answer_count);
/* Marks the hook call done: acts on answers given during it, or leaves the
 * reply pending. */
void smtp_server_hook_returned(struct smtp_server *server, struct smtp_server_reply *reply);
/* Frees the handle; a candidate recipient still held goes through
 * rcpt_free first (with server and tx NULL when the session is gone). */
void smtp_server_reply_free(struct smtp_server_reply **reply);

/* Transactions. */
struct smtp_server_tx *smtp_server_tx_new(struct smtp_server *server);
/* Calls rcpt_free for each recipient and tx_free, frees the transaction,
 * and returns to the idle state. */
void smtp_server_tx_end(struct smtp_server *server);

/* smtp_server_cmds.c */
void smtp_server_cmd_dispatch(struct smtp_server *server, const char *line, size_t len,
                              bool is_bare_lf);
void smtp_server_cmd_too_long(struct smtp_server *server);
void smtp_server_cmd_answered(struct smtp_server_reply *reply);

/* smtp_server_auth.c */
void smtp_server_cmd_auth(struct smtp_server *server, const char *args, size_t len);
void smtp_server_cmd_starttls(struct smtp_server *server, const char *args, size_t len);
void smtp_server_auth_input(struct smtp_server *server, const char *line, size_t len);
void smtp_server_auth_too_long(struct smtp_server *server);
void smtp_server_auth_answered(struct smtp_server_reply *reply);

/* smtp_server_data.c */
void smtp_server_cmd_data(struct smtp_server *server, const char *args, size_t len);
void smtp_server_cmd_bdat(struct smtp_server *server, const char *args, size_t len);
/* Consumes DATA content from the input; false when there was none. */
bool smtp_server_data_input(struct smtp_server *server);
/* One piece of a BDAT chunk from the line reader. */
void smtp_server_bdat_input(struct smtp_server *server, const char *data, size_t len,
                            bool is_end);
void smtp_server_data_begin_answered(struct smtp_server_reply *reply);
/* Sends the LMTP answers available in order; returns true when all are out. */
bool smtp_server_data_end_answered(struct smtp_server_reply *reply);
/* A final reply to the end of data: once, or per recipient in LMTP. */
void smtp_server_reply_final(struct smtp_server *server, const struct smtp_status *status);

#endif
