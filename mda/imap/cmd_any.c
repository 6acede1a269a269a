/* Commands of every state: CAPABILITY, NOOP, LOGOUT, ID, ENABLE, and
 * STARTTLS (refused: the connection is TLS from the first byte). */
#include "mda/imap/imap_cmds.h"

#include <string.h>

#include "common/log.h"
#include "mda/mime/imap_quote.h"

enum imap_cmd_result cmd_capability(struct imap_cmd *cmd)
{
    if (cmd->nargs != 0) {
        imap_cmd_bad(cmd, "CAPABILITY takes no arguments");
        return IMAP_CMD_DONE;
    }
    struct mg_buf b = MG_BUF_INIT;
    mg_buf_append_str(&b, "* CAPABILITY ");
    imap_session_capabilities(cmd->s, &b);
    mg_buf_append_str(&b, "\r\n");
    imap_write(cmd->s, b.data, b.len);
    mg_buf_free(&b);
    imap_cmd_finish(cmd, "OK", "Capability completed.");
    return IMAP_CMD_DONE;
}

enum imap_cmd_result cmd_noop(struct imap_cmd *cmd)
{
    imap_cmd_finish(cmd, "OK", "NOOP completed.");
    return IMAP_CMD_DONE;
}

enum imap_cmd_result cmd_logout(struct imap_cmd *cmd)
{
    imap_printf(cmd->s, "* BYE Logging out\r\n");
    cmd->s->state = IMAP_STATE_LOGOUT;
    cmd->skip_sync = true;
    imap_cmd_finish(cmd, "OK", "Logout completed.");
    return IMAP_CMD_DONE;
}

/* RFC 2971: we log what the client says about itself (bounded), and
 * answer with our name. */
enum imap_cmd_result cmd_id(struct imap_cmd *cmd)
{
    if (cmd->nargs != 1 || (cmd->args[0].type != IMAP_ARG_LIST && cmd->args[0].type != IMAP_ARG_NIL)) {
        imap_cmd_bad(cmd, "ID takes a parameter list or NIL");
        return IMAP_CMD_DONE;
    }
    const struct imap_arg *l = &cmd->args[0];
    if (l->type == IMAP_ARG_LIST) {
        if (l->list_count % 2 != 0 || l->list_count > 60) {
            imap_cmd_bad(cmd, "Invalid ID parameter list");
            return IMAP_CMD_DONE;
        }
        struct mg_buf desc = MG_BUF_INIT;
        for (size_t i = 0; i + 1 < l->list_count; i += 2) {
            const char *k, *v;
            size_t kl, vl;
            if (!imap_arg_get_string(&l->list[i], &k, &kl)) {
                mg_buf_free(&desc);
                imap_cmd_bad(cmd, "Invalid ID parameter list");
                return IMAP_CMD_DONE;
            }
            if (!imap_arg_get_string(&l->list[i + 1], &v, &vl)) {
                v = "NIL";
                vl = 3;
            }
            if (desc.len < 512)
                mg_buf_printf(&desc, "%s%.*s=%.*s", desc.len ? "; " : "", (int)(kl > 30 ? 30 : kl), k,
                              (int)(vl > 100 ? 100 : vl), v);
        }
        char dv[MG_LOG_VALUE_MAX];
        mg_log_info("imap", "client id session=%s id=%s", cmd->s->id,
                    mg_log_value(dv, sizeof(dv), mg_buf_cstr(&desc), desc.len));
        mg_buf_free(&desc);
    }
    imap_printf(cmd->s, "* ID (\"name\" \"Mailgenic\" \"version\" \"%s\")\r\n", MG_VERSION);
    imap_cmd_finish(cmd, "OK", "ID completed.");
    return IMAP_CMD_DONE;
}

/* RFC 5161. No extension we offer needs enabling yet; ENABLE answers with
 * what it enabled: nothing. */
enum imap_cmd_result cmd_enable(struct imap_cmd *cmd)
{
    if (cmd->nargs == 0) {
        imap_cmd_bad(cmd, "ENABLE needs at least one capability");
        return IMAP_CMD_DONE;
    }
    for (size_t i = 0; i < cmd->nargs; i++) {
        if (cmd->args[i].type != IMAP_ARG_ATOM) {
            imap_cmd_bad(cmd, "Invalid capability");
            return IMAP_CMD_DONE;
        }
    }
    imap_printf(cmd->s, "* ENABLED\r\n");
    imap_cmd_finish(cmd, "OK", "Enabled.");
    return IMAP_CMD_DONE;
}

enum imap_cmd_result cmd_starttls(struct imap_cmd *cmd)
{
    imap_cmd_finish(cmd, "BAD", "TLS is already active.");
    return IMAP_CMD_DONE;
}
