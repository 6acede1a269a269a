/* SMTP command-line parsing: verbs, MAIL FROM / RCPT TO paths and ESMTP
 * parameters, BDAT arguments, xtext, reply formatting and reply parsing.
 * Every MAIL/RCPT case is also replayed through a server session fed one
 * byte at a time, which must give the same reply code. */
#include "testutil.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/arena.h"
#include "common/buf.h"
#include "common/log.h"
#include "lmtp/smtp_client.h"
#include "lmtp/smtp_command.h"
#include "lmtp/smtp_params.h"
#include "lmtp/smtp_reply.h"
#include "lmtp/smtp_server.h"
#include "lmtp/smtp_xtext.h"

/* Options: E esmtp, U SMTPUTF8 offered, D DSN offered, T tx is SMTPUTF8. */
#define O_E 1
#define O_U 2
#define O_D 4
#define O_T 8
#define O_EUD (O_E | O_U | O_D)

static struct smtp_params_options options_of(unsigned o)
{
    return (struct smtp_params_options){
        .is_esmtp = (o & O_E) != 0,
        .allow_smtputf8 = (o & O_U) != 0,
        .allow_dsn = (o & O_D) != 0,
        .is_smtputf8 = (o & O_T) != 0,
    };
}

static const struct {
    const char *args;
    unsigned options;
    unsigned code;          /* 0: accepted */
    const char *enhanced;
    const char *address;
    uint64_t size;
    int body;
    bool smtputf8;
    int ret;
    const char *envid;
    const char *auth;
} mail_cases[] = {
    { "FROM:<a@b.c>", O_EUD, 0, NULL, "a@b.c", 0, 0, false, 0, NULL, NULL },
    { "from:<A@B.C>", O_EUD, 0, NULL, "A@b.c", 0, 0, false, 0, NULL, NULL },
    { "FROM: <a@b.c>", O_EUD, 0, NULL, "a@b.c", 0, 0, false, 0, NULL, NULL },
    { "FROM:<>", O_EUD, 0, NULL, "", 0, 0, false, 0, NULL, NULL },
    { "FROM:a@b.c", O_EUD, 501, "5.5.4", NULL, 0, 0, false, 0, NULL, NULL },
    { "FROM <a@b.c>", O_EUD, 501, "5.5.4", NULL, 0, 0, false, 0, NULL, NULL },
    { "FROM:<a@b.c", O_EUD, 501, "5.1.7", NULL, 0, 0, false, 0, NULL, NULL },
    { "FROM:<a@@b.c>", O_EUD, 501, "5.1.7", NULL, 0, 0, false, 0, NULL, NULL },
    { "FROM:<a>", O_EUD, 501, "5.1.7", NULL, 0, 0, false, 0, NULL, NULL },
    { "FROM:<@x.y,@z.w:a@b.c>", O_EUD, 0, NULL, "a@b.c", 0, 0, false, 0, NULL, NULL },
    { "FROM:<@x.y:>", O_EUD, 501, "5.1.7", NULL, 0, 0, false, 0, NULL, NULL },
    { "FROM:<\"a b\"@c.d>", O_EUD, 0, NULL, "\"a b\"@c.d", 0, 0, false, 0, NULL, NULL },
    { "FROM:<\"ab\"@c.d>", O_EUD, 0, NULL, "ab@c.d", 0, 0, false, 0, NULL, NULL },
    { "FROM:<\"a>b\"@c.d> SIZE=3", O_EUD, 0, NULL, "\"a>b\"@c.d", 3, 0, false, 0, NULL, NULL },
    { "FROM:<a@[127.0.0.1]>", O_EUD, 0, NULL, "a@[127.0.0.1]", 0, 0, false, 0, NULL, NULL },
    { "FROM:<a@b.c> SIZE=1000", O_EUD, 0, NULL, "a@b.c", 1000, 0, false, 0, NULL, NULL },
    { "FROM:<a@b.c> size=0", O_EUD, 0, NULL, "a@b.c", 0, 0, false, 0, NULL, NULL },
    { "FROM:<a@b.c> SIZE=99999999999999999999", O_EUD, 0, NULL, "a@b.c", UINT64_MAX, 0, false, 0,
      NULL, NULL },
    { "FROM:<a@b.c> SIZE=123456789012345678901", O_EUD, 501, "5.5.4", NULL, 0, 0, false, 0, NULL,
      NULL },
    { "FROM:<a@b.c> SIZE=", O_EUD, 501, "5.5.4", NULL, 0, 0, false, 0, NULL, NULL },
    { "FROM:<a@b.c> SIZE", O_EUD, 501, "5.5.4", NULL, 0, 0, false, 0, NULL, NULL },
    { "FROM:<a@b.c> SIZE=1x", O_EUD, 501, "5.5.4", NULL, 0, 0, false, 0, NULL, NULL },
    { "FROM:<a@b.c> SIZE=-1", O_EUD, 501, "5.5.4", NULL, 0, 0, false, 0, NULL, NULL },
    { "FROM:<a@b.c> SIZE=1 SIZE=2", O_EUD, 501, "5.5.4", NULL, 0, 0, false, 0, NULL, NULL },
    { "FROM:<a@b.c> BODY=8BITMIME", O_EUD, 0, NULL, "a@b.c", 0, SMTP_BODY_8BITMIME, false, 0,
      NULL, NULL },
    { "FROM:<a@b.c> body=7bit", O_EUD, 0, NULL, "a@b.c", 0, SMTP_BODY_7BIT, false, 0, NULL, NULL },
    { "FROM:<a@b.c> BODY=BINARYMIME", O_EUD, 555, "5.5.4", NULL, 0, 0, false, 0, NULL, NULL },
    { "FROM:<a@b.c> BODY=9BIT", O_EUD, 501, "5.5.4", NULL, 0, 0, false, 0, NULL, NULL },
    { "FROM:<a@b.c> BODY=7BIT BODY=7BIT", O_EUD, 501, "5.5.4", NULL, 0, 0, false, 0, NULL, NULL },
    { "FROM:<j\xc3\xb6rg@b.c> SMTPUTF8", O_EUD, 0, NULL, "j\xc3\xb6rg@b.c", 0, 0, true, 0, NULL,
      NULL },
    { "FROM:<a@b\xc3\xa9.c> smtputf8", O_EUD, 0, NULL, "a@b\xc3\xa9.c", 0, 0, true, 0, NULL, NULL },
    { "FROM:<j\xc3\xb6rg@b.c>", O_EUD, 553, "5.6.7", NULL, 0, 0, false, 0, NULL, NULL },
    { "FROM:<j\xc3\xb6rg@b.c> SMTPUTF8", O_E | O_D, 501, "5.1.7", NULL, 0, 0, false, 0, NULL,
      NULL },
    { "FROM:<j\xc3rg@b.c> SMTPUTF8", O_EUD, 501, "5.1.7", NULL, 0, 0, false, 0, NULL, NULL },
    { "FROM:<a@b.c> SMTPUTF8", O_E | O_D, 555, "5.5.4", NULL, 0, 0, false, 0, NULL, NULL },
    { "FROM:<a@b.c> SMTPUTF8=yes", O_EUD, 501, "5.5.4", NULL, 0, 0, false, 0, NULL, NULL },
    { "FROM:<a@b.c> SMTPUTF8 SMTPUTF8", O_EUD, 501, "5.5.4", NULL, 0, 0, false, 0, NULL, NULL },
    { "FROM:<a@b.c> RET=HDRS ENVID=QQ+2Bx", O_EUD, 0, NULL, "a@b.c", 0, 0, false,
      SMTP_DSN_RET_HDRS, "QQ+x", NULL },
    { "FROM:<a@b.c> ret=full envid=a+3Db", O_EUD, 0, NULL, "a@b.c", 0, 0, false,
      SMTP_DSN_RET_FULL, "a=b", NULL },
    { "FROM:<a@b.c> RET=FULL", O_E | O_U, 555, "5.5.4", NULL, 0, 0, false, 0, NULL, NULL },
    { "FROM:<a@b.c> ENVID=x", O_E | O_U, 555, "5.5.4", NULL, 0, 0, false, 0, NULL, NULL },
    { "FROM:<a@b.c> RET=SOME", O_EUD, 501, "5.5.4", NULL, 0, 0, false, 0, NULL, NULL },
    { "FROM:<a@b.c> RET=FULL RET=HDRS", O_EUD, 501, "5.5.4", NULL, 0, 0, false, 0, NULL, NULL },
    { "FROM:<a@b.c> ENVID=a+2", O_EUD, 501, "5.5.4", NULL, 0, 0, false, 0, NULL, NULL },
    { "FROM:<a@b.c> ENVID=a+zz", O_EUD, 501, "5.5.4", NULL, 0, 0, false, 0, NULL, NULL },
    { "FROM:<a@b.c> ENVID=a+00b", O_EUD, 501, "5.5.4", NULL, 0, 0, false, 0, NULL, NULL },
    { "FROM:<a@b.c> ENVID=a+0Db", O_EUD, 501, "5.5.4", NULL, 0, 0, false, 0, NULL, NULL },
    { "FROM:<a@b.c> ENVID=x ENVID=y", O_EUD, 501, "5.5.4", NULL, 0, 0, false, 0, NULL, NULL },
    { "FROM:<a@b.c> ENVID=0123456789012345678901234567890123456789012345678901234567890123456789"
      "012345678901234567890123456789",
      O_EUD, 0, NULL, "a@b.c", 0, 0, false, 0,
      "0123456789012345678901234567890123456789012345678901234567890123456789"
      "012345678901234567890123456789", NULL },
    { "FROM:<a@b.c> ENVID=0123456789012345678901234567890123456789012345678901234567890123456789"
      "0123456789012345678901234567890",
      O_EUD, 501, "5.5.4", NULL, 0, 0, false, 0, NULL, NULL },
    { "FROM:<a@b.c> AUTH=<>", O_EUD, 0, NULL, "a@b.c", 0, 0, false, 0, NULL, "<>" },
    { "FROM:<a@b.c> AUTH=a+2Bb@c", O_EUD, 0, NULL, "a@b.c", 0, 0, false, 0, NULL, "a+b@c" },
    { "FROM:<a@b.c> AUTH=", O_EUD, 501, "5.5.4", NULL, 0, 0, false, 0, NULL, NULL },
    { "FROM:<a@b.c> X-FOO=bar", O_EUD, 555, "5.5.4", NULL, 0, 0, false, 0, NULL, NULL },
    { "FROM:<a@b.c> NOTIFY=NEVER", O_EUD, 555, "5.5.4", NULL, 0, 0, false, 0, NULL, NULL },
    { "FROM:<a@b.c>  SIZE=5", O_EUD, 0, NULL, "a@b.c", 5, 0, false, 0, NULL, NULL },
    { "FROM:<a@b.c>SIZE=5", O_EUD, 501, "5.5.4", NULL, 0, 0, false, 0, NULL, NULL },
    { "FROM:<a@b.c> =x", O_EUD, 501, "5.5.4", NULL, 0, 0, false, 0, NULL, NULL },
    { "FROM:<a@b.c> -X", O_EUD, 501, "5.5.4", NULL, 0, 0, false, 0, NULL, NULL },
    { "FROM:<a@b.c> SIZE=1=2", O_EUD, 501, "5.5.4", NULL, 0, 0, false, 0, NULL, NULL },
    { "FROM:<a@b.c> SIZE=5", O_D | O_U, 555, "5.5.4", NULL, 0, 0, false, 0, NULL, NULL },
    { "FROM:<a@b.c>", 0, 0, NULL, "a@b.c", 0, 0, false, 0, NULL, NULL },
};

static const struct {
    const char *args;
    unsigned options;
    unsigned code;
    const char *enhanced;
    const char *address;
    unsigned notify;
    const char *orcpt;
} rcpt_cases[] = {
    { "TO:<x@y.z>", O_EUD, 0, NULL, "x@y.z", 0, NULL },
    { "to:<X@Y.Z>", O_EUD, 0, NULL, "X@y.z", 0, NULL },
    { "TO: <x@y.z>", O_EUD, 0, NULL, "x@y.z", 0, NULL },
    { "TO:<postmaster>", O_EUD, 0, NULL, "postmaster", 0, NULL },
    { "TO:<PostMaster>", O_EUD, 0, NULL, "PostMaster", 0, NULL },
    { "TO:<postmaster@y.z>", O_EUD, 0, NULL, "postmaster@y.z", 0, NULL },
    { "TO:<bob>", O_EUD, 501, "5.1.3", NULL, 0, NULL },
    { "TO:<>", O_EUD, 501, "5.1.3", NULL, 0, NULL },
    { "TO:x@y.z", O_EUD, 501, "5.5.4", NULL, 0, NULL },
    { "TO x@y.z", O_EUD, 501, "5.5.4", NULL, 0, NULL },
    { "TO:<@a.b,@c.d:x@y.z>", O_EUD, 0, NULL, "x@y.z", 0, NULL },
    { "TO:<\"x y\"@y.z>", O_EUD, 0, NULL, "\"x y\"@y.z", 0, NULL },
    { "TO:<x@y.z> NOTIFY=SUCCESS,FAILURE", O_EUD, 0, NULL, "x@y.z",
      SMTP_DSN_NOTIFY_SUCCESS | SMTP_DSN_NOTIFY_FAILURE, NULL },
    { "TO:<x@y.z> NOTIFY=success,delay,failure", O_EUD, 0, NULL, "x@y.z",
      SMTP_DSN_NOTIFY_SUCCESS | SMTP_DSN_NOTIFY_FAILURE | SMTP_DSN_NOTIFY_DELAY, NULL },
    { "TO:<x@y.z> NOTIFY=NEVER", O_EUD, 0, NULL, "x@y.z", SMTP_DSN_NOTIFY_NEVER, NULL },
    { "TO:<x@y.z> NOTIFY=NEVER,SUCCESS", O_EUD, 501, "5.5.4", NULL, 0, NULL },
    { "TO:<x@y.z> NOTIFY=SUCCESS,SUCCESS", O_EUD, 501, "5.5.4", NULL, 0, NULL },
    { "TO:<x@y.z> NOTIFY=", O_EUD, 501, "5.5.4", NULL, 0, NULL },
    { "TO:<x@y.z> NOTIFY=SUCCESS,", O_EUD, 501, "5.5.4", NULL, 0, NULL },
    { "TO:<x@y.z> NOTIFY=,SUCCESS", O_EUD, 501, "5.5.4", NULL, 0, NULL },
    { "TO:<x@y.z> NOTIFY=SOMETIMES", O_EUD, 501, "5.5.4", NULL, 0, NULL },
    { "TO:<x@y.z> NOTIFY=DELAY NOTIFY=DELAY", O_EUD, 501, "5.5.4", NULL, 0, NULL },
    { "TO:<x@y.z> NOTIFY=SUCCESS", O_E | O_U, 555, "5.5.4", NULL, 0, NULL },
    { "TO:<x@y.z> ORCPT=rfc822;x+2By@y.z", O_EUD, 0, NULL, "x@y.z", 0, "rfc822;x+y@y.z" },
    { "TO:<x@y.z> ORCPT=RFC822;a+20b@c", O_EUD, 0, NULL, "x@y.z", 0, "rfc822;a b@c" },
    { "TO:<x@y.z> NOTIFY=FAILURE ORCPT=rfc822;q@r", O_EUD, 0, NULL, "x@y.z",
      SMTP_DSN_NOTIFY_FAILURE, "rfc822;q@r" },
    { "TO:<x@y.z> ORCPT=utf-8;j\\x{E9}r@y.z", O_EUD, 0, NULL, "x@y.z", 0,
      "utf-8;j\xc3\xa9r@y.z" },
    { "TO:<x@y.z> ORCPT=utf-8;j\xc3\xa9r@y.z", O_EUD | O_T, 0, NULL, "x@y.z", 0,
      "utf-8;j\xc3\xa9r@y.z" },
    { "TO:<x@y.z> ORCPT=utf-8;j\xc3\xa9r@y.z", O_EUD, 501, "5.5.4", NULL, 0, NULL },
    { "TO:<x@y.z> ORCPT=utf-8;j\\x{D800}r", O_EUD, 501, "5.5.4", NULL, 0, NULL },
    { "TO:<x@y.z> ORCPT=x400;foo", O_EUD, 501, "5.5.4", NULL, 0, NULL },
    { "TO:<x@y.z> ORCPT=rfc822;", O_EUD, 501, "5.5.4", NULL, 0, NULL },
    { "TO:<x@y.z> ORCPT=rfc822", O_EUD, 501, "5.5.4", NULL, 0, NULL },
    { "TO:<x@y.z> ORCPT=rfc822;a+0Ab", O_EUD, 501, "5.5.4", NULL, 0, NULL },
    { "TO:<x@y.z> ORCPT=rfc822;a ORCPT=rfc822;b", O_EUD, 501, "5.5.4", NULL, 0, NULL },
    { "TO:<x@y.z> ORCPT=rfc822;a", O_E, 555, "5.5.4", NULL, 0, NULL },
    { "TO:<x@y.z> SIZE=10", O_EUD, 555, "5.5.4", NULL, 0, NULL },
    { "TO:<\xc3\xbc@y.z>", O_EUD | O_T, 0, NULL, "\xc3\xbc@y.z", 0, NULL },
    { "TO:<\xc3\xbc@y.z>", O_EUD, 553, "5.6.7", NULL, 0, NULL },
    { "TO:<\xc3\xbc@y.z>", O_E | O_D, 501, "5.1.3", NULL, 0, NULL },
    { "TO:<x@y.z> NOTIFY=NEVER", O_U | O_D, 555, "5.5.4", NULL, 0, NULL },
};

static void test_smtp_command_mail_table(void **state)
{
    (void)state;
    struct mg_arena *arena = mg_arena_new(0);
    for (size_t i = 0; i < sizeof(mail_cases) / sizeof(mail_cases[0]); i++) {
        struct smtp_params_options o = options_of(mail_cases[i].options);
        struct smtp_mail_command mail;
        struct smtp_status error;
        const char *args = mail_cases[i].args;
        int r = smtp_command_parse_mail(args, strlen(args), &o, arena, &mail, &error);
        if (mail_cases[i].code == 0) {
            if (r != 0)
                fail_msg("mail case %zu (%s): %u %s", i, args, error.code, error.text);
            assert_string_equal(mail.address, mail_cases[i].address);
            assert_int_equal(mail.params.has_size, mail_cases[i].size != 0 ||
                                                       strstr(args, "SIZE") || strstr(args, "size"));
            assert_true(mail.params.size == mail_cases[i].size);
            assert_int_equal(mail.params.body, mail_cases[i].body);
            assert_int_equal(mail.params.is_smtputf8, mail_cases[i].smtputf8);
            assert_int_equal(mail.params.ret, mail_cases[i].ret);
            if (mail_cases[i].envid == NULL)
                assert_null(mail.params.envid);
            else
                assert_string_equal(mail.params.envid, mail_cases[i].envid);
            if (mail_cases[i].auth == NULL)
                assert_null(mail.params.auth);
            else
                assert_string_equal(mail.params.auth, mail_cases[i].auth);
        } else {
            if (r == 0)
                fail_msg("mail case %zu (%s) accepted", i, args);
            if (error.code != mail_cases[i].code)
                fail_msg("mail case %zu (%s): %u, expected %u", i, args, error.code,
                         mail_cases[i].code);
            assert_string_equal(error.enhanced, mail_cases[i].enhanced);
        }
        mg_arena_clear(arena);
    }
    mg_arena_free(&arena);
}

static void test_smtp_command_rcpt_table(void **state)
{
    (void)state;
    struct mg_arena *arena = mg_arena_new(0);
    for (size_t i = 0; i < sizeof(rcpt_cases) / sizeof(rcpt_cases[0]); i++) {
        struct smtp_params_options o = options_of(rcpt_cases[i].options);
        struct smtp_rcpt_command rcpt;
        struct smtp_status error;
        const char *args = rcpt_cases[i].args;
        int r = smtp_command_parse_rcpt(args, strlen(args), &o, arena, &rcpt, &error);
        if (rcpt_cases[i].code == 0) {
            if (r != 0)
                fail_msg("rcpt case %zu (%s): %u %s", i, args, error.code, error.text);
            assert_string_equal(rcpt.address, rcpt_cases[i].address);
            assert_int_equal(rcpt.params.notify, rcpt_cases[i].notify);
            if (rcpt_cases[i].orcpt == NULL)
                assert_null(rcpt.params.orcpt);
            else
                assert_string_equal(rcpt.params.orcpt, rcpt_cases[i].orcpt);
        } else {
            if (r == 0)
                fail_msg("rcpt case %zu (%s) accepted", i, args);
            if (error.code != rcpt_cases[i].code)
                fail_msg("rcpt case %zu (%s): %u, expected %u", i, args, error.code,
                         rcpt_cases[i].code);
            assert_string_equal(error.enhanced, rcpt_cases[i].enhanced);
        }
        mg_arena_clear(arena);
    }
    mg_arena_free(&arena);
}

/* ---- the same tables through a server session, one byte at a time ---- */

static void collect(void *ctx, const void *data, size_t len)
{
    mg_buf_append(ctx, data, len);
}

static void nothing(void *ctx)
{
    (void)ctx;
}

static const struct smtp_server_io collect_io = { collect, nothing, nothing, NULL };

/* Runs a session over input fed byte by byte (or all at once); returns
 * the code of the last reply. */
static unsigned session_last_code(const char *input, unsigned options, bool bytewise)
{
    struct smtp_server_settings set = {
        .protocol = SMTP_PROTOCOL_SMTP,
        .hostname = "mx.test",
        .offer_smtputf8 = (options & O_U) != 0,
        .offer_dsn = (options & O_D) != 0,
        .max_errors = 100,
    };
    struct smtp_server_hooks hooks = { 0 };
    struct mg_buf out = MG_BUF_INIT, in = MG_BUF_INIT;
    struct smtp_server *server = smtp_server_new(&set, &collect_io, &out, &hooks, NULL);
    size_t len = strlen(input);
    for (size_t i = 0; i < len;) {
        size_t n = bytewise ? 1 : len;
        mg_buf_append(&in, input + i, n);
        i += n;
        smtp_server_feed(server, &in);
    }
    smtp_server_free(&server);
    const char *text = mg_buf_cstr(&out);
    const char *last = text;
    for (const char *p = text; *p != '\0'; p++) {
        if (p[0] == '\n' && p[1] != '\0')
            last = p + 1;
    }
    unsigned code = (unsigned)atoi(last);
    mg_buf_free(&out);
    mg_buf_free(&in);
    return code;
}

static void test_smtp_command_tables_via_server(void **state)
{
    (void)state;
    char line[1024];
    for (int bytewise = 0; bytewise <= 1; bytewise++) {
        for (size_t i = 0; i < sizeof(mail_cases) / sizeof(mail_cases[0]); i++) {
            unsigned o = mail_cases[i].options;
            /* The per-session facts the table sets directly. */
            if (o & O_T)
                continue;
            snprintf(line, sizeof(line), "%s x.test\r\nMAIL %s\r\n", (o & O_E) ? "EHLO" : "HELO",
                     mail_cases[i].args);
            unsigned expect = mail_cases[i].code == 0 ? 250 : mail_cases[i].code;
            /* SIZE over no limit is fine for the session too. */
            unsigned got = session_last_code(line, o, bytewise);
            if (got != expect)
                fail_msg("mail case %zu via server (bytewise %d): %u, expected %u", i, bytewise, got,
                         expect);
        }
        for (size_t i = 0; i < sizeof(rcpt_cases) / sizeof(rcpt_cases[0]); i++) {
            unsigned o = rcpt_cases[i].options;
            snprintf(line, sizeof(line), "%s x.test\r\nMAIL FROM:<a@b.c>%s\r\nRCPT %s\r\n",
                     (o & O_E) ? "EHLO" : "HELO", (o & O_T) ? " SMTPUTF8" : "", rcpt_cases[i].args);
            unsigned expect = rcpt_cases[i].code == 0 ? 250 : rcpt_cases[i].code;
            unsigned got = session_last_code(line, o, bytewise);
            if (got != expect)
                fail_msg("rcpt case %zu via server (bytewise %d): %u, expected %u", i, bytewise, got,
                         expect);
        }
    }
}

/* ---- verbs ---- */

static void test_smtp_command_split(void **state)
{
    (void)state;
    static const struct {
        const char *line;
        size_t len;
        int ok;
        const char *verb;
        const char *args;
    } cases[] = {
        { "NOOP", 4, 1, "NOOP", "" },
        { "noop  ", 6, 1, "noop", "" },
        { "MAIL FROM:<a@b>", 15, 1, "MAIL", "FROM:<a@b>" },
        { "mail   FROM:<a@b>  ", 19, 1, "mail", "FROM:<a@b>" },
        { "", 0, 0, NULL, NULL },
        { "   ", 3, 0, NULL, NULL },
        { " NOOP", 5, 0, NULL, NULL },
        { "NO\0OP", 5, 0, NULL, NULL },
        { "NOOP\r", 5, 0, NULL, NULL },
        { "NOOP\tx", 6, 0, NULL, NULL },
        { "NOOP \x7f", 6, 0, NULL, NULL },
        { "X\xc3\xa9 y", 5, 1, "X\xc3\xa9", "y" },
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct smtp_command cmd;
        struct smtp_status error;
        int r = smtp_command_split(cases[i].line, cases[i].len, &cmd, &error);
        if (!cases[i].ok) {
            assert_int_equal(r, -1);
            assert_int_equal(error.code, 500);
            continue;
        }
        assert_int_equal(r, 0);
        assert_int_equal(cmd.verb_len, strlen(cases[i].verb));
        assert_memory_equal(cmd.verb, cases[i].verb, cmd.verb_len);
        assert_int_equal(cmd.args_len, strlen(cases[i].args));
        assert_memory_equal(cmd.args, cases[i].args, cmd.args_len);
    }
}

static void test_smtp_command_bdat(void **state)
{
    (void)state;
    static const struct {
        const char *args;
        int ok;
        uint64_t size;
        bool last;
    } cases[] = {
        { "0", 1, 0, false },
        { "10 LAST", 1, 10, true },
        { "10 last", 1, 10, true },
        { "10  LAST", 1, 10, true },
        { "18446744073709551615", 1, UINT64_MAX, false },
        { "00000000000000000001", 1, 1, false },
        { "18446744073709551616", 0, 0, false },
        { "000000000000000000001", 0, 0, false },
        { "", 0, 0, false },
        { "x", 0, 0, false },
        { "-1", 0, 0, false },
        { "+1", 0, 0, false },
        { "10LAST", 0, 0, false },
        { "10 LASTX", 0, 0, false },
        { "10 FIRST", 0, 0, false },
        { "10 LAST LAST", 0, 0, false },
        { "1 0", 0, 0, false },
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        uint64_t size = 99;
        bool last = false;
        int r = smtp_command_parse_bdat(cases[i].args, strlen(cases[i].args), &size, &last);
        if (!cases[i].ok) {
            if (r != -1)
                fail_msg("bdat case %zu (%s) accepted", i, cases[i].args);
            continue;
        }
        if (r != 0)
            fail_msg("bdat case %zu (%s) refused", i, cases[i].args);
        assert_true(size == cases[i].size);
        assert_int_equal(last, cases[i].last);
    }
}

/* ---- xtext ---- */

static void test_smtp_xtext(void **state)
{
    (void)state;
    static const struct {
        const char *in;
        int utf8_addr;
        const char *out; /* NULL: refused */
    } cases[] = {
        { "abc", 0, "abc" },
        { "+41+42c", 0, "ABc" },
        { "a+2bb", 0, "a+b" },
        { "", 0, "" },
        { "+4", 0, NULL },
        { "+", 0, NULL },
        { "+zz", 0, NULL },
        { "a=b", 0, NULL },
        { "a b", 0, NULL },
        { "+0A", 0, NULL },
        { "+00", 0, NULL },
        { "+7F", 0, NULL },
        { "+C3+A9", 0, "\xc3\xa9" },
        { "+C3", 0, NULL },
        { "\xc3\xa9", 0, NULL },
        { "j\\x{E9}r", 1, "j\xc3\xa9r" },
        { "\\x{1F600}", 1, "\xf0\x9f\x98\x80" },
        { "\\x{2B}", 1, "+" },
        { "\\x{}", 1, NULL },
        { "\\x{D800}", 1, NULL },
        { "\\x{1234567}", 1, NULL },
        { "\\x{110000}", 1, NULL },
        { "\\x{0}", 1, NULL },
        { "\\x41", 1, NULL },
        { "\\", 1, NULL },
        { "a+b", 1, NULL },
        { "\xc3\xa9", 1, "\xc3\xa9" },
        { "\xc3", 1, NULL },
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct mg_buf out = MG_BUF_INIT;
        mg_buf_append_str(&out, "keep");
        int r = cases[i].utf8_addr
                    ? smtp_xtext_decode_utf8_addr(cases[i].in, strlen(cases[i].in), &out)
                    : smtp_xtext_decode(cases[i].in, strlen(cases[i].in), &out);
        if (cases[i].out == NULL) {
            if (r != -1)
                fail_msg("xtext case %zu (%s) accepted", i, cases[i].in);
            assert_string_equal(mg_buf_cstr(&out), "keep");
        } else {
            if (r != 0)
                fail_msg("xtext case %zu (%s) refused", i, cases[i].in);
            assert_string_equal(mg_buf_cstr(&out) + 4, cases[i].out);
        }
        mg_buf_free(&out);
    }
    /* Round trips of every byte value that decoding accepts. */
    char all[256];
    size_t n = 0;
    for (int c = 0x20; c < 0x7f; c++)
        all[n++] = (char)c;
    struct mg_buf enc = MG_BUF_INIT, dec = MG_BUF_INIT;
    smtp_xtext_encode(all, n, &enc);
    assert_int_equal(smtp_xtext_decode(enc.data, enc.len, &dec), 0);
    assert_int_equal(dec.len, n);
    assert_memory_equal(dec.data, all, n);
    mg_buf_reset(&enc);
    mg_buf_reset(&dec);
    const char *u = "a+b=c\\d \xc3\xa9\xf0\x9f\x98\x80";
    smtp_xtext_encode_utf8_addr(u, strlen(u), &enc);
    assert_string_equal(mg_buf_cstr(&enc), "a\\x{2B}b\\x{3D}c\\x{5C}d\\x{20}\\x{E9}\\x{1F600}");
    assert_int_equal(smtp_xtext_decode_utf8_addr(enc.data, enc.len, &dec), 0);
    assert_string_equal(mg_buf_cstr(&dec), u);
    mg_buf_free(&enc);
    mg_buf_free(&dec);
}

/* ---- replies ---- */

static void test_smtp_reply_format(void **state)
{
    (void)state;
    struct mg_buf out = MG_BUF_INIT;
    smtp_reply_append(&out, 250, true, "2.1.0", "Ok");
    smtp_reply_append(&out, 250, false, NULL, "mx.test");
    smtp_reply_append(&out, 550, true, "5.1.1", "no\r\n250 such\x01user\xc3\xa9");
    smtp_reply_append(&out, 354, true, NULL, "");
    smtp_reply_append(&out, 99, true, NULL, "x");
    assert_string_equal(mg_buf_cstr(&out), "250 2.1.0 Ok\r\n"
                                           "250-mx.test\r\n"
                                           "550 5.1.1 no??250 such?user??\r\n"
                                           "354 \r\n"
                                           "451 x\r\n");
    mg_buf_reset(&out);
    char long_text[2000];
    memset(long_text, 'a', sizeof(long_text) - 1);
    long_text[sizeof(long_text) - 1] = '\0';
    smtp_reply_append(&out, 250, true, "2.0.0", long_text);
    assert_true(out.len <= 512);
    mg_buf_free(&out);

    assert_true(smtp_reply_enhanced_is_valid("2.1.0", 250));
    assert_true(smtp_reply_enhanced_is_valid("5.7.11", 538));
    assert_true(smtp_reply_enhanced_is_valid("4.123.456", 451));
    assert_false(smtp_reply_enhanced_is_valid("4.1234.5", 451));
    assert_false(smtp_reply_enhanced_is_valid("5.1.0", 250));
    assert_false(smtp_reply_enhanced_is_valid("3.0.0", 354));
    assert_false(smtp_reply_enhanced_is_valid("2.1", 250));
    assert_false(smtp_reply_enhanced_is_valid("2.1.0 ", 250));
    assert_false(smtp_reply_enhanced_is_valid("2..0", 250));
    assert_false(smtp_reply_enhanced_is_valid(NULL, 250));
}

static const struct {
    const char *input;
    int status;             /* 1 done, 0 need more, -1 error */
    unsigned code;
    const char *enhanced;
    const char *text;
} reply_cases[] = {
    { "250 Ok\r\n", 1, 250, "", "Ok" },
    { "250 2.1.0 Ok\r\n", 1, 250, "2.1.0", "Ok" },
    { "250\r\n", 1, 250, "", "" },
    { "250 \r\n", 1, 250, "", "" },
    { "250 Ok\n", 1, 250, "", "Ok" },
    { "250-mx.test\r\n250-PIPELINING\r\n250 SIZE 100\r\n", 1, 250, "",
      "mx.test\nPIPELINING\nSIZE 100" },
    { "550-5.1.1 no\r\n550-5.1.1 such\r\n550 5.1.1 user\r\n", 1, 550, "5.1.1", "no\nsuch\nuser" },
    { "550-5.1.1 no\r\n550 user\r\n", 1, 550, "5.1.1", "no\nuser" },
    { "250 5.1.1 mismatched class\r\n", 1, 250, "", "5.1.1 mismatched class" },
    { "220 mx ESMTP\x01\r\n", 1, 220, "", "mx ESMTP?" },
    { "250-a\r\n", 0, 0, NULL, NULL },
    { "250 Ok", 0, 0, NULL, NULL },
    { "250-a\r\n251 b\r\n", -1, 0, NULL, NULL },
    { "25 Ok\r\n", -1, 0, NULL, NULL },
    { "2500 Ok\r\n", -1, 0, NULL, NULL },
    { "abc\r\n", -1, 0, NULL, NULL },
    { "150 Ok\r\n", -1, 0, NULL, NULL },
    { "650 Ok\r\n", -1, 0, NULL, NULL },
    { "\r\n", -1, 0, NULL, NULL },
    { "250_Ok\r\n", -1, 0, NULL, NULL },
};

static void test_smtp_reply_parser_table(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof(reply_cases) / sizeof(reply_cases[0]); i++) {
        for (int bytewise = 0; bytewise <= 1; bytewise++) {
            struct smtp_reply_parser parser;
            smtp_reply_parser_init(&parser, 0);
            struct mg_buf in = MG_BUF_INIT;
            const char *input = reply_cases[i].input;
            size_t len = strlen(input);
            int status = 0;
            struct smtp_reply reply;
            const char *error = NULL;
            for (size_t off = 0; off < len && status == 0;) {
                size_t n = bytewise ? 1 : len;
                mg_buf_append(&in, input + off, n);
                off += n;
                enum smtp_reply_status st = smtp_reply_parser_next(&parser, &in, &reply, &error);
                status = st == SMTP_REPLY_DONE ? 1 : st == SMTP_REPLY_ERROR ? -1 : 0;
            }
            if (status != reply_cases[i].status)
                fail_msg("reply case %zu bytewise %d: status %d", i, bytewise, status);
            if (status == 1) {
                assert_int_equal(reply.code, reply_cases[i].code);
                assert_string_equal(reply.enhanced, reply_cases[i].enhanced);
                assert_string_equal(reply.text, reply_cases[i].text);
            }
            smtp_reply_parser_deinit(&parser);
            mg_buf_free(&in);
        }
    }
}

static void test_smtp_reply_parser_limits(void **state)
{
    (void)state;
    struct smtp_reply_parser parser;
    struct smtp_reply reply;
    const char *error = NULL;
    struct mg_buf in = MG_BUF_INIT;

    /* A line over 4 KiB. */
    smtp_reply_parser_init(&parser, 0);
    mg_buf_append_str(&in, "250 ");
    for (int i = 0; i < 5000; i++)
        mg_buf_append_byte(&in, 'x');
    assert_int_equal(smtp_reply_parser_next(&parser, &in, &reply, &error), SMTP_REPLY_ERROR);
    assert_string_equal(error, "reply line too long");
    smtp_reply_parser_deinit(&parser);
    mg_buf_reset(&in);

    /* 101 lines. */
    smtp_reply_parser_init(&parser, 0);
    for (int i = 0; i < 101; i++)
        mg_buf_append_str(&in, i < 100 ? "250-x\r\n" : "250 x\r\n");
    assert_int_equal(smtp_reply_parser_next(&parser, &in, &reply, &error), SMTP_REPLY_ERROR);
    smtp_reply_parser_deinit(&parser);
    mg_buf_reset(&in);

    /* 100 lines are fine; text beyond max_text is dropped. */
    smtp_reply_parser_init(&parser, 20);
    for (int i = 0; i < 100; i++)
        mg_buf_append_str(&in, i < 99 ? "250-abcdef\r\n" : "250 abcdef\r\n");
    mg_buf_append_str(&in, "354 go\r\n");
    assert_int_equal(smtp_reply_parser_next(&parser, &in, &reply, &error), SMTP_REPLY_DONE);
    assert_int_equal(strlen(reply.text), 20);
    /* The next reply starts afresh. */
    assert_int_equal(smtp_reply_parser_next(&parser, &in, &reply, &error), SMTP_REPLY_DONE);
    assert_int_equal(reply.code, 354);
    assert_string_equal(reply.text, "go");
    assert_int_equal(in.len, 0);
    smtp_reply_parser_deinit(&parser);
    mg_buf_free(&in);
}

int main(void)
{
    mg_log_init("test_smtp_command");
    mg_log_set_level(MG_LOG_ERROR);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_smtp_command_mail_table),
        cmocka_unit_test(test_smtp_command_rcpt_table),
        cmocka_unit_test(test_smtp_command_tables_via_server),
        cmocka_unit_test(test_smtp_command_split),
        cmocka_unit_test(test_smtp_command_bdat),
        cmocka_unit_test(test_smtp_xtext),
        cmocka_unit_test(test_smtp_reply_format),
        cmocka_unit_test(test_smtp_reply_parser_table),
        cmocka_unit_test(test_smtp_reply_parser_limits),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
