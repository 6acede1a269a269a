/* common/sd_notify: datagrams to $NOTIFY_SOCKET (a path or an abstract
 * "@name"), as systemd reads them; nothing at all without it. */
#include "testutil.h"

#include <dirent.h>
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "common/alloc.h"
#include "common/sd_notify.h"

static char *tmpdir;

static int setup(void **state)
{
    (void)state;
    tmpdir = testutil_mkdtemp();
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    unsetenv("NOTIFY_SOCKET");
    testutil_rmtree(tmpdir);
    free(tmpdir);
    return 0;
}

static int count_fds(void)
{
    DIR *d = opendir("/proc/self/fd");
    assert_non_null(d);
    int n = 0;
    while (readdir(d) != NULL)
        n++;
    closedir(d);
    return n;
}

/* A datagram socket like systemd's; name starting with '@' is abstract. */
static int bind_receiver(const char *name)
{
    int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    assert_true(fd >= 0);
    struct sockaddr_un sun = { .sun_family = AF_UNIX };
    size_t len = strlen(name);
    assert_true(len <= sizeof(sun.sun_path));
    memcpy(sun.sun_path, name, len);
    if (name[0] == '@')
        sun.sun_path[0] = '\0';
    socklen_t alen = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + len);
    if (bind(fd, (struct sockaddr *)&sun, alen) != 0)
        fail_msg("bind %s: %s", name, strerror(errno));
    return fd;
}

/* The next datagram, waiting up to 10 s; NULL when none comes in wait_ms. */
static char *receive(int fd, int wait_ms)
{
    struct pollfd p = { .fd = fd, .events = POLLIN };
    if (poll(&p, 1, wait_ms) != 1)
        return NULL;
    char buf[4096];
    ssize_t n = recv(fd, buf, sizeof(buf) - 1, 0);
    assert_true(n >= 0);
    buf[n] = '\0';
    return mg_strndup(buf, (size_t)n);
}

static void expect_datagram(int fd, const char *want)
{
    char *got = receive(fd, 10000);
    if (got == NULL)
        fail_msg("no datagram for %s", want);
    assert_string_equal(got, want);
    free(got);
}

static void expect_nothing(int fd)
{
    char *got = receive(fd, 0);
    if (got != NULL)
        fail_msg("unexpected datagram %s", got);
}

static const char *const states[] = {
    "READY=1", "RELOADING=1", "STOPPING=1", "STATUS=serving 3 connections",
    "READY=1\nSTATUS=multi-line\nMAINPID=1", "WATCHDOG=1",
};

static void send_all_states(int fd)
{
    for (size_t i = 0; i < sizeof(states) / sizeof(states[0]); i++) {
        assert_int_equal(mg_sd_notify(states[i]), 0);
        expect_datagram(fd, states[i]);
    }
    expect_nothing(fd);
}

static void test_sd_notify_path_socket(void **state)
{
    (void)state;
    char *path = mg_asprintf("%s/notify.sock", tmpdir);
    int fd = bind_receiver(path);
    setenv("NOTIFY_SOCKET", path, 1);
    int fds = count_fds();
    send_all_states(fd);
    /* Every call opens and closes its own socket: nothing leaks. */
    for (int i = 0; i < 200; i++) {
        assert_int_equal(mg_sd_notify("STATUS=x"), 0);
        expect_datagram(fd, "STATUS=x");
    }
    assert_int_equal(count_fds(), fds);
    /* The environment is left as it was (a daemon notifies many times). */
    assert_string_equal(getenv("NOTIFY_SOCKET"), path);
    close(fd);
    unlink(path);
    free(path);
}

static void test_sd_notify_abstract_socket(void **state)
{
    (void)state;
    char *name = mg_asprintf("@mgtest-sd-notify-%d-%ld", (int)getpid(), (long)random());
    int fd = bind_receiver(name);
    setenv("NOTIFY_SOCKET", name, 1);
    send_all_states(fd);
    close(fd);
    /* No receiver any more: an error, not a hang or a crash. */
    assert_int_equal(mg_sd_notify("READY=1"), -1);
    free(name);
}

static void test_sd_notify_longest_names(void **state)
{
    (void)state;
    struct sockaddr_un sun;
    size_t max = sizeof(sun.sun_path) - 1; /* 107: a path needs its NUL */
    /* A path of exactly 107 bytes. */
    char *path = mg_asprintf("%s/", tmpdir);
    size_t dirlen = strlen(path);
    assert_true(dirlen < max - 1);
    char *longpath = mg_malloc(max + 2);
    memcpy(longpath, path, dirlen);
    memset(longpath + dirlen, 'n', max - dirlen);
    longpath[max] = '\0';
    int fd = bind_receiver(longpath);
    setenv("NOTIFY_SOCKET", longpath, 1);
    assert_int_equal(mg_sd_notify("READY=1"), 0);
    expect_datagram(fd, "READY=1");
    close(fd);
    unlink(longpath);
    /* One more byte cannot be a socket address: refused, nothing sent. */
    longpath[max] = 'n';
    longpath[max + 1] = '\0';
    setenv("NOTIFY_SOCKET", longpath, 1);
    assert_int_equal(mg_sd_notify("READY=1"), -1);
    /* An abstract name of 107 bytes after the '@'... */
    char *abs = mg_malloc(max + 2);
    abs[0] = '@';
    snprintf(abs + 1, max + 1, "mgtest-%d-", (int)getpid());
    size_t l = strlen(abs);
    memset(abs + l, 'a', max - l);
    abs[max] = '\0';
    fd = bind_receiver(abs);
    setenv("NOTIFY_SOCKET", abs, 1);
    assert_int_equal(mg_sd_notify("STOPPING=1"), 0);
    expect_datagram(fd, "STOPPING=1");
    close(fd);
    free(abs);
    free(longpath);
    free(path);
}

static void test_sd_notify_without_systemd(void **state)
{
    (void)state;
    /* A receiver that must hear nothing. */
    char *path = mg_asprintf("%s/quiet.sock", tmpdir);
    int fd = bind_receiver(path);
    int fds = count_fds();
    unsetenv("NOTIFY_SOCKET");
    for (size_t i = 0; i < sizeof(states) / sizeof(states[0]); i++)
        assert_int_equal(mg_sd_notify(states[i]), 0);
    setenv("NOTIFY_SOCKET", "", 1);
    assert_int_equal(mg_sd_notify("READY=1"), 0);
    expect_nothing(fd);
    assert_int_equal(count_fds(), fds);
    close(fd);
    unlink(path);
    free(path);
}

static void test_sd_notify_bad_socket(void **state)
{
    (void)state;
    int fds = count_fds();
    /* Neither a path nor an abstract name. */
    setenv("NOTIFY_SOCKET", "relative/notify.sock", 1);
    assert_int_equal(mg_sd_notify("READY=1"), -1);
    /* A path where nothing listens. */
    char *missing = mg_asprintf("%s/missing.sock", tmpdir);
    setenv("NOTIFY_SOCKET", missing, 1);
    assert_int_equal(mg_sd_notify("READY=1"), -1);
    /* A regular file. */
    char *file = mg_asprintf("%s/file", tmpdir);
    testutil_write_file(file, "x", 1);
    setenv("NOTIFY_SOCKET", file, 1);
    assert_int_equal(mg_sd_notify("READY=1"), -1);
    /* A stream socket is not a datagram socket. */
    char *stream = mg_asprintf("%s/stream.sock", tmpdir);
    int s = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_un sun = { .sun_family = AF_UNIX };
    snprintf(sun.sun_path, sizeof(sun.sun_path), "%s", stream);
    assert_int_equal(bind(s, (struct sockaddr *)&sun, sizeof(sun)), 0);
    assert_int_equal(listen(s, 1), 0);
    setenv("NOTIFY_SOCKET", stream, 1);
    assert_int_equal(mg_sd_notify("READY=1"), -1);
    close(s);
    /* Failures leak no descriptor. */
    assert_int_equal(count_fds(), fds);
    free(missing);
    free(file);
    free(stream);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_sd_notify_path_socket, setup, teardown),
        cmocka_unit_test_setup_teardown(test_sd_notify_abstract_socket, setup, teardown),
        cmocka_unit_test_setup_teardown(test_sd_notify_longest_names, setup, teardown),
        cmocka_unit_test_setup_teardown(test_sd_notify_without_systemd, setup, teardown),
        cmocka_unit_test_setup_teardown(test_sd_notify_bad_socket, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
