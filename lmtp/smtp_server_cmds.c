/* The command table and the envelope commands: HELO/EHLO/LHLO, MAIL,
 * RCPT, RSET, NOOP, QUIT, VRFY, HELP, EXPN. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/alloc.h"
#include "common/arena.h"
#include "common/ascii.h"
#include "common/log.h"
#include "lmtp/smtp_command.h"
#include "lmtp/smtp_server_private.h"

#define ST(name) (1u << SMTP_SERVER_STATE_##name)
/* The states in which a command line is read. */
#define ST_COMMANDS (ST(HELO) | ST(READY) | ST(MAIL) | ST(CHUNKING))

#define PROTO_SMTP (1u << SMTP_PROTOCOL_SMTP)
#define PROTO_LMTP (1u << SMTP_PROTOCOL_LMTP)
#define PROTO_ANY (PROTO_SMTP | PROTO_LMTP)

enum cmd_flags {
    CMD_NO_ARGS = 1 << 0,   /* arguments are a syntax error */
    CMD_NEEDS_ARGS = 1 << 1, /* no arguments is a syntax error */
    CMD_LONG_LINE = 1 << 2, /* may exceed max_line_length (AUTH, RFC 4954) */
};

struct smtp_server_cmd {
    const char *name;
    unsigned protocols;
    unsigned states;        /* where it is valid; elsewhere 503 */
    unsigned flags;
    const char *syntax;     /* 501 text for CMD_NO_ARGS / CMD_NEEDS_ARGS */
    void (*run)(struct smtp_server *server, const char *args, size_t len);
};

static void cmd_helo(struct smtp_server *server, const char *args, size_t len);
static void cmd_ehlo(struct smtp_server *server, const char *args, size_t len);
static void cmd_mail(struct smtp_server *server, const char *args, size_t len);
static void cmd_rcpt(struct smtp_server *server, const char *args, size_t len);
static void cmd_rset(struct smtp_server *server, const char *args, size_t len);
static void cmd_noop(struct smtp_server *server, const char *args, size_t len);
static void cmd_quit(struct smtp_server *server, const char *args, size_t len);
static void cmd_vrfy(struct smtp_server *server, const char *args, size_t len);
static void cmd_help(struct smtp_server *server, const char *args, size_t len);
static void cmd_expn(struct smtp_server *server, const char *args, size_t len);

/* BDAT checks its state itself: whatever the state, a well-formed BDAT's
 * chunk must be read before the reply (RFC 3030 section 2), or its bytes
 * would be taken for commands. */
static const struct smtp_server_cmd commands[] = {
    { "HELO", PROTO_SMTP, ST_COMMANDS, CMD_NEEDS_ARGS, "Syntax: HELO hostname", cmd_helo },
    { "EHLO", PROTO_SMTP, ST_COMMANDS, CMD_NEEDS_ARGS, "Syntax: EHLO hostname", cmd_ehlo },
    { "LHLO", PROTO_LMTP, ST_COMMANDS, CMD_NEEDS_ARGS, "Syntax: LHLO hostname", cmd_ehlo },
    { "MAIL", PROTO_ANY, ST(READY), CMD_NEEDS_ARGS, "Syntax: MAIL FROM:<address>", cmd_mail },
    { "RCPT", PROTO_ANY, ST(MAIL), CMD_NEEDS_ARGS, "Syntax: RCPT TO:<address>", cmd_rcpt },
    { "DATA", PROTO_ANY, ST(MAIL), CMD_NO_ARGS, "Syntax: DATA", smtp_server_cmd_data },
    { "BDAT", PROTO_ANY, ST_COMMANDS, 0, NULL, smtp_server_cmd_bdat },
    { "RSET", PROTO_ANY, ST_COMMANDS, CMD_NO_ARGS, "Syntax: RSET", cmd_rset },
    { "NOOP", PROTO_ANY, ST_COMMANDS, 0, NULL, cmd_noop },
    { "QUIT", PROTO_ANY, ST_COMMANDS, 0, NULL, cmd_quit },
    { "VRFY", PROTO_ANY, ST_COMMANDS, CMD_NEEDS_ARGS, "Syntax: VRFY address", cmd_vrfy },
    { "EXPN", PROTO_ANY, ST_COMMANDS, 0, NULL, cmd_expn },
    { "HELP", PROTO_ANY, ST_COMMANDS, 0, NULL, cmd_help },
    { "STARTTLS", PROTO_ANY, ST(READY), CMD_NO_ARGS, "Syntax: STARTTLS", smtp_server_cmd_starttls },
    { "AUTH", PROTO_ANY, ST(READY), CMD_NEEDS_ARGS | CMD_LONG_LINE, "Syntax: AUTH mechanism",
      smtp_server_cmd_auth },
};

static const struct smtp_server_cmd *cmd_lookup(const char *verb, size_t len)
{
    if (len > SMTP_COMMAND_VERB_MAX)
        return NULL;
    for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++) {
        if (mg_ascii_eq(verb, len, commands[i].name))
            return &commands[i];
    }
    return NULL;
}

static bool is_lmtp(const struct smtp_server *server)
{
    return server->set.protocol == SMTP_PROTOCOL_LMTP;
}

static const char *wrong_state_text(const struct smtp_server *server,
                                    const struct smtp_server_cmd *cmd)
{
    switch (server->state) {
    case SMTP_SERVER_STATE_HELO:
        return is_lmtp(server) ? "Error: send LHLO first" : "Error: send HELO/EHLO first";
    case SMTP_SERVER_STATE_READY:
        return "Error: need MAIL command";
    case SMTP_SERVER_STATE_MAIL:
        return cmd->run == cmd_mail ? "Error: nested MAIL command"
                                    : "Error: MAIL transaction in progress";
    case SMTP_SERVER_STATE_CHUNKING:
        return "Error: BDAT transfer in progress";
    default:
        return "Error: bad sequence of commands";
    }
}

void smtp_server_cmd_too_long(struct smtp_server *server)
{
    smtp_server_reply_error(server, 500, "5.5.2", "Error: line too long");
}

void smtp_server_cmd_dispatch(struct smtp_server *server, const char *line, size_t len,
                              bool is_bare_lf)
{
    mg_arena_clear(server->cmd_arena);
    if (is_bare_lf && server->set.bare_newline == SMTP_BARE_NEWLINE_REJECT) {
        smtp_server_reply_error(server, 500, "5.5.2", "Error: bare <LF> received");
        return;
    }
    struct smtp_command command;
    struct smtp_status error;
    if (smtp_command_split(line, len, &command, &error) < 0) {
        smtp_server_reply_error_status(server, &error);
        return;
    }
    const struct smtp_server_cmd *cmd = cmd_lookup(command.verb, command.verb_len);
    if (cmd != NULL && !(cmd->protocols & (1u << server->set.protocol))) {
        smtp_server_reply_error(server, 500, "5.5.1",
                                is_lmtp(server) ? "Error: use LHLO in LMTP"
                                                : "Error: LHLO is for LMTP only");
        return;
    }
    if (cmd == NULL) {
        smtp_server_reply_error(server, 500, "5.5.2", "Error: command not recognized");
        return;
    }
    mg_log_debug("smtp", "command session=%s verb=%s",
                 server->set.log_id != NULL ? server->set.log_id : "-", cmd->name);
    if (len > server->set.max_line_length && !(cmd->flags & CMD_LONG_LINE)) {
        smtp_server_cmd_too_long(server);
        return;
    }
    if (!(cmd->states & (1u << server->state))) {
        smtp_server_reply_error(server, 503, "5.5.1", wrong_state_text(server, cmd));
        return;
    }
    if (((cmd->flags & CMD_NO_ARGS) && command.args_len > 0) ||
        ((cmd->flags & CMD_NEEDS_ARGS) && command.args_len == 0)) {
        smtp_server_reply_error(server, 501, "5.5.4", cmd->syntax);
        return;
    }
    cmd->run(server, command.args, command.args_len);
}

/* ---- HELO / EHLO / LHLO ---- */

static void helo_common(struct smtp_server *server, const char *args, size_t len, bool is_esmtp)
{
    /* The name is the daemon's to judge (helo hook); we only keep it to
     * printable ASCII so that it is safe in logs and headers. */
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)args[i];
        if (c <= 0x20 || c >= 0x7f) {
            smtp_server_reply_error(server, 501, "5.5.4", "Error: invalid host name");
            return;
        }
    }
    /* RFC 5321 section 4.1.4: HELO/EHLO in a transaction resets it. */
    if (server->tx != NULL)
        smtp_server_tx_end(server);
    free(server->helo);
    server->helo = mg_strndup(args, len);
    server->is_esmtp = is_esmtp;
    smtp_server_set_state(server, SMTP_SERVER_STATE_READY);
    if (server->hooks->helo != NULL)
        server->hooks->helo(server, server->helo, server->ctx);
}

static void cmd_helo(struct smtp_server *server, const char *args, size_t len)
{
    helo_common(server, args, len, false);
    if (server->state == SMTP_SERVER_STATE_READY)
        smtp_server_reply(server, 250, NULL, server->set.hostname);
}

static void cmd_ehlo(struct smtp_server *server, const char *args, size_t len)
{
    helo_common(server, args, len, true);
    if (server->state != SMTP_SERVER_STATE_READY)
        return;
    const struct smtp_server_settings *set = &server->set;
    char size[32] = "SIZE";
    if (set->max_message_size > 0)
        snprintf(size, sizeof(size), "SIZE %llu", (unsigned long long)set->max_message_size);
    const char *lines[16];
    size_t n = 0;
    lines[n++] = set->hostname;
    lines[n++] = "PIPELINING";
    lines[n++] = size;
    lines[n++] = "8BITMIME";
    if (set->offer_smtputf8)
        lines[n++] = "SMTPUTF8";
    lines[n++] = "ENHANCEDSTATUSCODES";
    if (set->offer_chunking)
        lines[n++] = "CHUNKING";
    if (set->offer_dsn)
        lines[n++] = "DSN";
    if (set->offer_starttls && !server->is_tls)
        lines[n++] = "STARTTLS";
    /* Never offer passwords a plaintext channel. */
    if (set->offer_auth && server->is_tls)
        lines[n++] = "AUTH PLAIN LOGIN";
    mg_buf_reset(&server->out);
    for (size_t i = 0; i < n; i++)
        smtp_reply_append(&server->out, 250, i + 1 == n, NULL, lines[i]);
    server->io->write(server->io_ctx, server->out.data, server->out.len);
}

/* ---- MAIL / RCPT ---- */

static struct smtp_params_options params_options(const struct smtp_server *server)
{
    return (struct smtp_params_options){
        .is_esmtp = server->is_esmtp,
        .allow_smtputf8 = server->set.offer_smtputf8,
        .allow_dsn = server->set.offer_dsn,
        .is_smtputf8 = server->tx != NULL && server->tx->tx.is_smtputf8,
    };
}

static void default_answer(struct smtp_server_reply *reply, const char *enhanced)
{
    smtp_server_reply_send(reply, 250, enhanced, "Ok");
}

static void cmd_mail(struct smtp_server *server, const char *args, size_t len)
{
    if (server->set.require_auth && server->auth_user == NULL) {
        smtp_server_reply_error(server, 530, "5.7.0", "Error: authentication required");
        return;
    }
    struct smtp_params_options options = params_options(server);
    struct smtp_mail_command mail;
    struct smtp_status error;
    if (smtp_command_parse_mail(args, len, &options, server->cmd_arena, &mail, &error) < 0) {
        smtp_server_reply_error_status(server, &error);
        return;
    }
    if (server->set.max_message_size > 0 && mail.params.has_size &&
        mail.params.size > server->set.max_message_size) {
        smtp_server_reply(server, 552, "5.3.4", "Error: message size exceeds fixed limit");
        return;
    }
    struct smtp_server_tx *stx = smtp_server_tx_new(server);
    struct smtp_tx *tx = &stx->tx;
    tx->mail_from = mg_arena_strdup(stx->arena, mail.address);
    tx->size_param = mail.params.has_size ? mail.params.size : 0;
    tx->body = mail.params.body;
    tx->is_smtputf8 = mail.params.is_smtputf8;
    tx->ret = mail.params.ret;
    if (mail.params.envid != NULL)
        tx->envid = mg_arena_strdup(stx->arena, mail.params.envid);
    if (mail.params.auth != NULL)
        tx->auth_param = mg_arena_strdup(stx->arena, mail.params.auth);

    struct smtp_server_reply *reply = smtp_server_reply_new(server, SMTP_SERVER_REPLY_MAIL, 1);
    if (server->hooks->mail_from != NULL)
        server->hooks->mail_from(server, reply, tx, server->ctx);
    else
        default_answer(reply, "2.1.0");
    smtp_server_hook_returned(server, reply);
}

/* The candidate recipient is one allocation, so that a rejected one costs
 * nothing once answered: a million rejected RCPTs must not grow memory. */
static struct smtp_rcpt *rcpt_new(const struct smtp_rcpt_command *cmd, unsigned index)
{
    size_t alen = strlen(cmd->address) + 1;
    size_t olen = cmd->params.orcpt != NULL ? strlen(cmd->params.orcpt) + 1 : 0;
    struct smtp_rcpt *rcpt = mg_calloc(1, sizeof(*rcpt) + alen + olen);
    char *p = (char *)(rcpt + 1);
    memcpy(p, cmd->address, alen);
    rcpt->address = p;
    if (olen > 0) {
        memcpy(p + alen, cmd->params.orcpt, olen);
        rcpt->orcpt = p + alen;
    }
    rcpt->notify = cmd->params.notify;
    rcpt->index = index;
    return rcpt;
}

static void cmd_rcpt(struct smtp_server *server, const char *args, size_t len)
{
    struct smtp_server_tx *stx = server->tx;
    if (stx->tx.rcpt_count >= server->set.max_recipients) {
        /* RFC 5321 section 4.5.3.1.10: the client sends the rest later. */
        smtp_server_reply(server, 452, "4.5.3", "Error: too many recipients");
        return;
    }
    struct smtp_params_options options = params_options(server);
    struct smtp_rcpt_command cmd;
    struct smtp_status error;
    if (smtp_command_parse_rcpt(args, len, &options, server->cmd_arena, &cmd, &error) < 0) {
        smtp_server_reply_error_status(server, &error);
        return;
    }
    struct smtp_server_reply *reply = smtp_server_reply_new(server, SMTP_SERVER_REPLY_RCPT, 1);
    reply->rcpt = rcpt_new(&cmd, (unsigned)stx->tx.rcpt_count);
    if (server->hooks->rcpt_to != NULL)
        server->hooks->rcpt_to(server, reply, &stx->tx, reply->rcpt, server->ctx);
    else
        default_answer(reply, "2.1.5");
    smtp_server_hook_returned(server, reply);
}

static void rcpt_accept(struct smtp_server_tx *stx, struct smtp_rcpt *rcpt)
{
    struct smtp_tx *tx = &stx->tx;
    if (tx->rcpt_count == stx->rcpt_alloc) {
        stx->rcpt_alloc = stx->rcpt_alloc == 0 ? 8 : stx->rcpt_alloc * 2;
        tx->rcpts = mg_reallocarray(tx->rcpts, stx->rcpt_alloc, sizeof(tx->rcpts[0]));
    }
    tx->rcpts[tx->rcpt_count++] = rcpt;
}

void smtp_server_cmd_answered(struct smtp_server_reply *reply)
{
    struct smtp_server *server = reply->server;
    const struct smtp_server_answer *a = &reply->answers[0];
    bool is_ok = a->code / 100 == 2;
    if (reply->kind == SMTP_SERVER_REPLY_MAIL) {
        if (is_ok)
            smtp_server_set_state(server, SMTP_SERVER_STATE_MAIL);
        smtp_server_reply(server, a->code, a->enhanced, a->text);
        if (!is_ok)
            smtp_server_tx_end(server);
        return;
    }
    if (is_ok) {
        rcpt_accept(server->tx, reply->rcpt);
        reply->rcpt = NULL;
    }
    smtp_server_reply(server, a->code, a->enhanced, a->text);
}

/* ---- the rest ---- */

static void cmd_rset(struct smtp_server *server, const char *args, size_t len)
{
    if (server->tx != NULL)
        smtp_server_tx_end(server);
    smtp_server_reply(server, 250, "2.0.0", "Ok");
}

static void cmd_noop(struct smtp_server *server, const char *args, size_t len)
{
    smtp_server_reply(server, 250, "2.0.0", "Ok");
}

static void cmd_quit(struct smtp_server *server, const char *args, size_t len)
{
    smtp_server_reply(server, 221, "2.0.0", "Bye");
    smtp_server_close(server);
}

static void cmd_vrfy(struct smtp_server *server, const char *args, size_t len)
{
    /* RFC 5321 section 3.5.3: 252 tells nothing about who exists. */
    smtp_server_reply(server, 252, "2.1.5", "Cannot VRFY user, but will accept message");
}

static void cmd_expn(struct smtp_server *server, const char *args, size_t len)
{
    smtp_server_reply_error(server, 502, "5.5.1", "Error: command not implemented");
}

/* The commands this session may use now, as EHLO offers them. */
static void cmd_help(struct smtp_server *server, const char *args, size_t len)
{
    const struct smtp_server_settings *set = &server->set;
    if (is_lmtp(server)) {
        smtp_server_reply(server, 214, "2.0.0", "Commands: LHLO MAIL RCPT DATA BDAT RSET NOOP QUIT VRFY HELP");
        return;
    }
    bool starttls = set->offer_starttls && !server->is_tls;
    bool auth = set->offer_auth && server->is_tls;
    char text[128];
    snprintf(text, sizeof(text), "Commands: HELO EHLO MAIL RCPT DATA BDAT RSET NOOP QUIT VRFY HELP%s%s",
             starttls ? " STARTTLS" : "", auth ? " AUTH" : "");
    smtp_server_reply(server, 214, "2.0.0", text);
}
