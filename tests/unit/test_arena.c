/* Arenas: alignment, copies, growth past a chunk, big blocks, clearing. */
#include "testutil.h"

#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "common/arena.h"

static void test_arena_alignment_and_copies(void **state)
{
    (void)state;
    struct mg_arena *a = mg_arena_new(0);
    for (size_t size = 0; size < 100; size++) {
        void *p = mg_arena_alloc(a, size);
        assert_int_equal((uintptr_t)p % 16, 0);
        memset(p, 0xa5, size);
    }
    unsigned char *z = mg_arena_zalloc(a, 64);
    for (size_t i = 0; i < 64; i++)
        assert_int_equal(z[i], 0);
    assert_string_equal(mg_arena_strdup(a, "hello"), "hello");
    assert_string_equal(mg_arena_strndup(a, "hello world", 5), "hello");
    assert_string_equal(mg_arena_strndup(a, "x", 0), "");
    assert_string_equal(mg_arena_printf(a, "%s=%d", "n", 42), "n=42");
    assert_memory_equal(mg_arena_memdup(a, "a\0b", 3), "a\0b", 3);
    mg_arena_memdup(a, NULL, 0);
    mg_arena_free(&a);
    assert_null(a);
    mg_arena_free(&a);
}

/* Allocations stay valid while the arena grows: nothing moves. */
static void test_arena_growth_keeps_pointers(void **state)
{
    (void)state;
    struct mg_arena *a = mg_arena_new(256);
    char *ptrs[2000];
    for (int i = 0; i < 2000; i++)
        ptrs[i] = mg_arena_printf(a, "item %d", i);
    for (int i = 0; i < 2000; i++) {
        char want[32];
        snprintf(want, sizeof(want), "item %d", i);
        assert_string_equal(ptrs[i], want);
    }
    assert_true(mg_arena_used(a) >= 2000 * 16);
    mg_arena_free(&a);
}

/* A block larger than the chunk size, between small allocations: the
 * small ones still fit in the head's free space, everything stays valid,
 * and a clear releases the big block (ASan sees any use after it). */
static void test_arena_big_blocks_and_clear(void **state)
{
    (void)state;
    struct mg_arena *a = mg_arena_new(1024);
    char *small1 = mg_arena_strdup(a, "before");
    char *big = mg_arena_alloc(a, 100000);
    memset(big, 'b', 100000);
    char *small2 = mg_arena_strdup(a, "after");
    char *printed = mg_arena_printf(a, "%05000d", 7);
    assert_string_equal(small1, "before");
    assert_string_equal(small2, "after");
    assert_int_equal(strlen(printed), 5000);
    assert_int_equal(big[99999], 'b');
    assert_true(mg_arena_used(a) >= 100000 + 5001);

    for (int round = 0; round < 3; round++) {
        mg_arena_clear(a);
        assert_int_equal(mg_arena_used(a), 0);
        char *p = mg_arena_alloc(a, 1000);
        memset(p, 'c', 1000);
        char *q = mg_arena_alloc(a, 50000);
        memset(q, 'd', 50000);
        assert_int_equal(p[999], 'c');
        assert_int_equal(mg_arena_used(a), 1008 + 50000);
    }
    mg_arena_free(&a);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_arena_alignment_and_copies),
        cmocka_unit_test(test_arena_growth_keeps_pointers),
        cmocka_unit_test(test_arena_big_blocks_and_clear),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
