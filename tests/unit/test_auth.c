/* The auth protocol's framing and the password-check cache. */
#include "testutil.h"

#include <stdlib.h>
#include <time.h>
#include <string.h>

#include "common/auth_proto.h"
#include "common/buf.h"
#include "mda/auth/auth_cache.h"

static void test_auth_proto_roundtrip(void **state)
{
    (void)state;
    static const char *const values[] = { "VERIFY", "7", "", "pa\tss%word\r\n", "ütf-8 ✓", "\x01\x7f" };
    struct mg_buf line = MG_BUF_INIT;
    for (size_t i = 0; i < 6; i++)
        mg_auth_proto_cfield(&line, values[i]);
    assert_null(memchr(line.data, '\n', line.len));
    assert_null(memchr(line.data, '\r', line.len));
    char *fields[16];
    int n = mg_auth_proto_split(line.data, line.len, fields, 16);
    assert_int_equal(n, 6);
    for (size_t i = 0; i < 6; i++)
        assert_string_equal(fields[i], values[i]);
    mg_buf_free(&line);

    char bad1[] = "A\t%zz";
    assert_int_equal(mg_auth_proto_split(bad1, strlen(bad1), fields, 16), -1);
    char bad2[] = "A\t%4";
    assert_int_equal(mg_auth_proto_split(bad2, strlen(bad2), fields, 16), -1);
    char many[] = "a\tb\tc\td";
    assert_int_equal(mg_auth_proto_split(many, strlen(many), fields, 3), -1);
    char empty[] = "";
    assert_int_equal(mg_auth_proto_split(empty, 0, fields, 3), 1);
    assert_string_equal(fields[0], "");
}

static void test_auth_cache(void **state)
{
    (void)state;
    struct auth_cache *c = auth_cache_new(60000);
    assert_false(auth_cache_check(c, "demo@x.test", "secret", "$y$hash1"));
    auth_cache_add(c, "demo@x.test", "secret", "$y$hash1");
    assert_true(auth_cache_check(c, "demo@x.test", "secret", "$y$hash1"));
    /* Another password, another user, or a changed hash: no hit. */
    assert_false(auth_cache_check(c, "demo@x.test", "Secret", "$y$hash1"));
    assert_false(auth_cache_check(c, "other@x.test", "secret", "$y$hash1"));
    assert_false(auth_cache_check(c, "demo@x.test", "secret", "$y$hash2"));
    /* The NUL between user and password keeps these apart. */
    auth_cache_add(c, "ab", "c", "$y$h");
    assert_false(auth_cache_check(c, "a", "bc", "$y$h"));
    auth_cache_free(&c);
    assert_null(c);

    /* ttl 0: nothing is remembered. */
    c = auth_cache_new(0);
    auth_cache_add(c, "demo@x.test", "secret", "$y$hash1");
    assert_false(auth_cache_check(c, "demo@x.test", "secret", "$y$hash1"));
    auth_cache_free(&c);

    /* Expiry. */
    c = auth_cache_new(1);
    auth_cache_add(c, "demo@x.test", "secret", "$y$hash1");
    struct timespec ts = { 0, 5000000 };
    nanosleep(&ts, NULL);
    assert_false(auth_cache_check(c, "demo@x.test", "secret", "$y$hash1"));
    auth_cache_free(&c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_auth_proto_roundtrip),
        cmocka_unit_test(test_auth_cache),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
