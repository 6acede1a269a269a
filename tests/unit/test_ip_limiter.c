/* common/ip_limiter: per-address connection counts, the total, failed
 * logins in their window (time driven through the API), and memory that
 * follows the live addresses only. */
#include "testutil.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/ip_limiter.h"

static void test_ip_limiter_connections(void **state)
{
    (void)state;
    struct mg_ip_limiter *lim = mg_ip_limiter_new(60000);
    assert_int_equal(mg_ip_limiter_total(lim), 0);
    assert_int_equal(mg_ip_limiter_count(lim), 0);
    /* Each address counts its own connections, from 1. */
    assert_int_equal(mg_ip_limiter_connect(lim, "192.0.2.1"), 1);
    assert_int_equal(mg_ip_limiter_connect(lim, "192.0.2.1"), 2);
    assert_int_equal(mg_ip_limiter_connect(lim, "192.0.2.2"), 1);
    assert_int_equal(mg_ip_limiter_connect(lim, "2001:db8::1"), 1);
    assert_int_equal(mg_ip_limiter_connect(lim, "2001:db8::1"), 2);
    assert_int_equal(mg_ip_limiter_connect(lim, "2001:db8::1"), 3);
    /* Addresses are text: neighbours and prefixes are other addresses. */
    assert_int_equal(mg_ip_limiter_connect(lim, "2001:db8::10"), 1);
    assert_int_equal(mg_ip_limiter_connect(lim, "192.0.2.10"), 1);
    assert_int_equal(mg_ip_limiter_connect(lim, "::1"), 1);
    assert_int_equal(mg_ip_limiter_total(lim), 9);
    assert_int_equal(mg_ip_limiter_count(lim), 6);

    mg_ip_limiter_disconnect(lim, "2001:db8::1");
    assert_int_equal(mg_ip_limiter_total(lim), 8);
    /* The next connection of that address is its third again. */
    assert_int_equal(mg_ip_limiter_connect(lim, "2001:db8::1"), 3);
    for (int i = 0; i < 3; i++)
        mg_ip_limiter_disconnect(lim, "2001:db8::1");
    assert_int_equal(mg_ip_limiter_count(lim), 5);
    /* All gone: it starts from 1. */
    assert_int_equal(mg_ip_limiter_connect(lim, "2001:db8::1"), 1);
    mg_ip_limiter_disconnect(lim, "2001:db8::1");

    /* A disconnect without a connection changes nothing: the total stays
     * the sum of the addresses' counts. */
    unsigned before = mg_ip_limiter_total(lim);
    mg_ip_limiter_disconnect(lim, "203.0.113.9");
    mg_ip_limiter_disconnect(lim, "2001:db8::1");
    assert_int_equal(mg_ip_limiter_total(lim), before);
    assert_int_equal(mg_ip_limiter_connect(lim, "192.0.2.1"), 3);
    assert_int_equal(mg_ip_limiter_total(lim), before + 1);

    const char *all[] = { "192.0.2.1", "192.0.2.1", "192.0.2.1", "192.0.2.2", "2001:db8::10",
                          "192.0.2.10", "::1" };
    for (size_t i = 0; i < sizeof(all) / sizeof(all[0]); i++)
        mg_ip_limiter_disconnect(lim, all[i]);
    assert_int_equal(mg_ip_limiter_total(lim), 0);
    assert_int_equal(mg_ip_limiter_count(lim), 0);
    /* Underflow is impossible. */
    mg_ip_limiter_disconnect(lim, "192.0.2.1");
    assert_int_equal(mg_ip_limiter_total(lim), 0);
    mg_ip_limiter_free(&lim);
    assert_null(lim);
    mg_ip_limiter_free(&lim);
}

static void test_ip_limiter_failure_window(void **state)
{
    (void)state;
    const uint64_t w = 1000;
    struct mg_ip_limiter *lim = mg_ip_limiter_new(w);
    /* Monotonic time is small on a freshly booted host: the window opens
     * with the first failure, not at 0. */
    uint64_t t0 = 500;
    assert_int_equal(mg_ip_limiter_failures(lim, "192.0.2.1", t0), 0);
    mg_ip_limiter_fail(lim, "192.0.2.1", t0);
    mg_ip_limiter_fail(lim, "192.0.2.1", t0 + 100);
    mg_ip_limiter_fail(lim, "192.0.2.1", t0 + 900);
    assert_int_equal(mg_ip_limiter_failures(lim, "192.0.2.1", t0 + 900), 3);
    /* Up to and including t0 + w the failures count... */
    assert_int_equal(mg_ip_limiter_failures(lim, "192.0.2.1", t0 + w), 3);
    /* ... and the other addresses know nothing of them. */
    assert_int_equal(mg_ip_limiter_failures(lim, "192.0.2.2", t0 + 10), 0);
    assert_int_equal(mg_ip_limiter_failures(lim, "::ffff:192.0.2.1", t0 + 10), 0);
    /* One millisecond later they are forgotten, and so is the address. */
    assert_int_equal(mg_ip_limiter_failures(lim, "192.0.2.1", t0 + w + 1), 0);
    assert_int_equal(mg_ip_limiter_count(lim), 0);

    /* A failure after the window opens a new one from that time. */
    uint64_t t1 = 10 * 1000 * 1000;
    mg_ip_limiter_fail(lim, "2001:db8::7", t1);
    assert_int_equal(mg_ip_limiter_failures(lim, "2001:db8::7", t1), 1);
    mg_ip_limiter_fail(lim, "2001:db8::7", t1 + w + 1);
    assert_int_equal(mg_ip_limiter_failures(lim, "2001:db8::7", t1 + w + 1), 1);
    mg_ip_limiter_fail(lim, "2001:db8::7", t1 + 2 * w);
    assert_int_equal(mg_ip_limiter_failures(lim, "2001:db8::7", t1 + 2 * w + 1), 2);
    assert_int_equal(mg_ip_limiter_failures(lim, "2001:db8::7", t1 + 2 * w + 2), 0);

    /* Failures and connections live side by side: an address with a
     * connection open stays, its failures expire on their own. */
    uint64_t t2 = 20 * 1000 * 1000;
    assert_int_equal(mg_ip_limiter_connect(lim, "192.0.2.3"), 1);
    mg_ip_limiter_fail(lim, "192.0.2.3", t2);
    mg_ip_limiter_fail(lim, "192.0.2.3", t2);
    assert_int_equal(mg_ip_limiter_failures(lim, "192.0.2.3", t2 + 1), 2);
    mg_ip_limiter_disconnect(lim, "192.0.2.3");
    /* Disconnecting keeps the failures (the next connection sees them). */
    assert_int_equal(mg_ip_limiter_failures(lim, "192.0.2.3", t2 + 2), 2);
    assert_int_equal(mg_ip_limiter_connect(lim, "192.0.2.3"), 1);
    assert_int_equal(mg_ip_limiter_failures(lim, "192.0.2.3", t2 + w + 1), 0);
    assert_int_equal(mg_ip_limiter_count(lim), 1);
    mg_ip_limiter_disconnect(lim, "192.0.2.3");
    assert_int_equal(mg_ip_limiter_count(lim), 0);
    assert_int_equal(mg_ip_limiter_total(lim), 0);

    /* Many failures of one address. */
    for (unsigned i = 0; i < 100000; i++)
        mg_ip_limiter_fail(lim, "198.51.100.1", t2 + i / 1000);
    assert_int_equal(mg_ip_limiter_failures(lim, "198.51.100.1", t2 + 100), 100000);
    mg_ip_limiter_free(&lim);
}

static void test_ip_limiter_window_zero(void **state)
{
    (void)state;
    /* A zero window: failures count within the same millisecond only. */
    struct mg_ip_limiter *lim = mg_ip_limiter_new(0);
    mg_ip_limiter_fail(lim, "192.0.2.1", 7000);
    mg_ip_limiter_fail(lim, "192.0.2.1", 7000);
    assert_int_equal(mg_ip_limiter_failures(lim, "192.0.2.1", 7000), 2);
    assert_int_equal(mg_ip_limiter_failures(lim, "192.0.2.1", 7001), 0);
    mg_ip_limiter_free(&lim);
}

static void ip_text(unsigned i, bool v6, char *buf, size_t size)
{
    if (v6)
        snprintf(buf, size, "2001:db8:%x:%x::%x", (i >> 16) & 0xffff, (i >> 8) & 0xff, i & 0xff);
    else
        snprintf(buf, size, "10.%u.%u.%u", (i >> 16) & 0xff, (i >> 8) & 0xff, i & 0xff);
}

static void test_ip_limiter_many_addresses(void **state)
{
    (void)state;
    const unsigned n = 50000;
    struct mg_ip_limiter *lim = mg_ip_limiter_new(60000);
    char ip[64];
    /* A scan: many addresses connect and leave. */
    for (unsigned i = 0; i < n; i++) {
        ip_text(i, i & 1, ip, sizeof(ip));
        assert_int_equal(mg_ip_limiter_connect(lim, ip), 1);
    }
    assert_int_equal(mg_ip_limiter_total(lim), n);
    assert_int_equal(mg_ip_limiter_count(lim), n);
    for (unsigned i = 0; i < n; i++) {
        ip_text(i, i & 1, ip, sizeof(ip));
        assert_int_equal(mg_ip_limiter_connect(lim, ip), 2);
    }
    assert_int_equal(mg_ip_limiter_total(lim), 2 * n);
    for (unsigned i = 0; i < n; i++) {
        ip_text(i, i & 1, ip, sizeof(ip));
        mg_ip_limiter_disconnect(lim, ip);
        mg_ip_limiter_disconnect(lim, ip);
    }
    assert_int_equal(mg_ip_limiter_total(lim), 0);
    assert_int_equal(mg_ip_limiter_count(lim), 0);

    /* A password-guessing botnet: each address fails once during a
     * connection and never comes back. Within the window they are all
     * remembered... */
    uint64_t t = 1000000;
    for (unsigned i = 0; i < n; i++) {
        ip_text(i, i & 1, ip, sizeof(ip));
        mg_ip_limiter_connect(lim, ip);
        mg_ip_limiter_fail(lim, ip, t + i / 100);
        mg_ip_limiter_disconnect(lim, ip);
    }
    assert_int_equal(mg_ip_limiter_total(lim), 0);
    assert_true(mg_ip_limiter_count(lim) >= n);
    for (unsigned i = 0; i < n; i += 997) {
        ip_text(i, i & 1, ip, sizeof(ip));
        assert_int_equal(mg_ip_limiter_failures(lim, ip, t + 1000), 1);
    }
    /* ... and once it is over, the next wave does not add up to them:
     * memory follows the addresses of one window, not all addresses ever. */
    for (unsigned wave = 1; wave <= 4; wave++) {
        uint64_t tw = t + wave * 100000;
        for (unsigned i = 0; i < n; i++) {
            ip_text(i + wave * n, i & 1, ip, sizeof(ip));
            mg_ip_limiter_connect(lim, ip);
            mg_ip_limiter_fail(lim, ip, tw);
            mg_ip_limiter_disconnect(lim, ip);
        }
        size_t count = mg_ip_limiter_count(lim);
        if (count > 3 * (size_t)n)
            fail_msg("wave %u: %zu addresses remembered for %u live ones", wave, count, n);
    }
    /* Live entries survive the sweeps: the last wave is all there. */
    for (unsigned i = 0; i < n; i += 101) {
        ip_text(i + 4 * n, i & 1, ip, sizeof(ip));
        assert_int_equal(mg_ip_limiter_failures(lim, ip, t + 400000 + 1), 1);
    }
    /* And so do addresses with a connection open whose failures expired. */
    mg_ip_limiter_connect(lim, "192.0.2.200");
    mg_ip_limiter_fail(lim, "192.0.2.200", t + 400000);
    for (unsigned i = 0; i < 3 * n; i++) {
        ip_text(i + 6 * n, i & 1, ip, sizeof(ip));
        mg_ip_limiter_fail(lim, ip, t + 900000);
    }
    assert_int_equal(mg_ip_limiter_connect(lim, "192.0.2.200"), 2);
    assert_int_equal(mg_ip_limiter_total(lim), 2);
    mg_ip_limiter_disconnect(lim, "192.0.2.200");
    mg_ip_limiter_disconnect(lim, "192.0.2.200");
    assert_int_equal(mg_ip_limiter_total(lim), 0);
    /* Freed with entries in it: LeakSanitizer checks the values went too. */
    mg_ip_limiter_free(&lim);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_ip_limiter_connections),
        cmocka_unit_test(test_ip_limiter_failure_window),
        cmocka_unit_test(test_ip_limiter_window_zero),
        cmocka_unit_test(test_ip_limiter_many_addresses),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
