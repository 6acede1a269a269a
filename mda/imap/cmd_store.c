/* STORE and UID STORE: [+|-]FLAGS[.SILENT]. */
#include "mda/imap/imap_cmds.h"

#include <string.h>

#include "common/arena.h"
#include "common/ascii.h"
#include "mda/imap/imap_seqset.h"

struct store_state {
    uint32_t *uids;
    size_t count;
    bool is_silent;
};

static void store_done(int status, const char *error, const struct store_flag_change *changes,
                       size_t count, void *ctx)
{
    struct imap_cmd *cmd = ctx;
    struct imap_session *s = cmd->s;
    struct store_state *st = cmd->state;
    (void)error;
    if (!imap_session_is_alive(s) || s->view == NULL) {
        imap_cmd_finish(cmd, "NO", "gone");
        return;
    }
    if (status != STORE_OK) {
        imap_cmd_finish(cmd, "NO", "%s", status == STORE_ERR_LIMIT ? "[LIMIT] Too many keywords."
                                                                 : "[SERVERBUG] Store failed.");
        return;
    }
    struct imap_view *v = s->view;
    for (size_t i = 0; i < count; i++)
        imap_view_note_own_change(v, changes[i].uid, changes[i].modseq);
    struct mg_buf out = MG_BUF_INIT;
    struct imap_flags_names names = { 0 };
    imap_flags_names_load(s, &names);
    /* Keywords new to the session (ours, or another session's since the
     * last sync) are announced before the FETCH responses that carry
     * them, so that the client knows every flag it is shown (Dovecot
     * sends FLAGS at the start of its sync, too). The sync after the
     * command then finds nothing new to announce. */
    if (names.count != v->keyword_count)
        imap_view_write_flag_lists(s, &out);
    if (!st->is_silent) {
        for (size_t i = 0; i < st->count; i++) {
            struct index_msg_rec rec;
            long pos = imap_view_find(v, st->uids[i]);
            if (pos < 0 || store_msg_get(s->user, v->mailbox_id, st->uids[i], &rec) != STORE_OK)
                continue;
            mg_buf_printf(&out, "* %ld FETCH (FLAGS ", pos + 1);
            imap_flags_write(s, &names, &out, rec.flags, rec.keywords,
                             imap_view_is_recent(v, rec.uid));
            if (cmd->is_uid)
                mg_buf_printf(&out, " UID %u", rec.uid);
            mg_buf_append_str(&out, ")\r\n");
            if (out.len > 65536) {
                imap_write(s, out.data, out.len);
                mg_buf_reset(&out);
            }
        }
    }
    imap_flags_names_free(&names);
    if (out.len > 0)
        imap_write(s, out.data, out.len);
    mg_buf_free(&out);
    imap_cmd_finish(cmd, "OK", "Store completed.");
}

enum imap_cmd_result cmd_store(struct imap_cmd *cmd)
{
    struct imap_session *s = cmd->s;
    struct imap_view *v = s->view;
    if (cmd->nargs != 3 || cmd->args[0].type != IMAP_ARG_ATOM || cmd->args[1].type != IMAP_ARG_ATOM) {
        imap_cmd_bad(cmd, "STORE needs a set, an item and flags");
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
    const char *item = cmd->args[1].str;
    size_t ilen = cmd->args[1].len;
    enum store_flag_op op = STORE_FLAGS_REPLACE;
    if (ilen > 0 && (item[0] == '+' || item[0] == '-')) {
        op = item[0] == '+' ? STORE_FLAGS_ADD : STORE_FLAGS_REMOVE;
        item++;
        ilen--;
    }
    struct store_state *st = mg_arena_zalloc(cmd->arena, sizeof(*st));
    if (mg_ascii_eq(item, ilen, "FLAGS.SILENT"))
        st->is_silent = true;
    else if (!mg_ascii_eq(item, ilen, "FLAGS")) {
        imap_cmd_bad(cmd, "Unknown STORE item");
        return IMAP_CMD_DONE;
    }
    struct store_flags flags;
    const char *error;
    if (imap_flags_parse(cmd, &cmd->args[2], true, &flags, &error) < 0) {
        imap_cmd_bad(cmd, error);
        return IMAP_CMD_DONE;
    }
    if (v->is_readonly) {
        imap_cmd_finish(cmd, "NO", "[READ-ONLY] Mailbox is read-only.");
        return IMAP_CMD_DONE;
    }
    st->uids = mg_arena_alloc(cmd->arena, (n ? n : 1) * sizeof(uint32_t));
    for (size_t i = 0; i < n; i++)
        st->uids[i] = v->uids[idx[i]];
    st->count = n;
    cmd->state = st;
    if (n == 0) {
        imap_cmd_finish(cmd, "OK", "Store completed.");
        return IMAP_CMD_DONE;
    }
    store_set_flags(s->user, v->mailbox_id, st->uids, n, op, &flags, store_done, cmd);
    return IMAP_CMD_ASYNC;
}
