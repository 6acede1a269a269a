/* The IMAP session: turning input into commands, dispatching them in
 * order, and the parts of the protocol every command shares. */
#include "mda/imap/imap_private.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/alloc.h"
#include "common/fd_io.h"
#include "common/arena.h"
#include "common/ascii.h"
#include "common/auth_client.h"
#include "common/conn.h"
#include "common/datetime.h"
#include "common/log.h"
#include "common/password.h"
#include "common/settings.h"
#include "common/strmap.h"
#include "common/tls.h"
#include "mda/imap/mutf7.h"
#include "mda/mime/imap_quote.h"

static void session_process_input(struct imap_session *s);

/* ---- lifetime ---- */

void imap_session_ref(struct imap_session *s)
{
    s->refcount++;
}

static void session_free(struct imap_session *s)
{
    struct imap_server *server = s->server;
    if (s->prev != NULL)
        s->prev->next = s->next;
    else if (server->sessions == s)
        server->sessions = s->next;
    if (s->next != NULL)
        s->next->prev = s->prev;
    server->n_sessions--;
    imap_view_free(&s->view);
    store_user_unref(&s->user);
    if (s->files[0].fd >= 0)
        close(s->files[0].fd);
    if (s->files[0].path != NULL)
        unlink(s->files[0].path);
    free(s->files[0].path);
    free(s->files[0].base);
    mg_buf_free(&s->cmd_text);
    free(s->username);
    free(s);
}

void imap_session_unref(struct imap_session **sp)
{
    struct imap_session *s = *sp;
    *sp = NULL;
    if (s != NULL && --s->refcount == 0)
        session_free(s);
}

bool imap_session_is_alive(const struct imap_session *s)
{
    return s->conn != NULL && !s->is_closing;
}

/* ---- output ---- */

void imap_write(struct imap_session *s, const char *data, size_t len)
{
    if (s->conn != NULL)
        mg_conn_write(s->conn, data, len);
}

void imap_printf(struct imap_session *s, const char *fmt, ...)
{
    if (s->conn == NULL)
        return;
    struct mg_buf b = MG_BUF_INIT;
    va_list ap;
    va_start(ap, fmt);
    mg_buf_vprintf(&b, fmt, ap);
    va_end(ap);
    mg_conn_write(s->conn, b.data, b.len);
    mg_buf_free(&b);
}

static void cmd_free(struct imap_cmd *cmd)
{
    struct imap_session *s = cmd->s;
    if (s->running == cmd)
        s->running = NULL;
    /* A file literal APPEND did not take over. */
    if (s->files[0].fd >= 0) {
        close(s->files[0].fd);
        s->files[0].fd = -1;
    }
    if (s->files[0].path != NULL) {
        unlink(s->files[0].path);
        mg_free(&s->files[0].path);
    }
    mg_free(&s->files[0].base);
    s->n_files = 0;
    struct mg_arena *arena = cmd->arena;
    mg_arena_free(&arena);
    imap_session_unref(&s);
}

void imap_cmd_finish(struct imap_cmd *cmd, const char *status, const char *fmt, ...)
{
    struct imap_session *s = cmd->s;
    if (imap_session_is_alive(s) && !cmd->skip_sync && s->view != NULL)
        imap_view_sync(s, !(cmd->def->flags & IMAP_CMDF_NO_EXPUNGE) || cmd->is_uid);
    /* (The sync may have said BYE: the selected mailbox was deleted.) */
    if (imap_session_is_alive(s)) {
        struct mg_buf b = MG_BUF_INIT;
        mg_buf_printf(&b, "%s %s ", cmd->tag, status);
        va_list ap;
        va_start(ap, fmt);
        mg_buf_vprintf(&b, fmt, ap);
        va_end(ap);
        mg_buf_append_str(&b, "\r\n");
        mg_conn_write(s->conn, b.data, b.len);
        mg_buf_free(&b);
        if (strcmp(status, "BAD") == 0)
            s->bad_count++;
        else
            s->bad_count = 0;
    }
    bool was_logout = s->state == IMAP_STATE_LOGOUT;
    imap_session_ref(s);
    cmd_free(cmd);
    if (imap_session_is_alive(s)) {
        if (was_logout) {
            imap_session_close(s);
        } else if (s->bad_count >= IMAP_MAX_BAD_COMMANDS) {
            imap_printf(s, "* BYE Too many invalid commands.\r\n");
            imap_session_close(s);
        } else {
            mg_conn_resume_reading(s->conn);
            session_process_input(s);
        }
    }
    imap_session_unref(&s);
}

void imap_cmd_bad(struct imap_cmd *cmd, const char *reason)
{
    imap_cmd_finish(cmd, "BAD", "Error in IMAP command %s: %s", cmd->def->name, reason);
}

void imap_session_close(struct imap_session *s)
{
    if (s->conn != NULL && !s->is_closing) {
        s->is_closing = true;
        mg_conn_close(s->conn);
    }
}

void imap_session_shutdown(struct imap_session *s)
{
    if (!imap_session_is_alive(s))
        return;
    imap_printf(s, "* BYE Server shutting down.\r\n");
    imap_session_close(s);
}

/* ---- capabilities ---- */

void imap_session_capabilities(struct imap_session *s, struct mg_buf *out)
{
    mg_buf_append_str(out, "IMAP4rev1 SASL-IR LITERAL+ ID ENABLE IDLE");
    if (s->state == IMAP_STATE_NOT_AUTH) {
        mg_buf_append_str(out, " AUTH=PLAIN");
        return;
    }
    mg_buf_printf(out, " NAMESPACE UIDPLUS MOVE UNSELECT CHILDREN SPECIAL-USE "
                       "CREATE-SPECIAL-USE LIST-EXTENDED LIST-STATUS STATUS=SIZE APPENDLIMIT=%llu",
                  (unsigned long long)s->server->settings->imap.append_limit);
}

/* ---- mailbox names ---- */

int imap_session_mailbox_arg(struct imap_cmd *cmd, const struct imap_arg *arg,
                             char out[MAILBOX_NAME_MAX + 1], const char **error_r)
{
    const char *raw;
    size_t len;
    if (!imap_arg_get_astring(arg, &raw, &len)) {
        *error_r = "Invalid mailbox name";
        return -1;
    }
    struct mg_buf utf8 = MG_BUF_INIT;
    int r;
    if (cmd->s->utf8_enabled) {
        mg_buf_append(&utf8, raw, len);
        r = 0;
    } else {
        r = mutf7_decode(raw, len, &utf8);
        if (r < 0)
            *error_r = "Mailbox name is not valid modified UTF-7";
    }
    if (r == 0)
        r = mailbox_name_normalize(mg_buf_cstr(&utf8), utf8.len, out, error_r);
    mg_buf_free(&utf8);
    return r;
}

void imap_session_write_mailbox(struct imap_session *s, struct mg_buf *out, const char *name)
{
    if (s->utf8_enabled) {
        imap_quote_append_astring(out, name, strlen(name));
        return;
    }
    struct mg_buf enc = MG_BUF_INIT;
    if (mutf7_encode(name, strlen(name), &enc) < 0)
        mg_buf_append_str(&enc, "INBOX");
    imap_quote_append_astring(out, enc.data, enc.len);
    mg_buf_free(&enc);
}

/* ---- selection ---- */

void imap_session_select(struct imap_session *s, struct imap_view *view)
{
    imap_session_unselect(s);
    s->view = view;
    s->state = IMAP_STATE_SELECTED;
}

void imap_session_unselect(struct imap_session *s)
{
    imap_view_free(&s->view);
    if (s->state == IMAP_STATE_SELECTED)
        s->state = IMAP_STATE_AUTH;
}

/* ---- login ---- */

struct login_state {
    struct imap_cmd *cmd;
    char *user;
    uint64_t quota;
};

static struct imap_ip_stats *ip_stats(struct imap_session *s)
{
    return mg_strmap_get(s->server->per_ip, s->ip);
}

/* Failed logins count per address within a ten-minute window. */
#define IMAP_AUTH_FAILURE_WINDOW_MS (10 * 60 * 1000)

static bool ip_failures_exceeded(struct imap_session *s)
{
    struct imap_ip_stats *st = ip_stats(s);
    if (st == NULL)
        return false;
    uint64_t now = mg_datetime_monotonic_ms();
    if (now - st->window_start_ms > IMAP_AUTH_FAILURE_WINDOW_MS) {
        st->window_start_ms = now;
        st->failures = 0;
    }
    return st->failures >= s->server->settings->imap.max_auth_failures_per_ip;
}

static void delay_timer_closed(uv_handle_t *h)
{
    free(h);
}

static void login_fail_reply(struct imap_cmd *cmd)
{
    struct imap_session *s = cmd->s;
    imap_cmd_finish(cmd, "NO", "[AUTHENTICATIONFAILED] Authentication failed.");
    if (imap_session_is_alive(s) &&
        s->auth_failures >= s->server->settings->imap.max_auth_failures) {
        imap_printf(s, "* BYE Too many failed logins.\r\n");
        imap_session_close(s);
    }
}

static void delay_cb(uv_timer_t *t)
{
    struct imap_cmd *cmd = t->data;
    struct imap_session *s = cmd->s;
    uv_close((uv_handle_t *)s->delay_timer, delay_timer_closed);
    s->delay_timer = NULL;
    login_fail_reply(cmd);
}

static bool delay_cancel(struct imap_cmd *cmd)
{
    struct imap_session *s = cmd->s;
    if (s->delay_timer != NULL) {
        uv_close((uv_handle_t *)s->delay_timer, delay_timer_closed);
        s->delay_timer = NULL;
    }
    return true;
}

static bool auth_cancel(struct imap_cmd *cmd)
{
    mg_auth_cancel(&cmd->s->auth_req);
    return true;
}

static void login_user_opened(int status, struct store_user *user, const char *error, void *ctx)
{
    struct imap_cmd *cmd = ctx;
    struct imap_session *s = cmd->s;
    struct login_state *ls = cmd->state;
    if (!imap_session_is_alive(s)) {
        store_user_unref(&user);
        imap_cmd_finish(cmd, "NO", "gone");
        return;
    }
    if (status != STORE_OK) {
        mg_log_error("imap", "cannot open mail store session=%s user=%s error=%s", s->id,
                     ls->user, error != NULL ? error : "");
        imap_cmd_finish(cmd, "NO", "[UNAVAILABLE] Mail storage is not available, try again later.");
        return;
    }
    s->user = user;
    s->username = mg_strdup(ls->user);
    s->state = IMAP_STATE_AUTH;
    s->auth_failures = 0;
    mg_conn_set_idle_timeout(s->conn, s->server->settings->imap.idle_timeout_ms);
    struct mg_tls *tls = mg_conn_tls(s->conn);
    char uv[MG_LOG_VALUE_MAX];
    mg_log_info("imap", "login session=%s user=%s remote=%s tls=%s cipher=%s", s->id,
                mg_log_str(uv, ls->user), s->ip, tls ? mg_tls_version(tls) : "none",
                tls ? mg_tls_cipher(tls) : "none");
    struct mg_buf caps = MG_BUF_INIT;
    imap_session_capabilities(s, &caps);
    imap_cmd_finish(cmd, "OK", "[CAPABILITY %s] Logged in", mg_buf_cstr(&caps));
    mg_buf_free(&caps);
}

static void login_verified(const struct mg_auth_verify_result *res, void *ctx)
{
    struct imap_cmd *cmd = ctx;
    struct imap_session *s = cmd->s;
    struct login_state *ls = cmd->state;
    s->auth_req = NULL;
    cmd->on_cancel = NULL;
    char uv[MG_LOG_VALUE_MAX];
    switch (res->status) {
    case MG_AUTH_OK:
        ls->user = mg_arena_strdup(cmd->arena, res->user);
        ls->quota = res->quota_bytes;
        /* The store opens the user's index and Maildir in the thread pool;
         * the command waits for that (no on_cancel: a job is out). */
        store_user_open(s->server->store, res->user, res->quota_bytes, true, login_user_opened, cmd);
        return;
    case MG_AUTH_TEMPFAIL:
        mg_log_warning("imap", "login failed temporarily session=%s remote=%s reason=%s", s->id,
                       s->ip, res->reason != NULL ? res->reason : "");
        imap_cmd_finish(cmd, "NO", "[UNAVAILABLE] Temporary authentication failure, try again later.");
        return;
    default:
        break;
    }
    s->auth_failures++;
    struct imap_ip_stats *st = ip_stats(s);
    if (st != NULL)
        st->failures++;
    mg_log_notice("imap", "login failed session=%s user=%s remote=%s reason=%s", s->id,
                  mg_log_str(uv, ls->user), s->ip, res->reason != NULL ? res->reason : "bad credentials");
    /* A delay makes guessing slow, without blocking anyone else. */
    uint64_t delay = s->server->settings->imap.auth_failure_delay_ms;
    if (delay == 0) {
        login_fail_reply(cmd);
        return;
    }
    s->delay_timer = mg_malloc(sizeof(*s->delay_timer));
    uv_timer_init(s->server->loop, s->delay_timer);
    s->delay_timer->data = cmd;
    uv_timer_start(s->delay_timer, delay_cb, delay, 0);
    cmd->on_cancel = delay_cancel;
}

enum imap_cmd_result imap_session_login(struct imap_cmd *cmd, const char *authzid,
                                        const char *authcid, const char *password)
{
    struct imap_session *s = cmd->s;
    if (ip_failures_exceeded(s)) {
        mg_log_notice("imap", "login refused session=%s remote=%s reason=too-many-failures", s->id, s->ip);
        imap_cmd_finish(cmd, "NO", "[UNAVAILABLE] Too many failed logins from your address, try again later.");
        return IMAP_CMD_DONE;
    }
    struct login_state *ls = mg_arena_zalloc(cmd->arena, sizeof(*ls));
    ls->cmd = cmd;
    ls->user = mg_arena_strdup(cmd->arena, authcid);
    cmd->state = ls;
    cmd->on_cancel = auth_cancel;
    s->auth_req = mg_auth_verify(s->server->auth, authzid, authcid, password, "imap", s->ip,
                                 login_verified, cmd);
    return IMAP_CMD_ASYNC;
}

/* ---- input ---- */

static const char *cmd_tag_of(const char *text, size_t len, char out[IMAP_TAG_MAX + 1])
{
    size_t tag_len = 0;
    const char *name, *rest;
    size_t nlen, rlen;
    imap_parse_command_start(text, len, &tag_len, &name, &nlen, &rest, &rlen);
    if (tag_len == 0 || tag_len > IMAP_TAG_MAX)
        return NULL;
    memcpy(out, text, tag_len);
    out[tag_len] = '\0';
    return out;
}

/* Refuses the command being assembled: a tagged BAD when its tag is
 * known, an untagged one otherwise. */
static void refuse_command(struct imap_session *s, const char *code, const char *reason)
{
    char tagbuf[IMAP_TAG_MAX + 1];
    const char *tag = cmd_tag_of(s->cmd_text.data != NULL ? s->cmd_text.data : "", s->cmd_text.len, tagbuf);
    if (tag != NULL)
        imap_printf(s, "%s BAD %s%s\r\n", tag, code, reason);
    else
        imap_printf(s, "* BAD %s%s\r\n", code, reason);
    mg_buf_reset(&s->cmd_text);
    if (s->files[0].fd >= 0) {
        close(s->files[0].fd);
        s->files[0].fd = -1;
    }
    if (s->files[0].path != NULL) {
        unlink(s->files[0].path);
        mg_free(&s->files[0].path);
    }
    mg_free(&s->files[0].base);
    s->n_files = 0;
    if (++s->bad_count >= IMAP_MAX_BAD_COMMANDS) {
        imap_printf(s, "* BYE Too many invalid commands.\r\n");
        imap_session_close(s);
    }
}

static void execute_command(struct imap_session *s)
{
    const char *text = s->cmd_text.data != NULL ? s->cmd_text.data : "";
    size_t len = s->cmd_text.len;
    size_t tag_len;
    const char *name, *rest;
    size_t name_len, rest_len;
    if (len == 0) {
        /* Clients send empty lines after literals or by accident. */
        return;
    }
    if (imap_parse_command_start(text, len, &tag_len, &name, &name_len, &rest, &rest_len) < 0 ||
        tag_len > IMAP_TAG_MAX) {
        refuse_command(s, "", tag_len > 0 && tag_len <= IMAP_TAG_MAX ? "Error in IMAP command: missing command name"
                                                                    : "Error in IMAP command: invalid tag");
        return;
    }
    /* Room for the command's parse; more comes in chunks when needed. A
     * command that waits (IDLE above all) keeps its arena all along. */
    struct mg_arena *arena = mg_arena_new(len + 1024);
    struct imap_cmd *cmd = mg_arena_zalloc(arena, sizeof(*cmd));
    cmd->arena = arena;
    cmd->s = s;
    imap_session_ref(s);
    cmd->tag = mg_arena_strndup(arena, text, tag_len);

    bool is_uid = false;
    if (mg_ascii_eq(name, name_len, "UID")) {
        is_uid = true;
        const char *sub = rest;
        size_t sub_len = 0;
        while (sub_len < rest_len && imap_is_atom_char((unsigned char)sub[sub_len]))
            sub_len++;
        name = sub;
        name_len = sub_len;
        rest = sub + sub_len;
        rest_len -= sub_len;
        if (rest_len > 0 && *rest == ' ') {
            rest++;
            rest_len--;
        }
    }
    const struct imap_command *def = imap_command_find(name, name_len);
    static const struct imap_command unknown = { "?", 0, NULL };
    cmd->def = def != NULL ? def : &unknown;
    cmd->is_uid = is_uid;
    s->running = cmd;
    if (def == NULL || (is_uid && !(def->flags & IMAP_CMDF_UID))) {
        imap_cmd_finish(cmd, "BAD", "Error in IMAP command received by server: unknown command.");
        return;
    }
    if (s->state == IMAP_STATE_NOT_AUTH && !(def->flags & IMAP_CMDF_PREAUTH)) {
        imap_cmd_finish(cmd, "BAD", "Error in IMAP command %s: Not allowed before login.", def->name);
        return;
    }
    if (s->state != IMAP_STATE_NOT_AUTH && !(def->flags & IMAP_CMDF_AUTH)) {
        imap_cmd_finish(cmd, "BAD", "Error in IMAP command %s: Already logged in.", def->name);
        return;
    }
    if ((def->flags & IMAP_CMDF_SELECTED) && s->state != IMAP_STATE_SELECTED) {
        imap_cmd_finish(cmd, "BAD", "Error in IMAP command %s: No mailbox selected.", def->name);
        return;
    }
    const char *error;
    if (imap_parse_args(arena, rest, rest_len, &cmd->args, &cmd->nargs, &error) < 0) {
        imap_cmd_bad(cmd, error);
        return;
    }
    if (!imap_view_check(s)) {
        imap_cmd_finish(cmd, "NO", "Selected mailbox was deleted.");
        return;
    }
    def->run(cmd);
}

static bool is_append_message_literal(struct imap_session *s, const char *text, size_t len)
{
    /* "tag APPEND mailbox [flags] [date] {n}": the literal after a
     * complete mailbox argument is the message. */
    if (s->state == IMAP_STATE_NOT_AUTH || s->user == NULL)
        return false;
    size_t tag_len, name_len, rest_len;
    const char *name, *rest;
    if (imap_parse_command_start(text, len, &tag_len, &name, &name_len, &rest, &rest_len) < 0 ||
        !mg_ascii_eq(name, name_len, "APPEND"))
        return false;
    /* Parse what is there; a partial command parses as long as the literal
     * announcement is the last thing. */
    struct mg_arena *arena = mg_arena_new(len + 1024);
    struct imap_arg *args;
    size_t n;
    const char *error;
    bool ok = imap_parse_args(arena, rest, rest_len, &args, &n, &error) == 0 && n >= 1;
    mg_arena_free(&arena);
    return ok;
}

static void handle_line(struct imap_session *s, const char *line, size_t len)
{
    const struct mg_settings *set = s->server->settings;
    bool preauth = s->state == IMAP_STATE_NOT_AUTH;
    size_t max = preauth ? IMAP_COMMAND_MAX_PREAUTH : IMAP_COMMAND_MAX;
    if (s->cmd_text.len + len + 2 > max) {
        refuse_command(s, "", "Command too long.");
        return;
    }
    uint64_t size;
    bool nonsync;
    size_t prefix;
    int lit = mg_line_literal_announcement(line, len, &size, &nonsync, &prefix);
    if (lit < 0) {
        mg_buf_append(&s->cmd_text, line, len);
        refuse_command(s, "", "Error in IMAP command: invalid literal.");
        return;
    }
    if (lit == 0) {
        mg_buf_append(&s->cmd_text, line, len);
        execute_command(s);
        mg_buf_reset(&s->cmd_text);
        return;
    }
    /* A literal follows. Check it before saying "go ahead". */
    size_t before = s->cmd_text.len;
    mg_buf_append(&s->cmd_text, line, prefix);
    bool to_file = s->n_files == 0 && is_append_message_literal(s, s->cmd_text.data, s->cmd_text.len);
    const char *too_big = NULL;
    if (preauth && size > IMAP_LITERAL_MAX_PREAUTH)
        too_big = "[TOOBIG] Literal too large before login.";
    else if (to_file && size > set->imap.append_limit)
        too_big = "[TOOBIG] Message too large.";
    else if (!to_file && s->cmd_text.len + size + 2 > max)
        too_big = "[TOOBIG] Literal too large.";
    if (too_big != NULL) {
        if (nonsync) {
            /* The client sends it anyway (RFC 7888): reading a literal of any
             * size just to discard it would let it keep us busy. */
            imap_printf(s, "* BYE %s\r\n", too_big);
            imap_session_close(s);
            return;
        }
        char tagbuf[IMAP_TAG_MAX + 1];
        const char *tag = cmd_tag_of(s->cmd_text.data, s->cmd_text.len, tagbuf);
        imap_printf(s, "%s NO %s\r\n", tag != NULL ? tag : "*", too_big);
        mg_buf_reset(&s->cmd_text);
        return;
    }
    (void)before;
    if (to_file) {
        char *base = NULL;
        char *path = store_user_tmp_path(s->user, &base);
        int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
        if (fd < 0) {
            mg_log_error("imap", "cannot create %s: %s", path, strerror(errno));
            free(path);
            free(base);
            if (nonsync) {
                imap_printf(s, "* BYE Internal error.\r\n");
                imap_session_close(s);
                return;
            }
            refuse_command(s, "", "[SERVERBUG] Cannot store the message now.");
            return;
        }
        s->files[0].fd = fd;
        s->files[0].path = path;
        s->files[0].base = base;
        s->files[0].size = size;
        s->n_files = 1;
        s->literal_fd = fd;
        s->literal_file_left = size;
        s->literal_error = 0;
        s->is_literal_after_cr = false;
        mg_buf_append_str(&s->cmd_text, "{FILE}\r\n");
    } else {
        mg_buf_append(&s->cmd_text, line + prefix, len - prefix);
        mg_buf_append_str(&s->cmd_text, "\r\n");
    }
    if (!nonsync)
        imap_printf(s, "+ OK\r\n");
    if (size > 0)
        mg_line_reader_expect_literal(&s->reader, size);
    else
        s->literal_fd = -1;
}

int imap_session_write_crlf(int fd, const char *p, size_t len, bool *is_after_cr, bool is_end)
{
    /* CR LF pairs stay in the run being copied: a message that is CR LF
     * already is written as it came, one write per chunk. */
    size_t start = 0, i = 0;
    int ret = 0;
    if (*is_after_cr && len > 0) {
        *is_after_cr = false;
        ret = mg_fd_write_all(fd, "\r\n", 2); /* that CR's line end, or a bare CR's */
        if (p[0] == '\n')
            start = i = 1;
    }
    for (; i < len && ret == 0; i++) {
        if (p[i] == '\r') {
            if (i + 1 < len && p[i + 1] == '\n') {
                i++;
                continue;
            }
            ret = mg_fd_write_all(fd, p + start, i - start);
            start = i + 1;
            if (i + 1 == len)
                *is_after_cr = true; /* the next chunk tells */
            else if (ret == 0)
                ret = mg_fd_write_all(fd, "\r\n", 2);
        } else if (p[i] == '\n') {
            ret = mg_fd_write_all(fd, p + start, i - start);
            if (ret == 0)
                ret = mg_fd_write_all(fd, "\r\n", 2);
            start = i + 1;
        }
    }
    if (ret == 0)
        ret = mg_fd_write_all(fd, p + start, len - start);
    if (ret == 0 && is_end && *is_after_cr) {
        *is_after_cr = false;
        ret = mg_fd_write_all(fd, "\r\n", 2);
    }
    return ret;
}

static void handle_literal_chunk(struct imap_session *s, const struct mg_line *chunk)
{
    if (s->literal_fd >= 0) {
        if (s->literal_error == 0) {
            int ret = imap_session_write_crlf(s->literal_fd, chunk->data, chunk->len,
                                              &s->is_literal_after_cr, chunk->is_literal_end);
            if (ret < 0)
                s->literal_error = -ret;
        }
        if (chunk->is_literal_end) {
            close(s->literal_fd);
            s->files[0].fd = -1;
            s->literal_fd = -1;
        }
        return;
    }
    mg_buf_append(&s->cmd_text, chunk->data, chunk->len);
}

static void session_process_input(struct imap_session *s)
{
    if (s->is_processing || s->conn == NULL)
        return;
    s->is_processing = true;
    imap_session_ref(s);
    while (imap_session_is_alive(s)) {
        if (s->running != NULL && s->running->on_line == NULL)
            break; /* a command waits: the rest of the input waits too */
        struct mg_buf *in = mg_conn_input(s->conn);
        struct mg_line line;
        enum mg_line_status st = mg_line_reader_next(&s->reader, in, &line);
        if (st == MG_LINE_NEED_MORE)
            break;
        if (st == MG_LINE_TOO_LONG) {
            refuse_command(s, "", "Command line too long.");
            continue;
        }
        if (st == MG_LINE_LITERAL) {
            handle_literal_chunk(s, &line);
            continue;
        }
        if (s->running != NULL) {
            s->running->on_line(s->running, line.data, line.len);
            continue;
        }
        handle_line(s, line.data, line.len);
    }
    if (s->conn != NULL)
        mg_line_reader_compact(&s->reader, mg_conn_input(s->conn));
    s->is_processing = false;
    imap_session_unref(&s);
}

/* ---- connection callbacks ---- */

static void session_on_read(struct mg_conn *conn)
{
    session_process_input(mg_conn_data(conn));
}

static void session_on_drain(struct mg_conn *conn)
{
    struct imap_session *s = mg_conn_data(conn);
    if (s->running != NULL && s->running->on_drain != NULL)
        s->running->on_drain(s->running);
}

static void session_on_tls_ready(struct mg_conn *conn)
{
    struct imap_session *s = mg_conn_data(conn);
    if (s->refusal != NULL) {
        imap_printf(s, "* BYE %s\r\n", s->refusal);
        imap_session_close(s);
        return;
    }
    struct mg_buf caps = MG_BUF_INIT;
    imap_session_capabilities(s, &caps);
    imap_printf(s, "* OK [CAPABILITY %s] Mailgenic ready.\r\n", mg_buf_cstr(&caps));
    mg_buf_free(&caps);
}

static void session_on_timeout(struct mg_conn *conn)
{
    struct imap_session *s = mg_conn_data(conn);
    imap_printf(s, "* BYE Disconnected for inactivity.\r\n");
    imap_session_close(s);
}

static void session_on_close(struct mg_conn *conn, const char *reason)
{
    struct imap_session *s = mg_conn_data(conn);
    struct imap_ip_stats *st = ip_stats(s);
    if (st != NULL && st->connections > 0)
        st->connections--;
    if (st != NULL && st->connections == 0 && st->failures == 0)
        free(mg_strmap_remove(s->server->per_ip, s->ip));
    uint64_t secs = (mg_datetime_monotonic_ms() - s->started_ms) / 1000;
    char uv[MG_LOG_VALUE_MAX], rv[MG_LOG_VALUE_MAX];
    if (s->username != NULL)
        mg_log_info("imap", "logout session=%s user=%s remote=%s in=%llu out=%llu duration=%llus reason=%s",
                    s->id, mg_log_str(uv, s->username), s->ip,
                    (unsigned long long)mg_conn_bytes_in(conn),
                    (unsigned long long)mg_conn_bytes_out(conn), (unsigned long long)secs,
                    mg_log_str(rv, reason != NULL ? reason : "logout"));
    else
        mg_log_debug("imap", "disconnect session=%s remote=%s reason=%s", s->id, s->ip,
                     mg_log_str(rv, reason != NULL ? reason : "closed"));
    s->conn = NULL;
    s->is_closing = true;
    if (s->view != NULL)
        store_watch_remove(&s->view->watch);
    struct imap_cmd *cmd = s->running;
    if (cmd != NULL && cmd->on_cancel != NULL && cmd->on_cancel(cmd))
        cmd_free(cmd);
    imap_session_unref(&s);
}

static const struct mg_conn_callbacks session_conn_cb = {
    .on_read = session_on_read,
    .on_drain = session_on_drain,
    .on_tls_ready = session_on_tls_ready,
    .on_timeout = session_on_timeout,
    .on_close = session_on_close,
};

void imap_session_start(struct imap_server *server, struct mg_conn *conn)
{
    struct imap_session *s = mg_calloc(1, sizeof(*s));
    s->server = server;
    s->conn = conn;
    s->refcount = 1; /* the connection's */
    s->files[0].fd = -1;
    s->literal_fd = -1;
    s->started_ms = mg_datetime_monotonic_ms();
    mg_unique_id_session(s->id);
    snprintf(s->ip, sizeof(s->ip), "%s", mg_conn_peer_ip(conn));
    mg_line_reader_init(&s->reader, server->settings->imap.max_line_length);
    s->next = server->sessions;
    if (server->sessions != NULL)
        server->sessions->prev = s;
    server->sessions = s;
    server->n_sessions++;
    mg_conn_set_data(conn, s);
    mg_conn_set_idle_timeout(conn, server->settings->imap.login_timeout_ms);
    mg_log_debug("imap", "connect session=%s remote=%s", s->id, s->ip);
}

const struct mg_conn_callbacks *imap_session_conn_callbacks(void)
{
    return &session_conn_cb;
}
