/* Internals of the IMAP server shared by its files: the server, the
 * session, the command, the selected mailbox view. */
#ifndef MG_MDA_IMAP_PRIVATE_H
#define MG_MDA_IMAP_PRIVATE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "common/buf.h"
#include "common/line_reader.h"
#include "common/listener.h"
#include "common/unique_id.h"
#include "mda/imap/imap_limits.h"
#include "mda/imap/imap_parser.h"
#include "mda/imap/imap_server.h"
#include "mda/imap/imap_session.h"
#include "mda/store/store.h"

struct mg_arena;
struct mg_conn;
struct mg_strmap;
struct mg_auth_request;

#define IMAP_LISTENERS_MAX 16

struct imap_server {
    uv_loop_t *loop;
    const struct mg_settings *settings;
    struct store *store;
    struct mg_auth_client *auth;
    struct mg_tls_context *tls;
    struct mg_listener listeners[IMAP_LISTENERS_MAX];
    size_t n_listeners;
    struct mg_strmap *per_ip;   /* ip -> struct imap_ip_stats */
    struct imap_session *sessions;
    unsigned n_sessions;
    bool is_stopping;
};

struct imap_ip_stats {
    unsigned connections;
    unsigned failures;          /* failed logins in the current window */
    uint64_t window_start_ms;
};

enum imap_state {
    IMAP_STATE_NOT_AUTH,
    IMAP_STATE_AUTH,
    IMAP_STATE_SELECTED,
    IMAP_STATE_LOGOUT,
};

/* Command flags. */
enum {
    IMAP_CMDF_PREAUTH = 1 << 0,   /* allowed before login */
    IMAP_CMDF_AUTH = 1 << 1,      /* allowed once logged in */
    IMAP_CMDF_SELECTED = 1 << 2,  /* needs a selected mailbox */
    IMAP_CMDF_UID = 1 << 3,       /* may follow "UID" */
    /* RFC 3501 7.4.1: no EXPUNGE responses while FETCH, STORE or SEARCH
     * (by sequence number) run. */
    IMAP_CMDF_NO_EXPUNGE = 1 << 4,
};

struct imap_cmd;

enum imap_cmd_result {
    IMAP_CMD_DONE,  /* the tagged reply was sent (imap_cmd_finish) */
    IMAP_CMD_ASYNC, /* it will be */
};

struct imap_command {
    const char *name;
    unsigned flags;
    enum imap_cmd_result (*run)(struct imap_cmd *cmd);
};

const struct imap_command *imap_command_find(const char *name, size_t len);

struct imap_cmd {
    struct imap_session *s;
    struct mg_arena *arena;
    char *tag;
    const struct imap_command *def;
    bool is_uid;
    struct imap_arg *args;
    size_t nargs;
    /* Command state for asynchronous commands. */
    void *state;
    /* Called when output drained below the low mark (set before asking
     * with mg_conn_want_drain). */
    void (*on_drain)(struct imap_cmd *cmd);
    /* Called when the session goes away while the command waits for
     * something other than a store job (auth answer, timer, output
     * drain, input line): release it and return true, and the session
     * frees the command. NULL: a store job is outstanding and its callback
     * will finish the command (imap_cmd_finish on a dead session only
     * frees). */
    bool (*on_cancel)(struct imap_cmd *cmd);
    /* Input lines while the command runs (IDLE's DONE, AUTHENTICATE's
     * responses). */
    void (*on_line)(struct imap_cmd *cmd, const char *line, size_t len);
    /* Untagged responses are already synced (e.g. SELECT). */
    bool skip_sync;
};

/* One selected mailbox, as this session sees it: the sequence numbers
 * are positions in uids[], which changes only when the session reports
 * EXISTS and EXPUNGE. */
struct imap_view {
    char *name;                 /* allocated: most names are short */
    uint32_t mailbox_id;
    uint32_t uidvalidity;
    bool is_readonly;
    uint32_t *uids;
    size_t count, cap;
    uint64_t modseq;            /* changes up to here are reported */
    /* The messages that are \Recent for this session, sorted (they were
     * claimed by it: store_claim_recent). */
    uint32_t *recent;
    size_t n_recent, cap_recent;
    /* Expunges seen in the index but not reported yet. */
    uint32_t *pending_expunges;
    size_t n_pending_expunges;
    /* Our own flag changes, not to be echoed by the next sync. */
    struct { uint32_t uid; uint64_t modseq; } *own;
    size_t n_own;
    struct store_watch *watch;
    bool is_dirty;
    unsigned keyword_count;     /* keywords announced in FLAGS */
    size_t first_unseen;        /* 1-based sequence number, 0: none (at SELECT) */
};

struct imap_session {
    struct imap_session *next, *prev;  /* in the server's list */
    struct imap_server *server;
    struct mg_conn *conn;       /* NULL once the connection is gone */
    int refcount;
    char id[MG_SESSION_ID_LEN + 1];
    char ip[64];
    enum imap_state state;
    uint64_t started_ms;

    struct mg_line_reader reader;
    struct mg_buf cmd_text;     /* the command being assembled */
    bool is_skipping;           /* discarding the rest of a refused command */
    bool is_processing;         /* inside session_process_input */
    /* APPEND's message literal, streamed to a file. */
    struct {
        char *base;
        char *path;
        int fd;
        uint64_t size;
    } files[1];
    unsigned n_files;
    int literal_fd;
    uint64_t literal_file_left;
    int literal_error;
    bool is_literal_after_cr; /* the chunk before ended with a CR */

    struct imap_cmd *running;
    unsigned bad_count;

    unsigned auth_failures;
    struct mg_auth_request *auth_req;
    uv_timer_t *delay_timer;
    char *username;
    struct store_user *user;

    struct imap_view *view;
    bool is_idling;

    bool utf8_enabled;
    bool condstore_enabled;
    bool is_closing;
    /* Refused at connect (too many connections): BYE after TLS. */
    const char *refusal;
};

/* ---- session services (imap_session.c) ---- */

/* The callbacks a session needs on its connection (for mg_conn_accept). */
struct mg_conn_callbacks;
const struct mg_conn_callbacks *imap_session_conn_callbacks(void);

/* Writes text as is. */
void imap_write(struct imap_session *s, const char *data, size_t len);
void imap_printf(struct imap_session *s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Ends the command: syncs untagged updates (unless cmd->skip_sync), sends
 * "tag status text", frees the command and goes on with input. */
void imap_cmd_finish(struct imap_cmd *cmd, const char *status, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* BAD with the reason given (counts toward the bad-command limit). */
void imap_cmd_bad(struct imap_cmd *cmd, const char *reason);
/* A command that went asynchronous: whether the session is still alive
 * (when not, the caller only frees its state). */
bool imap_session_is_alive(const struct imap_session *s);
void imap_session_ref(struct imap_session *s);
void imap_session_unref(struct imap_session **s);
/* Logs the session out ("* BYE" already sent by the caller if wanted). */
void imap_session_close(struct imap_session *s);
/* Writes data to fd with every bare CR and bare LF as CR LF (stored
 * messages are CR LF only, like LMTP's). *is_after_cr carries a CR that
 * ended the previous piece; start with false, pass is_end on the last
 * piece. Returns 0 or -errno. */
int imap_session_write_crlf(int fd, const char *data, size_t len, bool *is_after_cr, bool is_end);
/* Enters the selected state with a view / leaves it. */
void imap_session_select(struct imap_session *s, struct imap_view *view);
void imap_session_unselect(struct imap_session *s);
/* Capability list for CAPABILITY and the greeting's [CAPABILITY ...]. */
void imap_session_capabilities(struct imap_session *s, struct mg_buf *out);
/* Mailbox names on the wire (modified UTF-7, or UTF-8 after ENABLE
 * UTF8=ACCEPT) to the internal UTF-8 form, normalised; -1 with a reason
 * for NO/BAD. */
int imap_session_mailbox_arg(struct imap_cmd *cmd, const struct imap_arg *arg,
                             char out[MAILBOX_NAME_MAX + 1], const char **error_r);
/* And back, as an astring for responses. */
void imap_session_write_mailbox(struct imap_session *s, struct mg_buf *out, const char *name);
/* The login step after credentials were checked (LOGIN, AUTHENTICATE). */
enum imap_cmd_result imap_session_login(struct imap_cmd *cmd, const char *authzid,
                                        const char *authcid, const char *password);

/* ---- the selected mailbox (imap_view.c) ---- */

/* Loads the view of mailbox m (UIDs and state) from the store. */
struct imap_view *imap_view_new(struct imap_session *s, const struct store_mailbox *m,
                                bool readonly);
void imap_view_free(struct imap_view **view);
/* Reports what changed since the last report: EXISTS, RECENT, FETCH
 * FLAGS, and EXPUNGE when allowed. */
void imap_view_sync(struct imap_session *s, bool allow_expunge);
/* Before a command on the selected mailbox: follows a RENAME by another
 * session; false (after "* BYE", the session closing) when another
 * session deleted it. */
bool imap_view_check(struct imap_session *s);
/* Remembers a change this session made, so the next sync does not echo
 * it. */
void imap_view_note_own_change(struct imap_view *view, uint32_t uid, uint64_t modseq);
/* Position of uid (0-based), or -1. */
long imap_view_find(const struct imap_view *view, uint32_t uid);
/* Writes "(\Seen \Flagged kw1 ...)" for flags and keyword bits. */
void imap_view_write_flags(struct imap_session *s, struct mg_buf *out, uint32_t flags,
                           uint64_t keywords, bool is_recent);
/* The FLAGS and PERMANENTFLAGS untagged responses. */
void imap_view_write_flag_lists(struct imap_session *s, struct mg_buf *out);
/* Whether uid is \Recent for this session. */
bool imap_view_is_recent(const struct imap_view *view, uint32_t uid);

/* Parses a flag list (or a single flag) into system flags and keywords.
 * Returns 0, or -1 with a reason. \Recent is refused; "\*" too. */
int imap_flags_parse(struct imap_cmd *cmd, const struct imap_arg *arg, bool is_list_ok,
                     struct store_flags *flags_r, const char **error_r);

/* ---- flag lists in responses (imap_flags.c) ---- */

/* The user's keyword names (index = keyword bit), read once for a command
 * that writes many flag lists: the store reads them in a transaction of
 * its own each time. Zero-initialise; free with imap_flags_names_free. */
struct imap_flags_names {
    char **names;
    unsigned count;
    bool is_loaded;
};

/* Reads the names from the store (again, when loaded before). On a store
 * error the list is empty. */
void imap_flags_names_load(struct imap_session *s, struct imap_flags_names *names);
/* Frees the names; the struct can be loaded again. */
void imap_flags_names_free(struct imap_flags_names *names);
/* Writes "(\Seen \Flagged kw1 ...)" for flags and keyword bits, as
 * imap_view_write_flags does, with the names in *names: loaded on first
 * use, and again when a bit has no name yet (a keyword created since). */
void imap_flags_write(struct imap_session *s, struct imap_flags_names *names, struct mg_buf *out,
                      uint32_t flags, uint64_t keywords, bool is_recent);

#endif
