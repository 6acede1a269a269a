#include "testutil.h"

#include <stdlib.h>
#include <string.h>

#include "common/arena.h"
#include "common/buf.h"

static void test_buf_append_and_cstr(void **state)
{
    (void)state;
    struct mg_buf b = MG_BUF_INIT;
    assert_string_equal(mg_buf_cstr(&b), "");
    mg_buf_append_str(&b, "hello");
    mg_buf_append_byte(&b, ' ');
    mg_buf_printf(&b, "%s %d", "world", 42);
    assert_int_equal(b.len, strlen("hello world 42"));
    assert_string_equal(mg_buf_cstr(&b), "hello world 42");
    mg_buf_consume(&b, 6);
    assert_string_equal(mg_buf_cstr(&b), "world 42");
    mg_buf_truncate(&b, 5);
    assert_string_equal(mg_buf_cstr(&b), "world");
    mg_buf_consume(&b, 100);
    assert_int_equal(b.len, 0);
    mg_buf_free(&b);
    assert_null(b.data);
}

static void test_buf_large_printf(void **state)
{
    (void)state;
    struct mg_buf b = MG_BUF_INIT;
    char big[3000];
    memset(big, 'x', sizeof(big) - 1);
    big[sizeof(big) - 1] = '\0';
    mg_buf_printf(&b, "<%s>", big);
    assert_int_equal(b.len, sizeof(big) + 1);
    assert_int_equal(b.data[0], '<');
    assert_int_equal(b.data[b.len - 1], '>');
    size_t len;
    char *s = mg_buf_steal(&b, &len);
    assert_int_equal(len, sizeof(big) + 1);
    assert_null(b.data);
    free(s);
}

static void test_buf_binary(void **state)
{
    (void)state;
    struct mg_buf b = MG_BUF_INIT;
    const char bin[] = { 'a', '\0', 'b', '\r', '\n' };
    for (int i = 0; i < 1000; i++)
        mg_buf_append(&b, bin, sizeof(bin));
    assert_int_equal(b.len, 5000);
    assert_memory_equal(b.data + 4995, bin, sizeof(bin));
    mg_buf_free(&b);
}

static void test_arena(void **state)
{
    (void)state;
    struct mg_arena *a = mg_arena_new(64);
    char *s = mg_arena_strdup(a, "abc");
    char *big = mg_arena_alloc(a, 10000);
    memset(big, 1, 10000);
    char *t = mg_arena_printf(a, "%s-%d", s, 7);
    assert_string_equal(t, "abc-7");
    assert_string_equal(s, "abc");
    for (int i = 0; i < 1000; i++) {
        void *p = mg_arena_alloc(a, (size_t)i);
        assert_int_equal((uintptr_t)p % 16, 0);
    }
    assert_true(mg_arena_used(a) >= 10000);
    mg_arena_clear(a);
    assert_int_equal(mg_arena_used(a), 0);
    char *u = mg_arena_strndup(a, "hello", 3);
    assert_string_equal(u, "hel");
    mg_arena_free(&a);
    assert_null(a);
    mg_arena_free(&a);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_buf_append_and_cstr),
        cmocka_unit_test(test_buf_large_printf),
        cmocka_unit_test(test_buf_binary),
        cmocka_unit_test(test_arena),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
