/* common/resolve_cache: what is kept (answers that lead to delivery) and
 * what is not, expiry that use does not extend, copies independent of the
 * caller's result, a result from the cache put back, and a full cache. */
#include "testutil.h"

#include <stdio.h>
#include <string.h>

#include "common/resolve_cache.h"

static struct mg_auth_resolve_result result_of(enum mg_auth_status status,
                                               const struct mg_auth_target *targets,
                                               size_t count)
{
    return (struct mg_auth_resolve_result){ .status = status, .targets = targets, .count = count };
}

static void test_resolve_cache_keeps_deliverable_answers(void **state)
{
    (void)state;
    struct mg_resolve_cache *c = mg_resolve_cache_new(5000, 100);
    char addr[64];
    snprintf(addr, sizeof(addr), "%s", "alias@example.test");
    struct mg_auth_target t[2] = {
        { .address = addr, .is_local = true, .is_enabled = true, .quota_bytes = 42 },
        { .address = "friend@other.example", .is_local = false, .is_enabled = false },
    };
    struct mg_auth_resolve_result res = result_of(MG_AUTH_OK, t, 2);
    struct mg_auth_resolve_result got;
    assert_false(mg_resolve_cache_get(c, 1000, "alias@example.test", &got));
    mg_resolve_cache_put(c, 1000, "alias@example.test", &res);
    /* The caller's strings may go: the cache has its own. */
    memset(addr, 'x', sizeof(addr) - 1);
    assert_true(mg_resolve_cache_get(c, 5999, "alias@example.test", &got));
    assert_int_equal(got.status, MG_AUTH_OK);
    assert_int_equal(got.count, 2);
    assert_string_equal(got.targets[0].address, "alias@example.test");
    assert_true(got.targets[0].is_local);
    assert_true(got.targets[0].is_enabled);
    assert_int_equal(got.targets[0].quota_bytes, 42);
    assert_string_equal(got.targets[1].address, "friend@other.example");
    assert_false(got.targets[1].is_local);
    assert_false(mg_resolve_cache_get(c, 6000, "alias@example.test", &got));
    assert_false(mg_resolve_cache_get(c, 6000, "other@example.test", &got));
    mg_resolve_cache_free(&c);
    assert_null(c);
    mg_resolve_cache_free(&c);
}

static void test_resolve_cache_ignores_refusals(void **state)
{
    (void)state;
    struct mg_resolve_cache *c = mg_resolve_cache_new(5000, 100);
    struct mg_auth_target disabled[2] = {
        { .address = "a@example.test", .is_local = true, .is_enabled = true },
        { .address = "b@example.test", .is_local = true, .is_enabled = false },
    };
    struct mg_auth_resolve_result res[] = {
        result_of(MG_AUTH_NOT_FOUND, NULL, 0),
        result_of(MG_AUTH_NOT_LOCAL, NULL, 0),
        result_of(MG_AUTH_TEMPFAIL, NULL, 0),
        result_of(MG_AUTH_OK, NULL, 0),
        result_of(MG_AUTH_OK, disabled, 2),
    };
    struct mg_auth_resolve_result got;
    for (size_t i = 0; i < sizeof(res) / sizeof(res[0]); i++) {
        mg_resolve_cache_put(c, 0, "x@example.test", &res[i]);
        assert_false(mg_resolve_cache_get(c, 1, "x@example.test", &got));
    }
    mg_resolve_cache_free(&c);
}

static void test_resolve_cache_use_does_not_extend(void **state)
{
    (void)state;
    struct mg_resolve_cache *c = mg_resolve_cache_new(5000, 100);
    struct mg_auth_target t = { .address = "u@example.test", .is_local = true, .is_enabled = true };
    struct mg_auth_resolve_result res = result_of(MG_AUTH_OK, &t, 1);
    mg_resolve_cache_put(c, 0, "u@example.test", &res);
    /* What a caller does with an answer from the cache: put it back. */
    struct mg_auth_resolve_result got;
    assert_true(mg_resolve_cache_get(c, 4000, "u@example.test", &got));
    mg_resolve_cache_put(c, 4000, "u@example.test", &got);
    assert_string_equal(got.targets[0].address, "u@example.test");
    mg_resolve_cache_put(c, 4500, "u@example.test", &res);
    assert_false(mg_resolve_cache_get(c, 5000, "u@example.test", &got));
    /* Expired, a new answer is kept for a new lifetime. */
    mg_resolve_cache_put(c, 5000, "u@example.test", &res);
    assert_true(mg_resolve_cache_get(c, 9999, "u@example.test", &got));
    mg_resolve_cache_free(&c);
}

static void test_resolve_cache_full(void **state)
{
    (void)state;
    struct mg_resolve_cache *c = mg_resolve_cache_new(1000, 3);
    struct mg_auth_target t = { .address = "t@example.test", .is_local = true, .is_enabled = true };
    struct mg_auth_resolve_result res = result_of(MG_AUTH_OK, &t, 1);
    struct mg_auth_resolve_result got;
    char a[32];
    for (int i = 0; i < 3; i++) {
        snprintf(a, sizeof(a), "u%d@example.test", i);
        mg_resolve_cache_put(c, (uint64_t)i * 100, a, &res);
    }
    /* Full of fresh answers: a fourth is not kept. */
    mg_resolve_cache_put(c, 500, "u3@example.test", &res);
    assert_false(mg_resolve_cache_get(c, 500, "u3@example.test", &got));
    assert_true(mg_resolve_cache_get(c, 500, "u0@example.test", &got));
    /* Once some expire, they make room. */
    mg_resolve_cache_put(c, 1150, "u3@example.test", &res);
    assert_true(mg_resolve_cache_get(c, 1150, "u3@example.test", &got));
    assert_true(mg_resolve_cache_get(c, 1150, "u2@example.test", &got));
    assert_false(mg_resolve_cache_get(c, 1150, "u0@example.test", &got));
    mg_resolve_cache_free(&c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_resolve_cache_keeps_deliverable_answers),
        cmocka_unit_test(test_resolve_cache_ignores_refusals),
        cmocka_unit_test(test_resolve_cache_use_does_not_extend),
        cmocka_unit_test(test_resolve_cache_full),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
