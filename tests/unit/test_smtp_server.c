/* The SMTP/LMTP server engine over in-memory io. A table of dialogues is
 * run in four ways, which must all give the same transcript: input at
 * once or one byte at a time, hooks answering synchronously or later
 * (the handle is kept and answered after the feed returns, as a daemon
 * does from a libuv callback). Explicit tests follow for what a table
 * cannot show: pending answers, streaming order, STARTTLS, timeouts,
 * shutdown, freeing with answers outstanding, recipient data coming back
 * through rcpt_free on every path. Content streaming and hostile input are
 * in test_smtp_server_stream.c.
 *
 * Every recipient the rcpt_to hook sees gets data (a copy of its address)
 * that only rcpt_free releases: LeakSanitizer and the counters catch a
 * recipient the engine drops, and rcpt_free asserts it is never called
 * twice. */
#include "testutil.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/buf.h"
#include "common/log.h"
#include "lmtp/smtp_server.h"

/* ---- harness ---- */

enum {
    F_LMTP = 1 << 0,
    F_TLS = 1 << 1,          /* the transport is TLS already */
    F_REQUIRE_AUTH = 1 << 2,
    F_NORMALIZE = 1 << 3,
    F_NOAUTH = 1 << 4,
    F_ERRLIMIT = 1 << 5,     /* max_errors 3 */
};

enum held_kind { HELD_NONE, HELD_AUTH, HELD_MAIL, HELD_RCPT, HELD_DATA_BEGIN, HELD_DATA_END };

struct h {
    struct smtp_server_settings set;
    struct smtp_server *server;
    struct mg_buf in, out, content;
    bool defer;
    bool auto_answer;       /* answer held handles after each feed */
    /* the handle a deferring hook keeps */
    struct smtp_server_reply *held;
    enum held_kind held_kind;
    struct smtp_tx *held_tx;
    struct smtp_rcpt *held_rcpt;
    bool held_auth_ok;
    int closes, tls_starts, tx_frees, data_begins, data_ends;
    int rcpt_datas;         /* recipients given data by hook_rcpt */
    int rcpt_frees;         /* ... and released by hook_rcpt_free */
    int rcpt_frees_inert;   /* ... of those, after the session was freed */
    char events[256];       /* 'R' rcpt_free, 'T' tx_free, in order */
    size_t n_events;
    unsigned queued;
    size_t tx_base;         /* content.len when the transaction began */
    size_t max_chunk;
    bool free_in_chunk;
    char helo_seen[64];
};

static void io_write(void *ctx, const void *data, size_t len)
{
    struct h *h = ctx;
    mg_buf_append(&h->out, data, len);
}

static void io_start_tls(void *ctx)
{
    struct h *h = ctx;
    h->tls_starts++;
}

static void io_close(void *ctx)
{
    struct h *h = ctx;
    h->closes++;
}

static const struct smtp_server_io mem_io = { io_write, io_start_tls, io_close, NULL };

static void hold(struct h *h, struct smtp_server_reply *reply, enum held_kind kind,
                 struct smtp_tx *tx, struct smtp_rcpt *rcpt)
{
    assert_null(h->held);
    h->held = reply;
    h->held_kind = kind;
    h->held_tx = tx;
    h->held_rcpt = rcpt;
}

static void answer_mail(struct smtp_server_reply *reply, struct smtp_tx *tx)
{
    if (strstr(tx->mail_from, "reject") != NULL)
        smtp_server_reply_send(reply, 550, "5.1.0", "sender rejected");
    else
        smtp_server_reply_send(reply, 250, "2.1.0", "Ok");
}

static void answer_rcpt(struct smtp_server_reply *reply, struct smtp_rcpt *rcpt)
{
    if (strstr(rcpt->address, "reject") != NULL)
        smtp_server_reply_send(reply, 550, "5.1.1", "no such user");
    else if (strstr(rcpt->address, "temp") != NULL)
        smtp_server_reply_send(reply, 450, NULL, "try again");
    else
        smtp_server_reply_send(reply, 250, "2.1.5", "Ok");
}

static void answer_data_begin(struct smtp_server_reply *reply, struct smtp_tx *tx)
{
    if (strstr(tx->mail_from, "nodata") != NULL)
        smtp_server_reply_send(reply, 451, "4.3.0", "try later");
    else
        smtp_server_reply_send(reply, 354, NULL, NULL);
}

/* LMTP answers go in reverse order: the engine must restore it. */
static void answer_data_end(struct h *h, struct smtp_server_reply *reply, struct smtp_tx *tx)
{
    if (h->set.protocol == SMTP_PROTOCOL_SMTP) {
        char text[64];
        snprintf(text, sizeof(text), "Ok: queued as Q%u", ++h->queued);
        smtp_server_reply_send(reply, 250, "2.0.0", text);
        return;
    }
    for (size_t i = tx->rcpt_count; i-- > 0;) {
        char text[300];
        const char *addr = tx->rcpts[i]->address;
        assert_int_equal(tx->rcpts[i]->index, i);
        if (strstr(addr, "full") != NULL) {
            snprintf(text, sizeof(text), "<%s> mailbox full", addr);
            smtp_server_rcpt_data_reply(reply, (unsigned)i, 552, "5.2.2", text);
        } else {
            snprintf(text, sizeof(text), "<%s> delivered", addr);
            smtp_server_rcpt_data_reply(reply, (unsigned)i, 250, "2.0.0", text);
        }
    }
}

static void hook_helo(struct smtp_server *server, const char *domain, void *ctx)
{
    struct h *h = ctx;
    snprintf(h->helo_seen, sizeof(h->helo_seen), "%s", domain);
}

static void hook_auth(struct smtp_server *server, struct smtp_server_reply *reply,
                      const char *authzid, const char *authcid, const char *password, void *ctx)
{
    struct h *h = ctx;
    bool ok = strcmp(authcid, "alice") == 0 && strcmp(password, "secret") == 0;
    if (h->defer) {
        /* An asynchronous check copies what it needs: the password is
         * wiped when this returns. */
        hold(h, reply, HELD_AUTH, NULL, NULL);
        h->held_auth_ok = ok;
        return;
    }
    smtp_server_auth_reply(reply, ok, NULL);
}

static void hook_mail(struct smtp_server *server, struct smtp_server_reply *reply,
                      struct smtp_tx *tx, void *ctx)
{
    struct h *h = ctx;
    h->tx_base = h->content.len;
    if (h->defer)
        hold(h, reply, HELD_MAIL, tx, NULL);
    else
        answer_mail(reply, tx);
}

static void note_event(struct h *h, char event)
{
    if (h->n_events + 1 < sizeof(h->events))
        h->events[h->n_events++] = event;
}

static void hook_rcpt(struct smtp_server *server, struct smtp_server_reply *reply,
                      struct smtp_tx *tx, struct smtp_rcpt *rcpt, void *ctx)
{
    struct h *h = ctx;
    assert_null(rcpt->data);
    rcpt->data = strdup(rcpt->address);
    h->rcpt_datas++;
    if (h->defer)
        hold(h, reply, HELD_RCPT, tx, rcpt);
    else
        answer_rcpt(reply, rcpt);
}

static void hook_data_begin(struct smtp_server *server, struct smtp_server_reply *reply,
                            struct smtp_tx *tx, void *ctx)
{
    struct h *h = ctx;
    h->data_begins++;
    if (h->defer)
        hold(h, reply, HELD_DATA_BEGIN, tx, NULL);
    else
        answer_data_begin(reply, tx);
}

static void hook_data_chunk(struct smtp_server *server, struct smtp_tx *tx, const char *data,
                            size_t len, void *ctx)
{
    struct h *h = ctx;
    assert_true(len > 0);
    mg_buf_append(&h->content, data, len);
    if (len > h->max_chunk)
        h->max_chunk = len;
    if (h->free_in_chunk)
        smtp_server_free(&h->server);
}

static void hook_data_end(struct smtp_server *server, struct smtp_server_reply *reply,
                          struct smtp_tx *tx, void *ctx)
{
    struct h *h = ctx;
    h->data_ends++;
    assert_int_equal(tx->data_size, h->content.len - h->tx_base);
    if (h->defer)
        hold(h, reply, HELD_DATA_END, tx, NULL);
    else
        answer_data_end(h, reply, tx);
}

static void hook_tx_free(struct smtp_server *server, struct smtp_tx *tx, void *ctx)
{
    struct h *h = ctx;
    /* The recipients went first. */
    for (size_t i = 0; i < tx->rcpt_count; i++)
        assert_null(tx->rcpts[i]->data);
    h->tx_frees++;
    note_event(h, 'T');
}

static void hook_rcpt_free(struct smtp_server *server, struct smtp_tx *tx, struct smtp_rcpt *rcpt,
                           void *ctx)
{
    struct h *h = ctx;
    assert_non_null(rcpt->data);
    assert_string_equal(rcpt->data, rcpt->address);
    free(rcpt->data);
    h->rcpt_frees++;
    if (server == NULL) {
        assert_null(tx);
        h->rcpt_frees_inert++;
    }
    note_event(h, 'R');
}

static const struct smtp_server_hooks test_hooks = {
    .helo = hook_helo,
    .auth = hook_auth,
    .mail_from = hook_mail,
    .rcpt_to = hook_rcpt,
    .data_begin = hook_data_begin,
    .data_chunk = hook_data_chunk,
    .data_end = hook_data_end,
    .tx_free = hook_tx_free,
    .rcpt_free = hook_rcpt_free,
};

static void h_init_size(struct h *h, unsigned flags, bool defer, uint64_t max_size)
{
    memset(h, 0, sizeof(*h));
    bool lmtp = flags & F_LMTP;
    h->set = (struct smtp_server_settings){
        .protocol = lmtp ? SMTP_PROTOCOL_LMTP : SMTP_PROTOCOL_SMTP,
        .hostname = "mx.test",
        .greeting_text = lmtp ? "LMTP test" : "ESMTP test",
        .max_line_length = 512,
        .max_recipients = 3,
        .max_message_size = max_size,
        .max_errors = (flags & F_ERRLIMIT) ? 3 : 50,
        .bare_newline = (flags & F_NORMALIZE) ? SMTP_BARE_NEWLINE_NORMALIZE
                                              : SMTP_BARE_NEWLINE_REJECT,
        .offer_starttls = !lmtp,
        .is_tls = (flags & F_TLS) != 0,
        .offer_auth = !lmtp && !(flags & F_NOAUTH),
        .require_auth = (flags & F_REQUIRE_AUTH) != 0,
        .offer_chunking = true,
        .offer_dsn = true,
        .offer_smtputf8 = true,
        .log_id = "test",
    };
    h->defer = defer;
    h->server = smtp_server_new(&h->set, &mem_io, h, &test_hooks, h);
}

static void h_init(struct h *h, unsigned flags, bool defer)
{
    h_init_size(h, flags, defer, 1000);
}

static void h_answer_held(struct h *h)
{
    struct smtp_server_reply *reply = h->held;
    enum held_kind kind = h->held_kind;
    h->held = NULL;
    h->held_kind = HELD_NONE;
    switch (kind) {
    case HELD_AUTH:
        smtp_server_auth_reply(reply, h->held_auth_ok, NULL);
        break;
    case HELD_MAIL:
        answer_mail(reply, h->held_tx);
        break;
    case HELD_RCPT:
        answer_rcpt(reply, h->held_rcpt);
        break;
    case HELD_DATA_BEGIN:
        answer_data_begin(reply, h->held_tx);
        break;
    case HELD_DATA_END:
        answer_data_end(h, reply, h->held_tx);
        break;
    case HELD_NONE:
        break;
    }
}

/* What a daemon does: feed, and after each later answer feed again. */
static void h_feed(struct h *h)
{
    if (h->server == NULL)
        return;
    smtp_server_feed(h->server, &h->in);
    while (h->auto_answer && h->held != NULL && h->server != NULL) {
        assert_false(smtp_server_wants_input(h->server));
        h_answer_held(h);
        smtp_server_feed(h->server, &h->in);
    }
}

static void h_input(struct h *h, const char *data, size_t len, bool bytewise)
{
    for (size_t off = 0; off < len;) {
        size_t n = bytewise ? 1 : len - off;
        mg_buf_append(&h->in, data + off, n);
        off += n;
        h_feed(h);
    }
}

static void h_send(struct h *h, const char *data)
{
    h_input(h, data, strlen(data), false);
}

static void h_deinit(struct h *h)
{
    smtp_server_free(&h->server);
    if (h->held != NULL) {
        /* The handle is inert now: answering must neither crash nor leak.
         * tx and rcpt are gone with tx_free, so answer blindly. */
        if (h->held_kind == HELD_AUTH)
            smtp_server_auth_reply(h->held, true, "nobody");
        else
            smtp_server_reply_send(h->held, 250, "2.0.0", "late");
        h->held = NULL;
    }
    mg_buf_free(&h->in);
    mg_buf_free(&h->out);
    mg_buf_free(&h->content);
}

/* Takes the output so far (for step-by-step checks). */
static char *h_take(struct h *h)
{
    char *s = strdup(mg_buf_cstr(&h->out));
    mg_buf_reset(&h->out);
    return s;
}

#define GREET "220 mx.test ESMTP test\r\n"
#define LGREET "220 mx.test LMTP test\r\n"
#define EHLO_COMMON                                                                               \
    "250-mx.test\r\n250-PIPELINING\r\n250-SIZE 1000\r\n250-8BITMIME\r\n250-SMTPUTF8\r\n"          \
    "250-ENHANCEDSTATUSCODES\r\n250-CHUNKING\r\n"
#define EHLO_PLAIN EHLO_COMMON "250-DSN\r\n250 STARTTLS\r\n"
#define EHLO_TLS EHLO_COMMON "250-DSN\r\n250 AUTH PLAIN LOGIN\r\n"
#define EHLO_TLS_NOAUTH EHLO_COMMON "250 DSN\r\n"
#define LHLO EHLO_COMMON "250 DSN\r\n"
#define GO "354 End data with <CR><LF>.<CR><LF>\r\n"
#define BYE "221 2.0.0 Bye\r\n"
#define OK_MAIL "250 2.1.0 Ok\r\n"
#define OK_RCPT "250 2.1.5 Ok\r\n"
#define OK "250 2.0.0 Ok\r\n"
/* 100 and 81 bytes of filler */
#define X10 "0123456789"
#define X100 X10 X10 X10 X10 X10 X10 X10 X10 X10 X10
#define LINE80 X10 X10 X10 X10 X10 X10 X10 "012345678\r\n"
#define ENV "EHLO c.test\r\nMAIL FROM:<a@b.test>\r\nRCPT TO:<c@d.test>\r\n"
#define ENV_OK GREET EHLO_PLAIN OK_MAIL OK_RCPT
/* "\0alice\0secret", "\0alice\0wrong" */
#define PLAIN_OK "AGFsaWNlAHNlY3JldA=="
#define PLAIN_BAD "AGFsaWNlAHdyb25n"
#define AUTH_OK "235 2.7.0 Authentication successful\r\n"
#define AUTH_FAIL "535 5.7.8 Error: authentication credentials invalid\r\n"

struct scenario {
    const char *name;
    unsigned flags;
    const char *input;
    size_t input_len;       /* 0: strlen */
    const char *output;
    const char *content;    /* data_chunk concatenation; NULL: not checked */
    int closes;
    int tx_frees;           /* -1: not checked */
};

static const struct scenario scenarios[] = {
    { "smtp dialogue", 0,
      "EHLO client.test\r\nMAIL FROM:<a@b.test> BODY=8BITMIME\r\nRCPT TO:<c@d.test>\r\n"
      "RCPT TO:<reject@d.test>\r\nRCPT TO:<e@d.test> NOTIFY=NEVER\r\nDATA\r\n"
      "Subject: x\r\n\r\n..dot\r\nbody\r\n.\r\nQUIT\r\n",
      0,
      GREET EHLO_PLAIN OK_MAIL OK_RCPT "550 5.1.1 no such user\r\n" OK_RCPT GO
      "250 2.0.0 Ok: queued as Q1\r\n" BYE,
      "Subject: x\r\n\r\n.dot\r\nbody\r\n", 1, 1 },
    { "smtp two transactions, HELO, lower case", 0,
      "helo c\r\nmail from:<a@b.test>\r\nrcpt to:<c@d.test>\r\ndata\r\none\r\n.\r\n"
      "MAIL FROM:<>\r\nRCPT TO:<postmaster>\r\nDATA\r\ntwo\r\n.\r\nqUiT\r\n",
      0,
      GREET "250 mx.test\r\n" OK_MAIL OK_RCPT GO "250 2.0.0 Ok: queued as Q1\r\n" OK_MAIL OK_RCPT
      GO "250 2.0.0 Ok: queued as Q2\r\n" BYE,
      "one\r\ntwo\r\n", 1, 2 },
    { "lmtp three recipients answered out of order", F_LMTP,
      "LHLO c\r\nMAIL FROM:<a@b.test>\r\nRCPT TO:<u1@d.test>\r\nRCPT TO:<full@d.test>\r\n"
      "RCPT TO:<u3@d.test>\r\nDATA\r\nhello\r\n.\r\nQUIT\r\n",
      0,
      LGREET LHLO OK_MAIL OK_RCPT OK_RCPT OK_RCPT GO "250 2.0.0 <u1@d.test> delivered\r\n"
      "552 5.2.2 <full@d.test> mailbox full\r\n250 2.0.0 <u3@d.test> delivered\r\n" BYE,
      "hello\r\n", 1, 1 },
    { "lmtp refuses HELO and EHLO", F_LMTP, "HELO c\r\nEHLO c\r\nMAIL FROM:<a@b>\r\nLHLO c\r\n", 0,
      LGREET "500 5.5.1 Error: use LHLO in LMTP\r\n500 5.5.1 Error: use LHLO in LMTP\r\n"
      "503 5.5.1 Error: send LHLO first\r\n" LHLO,
      NULL, 0, 0 },
    { "smtp refuses LHLO", 0, "LHLO c\r\n", 0, GREET "500 5.5.1 Error: LHLO is for LMTP only\r\n",
      NULL, 0, 0 },
    { "pipelined envelope", 0,
      "EHLO c\r\nMAIL FROM:<a@b.test>\r\nRCPT TO:<c@d.test>\r\nRCPT TO:<temp@d.test>\r\n"
      "DATA\r\nx\r\n.\r\nRSET\r\nNOOP\r\n",
      0, ENV_OK "450 4.0.0 try again\r\n" GO "250 2.0.0 Ok: queued as Q1\r\n" OK OK, "x\r\n", 0, 1 },
    { "commands out of order", 0,
      "MAIL FROM:<a@b>\r\nRCPT TO:<c@d>\r\nDATA\r\nEHLO c\r\nRCPT TO:<c@d>\r\nDATA\r\n"
      "MAIL FROM:<a@b.test>\r\nMAIL FROM:<a@b.test>\r\nDATA\r\nSTARTTLS\r\nAUTH PLAIN\r\n"
      "RCPT TO:<reject@d.test>\r\nDATA\r\nRSET\r\nDATA\r\n",
      0,
      GREET "503 5.5.1 Error: send HELO/EHLO first\r\n503 5.5.1 Error: send HELO/EHLO first\r\n"
      "503 5.5.1 Error: send HELO/EHLO first\r\n" EHLO_PLAIN
      "503 5.5.1 Error: need MAIL command\r\n503 5.5.1 Error: need MAIL command\r\n" OK_MAIL
      "503 5.5.1 Error: nested MAIL command\r\n554 5.5.1 Error: no valid recipients\r\n"
      "503 5.5.1 Error: MAIL transaction in progress\r\n"
      "503 5.5.1 Error: MAIL transaction in progress\r\n550 5.1.1 no such user\r\n"
      "554 5.5.1 Error: no valid recipients\r\n" OK "503 5.5.1 Error: need MAIL command\r\n",
      NULL, 0, 1 },
    { "rejected sender", 0,
      "EHLO c\r\nMAIL FROM:<reject@b.test>\r\nRCPT TO:<c@d.test>\r\nMAIL FROM:<a@b.test>\r\n", 0,
      GREET EHLO_PLAIN "550 5.1.0 sender rejected\r\n503 5.5.1 Error: need MAIL command\r\n" OK_MAIL,
      NULL, 0, 2 },
    { "EHLO resets the transaction", 0, ENV "EHLO c\r\nDATA\r\n", 0,
      ENV_OK EHLO_PLAIN "503 5.5.1 Error: need MAIL command\r\n", NULL, 0, 1 },
    { "data refused by the daemon", 0,
      "EHLO c\r\nMAIL FROM:<nodata@b.test>\r\nRCPT TO:<c@d.test>\r\nDATA\r\nRSET\r\n", 0,
      GREET EHLO_PLAIN OK_MAIL OK_RCPT "451 4.3.0 try later\r\n" OK, NULL, 0, 1 },
    { "misc commands", 0,
      "NOOP\r\nNOOP hello\r\nRSET\r\nRSET x\r\nVRFY bob\r\nVRFY\r\nHELP\r\nEXPN list\r\nFOO\r\n"
      "MAILX\r\nSTARTTLSX\r\nHELO\r\nEHLO a b\r\n",
      0,
      GREET OK OK OK "501 5.5.4 Syntax: RSET\r\n"
      "252 2.1.5 Cannot VRFY user, but will accept message\r\n501 5.5.4 Syntax: VRFY address\r\n"
      "214 2.0.0 Commands: HELO EHLO MAIL RCPT DATA BDAT RSET NOOP QUIT VRFY HELP STARTTLS\r\n"
      "502 5.5.1 Error: command not implemented\r\n500 5.5.2 Error: command not recognized\r\n"
      "500 5.5.2 Error: command not recognized\r\n500 5.5.2 Error: command not recognized\r\n"
      "501 5.5.4 Syntax: HELO hostname\r\n501 5.5.4 Error: invalid host name\r\n",
      NULL, 0, 0 },
    { "NUL and control bytes in commands", 0, "NO\0OP\r\nNOOP\x01\r\nNO\rOP\r\nNOOP\r\n", 27,
      GREET "500 5.5.2 Error: control characters in command\r\n"
      "500 5.5.2 Error: control characters in command\r\n"
      "500 5.5.2 Error: control characters in command\r\n" OK,
      NULL, 0, 0 },
    { "empty line", 0, "\r\n   \r\nNOOP\r\n", 0,
      GREET "500 5.5.2 Error: bad syntax\r\n500 5.5.2 Error: bad syntax\r\n" OK, NULL, 0, 0 },
    { "bare LF in a command, rejected", 0, "NOOP\nNOOP\r\n", 0,
      GREET "500 5.5.2 Error: bare <LF> received\r\n" OK, NULL, 0, 0 },
    { "bare LF in a command, normalised", F_NORMALIZE, "NOOP\nNOOP\r\n", 0, GREET OK OK, NULL, 0,
      0 },
    { "error limit", F_ERRLIMIT, "FOO\r\nBAR\r\nNOOP\r\nBAZ\r\nNOOP\r\n", 0,
      GREET "500 5.5.2 Error: command not recognized\r\n500 5.5.2 Error: command not recognized\r\n"
      OK "500 5.5.2 Error: command not recognized\r\n421 4.7.0 mx.test Error: too many errors\r\n",
      NULL, 1, 0 },
    { "smuggling: LF.LF does not end data", 0,
      ENV "DATA\r\nx\n.\nMAIL FROM:<evil@x.test>\r\nRCPT TO:<evil@y.test>\r\nDATA\r\nevil\r\n.\r\n"
      "QUIT\r\n",
      0, ENV_OK GO "554 5.6.0 Error: message contains bare CR or LF\r\n" BYE, NULL, 1, 1 },
    { "smuggling: CR.CR does not end data", 0,
      ENV "DATA\r\nx\r.\rMAIL FROM:<evil@x.test>\r\n.\r\nNOOP\r\n", 0,
      ENV_OK GO "554 5.6.0 Error: message contains bare CR or LF\r\n" OK, NULL, 0, 1 },
    { "smuggling: LF.CRLF does not end data", 0,
      ENV "DATA\r\nx\n.\r\nMAIL FROM:<evil@x.test>\r\n.\r\nNOOP\r\n", 0,
      ENV_OK GO "554 5.6.0 Error: message contains bare CR or LF\r\n" OK, NULL, 0, 1 },
    { "smuggling: dot mid-line", 0, ENV "DATA\r\nx.\r\nRCPT TO:<e@f>\r\n.\r\nNOOP\r\n", 0,
      ENV_OK GO "250 2.0.0 Ok: queued as Q1\r\n" OK, "x.\r\nRCPT TO:<e@f>\r\n", 0, 1 },
    { "smuggling normalised", F_NORMALIZE,
      ENV "DATA\r\nx\n.\nMAIL FROM:<evil@x.test>\r\n.\r\nNOOP\r\n", 0,
      ENV_OK GO "250 2.0.0 Ok: queued as Q1\r\n" OK, "x\r\n.\r\nMAIL FROM:<evil@x.test>\r\n", 0,
      1 },
    { "empty message", 0, ENV "DATA\r\n.\r\n", 0, ENV_OK GO "250 2.0.0 Ok: queued as Q1\r\n", "", 0,
      -1 },
    { "message size limit in DATA", 0, ENV "DATA\r\n" LINE80 LINE80 LINE80 LINE80 LINE80 LINE80
      LINE80 LINE80 LINE80 LINE80 LINE80 LINE80 LINE80 ".\r\nNOOP\r\n",
      0, ENV_OK GO "552 5.3.4 Error: message size exceeds fixed limit\r\n" OK, NULL, 0, 1 },
    { "SIZE= over the limit", 0, "EHLO c\r\nMAIL FROM:<a@b.test> SIZE=1001\r\nMAIL FROM:<a@b.test> SIZE=1000\r\n",
      0, GREET EHLO_PLAIN "552 5.3.4 Error: message size exceeds fixed limit\r\n" OK_MAIL, NULL, 0,
      1 },
    { "too many recipients", 0,
      ENV "RCPT TO:<c2@d.test>\r\nRCPT TO:<reject@d.test>\r\nRCPT TO:<c3@d.test>\r\n"
          "RCPT TO:<c4@d.test>\r\n",
      0, ENV_OK OK_RCPT "550 5.1.1 no such user\r\n" OK_RCPT
      "452 4.5.3 Error: too many recipients\r\n", NULL, 0, 1 },
    { "overlong command lines", 0, "NOOP " X100 X100 X100 X100 X100 X100 "\r\nNOOP\r\n",
      0, GREET "500 5.5.2 Error: line too long\r\n" OK, NULL, 0, 0 },
    { "BDAT in chunks", 0,
      ENV "BDAT 5\r\nhelloBDAT 0\r\nBDAT 9 LAST\r\n!\r\n.\r\nx\r\nQUIT\r\n", 0,
      ENV_OK "250 2.0.0 Ok: 5 octets received\r\n250 2.0.0 Ok: 0 octets received\r\n"
      "250 2.0.0 Ok: queued as Q1\r\n" BYE,
      "hello!\r\n.\r\nx\r\n", 1, 1 },
    { "BDAT 0 LAST", 0, ENV "BDAT 0 LAST\r\nNOOP\r\n", 0,
      ENV_OK "250 2.0.0 Ok: queued as Q1\r\n" OK, "", 0, 1 },
    { "BDAT in LMTP", F_LMTP,
      "LHLO c\r\nMAIL FROM:<a@b.test>\r\nRCPT TO:<u1@d.test>\r\nRCPT TO:<full@d.test>\r\n"
      "BDAT 3\r\nabcBDAT 2 LAST\r\nde",
      0,
      LGREET LHLO OK_MAIL OK_RCPT OK_RCPT "250 2.0.0 Ok: 3 octets received\r\n"
      "250 2.0.0 <u1@d.test> delivered\r\n552 5.2.2 <full@d.test> mailbox full\r\n",
      "abcde", 0, 1 },
    { "BDAT over the size limit", 0,
      ENV "BDAT 600\r\n" X100 X100 X100 X100 X100 X100 "BDAT 600 LAST\r\n" X100 X100 X100 X100 X100
          X100 "RCPT TO:<c@d.test>\r\n",
      0,
      ENV_OK "250 2.0.0 Ok: 600 octets received\r\n"
      "552 5.3.4 Error: message size exceeds fixed limit\r\n503 5.5.1 Error: need MAIL command\r\n",
      NULL, 0, 1 },
    { "BDAT refused but its bytes read", 0,
      "EHLO c\r\nBDAT 6\r\nNOOP\r\nNOOP\r\nMAIL FROM:<a@b.test>\r\nRCPT TO:<reject@d.test>\r\n"
      "BDAT 8 LAST\r\nRSET\r\n\r\nNOOP\r\n",
      0,
      GREET EHLO_PLAIN "503 5.5.1 Error: need MAIL command\r\n" OK OK_MAIL
      "550 5.1.1 no such user\r\n554 5.5.1 Error: no valid recipients\r\n" OK,
      NULL, 0, 1 },
    { "DATA after BDAT", 0, ENV "BDAT 2\r\nhiDATA\r\nRCPT TO:<x@y.test>\r\nBDAT 1 LAST\r\n!", 0,
      ENV_OK "250 2.0.0 Ok: 2 octets received\r\n503 5.5.1 Error: BDAT transfer in progress\r\n"
      "503 5.5.1 Error: BDAT transfer in progress\r\n250 2.0.0 Ok: queued as Q1\r\n",
      "hi!", 0, 1 },
    { "BDAT with a bad size closes", 0, ENV "BDAT 1x\r\nNOOP\r\n", 0,
      ENV_OK "501 5.5.4 Syntax: BDAT size [LAST]\r\n", NULL, 1, 1 },
    { "BDAT refused by the daemon", 0,
      "EHLO c\r\nMAIL FROM:<nodata@b.test>\r\nRCPT TO:<c@d.test>\r\nBDAT 4\r\nNOOPBDAT 1\r\nx", 0,
      GREET EHLO_PLAIN OK_MAIL OK_RCPT "451 4.3.0 try later\r\n"
      "503 5.5.1 Error: need MAIL command\r\n",
      "", 0, 1 },
    { "AUTH without TLS", 0, "EHLO c\r\nAUTH PLAIN " PLAIN_OK "\r\n", 0,
      GREET EHLO_PLAIN
      "538 5.7.11 Error: encryption required for requested authentication mechanism\r\n",
      NULL, 0, 0 },
    { "AUTH not offered", F_TLS | F_NOAUTH, "EHLO c\r\nAUTH PLAIN " PLAIN_OK "\r\n", 0,
      GREET EHLO_TLS_NOAUTH "503 5.5.1 Error: authentication not enabled\r\n", NULL, 0, 0 },
    { "AUTH PLAIN with initial response", F_TLS,
      "EHLO c\r\nAUTH PLAIN " PLAIN_OK "\r\nAUTH PLAIN " PLAIN_OK "\r\n", 0,
      GREET EHLO_TLS AUTH_OK "503 5.5.1 Error: already authenticated\r\n", NULL, 0, 0 },
    { "AUTH PLAIN with a challenge", F_TLS, "EHLO c\r\nauth plain\r\n" PLAIN_OK "\r\n", 0,
      GREET EHLO_TLS "334 \r\n" AUTH_OK, NULL, 0, 0 },
    { "AUTH PLAIN bad password", F_TLS, "EHLO c\r\nAUTH PLAIN " PLAIN_BAD "\r\n", 0,
      GREET EHLO_TLS AUTH_FAIL, NULL, 0, 0 },
    { "AUTH LOGIN", F_TLS, "EHLO c\r\nAUTH LOGIN\r\nYWxpY2U=\r\nc2VjcmV0\r\n", 0,
      GREET EHLO_TLS "334 VXNlcm5hbWU6\r\n334 UGFzc3dvcmQ6\r\n" AUTH_OK, NULL, 0, 0 },
    { "AUTH LOGIN with initial response", F_TLS, "EHLO c\r\nAUTH LOGIN YWxpY2U=\r\nd3Jvbmc=\r\n", 0,
      GREET EHLO_TLS "334 UGFzc3dvcmQ6\r\n" AUTH_FAIL, NULL, 0, 0 },
    { "AUTH bad base64, cancel, empty, unknown", F_TLS,
      "EHLO c\r\nAUTH PLAIN !!!!\r\nAUTH LOGIN\r\n*\r\nAUTH PLAIN =\r\nAUTH PLAIN\r\n=\r\n"
      "AUTH CRAM-MD5\r\nAUTH PLAIN a b\r\nAUTH\r\nAUTH LOGIN\r\nYWxpY2U=\r\nnot base64\r\n",
      0,
      GREET EHLO_TLS "501 5.5.2 Error: invalid base64 data\r\n334 VXNlcm5hbWU6\r\n"
      "501 5.0.0 Authentication cancelled\r\n501 5.5.2 Error: malformed PLAIN response\r\n"
      "334 \r\n501 5.5.2 Error: invalid base64 data\r\n"
      "504 5.5.4 Error: unsupported authentication mechanism\r\n"
      "501 5.5.4 Syntax: AUTH mechanism [initial-response]\r\n501 5.5.4 Syntax: AUTH mechanism\r\n"
      "334 VXNlcm5hbWU6\r\n334 UGFzc3dvcmQ6\r\n501 5.5.2 Error: invalid base64 data\r\n",
      NULL, 0, 0 },
    { "AUTH malformed PLAIN messages", F_TLS,
      /* "a" / "\0\0pw" (no authcid) / "\0a\0b\0c" */
      "EHLO c\r\nAUTH PLAIN YQ==\r\nAUTH PLAIN AABwdw==\r\nAUTH PLAIN AGEAYgBj\r\n", 0,
      GREET EHLO_TLS "501 5.5.2 Error: malformed PLAIN response\r\n" AUTH_FAIL
      "501 5.5.2 Error: malformed PLAIN response\r\n",
      NULL, 0, 0 },
    { "authentication required", F_TLS | F_REQUIRE_AUTH,
      "EHLO c\r\nMAIL FROM:<a@b.test>\r\nAUTH PLAIN " PLAIN_OK "\r\nMAIL FROM:<a@b.test>\r\n"
      "AUTH PLAIN " PLAIN_OK "\r\n",
      0,
      GREET EHLO_TLS "530 5.7.0 Error: authentication required\r\n" AUTH_OK OK_MAIL
      "503 5.5.1 Error: MAIL transaction in progress\r\n",
      NULL, 0, 1 },
    { "STARTTLS when already TLS", F_TLS, "EHLO c\r\nSTARTTLS\r\n", 0,
      GREET EHLO_TLS "503 5.5.1 Error: TLS already active\r\n", NULL, 0, 0 },
    { "STARTTLS not offered", F_LMTP, "LHLO c\r\nSTARTTLS\r\nSTARTTLS x\r\n", 0,
      LGREET LHLO "502 5.5.1 Error: command not implemented\r\n501 5.5.4 Syntax: STARTTLS\r\n",
      NULL, 0, 0 },
    { "QUIT stops reading", 0, "QUIT\r\nNOOP\r\n", 0, GREET BYE, NULL, 1, 0 },
    { "UTF-8 envelope", 0,
      "EHLO c\r\nMAIL FROM:<j\xc3\xb6rg@b.test> SMTPUTF8\r\nRCPT TO:<\xc3\xbc@d.test>\r\n"
      "RSET\r\nMAIL FROM:<j\xc3\xb6rg@b.test>\r\n",
      0,
      GREET EHLO_PLAIN OK_MAIL OK_RCPT OK "553 5.6.7 Error: a UTF-8 address needs SMTPUTF8\r\n",
      NULL, 0, 1 },
};

static void run_scenario(const struct scenario *sc, bool defer, bool bytewise)
{
    struct h h;
    h_init(&h, sc->flags, defer);
    h.auto_answer = true;
    size_t len = sc->input_len != 0 ? sc->input_len : strlen(sc->input);
    h_input(&h, sc->input, len, bytewise);
    const char *got = mg_buf_cstr(&h.out);
    if (strcmp(got, sc->output) != 0)
        fail_msg("scenario \"%s\" (defer %d, bytewise %d):\n--- got:\n%s--- expected:\n%s", sc->name,
                 defer, bytewise, got, sc->output);
    if (sc->content != NULL && strcmp(mg_buf_cstr(&h.content), sc->content) != 0)
        fail_msg("scenario \"%s\" (defer %d, bytewise %d): content \"%s\"", sc->name, defer,
                 bytewise, mg_buf_cstr(&h.content));
    if (h.closes != sc->closes)
        fail_msg("scenario \"%s\": %d closes", sc->name, h.closes);
    h_deinit(&h);
    if (sc->tx_frees >= 0 && h.tx_frees != sc->tx_frees)
        fail_msg("scenario \"%s\" (defer %d, bytewise %d): %d tx_free", sc->name, defer, bytewise,
                 h.tx_frees);
    if (h.rcpt_frees != h.rcpt_datas)
        fail_msg("scenario \"%s\" (defer %d, bytewise %d): %d recipients, %d rcpt_free", sc->name,
                 defer, bytewise, h.rcpt_datas, h.rcpt_frees);
}

static void test_smtp_server_scenarios(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof(scenarios) / sizeof(scenarios[0]); i++) {
        for (int mode = 0; mode < 4; mode++)
            run_scenario(&scenarios[i], mode & 1, mode & 2);
    }
}

/* ---- step by step ---- */

static void assert_out(struct h *h, const char *expected)
{
    char *got = h_take(h);
    if (strcmp(got, expected) != 0)
        fail_msg("--- got:\n%s--- expected:\n%s", got, expected);
    free(got);
}

static void test_smtp_server_pipelining_waits_for_answers(void **state)
{
    (void)state;
    struct h h;
    h_init(&h, 0, true);
    assert_out(&h, GREET);
    mg_buf_append_str(&h.in, "EHLO c\r\nMAIL FROM:<a@b.test>\r\nRCPT TO:<c@d.test>\r\n"
                             "RCPT TO:<reject@d.test>\r\nDATA\r\nhi\r\n.\r\n");
    smtp_server_feed(h.server, &h.in);
    /* EHLO is answered by the engine; MAIL waits for its hook. */
    assert_out(&h, EHLO_PLAIN);
    assert_int_equal(h.held_kind, HELD_MAIL);
    assert_false(smtp_server_wants_input(h.server));
    /* Feeding while an answer is pending consumes nothing. */
    size_t before = h.in.len;
    smtp_server_feed(h.server, &h.in);
    assert_int_equal(h.in.len, before);
    assert_out(&h, "");

    h_answer_held(&h);
    assert_out(&h, OK_MAIL);
    assert_true(smtp_server_wants_input(h.server));
    smtp_server_feed(h.server, &h.in);
    assert_int_equal(h.held_kind, HELD_RCPT);
    assert_string_equal(h.held_rcpt->address, "c@d.test");
    assert_int_equal(h.held_rcpt->index, 0);
    h_answer_held(&h);
    assert_out(&h, OK_RCPT);
    smtp_server_feed(h.server, &h.in);
    assert_int_equal(h.held_kind, HELD_RCPT);
    assert_int_equal(h.held_rcpt->index, 1);
    h_answer_held(&h);
    assert_out(&h, "550 5.1.1 no such user\r\n");
    smtp_server_feed(h.server, &h.in);
    assert_int_equal(h.held_kind, HELD_DATA_BEGIN);
    assert_int_equal(h.held_tx->rcpt_count, 1);
    h_answer_held(&h);
    assert_out(&h, GO);
    smtp_server_feed(h.server, &h.in);
    assert_int_equal(h.held_kind, HELD_DATA_END);
    assert_string_equal(mg_buf_cstr(&h.content), "hi\r\n");
    assert_int_equal(h.in.len, 0);
    h_answer_held(&h);
    assert_out(&h, "250 2.0.0 Ok: queued as Q1\r\n");
    assert_int_equal(h.tx_frees, 1);
    assert_true(smtp_server_wants_input(h.server));
    h_deinit(&h);
}

static void test_smtp_server_lmtp_replies_stream_in_order(void **state)
{
    (void)state;
    struct h h;
    h_init(&h, F_LMTP, false);
    h_send(&h, "LHLO c\r\nMAIL FROM:<a@b.test>\r\nRCPT TO:<u0@d.test>\r\nRCPT TO:<u1@d.test>\r\n"
               "RCPT TO:<u2@d.test>\r\nDATA\r\n");
    h_take(&h);
    h.defer = true;
    h_send(&h, "x\r\n.\r\nNOOP\r\n");
    assert_int_equal(h.held_kind, HELD_DATA_END);
    struct smtp_server_reply *reply = h.held;
    h.held = NULL;
    h.defer = false;
    smtp_server_rcpt_data_reply(reply, 2, 250, "2.0.0", "two");
    assert_out(&h, "");
    smtp_server_rcpt_data_reply(reply, 0, 450, "4.2.1", "zero");
    assert_out(&h, "450 4.2.1 zero\r\n");
    assert_false(smtp_server_wants_input(h.server));
    smtp_server_rcpt_data_reply(reply, 1, 550, NULL, "one");
    assert_out(&h, "550 5.0.0 one\r\n250 2.0.0 two\r\n");
    assert_int_equal(h.tx_frees, 1);
    assert_true(smtp_server_wants_input(h.server));
    h_feed(&h);
    assert_out(&h, OK);

    /* reply_send answers all the recipients not answered yet. */
    h_send(&h, "MAIL FROM:<a@b.test>\r\nRCPT TO:<u0@d.test>\r\nRCPT TO:<u1@d.test>\r\nDATA\r\n");
    h_take(&h);
    h.defer = true;
    h_send(&h, ".\r\n");
    h.defer = false;
    reply = h.held;
    h.held = NULL;
    smtp_server_rcpt_data_reply(reply, 1, 250, "2.0.0", "one");
    smtp_server_reply_send(reply, 451, "4.3.0", "disk trouble");
    assert_out(&h, "451 4.3.0 disk trouble\r\n250 2.0.0 one\r\n");
    h_deinit(&h);
}

static void test_smtp_server_hook_text_sanitised(void **state)
{
    (void)state;
    struct h h;
    h_init(&h, 0, true);
    h_send(&h, "EHLO c\r\nMAIL FROM:<a@b.test>\r\n");
    h_take(&h);
    struct smtp_server_reply *reply = h.held;
    h.held = NULL;
    smtp_server_reply_send(reply, 250, "9.9", "ok\r\n250 injected");
    assert_out(&h, "250 2.0.0 ok??250 injected\r\n");
    h_send(&h, "RCPT TO:<c@d.test>\r\n");
    reply = h.held;
    h.held = NULL;
    smtp_server_reply_send(reply, 99, "2.0.0", "bad code");
    assert_out(&h, "451 4.3.0 Error: internal error\r\n");
    h_deinit(&h);
}

static void test_smtp_server_starttls(void **state)
{
    (void)state;
    struct h h;
    h_init(&h, 0, false);
    h_send(&h, "EHLO c\r\nSTARTTLS\r\nMAIL FROM:<injected@evil.test>\r\nRCPT TO:<x@y.test>\r\n");
    assert_out(&h, GREET EHLO_PLAIN "220 2.0.0 Ready to start TLS\r\n");
    assert_int_equal(h.tls_starts, 1);
    /* The pipelined plaintext is gone. */
    assert_int_equal(h.in.len, 0);
    assert_false(smtp_server_wants_input(h.server));
    assert_string_equal(smtp_server_helo(h.server), "c");
    /* Nothing is read until the handshake is done. */
    h_send(&h, "NOOP\r\n");
    assert_out(&h, "");
    assert_int_equal(h.in.len, 0);
    smtp_server_tls_ready(h.server);
    assert_null(smtp_server_helo(h.server));
    assert_false(smtp_server_is_esmtp(h.server));
    h_send(&h, "MAIL FROM:<a@b.test>\r\nEHLO c2\r\nSTARTTLS\r\nAUTH PLAIN " PLAIN_OK "\r\n");
    assert_out(&h, "503 5.5.1 Error: send HELO/EHLO first\r\n" EHLO_TLS
                   "503 5.5.1 Error: TLS already active\r\n" AUTH_OK);
    assert_string_equal(smtp_server_auth_user(h.server), "alice");
    assert_string_equal(smtp_server_helo(h.server), "c2");
    assert_string_equal(h.helo_seen, "c2");
    assert_true(smtp_server_is_esmtp(h.server));
    assert_int_equal(smtp_server_protocol(h.server), SMTP_PROTOCOL_SMTP);
    h_deinit(&h);

    /* One byte at a time: the discard happens at the STARTTLS line. */
    h_init(&h, 0, false);
    const char *input = "EHLO c\r\nSTARTTLS\r\nINJECT\r\n";
    for (size_t i = 0; i < strlen(input); i++) {
        mg_buf_append(&h.in, input + i, 1);
        h_feed(&h);
    }
    assert_out(&h, GREET EHLO_PLAIN "220 2.0.0 Ready to start TLS\r\n");
    h_deinit(&h);
}

static void test_smtp_server_timeout(void **state)
{
    (void)state;
    struct h h;
    h_init(&h, 0, true);
    h_send(&h, "EHLO c\r\nMAIL FROM:<a@b.test>\r\n");
    h_take(&h);
    smtp_server_timeout(h.server);
    assert_out(&h, "421 4.4.2 mx.test Error: timeout exceeded\r\n");
    assert_int_equal(h.closes, 1);
    /* The late answer writes nothing; a second timeout neither. */
    h_answer_held(&h);
    smtp_server_timeout(h.server);
    smtp_server_shutdown(h.server);
    h_send(&h, "NOOP\r\n");
    assert_out(&h, "");
    assert_int_equal(h.closes, 1);
    h_deinit(&h);
    assert_int_equal(h.tx_frees, 1);
}

static void test_smtp_server_shutdown(void **state)
{
    (void)state;
    struct h h;
    /* Idle: at once. */
    h_init(&h, 0, false);
    h_take(&h);
    smtp_server_shutdown(h.server);
    assert_out(&h, "421 4.3.2 mx.test Service shutting down\r\n");
    assert_int_equal(h.closes, 1);
    h_deinit(&h);

    /* With an answer pending: after it. */
    h_init(&h, F_LMTP, false);
    h_send(&h, "LHLO c\r\nMAIL FROM:<a@b.test>\r\nRCPT TO:<u0@d.test>\r\nRCPT TO:<u1@d.test>\r\n"
               "DATA\r\n");
    h.defer = true;
    h_send(&h, ".\r\nNOOP\r\n");
    h_take(&h);
    smtp_server_shutdown(h.server);
    assert_out(&h, "");
    struct smtp_server_reply *reply = h.held;
    h.held = NULL;
    smtp_server_rcpt_data_reply(reply, 0, 250, "2.0.0", "zero");
    assert_out(&h, "250 2.0.0 zero\r\n");
    assert_int_equal(h.closes, 0);
    smtp_server_rcpt_data_reply(reply, 1, 250, "2.0.0", "one");
    assert_out(&h, "250 2.0.0 one\r\n421 4.3.2 mx.test Service shutting down\r\n");
    assert_int_equal(h.closes, 1);
    h_feed(&h);
    assert_out(&h, "");
    h_deinit(&h);

    /* In the middle of DATA content: at once. */
    h_init(&h, 0, false);
    h_send(&h, ENV "DATA\r\npartial");
    h_take(&h);
    smtp_server_shutdown(h.server);
    assert_out(&h, "421 4.3.2 mx.test Service shutting down\r\n");
    h_deinit(&h);
    assert_int_equal(h.tx_frees, 1);
}

static void test_smtp_server_answers_after_free(void **state)
{
    (void)state;
    static const struct {
        unsigned flags;
        const char *prefix;  /* answered at once */
        const char *trigger; /* its hook keeps the handle */
        int tx_frees;
    } cases[] = {
        { 0, "EHLO c\r\n", "MAIL FROM:<a@b.test>\r\n", 1 },
        { 0, "EHLO c\r\nMAIL FROM:<a@b.test>\r\n", "RCPT TO:<c@d.test>\r\n", 1 },
        { 0, ENV, "DATA\r\n", 1 },
        { 0, ENV "DATA\r\n", "x\r\n.\r\n", 1 },
        { 0, ENV, "BDAT 1\r\n", 1 },
        { 0, ENV "BDAT 1\r\nx", "BDAT 1 LAST\r\ny", 1 },
        { F_TLS, "EHLO c\r\n", "AUTH PLAIN " PLAIN_OK "\r\n", 0 },
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct h h;
        h_init(&h, cases[i].flags, false);
        h_send(&h, cases[i].prefix);
        h.defer = true;
        h_send(&h, cases[i].trigger);
        assert_non_null(h.held);
        h_deinit(&h); /* frees the server, then answers the held handle */
        assert_int_equal(h.tx_frees, cases[i].tx_frees);
        assert_int_equal(h.rcpt_frees, h.rcpt_datas);
    }

    /* LMTP: freed half answered, the rest answered later. */
    struct h h;
    h_init(&h, F_LMTP, false);
    h_send(&h, "LHLO c\r\nMAIL FROM:<a@b.test>\r\nRCPT TO:<u0@d.test>\r\nRCPT TO:<u1@d.test>\r\n"
               "DATA\r\n");
    h.defer = true;
    h_send(&h, ".\r\n");
    struct smtp_server_reply *reply = h.held;
    h.held = NULL;
    smtp_server_rcpt_data_reply(reply, 1, 250, "2.0.0", "one");
    smtp_server_free(&h.server);
    assert_null(h.server);
    assert_int_equal(h.tx_frees, 1);
    smtp_server_rcpt_data_reply(reply, 0, 250, "2.0.0", "zero");
    h_deinit(&h);
}

static void test_smtp_server_free_inside_hook(void **state)
{
    (void)state;
    struct h h;
    h_init(&h, 0, false);
    h_send(&h, ENV "DATA\r\n");
    h_take(&h);
    h.free_in_chunk = true;
    h_send(&h, "first\r\nsecond\r\n.\r\nNOOP\r\n");
    assert_null(h.server);
    assert_out(&h, "");
    assert_int_equal(h.tx_frees, 1);
    h_deinit(&h);
}

/* Recipient data comes back through rcpt_free once on every path, the
 * recipients before their transaction's tx_free. */
static void test_smtp_server_rcpt_free_paths(void **state)
{
    (void)state;
    static const struct {
        const char *name;
        unsigned flags;
        const char *input;
        const char *events_before_free; /* hook calls before the session is freed */
        const char *events;             /* all of them */
        int rcpts;
    } cases[] = {
        { "refused, then RSET", 0,
          "EHLO c\r\nMAIL FROM:<a@b.test>\r\nRCPT TO:<c@d.test>\r\nRCPT TO:<reject@d.test>\r\n"
          "RCPT TO:<temp@d.test>\r\nRCPT TO:<e@d.test>\r\nRSET\r\n",
          "RRRRT", "RRRRT", 4 },
        { "QUIT in a transaction", 0,
          "EHLO c\r\nMAIL FROM:<a@b.test>\r\nRCPT TO:<c@d.test>\r\nRCPT TO:<e@d.test>\r\nQUIT\r\n",
          "", "RRT", 2 },
        { "closed mid-DATA", 0, ENV "RCPT TO:<e@d.test>\r\nDATA\r\npartial\r\n", "", "RRT", 2 },
        { "closed mid-BDAT", 0, ENV "BDAT 10\r\nabc", "", "RT", 1 },
        { "delivered, then a new MAIL", F_LMTP,
          "LHLO c\r\nMAIL FROM:<a@b.test>\r\nRCPT TO:<u0@d.test>\r\nRCPT TO:<u1@d.test>\r\n"
          "DATA\r\nx\r\n.\r\nMAIL FROM:<a@b.test>\r\nRCPT TO:<u2@d.test>\r\n",
          "RRT", "RRTRT", 3 },
        { "HELO resets", 0, ENV "EHLO again\r\n", "RT", "RT", 1 },
        { "refused MAIL, no recipients", 0, "EHLO c\r\nMAIL FROM:<reject@b.test>\r\n", "T", "T", 0 },
        { "too many recipients", 0,
          ENV "RCPT TO:<e@d.test>\r\nRCPT TO:<f@d.test>\r\nRCPT TO:<g@d.test>\r\nRSET\r\n",
          "RRRT", "RRRT", 3 },
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        for (int mode = 0; mode < 2; mode++) {
            struct h h;
            h_init(&h, cases[i].flags, mode == 1);
            h.auto_answer = true;
            h_send(&h, cases[i].input);
            if (strcmp(h.events, cases[i].events_before_free) != 0)
                fail_msg("%s (defer %d): \"%s\" before free", cases[i].name, mode, h.events);
            h_deinit(&h);
            if (strcmp(h.events, cases[i].events) != 0)
                fail_msg("%s (defer %d): \"%s\"", cases[i].name, mode, h.events);
            assert_int_equal(h.rcpt_datas, cases[i].rcpts);
            assert_int_equal(h.rcpt_frees, cases[i].rcpts);
            assert_int_equal(h.rcpt_frees_inert, 0);
        }
    }
}

/* The client goes before a recipient is answered: the late answer, 2xx or
 * not, still hands the data back (server and tx NULL), and the transaction
 * was released when the session was freed. */
static void test_smtp_server_rcpt_free_after_close(void **state)
{
    (void)state;
    static const struct {
        unsigned code;
        const char *enhanced;
    } answers[] = { { 250, "2.1.5" }, { 550, "5.1.1" }, { 451, "4.3.0" } };
    for (size_t i = 0; i < sizeof(answers) / sizeof(answers[0]); i++) {
        struct h h;
        h_init(&h, F_LMTP, false);
        h_send(&h, "LHLO c\r\nMAIL FROM:<a@b.test>\r\nRCPT TO:<u0@d.test>\r\n");
        h.defer = true;
        h_send(&h, "RCPT TO:<u1@d.test>\r\n");
        assert_int_equal(h.held_kind, HELD_RCPT);
        struct smtp_server_reply *reply = h.held;
        h.held = NULL;
        smtp_server_free(&h.server);
        /* u0 and the transaction went with the session; u1 waits. */
        assert_string_equal(h.events, "RT");
        assert_int_equal(h.rcpt_frees_inert, 0);
        smtp_server_reply_send(reply, answers[i].code, answers[i].enhanced, "late");
        assert_string_equal(h.events, "RTR");
        assert_int_equal(h.rcpt_frees, 2);
        assert_int_equal(h.rcpt_frees_inert, 1);
        h_deinit(&h);
        assert_int_equal(h.rcpt_frees, h.rcpt_datas);
    }

    /* Closed (timeout) but not freed: a late 2xx is not added to the
     * transaction, and its data comes back at once. */
    struct h h;
    h_init(&h, 0, false);
    h_send(&h, "EHLO c\r\nMAIL FROM:<a@b.test>\r\nRCPT TO:<c@d.test>\r\n");
    h.defer = true;
    h_send(&h, "RCPT TO:<e@d.test>\r\n");
    struct smtp_server_reply *reply = h.held;
    h.held = NULL;
    smtp_server_timeout(h.server);
    assert_int_equal(h.closes, 1);
    h_take(&h);
    smtp_server_reply_send(reply, 250, "2.1.5", "late");
    assert_out(&h, "");
    assert_string_equal(h.events, "R");
    assert_int_equal(h.rcpt_frees_inert, 0);
    h_deinit(&h);
    assert_string_equal(h.events, "RRT");
    assert_int_equal(h.rcpt_frees, 2);
    assert_int_equal(h.tx_frees, 1);

    /* LMTP: the client goes after DATA, before the per-recipient replies:
     * the recipients are released with the session, the late answers
     * touch nothing. */
    h_init(&h, F_LMTP, false);
    h_send(&h, "LHLO c\r\nMAIL FROM:<a@b.test>\r\nRCPT TO:<u0@d.test>\r\nRCPT TO:<u1@d.test>\r\n"
               "DATA\r\n");
    h.defer = true;
    h_send(&h, "x\r\n.\r\n");
    assert_int_equal(h.held_kind, HELD_DATA_END);
    reply = h.held;
    h.held = NULL;
    smtp_server_rcpt_data_reply(reply, 1, 250, "2.0.0", "one");
    smtp_server_free(&h.server);
    assert_string_equal(h.events, "RRT");
    smtp_server_rcpt_data_reply(reply, 0, 250, "2.0.0", "zero");
    assert_string_equal(h.events, "RRT");
    h_deinit(&h);
    assert_int_equal(h.rcpt_frees, 2);
    assert_int_equal(h.rcpt_frees_inert, 0);
}

int main(void)
{
    mg_log_init("test_smtp_server");
    mg_log_set_level(MG_LOG_ERROR);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_smtp_server_scenarios),
        cmocka_unit_test(test_smtp_server_pipelining_waits_for_answers),
        cmocka_unit_test(test_smtp_server_lmtp_replies_stream_in_order),
        cmocka_unit_test(test_smtp_server_hook_text_sanitised),
        cmocka_unit_test(test_smtp_server_starttls),
        cmocka_unit_test(test_smtp_server_timeout),
        cmocka_unit_test(test_smtp_server_shutdown),
        cmocka_unit_test(test_smtp_server_answers_after_free),
        cmocka_unit_test(test_smtp_server_free_inside_hook),
        cmocka_unit_test(test_smtp_server_rcpt_free_paths),
        cmocka_unit_test(test_smtp_server_rcpt_free_after_close),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
