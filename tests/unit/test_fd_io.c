/* Whole reads and writes: short counts, the end of a file, errors. */
#include "testutil.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/alloc.h"
#include "common/fd_io.h"

/* A pipe takes 64 KiB at once: a larger write comes back short and must
 * go on, while a child drains the other end. */
static void test_fd_write_all_short_writes(void **state)
{
    (void)state;
    size_t len = 1u << 20;
    char *data = mg_malloc(len);
    for (size_t i = 0; i < len; i++)
        data[i] = (char)(i * 7 + i / 251);
    int p[2];
    assert_int_equal(pipe(p), 0);
    char *dir = testutil_mkdtemp();
    char *out = mg_asprintf("%s/copy", dir);
    pid_t child = fork();
    assert_true(child >= 0);
    if (child == 0) {
        close(p[1]);
        int fd = open(out, O_WRONLY | O_CREAT | O_TRUNC, 0600);
        char buf[4096];
        ssize_t n;
        while ((n = read(p[0], buf, sizeof(buf))) > 0)
            if (write(fd, buf, (size_t)n) != n)
                _exit(1);
        _exit(close(fd) == 0 ? 0 : 1);
    }
    close(p[0]);
    assert_int_equal(mg_fd_write_all(p[1], data, len), 0);
    assert_int_equal(mg_fd_write_all(p[1], data, 0), 0);
    close(p[1]);
    int status = testutil_waitpid(child, 30);
    assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    size_t got_len = 0;
    char *got = testutil_read_file(out, &got_len);
    assert_int_equal(got_len, len);
    assert_memory_equal(got, data, len);
    free(got);
    free(out);
    testutil_rmtree(dir);
    free(dir);
    free(data);
}

static void test_fd_write_all_errors(void **state)
{
    (void)state;
    assert_int_equal(mg_fd_write_all(-1, "x", 1), -EBADF);
    int p[2];
    assert_int_equal(pipe(p), 0);
    close(p[0]);
    void (*old)(int) = signal(SIGPIPE, SIG_IGN);
    assert_int_equal(mg_fd_write_all(p[1], "x", 1), -EPIPE);
    signal(SIGPIPE, old);
    close(p[1]);
}

static void test_fd_pread_all(void **state)
{
    (void)state;
    char *dir = testutil_mkdtemp();
    char *path = mg_asprintf("%s/f", dir);
    testutil_write_file(path, "0123456789", 10);
    int fd = open(path, O_RDONLY);
    assert_true(fd >= 0);
    char buf[32];
    size_t got = 99;
    assert_int_equal(mg_fd_pread_all(fd, buf, 10, 0, &got), 0);
    assert_int_equal(got, 10);
    assert_memory_equal(buf, "0123456789", 10);
    /* From an offset, asking past the end: what there is. */
    assert_int_equal(mg_fd_pread_all(fd, buf, sizeof(buf), 4, &got), 0);
    assert_int_equal(got, 6);
    assert_memory_equal(buf, "456789", 6);
    assert_int_equal(mg_fd_pread_all(fd, buf, sizeof(buf), 50, &got), 0);
    assert_int_equal(got, 0);
    close(fd);
    assert_int_equal(mg_fd_pread_all(fd, buf, 1, 0, &got), -EBADF);
    assert_int_equal(got, 0);
    /* Not seekable: an error, not a silent empty read. */
    int p[2];
    assert_int_equal(pipe(p), 0);
    assert_int_equal(mg_fd_pread_all(p[0], buf, 1, 0, &got), -ESPIPE);
    close(p[0]);
    close(p[1]);
    free(path);
    testutil_rmtree(dir);
    free(dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_fd_write_all_short_writes),
        cmocka_unit_test(test_fd_write_all_errors),
        cmocka_unit_test(test_fd_pread_all),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
