/* Decoding for SEARCH and logs: transfer encodings, charsets, RFC 2047
 * words, decoded text of parts, the case-insensitive matcher, dates,
 * addresses, and the IMAP string writer. Table-driven. */
#include "testutil.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/arena.h"
#include "common/buf.h"
#include "common/utf8.h"
#include "mda/mime/imap_quote.h"
#include "mda/mime/mime_address.h"
#include "mda/mime/mime_charset.h"
#include "mda/mime/mime_date.h"
#include "mda/mime/mime_encword.h"
#include "mda/mime/mime_parser.h"
#include "mda/mime/mime_search.h"
#include "mda/mime/mime_text.h"
#include "mda/mime/mime_transfer.h"

struct decode_case {
    const char *in;
    const char *want;
};

#define N(a) (sizeof(a) / sizeof((a)[0]))

static void check_out(const char *what, const char *in, const struct mg_buf *out,
                      const char *want)
{
    if (out->len != strlen(want) || memcmp(out->data != NULL ? out->data : "", want, out->len) != 0)
        fail_msg("%s(\"%s\"):\n got \"%.*s\"\nwant \"%s\"", what, in, (int)out->len,
                 out->data != NULL ? out->data : "", want);
}

static void test_base64(void **state)
{
    (void)state;
    static const struct decode_case cases[] = {
        { "aGVsbG8gd29ybGQ=", "hello world" },
        { "aGVs\r\nbG8g\nd29y bGQ=\r\n", "hello world" },
        { "aGVsbG8*gd29y!!bGQ", "hello world" },  /* garbage skipped, no padding */
        { "YQ==YQ==", "aa" },                        /* padding per chunk */
        { "", "" },
        { "=", "" },
        { "Y", "" },                                 /* 6 bits: no byte */
        { "YW", "a" },
    };
    for (size_t i = 0; i < N(cases); i++) {
        struct mg_buf out = MG_BUF_INIT;
        mime_transfer_base64_decode(cases[i].in, strlen(cases[i].in), &out);
        check_out("base64", cases[i].in, &out, cases[i].want);
        mg_buf_free(&out);
    }
}

static void test_quoted_printable(void **state)
{
    (void)state;
    static const struct decode_case cases[] = {
        { "caf=C3=A9", "caf\xc3\xa9" },
        { "caf=c3=a9", "caf\xc3\xa9" },
        { "soft=\r\nbreak", "softbreak" },
        { "soft=\nbreak", "softbreak" },
        { "soft= \t\r\nbreak", "softbreak" },        /* padding after '=' */
        { "trailing   \r\nspace\t\n", "trailing\r\nspace\n" },
        { "bad=ZZescape", "bad=ZZescape" },
        { "bad=4", "bad=4" },
        { "end=", "end" },
        { "a==41", "a=A" },
        { "line1\r\nline2", "line1\r\nline2" },
    };
    for (size_t i = 0; i < N(cases); i++) {
        struct mg_buf out = MG_BUF_INIT;
        mime_transfer_qp_decode(cases[i].in, strlen(cases[i].in), &out);
        check_out("qp", cases[i].in, &out, cases[i].want);
        mg_buf_free(&out);
    }
    assert_int_equal(mime_transfer_cte_from_name("Quoted-Printable", 16), MIME_CTE_QUOTED_PRINTABLE);
    assert_int_equal(mime_transfer_cte_from_name("BASE64", 6), MIME_CTE_BASE64);
    assert_int_equal(mime_transfer_cte_from_name("x-uuencode", 10), MIME_CTE_UNKNOWN);
}

static void test_charset(void **state)
{
    (void)state;
    static const struct {
        const char *charset;
        const char *in;
        const char *want;
        bool known;
    } cases[] = {
        { "utf-8", "caf\xc3\xa9", "caf\xc3\xa9", true },
        { "UTF-8", "bad\xff\xfe", "bad\xef\xbf\xbd\xef\xbf\xbd", true },
        { "us-ascii", "caf\xc3\xa9", "caf\xc3\xa9", true },   /* mislabelled UTF-8 */
        { "iso-8859-1", "caf\xe9", "caf\xc3\xa9", true },
        { "ISO-8859-2", "\xb1\xe6", "\xc4\x85\xc4\x87", true },  /* ąć */
        { "windows-1252", "\x80\x93", "\xe2\x82\xac\xe2\x80\x9c", true },
        { "koi8-r", "\xf0\xd2\xc9\xd7\xc5\xd4", "\xd0\x9f\xd1\x80\xd0\xb8\xd0\xb2\xd0\xb5\xd1\x82", true },
        { "ISO-2022-JP", "\x1b$B$3$s\x1b(B", "\xe3\x81\x93\xe3\x82\x93", true },
        { "Shift_JIS", "\x82\xa0", "\xe3\x81\x82", true },
        { "euc-kr", "\xb0\xa1", "\xea\xb0\x80", true },
        { "gb2312", "\xc4\xe3", "\xe4\xbd\xa0", true },
        { "utf-16le", "a\0", "a", true },
        { "utf-16le", "a\0b", "a\xef\xbf\xbd", true },         /* cut sequence */
        { "x-no-such-charset", "caf\xc3\xa9\xff", "caf\xc3\xa9\xef\xbf\xbd", false },
        { "utf-8//TRANSLIT", "x\xff", "x\xef\xbf\xbd", false }, /* no iconv options */
        { "", "plain", "plain", true },
    };
    for (size_t i = 0; i < N(cases); i++) {
        struct mg_buf out = MG_BUF_INIT;
        size_t len = strlen(cases[i].in);
        if (strcmp(cases[i].charset, "utf-16le") == 0)
            len = i == 11 ? 2 : 3;
        bool known = mime_charset_to_utf8(cases[i].charset, cases[i].in, len, &out);
        check_out(cases[i].charset, cases[i].in, &out, cases[i].want);
        assert_int_equal(known, cases[i].known);
        assert_true(mg_utf8_is_valid(out.data, out.len));
        mg_buf_free(&out);
    }
}

static void test_encoded_words(void **state)
{
    (void)state;
    static const struct decode_case cases[] = {
        { "=?utf-8?q?caf=C3=A9_au_lait?=", "caf\xc3\xa9 au lait" },
        { "=?ISO-8859-1?B?Y2Fm6Q==?=", "caf\xc3\xa9" },
        { "=?utf-8?b?w6k=?= =?utf-8?b?w6k=?=", "\xc3\xa9\xc3\xa9" },
        /* a character split over two words */
        { "=?utf-8?b?ww==?= =?utf-8?b?qQ==?=", "\xc3\xa9" },
        { "=?utf-8?q?=C3?=\r\n =?utf-8?q?=A9?=", "\xc3\xa9" },
        /* the space between a word and text stays */
        { "Re: =?utf-8?q?x?= y", "Re: x y" },
        { "Re:=?utf-8?q?x?=", "Re:x" },
        /* language suffix (RFC 2231) */
        { "=?US-ASCII*EN?Q?Keith_Moore?=", "Keith Moore" },
        /* invalid words stay as they are */
        { "=?utf-8?x?abc?=", "=?utf-8?x?abc?=" },
        { "=?utf-8?q?unterminated", "=?utf-8?q?unterminated" },
        { "=??q?abc?=", "=??q?abc?=" },
        { "a =? b", "a =? b" },
        /* folding */
        { "one\r\n two\r\n\tthree", "one two three" },
        { "  lead and trail  ", "lead and trail" },
        { "double  space", "double  space" },
        /* unknown charset: read as UTF-8 */
        { "=?x-unknown?q?caf=C3=A9?=", "caf\xc3\xa9" },
        /* raw 8-bit: UTF-8, invalid bytes replaced */
        { "caf\xc3\xa9 \xff", "caf\xc3\xa9 \xef\xbf\xbd" },
        { "=?iso-2022-jp?b?GyRCJDMkcxsoQg==?=", "\xe3\x81\x93\xe3\x82\x93" },
    };
    for (size_t i = 0; i < N(cases); i++) {
        struct mg_buf out = MG_BUF_INIT;
        mime_encword_decode(cases[i].in, strlen(cases[i].in), &out);
        check_out("encword", cases[i].in, &out, cases[i].want);
        mg_buf_free(&out);
    }
}

/* Pathological input stays linear: many "=?" starts. */
static void test_encoded_words_linear(void **state)
{
    (void)state;
    struct mg_buf in = MG_BUF_INIT, out = MG_BUF_INIT;
    for (int i = 0; i < 200000; i++)
        mg_buf_append_str(&in, i % 2 ? "=?" : "=?a?q?");
    clock_t start = clock();
    mime_encword_decode(in.data, in.len, &out);
    double secs = (double)(clock() - start) / CLOCKS_PER_SEC;
    assert_true(secs < 2.0);
    assert_true(mg_utf8_is_valid(out.data, out.len));
    mg_buf_free(&in);
    mg_buf_free(&out);
}

static void test_search_fold(void **state)
{
    (void)state;
    static const struct {
        const char *key;
        const char *text;
        bool match;
    } cases[] = {
        { "hello", "Say HELLO world", true },
        { "", "anything", true },
        { "caf\xc3\x89", "CAF\xc3\xa9 noir", true },                 /* É é */
        { "\xc3\x9f", "STRASSE", false },                           /* no full folding */
        { "stra\xc3\x9f" "e", "STRA\xe1\xba\x9e" "E", true },         /* capital sharp s */
        { "\xc5\x81\xc3\xb3" "d\xc5\xba", "\xc5\x82\xc3\x93" "D\xc5\xb9", true }, /* Łódź */
        { "\xce\xa3\xce\x9f\xce\xa6\xce\x9f\xce\xa3", "\xcf\x83\xce\xbf\xcf\x86\xce\xbf\xcf\x82", true }, /* ΣΟΦΟΣ σοφος */
        { "\xd0\x9c\xd0\x9e\xd0\xa1\xd0\x9a\xd0\x92\xd0\x90", "\xd0\xbc\xd0\xbe\xd1\x81\xd0\xba\xd0\xb2\xd0\xb0", true }, /* МОСКВА */
        { "\xd0\x81", "\xd1\x91", true },                           /* Ё ё */
        { "\xd4\xb1", "\xd5\xa1", true },                           /* Armenian */
        { "\xef\xbc\xa1", "\xef\xbd\x81", true },                   /* fullwidth A a */
        { "\xe1\xba\xa0", "\xe1\xba\xa1", true },                   /* Vietnamese Ạ ạ */
        { "abc", "ab", false },
        { "needle", "hay\xff" "stack NEEDLE", true },              /* invalid UTF-8 around */
    };
    for (size_t i = 0; i < N(cases); i++) {
        struct mime_search s;
        mime_search_init(&s, cases[i].key, strlen(cases[i].key));
        bool m = mime_search_match(&s, cases[i].text, strlen(cases[i].text));
        if (m != cases[i].match)
            fail_msg("search \"%s\" in \"%s\": %d", cases[i].key, cases[i].text, m);
        mime_search_deinit(&s);
    }
    assert_int_equal(mime_search_fold_char(0x178), 0xff);
    assert_int_equal(mime_search_fold_char(0x130), 0x130);
    assert_int_equal(mime_search_fold_char(0x4e00), 0x4e00);
}

static void test_dates(void **state)
{
    (void)state;
    static const struct {
        const char *in;
        bool valid;
        long long t;
        int zone;
    } cases[] = {
        { "Thu, 01 Jan 1970 00:00:00 +0000", true, 0, 0 },
        { "Sat, 24 Mar 2017 23:00:00 +0200", true, 1490389200, 120 },
        { "24 Mar 2017 23:00 +0200", true, 1490389200, 120 },
        { "Sat,24 Mar 2017 23:00:00 +0200 (CEST)", true, 1490389200, 120 },
        { "Sat, 24 MARCH 2017 23:00:00 +0200", true, 1490389200, 120 },
        { "Sat, 24 Mar 17 23:00:00 +0200", true, 1490389200, 120 },
        { "Sat, 24 Mar 117 23:00:00 +0200", true, 1490389200, 120 },
        { "24-Mar-2017 23:00:00 +0200", true, 1490389200, 120 },
        { "Sat, 24 Mar 2017 21:00:00 GMT", true, 1490389200, 0 },
        { "Sat, 24 Mar 2017 16:00:00 EST", true, 1490389200, -300 },
        { "Sat, 24 Mar 2017 21:00:00", true, 1490389200, 0 },
        { "Sat, 24 Mar 2017 21.00.00 Z", true, 1490389200, 0 },
        { "Wed, 31 Dec 1969 23:59:59 +0000", true, -1, 0 },
        { "Mon, 1 Jan 2001 00:00:00 -0530", true, 978327000, -330 },
        { "", false, 0, 0 },
        { "garbage", false, 0, 0 },
        { "Sat, 24 Foo 2017 23:00:00 +0200", false, 0, 0 },
        { "Sat, 32 Mar 2017 23:00:00 +0200", false, 0, 0 },
        { "Sat, 24 Mar 2017 25:00:00 +0200", false, 0, 0 },
        { "Sat, 24 Mar 2017 (unterminated 23:00:00 +0200", false, 0, 0 },
        { "Sat, 24 Mar 2017", false, 0, 0 },
    };
    for (size_t i = 0; i < N(cases); i++) {
        time_t t;
        int zone = 12345;
        int ret = mime_date_parse(cases[i].in, strlen(cases[i].in), &t, &zone);
        if (!cases[i].valid) {
            if (ret != -1)
                fail_msg("date \"%s\" accepted", cases[i].in);
            continue;
        }
        if (ret != 0 || (long long)t != cases[i].t || zone != cases[i].zone)
            fail_msg("date \"%s\": ret %d t %lld zone %d", cases[i].in, ret, (long long)t, zone);
    }
}

static void text_collect(struct mg_buf *all, const char *msg)
{
    struct mg_arena *arena = mg_arena_new(0);
    struct mime_part *root = mime_parser_parse(arena, msg, strlen(msg));
    mg_buf_reset(all);
    for (const struct mime_part *p = root; p != NULL; p = mime_part_next(p)) {
        if (p->children == NULL && mime_part_is_text(p)) {
            mime_text_decode_part(p, msg, all);
            mg_buf_append_byte(all, '|');
        }
    }
    mg_arena_free(&arena);
}

struct foreach_ctx {
    struct mg_buf buf;
    unsigned int calls;
    unsigned int stop_after;
};

static bool foreach_cb(void *context, const struct mime_part *part, const char *text, size_t len)
{
    struct foreach_ctx *ctx = context;
    (void)part;
    mg_buf_append(&ctx->buf, text, len);
    mg_buf_append_byte(&ctx->buf, '|');
    return ++ctx->calls < ctx->stop_after;
}

static void test_part_text(void **state)
{
    (void)state;
    static const char msg[] =
        "Content-Type: multipart/mixed; boundary=b\r\n\r\n"
        "--b\r\nContent-Type: text/plain; charset=iso-8859-1\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n"
        "caf=E9 =\r\nsoft\r\n"
        "--b\r\nContent-Type: text/html; charset=utf-8\r\nContent-Transfer-Encoding: base64\r\n\r\n"
        "PGI+w6k8L2I+\r\n"
        "--b\r\nContent-Type: image/png\r\nContent-Transfer-Encoding: base64\r\n\r\niVBORw0K\r\n"
        "--b\r\nContent-Type: message/rfc822\r\n\r\nSubject: inner\r\n\r\ninner text\r\n"
        "--b--\r\n";
    struct mg_buf all = MG_BUF_INIT;
    text_collect(&all, msg);
    assert_string_equal(mg_buf_cstr(&all), "caf\xc3\xa9 soft|<b>\xc3\xa9</b>|inner text|");

    struct mg_arena *arena = mg_arena_new(0);
    struct mime_part *root = mime_parser_parse(arena, msg, strlen(msg));
    struct foreach_ctx ctx = { MG_BUF_INIT, 0, 100 };
    assert_true(mime_text_foreach(root, msg, foreach_cb, &ctx));
    assert_string_equal(mg_buf_cstr(&ctx.buf), mg_buf_cstr(&all));
    mg_buf_free(&ctx.buf);
    struct foreach_ctx stop = { MG_BUF_INIT, 0, 1 };
    assert_false(mime_text_foreach(root, msg, foreach_cb, &stop));
    assert_int_equal(stop.calls, 1);
    mg_buf_free(&stop.buf);
    mg_arena_free(&arena);
    mg_buf_free(&all);
}

/* Addresses as ENVELOPE needs them (Dovecot's rules). */
static void test_addresses(void **state)
{
    (void)state;
    static const struct decode_case cases[] = {
        { "user@domain", "(NIL,NIL,user,domain)" },
        { "Real Name <user@domain>", "(Real Name,NIL,user,domain)" },
        { "\"Quoted \\\"Name\\\"\" <user@domain>", "(Quoted \"Name\",NIL,user,domain)" },
        { "user@domain (Comment Name)", "(Comment Name,NIL,user,domain)" },
        { "<@r1,@r2:user@domain>", "(NIL,@r1,@r2,user,domain)" },
        { "g: a@b, c@d;, e@f", "(NIL,NIL,g,NIL)(NIL,NIL,a,b)(NIL,NIL,c,d)(NIL,NIL,NIL,NIL)(NIL,NIL,e,f)" },
        { "undisclosed-recipients:;", "(NIL,NIL,undisclosed-recipients,NIL)(NIL,NIL,NIL,NIL)" },
        { "g1: a@b; g2: c@d;", "(NIL,NIL,g1,NIL)(NIL,NIL,a,b)(NIL,NIL,NIL,NIL)(NIL,NIL,g2,NIL)(NIL,NIL,c,d)(NIL,NIL,NIL,NIL)" },
        { "bareword", "(NIL,NIL,bareword,MISSING_DOMAIN)" },
        { "Some Name", "(Some Name,NIL,MISSING_MAILBOX,MISSING_DOMAIN)" },
        { "Name <user>", "(Name,NIL,user,MISSING_DOMAIN)" },
        { "Name <user@domain", "(Name,NIL,user,SYNTAX_ERROR)" },
        { "a@b, , c@d", "(NIL,NIL,a,b)(NIL,NIL,MISSING_MAILBOX,MISSING_DOMAIN)(NIL,NIL,c,d)" },
        { "a@b c@d", "(NIL,NIL,a,b)" },
        { "=?utf-8?q?Caf=C3=A9?= <a@b>", "(=?utf-8?q?Caf=C3=A9?=,NIL,a,b)" },
        { "  (only a comment)  ", "" },
        { "", "" },
        { "a@[192.0.2.1]", "(NIL,NIL,a,[192.0.2.1])" },
        { "a@[192.0.2.1\r\n ]", "(NIL,NIL,a,[192.0.2.1 ])" },     /* folding removed */
        { "first.last@sub . example . com", "(NIL,NIL,first.last,sub.example.com)" },
    };
    for (size_t i = 0; i < N(cases); i++) {
        struct mg_arena *arena = mg_arena_new(0);
        struct mg_buf out = MG_BUF_INIT;
        for (const struct mime_address *a =
                 mime_address_parse(arena, cases[i].in, strlen(cases[i].in),
                                    MIME_ADDRESS_FLAG_FILL_MISSING);
             a != NULL; a = a->next) {
            mg_buf_printf(&out, "(%s,%s,%s,%s)", a->name ? a->name : "NIL",
                          a->route ? a->route : "NIL", a->mailbox ? a->mailbox : "NIL",
                          a->domain ? a->domain : "NIL");
        }
        check_out("address", cases[i].in, &out, cases[i].want);
        mg_buf_free(&out);
        mg_arena_free(&arena);
    }
}

static void test_imap_quote(void **state)
{
    (void)state;
    struct mg_buf out = MG_BUF_INIT;

    imap_quote_append_string(&out, "plain text", 10);
    imap_quote_append_string(&out, "a\"b\\c", 5);
    imap_quote_append_string(&out, "\"\"\"\"\"", 5);
    imap_quote_append_string(&out, "caf\xc3\xa9", 5);
    imap_quote_append_string(&out, "a\r\nb", 4);
    imap_quote_append_string(&out, "n\0l", 3);
    imap_quote_append_nstring(&out, NULL, 0);
    imap_quote_append_string(&out, "", 0);
    assert_string_equal(mg_buf_cstr(&out),
                        "\"plain text\"\"a\\\"b\\\\c\"{5}\r\n\"\"\"\"\"{5}\r\ncaf\xc3\xa9"
                        "{4}\r\na\r\nb{3}\r\nn\x80lNIL\"\"");

    mg_buf_reset(&out);
    imap_quote_append_astring(&out, "INBOX", 5);
    mg_buf_append_byte(&out, ' ');
    imap_quote_append_astring(&out, "NIL", 3);
    mg_buf_append_byte(&out, ' ');
    imap_quote_append_astring(&out, "a b", 3);
    mg_buf_append_byte(&out, ' ');
    imap_quote_append_astring(&out, "", 0);
    mg_buf_append_byte(&out, ' ');
    imap_quote_append_astring(&out, "x]", 2);
    assert_string_equal(mg_buf_cstr(&out), "INBOX \"NIL\" \"a b\" \"\" x]");

    static const struct decode_case humans[] = {
        { "simple subject", "\"simple subject\"" },
        { "  lead", "{4}\r\nlead" },
        { "trail ", "{5}\r\ntrail" },
        { "multi   space\ttab", "{15}\r\nmulti space tab" },
        { "fold\r\n here", "{9}\r\nfold here" },
        { "quote\"d", "{7}\r\nquote\"d" },
        { "   ", "\"\"" },
        { "", "\"\"" },
        { "8bit \xc3\xa9", "{7}\r\n8bit \xc3\xa9" },
    };
    for (size_t i = 0; i < N(humans); i++) {
        mg_buf_reset(&out);
        imap_quote_append_string_for_humans(&out, humans[i].in, strlen(humans[i].in));
        check_out("for_humans", humans[i].in, &out, humans[i].want);
    }

    mg_buf_reset(&out);
    imap_quote_append_nstring_nolf(&out, "a\r\n b\nc");
    assert_string_equal(mg_buf_cstr(&out), "\"a b c\"");
    mg_buf_free(&out);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_base64),
        cmocka_unit_test(test_quoted_printable),
        cmocka_unit_test(test_charset),
        cmocka_unit_test(test_encoded_words),
        cmocka_unit_test(test_encoded_words_linear),
        cmocka_unit_test(test_search_fold),
        cmocka_unit_test(test_dates),
        cmocka_unit_test(test_part_text),
        cmocka_unit_test(test_addresses),
        cmocka_unit_test(test_imap_quote),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
