/* UTF-8 (RFC 3629): every code point round-trips; the invalid forms of
 * the RFC's section 3 and 10 are refused. */
#include "testutil.h"

#include <string.h>

#include "common/utf8.h"

static void test_utf8_round_trip(void **state)
{
    (void)state;
    for (uint32_t cp = 0; cp <= 0x10ffff; cp++) {
        char out[4];
        size_t n = mg_utf8_encode(cp, out);
        if (cp >= 0xd800 && cp <= 0xdfff) {
            assert_int_equal(n, 0);
            continue;
        }
        size_t want = cp < 0x80 ? 1 : cp < 0x800 ? 2 : cp < 0x10000 ? 3 : 4;
        assert_int_equal(n, want);
        uint32_t back = 0xffffffff;
        assert_int_equal(mg_utf8_decode(out, n, &back), n);
        assert_int_equal(back, cp);
        assert_true(mg_utf8_is_valid(out, n));
        /* Cut short, it is not valid. */
        if (n > 1) {
            assert_int_equal(mg_utf8_decode(out, n - 1, &back), 0);
            assert_false(mg_utf8_is_valid(out, n - 1));
        }
    }
    char out[4];
    assert_int_equal(mg_utf8_encode(0x110000, out), 0);
    assert_int_equal(mg_utf8_encode(0xffffffff, out), 0);
}

static void test_utf8_invalid_forms(void **state)
{
    (void)state;
    static const struct { const char *s; size_t len; } bad[] = {
        { "\x80", 1 },                  /* lone continuation */
        { "\xbf", 1 },
        { "\xc0\x80", 2 },              /* overlong NUL */
        { "\xc1\xbf", 2 },              /* overlong */
        { "\xe0\x80\xaf", 3 },          /* overlong '/' */
        { "\xf0\x80\x80\xaf", 4 },      /* overlong '/' */
        { "\xed\xa0\x80", 3 },          /* U+D800 surrogate */
        { "\xed\xbf\xbf", 3 },          /* U+DFFF */
        { "\xf4\x90\x80\x80", 4 },      /* U+110000 */
        { "\xf5\x80\x80\x80", 4 },      /* lead above 0xf4 */
        { "\xff", 1 },
        { "\xfe", 1 },
        { "\xc3\x28", 2 },              /* continuation missing */
        { "\xe2\x82", 2 },              /* truncated */
        { "a\xe2\x82\xac\xe2", 5 },     /* valid then truncated */
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        uint32_t cp;
        assert_false(mg_utf8_is_valid(bad[i].s, bad[i].len));
        if (bad[i].s[0] & 0x80)
            assert_int_equal(mg_utf8_decode(bad[i].s, bad[i].len, &cp), 0);
    }
    uint32_t cp;
    assert_int_equal(mg_utf8_decode("", 0, &cp), 0);
    assert_true(mg_utf8_is_valid("", 0));
    /* Embedded NUL is a code point like any other. */
    assert_true(mg_utf8_is_valid("a\0b", 3));
    const char *mixed = "Gr\xc3\xbc\xc3\x9f" "e \xe2\x82\xac \xf0\x9f\x93\xa7";
    assert_true(mg_utf8_is_valid(mixed, strlen(mixed)));
    assert_int_equal(mg_utf8_decode("\xf0\x9f\x93\xa7", 4, &cp), 4);
    assert_int_equal(cp, 0x1f4e7);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_utf8_round_trip),
        cmocka_unit_test(test_utf8_invalid_forms),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
