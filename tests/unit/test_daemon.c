/* common/daemon: the command line every daemon takes (exit statuses and
 * messages), the configuration checks, and the signals: SIGHUP hands a
 * fresh configuration to the reload hook (or nothing when it does not
 * load), SIGTERM calls the stop hook and ends the loop once the daemon is
 * idle, or when the grace period is over. The command-line cases print
 * and exit, so they run in a forked child. */
#include "testutil.h"

#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <uv.h>

#include "common/alloc.h"
#include "common/daemon.h"
#include "common/log.h"
#include "common/settings.h"

static const struct mg_daemon_info info = {
    .name = "mgtestd",
    .summary = "A daemon for the tests.",
    .required = (const char *const[]){ "tls.key_file", NULL },
    .busy_warning = "stopping with test work left",
};

struct cmdline {
    const char *args[6];
    int want_status; /* 100: the daemon runs */
    const char *want_output;
};

/* Exit status: mg_daemon_init's, or 100 when the daemon would run. */
static int init_child(void *ctx)
{
    const struct cmdline *c = ctx;
    char *argv[8] = { "mgtestd" };
    int argc = 1;
    for (size_t i = 0; c->args[i] != NULL; i++)
        argv[argc++] = (char *)c->args[i];
    struct mg_daemon d;
    int status;
    optind = 0;
    if (mg_daemon_init(&d, &info, argc, argv, &status) != 0)
        return status;
    printf("running hostname=%s\n", d.settings->hostname);
    mg_daemon_close(&d);
    return 100;
}

static void write_config(const char *path, const char *text)
{
    testutil_write_file(path, text, strlen(text));
}

static void test_daemon_command_line(void **state)
{
    (void)state;
    char *dir = testutil_mkdtemp();
    char *good = mg_asprintf("%s/good.conf", dir);
    char *bare = mg_asprintf("%s/bare.conf", dir);
    char *bad = mg_asprintf("%s/bad.conf", dir);
    write_config(good, "hostname = mx.test\n[tls]\nkey_file = /etc/k.pem\n");
    write_config(bare, "log_level = info\n");
    write_config(bad, "[imap]\nbogus = 1\n");
    char valid[512];
    snprintf(valid, sizeof(valid), "mgtestd: %s is valid", good);
    const struct cmdline cases[] = {
        { { "--help", NULL }, 0, "Usage: mgtestd [-c FILE]" },
        { { "-h", NULL }, 0, "A daemon for the tests." },
        { { "-V", NULL }, 0, "mgtestd " MG_VERSION },
        { { "--bogus", NULL }, 2, "Usage: mgtestd" },
        { { "-c", good, "extra", NULL }, 2, "Usage: mgtestd" },
        { { "-c", good, "--check-config", NULL }, 0, valid },
        { { "--config", good, "--dump-config", NULL }, 0, "hostname = mx.test" },
        { { "-c", bare, "--check-config", NULL }, 1, "mgtestd: " },
        { { "-c", bare, NULL }, 1, "[tls] key_file must be set" },
        { { "-c", bad, NULL }, 1, "bogus" },
        { { "-c", "/nonexistent/mailgenic.conf", NULL }, 1, "cannot open" },
        { { "-c", good, NULL }, 100, "running hostname=mx.test" },
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char *out = NULL;
        int status = testutil_fork_run(init_child, (void *)&cases[i], 30, &out);
        if (!WIFEXITED(status) || WEXITSTATUS(status) != cases[i].want_status ||
            strstr(out, cases[i].want_output) == NULL)
            fail_msg("case %zu: status 0x%x, output:\n%s", i, status, out);
        free(out);
    }
    free(good);
    free(bare);
    free(bad);
    testutil_rmtree(dir);
    free(dir);
}

/* What the hooks saw. */
struct probe {
    struct mg_daemon *d;
    int stops;
    int idle_polls;
    int idle_after;   /* is_idle says yes from this poll on; -1: never */
    int reloads;
    char reload_hostname[64];
    bool was_stopping_in_stop;
};

static void probe_stop(void *ctx)
{
    struct probe *p = ctx;
    p->stops++;
    p->was_stopping_in_stop = p->d->is_stopping;
}

static bool probe_is_idle(void *ctx)
{
    struct probe *p = ctx;
    p->idle_polls++;
    return p->idle_after >= 0 && p->idle_polls >= p->idle_after;
}

static void probe_reload(void *ctx, const struct mg_settings *fresh)
{
    struct probe *p = ctx;
    p->reloads++;
    snprintf(p->reload_hostname, sizeof(p->reload_hostname), "%s", fresh->hostname);
}

static const struct mg_daemon_hooks probe_hooks = {
    .stop = probe_stop,
    .is_idle = probe_is_idle,
    .reload = probe_reload,
};

static bool has_reloaded(void *ctx)
{
    const struct probe *p = ctx;
    return p->reloads > 0;
}

/* For a timer that keeps the loop alive: only uv_stop ends uv_run. */
static void never_cb(uv_timer_t *t)
{
    (void)t;
    fail_msg("the stop did not end the loop");
}

static void elapsed_cb(uv_timer_t *t)
{
    (void)t;
}

/* Runs the loop for ms: the signal handles alone keep no loop running. */
static void run_for(uv_loop_t *loop, uint64_t ms)
{
    uv_timer_t t;
    uv_timer_init(loop, &t);
    uv_timer_start(&t, elapsed_cb, ms, 0);
    uv_run(loop, UV_RUN_DEFAULT);
    uv_close((uv_handle_t *)&t, NULL);
    uv_run(loop, UV_RUN_NOWAIT);
}

/* A daemon running in this process on its own configuration file, with
 * a pending timer standing for its work (the loop would not end alone). */
struct running {
    char *dir;
    char *path;
    struct mg_daemon d;
    struct probe p;
    uv_timer_t busy;
};

static void running_start(struct running *r, const char *config, int idle_after)
{
    r->dir = testutil_mkdtemp();
    r->path = mg_asprintf("%s/mailgenic.conf", r->dir);
    write_config(r->path, config);
    r->p = (struct probe){ .d = &r->d, .idle_after = idle_after };
    char *argv[] = { "mgtestd", "-c", r->path, NULL };
    int status = -1;
    optind = 0;
    assert_int_equal(mg_daemon_init(&r->d, &info, 3, argv, &status), 0);
    assert_non_null(r->d.settings);
    assert_ptr_equal(r->d.loop, uv_default_loop());
    assert_non_null(getenv("UV_THREADPOOL_SIZE"));
    mg_daemon_start(&r->d, &probe_hooks, &r->p);
    uv_timer_init(r->d.loop, &r->busy);
    uv_timer_start(&r->busy, never_cb, 600000, 0);
}

static void running_end(struct running *r)
{
    uv_close((uv_handle_t *)&r->busy, NULL);
    mg_daemon_close(&r->d);
    assert_null(r->d.settings);
    testutil_close_loop(uv_default_loop());
    testutil_rmtree(r->dir);
    free(r->path);
    free(r->dir);
}

static void test_daemon_reload(void **state)
{
    (void)state;
    struct running r;
    running_start(&r, "hostname = one.test\nlog_level = info\n[tls]\nkey_file = /k\n", 1);
    uv_unref((uv_handle_t *)&r.busy);
    assert_int_equal(mg_log_get_level(), MG_LOG_INFO);

    /* A new file: log_level applied here, the rest for the hook. */
    write_config(r.path, "hostname = two.test\nlog_level = warning\n[tls]\nkey_file = /k\n");
    assert_int_equal(raise(SIGHUP), 0);
    assert_true(testutil_run_until(r.d.loop, has_reloaded, &r.p, 30));
    assert_int_equal(r.p.reloads, 1);
    assert_string_equal(r.p.reload_hostname, "two.test");
    assert_int_equal(mg_log_get_level(), MG_LOG_WARNING);
    /* The settings the daemon started with stay. */
    assert_string_equal(r.d.settings->hostname, "one.test");

    /* A file that does not load changes nothing, and says so. */
    write_config(r.path, "hostname = three.test\n[imap]\nbogus = 1\n");
    struct testutil_capture cap;
    testutil_capture_stderr_begin(&cap);
    assert_int_equal(raise(SIGHUP), 0);
    run_for(r.d.loop, 300);
    char *log = testutil_capture_stderr_end(&cap);
    assert_int_equal(r.p.reloads, 1);
    assert_non_null(strstr(log, "reload failed, keeping the old configuration"));
    assert_int_equal(mg_log_get_level(), MG_LOG_WARNING);
    free(log);
    assert_int_equal(r.p.stops, 0);
    mg_log_set_level(MG_LOG_INFO);
    running_end(&r);
}

/* SIGTERM: the stop hook once, then the loop ends when is_idle says so. */
static void test_daemon_stop_when_idle(void **state)
{
    (void)state;
    struct running r;
    running_start(&r, "hostname = one.test\n[tls]\nkey_file = /k\n", 3);
    assert_false(r.d.is_stopping);
    assert_int_equal(raise(SIGTERM), 0);
    uv_run(r.d.loop, UV_RUN_DEFAULT);
    assert_true(r.d.is_stopping);
    assert_true(r.p.was_stopping_in_stop);
    assert_int_equal(r.p.stops, 1);
    assert_int_equal(r.p.idle_polls, 3);
    running_end(&r);
}

/* A daemon that never gets idle: the loop ends after the grace period,
 * with the daemon's warning. */
static void test_daemon_stop_grace(void **state)
{
    (void)state;
    struct running r;
    running_start(&r, "hostname = one.test\n[tls]\nkey_file = /k\n", -1);
    struct testutil_capture cap;
    testutil_capture_stderr_begin(&cap);
    uint64_t start = uv_hrtime();
    assert_int_equal(raise(SIGTERM), 0);
    uv_run(r.d.loop, UV_RUN_DEFAULT);
    double waited_ms = (double)(uv_hrtime() - start) / 1e6;
    char *log = testutil_capture_stderr_end(&cap);
    assert_int_equal(r.p.stops, 1);
    assert_true(waited_ms >= MG_DAEMON_STOP_GRACE_MS - 200);
    assert_int_equal(r.p.idle_polls, MG_DAEMON_STOP_GRACE_MS / 100);
    assert_non_null(strstr(log, "stopping with test work left"));
    free(log);
    running_end(&r);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_daemon_command_line),
        cmocka_unit_test(test_daemon_reload),
        cmocka_unit_test(test_daemon_stop_when_idle),
        cmocka_unit_test(test_daemon_stop_grace),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
