/* APPEND (with UIDPLUS's APPENDUID). The message literal was streamed to a
 * file in the user's tmp/ while it arrived; the store moves that file into
 * the mailbox. */
#include "mda/imap/imap_cmds.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "common/alloc.h"
#include "common/arena.h"
#include "common/log.h"
#include "mda/imap/imap_date.h"

struct append_state {
    char mailbox[MAILBOX_NAME_MAX + 1];
};

static void append_done(int status, const char *error, uint32_t uidvalidity, uint32_t uid, void *ctx)
{
    struct imap_cmd *cmd = ctx;
    (void)error;
    switch (status) {
    case STORE_OK:
        imap_cmd_finish(cmd, "OK", "[APPENDUID %u %u] Append completed.", uidvalidity, uid);
        return;
    case STORE_ERR_NOT_FOUND:
        imap_cmd_finish(cmd, "NO", "[TRYCREATE] Mailbox doesn't exist.");
        return;
    case STORE_ERR_OVER_QUOTA:
        imap_cmd_finish(cmd, "NO", "[OVERQUOTA] Quota exceeded.");
        return;
    case STORE_ERR_NO_SPACE:
        imap_cmd_finish(cmd, "NO", "[UNAVAILABLE] Out of disk space, try again later.");
        return;
    case STORE_ERR_LIMIT:
        imap_cmd_finish(cmd, "NO", "[LIMIT] Too many keywords.");
        return;
    default:
        imap_cmd_finish(cmd, "NO", "[SERVERBUG] Internal error saving the message.");
        return;
    }
}

/* A message sent as a quoted string (legal, if odd) or as a literal held in
 * memory goes to a file too, its line ends made CR LF as a streamed one's. */
static int string_to_file(struct imap_session *s, const char *data, size_t len)
{
    char *base = NULL;
    char *path = store_user_tmp_path(s->user, &base);
    int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    bool is_after_cr = false;
    if (fd < 0 || imap_session_write_crlf(fd, data, len, &is_after_cr, true) < 0) {
        if (fd >= 0)
            close(fd);
        unlink(path);
        free(path);
        free(base);
        return -1;
    }
    close(fd);
    s->files[0].path = path;
    s->files[0].base = base;
    s->files[0].size = len;
    s->n_files = 1;
    return 0;
}

enum imap_cmd_result cmd_append(struct imap_cmd *cmd)
{
    struct imap_session *s = cmd->s;
    if (cmd->nargs < 2 || cmd->nargs > 4) {
        imap_cmd_bad(cmd, "APPEND needs a mailbox and a message");
        return IMAP_CMD_DONE;
    }
    struct append_state *st = mg_arena_zalloc(cmd->arena, sizeof(*st));
    const char *error;
    if (imap_session_mailbox_arg(cmd, &cmd->args[0], st->mailbox, &error) < 0) {
        imap_cmd_finish(cmd, "NO", "[TRYCREATE] %s", error);
        return IMAP_CMD_DONE;
    }
    struct store_flags flags = { 0 };
    time_t internaldate = time(NULL);
    size_t a = 1;
    if (cmd->args[a].type == IMAP_ARG_LIST) {
        if (imap_flags_parse(cmd, &cmd->args[a], false, &flags, &error) < 0) {
            imap_cmd_bad(cmd, error);
            return IMAP_CMD_DONE;
        }
        a++;
    }
    if (a < cmd->nargs - 1) {
        const char *d;
        size_t dlen;
        if (!imap_arg_get_string(&cmd->args[a], &d, &dlen) ||
            imap_date_parse_datetime(d, dlen, &internaldate) < 0) {
            imap_cmd_bad(cmd, "Invalid date-time");
            return IMAP_CMD_DONE;
        }
        a++;
    }
    if (a != cmd->nargs - 1) {
        imap_cmd_bad(cmd, "Invalid APPEND arguments");
        return IMAP_CMD_DONE;
    }
    const struct imap_arg *msg = &cmd->args[a];
    if (msg->type == IMAP_ARG_QUOTED || msg->type == IMAP_ARG_LITERAL) {
        if (s->n_files > 0 || string_to_file(s, msg->str, msg->len) < 0) {
            imap_cmd_finish(cmd, "NO", "[SERVERBUG] Cannot save the message.");
            return IMAP_CMD_DONE;
        }
    } else if (msg->type != IMAP_ARG_FILE || s->n_files == 0) {
        imap_cmd_bad(cmd, "Missing message literal");
        return IMAP_CMD_DONE;
    }
    if (s->literal_error != 0) {
        mg_log_error("imap", "cannot write APPEND data session=%s error=%s", s->id, strerror(s->literal_error));
        imap_cmd_finish(cmd, "NO", s->literal_error == ENOSPC ? "[UNAVAILABLE] Out of disk space."
                                                             : "[SERVERBUG] Cannot save the message.");
        return IMAP_CMD_DONE;
    }
    if (s->files[0].size == 0) {
        imap_cmd_finish(cmd, "NO", "Cannot save an empty message.");
        return IMAP_CMD_DONE;
    }
    struct store_mailbox m;
    if (store_mailbox_get(s->user, st->mailbox, &m) == STORE_ERR_NOT_FOUND) {
        imap_cmd_finish(cmd, "NO", "[TRYCREATE] Mailbox doesn't exist.");
        return IMAP_CMD_DONE;
    }
    /* The store owns the file from here (and removes it on failure). */
    char *base = s->files[0].base;
    s->files[0].base = NULL;
    mg_free(&s->files[0].path);
    s->n_files = 0;
    store_append(s->user, st->mailbox, base, &flags, internaldate, append_done, cmd);
    free(base);
    return IMAP_CMD_ASYNC;
}
