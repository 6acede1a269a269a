/* Selected-state housekeeping: CHECK, CLOSE, UNSELECT, EXPUNGE, UID
 * EXPUNGE (UIDPLUS), and IDLE (RFC 2177; allowed without a selected
 * mailbox too). */
#include "mda/imap/imap_cmds.h"

#include <string.h>

#include "common/arena.h"
#include "mda/imap/imap_seqset.h"

enum imap_cmd_result cmd_check(struct imap_cmd *cmd)
{
    /* Every change is already as durable as it gets. */
    imap_cmd_finish(cmd, "OK", "Check completed.");
    return IMAP_CMD_DONE;
}

static void close_expunged(int status, const char *error, const uint32_t *uids, size_t count,
                           void *ctx)
{
    struct imap_cmd *cmd = ctx;
    (void)error;
    (void)uids;
    (void)count;
    /* CLOSE reports no EXPUNGE responses (RFC 3501 6.4.2). */
    if (imap_session_is_alive(cmd->s))
        imap_session_unselect(cmd->s);
    if (status != STORE_OK)
        imap_cmd_finish(cmd, "NO", "[SERVERBUG] Close failed.");
    else
        imap_cmd_finish(cmd, "OK", "Close completed.");
}

enum imap_cmd_result cmd_close(struct imap_cmd *cmd)
{
    struct imap_session *s = cmd->s;
    struct imap_view *v = s->view;
    cmd->skip_sync = true;
    if (v->is_readonly || v->count == 0) {
        imap_session_unselect(s);
        imap_cmd_finish(cmd, "OK", "Close completed.");
        return IMAP_CMD_DONE;
    }
    store_watch_remove(&v->watch);
    store_expunge(s->user, v->mailbox_id, v->uids, v->count, true, close_expunged, cmd);
    return IMAP_CMD_ASYNC;
}

enum imap_cmd_result cmd_unselect(struct imap_cmd *cmd)
{
    cmd->skip_sync = true;
    imap_session_unselect(cmd->s);
    imap_cmd_finish(cmd, "OK", "Unselect completed.");
    return IMAP_CMD_DONE;
}

static void expunge_done(int status, const char *error, const uint32_t *uids, size_t count,
                         void *ctx)
{
    struct imap_cmd *cmd = ctx;
    (void)error;
    (void)uids;
    (void)count;
    if (status != STORE_OK)
        imap_cmd_finish(cmd, "NO", "[SERVERBUG] Expunge failed.");
    else
        imap_cmd_finish(cmd, "OK", "Expunge completed.");
}

enum imap_cmd_result cmd_expunge(struct imap_cmd *cmd)
{
    struct imap_session *s = cmd->s;
    struct imap_view *v = s->view;
    if (v->is_readonly) {
        imap_cmd_finish(cmd, "NO", "[READ-ONLY] Mailbox is read-only.");
        return IMAP_CMD_DONE;
    }
    const uint32_t *uids = v->uids;
    size_t count = v->count;
    if (cmd->is_uid) {
        struct imap_seqset set;
        uint32_t *idx;
        size_t n;
        if (cmd->nargs != 1 || cmd->args[0].type != IMAP_ARG_ATOM ||
            imap_seqset_parse(cmd->arena, cmd->args[0].str, cmd->args[0].len, &set) < 0 ||
            imap_seqset_resolve(cmd->arena, &set, true, v->uids, v->count, &idx, &n) < 0) {
            imap_cmd_bad(cmd, "Invalid UID set");
            return IMAP_CMD_DONE;
        }
        uint32_t *sel = mg_arena_alloc(cmd->arena, (n ? n : 1) * sizeof(*sel));
        for (size_t i = 0; i < n; i++)
            sel[i] = v->uids[idx[i]];
        uids = sel;
        count = n;
    } else if (cmd->nargs != 0) {
        imap_cmd_bad(cmd, "EXPUNGE takes no arguments");
        return IMAP_CMD_DONE;
    }
    if (count == 0) {
        imap_cmd_finish(cmd, "OK", "Expunge completed.");
        return IMAP_CMD_DONE;
    }
    store_expunge(s->user, v->mailbox_id, uids, count, true, expunge_done, cmd);
    return IMAP_CMD_ASYNC;
}

/* ---- IDLE ---- */

static void idle_line(struct imap_cmd *cmd, const char *line, size_t len)
{
    struct imap_session *s = cmd->s;
    s->is_idling = false;
    cmd->on_line = NULL;
    cmd->on_cancel = NULL;
    if (len == 4 && strncasecmp(line, "DONE", 4) == 0)
        imap_cmd_finish(cmd, "OK", "Idle completed.");
    else
        imap_cmd_finish(cmd, "BAD", "Expected DONE.");
}

static bool idle_cancel(struct imap_cmd *cmd)
{
    cmd->s->is_idling = false;
    return true;
}

enum imap_cmd_result cmd_idle(struct imap_cmd *cmd)
{
    struct imap_session *s = cmd->s;
    if (cmd->nargs != 0) {
        imap_cmd_bad(cmd, "IDLE takes no arguments");
        return IMAP_CMD_DONE;
    }
    /* Whatever happened before IDLE is reported first. */
    if (s->view != NULL)
        imap_view_sync(s, true);
    imap_printf(s, "+ idling\r\n");
    s->is_idling = true;
    cmd->on_line = idle_line;
    cmd->on_cancel = idle_cancel;
    return IMAP_CMD_ASYNC;
}
