/* Helpers shared by the cmocka unit tests. */
#ifndef MG_TESTS_TESTUTIL_H
#define MG_TESTS_TESTUTIL_H

#include <setjmp.h> /* cmocka needs these before cmocka.h */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

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
/* Closes every handle still open and runs the loop until it is empty, then
 * asserts uv_loop_close() succeeds. */
void testutil_close_loop(struct uv_loop_s *loop);



/* Creates a self-signed ECDSA certificate for CN/SAN `name` (and 127.0.0.1)
 * in dir: writes <dir>/<base>.pem and <dir>/<base>.key, returns the paths
 * (to free). Uses openssl(1). */
void testutil_make_cert(const char *dir, const char *base, const char *name,
                        char **cert_r, char **key_r);

#endif
