
#include "testutil.h"

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
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
