/* Session core: input loop, the one state setter, replies and the hooks'
 * answers. Commands live in smtp_server_cmds.c, AUTH and STARTTLS in
 * smtp_server_auth.c, content in smtp_server_data.c. */
#include "lmtp/smtp_server.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/alloc.h"
#include "common/arena.h"
#include "common/log.h"
#include "lmtp/smtp_server_private.h"

static const char *const state_names[] = {
    [SMTP_SERVER_STATE_HELO] = "helo",
    [SMTP_SERVER_STATE_READY] = "ready",
    [SMTP_SERVER_STATE_MAIL] = "mail",
    [SMTP_SERVER_STATE_CHUNKING] = "chunking",
    [SMTP_SERVER_STATE_DATA] = "data",
    [SMTP_SERVER_STATE_BDAT] = "bdat",
    [SMTP_SERVER_STATE_AUTH] = "auth",
    [SMTP_SERVER_STATE_STARTTLS] = "starttls",
    [SMTP_SERVER_STATE_CLOSED] = "closed",
};

static const char *log_id(const struct smtp_server *server)
{
    return server->set.log_id != NULL ? server->set.log_id : "-";
}

void smtp_server_set_state(struct smtp_server *server, enum smtp_server_state state)
{
    /* Closed is final: a late answer must not revive the session. */
    if (server->state == state || server->state == SMTP_SERVER_STATE_CLOSED)
        return;
    mg_log_debug("smtp", "state session=%s old=%s new=%s", log_id(server),
                 state_names[server->state], state_names[state]);
    server->state = state;
}

enum smtp_server_state smtp_server_idle_state(const struct smtp_server *server)
{
    return server->helo != NULL ? SMTP_SERVER_STATE_READY : SMTP_SERVER_STATE_HELO;
}

/* ---- output ---- */

void smtp_server_reply(struct smtp_server *server, unsigned code, const char *enhanced,
                       const char *text)
{
    if (server->state == SMTP_SERVER_STATE_CLOSED)
        return;
    mg_buf_reset(&server->out);
    smtp_reply_append(&server->out, code, true, enhanced, text);
    server->io->write(server->io_ctx, server->out.data, server->out.len);
}

void smtp_server_reply_status(struct smtp_server *server, const struct smtp_status *status)
{
    smtp_server_reply(server, status->code, status->enhanced, status->text);
}

void smtp_server_close(struct smtp_server *server)
{
    smtp_server_set_state(server, SMTP_SERVER_STATE_CLOSED);
    if (!server->is_io_closed) {
        server->is_io_closed = true;
        server->io->close(server->io_ctx);
    }
}

/* 421 with the host name, then close. */
static void reply_421_close(struct smtp_server *server, const char *enhanced, const char *what)
{
    char text[SMTP_REPLY_TEXT_MAX + 1];
    snprintf(text, sizeof(text), "%s %s", server->set.hostname, what);
    smtp_server_reply(server, 421, enhanced, text);
    smtp_server_close(server);
}

void smtp_server_reply_error(struct smtp_server *server, unsigned code, const char *enhanced,
                             const char *text)
{
    smtp_server_reply(server, code, enhanced, text);
    if (server->state == SMTP_SERVER_STATE_CLOSED)
        return;
    if (++server->errors >= server->set.max_errors) {
        mg_log_info("smtp", "too many errors session=%s errors=%u", log_id(server),
                    server->errors);
        reply_421_close(server, "4.7.0", "Error: too many errors");
    }
}

void smtp_server_reply_error_status(struct smtp_server *server, const struct smtp_status *status)
{
    smtp_server_reply_error(server, status->code, status->enhanced, status->text);
}

/* ---- lifetime ---- */

struct smtp_server *smtp_server_new(const struct smtp_server_settings *settings,
                                    const struct smtp_server_io *io, void *io_ctx,
                                    const struct smtp_server_hooks *hooks, void *ctx)
{
    struct smtp_server *server = mg_calloc(1, sizeof(*server));
    server->set = *settings;
    if (server->set.hostname == NULL)
        server->set.hostname = "localhost";
    if (server->set.max_line_length == 0)
        server->set.max_line_length = SMTP_SERVER_LINE_DEFAULT;
    if (server->set.max_line_length < SMTP_SERVER_LINE_MIN)
        server->set.max_line_length = SMTP_SERVER_LINE_MIN;
    if (server->set.max_recipients == 0)
        server->set.max_recipients = SMTP_SERVER_RECIPIENTS_DEFAULT;
    if (server->set.max_errors == 0)
        server->set.max_errors = SMTP_SERVER_ERRORS_DEFAULT;
    server->io = io;
    server->io_ctx = io_ctx;
    server->hooks = hooks;
    server->ctx = ctx;
    server->is_tls = settings->is_tls;
    /* state is SMTP_SERVER_STATE_HELO (0) from calloc: only
     * smtp_server_set_state() assigns it. */
    /* The reader's bound is the longest line any state takes (an AUTH
     * line); commands are held to max_line_length after reading. */
    size_t max = server->set.max_line_length > SMTP_SERVER_AUTH_LINE_MAX
                     ? server->set.max_line_length
                     : SMTP_SERVER_AUTH_LINE_MAX;
    mg_line_reader_init(&server->reader, max);
    server->cmd_arena = mg_arena_new(0);

    const char *text = server->set.greeting_text;
    if (text == NULL)
        text = settings->protocol == SMTP_PROTOCOL_LMTP ? "LMTP" : "ESMTP";
    char greeting[SMTP_REPLY_TEXT_MAX + 1];
    snprintf(greeting, sizeof(greeting), "%s %s", server->set.hostname, text);
    smtp_server_reply(server, 220, NULL, greeting);
    return server;
}

/* Hands what rcpt->data holds back to the daemon (once: the pointer is
 * cleared). server and tx are NULL for a candidate whose session is gone. */
static void rcpt_release(const struct smtp_server_hooks *hooks, void *ctx,
                         struct smtp_server *server, struct smtp_tx *tx, struct smtp_rcpt *rcpt)
{
    if (rcpt->data == NULL || hooks->rcpt_free == NULL)
        return;
    hooks->rcpt_free(server, tx, rcpt, ctx);
    rcpt->data = NULL;
}

static void tx_destroy(struct smtp_server *server)
{
    struct smtp_server_tx *tx = server->tx;
    if (tx == NULL)
        return;
    server->tx = NULL;
    for (size_t i = 0; i < tx->tx.rcpt_count; i++)
        rcpt_release(server->hooks, server->ctx, server, &tx->tx, tx->tx.rcpts[i]);
    if (server->hooks->tx_free != NULL)
        server->hooks->tx_free(server, &tx->tx, server->ctx);
    for (size_t i = 0; i < tx->tx.rcpt_count; i++)
        free(tx->tx.rcpts[i]);
    free(tx->tx.rcpts);
    mg_arena_free(&tx->arena);
    free(tx);
}

static void server_destroy(struct smtp_server *server)
{
    if (server->pending != NULL) {
        /* The daemon still holds the handle: it becomes inert and frees
         * itself when answered. */
        server->pending->server = NULL;
        server->pending = NULL;
    }
    tx_destroy(server);
    free(server->helo);
    free(server->auth_user);
    if (server->auth_login_user != NULL) {
        explicit_bzero(server->auth_login_user, strlen(server->auth_login_user));
        free(server->auth_login_user);
    }
    mg_arena_free(&server->cmd_arena);
    mg_buf_free(&server->out);
    mg_buf_free(&server->chunk);
    free(server);
}

/* Every public entry point runs between enter and leave, so that a free
 * asked for from inside a hook or an io callback waits until the engine's
 * own stack has unwound. */
static void server_enter(struct smtp_server *server)
{
    server->busy++;
}

static void server_leave(struct smtp_server *server)
{
    if (--server->busy == 0 && server->is_free_requested)
        server_destroy(server);
}

void smtp_server_free(struct smtp_server **serverp)
{
    struct smtp_server *server = *serverp;
    if (server == NULL)
        return;
    *serverp = NULL;
    if (server->busy > 0) {
        /* The transport is gone: nothing more may be written to it. */
        server->is_io_closed = true;
        server->is_free_requested = true;
        smtp_server_set_state(server, SMTP_SERVER_STATE_CLOSED);
        return;
    }
    server_destroy(server);
}

/* ---- transactions ---- */

struct smtp_server_tx *smtp_server_tx_new(struct smtp_server *server)
{
    mg_assert(server->tx == NULL);
    struct smtp_server_tx *tx = mg_calloc(1, sizeof(*tx));
    tx->arena = mg_arena_new(1024);
    server->tx = tx;
    return tx;
}

void smtp_server_tx_end(struct smtp_server *server)
{
    tx_destroy(server);
    smtp_server_set_state(server, smtp_server_idle_state(server));
}

/* ---- input ---- */

bool smtp_server_wants_input(const struct smtp_server *server)
{
    return server->pending == NULL && !server->is_free_requested &&
           server->state != SMTP_SERVER_STATE_STARTTLS &&
           server->state != SMTP_SERVER_STATE_CLOSED;
}

bool smtp_server_is_answer_pending(const struct smtp_server *server)
{
    return server->pending != NULL && server->state != SMTP_SERVER_STATE_CLOSED;
}

void smtp_server_feed(struct smtp_server *server, struct mg_buf *in)
{
    /* From inside a hook: the outer call is walking the buffer and goes on
     * by itself; a nested one would move the bytes under its feet. */
    if (server->in != NULL)
        return;
    server_enter(server);
    server->in = in;
    if (server->state == SMTP_SERVER_STATE_STARTTLS) {
        /* Plaintext between STARTTLS and the end of the handshake can
         * only be an injection (CVE-2011-0411): drop it. */
        mg_line_reader_discard(&server->reader, in);
    }
    while (smtp_server_wants_input(server)) {
        if (server->state == SMTP_SERVER_STATE_DATA) {
            if (!smtp_server_data_input(server))
                break;
            continue;
        }
        /* Nothing unread: do not ask the reader (an empty buffer may have
         * no storage at all). */
        if (mg_line_reader_pending(&server->reader, in) == 0)
            break;
        struct mg_line line;
        enum mg_line_status st = mg_line_reader_next(&server->reader, in, &line);
        if (st == MG_LINE_NEED_MORE)
            break;
        if (st == MG_LINE_LITERAL) {
            smtp_server_bdat_input(server, line.data, line.len, line.is_literal_end);
        } else if (st == MG_LINE_TOO_LONG) {
            if (server->state == SMTP_SERVER_STATE_AUTH)
                smtp_server_auth_too_long(server);
            else
                smtp_server_cmd_too_long(server);
        } else if (server->state == SMTP_SERVER_STATE_AUTH) {
            smtp_server_auth_input(server, line.data, line.len);
        } else {
            smtp_server_cmd_dispatch(server, line.data, line.len, line.is_bare_lf);
        }
    }
    mg_line_reader_compact(&server->reader, in);
    server->in = NULL;
    server_leave(server);
}

/* ---- transport events ---- */

void smtp_server_tls_ready(struct smtp_server *server)
{
    if (server->state != SMTP_SERVER_STATE_STARTTLS)
        return;
    server_enter(server);
    /* RFC 3207 section 4.2: forget everything learnt before TLS. */
    server->is_tls = true;
    free(server->helo);
    server->helo = NULL;
    free(server->auth_user);
    server->auth_user = NULL;
    server->is_esmtp = false;
    smtp_server_set_state(server, SMTP_SERVER_STATE_HELO);
    server_leave(server);
}

void smtp_server_timeout(struct smtp_server *server)
{
    if (server->state == SMTP_SERVER_STATE_CLOSED)
        return;
    server_enter(server);
    mg_log_info("smtp", "timeout session=%s", log_id(server));
    reply_421_close(server, "4.4.2", "Error: timeout exceeded");
    server_leave(server);
}

void smtp_server_shutdown(struct smtp_server *server)
{
    if (server->state == SMTP_SERVER_STATE_CLOSED)
        return;
    server_enter(server);
    if (server->pending != NULL)
        server->is_shutdown_requested = true;
    else
        reply_421_close(server, "4.3.2", "Service shutting down");
    server_leave(server);
}

/* ---- hooks' answers ---- */

struct smtp_server_reply *smtp_server_reply_new(struct smtp_server *server,
                                                enum smtp_server_reply_kind kind,
                                                size_t answer_count)
{
    mg_assert(server->pending == NULL);
    mg_assert(answer_count > 0);
    struct smtp_server_reply *reply = mg_calloc(1, sizeof(*reply));
    reply->server = server;
    reply->hooks = server->hooks;
    reply->ctx = server->ctx;
    reply->kind = kind;
    reply->is_in_hook = true;
    reply->answer_count = answer_count;
    reply->answers = mg_calloc(answer_count, sizeof(reply->answers[0]));
    server->pending = reply;
    return reply;
}

void smtp_server_reply_free(struct smtp_server_reply **replyp)
{
    struct smtp_server_reply *reply = *replyp;
    if (reply == NULL)
        return;
    *replyp = NULL;
    if (reply->rcpt != NULL) {
        /* Refused, or answered after the session closed or went: either
         * way not in a transaction, so its data goes back here. */
        struct smtp_server *server = reply->server;
        struct smtp_tx *tx = server != NULL && server->tx != NULL ? &server->tx->tx : NULL;
        rcpt_release(reply->hooks, reply->ctx, server, tx, reply->rcpt);
        free(reply->rcpt);
    }
    for (size_t i = 0; i < reply->answer_count; i++)
        free(reply->answers[i].text);
    free(reply->answers);
    free(reply->username);
    free(reply);
}

/* Acts on the answers given so far; frees the reply when it is done. */
static void reply_act(struct smtp_server_reply *reply)
{
    struct smtp_server *server = reply->server;
    mg_assert(server->pending == reply);
    if (server->state == SMTP_SERVER_STATE_CLOSED) {
        if (reply->answered < reply->answer_count)
            return;
        server->pending = NULL;
        smtp_server_reply_free(&reply);
        return;
    }
    if (reply->kind == SMTP_SERVER_REPLY_DATA_END) {
        if (!smtp_server_data_end_answered(reply))
            return;
        server->pending = NULL;
        smtp_server_tx_end(server);
    } else {
        /* Cleared first: acting may call the next hook (BDAT 0 LAST goes
         * from data_begin straight to data_end). */
        server->pending = NULL;
        switch (reply->kind) {
        case SMTP_SERVER_REPLY_AUTH:
            smtp_server_auth_answered(reply);
            break;
        case SMTP_SERVER_REPLY_MAIL:
        case SMTP_SERVER_REPLY_RCPT:
            smtp_server_cmd_answered(reply);
            break;
        case SMTP_SERVER_REPLY_DATA_BEGIN:
            smtp_server_data_begin_answered(reply);
            break;
        case SMTP_SERVER_REPLY_DATA_END:
            break;
        }
    }
    smtp_server_reply_free(&reply);
    if (server->pending == NULL && server->is_shutdown_requested &&
        server->state != SMTP_SERVER_STATE_CLOSED)
        reply_421_close(server, "4.3.2", "Service shutting down");
}

void smtp_server_hook_returned(struct smtp_server *server, struct smtp_server_reply *reply)
{
    reply->is_in_hook = false;
    if (reply->answered > 0 && server->pending == reply)
        reply_act(reply);
}

/* Copies one answer into the handle, refusing what we must not send. */
static void answer_store(struct smtp_server_reply *reply, struct smtp_server_answer *answer,
                         unsigned code, const char *enhanced, const char *text)
{
    mg_assert(!answer->is_set);
    bool is_354 = reply->kind == SMTP_SERVER_REPLY_DATA_BEGIN && code == 354;
    if (!is_354 && (code < 200 || code > 599 || code / 100 == 3)) {
        mg_log_error("smtp", "hook answered with invalid code %u", code);
        code = 451;
        enhanced = "4.3.0";
        text = "Error: internal error";
    }
    answer->code = code;
    if (code / 100 == 3)
        answer->enhanced[0] = '\0';
    else if (smtp_reply_enhanced_is_valid(enhanced, code))
        snprintf(answer->enhanced, sizeof(answer->enhanced), "%s", enhanced);
    else
        snprintf(answer->enhanced, sizeof(answer->enhanced), "%u.0.0", code / 100);
    answer->text = mg_strndup(text != NULL ? text : "", SMTP_REPLY_TEXT_MAX);
    answer->is_set = true;
    reply->answered++;
}

/* After storing: act now, later (hook still running), or never (inert). */
static void answer_given(struct smtp_server_reply *reply)
{
    struct smtp_server *server = reply->server;
    if (server == NULL) {
        if (reply->answered == reply->answer_count)
            smtp_server_reply_free(&reply);
        return;
    }
    if (reply->is_in_hook)
        return;
    server_enter(server);
    reply_act(reply);
    /* Pipelined commands may be waiting in the input already: tell the
     * transport, unless a feed is running (it goes on by itself). */
    bool resume = server->io->resume != NULL && server->in == NULL && !server->is_free_requested &&
                  server->pending == NULL && server->state != SMTP_SERVER_STATE_CLOSED;
    server_leave(server);
    if (resume)
        server->io->resume(server->io_ctx);
}

void smtp_server_reply_send(struct smtp_server_reply *reply, unsigned code, const char *enhanced,
                            const char *text)
{
    if (reply == NULL)
        return;
    /* On an LMTP end of data: the same answer for every recipient not
     * answered yet (a failure to store the message at all). */
    for (size_t i = 0; i < reply->answer_count; i++) {
        if (!reply->answers[i].is_set)
            answer_store(reply, &reply->answers[i], code, enhanced, text);
    }
    if (reply->kind == SMTP_SERVER_REPLY_AUTH)
        reply->is_auth_ok = code / 100 == 2;
    answer_given(reply);
}

void smtp_server_rcpt_data_reply(struct smtp_server_reply *reply, unsigned rcpt_index,
                                 unsigned code, const char *enhanced, const char *text)
{
    if (reply == NULL)
        return;
    mg_assert(reply->kind == SMTP_SERVER_REPLY_DATA_END);
    mg_assert(rcpt_index < reply->answer_count);
    answer_store(reply, &reply->answers[rcpt_index], code, enhanced, text);
    answer_given(reply);
}

void smtp_server_auth_reply(struct smtp_server_reply *reply, bool is_ok, const char *username)
{
    if (reply == NULL)
        return;
    mg_assert(reply->kind == SMTP_SERVER_REPLY_AUTH);
    if (is_ok && username != NULL) {
        free(reply->username);
        reply->username = mg_strdup(username);
    }
    reply->is_auth_ok = is_ok;
    if (is_ok)
        answer_store(reply, &reply->answers[0], 235, "2.7.0", "Authentication successful");
    else
        answer_store(reply, &reply->answers[0], 535, "5.7.8",
                     "Error: authentication credentials invalid");
    answer_given(reply);
}

/* ---- session facts ---- */

const char *smtp_server_helo(const struct smtp_server *server)
{
    return server->helo;
}

const char *smtp_server_auth_user(const struct smtp_server *server)
{
    return server->auth_user;
}

bool smtp_server_is_esmtp(const struct smtp_server *server)
{
    return server->is_esmtp;
}

enum smtp_protocol smtp_server_protocol(const struct smtp_server *server)
{
    return server->set.protocol;
}
