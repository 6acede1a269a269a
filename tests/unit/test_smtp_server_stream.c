/* The server engine's content path and its bounds under hostile input:
 * DATA and BDAT content streamed to data_chunk exactly, whatever the
 * input is cut into and whether hooks answer at once or later; endless
 * lines, a hundred thousand refused recipients and absurd BDAT sizes
 * costing no memory. */
#include "testutil.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/buf.h"
#include "common/dotstuff.h"
#include "common/log.h"
#include "lmtp/smtp_server.h"

/* ---- a small harness: SMTP, hooks accept all but "reject" ---- */

struct h {
    struct smtp_server *server;
    struct mg_buf in, out, content;
    bool defer;             /* keep the handle, answer after the feed */
    bool auto_answer;
    struct smtp_server_reply *held;
    unsigned held_code;
    const char *held_enhanced, *held_text;
    size_t max_chunk;
};

static void io_write(void *ctx, const void *data, size_t len)
{
    struct h *h = ctx;
    mg_buf_append(&h->out, data, len);
}

static void io_nothing(void *ctx)
{
    (void)ctx;
}

static const struct smtp_server_io mem_io = { io_write, io_nothing, io_nothing, NULL };

static void answer(struct h *h, struct smtp_server_reply *reply, unsigned code,
                   const char *enhanced, const char *text)
{
    if (!h->defer) {
        smtp_server_reply_send(reply, code, enhanced, text);
        return;
    }
    assert_null(h->held);
    h->held = reply;
    h->held_code = code;
    h->held_enhanced = enhanced;
    h->held_text = text;
}

static void hook_mail(struct smtp_server *server, struct smtp_server_reply *reply,
                      struct smtp_tx *tx, void *ctx)
{
    answer(ctx, reply, 250, "2.1.0", "Ok");
}

static void hook_rcpt(struct smtp_server *server, struct smtp_server_reply *reply,
                      struct smtp_tx *tx, struct smtp_rcpt *rcpt, void *ctx)
{
    if (strstr(rcpt->address, "reject") != NULL)
        answer(ctx, reply, 550, "5.1.1", "no such user");
    else
        answer(ctx, reply, 250, "2.1.5", "Ok");
}

static void hook_data_begin(struct smtp_server *server, struct smtp_server_reply *reply,
                            struct smtp_tx *tx, void *ctx)
{
    answer(ctx, reply, 354, NULL, NULL);
}

static void hook_data_chunk(struct smtp_server *server, struct smtp_tx *tx, const char *data,
                            size_t len, void *ctx)
{
    struct h *h = ctx;
    mg_buf_append(&h->content, data, len);
    if (len > h->max_chunk)
        h->max_chunk = len;
}

static void hook_data_end(struct smtp_server *server, struct smtp_server_reply *reply,
                          struct smtp_tx *tx, void *ctx)
{
    struct h *h = ctx;
    assert_int_equal(tx->data_size, h->content.len);
    answer(h, reply, 250, "2.0.0", "Ok: queued as Q1");
}

static const struct smtp_server_hooks test_hooks = {
    .mail_from = hook_mail,
    .rcpt_to = hook_rcpt,
    .data_begin = hook_data_begin,
    .data_chunk = hook_data_chunk,
    .data_end = hook_data_end,
};

static void h_init_size(struct h *h, unsigned flags, bool defer, uint64_t max_size)
{
    (void)flags;
    memset(h, 0, sizeof(*h));
    struct smtp_server_settings set = {
        .protocol = SMTP_PROTOCOL_SMTP,
        .hostname = "mx.test",
        .greeting_text = "ESMTP test",
        .max_line_length = 512,
        .max_recipients = 3,
        .max_message_size = max_size,
        .bare_newline = SMTP_BARE_NEWLINE_REJECT,
        .offer_chunking = true,
    };
    h->defer = defer;
    h->server = smtp_server_new(&set, &mem_io, h, &test_hooks, h);
}

static void h_init(struct h *h, unsigned flags, bool defer)
{
    h_init_size(h, flags, defer, 1000);
}

static void h_feed(struct h *h)
{
    smtp_server_feed(h->server, &h->in);
    while (h->auto_answer && h->held != NULL) {
        struct smtp_server_reply *reply = h->held;
        h->held = NULL;
        smtp_server_reply_send(reply, h->held_code, h->held_enhanced, h->held_text);
        smtp_server_feed(h->server, &h->in);
    }
}

static void h_input(struct h *h, const char *data, size_t len)
{
    mg_buf_append(&h->in, data, len);
    h_feed(h);
}

static void h_send(struct h *h, const char *data)
{
    h_input(h, data, strlen(data));
}

static char *h_take(struct h *h)
{
    char *s = strdup(mg_buf_cstr(&h->out));
    mg_buf_reset(&h->out);
    return s;
}

static void assert_out(struct h *h, const char *expected)
{
    char *got = h_take(h);
    if (strcmp(got, expected) != 0)
        fail_msg("--- got:\n%s--- expected:\n%s", got, expected);
    free(got);
}

static void assert_out_ends(struct h *h, const char *expected)
{
    char *got = h_take(h);
    size_t n = strlen(got), m = strlen(expected);
    if (n < m || strcmp(got + n - m, expected) != 0)
        fail_msg("--- got:\n%s--- expected to end with:\n%s", got, expected);
    free(got);
}

static void h_deinit(struct h *h)
{
    smtp_server_free(&h->server);
    if (h->held != NULL)
        smtp_server_reply_send(h->held, 250, NULL, "late"); /* inert */
    mg_buf_free(&h->in);
    mg_buf_free(&h->out);
    mg_buf_free(&h->content);
}

#define ENV "EHLO c.test\r\nMAIL FROM:<a@b.test>\r\nRCPT TO:<c@d.test>\r\n"
#define OK_MAIL "250 2.1.0 Ok\r\n"
#define OK_RCPT "250 2.1.5 Ok\r\n"
#define OK "250 2.0.0 Ok\r\n"
#define BYE "221 2.0.0 Bye\r\n"

/* ---- content ---- */

/* Content through DATA, split every way: the chunks put together are the
 * content before stuffing, and no chunk is larger than the engine's
 * bound. */
static void test_smtp_server_data_streaming_exact(void **state)
{
    (void)state;
    struct mg_buf body = MG_BUF_INIT;
    unsigned seed = 12345;
    while (body.len < 300 * 1024) {
        seed = seed * 1103515245 + 12345;
        unsigned r = (seed >> 16) % 100;
        if (r < 10)
            mg_buf_append_str(&body, ".");
        else if (r < 13)
            mg_buf_append_str(&body, "..\r\n");
        else if (r < 15)
            mg_buf_append_str(&body, ".\r\n");
        size_t n = (seed >> 8) % 200;
        for (size_t i = 0; i < n; i++)
            mg_buf_append_byte(&body, (char)(' ' + (seed + i * 7) % 90));
        mg_buf_append_str(&body, "\r\n");
    }
    struct mg_dotstuff_encoder enc;
    mg_dotstuff_encoder_init(&enc);
    struct mg_buf wire = MG_BUF_INIT;
    mg_dotstuff_encode(&enc, body.data, body.len, &wire);
    mg_dotstuff_encode_end(&enc, &wire);
    mg_buf_append_str(&wire, "QUIT\r\n");

    static const size_t steps[] = { 1, 7, 4096, 1 << 20 };
    for (size_t s = 0; s < sizeof(steps) / sizeof(steps[0]); s++) {
        struct h h;
        h_init_size(&h, 0, s % 2 == 1, 0);
        h.auto_answer = true;
        h_send(&h, ENV "DATA\r\n");
        for (size_t off = 0; off < wire.len; off += steps[s]) {
            size_t n = wire.len - off < steps[s] ? wire.len - off : steps[s];
            mg_buf_append(&h.in, wire.data + off, n);
            h_feed(&h);
        }
        assert_int_equal(h.content.len, body.len);
        assert_memory_equal(h.content.data, body.data, body.len);
        assert_true(h.max_chunk <= 64 * 1024);
        assert_non_null(strstr(mg_buf_cstr(&h.out), "queued as Q1\r\n" BYE));
        h_deinit(&h);
    }
    mg_buf_free(&body);
    mg_buf_free(&wire);
}

static void test_smtp_server_bdat_split_feeds(void **state)
{
    (void)state;
    /* Binary chunk bytes, CR LF . CR LF and NUL included, across feeds. */
    char chunk[3000];
    for (size_t i = 0; i < sizeof(chunk); i++)
        chunk[i] = (char)(i * 31);
    memcpy(chunk + 100, "\r\n.\r\nQUIT\r\n", 11);
    struct mg_buf input = MG_BUF_INIT;
    mg_buf_append_str(&input, ENV "BDAT 2000\r\n");
    mg_buf_append(&input, chunk, 2000);
    mg_buf_append_str(&input, "BDAT 1000 LAST\r\n");
    mg_buf_append(&input, chunk + 2000, 1000);
    mg_buf_append_str(&input, "NOOP\r\n");
    for (size_t step = 1; step < 5000; step = step * 3 + 1) {
        struct h h;
        h_init_size(&h, 0, step % 2 == 0, 0);
        h.auto_answer = true;
        for (size_t off = 0; off < input.len; off += step) {
            size_t n = input.len - off < step ? input.len - off : step;
            mg_buf_append(&h.in, input.data + off, n);
            h_feed(&h);
        }
        assert_int_equal(h.content.len, sizeof(chunk));
        assert_memory_equal(h.content.data, chunk, sizeof(chunk));
        assert_out_ends(&h, OK_MAIL OK_RCPT "250 2.0.0 Ok: 2000 octets received\r\n"
                                    "250 2.0.0 Ok: queued as Q1\r\n" OK);
        h_deinit(&h);
    }
    mg_buf_free(&input);
}

/* ---- hostile input stays bounded ---- */

static void test_smtp_server_endless_line(void **state)
{
    (void)state;
    struct h h;
    h_init(&h, 0, false);
    h_take(&h);
    char block[65536];
    memset(block, 'A', sizeof(block));
    for (int i = 0; i < 80; i++) { /* 5 MiB without a line end */
        mg_buf_append(&h.in, block, sizeof(block));
        h_feed(&h);
        assert_int_equal(h.in.len, 0);
    }
    h_send(&h, "\r\nNOOP\r\n");
    assert_out(&h, "500 5.5.2 Error: line too long\r\n" OK);
    h_deinit(&h);
}

static void test_smtp_server_many_rejected_recipients(void **state)
{
    (void)state;
    struct h h;
    h_init(&h, 0, false);
    h_send(&h, "EHLO c\r\nMAIL FROM:<a@b.test>\r\n");
    h_take(&h);
    struct mg_buf batch = MG_BUF_INIT;
    for (int i = 0; i < 1000; i++)
        mg_buf_append_str(&batch, "RCPT TO:<reject@d.test>\r\n");
    for (int round = 0; round < 100; round++) {
        h_input(&h, batch.data, batch.len);
        assert_int_equal(h.out.len, 1000 * strlen("550 5.1.1 no such user\r\n"));
        mg_buf_reset(&h.out);
    }
    mg_buf_free(&batch);
    h_send(&h, "DATA\r\n");
    assert_out(&h, "554 5.5.1 Error: no valid recipients\r\n");
    h_deinit(&h);
}

static void test_smtp_server_huge_bdat_is_discarded(void **state)
{
    (void)state;
    struct h h;
    h_init(&h, 0, false);
    h_send(&h, "EHLO c\r\nBDAT 18446744073709551615\r\n");
    h_take(&h);
    char block[65536];
    memset(block, 'B', sizeof(block));
    for (int i = 0; i < 32; i++) {
        mg_buf_append(&h.in, block, sizeof(block));
        h_feed(&h);
        assert_int_equal(h.in.len, 0);
    }
    assert_out(&h, "");
    smtp_server_timeout(h.server);
    assert_out(&h, "421 4.4.2 mx.test Error: timeout exceeded\r\n");
    h_deinit(&h);
}

int main(void)
{
    mg_log_init("test_smtp_server_stream");
    mg_log_set_level(MG_LOG_ERROR);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_smtp_server_data_streaming_exact),
        cmocka_unit_test(test_smtp_server_bdat_split_feeds),
        cmocka_unit_test(test_smtp_server_endless_line),
        cmocka_unit_test(test_smtp_server_many_rejected_recipients),
        cmocka_unit_test(test_smtp_server_huge_bdat_is_discarded),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
