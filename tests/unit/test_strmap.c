/* common/strmap: every operation, growth over many keys, removal from
 * every position of a chain, iteration with removal, key ownership, and
 * the hash seed made by several threads at once. */
#include "testutil.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

#include "common/alloc.h"
#include "common/strmap.h"

/* Values are distinct non-NULL pointers that carry their index. */
static void *val(size_t i)
{
    return (void *)(uintptr_t)(i + 1);
}

static size_t idx(const void *v)
{
    return (size_t)(uintptr_t)v - 1;
}

static void key_of(size_t i, char *buf, size_t size)
{
    snprintf(buf, size, "key-%zu", i);
}

/* ---- the hash seed, shared by every map of the process ---- */

#define RACE_THREADS 8

static pthread_barrier_t race_barrier;

static void *race_thread(void *arg)
{
    (void)arg;
    struct mg_strmap *m = mg_strmap_new();
    pthread_barrier_wait(&race_barrier);
    char k[32];
    long lost = 0;
    for (size_t i = 0; i < 64; i++) {
        key_of(i, k, sizeof(k));
        mg_strmap_set(m, k, val(i));
    }
    for (size_t i = 0; i < 64; i++) {
        key_of(i, k, sizeof(k));
        lost += mg_strmap_get(m, k) != val(i);
    }
    mg_strmap_free(&m);
    return (void *)lost;
}

/* A fresh process (no map used yet) whose threads all start with a map of
 * their own at the same moment. */
static int race_child(void *ctx)
{
    (void)ctx;
    pthread_barrier_init(&race_barrier, NULL, RACE_THREADS);
    pthread_t th[RACE_THREADS];
    long lost = 0;
    for (int i = 0; i < RACE_THREADS; i++)
        pthread_create(&th[i], NULL, race_thread, NULL);
    for (int i = 0; i < RACE_THREADS; i++) {
        void *r;
        pthread_join(th[i], &r);
        lost += (long)r;
    }
    if (lost > 0)
        printf("%ld keys lost\n", lost);
    return lost > 0 ? 1 : 0;
}

static void test_strmap_seed_shared_by_threads(void **state)
{
    (void)state;
    /* This process must not have hashed anything yet: each child starts
     * with no seed (this test runs first). Threads that make the seed at
     * the same time used to store different ones, and a map hashed with
     * both lost keys (a few children in a hundred). */
    for (int trial = 0; trial < 300; trial++) {
        char *out = NULL;
        int status = testutil_fork_run(race_child, NULL, 60, &out);
        if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
            fail_msg("trial %d: status 0x%x: %s", trial, status, out);
        free(out);
    }
}

/* ---- operations ---- */

static void test_strmap_empty(void **state)
{
    (void)state;
    struct mg_strmap *m = mg_strmap_new();
    assert_non_null(m);
    assert_int_equal(mg_strmap_count(m), 0);
    assert_null(mg_strmap_get(m, "a"));
    assert_null(mg_strmap_get(m, ""));
    assert_null(mg_strmap_remove(m, "a"));
    assert_int_equal(mg_strmap_count(m), 0);
    mg_strmap_free(&m);
    assert_null(m);
    /* A NULL map is accepted, again and again. */
    mg_strmap_free(&m);
    assert_null(m);
}

static void test_strmap_set_get_replace_remove(void **state)
{
    (void)state;
    struct mg_strmap *m = mg_strmap_new();
    int a, b, c;
    assert_null(mg_strmap_set(m, "alpha", &a));
    assert_null(mg_strmap_set(m, "beta", &b));
    assert_int_equal(mg_strmap_count(m), 2);
    assert_ptr_equal(mg_strmap_get(m, "alpha"), &a);
    assert_ptr_equal(mg_strmap_get(m, "beta"), &b);
    /* Replacing returns the previous value and does not add an entry. */
    assert_ptr_equal(mg_strmap_set(m, "alpha", &c), &a);
    assert_int_equal(mg_strmap_count(m), 2);
    assert_ptr_equal(mg_strmap_get(m, "alpha"), &c);
    /* Removal returns the value once. */
    assert_ptr_equal(mg_strmap_remove(m, "alpha"), &c);
    assert_null(mg_strmap_remove(m, "alpha"));
    assert_null(mg_strmap_get(m, "alpha"));
    assert_int_equal(mg_strmap_count(m), 1);
    /* A removed key can come back. */
    assert_null(mg_strmap_set(m, "alpha", &a));
    assert_ptr_equal(mg_strmap_get(m, "alpha"), &a);
    assert_int_equal(mg_strmap_count(m), 2);
    /* NULL values are entries too (get cannot tell them from absence, count can). */
    assert_null(mg_strmap_set(m, "nothing", NULL));
    assert_int_equal(mg_strmap_count(m), 3);
    assert_null(mg_strmap_remove(m, "nothing"));
    assert_int_equal(mg_strmap_count(m), 2);
    mg_strmap_free(&m);
}

static void test_strmap_key_rules(void **state)
{
    (void)state;
    struct mg_strmap *m = mg_strmap_new();
    int v[8];
    /* Exact byte comparison: no case folding, no trimming. */
    assert_null(mg_strmap_set(m, "User@Example.org", &v[0]));
    assert_null(mg_strmap_get(m, "user@example.org"));
    assert_null(mg_strmap_set(m, "user@example.org", &v[1]));
    assert_int_equal(mg_strmap_count(m), 2);
    assert_ptr_equal(mg_strmap_get(m, "User@Example.org"), &v[0]);
    assert_null(mg_strmap_get(m, "user@example.org "));
    assert_null(mg_strmap_get(m, "user@example.or"));
    /* The empty key is a key. */
    assert_null(mg_strmap_set(m, "", &v[2]));
    assert_ptr_equal(mg_strmap_get(m, ""), &v[2]);
    /* UTF-8 and high bytes; prefixes of each other. */
    assert_null(mg_strmap_set(m, "j\xc3\xb6rg", &v[3]));
    assert_null(mg_strmap_set(m, "j\xc3\xb6r", &v[4]));
    assert_null(mg_strmap_set(m, "\xff\xfe", &v[5]));
    assert_ptr_equal(mg_strmap_get(m, "j\xc3\xb6rg"), &v[3]);
    assert_ptr_equal(mg_strmap_get(m, "j\xc3\xb6r"), &v[4]);
    assert_ptr_equal(mg_strmap_get(m, "\xff\xfe"), &v[5]);
    /* IPv4 and IPv6 text forms are distinct keys. */
    assert_null(mg_strmap_set(m, "::1", &v[6]));
    assert_null(mg_strmap_set(m, "127.0.0.1", &v[7]));
    assert_ptr_equal(mg_strmap_get(m, "::1"), &v[6]);
    assert_ptr_equal(mg_strmap_get(m, "127.0.0.1"), &v[7]);
    assert_int_equal(mg_strmap_count(m), 8);
    /* A long key. */
    size_t n = 64 * 1024;
    char *big = mg_malloc(n + 1);
    memset(big, 'k', n);
    big[n] = '\0';
    assert_null(mg_strmap_set(m, big, &v[0]));
    assert_ptr_equal(mg_strmap_get(m, big), &v[0]);
    big[n - 1] = 'x';
    assert_null(mg_strmap_get(m, big));
    big[n - 1] = 'k';
    assert_ptr_equal(mg_strmap_remove(m, big), &v[0]);
    free(big);
    mg_strmap_free(&m);
}

static void test_strmap_keys_are_copied(void **state)
{
    (void)state;
    struct mg_strmap *m = mg_strmap_new();
    int a;
    char *key = mg_strdup("copied");
    mg_strmap_set(m, key, &a);
    /* The caller's buffer changes and goes: the map kept its own copy. */
    strcpy(key, "changd");
    assert_null(mg_strmap_get(m, "changd"));
    free(key);
    assert_ptr_equal(mg_strmap_get(m, "copied"), &a);
    mg_strmap_free(&m);
}

struct visit {
    unsigned char *seen;
    size_t n;
    size_t calls;
    int (*decide)(size_t i);
};

static int visit_cb(const char *key, void *value, void *ctx)
{
    struct visit *v = ctx;
    size_t i = idx(value);
    char expect[32];
    key_of(i, expect, sizeof(expect));
    /* The key handed out is the one the value was stored under. */
    if (strcmp(key, expect) != 0)
        fail_msg("foreach: key %s with the value of %s", key, expect);
    if (i >= v->n)
        fail_msg("foreach: unexpected value %zu", i);
    v->seen[i]++;
    v->calls++;
    return v->decide != NULL ? v->decide(i) : 0;
}

static int keep_all(size_t i)
{
    (void)i;
    return 0;
}

static int remove_odd(size_t i)
{
    return (i & 1) ? 1 : 0;
}

static int remove_all(size_t i)
{
    (void)i;
    return 1;
}

static int other_values_keep(size_t i)
{
    /* Only 1 removes: 2 and -1 are "keep". */
    return (i % 3 == 0) ? 2 : (i % 3 == 1) ? -1 : 0;
}

static void check_foreach(struct mg_strmap *m, size_t n, int (*decide)(size_t), size_t expect_calls)
{
    struct visit v = { .seen = mg_calloc(n, 1), .n = n, .decide = decide };
    mg_strmap_foreach(m, visit_cb, &v);
    assert_int_equal(v.calls, expect_calls);
    for (size_t i = 0; i < n; i++) {
        if (v.seen[i] > 1)
            fail_msg("foreach visited %zu twice", i);
    }
    free(v.seen);
}

static void test_strmap_many_keys(void **state)
{
    (void)state;
    const size_t n = 100000;
    struct mg_strmap *m = mg_strmap_new();
    char k[32];
    for (size_t i = 0; i < n; i++) {
        key_of(i, k, sizeof(k));
        assert_null(mg_strmap_set(m, k, val(i)));
        /* Growth never loses what was there: spot-check older keys. */
        if ((i & (i - 1)) == 0 || i % 9973 == 0) {
            for (size_t j = 0; j <= i; j += i / 7 + 1) {
                key_of(j, k, sizeof(k));
                if (mg_strmap_get(m, k) != val(j))
                    fail_msg("lost key %zu after inserting %zu", j, i);
            }
        }
    }
    assert_int_equal(mg_strmap_count(m), n);
    for (size_t i = 0; i < n; i++) {
        key_of(i, k, sizeof(k));
        if (mg_strmap_get(m, k) != val(i))
            fail_msg("key %zu maps to the wrong value", i);
    }
    assert_null(mg_strmap_get(m, "key-100000"));
    assert_null(mg_strmap_get(m, "key-"));
    check_foreach(m, n, keep_all, n);
    assert_int_equal(mg_strmap_count(m), n);

    /* Remove every third key, from the end backwards. */
    size_t removed = 0;
    for (size_t i = n; i-- > 0;) {
        if (i % 3 != 0)
            continue;
        key_of(i, k, sizeof(k));
        assert_ptr_equal(mg_strmap_remove(m, k), val(i));
        removed++;
    }
    assert_int_equal(mg_strmap_count(m), n - removed);
    for (size_t i = 0; i < n; i++) {
        key_of(i, k, sizeof(k));
        void *want = i % 3 == 0 ? NULL : val(i);
        if (mg_strmap_get(m, k) != want)
            fail_msg("after removals key %zu is wrong", i);
    }
    /* Put them back with new values, replace the others. */
    for (size_t i = 0; i < n; i++) {
        key_of(i, k, sizeof(k));
        void *old = mg_strmap_set(m, k, val(i));
        if (old != (i % 3 == 0 ? NULL : val(i)))
            fail_msg("set of %zu returned the wrong previous value", i);
    }
    assert_int_equal(mg_strmap_count(m), n);
    mg_strmap_free(&m);
}

static void test_strmap_remove_every_chain_position(void **state)
{
    (void)state;
    /* 40 keys in a map that starts with 16 buckets: chains of several
     * entries exist whatever the seed. Removing in many orders hits the
     * head, middle and tail of chains. */
    const size_t n = 40;
    char k[32];
    for (unsigned order = 0; order < 6; order++) {
        struct mg_strmap *m = mg_strmap_new();
        for (size_t i = 0; i < n; i++) {
            key_of(i, k, sizeof(k));
            mg_strmap_set(m, k, val(i));
        }
        unsigned char gone[40] = { 0 };
        for (size_t step = 0; step < n; step++) {
            size_t i;
            switch (order) {
            case 0: i = step; break;
            case 1: i = n - 1 - step; break;
            case 2: i = (step * 7) % n; break;  /* 7 and 40 are coprime */
            case 3: i = (step * 13 + 5) % n; break;
            case 4: i = step % 2 == 0 ? step / 2 : n - 1 - step / 2; break;
            default: i = (step * 17 + 3) % n; break;
            }
            key_of(i, k, sizeof(k));
            assert_ptr_equal(mg_strmap_remove(m, k), val(i));
            gone[i] = 1;
            assert_int_equal(mg_strmap_count(m), n - step - 1);
            for (size_t j = 0; j < n; j++) {
                key_of(j, k, sizeof(k));
                if (mg_strmap_get(m, k) != (gone[j] ? NULL : val(j)))
                    fail_msg("order %u: after removing %zu, key %zu is wrong", order, i, j);
            }
        }
        check_foreach(m, n, keep_all, 0);
        mg_strmap_free(&m);
    }
}

static void test_strmap_foreach_remove(void **state)
{
    (void)state;
    const size_t n = 5000;
    struct mg_strmap *m = mg_strmap_new();
    char k[32];
    for (size_t i = 0; i < n; i++) {
        key_of(i, k, sizeof(k));
        mg_strmap_set(m, k, val(i));
    }
    /* Return values other than 1 keep the entry. */
    check_foreach(m, n, other_values_keep, n);
    assert_int_equal(mg_strmap_count(m), n);
    /* Returning 1 removes exactly the entry given, during the walk. */
    check_foreach(m, n, remove_odd, n);
    assert_int_equal(mg_strmap_count(m), n / 2);
    for (size_t i = 0; i < n; i++) {
        key_of(i, k, sizeof(k));
        if (mg_strmap_get(m, k) != ((i & 1) ? NULL : val(i)))
            fail_msg("after foreach removal key %zu is wrong", i);
    }
    /* Each survivor is visited exactly once. */
    check_foreach(m, n, keep_all, n / 2);
    /* The map works normally afterwards: add, then empty it by foreach. */
    for (size_t i = 1; i < n; i += 2) {
        key_of(i, k, sizeof(k));
        assert_null(mg_strmap_set(m, k, val(i)));
    }
    assert_int_equal(mg_strmap_count(m), n);
    check_foreach(m, n, remove_all, n);
    assert_int_equal(mg_strmap_count(m), 0);
    check_foreach(m, n, keep_all, 0);
    key_of(7, k, sizeof(k));
    assert_null(mg_strmap_get(m, k));
    assert_null(mg_strmap_set(m, k, val(7)));
    assert_ptr_equal(mg_strmap_get(m, k), val(7));
    assert_int_equal(mg_strmap_count(m), 1);
    mg_strmap_free(&m);
}

static int free_value_cb(const char *key, void *value, void *ctx)
{
    (void)key;
    (*(size_t *)ctx)++;
    free(value);
    return 1;
}

static void test_strmap_owned_values(void **state)
{
    (void)state;
    /* The pattern of ip_limiter: heap values freed by a foreach before
     * mg_strmap_free (which frees keys only). LeakSanitizer checks. */
    struct mg_strmap *m = mg_strmap_new();
    char k[32];
    for (size_t i = 0; i < 3000; i++) {
        key_of(i, k, sizeof(k));
        mg_strmap_set(m, k, mg_strdup(k));
    }
    for (size_t i = 0; i < 3000; i += 2) {
        key_of(i, k, sizeof(k));
        char *v = mg_strmap_remove(m, k);
        assert_string_equal(v, k);
        free(v);
    }
    size_t freed = 0;
    mg_strmap_foreach(m, free_value_cb, &freed);
    assert_int_equal(freed, 1500);
    assert_int_equal(mg_strmap_count(m), 0);
    mg_strmap_free(&m);
    /* A map freed with entries in it frees the entries (not the values). */
    static int statics[100];
    m = mg_strmap_new();
    for (size_t i = 0; i < 100; i++) {
        key_of(i, k, sizeof(k));
        mg_strmap_set(m, k, &statics[i]);
    }
    mg_strmap_free(&m);
    assert_null(m);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_strmap_seed_shared_by_threads), /* first: see there */
        cmocka_unit_test(test_strmap_empty),
        cmocka_unit_test(test_strmap_set_get_replace_remove),
        cmocka_unit_test(test_strmap_key_rules),
        cmocka_unit_test(test_strmap_keys_are_copied),
        cmocka_unit_test(test_strmap_many_keys),
        cmocka_unit_test(test_strmap_remove_every_chain_position),
        cmocka_unit_test(test_strmap_foreach_remove),
        cmocka_unit_test(test_strmap_owned_values),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
