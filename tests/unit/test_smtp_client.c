/* The SMTP/LMTP client engine against a scripted server in memory: each
 * step feeds canned replies (whole, and again one byte at a time) and
 * checks exactly what the client wrote, and in how many writes. */
#include "testutil.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/buf.h"
#include "common/log.h"
#include "lmtp/smtp_client.h"

struct c {
    struct smtp_client_settings set;
    struct smtp_client *client;
    struct mg_buf in, out;
    int writes;
    bool bytewise;
    int ready_calls;
    bool is_ready_ok;
    unsigned ready_code;
    char reason[512];
    int done_calls;
    unsigned mail_code;
    char mail_text[256];
    int failed_calls;
    int tls_starts, closes, drains;
    struct smtp_client_message *done_msg;
    /* content source */
    const char *content;
    size_t content_len, content_pos;
    int pauses;            /* read_content says "not yet" this many times */
    bool content_error;
    bool send_again;       /* message_done starts the same message again */
};

static void io_write(void *ctx, const void *data, size_t len)
{
    struct c *c = ctx;
    mg_buf_append(&c->out, data, len);
    c->writes++;
}

static void io_start_tls(void *ctx)
{
    struct c *c = ctx;
    c->tls_starts++;
}

static void io_close(void *ctx)
{
    struct c *c = ctx;
    c->closes++;
}

static void io_want_drain(void *ctx)
{
    struct c *c = ctx;
    c->drains++;
}

static const struct smtp_client_io mem_io = { io_write, io_start_tls, io_close, NULL };
static const struct smtp_client_io drain_io = { io_write, io_start_tls, io_close, io_want_drain };

static void cb_ready(struct smtp_client *client, const struct smtp_reply *failure,
                     const char *reason, void *ctx)
{
    struct c *c = ctx;
    c->ready_calls++;
    c->is_ready_ok = reason == NULL;
    c->ready_code = failure != NULL ? failure->code : 0;
    snprintf(c->reason, sizeof(c->reason), "%s", reason != NULL ? reason : "");
}

static void cb_done(struct smtp_client *client, struct smtp_client_message *msg,
                    const struct smtp_reply *mail_reply, void *ctx)
{
    struct c *c = ctx;
    c->done_calls++;
    c->done_msg = msg;
    c->mail_code = mail_reply->code;
    snprintf(c->mail_text, sizeof(c->mail_text), "%s", mail_reply->text);
    assert_true(smtp_client_is_idle(client));
    if (c->send_again) {
        c->send_again = false;
        c->content_pos = 0;
        smtp_client_send(client, msg);
    }
}

static void cb_failed(struct smtp_client *client, const char *reason, void *ctx)
{
    struct c *c = ctx;
    c->failed_calls++;
    snprintf(c->reason, sizeof(c->reason), "%s", reason);
}

static const struct smtp_client_callbacks test_cb = { cb_ready, cb_done, cb_failed };

static long read_content(void *source, struct mg_buf *out, size_t max)
{
    struct c *c = source;
    if (c->content_error)
        return -1;
    if (c->pauses > 0) {
        c->pauses--;
        return -2;
    }
    size_t n = c->content_len - c->content_pos;
    if (n > max)
        n = max;
    /* Small pieces: the encoder must handle lines split anywhere. */
    if (n > 7 && c->content_len < 1000)
        n = 7;
    mg_buf_append(out, c->content + c->content_pos, n);
    c->content_pos += n;
    return (long)n;
}

static void c_init(struct c *c, enum smtp_protocol protocol, const struct smtp_client_io *io,
                   bool bytewise)
{
    memset(c, 0, sizeof(*c));
    c->set = (struct smtp_client_settings){
        .protocol = protocol,
        .helo_name = "client.test",
        .log_id = "test",
    };
    c->bytewise = bytewise;
    c->client = smtp_client_new(&c->set, io, c, &test_cb, c);
}

/* Re-creates the client after settings changed. */
static void c_restart(struct c *c, const struct smtp_client_io *io)
{
    smtp_client_free(&c->client);
    c->client = smtp_client_new(&c->set, io, c, &test_cb, c);
}

static void c_deinit(struct c *c)
{
    smtp_client_free(&c->client);
    mg_buf_free(&c->in);
    mg_buf_free(&c->out);
}

/* The server says `server`; the client must have written `expect` since
 * the last step. Returns the number of writes it took. */
static int step(struct c *c, const char *server, const char *expect)
{
    int writes = c->writes;
    size_t len = strlen(server);
    for (size_t off = 0; off < len && c->client != NULL;) {
        size_t n = c->bytewise ? 1 : len - off;
        mg_buf_append(&c->in, server + off, n);
        off += n;
        smtp_client_feed(c->client, &c->in);
    }
    const char *got = mg_buf_cstr(&c->out);
    if (strcmp(got, expect) != 0)
        fail_msg("bytewise %d, after server said:\n%s--- client wrote:\n%s--- expected:\n%s",
                 c->bytewise, server, got, expect);
    mg_buf_reset(&c->out);
    return c->writes - writes;
}

static void expect_out(struct c *c, const char *expect)
{
    step(c, "", expect);
}

#define EHLO_ALL                                                                                  \
    "250-mx.test hello\r\n250-PIPELINING\r\n250-SIZE 100000\r\n250-8BITMIME\r\n250-SMTPUTF8\r\n"  \
    "250-ENHANCEDSTATUSCODES\r\n250-CHUNKING\r\n250 DSN\r\n"
#define EHLO_NOPIPE "250-mx.test\r\n250 8BITMIME\r\n"

/* Greeting and EHLO: ready. */
static void c_start(struct c *c, const char *ehlo_reply)
{
    step(c, "220 mx.test ESMTP hi\r\n",
         c->set.protocol == SMTP_PROTOCOL_LMTP ? "LHLO client.test\r\n" : "EHLO client.test\r\n");
    step(c, ehlo_reply, "");
    assert_int_equal(c->ready_calls, 1);
    assert_true(c->is_ready_ok);
    assert_true(smtp_client_is_idle(c->client));
    assert_string_equal(smtp_client_greeting(c->client), "mx.test ESMTP hi");
}

static struct smtp_client_rcpt rcpts3[3];
static struct smtp_client_message msg3;

static struct smtp_client_message *make_msg(struct c *c, const char *content, size_t nrcpt)
{
    static const char *const addrs[] = { "r0@d.test", "r1@d.test", "r2@d.test" };
    memset(rcpts3, 0, sizeof(rcpts3));
    for (size_t i = 0; i < 3; i++)
        rcpts3[i].address = addrs[i];
    msg3 = (struct smtp_client_message){
        .mail_from = "a@b.test",
        .rcpts = rcpts3,
        .rcpt_count = nrcpt,
        .read_content = read_content,
        .source = c,
    };
    c->content = content;
    c->content_len = strlen(content);
    c->content_pos = 0;
    return &msg3;
}

static void send_msg(struct c *c, struct smtp_client_message *msg)
{
    smtp_client_send(c->client, msg);
}

/* ---- scenarios, each run whole and one byte at a time ---- */

static void scenario_pipelining(bool bytewise)
{
    struct c c;
    c_init(&c, SMTP_PROTOCOL_SMTP, &mem_io, bytewise);
    c_start(&c, EHLO_ALL);
    assert_int_equal(smtp_client_extensions(c.client),
                     SMTP_EXT_PIPELINING | SMTP_EXT_SIZE | SMTP_EXT_8BITMIME | SMTP_EXT_SMTPUTF8 |
                         SMTP_EXT_ENHANCEDSTATUSCODES | SMTP_EXT_CHUNKING | SMTP_EXT_DSN);
    assert_true(smtp_client_max_size(c.client) == 100000);
    struct smtp_client_message *msg = make_msg(&c, ".a\r\n..b\r\nc.\r\n.\r\nend", 3);
    int writes = c.writes;
    send_msg(&c, msg);
    /* MAIL, every RCPT and DATA in one write. */
    assert_int_equal(c.writes - writes, 1);
    expect_out(&c, "MAIL FROM:<a@b.test>\r\nRCPT TO:<r0@d.test>\r\nRCPT TO:<r1@d.test>\r\n"
                   "RCPT TO:<r2@d.test>\r\nDATA\r\n");
    step(&c, "250 2.1.0 Ok\r\n250 2.1.5 Ok\r\n550-5.1.1 no such\r\n550 5.1.1 user\r\n250 Ok\r\n"
             "354 go ahead\r\n",
         "..a\r\n...b\r\nc.\r\n..\r\nend\r\n.\r\n");
    assert_int_equal(c.done_calls, 0);
    step(&c, "250 2.0.0 Ok: queued as X\r\n", "");
    assert_int_equal(c.done_calls, 1);
    assert_ptr_equal(c.done_msg, msg);
    assert_int_equal(c.mail_code, 250);
    assert_true(rcpts3[0].is_accepted);
    assert_false(rcpts3[1].is_accepted);
    assert_true(rcpts3[2].is_accepted);
    assert_int_equal(rcpts3[0].result.code, 250);
    assert_string_equal(rcpts3[0].result.text, "Ok: queued as X");
    assert_string_equal(rcpts3[0].result.enhanced, "2.0.0");
    assert_int_equal(rcpts3[1].result.code, 550);
    assert_string_equal(rcpts3[1].result.enhanced, "5.1.1");
    assert_string_equal(rcpts3[1].result.text, "no such\nuser");
    assert_string_equal(rcpts3[2].result.text, "Ok: queued as X");

    /* A second transaction on the same connection: no RSET before it. */
    msg = make_msg(&c, "x\r\n", 1);
    send_msg(&c, msg);
    expect_out(&c, "MAIL FROM:<a@b.test>\r\nRCPT TO:<r0@d.test>\r\nDATA\r\n");
    step(&c, "250 Ok\r\n250 Ok\r\n354 go\r\n", "x\r\n.\r\n");
    step(&c, "451 4.3.0 disk full\r\n", "");
    assert_int_equal(c.done_calls, 2);
    assert_int_equal(rcpts3[0].result.code, 451);

    smtp_client_quit(c.client);
    expect_out(&c, "QUIT\r\n");
    step(&c, "221 2.0.0 Bye\r\n", "");
    assert_int_equal(c.closes, 1);
    assert_int_equal(c.failed_calls, 0);
    c_deinit(&c);
}

static void scenario_lock_step(bool bytewise)
{
    struct c c;
    c_init(&c, SMTP_PROTOCOL_SMTP, &mem_io, bytewise);
    c_start(&c, EHLO_NOPIPE);
    struct smtp_client_message *msg = make_msg(&c, "hi\r\n", 3);
    send_msg(&c, msg);
    expect_out(&c, "MAIL FROM:<a@b.test>\r\n");
    step(&c, "250 Ok\r\n", "RCPT TO:<r0@d.test>\r\n");
    step(&c, "550 no\r\n", "RCPT TO:<r1@d.test>\r\n");
    step(&c, "250 Ok\r\n", "RCPT TO:<r2@d.test>\r\n");
    step(&c, "250 Ok\r\n", "DATA\r\n");
    step(&c, "354 go\r\n", "hi\r\n.\r\n");
    step(&c, "250 Ok\r\n", "");
    assert_int_equal(c.done_calls, 1);
    assert_false(rcpts3[0].is_accepted);
    assert_int_equal(rcpts3[0].result.code, 550);
    assert_int_equal(rcpts3[1].result.code, 250);

    /* Every recipient refused: RSET instead of DATA. */
    msg = make_msg(&c, "hi\r\n", 2);
    send_msg(&c, msg);
    expect_out(&c, "MAIL FROM:<a@b.test>\r\n");
    step(&c, "250 Ok\r\n", "RCPT TO:<r0@d.test>\r\n");
    step(&c, "550 no\r\n", "RCPT TO:<r1@d.test>\r\n");
    step(&c, "450 later\r\n", "RSET\r\n");
    assert_int_equal(c.done_calls, 1);
    step(&c, "250 Ok\r\n", "");
    assert_int_equal(c.done_calls, 2);
    assert_int_equal(rcpts3[1].result.code, 450);
    c_deinit(&c);
}

static void scenario_pipelined_failures(bool bytewise)
{
    struct c c;
    c_init(&c, SMTP_PROTOCOL_SMTP, &mem_io, bytewise);
    c_start(&c, EHLO_ALL);
    /* Every recipient refused: DATA fails, then RSET. */
    struct smtp_client_message *msg = make_msg(&c, "hi\r\n", 2);
    send_msg(&c, msg);
    expect_out(&c, "MAIL FROM:<a@b.test>\r\nRCPT TO:<r0@d.test>\r\nRCPT TO:<r1@d.test>\r\nDATA\r\n");
    step(&c, "250 Ok\r\n550 no\r\n550 no\r\n554 5.5.1 no valid recipients\r\n", "RSET\r\n");
    step(&c, "250 Ok\r\n", "");
    assert_int_equal(c.done_calls, 1);
    assert_int_equal(c.mail_code, 554);
    assert_int_equal(rcpts3[0].result.code, 550);

    /* DATA refused by an accepting server: the recipients get its reply. */
    msg = make_msg(&c, "hi\r\n", 1);
    send_msg(&c, msg);
    expect_out(&c, "MAIL FROM:<a@b.test>\r\nRCPT TO:<r0@d.test>\r\nDATA\r\n");
    step(&c, "250 Ok\r\n250 Ok\r\n451 4.3.0 later\r\n", "RSET\r\n");
    step(&c, "250 Ok\r\n", "");
    assert_int_equal(rcpts3[0].result.code, 451);
    assert_true(rcpts3[0].is_accepted);

    /* 354 to a refused envelope: "." at once, and the result dropped. */
    msg = make_msg(&c, "hi\r\n", 1);
    send_msg(&c, msg);
    expect_out(&c, "MAIL FROM:<a@b.test>\r\nRCPT TO:<r0@d.test>\r\nDATA\r\n");
    step(&c, "250 Ok\r\n550 no\r\n354 go\r\n", ".\r\n");
    step(&c, "250 Ok\r\n", "RSET\r\n");
    step(&c, "250 Ok\r\n", "");
    assert_int_equal(c.done_calls, 3);
    assert_int_equal(rcpts3[0].result.code, 550);
    c_deinit(&c);
}

/* A refused MAIL FROM is every recipient's result, whatever the RCPT
 * replies behind it in a pipeline say: one case per row, the server's
 * replies in steps with what the client must write after each. */
struct mail_refused_case {
    const char *name;
    enum smtp_protocol protocol;
    const char *ehlo;
    const char *envelope;   /* written by smtp_client_send */
    struct {
        const char *server, *client;
    } steps[3];             /* until server is NULL */
    unsigned code;
    const char *enhanced, *text;
};

#define ENVELOPE3                                                                                 \
    "MAIL FROM:<a@b.test>\r\nRCPT TO:<r0@d.test>\r\nRCPT TO:<r1@d.test>\r\nRCPT TO:<r2@d.test>\r\n" \
    "DATA\r\n"

static const struct mail_refused_case mail_refused_cases[] = {
    { "pipelining, 5xx", SMTP_PROTOCOL_SMTP, EHLO_ALL, ENVELOPE3,
      { { "550-5.7.1 sender\r\n550 5.7.1 refused\r\n503 5.5.1 need MAIL\r\n"
          "503 5.5.1 need MAIL\r\n503 5.5.1 need MAIL\r\n503 5.5.1 need MAIL\r\n", "" } },
      550, "5.7.1", "sender\nrefused" },
    /* A server that judges the recipients anyway does not matter either. */
    { "pipelining, 4xx", SMTP_PROTOCOL_SMTP, EHLO_ALL, ENVELOPE3,
      { { "451 4.3.0 try later\r\n503 5.5.1 need MAIL\r\n550 5.1.1 no such user\r\n"
          "250 2.1.5 Ok\r\n503 5.5.1 need MAIL\r\n", "" } },
      451, "4.3.0", "try later" },
    /* 354 to DATA after all: "." at once, RSET, and still the MAIL reply. */
    { "pipelining, 354 anyway", SMTP_PROTOCOL_SMTP, EHLO_ALL, ENVELOPE3,
      { { "452 4.3.1 out of space\r\n503 need MAIL\r\n503 need MAIL\r\n503 need MAIL\r\n"
          "354 go\r\n", ".\r\n" },
        { "250 Ok\r\n", "RSET\r\n" },
        { "250 Ok\r\n", "" } },
      452, "4.3.1", "out of space" },
    /* Lock-step: no RCPT is sent, nothing is reset. */
    { "lock-step, 5xx", SMTP_PROTOCOL_SMTP, EHLO_NOPIPE, "MAIL FROM:<a@b.test>\r\n",
      { { "553 5.1.8 bad sender\r\n", "" } },
      553, "5.1.8", "bad sender" },
    { "lock-step, 4xx", SMTP_PROTOCOL_SMTP, EHLO_NOPIPE, "MAIL FROM:<a@b.test>\r\n",
      { { "450 4.7.1 greylisted\r\n", "" } },
      450, "4.7.1", "greylisted" },
    /* LMTP (the local agent) goes the same way. */
    { "lmtp, pipelining", SMTP_PROTOCOL_LMTP, "250-mx.test\r\n250 PIPELINING\r\n", ENVELOPE3,
      { { "452 4.3.1 store full\r\n503 5.5.1 need MAIL\r\n503 5.5.1 need MAIL\r\n"
          "503 5.5.1 need MAIL\r\n503 5.5.1 need MAIL\r\n", "" } },
      452, "4.3.1", "store full" },
};

static void scenario_mail_refused(bool bytewise)
{
    for (size_t i = 0; i < sizeof(mail_refused_cases) / sizeof(mail_refused_cases[0]); i++) {
        const struct mail_refused_case *tc = &mail_refused_cases[i];
        struct c c;
        c_init(&c, tc->protocol, &mem_io, bytewise);
        c_start(&c, tc->ehlo);
        struct smtp_client_message *msg = make_msg(&c, "hi\r\n", 3);
        send_msg(&c, msg);
        expect_out(&c, tc->envelope);
        for (size_t k = 0; k < 3 && tc->steps[k].server != NULL; k++)
            step(&c, tc->steps[k].server, tc->steps[k].client);
        if (c.done_calls != 1)
            fail_msg("%s (bytewise %d): %d message_done calls", tc->name, bytewise, c.done_calls);
        assert_int_equal(c.failed_calls, 0);
        assert_true(smtp_client_is_idle(c.client));
        assert_int_equal(c.mail_code, tc->code);
        assert_string_equal(c.mail_text, tc->text);
        for (size_t r = 0; r < msg->rcpt_count; r++) {
            const struct smtp_client_rcpt *rcpt = &msg->rcpts[r];
            if (rcpt->result.code != tc->code || strcmp(rcpt->result.enhanced, tc->enhanced) != 0 ||
                strcmp(rcpt->result.text, tc->text) != 0 || rcpt->is_accepted)
                fail_msg("%s (bytewise %d): rcpt %zu: %u %s \"%s\" accepted=%d, expected %u %s \"%s\"",
                         tc->name, bytewise, r, rcpt->result.code, rcpt->result.enhanced,
                         rcpt->result.text, rcpt->is_accepted, tc->code, tc->enhanced, tc->text);
        }
        /* The session goes on: the next transaction needs no RSET. */
        msg = make_msg(&c, "x\r\n", 1);
        send_msg(&c, msg);
        if (!(smtp_client_extensions(c.client) & SMTP_EXT_PIPELINING)) {
            expect_out(&c, "MAIL FROM:<a@b.test>\r\n");
            step(&c, "250 Ok\r\n", "RCPT TO:<r0@d.test>\r\n");
            step(&c, "250 Ok\r\n", "DATA\r\n");
            step(&c, "354 go\r\n", "x\r\n.\r\n");
        } else {
            expect_out(&c, "MAIL FROM:<a@b.test>\r\nRCPT TO:<r0@d.test>\r\nDATA\r\n");
            step(&c, "250 Ok\r\n250 Ok\r\n354 go\r\n", "x\r\n.\r\n");
        }
        step(&c, "250 2.0.0 Ok\r\n", "");
        assert_int_equal(c.done_calls, 2);
        assert_int_equal(rcpts3[0].result.code, 250);
        assert_true(rcpts3[0].is_accepted);
        c_deinit(&c);
    }
}

static void scenario_lmtp(bool bytewise)
{
    struct c c;
    c_init(&c, SMTP_PROTOCOL_LMTP, &mem_io, bytewise);
    c_start(&c, "250-mx.test\r\n250-PIPELINING\r\n250 ENHANCEDSTATUSCODES\r\n");
    struct smtp_client_message *msg = make_msg(&c, "hello\r\n", 3);
    send_msg(&c, msg);
    expect_out(&c, "MAIL FROM:<a@b.test>\r\nRCPT TO:<r0@d.test>\r\nRCPT TO:<r1@d.test>\r\n"
                   "RCPT TO:<r2@d.test>\r\nDATA\r\n");
    step(&c, "250 Ok\r\n250 Ok\r\n550 5.1.1 unknown\r\n250 Ok\r\n354 go\r\n", "hello\r\n.\r\n");
    step(&c, "250 2.0.0 <r0> saved\r\n", "");
    assert_int_equal(c.done_calls, 0);
    step(&c, "452 4.2.2 <r2> over quota\r\n", "");
    assert_int_equal(c.done_calls, 1);
    assert_string_equal(rcpts3[0].result.text, "<r0> saved");
    assert_int_equal(rcpts3[1].result.code, 550);
    assert_int_equal(rcpts3[2].result.code, 452);
    assert_string_equal(rcpts3[2].result.enhanced, "4.2.2");
    c_deinit(&c);
}

static void scenario_params(bool bytewise)
{
    struct c c;
    c_init(&c, SMTP_PROTOCOL_SMTP, &mem_io, bytewise);
    c_start(&c, EHLO_ALL);
    struct smtp_client_message *msg = make_msg(&c, "hi\r\n", 2);
    msg->size = 500;
    msg->body = SMTP_BODY_8BITMIME;
    msg->is_smtputf8 = true;
    msg->ret = SMTP_DSN_RET_HDRS;
    msg->envid = "id+1 x";
    rcpts3[0].notify = SMTP_DSN_NOTIFY_SUCCESS | SMTP_DSN_NOTIFY_FAILURE;
    rcpts3[0].orcpt = "x+y@z.test";
    rcpts3[1].notify = SMTP_DSN_NOTIFY_NEVER;
    rcpts3[1].orcpt = "rfc822;j\xc3\xa9r@z.test";
    send_msg(&c, msg);
    expect_out(&c, "MAIL FROM:<a@b.test> SIZE=500 BODY=8BITMIME SMTPUTF8 RET=HDRS ENVID=id+2B1+20x\r\n"
                   "RCPT TO:<r0@d.test> NOTIFY=SUCCESS,FAILURE ORCPT=rfc822;x+2By@z.test\r\n"
                   "RCPT TO:<r1@d.test> NOTIFY=NEVER ORCPT=utf-8;j\\x{E9}r@z.test\r\nDATA\r\n");
    step(&c, "250 Ok\r\n250 Ok\r\n250 Ok\r\n354 go\r\n", "hi\r\n.\r\n");
    step(&c, "250 Ok\r\n", "");

    /* Over the server's SIZE: refused here, nothing sent. */
    msg = make_msg(&c, "hi\r\n", 1);
    msg->size = 100001;
    send_msg(&c, msg);
    expect_out(&c, "");
    assert_int_equal(c.done_calls, 2);
    assert_int_equal(c.mail_code, 552);
    assert_int_equal(rcpts3[0].result.code, 552);

    /* Control characters in the envelope never reach the wire. */
    msg = make_msg(&c, "hi\r\n", 1);
    rcpts3[0].address = "x@y\r\nRSET";
    send_msg(&c, msg);
    expect_out(&c, "");
    assert_int_equal(c.mail_code, 501);
    c_deinit(&c);

    /* A server without the extensions gets none of the parameters. */
    c_init(&c, SMTP_PROTOCOL_SMTP, &mem_io, bytewise);
    c_start(&c, "250-mx.test\r\n250 PIPELINING\r\n");
    msg = make_msg(&c, "hi\r\n", 1);
    msg->size = 500;
    msg->body = SMTP_BODY_8BITMIME;
    msg->ret = SMTP_DSN_RET_FULL;
    msg->envid = "id";
    rcpts3[0].notify = SMTP_DSN_NOTIFY_DELAY;
    rcpts3[0].orcpt = "x@z.test";
    send_msg(&c, msg);
    expect_out(&c, "MAIL FROM:<a@b.test>\r\nRCPT TO:<r0@d.test>\r\nDATA\r\n");
    step(&c, "250 Ok\r\n250 Ok\r\n354 go\r\n", "hi\r\n.\r\n");
    step(&c, "250 Ok\r\n", "");
    /* SMTPUTF8 needed but not offered: a local failure. */
    msg = make_msg(&c, "hi\r\n", 1);
    rcpts3[0].address = "j\xc3\xb6rg@d.test";
    send_msg(&c, msg);
    expect_out(&c, "");
    assert_int_equal(c.mail_code, 553);
    assert_string_equal(c.mail_text, "server lacks SMTPUTF8");
    assert_int_equal(rcpts3[0].result.code, 553);
    msg = make_msg(&c, "hi\r\n", 1);
    msg->is_smtputf8 = true;
    send_msg(&c, msg);
    assert_string_equal(c.mail_text, "server lacks SMTPUTF8");
    assert_true(smtp_client_is_idle(c.client));
    c_deinit(&c);
}

static void scenario_helo_fallback_and_failures(bool bytewise)
{
    struct c c;
    c_init(&c, SMTP_PROTOCOL_SMTP, &mem_io, bytewise);
    step(&c, "220-mx.test\r\n220 ESMTP multi-line greeting\r\n", "EHLO client.test\r\n");
    step(&c, "502 5.5.1 what?\r\n", "HELO client.test\r\n");
    step(&c, "250 mx.test\r\n", "");
    assert_true(c.is_ready_ok);
    assert_int_equal(smtp_client_extensions(c.client), 0);
    assert_string_equal(smtp_client_greeting(c.client), "mx.test\nESMTP multi-line greeting");
    c_deinit(&c);

    /* Greeting refused. */
    c_init(&c, SMTP_PROTOCOL_SMTP, &mem_io, bytewise);
    step(&c, "554 5.7.1 no service\r\n", "");
    assert_int_equal(c.ready_calls, 1);
    assert_false(c.is_ready_ok);
    assert_int_equal(c.ready_code, 554);
    assert_string_equal(c.reason, "greeting refused: 554 5.7.1 no service");
    assert_int_equal(c.closes, 1);
    c_deinit(&c);

    /* LMTP has no HELO to fall back to. */
    c_init(&c, SMTP_PROTOCOL_LMTP, &mem_io, bytewise);
    step(&c, "220 mx\r\n", "LHLO client.test\r\n");
    step(&c, "500 no\r\n", "");
    assert_false(c.is_ready_ok);
    assert_string_equal(c.reason, "LHLO refused: 500 no");
    c_deinit(&c);

    /* Malformed replies. */
    static const char *const bad[] = { "220 ok\r\nhello\r\n", "220 ok\r\n250-a\r\n251 b\r\n",
                                       "220 ok\r\n2500\r\n", "220 ok\r\n199 x\r\n" };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        c_init(&c, SMTP_PROTOCOL_SMTP, &mem_io, bytewise);
        step(&c, bad[i], "EHLO client.test\r\n");
        assert_int_equal(c.ready_calls, 1);
        assert_false(c.is_ready_ok);
        assert_non_null(strstr(c.reason, "protocol error"));
        assert_int_equal(c.closes, 1);
        c_deinit(&c);
    }
}

static void scenario_421_and_protocol_errors(bool bytewise)
{
    struct c c;
    c_init(&c, SMTP_PROTOCOL_SMTP, &mem_io, bytewise);
    c_start(&c, EHLO_ALL);
    struct smtp_client_message *msg = make_msg(&c, "hi\r\n", 2);
    send_msg(&c, msg);
    expect_out(&c, "MAIL FROM:<a@b.test>\r\nRCPT TO:<r0@d.test>\r\nRCPT TO:<r1@d.test>\r\nDATA\r\n");
    step(&c, "250 Ok\r\n421 4.3.2 mx.test shutting down\r\n", "");
    assert_int_equal(c.failed_calls, 1);
    assert_string_equal(c.reason, "service not available: 421 4.3.2 mx.test shutting down");
    assert_int_equal(c.done_calls, 0);
    assert_int_equal(c.closes, 1);
    assert_false(smtp_client_is_idle(c.client));
    /* Nothing follows a failure. */
    step(&c, "250 Ok\r\n", "");
    smtp_client_connection_lost(c.client, "reset");
    assert_int_equal(c.failed_calls, 1);
    c_deinit(&c);

    /* A reply nobody asked for. */
    c_init(&c, SMTP_PROTOCOL_SMTP, &mem_io, bytewise);
    c_start(&c, EHLO_ALL);
    step(&c, "250 unsolicited\r\n", "");
    assert_int_equal(c.failed_calls, 1);
    assert_string_equal(c.reason, "protocol error: unexpected reply: 250 unsolicited");
    c_deinit(&c);

    /* An overlong reply line. */
    c_init(&c, SMTP_PROTOCOL_SMTP, &mem_io, false);
    c_start(&c, EHLO_ALL);
    char line[5000];
    memset(line, 'x', sizeof(line) - 1);
    line[sizeof(line) - 1] = '\0';
    memcpy(line, "250 ", 4);
    step(&c, line, "");
    assert_int_equal(c.failed_calls, 1);
    assert_string_equal(c.reason, "protocol error: reply line too long");
    c_deinit(&c);

    /* The connection drops. */
    c_init(&c, SMTP_PROTOCOL_SMTP, &mem_io, bytewise);
    step(&c, "220 mx\r\n", "EHLO client.test\r\n");
    smtp_client_connection_lost(c.client, "connection reset by peer");
    assert_int_equal(c.ready_calls, 1);
    assert_string_equal(c.reason, "connection reset by peer");
    c_deinit(&c);
}

static void scenario_starttls(bool bytewise)
{
    struct c c;
    c_init(&c, SMTP_PROTOCOL_SMTP, &mem_io, bytewise);
    c.set.use_starttls = true;
    c.set.auth_user = "alice";
    c.set.auth_password = "secret";
    c_restart(&c, &mem_io);
    step(&c, "220 mx\r\n", "EHLO client.test\r\n");
    step(&c, "250-mx\r\n250-STARTTLS\r\n250 AUTH PLAIN\r\n", "STARTTLS\r\n");
    /* Replies pipelined before the handshake must be ignored. */
    step(&c, "220 2.0.0 go\r\n250 injected\r\n", "");
    assert_int_equal(c.tls_starts, 1);
    assert_int_equal(c.ready_calls, 0);
    smtp_client_tls_ready(c.client);
    expect_out(&c, "EHLO client.test\r\n");
    assert_int_equal(smtp_client_extensions(c.client), 0);
    step(&c, "250-mx\r\n250-PIPELINING\r\n250 AUTH PLAIN LOGIN\r\n",
         "AUTH PLAIN AGFsaWNlAHNlY3JldA==\r\n");
    step(&c, "235 2.7.0 ok\r\n", "");
    assert_true(c.is_ready_ok);
    assert_int_equal(smtp_client_extensions(c.client),
                     SMTP_EXT_PIPELINING | SMTP_EXT_AUTH_PLAIN | SMTP_EXT_AUTH_LOGIN);
    c_deinit(&c);

    /* Required but not offered. */
    c_init(&c, SMTP_PROTOCOL_SMTP, &mem_io, bytewise);
    c.set.require_starttls = true;
    c_restart(&c, &mem_io);
    step(&c, "220 mx\r\n", "EHLO client.test\r\n");
    step(&c, "250-mx\r\n250 PIPELINING\r\n", "");
    assert_false(c.is_ready_ok);
    assert_string_equal(c.reason, "STARTTLS not offered");
    assert_int_equal(c.closes, 1);
    c_deinit(&c);

    /* Offered, wanted, refused: opportunistic TLS goes on in plaintext. */
    c_init(&c, SMTP_PROTOCOL_SMTP, &mem_io, bytewise);
    c.set.use_starttls = true;
    c_restart(&c, &mem_io);
    step(&c, "220 mx\r\n", "EHLO client.test\r\n");
    step(&c, "250-mx\r\n250 STARTTLS\r\n", "STARTTLS\r\n");
    step(&c, "454 4.7.0 TLS not available\r\n", "");
    assert_true(c.is_ready_ok);
    assert_int_equal(c.tls_starts, 0);
    c_deinit(&c);
}

static void scenario_auth(bool bytewise)
{
    struct c c;
    /* LOGIN when PLAIN is not offered. */
    c_init(&c, SMTP_PROTOCOL_SMTP, &mem_io, bytewise);
    c.set.is_tls = true;
    c.set.auth_user = "alice";
    c.set.auth_password = "secret";
    c_restart(&c, &mem_io);
    step(&c, "220 mx\r\n", "EHLO client.test\r\n");
    step(&c, "250-mx\r\n250 AUTH=LOGIN\r\n", "AUTH LOGIN\r\n");
    step(&c, "334 VXNlcm5hbWU6\r\n", "YWxpY2U=\r\n");
    step(&c, "334 UGFzc3dvcmQ6\r\n", "c2VjcmV0\r\n");
    step(&c, "235 ok\r\n", "");
    assert_true(c.is_ready_ok);
    c_deinit(&c);

    /* Refused credentials. */
    c_init(&c, SMTP_PROTOCOL_SMTP, &mem_io, bytewise);
    c.set.is_tls = true;
    c.set.auth_user = "alice";
    c.set.auth_password = "wrong";
    c_restart(&c, &mem_io);
    step(&c, "220 mx\r\n", "EHLO client.test\r\n");
    step(&c, "250-mx\r\n250 AUTH PLAIN LOGIN\r\n", "AUTH PLAIN AGFsaWNlAHdyb25n\r\n");
    step(&c, "535 5.7.8 no\r\n", "");
    assert_false(c.is_ready_ok);
    assert_int_equal(c.ready_code, 535);
    assert_string_equal(c.reason, "authentication failed: 535 5.7.8 no");
    c_deinit(&c);

    /* Never over plaintext; never without a mechanism. */
    c_init(&c, SMTP_PROTOCOL_SMTP, &mem_io, bytewise);
    c.set.auth_user = "alice";
    c_restart(&c, &mem_io);
    step(&c, "220 mx\r\n", "EHLO client.test\r\n");
    step(&c, "250-mx\r\n250 AUTH PLAIN\r\n", "");
    assert_string_equal(c.reason, "refusing to send credentials without TLS");
    c_deinit(&c);
    c_init(&c, SMTP_PROTOCOL_SMTP, &mem_io, bytewise);
    c.set.auth_user = "alice";
    c.set.is_tls = true;
    c_restart(&c, &mem_io);
    step(&c, "220 mx\r\n", "EHLO client.test\r\n");
    step(&c, "250-mx\r\n250 AUTH CRAM-MD5\r\n", "");
    assert_string_equal(c.reason, "the server offers no usable AUTH mechanism");
    c_deinit(&c);
}

static void scenario_content_flow(bool bytewise)
{
    struct c c;
    c_init(&c, SMTP_PROTOCOL_SMTP, &mem_io, bytewise);
    c_start(&c, EHLO_ALL);
    /* read_content says "not yet" twice. */
    struct smtp_client_message *msg = make_msg(&c, "a\r\n.b\r\n", 1);
    c.pauses = 1;
    send_msg(&c, msg);
    expect_out(&c, "MAIL FROM:<a@b.test>\r\nRCPT TO:<r0@d.test>\r\nDATA\r\n");
    step(&c, "250 Ok\r\n250 Ok\r\n354 go\r\n", "");
    smtp_client_content_ready(c.client);
    expect_out(&c, "a\r\n..b\r\n.\r\n");
    smtp_client_content_ready(c.client); /* not waiting: ignored */
    expect_out(&c, "");
    step(&c, "250 Ok\r\n", "");
    assert_int_equal(c.done_calls, 1);

    /* message_done may start the next transaction. */
    msg = make_msg(&c, "z\r\n", 1);
    c.send_again = true;
    send_msg(&c, msg);
    expect_out(&c, "MAIL FROM:<a@b.test>\r\nRCPT TO:<r0@d.test>\r\nDATA\r\n");
    step(&c, "250 Ok\r\n250 Ok\r\n354 go\r\n250 Ok\r\n",
         "z\r\n.\r\nMAIL FROM:<a@b.test>\r\nRCPT TO:<r0@d.test>\r\nDATA\r\n");
    assert_int_equal(c.done_calls, 2);
    step(&c, "250 Ok\r\n250 Ok\r\n354 go\r\n250 Ok\r\n", "z\r\n.\r\n");
    assert_int_equal(c.done_calls, 3);

    /* A content error after 354 cannot be taken back: the connection
     * goes. */
    msg = make_msg(&c, "z\r\n", 1);
    c.content_error = true;
    send_msg(&c, msg);
    expect_out(&c, "MAIL FROM:<a@b.test>\r\nRCPT TO:<r0@d.test>\r\nDATA\r\n");
    step(&c, "250 Ok\r\n250 Ok\r\n354 go\r\n", "");
    assert_int_equal(c.failed_calls, 1);
    assert_string_equal(c.reason, "cannot read the message content");
    assert_int_equal(c.closes, 1);
    c_deinit(&c);
}

static void test_smtp_client_scenarios(void **state)
{
    (void)state;
    for (int bytewise = 0; bytewise <= 1; bytewise++) {
        scenario_pipelining(bytewise);
        scenario_lock_step(bytewise);
        scenario_pipelined_failures(bytewise);
        scenario_mail_refused(bytewise);
        scenario_lmtp(bytewise);
        scenario_params(bytewise);
        scenario_helo_fallback_and_failures(bytewise);
        scenario_421_and_protocol_errors(bytewise);
        scenario_starttls(bytewise);
        scenario_auth(bytewise);
        scenario_content_flow(bytewise);
    }
}

/* Large content: stuffed exactly, written in steps with want_drain. */
static void test_smtp_client_backpressure(void **state)
{
    (void)state;
    struct c c;
    c_init(&c, SMTP_PROTOCOL_SMTP, &drain_io, false);
    c_start(&c, EHLO_ALL);
    size_t len = 80 * 13107; /* about 1 MiB of 80-byte lines */
    char *content = malloc(len + 1);
    for (size_t i = 0; i < len; i++)
        content[i] = i % 80 == 78 ? '\r' : i % 80 == 79 ? '\n' : i % 80 == 0 ? '.' : 'x';
    content[len] = '\0';
    struct smtp_client_message *msg = make_msg(&c, content, 1);
    send_msg(&c, msg);
    mg_buf_reset(&c.out);
    step(&c, "250 Ok\r\n250 Ok\r\n", "");
    mg_buf_append_str(&c.in, "354 go\r\n");
    smtp_client_feed(c.client, &c.in);
    int rounds = 0;
    while (c.drains > rounds) {
        rounds++;
        assert_true(c.out.len <= (size_t)rounds * (SMTP_CLIENT_WRITE_STEP + SMTP_CLIENT_READ_CHUNK * 2));
        smtp_client_content_ready(c.client);
    }
    assert_true(rounds >= 4);
    /* Every line started with a dot: each got one more. */
    size_t lines = len / 80;
    assert_int_equal(c.out.len, len + lines + 3);
    assert_memory_equal(c.out.data, "..x", 3);
    assert_memory_equal(c.out.data + c.out.len - 5, "\r\n.\r\n", 5);
    mg_buf_reset(&c.out);
    step(&c, "250 Ok\r\n", "");
    assert_int_equal(c.done_calls, 1);
    free(content);
    c_deinit(&c);
}

/* Freeing the client from inside a callback. */
static void cb_ready_free(struct smtp_client *client, const struct smtp_reply *failure,
                          const char *reason, void *ctx)
{
    struct c *c = ctx;
    c->ready_calls++;
    smtp_client_free(&c->client);
}

static void test_smtp_client_free_in_callback(void **state)
{
    (void)state;
    static const struct smtp_client_callbacks cb = { cb_ready_free, cb_done, cb_failed };
    struct c c;
    c_init(&c, SMTP_PROTOCOL_SMTP, &mem_io, false);
    smtp_client_free(&c.client);
    c.client = smtp_client_new(&c.set, &mem_io, &c, &cb, &c);
    mg_buf_append_str(&c.in, "220 mx\r\n250 mx\r\n250 extra\r\n");
    smtp_client_feed(c.client, &c.in);
    assert_null(c.client);
    assert_int_equal(c.ready_calls, 1);
    mg_buf_reset(&c.in);
    smtp_client_free(&c.client);
    c.client = smtp_client_new(&c.set, &mem_io, &c, &cb, &c);
    mg_buf_append_str(&c.in, "220 mx\r\n");
    smtp_client_feed(c.client, &c.in);
    mg_buf_reset(&c.out);
    mg_buf_append_str(&c.in, "250 mx\r\n250 extra\r\n");
    smtp_client_feed(c.client, &c.in);
    assert_null(c.client);
    assert_int_equal(c.ready_calls, 2);
    c_deinit(&c);
}

int main(void)
{
    mg_log_init("test_smtp_client");
    mg_log_set_level(MG_LOG_ERROR);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_smtp_client_scenarios),
        cmocka_unit_test(test_smtp_client_backpressure),
        cmocka_unit_test(test_smtp_client_free_in_callback),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
