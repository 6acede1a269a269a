/* COPY and MOVE (RFC 6851), with UIDPLUS's COPYUID. */
#include "mda/imap/imap_cmds.h"

#include <string.h>

#include "common/arena.h"
#include "common/buf.h"
#include "mda/imap/imap_seqset.h"

static void copy_done(int status, const char *error, uint32_t dst_uidvalidity, const uint32_t *uids,
                      const uint32_t *new_uids, size_t count, void *ctx)
{
    struct imap_cmd *cmd = ctx;
    bool is_move = strcmp(cmd->def->name, "MOVE") == 0;
    (void)error;
    if (status == STORE_ERR_NOT_FOUND) {
        imap_cmd_finish(cmd, "NO", "[TRYCREATE] Mailbox doesn't exist.");
        return;
    }
    if (status == STORE_ERR_OVER_QUOTA) {
        imap_cmd_finish(cmd, "NO", "[OVERQUOTA] Quota exceeded.");
        return;
    }
    if (status != STORE_OK) {
        imap_cmd_finish(cmd, "NO", "[SERVERBUG] %s failed.", is_move ? "Move" : "Copy");
        return;
    }
    /* COPYUID lists the pairs that were copied, in the same order. */
    struct mg_buf src = MG_BUF_INIT, dst = MG_BUF_INIT;
    size_t pairs = 0;
    for (size_t i = 0; i < count; i++) {
        if (new_uids[i] == 0)
            continue;
        mg_buf_printf(&src, "%s%u", pairs ? "," : "", uids[i]);
        mg_buf_printf(&dst, "%s%u", pairs ? "," : "", new_uids[i]);
        pairs++;
    }
    if (pairs == 0) {
        imap_cmd_finish(cmd, "OK", "No messages %s.", is_move ? "moved" : "copied");
    } else if (is_move) {
        /* RFC 6851 3.3: COPYUID in an untagged OK before the expunges. */
        imap_printf(cmd->s, "* OK [COPYUID %u %s %s] Moved UIDs.\r\n", dst_uidvalidity,
                    mg_buf_cstr(&src), mg_buf_cstr(&dst));
        imap_cmd_finish(cmd, "OK", "Move completed.");
    } else {
        imap_cmd_finish(cmd, "OK", "[COPYUID %u %s %s] Copy completed.", dst_uidvalidity,
                        mg_buf_cstr(&src), mg_buf_cstr(&dst));
    }
    mg_buf_free(&src);
    mg_buf_free(&dst);
}

static enum imap_cmd_result do_copy(struct imap_cmd *cmd, bool is_move)
{
    struct imap_session *s = cmd->s;
    struct imap_view *v = s->view;
    if (cmd->nargs != 2 || cmd->args[0].type != IMAP_ARG_ATOM) {
        imap_cmd_bad(cmd, "Needs a set and a mailbox");
        return IMAP_CMD_DONE;
    }
    struct imap_seqset set;
    uint32_t *idx;
    size_t n;
    if (imap_seqset_parse(cmd->arena, cmd->args[0].str, cmd->args[0].len, &set) < 0 ||
        imap_seqset_resolve(cmd->arena, &set, cmd->is_uid, v->uids, v->count, &idx, &n) < 0) {
        imap_cmd_bad(cmd, "Invalid messageset");
        return IMAP_CMD_DONE;
    }
    char dst[MAILBOX_NAME_MAX + 1];
    const char *error;
    if (imap_session_mailbox_arg(cmd, &cmd->args[1], dst, &error) < 0) {
        imap_cmd_finish(cmd, "NO", "[TRYCREATE] %s", error);
        return IMAP_CMD_DONE;
    }
    if (is_move && v->is_readonly) {
        imap_cmd_finish(cmd, "NO", "[READ-ONLY] Mailbox is read-only.");
        return IMAP_CMD_DONE;
    }
    struct store_mailbox m;
    if (store_mailbox_get(s->user, dst, &m) == STORE_ERR_NOT_FOUND) {
        imap_cmd_finish(cmd, "NO", "[TRYCREATE] Mailbox doesn't exist.");
        return IMAP_CMD_DONE;
    }
    if (n == 0) {
        imap_cmd_finish(cmd, "OK", "No messages %s.", is_move ? "moved" : "copied");
        return IMAP_CMD_DONE;
    }
    uint32_t *uids = mg_arena_alloc(cmd->arena, n * sizeof(*uids));
    for (size_t i = 0; i < n; i++)
        uids[i] = v->uids[idx[i]];
    store_copy(s->user, v->mailbox_id, uids, n, dst, is_move, copy_done, cmd);
    return IMAP_CMD_ASYNC;
}

enum imap_cmd_result cmd_copy(struct imap_cmd *cmd)
{
    return do_copy(cmd, false);
}

enum imap_cmd_result cmd_move(struct imap_cmd *cmd)
{
    return do_copy(cmd, true);
}
