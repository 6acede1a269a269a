/* ASCII case handling: locale-independent, bytes above 0x7f untouched. */
#include "testutil.h"

#include <locale.h>
#include <stdio.h>
#include <string.h>

#include "common/ascii.h"

static void test_ascii_case(void **state)
{
    (void)state;
    for (int c = 0; c < 256; c++) {
        char ch = (char)c;
        char lo = mg_ascii_tolower(ch), up = mg_ascii_toupper(ch);
        if (c >= 'A' && c <= 'Z') {
            assert_int_equal(lo, c + 32);
            assert_int_equal(up, c);
        } else if (c >= 'a' && c <= 'z') {
            assert_int_equal(up, c - 32);
            assert_int_equal(lo, c);
        } else {
            assert_int_equal(lo, ch);
            assert_int_equal(up, ch);
        }
    }
    char s[] = "MiXeD-Case\xc3\x84@Example.ORG";
    mg_ascii_lower(s, strlen(s));
    assert_string_equal(s, "mixed-case\xc3\x84@example.org");
    char part[] = "ABCDEF";
    mg_ascii_lower(part, 3);
    assert_string_equal(part, "abcDEF");
}

static void test_ascii_compare(void **state)
{
    (void)state;
    assert_int_equal(mg_ascii_strcasecmp("INBOX", "inbox"), 0);
    assert_int_equal(mg_ascii_strcasecmp("", ""), 0);
    assert_true(mg_ascii_strcasecmp("a", "B") < 0);
    assert_true(mg_ascii_strcasecmp("b", "A") > 0);
    assert_true(mg_ascii_strcasecmp("ab", "A") > 0);
    assert_true(mg_ascii_strcasecmp("A", "ab") < 0);
    /* Non-ASCII bytes compare as bytes, never folded. */
    assert_true(mg_ascii_strcasecmp("\xc3\xa4", "\xc3\x84") != 0);
    assert_true(mg_ascii_strcasecmp("x\x80", "x") > 0);

    assert_true(mg_ascii_eq("MAIL FROM", 4, "mail"));
    assert_false(mg_ascii_eq("MAIL", 4, "mai"));
    assert_false(mg_ascii_eq("MAI", 3, "mail"));
    assert_true(mg_ascii_eq("", 0, ""));
    assert_true(mg_ascii_has_prefix("BODY.PEEK[", 10, "body."));
    assert_true(mg_ascii_has_prefix("x", 1, ""));
    assert_false(mg_ascii_has_prefix("BOD", 3, "body"));
    assert_false(mg_ascii_has_prefix("BODX", 4, "body"));
}

/* The point of the module: a Turkish locale folds 'I' to a dotless i in
 * the C library, never here. Skipped silently where the locale is absent. */
static void test_ascii_ignores_locale(void **state)
{
    (void)state;
    const char *old = setlocale(LC_CTYPE, NULL);
    char saved[64];
    snprintf(saved, sizeof(saved), "%s", old != NULL ? old : "C");
    setlocale(LC_CTYPE, "tr_TR.UTF-8");
    assert_int_equal(mg_ascii_strcasecmp("INBOX", "inbox"), 0);
    assert_true(mg_ascii_eq("LIST", 4, "list"));
    setlocale(LC_CTYPE, saved);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_ascii_case),
        cmocka_unit_test(test_ascii_compare),
        cmocka_unit_test(test_ascii_ignores_locale),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
