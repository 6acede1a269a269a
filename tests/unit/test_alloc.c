/* common/alloc: the allocation wrappers that never return NULL. Overflow
 * and out-of-memory must abort: those cases run in a forked child. */
#include "testutil.h"

#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common/alloc.h"

static void test_alloc_asprintf(void **state)
{
    (void)state;
    char *s = mg_asprintf("%s-%d-%05.1f-%c%%", "abc", -42, 3.14159, 'x');
    assert_string_equal(s, "abc--42-003.1-x%");
    free(s);
    s = mg_asprintf("%s", "");
    assert_non_null(s);
    assert_string_equal(s, "");
    free(s);
    /* Output longer than any internal first guess. */
    s = mg_asprintf("<%*s>", 100000, "end");
    assert_int_equal(strlen(s), 100002);
    assert_int_equal(s[0], '<');
    assert_string_equal(s + 100002 - 4, "end>");
    assert_int_equal(s[1], ' ');
    free(s);
    /* Large integers and %zu. */
    s = mg_asprintf("%llu %zu %lld", 18446744073709551615ull, (size_t)0, -9223372036854775807ll - 1);
    assert_string_equal(s, "18446744073709551615 0 -9223372036854775808");
    free(s);
}

static void test_alloc_strndup(void **state)
{
    (void)state;
    char *s = mg_strndup("hello", 3);
    assert_string_equal(s, "hel");
    free(s);
    s = mg_strndup("hello", 5);
    assert_string_equal(s, "hello");
    free(s);
    /* n beyond the string: stops at its NUL (reads no further). */
    s = mg_strndup("hi", 1000);
    assert_string_equal(s, "hi");
    free(s);
    s = mg_strndup("hello", 0);
    assert_string_equal(s, "");
    free(s);
    s = mg_strndup("a\0bc", 4);
    assert_string_equal(s, "a");
    free(s);
    /* Not NUL-terminated input: only n bytes are read (ASan checks). */
    char *raw = mg_malloc(4);
    memcpy(raw, "abcd", 4);
    s = mg_strndup(raw, 4);
    assert_string_equal(s, "abcd");
    free(s);
    s = mg_strndup(raw + 2, 2);
    assert_string_equal(s, "cd");
    free(s);
    free(raw);
    s = mg_strdup("");
    assert_string_equal(s, "");
    free(s);
    s = mg_strdup("copy me");
    assert_string_equal(s, "copy me");
    free(s);
}

static void test_alloc_basic(void **state)
{
    (void)state;
    /* Size 0 gives a real, freeable allocation. */
    void *p = mg_malloc(0);
    assert_non_null(p);
    free(p);
    p = mg_calloc(0, 0);
    assert_non_null(p);
    free(p);
    p = mg_calloc(0, 16);
    assert_non_null(p);
    free(p);
    /* No members of a huge size: nothing to allocate, no abort. */
    p = mg_calloc(0, SIZE_MAX);
    assert_non_null(p);
    free(p);
    p = mg_calloc(SIZE_MAX, 0);
    assert_non_null(p);
    free(p);
    unsigned char *z = mg_calloc(1000, 3);
    for (size_t i = 0; i < 3000; i++)
        assert_int_equal(z[i], 0);
    free(z);
    /* realloc keeps the contents while growing and shrinking. */
    char *r = mg_realloc(NULL, 4);
    memcpy(r, "abc", 4);
    r = mg_realloc(r, 1 << 20);
    assert_string_equal(r, "abc");
    r[(1 << 20) - 1] = 'z';
    r = mg_realloc(r, 2);
    assert_memory_equal(r, "ab", 2);
    r = mg_realloc(r, 0);
    assert_non_null(r);
    free(r);
    /* reallocarray: the product, and 0 members. */
    uint64_t *a = mg_reallocarray(NULL, 10, sizeof(uint64_t));
    for (int i = 0; i < 10; i++)
        a[i] = (uint64_t)i * 3;
    a = mg_reallocarray(a, 100000, sizeof(uint64_t));
    assert_int_equal(a[9], 27);
    a[99999] = 1;
    a = mg_reallocarray(a, 0, sizeof(uint64_t));
    assert_non_null(a);
    free(a);
    a = mg_reallocarray(NULL, 7, 0);
    assert_non_null(a);
    free(a);
}

static void test_alloc_free_macro(void **state)
{
    (void)state;
    char *p = mg_strdup("x");
    mg_free(&p);
    assert_null(p);
    /* Again on the NULL it left: fine. */
    mg_free(&p);
    assert_null(p);
    struct { int *a; } s = { mg_calloc(3, sizeof(int)) };
    mg_free(&s.a);
    assert_null(s.a);
    /* A NULL pointer to the pointer is accepted too. */
    char **none = NULL;
    mg_free(none);
    assert_null(none);
    /* The argument is evaluated once. */
    char *arr[2] = { mg_strdup("a"), mg_strdup("b") };
    char **it = arr;
    mg_free(it++);
    assert_ptr_equal(it, &arr[1]);
    assert_null(arr[0]);
    assert_non_null(arr[1]);
    mg_free(&arr[1]);
}

/* ---- aborts, in a child ---- */

struct abort_case {
    size_t nmemb, size;
    int kind; /* 0 reallocarray, 1 calloc, 2 malloc */
};

static int abort_child(void *ctx)
{
    const struct abort_case *c = ctx;
    void *p;
    switch (c->kind) {
    case 0: p = mg_reallocarray(NULL, c->nmemb, c->size); break;
    case 1: p = mg_calloc(c->nmemb, c->size); break;
    default: p = mg_malloc(c->nmemb); break;
    }
    /* Reaching this line is the failure. */
    printf("RETURNED %p\n", p);
    return 0;
}

static void expect_abort(struct abort_case c, bool expect_our_message)
{
    char *out = NULL;
    int status = testutil_fork_run(abort_child, &c, 60, &out);
    if (strstr(out, "RETURNED") != NULL)
        fail_msg("allocation of %zu x %zu (kind %d) returned:\n%s", c.nmemb, c.size, c.kind, out);
    /* Died: by SIGABRT from alloc_fail(), or (ASan intercepting an
     * impossible size before the C library sees it) by ASan's exit. */
    assert_false(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    if (expect_our_message) {
        if (!WIFSIGNALED(status) || WTERMSIG(status) != SIGABRT)
            fail_msg("expected SIGABRT, status 0x%x, output:\n%s", status, out);
        if (strstr(out, "crit alloc: out of memory, aborting") == NULL)
            fail_msg("no out-of-memory message:\n%s", out);
    }
    free(out);
}

static void test_alloc_reallocarray_overflow_aborts(void **state)
{
    (void)state;
    /* Overflow is caught before any allocation: our own abort. */
    expect_abort((struct abort_case){ SIZE_MAX / 8 + 1, 8, 0 }, true);
    expect_abort((struct abort_case){ SIZE_MAX, 2, 0 }, true);
    expect_abort((struct abort_case){ 2, SIZE_MAX, 0 }, true);
    expect_abort((struct abort_case){ (size_t)1 << (sizeof(size_t) * 4), (size_t)1 << (sizeof(size_t) * 4), 0 }, true);
    /* No overflow, but no memory for it either: still never NULL. */
    expect_abort((struct abort_case){ SIZE_MAX / 8, 8, 0 }, false);
}

static void test_alloc_out_of_memory_aborts(void **state)
{
    (void)state;
    expect_abort((struct abort_case){ SIZE_MAX, 2, 1 }, false);  /* calloc overflow */
    expect_abort((struct abort_case){ SIZE_MAX / 2, 1, 1 }, false);
    expect_abort((struct abort_case){ SIZE_MAX - 4096, 0, 2 }, false);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_alloc_asprintf),
        cmocka_unit_test(test_alloc_strndup),
        cmocka_unit_test(test_alloc_basic),
        cmocka_unit_test(test_alloc_free_macro),
        cmocka_unit_test(test_alloc_reallocarray_overflow_aborts),
        cmocka_unit_test(test_alloc_out_of_memory_aborts),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
