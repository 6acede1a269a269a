/* common/signals: SIGTERM/SIGINT stop, SIGHUP reloads, on the loop and
 * never in signal context; a second stop signal exits at once; the
 * handles keep no loop alive and close cleanly. Signals are raised with
 * raise(); the cases that end the process run in a forked child. */
#include "testutil.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>
#include <uv.h>

#include "common/signals.h"

struct counts {
    int stop;
    int reload;
    void *last_ctx_stop;
    void *last_ctx_reload;
};

static void on_stop(void *ctx)
{
    struct counts *c = ctx;
    c->stop++;
    c->last_ctx_stop = ctx;
}

static void on_reload(void *ctx)
{
    struct counts *c = ctx;
    c->reload++;
    c->last_ctx_reload = ctx;
}

struct wait_for {
    const int *value;
    int want;
};

static bool reached(void *ctx)
{
    const struct wait_for *w = ctx;
    return *w->value >= w->want;
}

static void wait_count(uv_loop_t *loop, const int *value, int want)
{
    struct wait_for w = { value, want };
    if (!testutil_run_until(loop, reached, &w, 30))
        fail_msg("count %d, expected %d", *value, want);
}

static void test_signals_stop_and_reload(void **state)
{
    (void)state;
    uv_loop_t loop;
    assert_int_equal(uv_loop_init(&loop), 0);
    struct counts c = { 0 };
    struct mg_signals sig;
    mg_signals_init(&sig, &loop, on_stop, on_reload, &c);
    /* The handles keep nothing alive: a loop with only them ends. */
    assert_false(uv_loop_alive(&loop));
    assert_int_equal(uv_run(&loop, UV_RUN_DEFAULT), 0);
    /* Writes to a closed peer give EPIPE, not death. */
    struct sigaction sa;
    assert_int_equal(sigaction(SIGPIPE, NULL, &sa), 0);
    assert_ptr_equal(sa.sa_handler, SIG_IGN);

    assert_int_equal(raise(SIGHUP), 0);
    /* Not in signal context: nothing ran yet. */
    assert_int_equal(c.reload, 0);
    wait_count(&loop, &c.reload, 1);
    assert_int_equal(c.reload, 1);
    assert_int_equal(c.stop, 0);
    assert_ptr_equal(c.last_ctx_reload, &c);

    /* Each SIGHUP is one reload, also several before the loop runs. */
    for (int i = 0; i < 5; i++)
        assert_int_equal(raise(SIGHUP), 0);
    assert_int_equal(c.reload, 1);
    wait_count(&loop, &c.reload, 6);
    assert_int_equal(c.reload, 6);
    for (int i = 0; i < 3; i++) {
        assert_int_equal(raise(SIGHUP), 0);
        wait_count(&loop, &c.reload, 7 + i);
    }
    assert_int_equal(c.reload, 9);
    assert_int_equal(c.stop, 0);

    /* SIGTERM: one stop. */
    assert_int_equal(raise(SIGTERM), 0);
    assert_int_equal(c.stop, 0);
    wait_count(&loop, &c.stop, 1);
    assert_int_equal(c.stop, 1);
    assert_int_equal(c.reload, 9);
    assert_ptr_equal(c.last_ctx_stop, &c);
    assert_int_equal(sig.stop_count, 1);
    /* Reloads still work while stopping. */
    assert_int_equal(raise(SIGHUP), 0);
    wait_count(&loop, &c.reload, 10);

    mg_signals_close(&sig);
    testutil_close_loop(&loop);
}

static void test_signals_sigint_stops(void **state)
{
    (void)state;
    uv_loop_t loop;
    assert_int_equal(uv_loop_init(&loop), 0);
    struct counts c = { 0 };
    struct mg_signals sig;
    mg_signals_init(&sig, &loop, on_stop, on_reload, &c);
    assert_int_equal(raise(SIGINT), 0);
    wait_count(&loop, &c.stop, 1);
    assert_int_equal(c.stop, 1);
    assert_int_equal(c.reload, 0);
    mg_signals_close(&sig);
    testutil_close_loop(&loop);
}

static void count_signal(uv_signal_t *h, int signum)
{
    (void)signum;
    (*(int *)h->data)++;
}

static void test_signals_reload_optional(void **state)
{
    (void)state;
    uv_loop_t loop;
    assert_int_equal(uv_loop_init(&loop), 0);
    struct counts c = { 0 };
    struct mg_signals sig;
    /* mgauthd's serving child has no reload callback. */
    mg_signals_init(&sig, &loop, on_stop, NULL, &c);
    /* A witness handle on the same signal tells when it was dispatched. */
    int seen = 0;
    uv_signal_t witness;
    uv_signal_init(&loop, &witness);
    witness.data = &seen;
    uv_signal_start(&witness, count_signal, SIGHUP);
    assert_int_equal(raise(SIGHUP), 0);
    wait_count(&loop, &seen, 1);
    assert_int_equal(raise(SIGHUP), 0);
    wait_count(&loop, &seen, 2);
    assert_int_equal(c.stop, 0);
    assert_int_equal(c.reload, 0);
    uv_close((uv_handle_t *)&witness, NULL);
    mg_signals_close(&sig);
    testutil_close_loop(&loop);
}

/* ---- in a child ---- */

static void child_on_stop(void *ctx)
{
    (void)ctx;
    printf("stop callback\n");
    fflush(stdout);
}

static void child_on_reload(void *ctx)
{
    (void)ctx;
    printf("reload callback\n");
    fflush(stdout);
}

static bool child_printed(void *ctx)
{
    return *(int *)ctx > 0;
}

static void child_stop_counter(void *ctx)
{
    (*(int *)ctx)++;
    child_on_stop(ctx);
}

struct second_stop {
    int first, second;
};

static int second_stop_child(void *ctx)
{
    const struct second_stop *ss = ctx;
    uv_loop_t loop;
    uv_loop_init(&loop);
    int stops = 0;
    struct mg_signals sig;
    mg_signals_init(&sig, &loop, child_stop_counter, child_on_reload, &stops);
    raise(ss->first);
    if (!testutil_run_until(&loop, child_printed, &stops, 30)) {
        printf("first signal not delivered\n");
        return 3;
    }
    raise(ss->second);
    /* The second stop signal exits(1) from the loop. */
    int never = 0;
    testutil_run_until(&loop, child_printed, &never, 30);
    printf("still running after the second signal\n");
    return 4;
}

static void test_signals_second_stop_exits(void **state)
{
    (void)state;
    static const struct second_stop cases[] = {
        { SIGTERM, SIGTERM }, { SIGTERM, SIGINT }, { SIGINT, SIGTERM },
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char *out = NULL;
        int status = testutil_fork_run(second_stop_child, (void *)&cases[i], 60, &out);
        if (!WIFEXITED(status) || WEXITSTATUS(status) != 1)
            fail_msg("case %zu: status 0x%x, output:\n%s", i, status, out);
        /* The stop callback ran once, then the process left at once. */
        char *first = strstr(out, "stop callback");
        assert_non_null(first);
        assert_null(strstr(first + 1, "stop callback"));
        assert_non_null(strstr(out, "stopping now"));
        assert_null(strstr(out, "reload callback"));
        free(out);
    }
}

static int closed_child(void *ctx)
{
    (void)ctx;
    uv_loop_t loop;
    uv_loop_init(&loop);
    struct mg_signals sig;
    mg_signals_init(&sig, &loop, child_on_stop, child_on_reload, NULL);
    mg_signals_close(&sig);
    uv_run(&loop, UV_RUN_DEFAULT);
    if (uv_loop_close(&loop) != 0) {
        printf("loop not empty after close\n");
        return 3;
    }
    /* Nothing of ours handles SIGHUP any more: the default action. */
    raise(SIGHUP);
    printf("survived SIGHUP\n");
    return 4;
}

static void test_signals_close(void **state)
{
    (void)state;
    char *out = NULL;
    int status = testutil_fork_run(closed_child, NULL, 60, &out);
    if (!WIFSIGNALED(status) || WTERMSIG(status) != SIGHUP)
        fail_msg("status 0x%x, output:\n%s", status, out);
    assert_null(strstr(out, "reload callback"));
    free(out);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_signals_second_stop_exits),
        cmocka_unit_test(test_signals_close),
        cmocka_unit_test(test_signals_stop_and_reload),
        cmocka_unit_test(test_signals_sigint_stops),
        cmocka_unit_test(test_signals_reload_optional),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
