
#include "testutil.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <netinet/in.h>
#include <poll.h>
#include <pwd.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <uv.h>

#include "common/alloc.h"

char *testutil_mkdtemp(void)
{
    const char *tmp = getenv("TMPDIR");
    char *tmpl = mg_asprintf("%s/mgtest.XXXXXX", tmp != NULL && tmp[0] != '\0' ? tmp : "/tmp");
    if (mkdtemp(tmpl) == NULL)
        fail_msg("mkdtemp: %s", strerror(errno));
    return tmpl;
}

static int rmtree_cb(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb;
    (void)flag;
    (void)ftw;
    remove(path);
    return 0;
}

void testutil_rmtree(const char *path)
{
    nftw(path, rmtree_cb, 16, FTW_DEPTH | FTW_PHYS);
}

void testutil_write_file(const char *path, const char *data, size_t len)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0)
        fail_msg("open %s: %s", path, strerror(errno));
    size_t off = 0;
    while (off < len) {
        ssize_t w = write(fd, data + off, len - off);
        if (w <= 0)
            fail_msg("write %s: %s", path, strerror(errno));
        off += (size_t)w;
    }
    close(fd);
}

char *testutil_read_file(const char *path, size_t *len_r)
{
    FILE *f = fopen(path, "rb");
    if (f == NULL)
        return NULL;
    size_t cap = 4096, len = 0;
    char *data = mg_malloc(cap);
    size_t n;
    while ((n = fread(data + len, 1, cap - len - 1, f)) > 0) {
        len += n;
        if (cap - len < 2) {
            cap *= 2;
            data = mg_realloc(data, cap);
        }
    }
    fclose(f);
    data[len] = '\0';
    if (len_r != NULL)
        *len_r = len;
    return data;
}

char *testutil_source_path(const char *rel)
{
    const char *top = getenv("MG_TEST_SOURCE_DIR");
    if (top == NULL)
        top = ".";
    return mg_asprintf("%s/%s", top, rel);
}

struct run_loop_timeout {
    uv_timer_t timer;
    int fired;
};

static void run_loop_timeout_cb(uv_timer_t *timer)
{
    struct run_loop_timeout *t = timer->data;
    t->fired = 1;
    uv_stop(timer->loop);
}

void testutil_run_loop(uv_loop_t *loop, double seconds)
{
    struct run_loop_timeout t = { .fired = 0 };
    uv_timer_init(loop, &t.timer);
    t.timer.data = &t;
    uv_timer_start(&t.timer, run_loop_timeout_cb, (uint64_t)(seconds * 1000), 0);
    /* The timer must not keep the loop alive by itself. */
    uv_unref((uv_handle_t *)&t.timer);
    uv_run(loop, UV_RUN_DEFAULT);
    uv_close((uv_handle_t *)&t.timer, NULL);
    uv_run(loop, UV_RUN_NOWAIT);
    if (t.fired)
        fail_msg("event loop still busy after %.1f s", seconds);
}

static void close_walk_cb(uv_handle_t *handle, void *arg)
{
    (void)arg;
    if (!uv_is_closing(handle))
        uv_close(handle, NULL);
}

void testutil_close_loop(uv_loop_t *loop)
{
    uv_walk(loop, close_walk_cb, NULL);
    uv_run(loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(loop), 0);
}

void testutil_make_cert(const char *dir, const char *base, const char *name,
                        char **cert_r, char **key_r)
{
    char *cert = mg_asprintf("%s/%s.pem", dir, base);
    char *key = mg_asprintf("%s/%s.key", dir, base);
    char *cmd = mg_asprintf(
        "openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 "
        "-subj /CN=%s -addext subjectAltName=DNS:%s,IP:127.0.0.1 -keyout %s -out %s "
        ">/dev/null 2>&1",
        name, name, key, cert);
    if (system(cmd) != 0)
        fail_msg("cannot create a test certificate with openssl(1)");
    free(cmd);
    *cert_r = cert;
    *key_r = key;
}

/* ---- dnsmasq ---- */

/* A port free for UDP and TCP on 127.0.0.1 right now (dnsmasq serves
 * both). Another process may take it before dnsmasq binds: then dnsmasq
 * exits and the start fails rather than talk to a stranger. */
static uint16_t dnsmasq_free_port(void)
{
    for (int attempt = 0; attempt < 20; attempt++) {
        int u = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
        int t = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        struct sockaddr_in sin = { .sin_family = AF_INET };
        sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        socklen_t len = sizeof(sin);
        uint16_t port = 0;
        if (bind(u, (struct sockaddr *)&sin, sizeof(sin)) == 0 &&
            getsockname(u, (struct sockaddr *)&sin, &len) == 0 &&
            bind(t, (struct sockaddr *)&sin, sizeof(sin)) == 0)
            port = ntohs(sin.sin_port);
        close(u);
        close(t);
        if (port > 1024)
            return port;
    }
    return 0;
}

/* Sends one A query for ready.test and waits briefly for any answer: the
 * child is up once it answers, not once it has been forked. */
static bool dnsmasq_answers(uint16_t port)
{
    static const unsigned char query[] = {
        0x12, 0x34, 0x01, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
        5, 'r', 'e', 'a', 'd', 'y', 4, 't', 'e', 's', 't', 0, 0x00, 0x01, 0x00, 0x01,
    };
    int s = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (s < 0)
        return false;
    struct sockaddr_in sin = { .sin_family = AF_INET, .sin_port = htons(port) };
    sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    sendto(s, query, sizeof(query), 0, (struct sockaddr *)&sin, sizeof(sin));
    struct pollfd p = { .fd = s, .events = POLLIN };
    bool ok = poll(&p, 1, 100) == 1;
    close(s);
    return ok;
}

static const char *dnsmasq_binary(void)
{
    static const char *const paths[] = { "/usr/sbin/dnsmasq", "/usr/bin/dnsmasq", "/sbin/dnsmasq" };
    for (size_t i = 0; i < sizeof(paths) / sizeof(paths[0]); i++) {
        if (access(paths[i], X_OK) == 0)
            return paths[i];
    }
    return NULL;
}

int testutil_dnsmasq_start(const char *const *records, size_t n_records,
                           struct testutil_dnsmasq **dnsmasq_r)
{
    *dnsmasq_r = NULL;
    const char *bin = dnsmasq_binary();
    /* --user: stay who we are (as root, dnsmasq would switch to "nobody",
     * which may not exist in a build container). */
    struct passwd *pw = getpwuid(getuid());
    uint16_t port = dnsmasq_free_port();
    if (bin == NULL || pw == NULL || port == 0)
        return -1;
    char port_arg[32], user_arg[300];
    snprintf(port_arg, sizeof(port_arg), "--port=%u", port);
    snprintf(user_arg, sizeof(user_arg), "--user=%s", pw->pw_name);
    static const char *const fixed[] = {
        "--keep-in-foreground", "--conf-file=/dev/null", "--no-resolv", "--no-hosts",
        "--listen-address=127.0.0.1", "--bind-interfaces", "--pid-file=", "--local=/test/",
    };
    size_t n_fixed = sizeof(fixed) / sizeof(fixed[0]);
    /* Built before fork: the child only execs. */
    const char **argv = mg_calloc(n_fixed + n_records + 4, sizeof(*argv));
    size_t n = 0;
    argv[n++] = bin;
    for (size_t i = 0; i < n_fixed; i++)
        argv[n++] = fixed[i];
    argv[n++] = port_arg;
    argv[n++] = user_arg;
    for (size_t i = 0; i < n_records; i++)
        argv[n++] = records[i];
    argv[n] = NULL;
    pid_t pid = fork();
    if (pid < 0) {
        free(argv);
        return -1;
    }
    if (pid == 0) {
        if (getenv("MG_TEST_VERBOSE") == NULL) {
            int null = open("/dev/null", O_RDWR);
            dup2(null, 1);
            dup2(null, 2);
        }
        execv(bin, (char *const *)argv);
        _exit(127);
    }
    free(argv);
    for (int i = 0; i < 50; i++) {
        if (waitpid(pid, NULL, WNOHANG) == pid)
            return -1; /* exited: a bad option, or the port was taken */
        if (dnsmasq_answers(port)) {
            struct testutil_dnsmasq *d = mg_calloc(1, sizeof(*d));
            d->pid = pid;
            d->port = port;
            snprintf(d->server, sizeof(d->server), "127.0.0.1:%u", port);
            *dnsmasq_r = d;
            return 0;
        }
    }
    /* Running but silent: it must not outlive the test program. */
    kill(pid, SIGTERM);
    waitpid(pid, NULL, 0);
    return -1;
}

void testutil_dnsmasq_stop(struct testutil_dnsmasq **dnsmasq)
{
    struct testutil_dnsmasq *d = *dnsmasq;
    if (d == NULL)
        return;
    *dnsmasq = NULL;
    kill(d->pid, SIGTERM);
    waitpid(d->pid, NULL, 0);
    free(d);
}

struct testutil_until {
    uv_timer_t timer;
    bool (*done)(void *ctx);
    void *ctx;
};

static void until_cb(uv_timer_t *t)
{
    struct testutil_until *u = t->data;
    if (u->done(u->ctx))
        uv_stop(t->loop);
}

bool testutil_run_until(uv_loop_t *loop, bool (*done)(void *ctx), void *ctx, double seconds)
{
    struct testutil_until u = { .done = done, .ctx = ctx };
    uv_timer_init(loop, &u.timer);
    u.timer.data = &u;
    uv_timer_start(&u.timer, until_cb, 2, 2);
    uv_update_time(loop);
    uint64_t deadline = uv_now(loop) + (uint64_t)(seconds * 1000);
    while (!done(ctx) && uv_now(loop) < deadline) {
        uv_run(loop, UV_RUN_ONCE);
        uv_update_time(loop);
    }
    uv_close((uv_handle_t *)&u.timer, NULL);
    uv_run(loop, UV_RUN_NOWAIT);
    return done(ctx);
}

void testutil_capture_stderr_begin(struct testutil_capture *cap)
{
    const char *tmp = getenv("TMPDIR");
    snprintf(cap->path, sizeof(cap->path), "%s/mgcapture.XXXXXX",
             tmp != NULL && tmp[0] != '\0' && strlen(tmp) < 40 ? tmp : "/tmp");
    cap->fd = mkstemp(cap->path);
    if (cap->fd < 0)
        fail_msg("mkstemp: %s", strerror(errno));
    fflush(stderr);
    cap->saved_fd = dup(STDERR_FILENO);
    dup2(cap->fd, STDERR_FILENO);
}

char *testutil_capture_stderr_end(struct testutil_capture *cap)
{
    fflush(stderr);
    dup2(cap->saved_fd, STDERR_FILENO);
    close(cap->saved_fd);
    close(cap->fd);
    char *text = testutil_read_file(cap->path, NULL);
    unlink(cap->path);
    return text != NULL ? text : mg_strdup("");
}

int testutil_waitpid(pid_t pid, double seconds)
{
    struct timespec start;
    clock_gettime(CLOCK_MONOTONIC, &start);
    for (;;) {
        int status;
        pid_t r = waitpid(pid, &status, WNOHANG);
        if (r == pid)
            return status;
        if (r < 0 && errno != EINTR)
            fail_msg("waitpid %d: %s", (int)pid, strerror(errno));
        struct timespec now;
        clock_gettime(CLOCK_MONOTONIC, &now);
        double elapsed = (double)(now.tv_sec - start.tv_sec) + (double)(now.tv_nsec - start.tv_nsec) / 1e9;
        if (elapsed > seconds)
            return -1;
        struct timespec ts = { 0, 5 * 1000 * 1000 };
        nanosleep(&ts, NULL);
    }
}

int testutil_fork_run(int (*fn)(void *ctx), void *ctx, double seconds, char **output_r)
{
    const char *tmp = getenv("TMPDIR");
    char *path = mg_asprintf("%s/mgchild.XXXXXX", tmp != NULL && tmp[0] != '\0' ? tmp : "/tmp");
    int fd = mkstemp(path);
    if (fd < 0)
        fail_msg("mkstemp: %s", strerror(errno));
    fflush(stdout);
    fflush(stderr);
    pid_t pid = fork();
    if (pid < 0)
        fail_msg("fork: %s", strerror(errno));
    if (pid == 0) {
        dup2(fd, STDOUT_FILENO);
        dup2(fd, STDERR_FILENO);
        close(fd);
        int rc = fn(ctx);
        fflush(stdout);
        fflush(stderr);
        _exit(rc);
    }
    close(fd);
    int status = testutil_waitpid(pid, seconds);
    if (status == -1) {
        kill(pid, SIGKILL);
        waitpid(pid, NULL, 0);
    }
    char *out = testutil_read_file(path, NULL);
    unlink(path);
    free(path);
    if (status == -1)
        fail_msg("child still running after %.1f s; output:\n%s", seconds, out != NULL ? out : "");
    if (output_r != NULL)
        *output_r = out != NULL ? out : mg_strdup("");
    else
        free(out);
    return status;
}
