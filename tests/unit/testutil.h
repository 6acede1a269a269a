/* Helpers shared by the cmocka unit tests. */
#ifndef MG_TESTS_TESTUTIL_H
#define MG_TESTS_TESTUTIL_H

#include <setjmp.h> /* cmocka needs these before cmocka.h */
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include <cmocka.h>

struct uv_loop_s;

/* A fresh private directory under $TMPDIR (or /tmp); the caller frees the
 * string after removing the tree with testutil_rmtree(). */
char *testutil_mkdtemp(void);
/* rm -rf; ignores a missing path. */
void testutil_rmtree(const char *path);
/* Writes a whole file (mode 0600); fails the test on error. */
void testutil_write_file(const char *path, const char *data, size_t len);
/* Reads a whole file into a new NUL-terminated allocation (NULL if missing). */
char *testutil_read_file(const char *path, size_t *len_r);
/* Path of a file in the source tree: "$MG_TEST_SOURCE_DIR/rel". */
char *testutil_source_path(const char *rel);
/* Runs the loop until it has nothing to do or `seconds` pass; a timeout
 * fails the test (a hung loop is a bug, not a slow machine). */
void testutil_run_loop(struct uv_loop_s *loop, double seconds);
/* Runs the loop until done(ctx) is true (checked every few ms and after
 * each turn) or `seconds` pass; returns done(ctx). Leaves no handle of
 * its own behind. */
bool testutil_run_until(struct uv_loop_s *loop, bool (*done)(void *ctx), void *ctx,
                        double seconds);
/* Closes every handle still open and runs the loop until it is empty, then
 * asserts uv_loop_close() succeeds. */
void testutil_close_loop(struct uv_loop_s *loop);

/* A dnsmasq child: an authoritative server for "*.test" on 127.0.0.1,
 * UDP and TCP, at a port that was free when it started. */
struct testutil_dnsmasq {
    pid_t pid;
    uint16_t port;
    char server[32];  /* "127.0.0.1:<port>", for a resolver setting */
};

/* Starts dnsmasq (/usr/sbin, /usr/bin or /sbin; Debian: dnsmasq-base)
 * serving only records[0..n_records): dnsmasq options such as
 * "--mx-host=a.test,mx.a.test,10" or "--host-record=mx.a.test,127.0.0.1".
 * No upstream servers, no /etc/hosts; other names under .test are
 * NXDOMAIN. Returns once it answers queries (about 5 s at most): 0 with
 * *dnsmasq_r, to stop with testutil_dnsmasq_stop(), or -1 when dnsmasq is
 * missing or does not come up (nothing is left running); the caller then
 * skips what needs DNS (exit status 77 skips a whole program). Its
 * output goes to /dev/null unless MG_TEST_VERBOSE is set. */
int testutil_dnsmasq_start(const char *const *records, size_t n_records,
                           struct testutil_dnsmasq **dnsmasq_r);
/* Stops the child (SIGTERM), waits for it and frees; accepts NULL, sets
 * *dnsmasq to NULL. */
void testutil_dnsmasq_stop(struct testutil_dnsmasq **dnsmasq);

/* Creates a self-signed ECDSA certificate for CN/SAN `name` (and 127.0.0.1)
 * in dir: writes <dir>/<base>.pem and <dir>/<base>.key, returns the paths
 * (to free). Uses openssl(1). */
void testutil_make_cert(const char *dir, const char *base, const char *name,
                        char **cert_r, char **key_r);

/* Captures what this process writes to descriptor 2 (stderr, so the log)
 * from _begin until _end, which restores stderr and returns the text (to
 * free). Not nestable. */
struct testutil_capture {
    int saved_fd;
    int fd;
    char path[64];
};
void testutil_capture_stderr_begin(struct testutil_capture *cap);
char *testutil_capture_stderr_end(struct testutil_capture *cap);

/* Runs fn(ctx) in a forked child with stdout and stderr going to a file,
 * and waits for it at most `seconds` (then kills it and fails the test).
 * The child leaves with _exit(fn's return value): cmocka asserts must not
 * be used in fn (they would unwind into the copy of the test runner), so
 * fn reports through its return value and output. Returns the wait
 * status; *output_r (when not NULL) gets the child's output (to free). */
int testutil_fork_run(int (*fn)(void *ctx), void *ctx, double seconds, char **output_r);
/* Waits at most `seconds` for a child: its wait status, or -1 when it is
 * still running (it is left running). */
int testutil_waitpid(pid_t pid, double seconds);

#endif
