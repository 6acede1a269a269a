/* The SMTP/LMTP client engine: session setup (greeting, EHLO/LHLO or
 * HELO, STARTTLS, AUTH) and transactions (MAIL, RCPT, DATA, content, the
 * replies after it). Replies are matched to commands in order: with
 * PIPELINING the whole envelope goes out in one write and the replies
 * are walked with a cursor; without it the same cursor sends the next
 * command after each reply. */
#include "lmtp/smtp_client.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/alloc.h"
#include "common/arena.h"
#include "common/ascii.h"
#include "common/base64.h"
#include "common/buf.h"
#include "common/dotstuff.h"
#include "common/log.h"
#include "lmtp/smtp_reply.h"
#include "lmtp/smtp_xtext.h"

enum client_state {
    CLIENT_GREETING,  /* waiting for 220 */
    CLIENT_EHLO,      /* EHLO/LHLO sent */
    CLIENT_HELO,      /* HELO sent after EHLO was refused */
    CLIENT_STARTTLS,  /* STARTTLS sent */
    CLIENT_TLS,       /* handshake running: nothing is read */
    CLIENT_AUTH,      /* AUTH exchange */
    CLIENT_READY,     /* idle */
    CLIENT_ENVELOPE,  /* MAIL / RCPT / DATA replies */
    CLIENT_CONTENT,   /* sending content after 354 */
    CLIENT_DATA_END,  /* the reply (SMTP) or replies (LMTP) after "." */
    CLIENT_RSET,      /* abandoning a transaction */
    CLIENT_QUIT,      /* QUIT sent */
    CLIENT_CLOSED,
};

struct smtp_client {
    struct smtp_client_settings set;
    const struct smtp_client_io *io;
    void *io_ctx;
    const struct smtp_client_callbacks *cb;
    void *ctx;

    enum client_state state;
    struct smtp_reply_parser parser;
    struct mg_buf *in;          /* while smtp_client_feed runs */
    struct mg_buf out;
    unsigned ext;
    uint64_t max_size;
    char *greeting;
    char *failure;              /* the reason handed to ready/failed */
    bool is_tls;
    bool is_ready;              /* ready() reported success */
    bool is_io_closed;
    bool is_auth_login;
    unsigned auth_step;
    unsigned busy;
    bool is_free_requested;

    /* The transaction. Commands are numbered: 0 MAIL, 1..n RCPT, n+1 DATA. */
    struct smtp_client_message *msg;
    struct mg_arena *arena;     /* reply texts handed to the daemon */
    size_t cmd_answered;
    size_t accepted;
    size_t data_next;           /* LMTP: the next rcpt to get a data reply */
    bool is_pipelining;
    bool is_mail_ok;
    bool is_dummy_data;         /* 354 without a usable envelope: "." sent */
    bool is_content_waiting;    /* for smtp_client_content_ready() */
    struct smtp_reply mail_reply;
    struct mg_dotstuff_encoder encoder;
    struct mg_buf content;
};

static const char *log_id(const struct smtp_client *client)
{
    return client->set.log_id != NULL ? client->set.log_id : "-";
}

/* ---- plumbing ---- */

static const char *const state_names[] = {
    [CLIENT_GREETING] = "greeting", [CLIENT_EHLO] = "ehlo",       [CLIENT_HELO] = "helo",
    [CLIENT_STARTTLS] = "starttls", [CLIENT_TLS] = "tls",         [CLIENT_AUTH] = "auth",
    [CLIENT_READY] = "ready",       [CLIENT_ENVELOPE] = "envelope", [CLIENT_CONTENT] = "content",
    [CLIENT_DATA_END] = "data-end", [CLIENT_RSET] = "rset",       [CLIENT_QUIT] = "quit",
    [CLIENT_CLOSED] = "closed",
};

/* The only place the state changes. */
static void client_set_state(struct smtp_client *client, enum client_state state)
{
    if (client->state == state)
        return;
    mg_log_debug("smtp-client", "state session=%s old=%s new=%s", log_id(client),
                 state_names[client->state], state_names[state]);
    client->state = state;
}

static void client_write(struct smtp_client *client)
{
    if (!client->is_io_closed && client->out.len > 0)
        client->io->write(client->io_ctx, client->out.data, client->out.len);
    mg_buf_reset(&client->out);
}

/* Writes and wipes: the buffer held a credential. */
static void client_write_secret(struct smtp_client *client)
{
    if (!client->is_io_closed && client->out.len > 0)
        client->io->write(client->io_ctx, client->out.data, client->out.len);
    if (client->out.data != NULL)
        explicit_bzero(client->out.data, client->out.cap);
    mg_buf_reset(&client->out);
}

static void client_close(struct smtp_client *client)
{
    client_set_state(client, CLIENT_CLOSED);
    if (!client->is_io_closed) {
        client->is_io_closed = true;
        client->io->close(client->io_ctx);
    }
}

/* The connection is unusable: before ready() that is a setup failure,
 * afterwards failed(). No call follows either. */
static void client_fail(struct smtp_client *client, const struct smtp_reply *reply,
                        const char *reason)
{
    if (client->state == CLIENT_CLOSED)
        return;
    free(client->failure);
    if (reply != NULL)
        client->failure = mg_asprintf("%s: %u %s%s%s", reason, reply->code, reply->enhanced,
                                      reply->enhanced[0] != '\0' ? " " : "", reply->text);
    else
        client->failure = mg_strdup(reason);
    char value[MG_LOG_VALUE_MAX];
    mg_log_debug("smtp-client", "failed session=%s reason=%s", log_id(client),
                 mg_log_str(value, client->failure));
    client_close(client);
    client->msg = NULL;
    if (!client->is_ready)
        client->cb->ready(client, reply, client->failure, client->ctx);
    else
        client->cb->failed(client, client->failure, client->ctx);
}

static void client_enter(struct smtp_client *client)
{
    client->busy++;
}

static void client_destroy(struct smtp_client *client)
{
    smtp_reply_parser_deinit(&client->parser);
    mg_buf_free(&client->out);
    mg_buf_free(&client->content);
    mg_arena_free(&client->arena);
    free(client->greeting);
    free(client->failure);
    free(client);
}

static void client_leave(struct smtp_client *client)
{
    if (--client->busy == 0 && client->is_free_requested)
        client_destroy(client);
}

struct smtp_client *smtp_client_new(const struct smtp_client_settings *settings,
                                    const struct smtp_client_io *io, void *io_ctx,
                                    const struct smtp_client_callbacks *cb, void *ctx)
{
    struct smtp_client *client = mg_calloc(1, sizeof(*client));
    client->set = *settings;
    if (client->set.helo_name == NULL)
        client->set.helo_name = "localhost";
    client->io = io;
    client->io_ctx = io_ctx;
    client->cb = cb;
    client->ctx = ctx;
    client->is_tls = settings->is_tls;
    /* state is CLIENT_GREETING (0) from calloc */
    client->arena = mg_arena_new(0);
    smtp_reply_parser_init(&client->parser, settings->max_reply_length);
    return client;
}

void smtp_client_free(struct smtp_client **clientp)
{
    struct smtp_client *client = *clientp;
    if (client == NULL)
        return;
    *clientp = NULL;
    client->is_io_closed = true;
    client_set_state(client, CLIENT_CLOSED);
    if (client->busy > 0)
        client->is_free_requested = true;
    else
        client_destroy(client);
}

/* ---- session setup ---- */

static bool is_lmtp(const struct smtp_client *client)
{
    return client->set.protocol == SMTP_PROTOCOL_LMTP;
}

/* Names and addresses go into command lines: a control character would
 * end the line and start another command. */
static bool is_safe(const char *s)
{
    for (; *s != '\0'; s++) {
        unsigned char c = (unsigned char)*s;
        if (c < 0x20 || c == 0x7f)
            return false;
    }
    return true;
}

static void send_hello(struct smtp_client *client, const char *verb)
{
    mg_buf_printf(&client->out, "%s %s\r\n", verb,
                  is_safe(client->set.helo_name) ? client->set.helo_name : "localhost");
    client_write(client);
}

static void parse_ehlo(struct smtp_client *client, const char *text)
{
    client->ext = 0;
    client->max_size = 0;
    const char *line = strchr(text, '\n'); /* the first line is the greeting */
    while (line != NULL) {
        line++;
        const char *end = strchr(line, '\n');
        size_t len = end != NULL ? (size_t)(end - line) : strlen(line);
        const char *sp = memchr(line, ' ', len);
        size_t klen = sp != NULL ? (size_t)(sp - line) : len;
        const char *args = sp != NULL ? sp + 1 : line + len;
        size_t alen = len - (size_t)(args - line);
        if (klen > 5 && mg_ascii_has_prefix(line, klen, "AUTH=")) {
            /* the pre-RFC form "AUTH=PLAIN LOGIN" */
            args = line + 5;
            alen = len - 5;
            klen = 4;
        }
        if (mg_ascii_eq(line, klen, "PIPELINING")) {
            client->ext |= SMTP_EXT_PIPELINING;
        } else if (mg_ascii_eq(line, klen, "SIZE")) {
            client->ext |= SMTP_EXT_SIZE;
            uint64_t v = 0;
            for (size_t i = 0; i < alen && args[i] >= '0' && args[i] <= '9' && i < 19; i++)
                v = v * 10 + (uint64_t)(args[i] - '0');
            client->max_size = v;
        } else if (mg_ascii_eq(line, klen, "8BITMIME")) {
            client->ext |= SMTP_EXT_8BITMIME;
        } else if (mg_ascii_eq(line, klen, "SMTPUTF8")) {
            client->ext |= SMTP_EXT_SMTPUTF8;
        } else if (mg_ascii_eq(line, klen, "ENHANCEDSTATUSCODES")) {
            client->ext |= SMTP_EXT_ENHANCEDSTATUSCODES;
        } else if (mg_ascii_eq(line, klen, "CHUNKING")) {
            client->ext |= SMTP_EXT_CHUNKING;
        } else if (mg_ascii_eq(line, klen, "DSN")) {
            client->ext |= SMTP_EXT_DSN;
        } else if (mg_ascii_eq(line, klen, "STARTTLS")) {
            client->ext |= SMTP_EXT_STARTTLS;
        } else if (mg_ascii_eq(line, klen, "AUTH")) {
            size_t i = 0;
            while (i < alen) {
                size_t j = i;
                while (j < alen && args[j] != ' ')
                    j++;
                if (mg_ascii_eq(args + i, j - i, "PLAIN"))
                    client->ext |= SMTP_EXT_AUTH_PLAIN;
                else if (mg_ascii_eq(args + i, j - i, "LOGIN"))
                    client->ext |= SMTP_EXT_AUTH_LOGIN;
                i = j + 1;
            }
        }
        line = end;
    }
}

static void client_ready(struct smtp_client *client)
{
    client_set_state(client, CLIENT_READY);
    client->is_ready = true;
    client->cb->ready(client, NULL, NULL, client->ctx);
}

static void start_auth(struct smtp_client *client)
{
    if (!client->is_tls) {
        client_fail(client, NULL, "refusing to send credentials without TLS");
        return;
    }
    const char *user = client->set.auth_user;
    const char *pass = client->set.auth_password != NULL ? client->set.auth_password : "";
    client->auth_step = 0;
    client_set_state(client, CLIENT_AUTH);
    if (client->ext & SMTP_EXT_AUTH_PLAIN) {
        client->is_auth_login = false;
        size_t ulen = strlen(user), plen = strlen(pass);
        struct mg_buf msg = MG_BUF_INIT;
        mg_buf_reserve(&msg, ulen + plen + 3);
        mg_buf_append_byte(&msg, '\0');
        mg_buf_append(&msg, user, ulen);
        mg_buf_append_byte(&msg, '\0');
        mg_buf_append(&msg, pass, plen);
        mg_buf_reserve(&client->out, 16 + (msg.len + 2) / 3 * 4);
        mg_buf_append_str(&client->out, "AUTH PLAIN ");
        mg_base64_encode(msg.data, msg.len, &client->out);
        mg_buf_append(&client->out, "\r\n", 2);
        explicit_bzero(msg.data, msg.cap);
        mg_buf_free(&msg);
        client_write_secret(client);
    } else if (client->ext & SMTP_EXT_AUTH_LOGIN) {
        client->is_auth_login = true;
        mg_buf_append_str(&client->out, "AUTH LOGIN\r\n");
        client_write(client);
    } else {
        client_fail(client, NULL, "the server offers no usable AUTH mechanism");
    }
}

/* After EHLO/LHLO/HELO: STARTTLS, AUTH, or ready. */
static void after_hello(struct smtp_client *client)
{
    bool want_tls = client->set.use_starttls || client->set.require_starttls;
    if (!client->is_tls && want_tls && (client->ext & SMTP_EXT_STARTTLS)) {
        mg_buf_append_str(&client->out, "STARTTLS\r\n");
        client_write(client);
        client_set_state(client, CLIENT_STARTTLS);
    } else if (!client->is_tls && client->set.require_starttls) {
        client_fail(client, NULL, "STARTTLS not offered");
    } else if (client->set.auth_user != NULL) {
        start_auth(client);
    } else {
        client_ready(client);
    }
}

static void auth_reply(struct smtp_client *client, const struct smtp_reply *reply)
{
    const char *secret = NULL;
    if (reply->code / 100 == 2) {
        client_ready(client);
        return;
    }
    if (reply->code == 334 && client->is_auth_login && client->auth_step < 2) {
        secret = client->auth_step == 0 ? client->set.auth_user
                 : client->set.auth_password != NULL ? client->set.auth_password
                                                     : "";
        client->auth_step++;
        mg_base64_encode(secret, strlen(secret), &client->out);
        mg_buf_append(&client->out, "\r\n", 2);
        client_write_secret(client);
        return;
    }
    client_fail(client, reply, reply->code == 334 ? "unexpected AUTH challenge"
                                                  : "authentication failed");
}

/* ---- transactions ---- */

static struct smtp_reply reply_copy(struct smtp_client *client, const struct smtp_reply *reply)
{
    struct smtp_reply copy = *reply;
    copy.text = mg_arena_strdup(client->arena, reply->text);
    return copy;
}

static void tx_done(struct smtp_client *client)
{
    struct smtp_client_message *msg = client->msg;
    /* A refused MAIL FROM is the answer for every recipient. Pipelined,
     * the RCPTs behind it were answered too, mostly "503 need MAIL",
     * which says nothing about the recipient and would hide the reason
     * (Postfix reports the MAIL reply as well). Lock-step, no RCPT was
     * sent at all. */
    if (!client->is_mail_ok) {
        for (size_t i = 0; i < msg->rcpt_count; i++)
            msg->rcpts[i].result = client->mail_reply;
    }
    client->msg = NULL;
    client_set_state(client, CLIENT_READY);
    client->cb->message_done(client, msg, &client->mail_reply, client->ctx);
}

static void local_failure(struct smtp_client *client, unsigned code, const char *enhanced,
                          const char *text)
{
    struct smtp_reply reply = { .code = code, .text = text };
    snprintf(reply.enhanced, sizeof(reply.enhanced), "%s", enhanced);
    client->mail_reply = reply; /* tx_done: every recipient's result */
    tx_done(client);
}

static bool has_8bit(const char *s)
{
    for (; *s != '\0'; s++) {
        if ((unsigned char)*s >= 0x80)
            return true;
    }
    return false;
}

static void append_notify(struct mg_buf *out, unsigned notify)
{
    if (notify & SMTP_DSN_NOTIFY_NEVER) {
        mg_buf_append_str(out, " NOTIFY=NEVER");
        return;
    }
    static const struct { unsigned bit; const char *name; } names[] = {
        { SMTP_DSN_NOTIFY_SUCCESS, "SUCCESS" },
        { SMTP_DSN_NOTIFY_FAILURE, "FAILURE" },
        { SMTP_DSN_NOTIFY_DELAY, "DELAY" },
    };
    const char *sep = " NOTIFY=";
    for (size_t i = 0; i < 3; i++) {
        if (notify & names[i].bit) {
            mg_buf_append_str(out, sep);
            mg_buf_append_str(out, names[i].name);
            sep = ",";
        }
    }
}

/* ORCPT=rfc822;xtext, or utf-8;utf-8-addr-xtext for a UTF-8 address
 * (RFC 6533). An "rfc822;"/"utf-8;" prefix already present is dropped,
 * so a value received from our server can be passed on as it is. */
static void append_orcpt(struct mg_buf *out, const char *orcpt)
{
    size_t len = strlen(orcpt);
    if (mg_ascii_has_prefix(orcpt, len, "rfc822;"))
        orcpt += 7;
    else if (mg_ascii_has_prefix(orcpt, len, "utf-8;"))
        orcpt += 6;
    len = strlen(orcpt);
    if (len == 0)
        return;
    if (has_8bit(orcpt)) {
        mg_buf_append_str(out, " ORCPT=utf-8;");
        smtp_xtext_encode_utf8_addr(orcpt, len, out);
    } else {
        mg_buf_append_str(out, " ORCPT=rfc822;");
        smtp_xtext_encode(orcpt, len, out);
    }
}

static void append_mail(struct smtp_client *client, bool is_smtputf8)
{
    const struct smtp_client_message *msg = client->msg;
    struct mg_buf *out = &client->out;
    mg_buf_printf(out, "MAIL FROM:<%s>", msg->mail_from);
    if ((client->ext & SMTP_EXT_SIZE) && msg->size > 0)
        mg_buf_printf(out, " SIZE=%llu", (unsigned long long)msg->size);
    if (client->ext & SMTP_EXT_8BITMIME) {
        if (msg->body == SMTP_BODY_7BIT)
            mg_buf_append_str(out, " BODY=7BIT");
        else if (msg->body == SMTP_BODY_8BITMIME)
            mg_buf_append_str(out, " BODY=8BITMIME");
    }
    if (is_smtputf8)
        mg_buf_append_str(out, " SMTPUTF8");
    if (client->ext & SMTP_EXT_DSN) {
        if (msg->ret == SMTP_DSN_RET_FULL)
            mg_buf_append_str(out, " RET=FULL");
        else if (msg->ret == SMTP_DSN_RET_HDRS)
            mg_buf_append_str(out, " RET=HDRS");
        if (msg->envid != NULL && msg->envid[0] != '\0') {
            mg_buf_append_str(out, " ENVID=");
            smtp_xtext_encode(msg->envid, strlen(msg->envid), out);
        }
    }
    mg_buf_append(out, "\r\n", 2);
}

static void append_rcpt(struct smtp_client *client, size_t i)
{
    const struct smtp_client_rcpt *rcpt = &client->msg->rcpts[i];
    struct mg_buf *out = &client->out;
    mg_buf_printf(out, "RCPT TO:<%s>", rcpt->address);
    if (client->ext & SMTP_EXT_DSN) {
        if (rcpt->notify != 0)
            append_notify(out, rcpt->notify);
        if (rcpt->orcpt != NULL)
            append_orcpt(out, rcpt->orcpt);
    }
    mg_buf_append(out, "\r\n", 2);
}

static void send_simple(struct smtp_client *client, const char *line)
{
    mg_buf_append_str(&client->out, line);
    client_write(client);
}

void smtp_client_send(struct smtp_client *client, struct smtp_client_message *msg)
{
    mg_assert(client->state == CLIENT_READY && client->msg == NULL);
    client_enter(client);
    mg_arena_clear(client->arena);
    client->msg = msg;
    client->cmd_answered = 0;
    client->accepted = 0;
    client->data_next = 0;
    client->is_mail_ok = false;
    client->is_dummy_data = false;
    client->is_content_waiting = false;
    memset(&client->mail_reply, 0, sizeof(client->mail_reply));
    client->mail_reply.text = "";
    bool is_smtputf8 = msg->is_smtputf8 || has_8bit(msg->mail_from);
    bool is_safe_envelope = is_safe(msg->mail_from) &&
                            (msg->envid == NULL || is_safe(msg->envid));
    for (size_t i = 0; i < msg->rcpt_count; i++) {
        struct smtp_client_rcpt *rcpt = &msg->rcpts[i];
        memset(&rcpt->result, 0, sizeof(rcpt->result));
        rcpt->result.text = "";
        rcpt->is_accepted = false;
        is_smtputf8 |= has_8bit(rcpt->address);
        is_safe_envelope &= is_safe(rcpt->address) && rcpt->address[0] != '\0' &&
                            (rcpt->orcpt == NULL || is_safe(rcpt->orcpt));
    }
    if (msg->rcpt_count == 0) {
        local_failure(client, 554, "5.5.1", "no recipients");
    } else if (!is_safe_envelope) {
        local_failure(client, 501, "5.5.2", "control characters in the envelope");
    } else if (is_smtputf8 && !(client->ext & SMTP_EXT_SMTPUTF8)) {
        local_failure(client, 553, "5.6.7", "server lacks SMTPUTF8");
    } else if (msg->body == SMTP_BODY_BINARYMIME) {
        local_failure(client, 554, "5.6.3", "BINARYMIME is not supported");
    } else if (client->max_size > 0 && msg->size > client->max_size) {
        local_failure(client, 552, "5.3.4", "message exceeds the server's SIZE limit");
    } else {
        client->is_pipelining = (client->ext & SMTP_EXT_PIPELINING) != 0;
        client_set_state(client, CLIENT_ENVELOPE);
        append_mail(client, is_smtputf8);
        if (client->is_pipelining) {
            for (size_t i = 0; i < msg->rcpt_count; i++)
                append_rcpt(client, i);
            mg_buf_append_str(&client->out, "DATA\r\n");
        }
        client_write(client);
    }
    client_leave(client);
}

static void send_content(struct smtp_client *client)
{
    struct smtp_client_message *msg = client->msg;
    size_t queued = 0;
    while (client->state == CLIENT_CONTENT) {
        if (queued >= SMTP_CLIENT_WRITE_STEP && client->io->want_drain != NULL) {
            client->is_content_waiting = true;
            client->io->want_drain(client->io_ctx);
            return;
        }
        mg_buf_reset(&client->content);
        long n = msg->read_content(msg->source, &client->content, SMTP_CLIENT_READ_CHUNK);
        if (client->state != CLIENT_CONTENT)
            return; /* closed or freed from inside read_content */
        if (n == -2) {
            client->is_content_waiting = true;
            return;
        }
        if (n < 0) {
            client_fail(client, NULL, "cannot read the message content");
            return;
        }
        if (n == 0) {
            mg_dotstuff_encode_end(&client->encoder, &client->out);
            client_write(client);
            client_set_state(client, CLIENT_DATA_END);
            return;
        }
        mg_dotstuff_encode(&client->encoder, client->content.data, client->content.len,
                           &client->out);
        queued += client->out.len;
        client_write(client);
    }
}

void smtp_client_content_ready(struct smtp_client *client)
{
    if (client->state != CLIENT_CONTENT || !client->is_content_waiting)
        return;
    client_enter(client);
    client->is_content_waiting = false;
    send_content(client);
    client_leave(client);
}

/* MAIL, RCPT and DATA replies, in command order. */
static void envelope_reply(struct smtp_client *client, const struct smtp_reply *reply)
{
    struct smtp_client_message *msg = client->msg;
    size_t n = msg->rcpt_count;
    size_t idx = client->cmd_answered++;
    bool is_ok = reply->code / 100 == 2;
    if (idx == 0) {
        client->mail_reply = reply_copy(client, reply);
        client->is_mail_ok = is_ok;
        if (!client->is_pipelining) {
            if (is_ok) {
                append_rcpt(client, 0);
                client_write(client);
            } else {
                tx_done(client);
            }
        }
        return;
    }
    if (idx <= n) {
        struct smtp_client_rcpt *rcpt = &msg->rcpts[idx - 1];
        rcpt->result = reply_copy(client, reply);
        rcpt->is_accepted = is_ok && client->is_mail_ok;
        if (rcpt->is_accepted)
            client->accepted++;
        if (!client->is_pipelining) {
            if (idx < n) {
                append_rcpt(client, idx);
                client_write(client);
            } else if (client->accepted > 0) {
                send_simple(client, "DATA\r\n");
            } else {
                send_simple(client, "RSET\r\n");
                client_set_state(client, CLIENT_RSET);
            }
        }
        return;
    }
    if (reply->code == 354) {
        if (client->is_mail_ok && client->accepted > 0) {
            client_set_state(client, CLIENT_CONTENT);
            mg_dotstuff_encoder_init(&client->encoder);
            send_content(client);
        } else {
            /* A server that says go ahead to an envelope it refused: end
             * the empty content at once and throw the result away. */
            client->is_dummy_data = true;
            send_simple(client, ".\r\n");
            client_set_state(client, CLIENT_DATA_END);
        }
        return;
    }
    /* DATA refused: the whole transaction failed. */
    struct smtp_reply copy = reply_copy(client, reply);
    for (size_t i = 0; i < n; i++) {
        if (msg->rcpts[i].is_accepted)
            msg->rcpts[i].result = copy;
    }
    if (client->is_mail_ok) {
        client->mail_reply = copy;
        send_simple(client, "RSET\r\n");
        client_set_state(client, CLIENT_RSET);
    } else {
        tx_done(client);
    }
}

static void data_end_reply(struct smtp_client *client, const struct smtp_reply *reply)
{
    struct smtp_client_message *msg = client->msg;
    if (client->is_dummy_data) {
        send_simple(client, "RSET\r\n");
        client_set_state(client, CLIENT_RSET);
        return;
    }
    struct smtp_reply copy = reply_copy(client, reply);
    if (!is_lmtp(client)) {
        for (size_t i = 0; i < msg->rcpt_count; i++) {
            if (msg->rcpts[i].is_accepted)
                msg->rcpts[i].result = copy;
        }
        tx_done(client);
        return;
    }
    /* LMTP: one reply per accepted recipient, in RCPT order. */
    while (client->data_next < msg->rcpt_count && !msg->rcpts[client->data_next].is_accepted)
        client->data_next++;
    mg_assert(client->data_next < msg->rcpt_count);
    msg->rcpts[client->data_next++].result = copy;
    while (client->data_next < msg->rcpt_count && !msg->rcpts[client->data_next].is_accepted)
        client->data_next++;
    if (client->data_next == msg->rcpt_count)
        tx_done(client);
}

/* ---- replies ---- */

static void handle_reply(struct smtp_client *client, const struct smtp_reply *reply)
{
    if (reply->code == 421 && client->state != CLIENT_QUIT) {
        client_fail(client, reply, "service not available");
        return;
    }
    switch (client->state) {
    case CLIENT_GREETING:
        if (reply->code != 220) {
            client_fail(client, reply, "greeting refused");
            return;
        }
        free(client->greeting);
        client->greeting = mg_strdup(reply->text);
        client_set_state(client, CLIENT_EHLO);
        send_hello(client, is_lmtp(client) ? "LHLO" : "EHLO");
        return;
    case CLIENT_EHLO:
        if (reply->code / 100 == 2) {
            parse_ehlo(client, reply->text);
            after_hello(client);
        } else if (!is_lmtp(client) && reply->code / 100 == 5) {
            client_set_state(client, CLIENT_HELO);
            send_hello(client, "HELO");
        } else {
            client_fail(client, reply, is_lmtp(client) ? "LHLO refused" : "EHLO refused");
        }
        return;
    case CLIENT_HELO:
        if (reply->code / 100 != 2) {
            client_fail(client, reply, "HELO refused");
            return;
        }
        client->ext = 0;
        client->max_size = 0;
        after_hello(client);
        return;
    case CLIENT_STARTTLS:
        if (reply->code == 220) {
            /* Nothing the server sent before the handshake counts. */
            smtp_reply_parser_discard(&client->parser, client->in);
            client_set_state(client, CLIENT_TLS);
            client->io->start_tls(client->io_ctx);
        } else if (client->set.require_starttls) {
            client_fail(client, reply, "STARTTLS refused");
        } else if (client->set.auth_user != NULL) {
            start_auth(client);
        } else {
            client_ready(client);
        }
        return;
    case CLIENT_AUTH:
        auth_reply(client, reply);
        return;
    case CLIENT_ENVELOPE:
        envelope_reply(client, reply);
        return;
    case CLIENT_DATA_END:
        data_end_reply(client, reply);
        return;
    case CLIENT_RSET:
        tx_done(client);
        return;
    case CLIENT_QUIT:
        client_close(client);
        return;
    case CLIENT_READY:
    case CLIENT_CONTENT:
    case CLIENT_TLS:
    case CLIENT_CLOSED:
        break;
    }
    client_fail(client, reply, "protocol error: unexpected reply");
}

void smtp_client_feed(struct smtp_client *client, struct mg_buf *in)
{
    if (client->in != NULL)
        return; /* from inside a callback: the outer call goes on */
    client_enter(client);
    client->in = in;
    if (client->state == CLIENT_TLS) {
        /* Plaintext before the handshake is done is nobody's reply. */
        smtp_reply_parser_discard(&client->parser, in);
    }
    while (client->state != CLIENT_CLOSED && client->state != CLIENT_TLS) {
        struct smtp_reply reply;
        const char *error = NULL;
        enum smtp_reply_status st = smtp_reply_parser_next(&client->parser, in, &reply, &error);
        if (st == SMTP_REPLY_NEED_MORE)
            break;
        if (st == SMTP_REPLY_ERROR) {
            char reason[128];
            snprintf(reason, sizeof(reason), "protocol error: %s", error);
            client_fail(client, NULL, reason);
            break;
        }
        handle_reply(client, &reply);
    }
    client->in = NULL;
    client_leave(client);
}

void smtp_client_tls_ready(struct smtp_client *client)
{
    if (client->state != CLIENT_TLS)
        return;
    client_enter(client);
    /* RFC 3207 section 4.2: start over, and learn the extensions again. */
    client->is_tls = true;
    client->ext = 0;
    client->max_size = 0;
    client_set_state(client, CLIENT_EHLO);
    send_hello(client, is_lmtp(client) ? "LHLO" : "EHLO");
    client_leave(client);
}

void smtp_client_connection_lost(struct smtp_client *client, const char *reason)
{
    if (client->state == CLIENT_CLOSED)
        return;
    client_enter(client);
    client->is_io_closed = true;
    if (client->state == CLIENT_QUIT)
        client_set_state(client, CLIENT_CLOSED);
    else
        client_fail(client, NULL, reason != NULL ? reason : "connection lost");
    client_leave(client);
}

void smtp_client_quit(struct smtp_client *client)
{
    if (client->state == CLIENT_CLOSED || client->state == CLIENT_QUIT)
        return;
    client_enter(client);
    if (client->state == CLIENT_READY) {
        send_simple(client, "QUIT\r\n");
        client_set_state(client, CLIENT_QUIT);
    } else {
        client_close(client);
    }
    client_leave(client);
}

unsigned smtp_client_extensions(const struct smtp_client *client)
{
    return client->ext;
}

uint64_t smtp_client_max_size(const struct smtp_client *client)
{
    return client->max_size;
}

bool smtp_client_is_idle(const struct smtp_client *client)
{
    return client->state == CLIENT_READY;
}

const char *smtp_client_greeting(const struct smtp_client *client)
{
    return client->greeting != NULL ? client->greeting : "";
}
