#include "testutil.h"

#include <string.h>

#include "common/address.h"
#include "common/arena.h"
#include "common/ascii.h"
#include "common/utf8.h"

#define U MG_ADDRESS_ALLOW_UTF8
#define N MG_ADDRESS_ALLOW_NULL
#define D MG_ADDRESS_ALLOW_NO_DOMAIN

static const struct {
    const char *input;
    unsigned flags;
    const char *local;  /* NULL: must fail */
    const char *domain;
    const char *key;
} mailbox_cases[] = {
    { "user@example.com", 0, "user", "example.com", "user@example.com" },
    { "User.Name@Example.COM", 0, "User.Name", "example.com", "user.name@example.com" },
    { "a+tag@x.org", 0, "a+tag", "x.org", "a+tag@x.org" },
    { "!#$%&'*+-/=?^_`{|}~@x.org", 0, "!#$%&'*+-/=?^_`{|}~", "x.org", NULL },
    { "\"abc\"@x.org", 0, "abc", "x.org", "abc@x.org" },
    { "\"a b\"@x.org", 0, "\"a b\"", "x.org", "\"a b\"@x.org" },
    { "\"a\\\"b\"@x.org", 0, "\"a\\\"b\"", "x.org", NULL },
    { "\"\"@x.org", 0, "\"\"", "x.org", NULL },
    { "u@[127.0.0.1]", 0, "u", "[127.0.0.1]", NULL },
    { "u@[IPv6:::1]", 0, "u", "[ipv6:::1]", NULL },
    { "u@a-b.c-d.e", 0, "u", "a-b.c-d.e", NULL },
    { "u@1.2.3.4.example", 0, "u", "1.2.3.4.example", NULL },
    { "\xc3\xa9l\xc3\xa8ve@\xc3\xa9" "cole.example", U, "\xc3\xa9l\xc3\xa8ve", "\xc3\xa9" "cole.example", NULL },
    { "", N, "", "", NULL },
    { "postmaster", D, "postmaster", "", NULL },
    /* Failures. */
    { "", 0, NULL, NULL, NULL },
    { "postmaster", 0, NULL, NULL, NULL },
    { "user@", 0, NULL, NULL, NULL },
    { "@example.com", 0, NULL, NULL, NULL },
    { ".user@x.org", 0, NULL, NULL, NULL },
    { "user.@x.org", 0, NULL, NULL, NULL },
    { "us..er@x.org", 0, NULL, NULL, NULL },
    { "us er@x.org", 0, NULL, NULL, NULL },
    { "user@-x.org", 0, NULL, NULL, NULL },
    { "user@x-.org", 0, NULL, NULL, NULL },
    { "user@x..org", 0, NULL, NULL, NULL },
    { "user@x.org.", 0, NULL, NULL, NULL },
    { "user@x_y.org", 0, NULL, NULL, NULL },
    { "a@b@c.org", 0, NULL, NULL, NULL },
    { "u@[1.2.3]", 0, NULL, NULL, NULL },
    { "u@[IPv6:zz]", 0, NULL, NULL, NULL },
    { "u@[foo:bar]", 0, NULL, NULL, NULL },
    { "\"unterminated@x.org", 0, NULL, NULL, NULL },
    { "\"a\"b@x.org", 0, NULL, NULL, NULL },
    { "\"a\rb\"@x.org", 0, NULL, NULL, NULL },
    { "\xc3\xa9l\xc3\xa8ve@x.org", 0, NULL, NULL, NULL },     /* UTF-8 without SMTPUTF8 */
    { "\xc3\x28@x.org", U, NULL, NULL, NULL },                 /* invalid UTF-8 */
    { "\xed\xa0\x80@x.org", U, NULL, NULL, NULL },             /* surrogate */
    { "\xc0\xaf@x.org", U, NULL, NULL, NULL },                 /* overlong */
    { "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa@x.org", 0, NULL, NULL, NULL },
    { "u@aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa.org", 0, NULL, NULL, NULL },
};

static void test_address_parse_table(void **state)
{
    (void)state;
    struct mg_arena *arena = mg_arena_new(0);
    for (size_t i = 0; i < sizeof(mailbox_cases) / sizeof(mailbox_cases[0]); i++) {
        struct mg_address a;
        const char *err = NULL;
        const char *in = mailbox_cases[i].input;
        int r = mg_address_parse(in, strlen(in), mailbox_cases[i].flags, arena, &a, &err);
        if (mailbox_cases[i].local == NULL) {
            if (r == 0)
                fail_msg("case %zu (%s) accepted", i, in);
            assert_non_null(err);
            continue;
        }
        if (r != 0)
            fail_msg("case %zu (%s) rejected: %s", i, in, err);
        assert_string_equal(a.local, mailbox_cases[i].local);
        assert_string_equal(a.domain, mailbox_cases[i].domain);
        if (mailbox_cases[i].key != NULL)
            assert_string_equal(mg_address_key(arena, &a), mailbox_cases[i].key);
    }
    mg_arena_free(&arena);
}

static void test_address_parse_path(void **state)
{
    (void)state;
    struct mg_arena *arena = mg_arena_new(0);
    struct mg_address a;
    const char *err;
    size_t consumed;
    const char *p1 = "<user@example.com> SIZE=100";
    assert_int_equal(mg_address_parse_path(p1, strlen(p1), 0, arena, &a, &consumed, &err), 0);
    assert_int_equal(consumed, 18);
    assert_string_equal(a.local, "user");

    const char *p2 = "<@a.example,@b.example:user@example.com>";
    assert_int_equal(mg_address_parse_path(p2, strlen(p2), 0, arena, &a, &consumed, &err), 0);
    assert_int_equal(consumed, strlen(p2));
    assert_string_equal(mg_address_format(arena, &a), "user@example.com");

    const char *p3 = "<\"a>b\"@x.org>";
    assert_int_equal(mg_address_parse_path(p3, strlen(p3), 0, arena, &a, &consumed, &err), 0);
    assert_int_equal(consumed, strlen(p3));
    assert_string_equal(a.local, "\"a>b\"");

    const char *p4 = "<>";
    assert_int_equal(mg_address_parse_path(p4, 2, N, arena, &a, &consumed, &err), 0);
    assert_string_equal(mg_address_format(arena, &a), "");
    assert_int_equal(mg_address_parse_path(p4, 2, 0, arena, &a, &consumed, &err), -1);

    static const char *const bad[] = {
        "user@example.com", "<user@example.com", "<@a.example:>", "<@a.example user@x.org>",
        "<@-bad:user@x.org>", "", "<", "<a@b.org\">",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        if (mg_address_parse_path(bad[i], strlen(bad[i]), 0, arena, &a, &consumed, &err) == 0)
            fail_msg("bad path %zu accepted: %s", i, bad[i]);
    }
    mg_arena_free(&arena);
}

static void test_address_subaddress(void **state)
{
    (void)state;
    assert_int_equal(mg_address_base_local_len("user+tag", 8, "+"), 4);
    assert_int_equal(mg_address_base_local_len("user+a+b", 8, "+"), 4);
    assert_int_equal(mg_address_base_local_len("user-tag", 8, "+-"), 4);
    assert_int_equal(mg_address_base_local_len("user", 4, "+"), 4);
    assert_int_equal(mg_address_base_local_len("+user", 5, "+"), 5);
    assert_int_equal(mg_address_base_local_len("user+tag", 8, ""), 8);
    assert_int_equal(mg_address_base_local_len("\"a+b\"", 5, "+"), 5);
}

static void test_ascii_utf8(void **state)
{
    (void)state;
    char s[] = "MiXeD \xc3\x89";
    mg_ascii_lower(s, strlen(s));
    assert_string_equal(s, "mixed \xc3\x89");
    assert_int_equal(mg_ascii_strcasecmp("INBOX", "inbox"), 0);
    assert_true(mg_ascii_strcasecmp("a", "b") < 0);
    assert_true(mg_ascii_eq("FeTcH", 5, "fetch"));
    assert_false(mg_ascii_eq("FeTcH", 4, "fetch"));
    assert_true(mg_ascii_has_prefix("BODY.PEEK[", 10, "body"));

    assert_true(mg_utf8_is_valid("", 0));
    assert_true(mg_utf8_is_valid("\xf0\x9f\x93\xa7", 4));
    assert_false(mg_utf8_is_valid("\xf0\x9f\x93", 3));
    assert_false(mg_utf8_is_valid("\xf4\x90\x80\x80", 4)); /* > U+10FFFF */
    assert_false(mg_utf8_is_valid("\xe0\x80\xaf", 3));     /* overlong */
    assert_false(mg_utf8_is_valid("\x80", 1));
    char out[4];
    uint32_t cp;
    assert_int_equal(mg_utf8_encode(0x1F4E7, out), 4);
    assert_int_equal(mg_utf8_decode(out, 4, &cp), 4);
    assert_int_equal(cp, 0x1F4E7);
    assert_int_equal(mg_utf8_encode(0xD800, out), 0);
    assert_int_equal(mg_utf8_encode(0x110000, out), 0);
    for (uint32_t c = 0; c < 0x11000; c += 7) {
        size_t n = mg_utf8_encode(c, out);
        if (n == 0)
            continue;
        assert_int_equal(mg_utf8_decode(out, n, &cp), n);
        assert_int_equal(cp, c);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_address_parse_table),
        cmocka_unit_test(test_address_parse_path),
        cmocka_unit_test(test_address_subaddress),
        cmocka_unit_test(test_ascii_utf8),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
