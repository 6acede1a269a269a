/* libFuzzer harness: one SMTP or LMTP server session over in-memory io.
 *
 *   byte 0: settings (protocol, TLS, bare newline policy, AUTH, STARTTLS,
 *           extensions) and how the input is cut (whole, one byte at a
 *           time, pieces of a size from byte 1)
 *   byte 1: piece size and the seed of the hooks' decisions
 *   rest:   what the client sends
 *
 * Hooks accept or refuse pseudo-randomly from the seed, and sometimes keep
 * the reply handle to answer after the feed returns (the daemon's
 * asynchronous path), so both ways of answering are explored. STARTTLS
 * completes at once. Checked: every byte the server writes is a
 * well-formed reply line of at most 512 bytes, content chunks stay within
 * the engine's bound and add up to the transaction's size, and freeing
 * with an answer outstanding is safe. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "common/buf.h"
#include "common/log.h"
#include "lmtp/smtp_server.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

struct fuzz {
    struct smtp_server *server;
    struct mg_buf in;
    uint32_t rng;
    bool tls_pending;
    struct smtp_server_reply *held;
    int held_kind;          /* 1 auth, 2 single reply, 3 lmtp data end */
    size_t held_rcpts;
    size_t line_len;        /* of the output line being written */
    char prev;              /* the last byte written */
    uint64_t content;       /* bytes of the current transaction's content */
};

static uint32_t next(struct fuzz *f)
{
    f->rng = f->rng * 1103515245u + 12345u;
    return f->rng >> 16;
}

/* The output must be reply lines: "ddd" then ' ' or '-', text, CR LF. */
static void io_write(void *ctx, const void *data, size_t len)
{
    struct fuzz *f = ctx;
    const char *p = data;
    for (size_t i = 0; i < len; i++) {
        char c = p[i];
        size_t pos = f->line_len++;
        if (pos < 3 && (c < '0' || c > '9'))
            abort();
        if (pos == 3 && c != ' ' && c != '-')
            abort();
        if (c == '\n') {
            if (pos < 4 || f->prev != '\r')
                abort();
            f->line_len = 0;
        } else if (f->prev == '\r' ||
                   (c != '\r' && ((unsigned char)c < 0x20 || (unsigned char)c >= 0x7f))) {
            abort(); /* a CR not followed by LF, or a control character */
        }
        if (f->line_len > 512)
            abort();
        f->prev = c;
    }
}

static void io_start_tls(void *ctx)
{
    struct fuzz *f = ctx;
    f->tls_pending = true;
}

static void io_close(void *ctx)
{
    (void)ctx;
}

static const struct smtp_server_io io = { io_write, io_start_tls, io_close, NULL };

static const unsigned codes[] = { 250, 251, 450, 451, 452, 550, 552, 553, 554 };

static void answer(struct fuzz *f, struct smtp_server_reply *reply, int kind, size_t rcpts)
{
    unsigned code = codes[next(f) % (sizeof(codes) / sizeof(codes[0]))];
    if (kind == 1) {
        smtp_server_auth_reply(reply, next(f) % 2 == 0, NULL);
    } else if (kind == 3 && next(f) % 4 != 0) {
        /* LMTP: per recipient, in a scrambled order. */
        size_t start = next(f) % rcpts;
        for (size_t k = 0; k < rcpts; k++) {
            size_t i = (start + k * 7) % rcpts; /* 7 is prime to rcpts <= 5 */
            smtp_server_rcpt_data_reply(reply, (unsigned)i,
                                        codes[next(f) % (sizeof(codes) / sizeof(codes[0]))],
                                        next(f) % 2 ? "2.0.0" : NULL, "text\r\nwith CR LF");
        }
    } else {
        smtp_server_reply_send(reply, code, next(f) % 3 ? NULL : "9.9.9", "fuzz");
    }
}

/* Answers now, or keeps the handle for after the feed. */
static void decide(struct fuzz *f, struct smtp_server_reply *reply, int kind, size_t rcpts)
{
    if (f->held == NULL && next(f) % 3 == 0) {
        f->held = reply;
        f->held_kind = kind;
        f->held_rcpts = rcpts;
        return;
    }
    answer(f, reply, kind, rcpts);
}

static void h_auth(struct smtp_server *server, struct smtp_server_reply *reply,
                   const char *authzid, const char *authcid, const char *password, void *ctx)
{
    (void)strlen(authzid);
    (void)strlen(authcid);
    (void)strlen(password);
    decide(ctx, reply, 1, 0);
}

static void h_mail(struct smtp_server *server, struct smtp_server_reply *reply, struct smtp_tx *tx,
                   void *ctx)
{
    struct fuzz *f = ctx;
    f->content = 0;
    (void)strlen(tx->mail_from);
    decide(f, reply, 2, 0);
}

static void h_rcpt(struct smtp_server *server, struct smtp_server_reply *reply, struct smtp_tx *tx,
                   struct smtp_rcpt *rcpt, void *ctx)
{
    (void)strlen(rcpt->address);
    if (rcpt->index != tx->rcpt_count)
        abort();
    decide(ctx, reply, 2, 0);
}

static void h_data_begin(struct smtp_server *server, struct smtp_server_reply *reply,
                         struct smtp_tx *tx, void *ctx)
{
    struct fuzz *f = ctx;
    if (tx->rcpt_count == 0)
        abort();
    if (next(f) % 4 == 0)
        decide(f, reply, 2, 0);
    else
        smtp_server_reply_send(reply, 354, NULL, NULL);
}

static void h_data_chunk(struct smtp_server *server, struct smtp_tx *tx, const char *data,
                         size_t len, void *ctx)
{
    struct fuzz *f = ctx;
    if (len == 0 || len > 64 * 1024)
        abort();
    f->content += len;
    (void)data[len - 1];
}

static void h_data_end(struct smtp_server *server, struct smtp_server_reply *reply,
                       struct smtp_tx *tx, void *ctx)
{
    struct fuzz *f = ctx;
    if (tx->data_size != f->content || tx->rcpt_count == 0)
        abort();
    bool is_lmtp = smtp_server_protocol(server) == SMTP_PROTOCOL_LMTP;
    decide(f, reply, is_lmtp ? 3 : 2, tx->rcpt_count);
}

static const struct smtp_server_hooks hooks = {
    .auth = h_auth,
    .mail_from = h_mail,
    .rcpt_to = h_rcpt,
    .data_begin = h_data_begin,
    .data_chunk = h_data_chunk,
    .data_end = h_data_end,
};

static void feed(struct fuzz *f)
{
    smtp_server_feed(f->server, &f->in);
    for (;;) {
        if (f->tls_pending) {
            f->tls_pending = false;
            smtp_server_tls_ready(f->server);
        } else if (f->held != NULL) {
            struct smtp_server_reply *reply = f->held;
            f->held = NULL;
            answer(f, reply, f->held_kind, f->held_rcpts);
        } else {
            break;
        }
        smtp_server_feed(f->server, &f->in);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 2)
        return 0;
    static bool is_init;
    if (!is_init) {
        mg_log_init("fuzz_smtp_server");
        mg_log_set_level(MG_LOG_FATAL);
        is_init = true;
    }
    uint8_t flags = data[0];
    struct smtp_server_settings set = {
        .protocol = (flags & 1) ? SMTP_PROTOCOL_LMTP : SMTP_PROTOCOL_SMTP,
        .hostname = "mx.fuzz",
        .greeting_text = "ESMTP",
        .max_line_length = 512,
        .max_recipients = 5,
        .max_message_size = (flags & 32) ? 300 : 0,
        .max_errors = 10,
        .bare_newline = (flags & 2) ? SMTP_BARE_NEWLINE_NORMALIZE : SMTP_BARE_NEWLINE_REJECT,
        .offer_starttls = (flags & 4) != 0,
        .is_tls = (flags & 8) != 0,
        .offer_auth = true,
        .require_auth = (flags & 16) != 0,
        .offer_chunking = true,
        .offer_dsn = true,
        .offer_smtputf8 = (flags & 32) == 0,
    };
    struct fuzz f = { .rng = data[1] };
    f.server = smtp_server_new(&set, &io, &f, &hooks, &f);
    const char *input = (const char *)data + 2;
    size_t len = size - 2;
    size_t piece = (flags >> 6) == 0 ? len : (flags >> 6) == 1 ? 1 : (size_t)(data[1] % 64) + 1;
    for (size_t off = 0; off < len;) {
        size_t n = len - off < piece ? len - off : piece;
        if ((flags >> 6) == 3)
            n = 1 + next(&f) % (len - off);
        mg_buf_append(&f.in, input + off, n);
        off += n;
        feed(&f);
    }
    if (data[1] & 1)
        smtp_server_shutdown(f.server);
    if (data[1] & 2)
        smtp_server_timeout(f.server);
    smtp_server_free(&f.server);
    if (f.held != NULL)
        answer(&f, f.held, f.held_kind, f.held_rcpts); /* inert */
    mg_buf_free(&f.in);
    return 0;
}
