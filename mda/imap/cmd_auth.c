/* LOGIN and AUTHENTICATE PLAIN (RFC 4616, with SASL-IR, RFC 4959).
 * Credentials go to the auth service; plaintext passwords are wiped from
 * our buffers as soon as they are handed over. TLS is always on, so there
 * is no LOGINDISABLED. */
#include "mda/imap/imap_cmds.h"

#include <stdlib.h>
#include <string.h>

#include "common/alloc.h"
#include "common/arena.h"
#include "common/base64.h"
#include "common/password.h"

enum imap_cmd_result cmd_login(struct imap_cmd *cmd)
{
    const char *user, *pass;
    size_t ulen, plen;
    if (cmd->nargs != 2 || !imap_arg_get_astring(&cmd->args[0], &user, &ulen) ||
        !imap_arg_get_astring(&cmd->args[1], &pass, &plen)) {
        imap_cmd_bad(cmd, "LOGIN needs a user name and a password");
        return IMAP_CMD_DONE;
    }
    if (ulen == 0 || ulen > 512 || plen > MG_PASSWORD_MAX || memchr(user, '\0', ulen) != NULL ||
        memchr(pass, '\0', plen) != NULL) {
        mg_password_wipe((char *)pass, plen);
        imap_cmd_finish(cmd, "NO", "[AUTHENTICATIONFAILED] Authentication failed.");
        return IMAP_CMD_DONE;
    }
    /* imap_session_login may answer (and free the command with its
     * arena) before it returns: the password goes on in a copy, and the
     * arena copy and the command text it came from are wiped first. */
    char *copy = mg_strndup(pass, plen);
    mg_password_wipe((char *)pass, plen);
    mg_password_wipe(cmd->s->cmd_text.data, cmd->s->cmd_text.len);
    enum imap_cmd_result r = imap_session_login(cmd, "", user, copy);
    mg_password_wipe(copy, plen);
    free(copy);
    return r;
}

/* Decodes a PLAIN response "authzid NUL authcid NUL password" and logs
 * in. b64 (in the command's arena) is wiped before anything else happens:
 * an answer frees the arena. */
static enum imap_cmd_result sasl_plain(struct imap_cmd *cmd, char *b64, size_t len)
{
    bool is_cancel = len == 1 && b64[0] == '*';
    struct mg_buf raw = MG_BUF_INIT;
    bool is_bad = !is_cancel && ((len == 1 && b64[0] == '=') || mg_base64_decode(b64, len, &raw) < 0);
    mg_password_wipe(b64, len);
    if (is_cancel) {
        imap_cmd_finish(cmd, "BAD", "Authentication cancelled.");
        return IMAP_CMD_DONE;
    }
    if (is_bad) {
        mg_password_wipe(raw.data, raw.len);
        mg_buf_free(&raw);
        imap_cmd_finish(cmd, "BAD", "Invalid base64 in SASL response.");
        return IMAP_CMD_DONE;
    }
    /* Exactly two NULs separate three fields. */
    const char *p = mg_buf_cstr(&raw);
    const char *nul1 = memchr(p, '\0', raw.len);
    const char *nul2 = nul1 != NULL ? memchr(nul1 + 1, '\0', raw.len - (size_t)(nul1 + 1 - p)) : NULL;
    if (nul1 == NULL || nul2 == NULL || memchr(nul2 + 1, '\0', raw.len - (size_t)(nul2 + 1 - p)) != NULL ||
        nul2 == nul1 + 1 || (size_t)(raw.len - (size_t)(nul2 + 1 - p)) > MG_PASSWORD_MAX) {
        mg_password_wipe(raw.data, raw.len);
        mg_buf_free(&raw);
        imap_cmd_finish(cmd, "NO", "[AUTHENTICATIONFAILED] Authentication failed.");
        return IMAP_CMD_DONE;
    }
    char *authzid = mg_arena_strndup(cmd->arena, p, (size_t)(nul1 - p));
    char *authcid = mg_arena_strndup(cmd->arena, nul1 + 1, (size_t)(nul2 - nul1 - 1));
    enum imap_cmd_result r = imap_session_login(cmd, authzid, authcid, nul2 + 1);
    mg_password_wipe(raw.data, raw.len);
    mg_buf_free(&raw);
    return r;
}

static void auth_continuation(struct imap_cmd *cmd, const char *line, size_t len)
{
    cmd->on_line = NULL;
    cmd->on_cancel = NULL;
    char *copy = mg_arena_strndup(cmd->arena, line, len);
    /* The line is still in the input buffer: wipe it there too. */
    mg_password_wipe((char *)line, len);
    sasl_plain(cmd, copy, len);
}

static bool auth_wait_cancel(struct imap_cmd *cmd)
{
    (void)cmd;
    return true;
}

enum imap_cmd_result cmd_authenticate(struct imap_cmd *cmd)
{
    if (cmd->nargs < 1 || cmd->nargs > 2 || cmd->args[0].type != IMAP_ARG_ATOM) {
        imap_cmd_bad(cmd, "AUTHENTICATE needs a mechanism");
        return IMAP_CMD_DONE;
    }
    if (!imap_arg_is_atom(&cmd->args[0], "PLAIN")) {
        imap_cmd_finish(cmd, "NO", "Unsupported authentication mechanism.");
        return IMAP_CMD_DONE;
    }
    if (cmd->nargs == 2) {
        const char *ir;
        size_t irlen;
        if (!imap_arg_get_astring(&cmd->args[1], &ir, &irlen)) {
            imap_cmd_bad(cmd, "Invalid initial response");
            return IMAP_CMD_DONE;
        }
        mg_password_wipe(cmd->s->cmd_text.data, cmd->s->cmd_text.len);
        return sasl_plain(cmd, (char *)ir, irlen);
    }
    /* No initial response: an empty challenge, the answer comes as the
     * next line. */
    imap_printf(cmd->s, "+ \r\n");
    cmd->on_line = auth_continuation;
    cmd->on_cancel = auth_wait_cancel;
    return IMAP_CMD_ASYNC;
}
