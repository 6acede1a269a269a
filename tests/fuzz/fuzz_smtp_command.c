/* libFuzzer harness: the SMTP parsers that take one line or one reply.
 *
 *   byte 0 & 7 picks the target:
 *     0  command split, then MAIL FROM arguments
 *     1  RCPT TO arguments
 *     2  BDAT arguments
 *     3  xtext decoding
 *     4  utf-8-addr-xtext decoding
 *     5  the reply parser, fed whole or one byte at a time
 *     6, 7  a client session: the input is what the server says
 *   byte 0 >> 3: parser options (esmtp, SMTPUTF8, DSN, transaction UTF-8)
 *
 * Checked: what parses re-parses the same way (addresses, xtext round
 * trips), decoded values stay within their limits and free of control
 * characters, and the client never writes a line that is not a command. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "common/address.h"
#include "common/arena.h"
#include "common/buf.h"
#include "common/log.h"
#include "lmtp/smtp_client.h"
#include "lmtp/smtp_command.h"
#include "lmtp/smtp_params.h"
#include "lmtp/smtp_reply.h"
#include "lmtp/smtp_xtext.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_text_lf(const char *s, size_t max, bool allow_lf)
{
    if (s == NULL)
        return;
    size_t len = strlen(s);
    if (len > max)
        abort();
    for (size_t i = 0; i < len; i++) {
        if (((unsigned char)s[i] < 0x20 && !(allow_lf && s[i] == '\n')) || s[i] == 0x7f)
            abort();
    }
}

static void check_text(const char *s, size_t max)
{
    check_text_lf(s, max, false);
}

/* A normalised address must parse again to itself. */
static void check_address(const char *address, unsigned flags, struct mg_arena *arena)
{
    if (address[0] == '\0')
        return;
    struct mg_address again;
    const char *error;
    if (mg_address_parse(address, strlen(address), flags | MG_ADDRESS_ALLOW_NO_DOMAIN, arena,
                         &again, &error) != 0)
        abort();
    if (strcmp(mg_address_format(arena, &again), address) != 0)
        abort();
}

static void fuzz_command(const char *text, size_t len, unsigned opt, int target)
{
    struct smtp_params_options options = {
        .is_esmtp = (opt & 1) != 0,
        .allow_smtputf8 = (opt & 2) != 0,
        .allow_dsn = (opt & 4) != 0,
        .is_smtputf8 = (opt & 8) != 0,
    };
    struct mg_arena *arena = mg_arena_new(0);
    struct smtp_status error;
    unsigned flags = options.allow_smtputf8 ? MG_ADDRESS_ALLOW_UTF8 : 0;
    if (target == 0) {
        struct smtp_command cmd;
        if (smtp_command_split(text, len, &cmd, &error) == 0) {
            if (cmd.verb_len == 0 || cmd.verb + cmd.verb_len > text + len ||
                cmd.args + cmd.args_len > text + len)
                abort();
            struct smtp_mail_command mail;
            if (smtp_command_parse_mail(cmd.args, cmd.args_len, &options, arena, &mail,
                                        &error) == 0) {
                check_address(mail.address, flags, arena);
                check_text(mail.params.envid, SMTP_PARAMS_ENVID_MAX);
                check_text(mail.params.auth, SMTP_PARAMS_AUTH_MAX);
                if (mail.params.is_smtputf8 && !options.allow_smtputf8)
                    abort();
            } else if (error.code != 501 && error.code != 553 && error.code != 555) {
                abort();
            }
        } else if (error.code != 500) {
            abort();
        }
    } else if (target == 1) {
        struct smtp_rcpt_command rcpt;
        if (smtp_command_parse_rcpt(text, len, &options, arena, &rcpt, &error) == 0) {
            check_address(rcpt.address, flags, arena);
            check_text(rcpt.params.orcpt, SMTP_PARAMS_ORCPT_MAX + 8);
            if ((rcpt.params.notify & SMTP_DSN_NOTIFY_NEVER) &&
                rcpt.params.notify != SMTP_DSN_NOTIFY_NEVER)
                abort();
        } else if (error.code != 501 && error.code != 553 && error.code != 555) {
            abort();
        }
    } else {
        uint64_t bdat_size;
        bool is_last;
        (void)smtp_command_parse_bdat(text, len, &bdat_size, &is_last);
    }
    mg_arena_free(&arena);
}

static void fuzz_xtext(const char *text, size_t len, bool is_utf8_addr)
{
    struct mg_buf dec = MG_BUF_INIT, enc = MG_BUF_INIT, again = MG_BUF_INIT;
    int r = is_utf8_addr ? smtp_xtext_decode_utf8_addr(text, len, &dec)
                         : smtp_xtext_decode(text, len, &dec);
    if (r == 0) {
        check_text(mg_buf_cstr(&dec), SIZE_MAX);
        if (is_utf8_addr) {
            smtp_xtext_encode_utf8_addr(dec.data, dec.len, &enc);
            if (smtp_xtext_decode_utf8_addr(enc.data, enc.len, &again) != 0)
                abort();
        } else {
            smtp_xtext_encode(dec.data, dec.len, &enc);
            if (smtp_xtext_decode(enc.data, enc.len, &again) != 0)
                abort();
        }
        if (again.len != dec.len || (dec.len > 0 && memcmp(again.data, dec.data, dec.len) != 0))
            abort();
    } else if (dec.len != 0) {
        abort();
    }
    mg_buf_free(&dec);
    mg_buf_free(&enc);
    mg_buf_free(&again);
}

static void fuzz_replies(const char *text, size_t len, bool bytewise)
{
    struct smtp_reply_parser parser;
    smtp_reply_parser_init(&parser, 100);
    struct mg_buf in = MG_BUF_INIT;
    for (size_t off = 0; off < len;) {
        size_t n = bytewise ? 1 : len - off;
        mg_buf_append(&in, text + off, n);
        off += n;
        struct smtp_reply reply;
        const char *error;
        enum smtp_reply_status st;
        while ((st = smtp_reply_parser_next(&parser, &in, &reply, &error)) == SMTP_REPLY_DONE) {
            if (reply.code < 200 || reply.code > 599)
                abort();
            check_text_lf(reply.text, 100, true); /* lines joined by LF */
            if (reply.enhanced[0] != '\0' && !smtp_reply_enhanced_is_valid(reply.enhanced, reply.code))
                abort();
        }
        if (st == SMTP_REPLY_ERROR)
            break;
    }
    smtp_reply_parser_deinit(&parser);
    mg_buf_free(&in);
}

/* ---- a client session ---- */

struct client_fuzz {
    struct smtp_client *client;
    struct smtp_client_message msg;
    struct smtp_client_rcpt rcpts[3];
    size_t content_pos;
    bool tls_pending;
    bool sent;
    int sends;
    char prev;
};

static void c_write(void *ctx, const void *data, size_t len)
{
    struct client_fuzz *f = ctx;
    const char *p = data;
    /* Commands and content only: no bare CR or LF ever. */
    for (size_t i = 0; i < len; i++) {
        if (p[i] == '\n' && f->prev != '\r')
            abort();
        if (f->prev == '\r' && p[i] != '\n')
            abort();
        f->prev = p[i];
    }
}

static void c_start_tls(void *ctx)
{
    struct client_fuzz *f = ctx;
    f->tls_pending = true;
}

static void c_close(void *ctx)
{
    (void)ctx;
}

static const struct smtp_client_io c_io = { c_write, c_start_tls, c_close, NULL };

static long c_read(void *source, struct mg_buf *out, size_t max)
{
    struct client_fuzz *f = source;
    static const char content[] = "Subject: x\r\n\r\n.line\r\n..\r\n.\r\nend";
    size_t n = sizeof(content) - 1 - f->content_pos;
    if (n > 5)
        n = 5;
    mg_buf_append(out, content + f->content_pos, n);
    f->content_pos += n;
    return (long)n;
}

static void c_ready(struct smtp_client *client, const struct smtp_reply *failure,
                    const char *reason, void *ctx)
{
    struct client_fuzz *f = ctx;
    if (reason == NULL && !f->sent) {
        f->sent = true;
        smtp_client_send(client, &f->msg);
    }
}

static void c_done(struct smtp_client *client, struct smtp_client_message *msg,
                   const struct smtp_reply *mail_reply, void *ctx)
{
    struct client_fuzz *f = ctx;
    if (msg != &f->msg || !smtp_client_is_idle(client))
        abort();
    for (size_t i = 0; i < msg->rcpt_count; i++)
        (void)strlen(msg->rcpts[i].result.text);
    f->content_pos = 0;
    /* Again, on the same connection (a local failure answers inside
     * smtp_client_send, so bound the recursion). */
    if (++f->sends < 4)
        smtp_client_send(client, &f->msg);
}

static void c_failed(struct smtp_client *client, const char *reason, void *ctx)
{
    (void)strlen(reason);
}

static const struct smtp_client_callbacks c_cb = { c_ready, c_done, c_failed };

static void fuzz_client(const char *text, size_t len, unsigned opt)
{
    struct client_fuzz f = { 0 };
    struct smtp_client_settings set = {
        .protocol = (opt & 1) ? SMTP_PROTOCOL_LMTP : SMTP_PROTOCOL_SMTP,
        .helo_name = "client.fuzz",
        .use_starttls = (opt & 2) != 0,
        .is_tls = (opt & 4) != 0,
        .auth_user = (opt & 8) ? "alice" : NULL,
        .auth_password = "secret",
        .max_reply_length = 64,
    };
    static const char *const addrs[] = { "a@b.c", "d\xc3\xa9@e.f", "postmaster" };
    for (size_t i = 0; i < 3; i++) {
        f.rcpts[i].address = addrs[i];
        f.rcpts[i].notify = SMTP_DSN_NOTIFY_SUCCESS;
        f.rcpts[i].orcpt = i == 1 ? "rfc822;x+y@z" : NULL;
    }
    f.msg = (struct smtp_client_message){
        .mail_from = "s@t.u",
        .size = 100,
        .body = SMTP_BODY_8BITMIME,
        .ret = SMTP_DSN_RET_HDRS,
        .envid = "env id",
        .rcpts = f.rcpts,
        .rcpt_count = (opt & 16) ? 3 : 1,
        .read_content = c_read,
        .source = &f,
    };
    f.client = smtp_client_new(&set, &c_io, &f, &c_cb, &f);
    struct mg_buf in = MG_BUF_INIT;
    size_t piece = (opt & 32) ? 1 : len;
    for (size_t off = 0; off < len;) {
        size_t n = len - off < piece ? len - off : piece;
        mg_buf_append(&in, text + off, n);
        off += n;
        smtp_client_feed(f.client, &in);
        if (f.tls_pending) {
            f.tls_pending = false;
            smtp_client_tls_ready(f.client);
        }
    }
    smtp_client_connection_lost(f.client, "end of input");
    smtp_client_free(&f.client);
    mg_buf_free(&in);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    static bool is_init;
    if (!is_init) {
        mg_log_init("fuzz_smtp_command");
        mg_log_set_level(MG_LOG_FATAL);
        is_init = true;
    }
    int target = data[0] & 7;
    unsigned opt = data[0] >> 3;
    const char *text = (const char *)data + 1;
    size_t len = size - 1;
    switch (target) {
    case 0:
    case 1:
    case 2:
        fuzz_command(text, len, opt, target);
        break;
    case 3:
    case 4:
        fuzz_xtext(text, len, target == 4);
        break;
    case 5:
        fuzz_replies(text, len, opt & 1);
        break;
    default:
        fuzz_client(text, len, opt | (target == 7 ? 32 : 0));
        break;
    }
    return 0;
}
