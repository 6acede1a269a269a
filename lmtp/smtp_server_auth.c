/* AUTH (RFC 4954) with PLAIN (RFC 4616) and LOGIN, and STARTTLS
 * (RFC 3207): the two commands that change what the session trusts.
 *
 * Credentials never reach a log, and decoded passwords are wiped as soon
 * as the auth hook returns, along with the base64 lines they came in. */
#include <stdlib.h>
#include <string.h>

#include "common/alloc.h"
#include "common/ascii.h"
#include "common/base64.h"
#include "common/log.h"
#include "common/utf8.h"
#include "lmtp/smtp_server_private.h"

/* RFC 4616 section 2: each of authzid, authcid and passwd. */
#define SMTP_AUTH_FIELD_MAX 255

static const char challenge_username[] = "VXNlcm5hbWU6"; /* "Username:" */
static const char challenge_password[] = "UGFzc3dvcmQ6"; /* "Password:" */

/* The line came from the input buffer, which is ours to overwrite: the
 * base64 of a password should not linger in it either. */
static void wipe_input(const char *line, size_t len)
{
    explicit_bzero((char *)line, len);
}

static void buf_wipe_free(struct mg_buf *buf)
{
    if (buf->data != NULL)
        explicit_bzero(buf->data, buf->cap);
    mg_buf_free(buf);
}

static void auth_end(struct smtp_server *server)
{
    if (server->auth_login_user != NULL) {
        explicit_bzero(server->auth_login_user, strlen(server->auth_login_user));
        free(server->auth_login_user);
        server->auth_login_user = NULL;
    }
    smtp_server_set_state(server, SMTP_SERVER_STATE_READY);
}

/* Decodes a SASL response into out, reserved up front so that no realloc
 * leaves a copy of a secret behind. "=" is an empty initial response. */
static int decode_response(const char *text, size_t len, bool is_initial, struct mg_buf *out)
{
    mg_buf_reserve(out, MG_BASE64_DECODED_MAX(len) + 1);
    if (is_initial && len == 1 && text[0] == '=')
        return 0;
    return mg_base64_decode(text, len, out);
}

static bool field_is_valid(const char *s, size_t len)
{
    return len <= SMTP_AUTH_FIELD_MAX && mg_utf8_is_valid(s, len);
}

static void auth_call(struct smtp_server *server, const char *authzid, const char *authcid,
                      const char *password)
{
    auth_end(server);
    struct smtp_server_reply *reply = smtp_server_reply_new(server, SMTP_SERVER_REPLY_AUTH, 1);
    reply->username = mg_strdup(authcid);
    if (authcid[0] == '\0' || server->hooks->auth == NULL)
        smtp_server_auth_reply(reply, false, NULL);
    else
        server->hooks->auth(server, reply, authzid, authcid, password, server->ctx);
    smtp_server_hook_returned(server, reply);
}

/* message = [authzid] NUL authcid NUL passwd */
static void auth_plain(struct smtp_server *server, struct mg_buf *msg)
{
    const char *p = msg->data != NULL ? msg->data : "";
    size_t len = msg->len;
    const char *nul1 = memchr(p, '\0', len);
    const char *nul2 = nul1 != NULL ? memchr(nul1 + 1, '\0', len - (size_t)(nul1 + 1 - p)) : NULL;
    if (nul2 == NULL || memchr(nul2 + 1, '\0', len - (size_t)(nul2 + 1 - p)) != NULL ||
        !field_is_valid(p, (size_t)(nul1 - p)) ||
        !field_is_valid(nul1 + 1, (size_t)(nul2 - nul1 - 1)) ||
        !field_is_valid(nul2 + 1, len - (size_t)(nul2 + 1 - p))) {
        auth_end(server);
        smtp_server_reply_error(server, 501, "5.5.2", "Error: malformed PLAIN response");
        return;
    }
    /* msg->data is NUL-terminated past len, so the fields are C strings. */
    auth_call(server, p, nul1 + 1, nul2 + 1);
}

/* One response of the exchange (initial or on its own line). */
static void auth_response(struct smtp_server *server, const char *text, size_t len,
                          bool is_initial)
{
    struct mg_buf msg = MG_BUF_INIT;
    if (decode_response(text, len, is_initial, &msg) < 0) {
        buf_wipe_free(&msg);
        auth_end(server);
        smtp_server_reply_error(server, 501, "5.5.2", "Error: invalid base64 data");
        return;
    }
    if (!server->is_auth_login) {
        auth_plain(server, &msg);
    } else if (server->auth_login_user == NULL) {
        const char *user = mg_buf_cstr(&msg);
        if (memchr(user, '\0', msg.len) != NULL || !field_is_valid(user, msg.len)) {
            auth_end(server);
            smtp_server_reply_error(server, 501, "5.5.2", "Error: malformed LOGIN response");
        } else {
            server->auth_login_user = mg_strndup(user, msg.len);
            smtp_server_set_state(server, SMTP_SERVER_STATE_AUTH);
            smtp_server_reply(server, 334, NULL, challenge_password);
        }
    } else {
        const char *password = mg_buf_cstr(&msg);
        if (memchr(password, '\0', msg.len) != NULL || !field_is_valid(password, msg.len)) {
            auth_end(server);
            smtp_server_reply_error(server, 501, "5.5.2", "Error: malformed LOGIN response");
        } else {
            char *user = server->auth_login_user;
            server->auth_login_user = NULL;
            auth_call(server, "", user, password);
            explicit_bzero(user, strlen(user));
            free(user);
        }
    }
    buf_wipe_free(&msg);
}

void smtp_server_cmd_auth(struct smtp_server *server, const char *args, size_t len)
{
    /* The AUTH line may carry credentials: wipe it whatever happens. */
    const char *mech = args;
    const char *sp = memchr(args, ' ', len);
    size_t mech_len = sp != NULL ? (size_t)(sp - args) : len;
    const char *ir = sp != NULL ? sp + 1 : NULL;
    size_t ir_len = sp != NULL ? len - mech_len - 1 : 0;

    if (!server->set.offer_auth) {
        smtp_server_reply_error(server, 503, "5.5.1", "Error: authentication not enabled");
    } else if (!server->is_tls) {
        smtp_server_reply_error(server, 538, "5.7.11",
                                "Error: encryption required for requested authentication mechanism");
    } else if (!server->is_esmtp) {
        smtp_server_reply_error(server, 503, "5.5.1", "Error: send EHLO first");
    } else if (server->auth_user != NULL) {
        smtp_server_reply_error(server, 503, "5.5.1", "Error: already authenticated");
    } else if (ir != NULL && (ir_len == 0 || memchr(ir, ' ', ir_len) != NULL)) {
        smtp_server_reply_error(server, 501, "5.5.4", "Syntax: AUTH mechanism [initial-response]");
    } else if (mg_ascii_eq(mech, mech_len, "PLAIN") || mg_ascii_eq(mech, mech_len, "LOGIN")) {
        server->is_auth_login = mg_ascii_eq(mech, mech_len, "LOGIN");
        if (ir != NULL) {
            auth_response(server, ir, ir_len, true);
        } else {
            smtp_server_set_state(server, SMTP_SERVER_STATE_AUTH);
            smtp_server_reply(server, 334, NULL, server->is_auth_login ? challenge_username : "");
        }
    } else {
        smtp_server_reply_error(server, 504, "5.5.4", "Error: unsupported authentication mechanism");
    }
    wipe_input(args, len);
}

void smtp_server_auth_input(struct smtp_server *server, const char *line, size_t len)
{
    if (len == 1 && line[0] == '*') {
        auth_end(server);
        smtp_server_reply_error(server, 501, "5.0.0", "Authentication cancelled");
    } else {
        auth_response(server, line, len, false);
    }
    wipe_input(line, len);
}

void smtp_server_auth_too_long(struct smtp_server *server)
{
    auth_end(server);
    smtp_server_reply_error(server, 500, "5.5.6", "Error: authentication exchange line too long");
}

void smtp_server_auth_answered(struct smtp_server_reply *reply)
{
    struct smtp_server *server = reply->server;
    const struct smtp_server_answer *a = &reply->answers[0];
    if (reply->is_auth_ok) {
        server->auth_user = reply->username;
        reply->username = NULL;
        smtp_server_reply(server, a->code, a->enhanced, a->text);
    } else {
        smtp_server_reply_error(server, a->code, a->enhanced, a->text);
    }
}

/* ---- STARTTLS ---- */

void smtp_server_cmd_starttls(struct smtp_server *server, const char *args, size_t len)
{
    if (!server->set.offer_starttls) {
        smtp_server_reply_error(server, 502, "5.5.1", "Error: command not implemented");
        return;
    }
    if (server->is_tls) {
        smtp_server_reply_error(server, 503, "5.5.1", "Error: TLS already active");
        return;
    }
    smtp_server_reply(server, 220, "2.0.0", "Ready to start TLS");
    /* CVE-2011-0411: anything pipelined after STARTTLS was sent in
     * plaintext and must not be read as if it came over TLS. */
    size_t dropped = mg_line_reader_discard(&server->reader, server->in);
    if (dropped > 0)
        mg_log_info("smtp", "discarded input pipelined after STARTTLS session=%s bytes=%zu",
                    server->set.log_id != NULL ? server->set.log_id : "-", dropped);
    smtp_server_set_state(server, SMTP_SERVER_STATE_STARTTLS);
    server->io->start_tls(server->io_ctx);
}
