#include "testutil.h"

#include <db.h>
#include <dirent.h>
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "common/alloc.h"
#include "common/arena.h"
#include "common/buf.h"
#include "common/password.h"
#include "common/userdb.h"
#include "common/userdb_record.h"

/* A syntactically fine hash; tests that check passwords make real ones. */
#define HASH "$y$j9T$PaX3kEAJRXDU7Pzq4wFWn/$Hhpb1ZrdR.ZsqyT3wTAuZa3o5UzyV5tIW8/Xl08tDl6"

struct fixture {
    char *dir;  /* temporary directory */
    char *path; /* the user directory inside it */
    struct mg_userdb *db;
};

static int setup(void **state)
{
    struct fixture *f = mg_calloc(1, sizeof(*f));
    f->dir = testutil_mkdtemp();
    f->path = mg_asprintf("%s/userdb", f->dir);
    const char *error = NULL;
    if (mg_userdb_open(f->path, MG_USERDB_CREATE, &f->db, &error) != 0)
        fail_msg("open: %s", error);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *f = *state;
    mg_userdb_close(&f->db);
    testutil_rmtree(f->dir);
    free(f->path);
    free(f->dir);
    free(f);
    return 0;
}

static void reopen(struct fixture *f)
{
    const char *error = NULL;
    mg_userdb_close(&f->db);
    assert_null(f->db);
    if (mg_userdb_open(f->path, 0, &f->db, &error) != 0)
        fail_msg("reopen: %s", error);
}

static void must_add_domain(struct mg_userdb *db, const char *domain)
{
    const char *error = NULL;
    if (mg_userdb_domain_add(db, domain, &error) != 0)
        fail_msg("domain add %s: %s", domain, error);
}

static void must_add_user(struct mg_userdb *db, const char *address)
{
    const char *error = NULL;
    if (mg_userdb_user_add(db, address, HASH, 0, &error) != 0)
        fail_msg("user add %s: %s", address, error);
}

static void must_add_alias(struct mg_userdb *db, const char *address, const char *t1,
                           const char *t2, const char *t3)
{
    const char *targets[3] = { t1, t2, t3 };
    size_t n = t3 != NULL ? 3 : t2 != NULL ? 2 : 1;
    const char *error = NULL;
    if (mg_userdb_alias_add(db, address, targets, n, &error) != 0)
        fail_msg("alias add %s: %s", address, error);
}

static void assert_error_contains(const char *error, const char *part)
{
    if (error == NULL || strstr(error, part) == NULL)
        fail_msg("error \"%s\" does not contain \"%s\"", error != NULL ? error : "(null)", part);
}

/* --- collecting list output --- */

struct collect {
    struct mg_buf text; /* one line per item */
    int n;
    int stop_after; /* 0: never */
};

static int collect_domain(const char *domain, void *ctx)
{
    struct collect *c = ctx;
    mg_buf_printf(&c->text, "%s\n", domain);
    return ++c->n == c->stop_after ? 42 : 0;
}

static int collect_user(const struct mg_user *user, void *ctx)
{
    struct collect *c = ctx;
    mg_buf_printf(&c->text, "%s %s %llu\n", user->address, user->is_enabled ? "on" : "off",
                  (unsigned long long)user->quota_bytes);
    return ++c->n == c->stop_after ? 43 : 0;
}

static int collect_alias(const char *address, const char *const *targets, size_t n_targets,
                         void *ctx)
{
    struct collect *c = ctx;
    mg_buf_printf(&c->text, "%s:", address);
    for (size_t i = 0; i < n_targets; i++)
        mg_buf_printf(&c->text, " %s", targets[i]);
    mg_buf_append_byte(&c->text, '\n');
    return ++c->n == c->stop_after ? 44 : 0;
}

static char *list_users(struct mg_userdb *db, const char *domain)
{
    struct collect c = { MG_BUF_INIT, 0, 0 };
    int ret = mg_userdb_user_list(db, domain, collect_user, &c);
    if (ret != 0)
        fail_msg("user list: %d %s", ret, mg_userdb_last_error());
    char *text = mg_strdup(mg_buf_cstr(&c.text));
    mg_buf_free(&c.text);
    return text;
}

static int count_users(struct mg_userdb *db)
{
    struct collect c = { MG_BUF_INIT, 0, 0 };
    int ret = mg_userdb_user_list(db, NULL, collect_user, &c);
    mg_buf_free(&c.text);
    return ret == 0 ? c.n : -1;
}

/* --- domains --- */

static void test_userdb_open_modes(void **state)
{
    (void)state;
    char *dir = testutil_mkdtemp();
    char *path = mg_asprintf("%s/db", dir);
    struct mg_userdb *db = NULL;
    const char *error = NULL;

    /* Without MG_USERDB_CREATE a missing directory is an error, and
     * nothing is created. */
    assert_int_equal(mg_userdb_open(path, 0, &db, &error), MG_USERDB_ERROR);
    assert_null(db);
    assert_error_contains(error, path);
    struct stat st;
    assert_int_equal(stat(path, &st), -1);

    /* An existing empty directory is not a user directory either. */
    assert_int_equal(mkdir(path, 0755), 0);
    error = NULL;
    assert_int_equal(mg_userdb_open(path, 0, &db, &error), MG_USERDB_ERROR);
    assert_error_contains(error, "missing");
    testutil_rmtree(path);

    /* Modes do not depend on the umask. */
    mode_t old_umask = umask(0);
    assert_int_equal(mg_userdb_open(path, MG_USERDB_CREATE, &db, &error), 0);
    must_add_domain(db, "example.test");
    mg_userdb_close(&db);
    umask(old_umask);
    assert_int_equal(stat(path, &st), 0);
    assert_int_equal(st.st_mode & 07777, 0700);
    DIR *d = opendir(path);
    assert_non_null(d);
    struct dirent *de;
    int n_files = 0;
    while ((de = readdir(d)) != NULL) {
        if (de->d_name[0] == '.')
            continue;
        char *file = mg_asprintf("%s/%s", path, de->d_name);
        assert_int_equal(stat(file, &st), 0);
        if ((st.st_mode & 07777) != 0600)
            fail_msg("%s has mode %o", file, (unsigned)(st.st_mode & 07777));
        free(file);
        n_files++;
    }
    closedir(d);
    assert_true(n_files >= 4); /* three databases and at least one log */

    /* A file is not a directory. */
    char *file = mg_asprintf("%s/plain", dir);
    testutil_write_file(file, "x", 1);
    assert_int_equal(mg_userdb_open(file, MG_USERDB_CREATE, &db, &error), MG_USERDB_ERROR);
    assert_error_contains(error, "not a directory");
    free(file);
    mg_userdb_close(&db);
    mg_userdb_close(NULL);
    testutil_rmtree(dir);
    free(path);
    free(dir);
}

static void test_userdb_domains(void **state)
{
    struct fixture *f = *state;
    const char *error = NULL;
    must_add_domain(f->db, "Example.TEST");
    must_add_domain(f->db, "b.example");
    must_add_domain(f->db, "a.example");
    assert_int_equal(mg_userdb_domain_add(f->db, "EXAMPLE.test", &error), MG_USERDB_EXISTS);
    assert_string_equal(error, "domain exists: example.test");
    assert_int_equal(mg_userdb_domain_add(f->db, "bad..domain", &error), MG_USERDB_INVALID);
    assert_error_contains(error, "malformed domain");
    assert_int_equal(mg_userdb_domain_add(f->db, "a@b.example", &error), MG_USERDB_INVALID);
    assert_int_equal(mg_userdb_domain_add(f->db, "", &error), MG_USERDB_INVALID);
    assert_int_equal(mg_userdb_domain_add(f->db, NULL, &error), MG_USERDB_INVALID);

    assert_int_equal(mg_userdb_domain_exists(f->db, "example.test"), 1);
    assert_int_equal(mg_userdb_domain_exists(f->db, "EXAMPLE.Test"), 1);
    assert_int_equal(mg_userdb_domain_exists(f->db, "example.org"), 0);
    assert_int_equal(mg_userdb_domain_exists(f->db, "no..pe"), 0);

    struct collect c = { MG_BUF_INIT, 0, 0 };
    assert_int_equal(mg_userdb_domain_list(f->db, collect_domain, &c), 0);
    assert_string_equal(mg_buf_cstr(&c.text), "a.example\nb.example\nexample.test\n");
    mg_buf_free(&c.text);
    /* A callback's non-zero return stops the walk and is returned. */
    struct collect c2 = { MG_BUF_INIT, 0, 2 };
    assert_int_equal(mg_userdb_domain_list(f->db, collect_domain, &c2), 42);
    assert_int_equal(c2.n, 2);
    mg_buf_free(&c2.text);

    /* Deleting: refused while users or aliases remain. */
    must_add_user(f->db, "u@a.example");
    must_add_alias(f->db, "@b.example", "u@a.example", NULL, NULL);
    assert_int_equal(mg_userdb_domain_del(f->db, "a.example", &error), MG_USERDB_INVALID);
    assert_error_contains(error, "still has users");
    assert_int_equal(mg_userdb_domain_del(f->db, "B.example", &error), MG_USERDB_INVALID);
    assert_error_contains(error, "still has aliases");
    assert_int_equal(mg_userdb_domain_del(f->db, "nope.example", &error), MG_USERDB_NOT_FOUND);
    assert_string_equal(error, "unknown domain: nope.example");
    assert_int_equal(mg_userdb_domain_exists(f->db, "a.example"), 1);
    /* The users of "a.example" are not those of "a.exampl": the range of
     * a domain is "domain\0...", not every key starting with its name. */
    must_add_domain(f->db, "a.exampl");
    assert_int_equal(mg_userdb_domain_del(f->db, "a.exampl", &error), 0);

    assert_int_equal(mg_userdb_user_del(f->db, "u@a.example", &error), 0);
    assert_int_equal(mg_userdb_domain_del(f->db, "A.EXAMPLE", &error), 0);
    assert_int_equal(mg_userdb_domain_exists(f->db, "a.example"), 0);
    assert_int_equal(mg_userdb_alias_del(f->db, "@B.example", &error), 0);
    assert_int_equal(mg_userdb_domain_del(f->db, "b.example", &error), 0);
    assert_int_equal(mg_userdb_domain_del(f->db, "b.example", &error), MG_USERDB_NOT_FOUND);
}

/* --- users --- */

static void test_userdb_users(void **state)
{
    struct fixture *f = *state;
    const char *error = NULL;
    must_add_domain(f->db, "example.test");

    time_t before = time(NULL);
    assert_int_equal(mg_userdb_user_add(f->db, "Alice.Smith@EXAMPLE.test", HASH, 1 << 20, &error),
                     0);
    struct mg_user u;
    assert_int_equal(mg_userdb_user_get(f->db, "alice.smith@example.TEST", &u, &error), 0);
    assert_string_equal(u.address, "Alice.Smith@example.test"); /* case kept, domain lowered */
    assert_string_equal(u.password_hash, HASH);
    assert_int_equal(u.quota_bytes, 1 << 20);
    assert_true(u.is_enabled);
    assert_true(u.created >= before && u.created <= time(NULL));
    mg_user_clear(&u);
    assert_null(u.address);
    mg_user_clear(NULL);

    /* Duplicates in any case. */
    assert_int_equal(mg_userdb_user_add(f->db, "ALICE.SMITH@example.test", HASH, 0, &error),
                     MG_USERDB_EXISTS);
    assert_string_equal(error, "user exists: ALICE.SMITH@example.test");
    /* Unknown domain, malformed address, bad hash. */
    assert_int_equal(mg_userdb_user_add(f->db, "bob@example.org", HASH, 0, &error),
                     MG_USERDB_INVALID);
    assert_string_equal(error, "unknown domain: example.org");
    static const char *const malformed[] = {
        "bob", "@example.test", "bob@", "bob@@example.test", "bo b@example.test",
        "bob.@example.test", "bob@exa_mple.test", "",
        "a123456789012345678901234567890123456789012345678901234567890123456789@example.test",
        "bob\xff@example.test",
    };
    for (size_t i = 0; i < sizeof(malformed) / sizeof(malformed[0]); i++) {
        error = NULL;
        assert_int_equal(mg_userdb_user_add(f->db, malformed[i], HASH, 0, &error),
                         MG_USERDB_INVALID);
        assert_error_contains(error, "malformed address");
        assert_int_equal(mg_userdb_user_get(f->db, malformed[i], &u, &error), MG_USERDB_INVALID);
    }
    assert_int_equal(mg_userdb_user_add(f->db, "bob@example.test", "", 0, &error),
                     MG_USERDB_INVALID);
    assert_int_equal(mg_userdb_user_add(f->db, "bob@example.test", "a b", 0, &error),
                     MG_USERDB_INVALID);
    assert_int_equal(mg_userdb_user_add(f->db, "bob@example.test", NULL, 0, &error),
                     MG_USERDB_INVALID);
    assert_int_equal(mg_userdb_user_get(f->db, "bob@example.test", &u, &error),
                     MG_USERDB_NOT_FOUND);
    assert_string_equal(error, "unknown user: bob@example.test");

    /* Non-ASCII local parts (SMTPUTF8): stored as given, ASCII letters
     * compared case-insensitively. */
    must_add_user(f->db, "J\xc3\xbcrgen@example.test");
    assert_int_equal(mg_userdb_user_get(f->db, "j\xc3\xbcRGEN@Example.Test", &u, &error), 0);
    assert_string_equal(u.address, "J\xc3\xbcrgen@example.test");
    mg_user_clear(&u);

    /* Changes. */
    assert_int_equal(mg_userdb_user_set_enabled(f->db, "ALICE.smith@example.test", false, &error),
                     0);
    assert_int_equal(mg_userdb_user_set_quota(f->db, "alice.smith@example.test", 5000, &error), 0);
    assert_int_equal(
        mg_userdb_user_set_password(f->db, "alice.smith@example.test", "$6$x$y", &error), 0);
    assert_int_equal(mg_userdb_user_get(f->db, "alice.smith@example.test", &u, &error), 0);
    assert_false(u.is_enabled);
    assert_int_equal(u.quota_bytes, 5000);
    assert_string_equal(u.password_hash, "$6$x$y");
    assert_string_equal(u.address, "Alice.Smith@example.test");
    mg_user_clear(&u);
    assert_int_equal(mg_userdb_user_set_enabled(f->db, "alice.smith@example.test", true, &error),
                     0);
    assert_int_equal(mg_userdb_user_set_password(f->db, "alice.smith@example.test", "", &error),
                     MG_USERDB_INVALID);
    assert_int_equal(mg_userdb_user_set_enabled(f->db, "nobody@example.test", true, &error),
                     MG_USERDB_NOT_FOUND);
    assert_int_equal(mg_userdb_user_set_quota(f->db, "nobody@example.test", 1, &error),
                     MG_USERDB_NOT_FOUND);
    assert_int_equal(mg_userdb_user_set_password(f->db, "nobody@example.test", HASH, &error),
                     MG_USERDB_NOT_FOUND);
    assert_int_equal(mg_userdb_user_set_quota(f->db, "nobody", 1, &error), MG_USERDB_INVALID);

    /* Delete. */
    assert_int_equal(mg_userdb_user_del(f->db, "nobody@example.test", &error), MG_USERDB_NOT_FOUND);
    assert_string_equal(error, "unknown user: nobody@example.test");
    assert_int_equal(mg_userdb_user_del(f->db, "nobody", &error), MG_USERDB_INVALID);
    assert_int_equal(mg_userdb_user_del(f->db, "ALICE.SMITH@example.test", &error), 0);
    assert_int_equal(mg_userdb_user_get(f->db, "alice.smith@example.test", &u, &error),
                     MG_USERDB_NOT_FOUND);
    assert_int_equal(count_users(f->db), 1);
}

static void test_userdb_user_list(void **state)
{
    struct fixture *f = *state;
    const char *error = NULL;
    must_add_domain(f->db, "b.test");
    must_add_domain(f->db, "a.test");
    must_add_domain(f->db, "a.test.x");
    must_add_domain(f->db, "empty.test");
    must_add_user(f->db, "zed@b.test");
    must_add_user(f->db, "Carol@a.test");
    must_add_user(f->db, "x@a.test.x");
    must_add_user(f->db, "alice@a.test");
    must_add_user(f->db, "Bob@a.test");
    must_add_user(f->db, "amy@b.test");
    assert_int_equal(mg_userdb_user_set_enabled(f->db, "bob@a.test", false, &error), 0);
    assert_int_equal(mg_userdb_user_set_quota(f->db, "amy@b.test", 7, &error), 0);

    char *all = list_users(f->db, NULL);
    assert_string_equal(all, "alice@a.test on 0\n"
                             "Bob@a.test off 0\n"
                             "Carol@a.test on 0\n"
                             "x@a.test.x on 0\n"
                             "amy@b.test on 7\n"
                             "zed@b.test on 0\n");
    free(all);
    char *a = list_users(f->db, "A.Test");
    assert_string_equal(a, "alice@a.test on 0\nBob@a.test off 0\nCarol@a.test on 0\n");
    free(a);
    char *b = list_users(f->db, "b.test");
    assert_string_equal(b, "amy@b.test on 7\nzed@b.test on 0\n");
    free(b);
    char *e = list_users(f->db, "empty.test");
    assert_string_equal(e, "");
    free(e);

    struct collect c = { MG_BUF_INIT, 0, 0 };
    assert_int_equal(mg_userdb_user_list(f->db, "unknown.test", collect_user, &c),
                     MG_USERDB_NOT_FOUND);
    assert_error_contains(mg_userdb_last_error(), "unknown domain: unknown.test");
    assert_int_equal(mg_userdb_user_list(f->db, "bad..test", collect_user, &c), MG_USERDB_INVALID);
    assert_int_equal(c.n, 0);
    c.stop_after = 2;
    assert_int_equal(mg_userdb_user_list(f->db, NULL, collect_user, &c), 43);
    assert_int_equal(c.n, 2);
    mg_buf_free(&c.text);
}

/* --- aliases --- */

static void test_userdb_aliases(void **state)
{
    struct fixture *f = *state;
    const char *error = NULL;
    must_add_domain(f->db, "example.test");
    must_add_domain(f->db, "other.test");
    must_add_user(f->db, "alice@example.test");

    must_add_alias(f->db, "Sales@Example.test", "alice@EXAMPLE.test", "Bob@Remote.ORG", NULL);
    must_add_alias(f->db, "@other.test", "alice@example.test", NULL, NULL);
    must_add_alias(f->db, "info@other.test", "\"alice\"@example.test", NULL, NULL);
    assert_int_equal(
        mg_userdb_alias_add(f->db, "SALES@example.test", (const char *[]){ "x@y.test" }, 1, &error),
        MG_USERDB_EXISTS);
    assert_string_equal(error, "alias exists: SALES@example.test");
    assert_int_equal(
        mg_userdb_alias_add(f->db, "@OTHER.test", (const char *[]){ "x@y.test" }, 1, &error),
        MG_USERDB_EXISTS);
    assert_string_equal(error, "alias exists: @other.test");
    assert_int_equal(
        mg_userdb_alias_add(f->db, "a@unknown.test", (const char *[]){ "x@y.test" }, 1, &error),
        MG_USERDB_INVALID);
    assert_string_equal(error, "unknown domain: unknown.test");
    assert_int_equal(
        mg_userdb_alias_add(f->db, "@unknown.test", (const char *[]){ "x@y.test" }, 1, &error),
        MG_USERDB_INVALID);
    assert_int_equal(mg_userdb_alias_add(f->db, "b@example.test",
                                         (const char *[]){ "x@y.test", "no-domain" }, 2, &error),
                     MG_USERDB_INVALID);
    assert_error_contains(error, "malformed target");
    assert_int_equal(mg_userdb_alias_add(f->db, "b@example.test",
                                         (const char *[]){ "@example.test" }, 1, &error),
                     MG_USERDB_INVALID);
    assert_int_equal(mg_userdb_alias_add(f->db, "b@example.test", NULL, 0, &error),
                     MG_USERDB_INVALID);
    assert_int_equal(
        mg_userdb_alias_add(f->db, "b@@example.test", (const char *[]){ "x@y.test" }, 1, &error),
        MG_USERDB_INVALID);
    assert_int_equal(
        mg_userdb_alias_add(f->db, "@bad..test", (const char *[]){ "x@y.test" }, 1, &error),
        MG_USERDB_INVALID);
    const char **many = mg_calloc(MG_USERDB_ALIAS_TARGETS_MAX + 1, sizeof(*many));
    for (size_t i = 0; i <= MG_USERDB_ALIAS_TARGETS_MAX; i++)
        many[i] = "someone@remote.test";
    assert_int_equal(mg_userdb_alias_add(f->db, "many@example.test", many,
                                         MG_USERDB_ALIAS_TARGETS_MAX + 1, &error),
                     MG_USERDB_INVALID);
    assert_int_equal(mg_userdb_alias_add(f->db, "many@example.test", many,
                                         MG_USERDB_ALIAS_TARGETS_MAX, &error), 0);
    free(many);
    assert_int_equal(mg_userdb_alias_del(f->db, "MANY@example.test", &error), 0);

    struct collect c = { MG_BUF_INIT, 0, 0 };
    assert_int_equal(mg_userdb_alias_list(f->db, NULL, collect_alias, &c), 0);
    assert_string_equal(mg_buf_cstr(&c.text),
                        "Sales@example.test: alice@example.test Bob@remote.org\n"
                        "@other.test: alice@example.test\n"
                        "info@other.test: alice@example.test\n");
    mg_buf_reset(&c.text);
    assert_int_equal(mg_userdb_alias_list(f->db, "other.test", collect_alias, &c), 0);
    assert_string_equal(mg_buf_cstr(&c.text),
                        "@other.test: alice@example.test\ninfo@other.test: alice@example.test\n");
    assert_int_equal(mg_userdb_alias_list(f->db, "nope.test", collect_alias, &c),
                     MG_USERDB_NOT_FOUND);
    c.n = 0;
    c.stop_after = 1;
    assert_int_equal(mg_userdb_alias_list(f->db, NULL, collect_alias, &c), 44);
    mg_buf_free(&c.text);

    assert_int_equal(mg_userdb_alias_del(f->db, "nope@example.test", &error), MG_USERDB_NOT_FOUND);
    assert_string_equal(error, "unknown alias: nope@example.test");
    assert_int_equal(mg_userdb_alias_del(f->db, "@example.test", &error), MG_USERDB_NOT_FOUND);
    assert_int_equal(mg_userdb_alias_del(f->db, "@other.test", &error), 0);
    assert_int_equal(mg_userdb_alias_del(f->db, "sales@EXAMPLE.TEST", &error), 0);
    struct collect c2 = { MG_BUF_INIT, 0, 0 };
    assert_int_equal(mg_userdb_alias_list(f->db, NULL, collect_alias, &c2), 0);
    assert_string_equal(mg_buf_cstr(&c2.text), "info@other.test: alice@example.test\n");
    mg_buf_free(&c2.text);
}

/* --- resolution --- */

static const struct mg_userdb_target *find_target(const struct mg_userdb_resolution *res,
                                                  const char *address)
{
    for (size_t i = 0; i < res->n_targets; i++) {
        if (strcmp(res->targets[i].address, address) == 0)
            return &res->targets[i];
    }
    return NULL;
}

static void setup_resolve_data(struct mg_userdb *db)
{
    const char *error;
    must_add_domain(db, "ex.test");
    must_add_domain(db, "other.test");
    must_add_user(db, "Alice@ex.test");
    must_add_user(db, "bob@ex.test");
    must_add_user(db, "carol@ex.test");
    must_add_user(db, "dave@ex.test");
    must_add_user(db, "info@other.test");
    assert_int_equal(mg_userdb_user_set_enabled(db, "carol@ex.test", false, &error), 0);
    assert_int_equal(mg_userdb_user_set_quota(db, "bob@ex.test", 1000, &error), 0);

    must_add_alias(db, "sales@ex.test", "alice@ex.test", "Boss@Remote.example", NULL);
    must_add_alias(db, "team@ex.test", "sales@ex.test", "carol@ex.test", "ALICE@ex.test");
    must_add_alias(db, "alice+vip@ex.test", "bob@ex.test", NULL, NULL);
    must_add_alias(db, "help@ex.test", "help+x@ex.test", NULL, NULL); /* base-address alias loop */
    must_add_alias(db, "list@ex.test", "bob+news@ex.test", NULL, NULL);
    must_add_alias(db, "loop1@ex.test", "loop2@ex.test", NULL, NULL);
    must_add_alias(db, "loop2@ex.test", "loop1@ex.test", NULL, NULL);
    must_add_alias(db, "loopy@ex.test", "loop1@ex.test", "bob@ex.test", NULL);
    /* An alias on a user's own address that keeps a copy. */
    must_add_alias(db, "dave@ex.test", "dave@ex.test", "dave@remote.example", NULL);
    must_add_alias(db, "ghost@ex.test", "nobody@ex.test", NULL, NULL);
    must_add_alias(db, "half@ex.test", "nobody@ex.test", "bob@ex.test", NULL);
    must_add_alias(db, "@other.test", "alice@ex.test", NULL, NULL);
    must_add_alias(db, "fwd@ex.test", "anything@other.test", NULL, NULL);

    /* c0 -> c1 -> ... -> c8 -> alice: 9 alias expansions, one too many;
     * c1 is 8 away from alice and still resolves. */
    for (int i = 0; i <= 8; i++) {
        char name[32], target[32];
        snprintf(name, sizeof(name), "c%d@ex.test", i);
        if (i < 8)
            snprintf(target, sizeof(target), "c%d@ex.test", i + 1);
        else
            snprintf(target, sizeof(target), "alice@ex.test");
        must_add_alias(db, name, target, NULL, NULL);
    }
}

struct resolve_case {
    const char *address;
    const char *delimiters;
    int ret;
    const char *targets; /* expected, space-separated, in order; flags after ':' */
};

static void check_resolve(struct mg_userdb *db, const struct resolve_case *rc)
{
    struct mg_userdb_resolution res;
    const char *error = NULL;
    int ret = mg_userdb_resolve(db, rc->address, rc->delimiters, &res, &error);
    if (ret != rc->ret)
        fail_msg("resolve %s: %d (%s), expected %d", rc->address, ret, error ? error : "", rc->ret);
    if (ret != 0) {
        assert_non_null(error);
        assert_int_equal(res.n_targets, 0);
        assert_null(res.targets);
        return;
    }
    struct mg_buf got = MG_BUF_INIT;
    for (size_t i = 0; i < res.n_targets; i++) {
        const struct mg_userdb_target *t = &res.targets[i];
        mg_buf_printf(&got, "%s%s%s", i > 0 ? " " : "", t->address,
                      !t->is_local ? ":remote" : !t->is_enabled ? ":disabled" : "");
        if (!t->is_local) {
            assert_false(t->is_enabled);
            assert_int_equal(t->quota_bytes, 0);
        }
    }
    if (strcmp(mg_buf_cstr(&got), rc->targets) != 0)
        fail_msg("resolve %s: got \"%s\", expected \"%s\"", rc->address, mg_buf_cstr(&got),
                 rc->targets);
    mg_buf_free(&got);
    mg_userdb_resolution_clear(&res);
    assert_null(res.targets);
}

static void test_userdb_resolve(void **state)
{
    struct fixture *f = *state;
    setup_resolve_data(f->db);
    static const struct resolve_case cases[] = {
        /* a user, in any case */
        { "alice@ex.test", "+", 0, "Alice@ex.test" },
        { "ALICE@EX.TEST", "+", 0, "Alice@ex.test" },
        { "carol@ex.test", "+", 0, "carol@ex.test:disabled" },
        /* sub-addressing */
        { "alice+tag@ex.test", "+", 0, "Alice@ex.test" },
        { "Alice+Tag+More@ex.test", "+", 0, "Alice@ex.test" },
        { "alice-tag@ex.test", "-+", 0, "Alice@ex.test" },
        { "alice+tag@ex.test", "", MG_USERDB_NOT_FOUND, NULL },
        { "alice+tag@ex.test", NULL, MG_USERDB_NOT_FOUND, NULL },
        { "+alice@ex.test", "+", MG_USERDB_NOT_FOUND, NULL },
        /* an exact alias wins over the base address */
        { "alice+vip@ex.test", "+", 0, "bob@ex.test" },
        { "ALICE+VIP@ex.test", "+", 0, "bob@ex.test" },
        /* alias on the base address of a tagged one */
        { "sales+q3@ex.test", "+", 0, "Alice@ex.test Boss@remote.example:remote" },
        /* aliases: remote targets, nesting, duplicates dropped */
        { "sales@ex.test", "+", 0, "Alice@ex.test Boss@remote.example:remote" },
        { "team@ex.test", "+", 0,
          "carol@ex.test:disabled Alice@ex.test Boss@remote.example:remote" },
        { "list@ex.test", "+", 0, "bob@ex.test" },
        /* loops are cut; what else the alias names still arrives */
        { "loop1@ex.test", "+", MG_USERDB_NOT_FOUND, NULL },
        { "loopy@ex.test", "+", 0, "bob@ex.test" },
        { "help@ex.test", "+", MG_USERDB_NOT_FOUND, NULL },
        { "dave@ex.test", "+", 0, "dave@ex.test dave@remote.example:remote" },
        /* dangling targets are dropped */
        { "ghost@ex.test", "+", MG_USERDB_NOT_FOUND, NULL },
        { "half@ex.test", "+", 0, "bob@ex.test" },
        /* depth */
        { "c1@ex.test", "+", 0, "Alice@ex.test" },
        { "c0@ex.test", "+", MG_USERDB_NOT_FOUND, NULL },
        /* catch-all, also for targets */
        { "whoever@other.test", "+", 0, "Alice@ex.test" },
        { "info@other.test", "+", 0, "info@other.test" },
        { "info+x@other.test", "+", 0, "info@other.test" },
        { "fwd@ex.test", "+", 0, "Alice@ex.test" },
        /* postmaster: the oldest enabled user when nothing else takes it;
         * the catch-all comes first */
        { "postmaster@ex.test", "+", 0, "Alice@ex.test" },
        { "PostMaster@EX.test", "+", 0, "Alice@ex.test" },
        { "postmaster@other.test", "+", 0, "Alice@ex.test" },
        { "postmaster+x@ex.test", "+", MG_USERDB_NOT_FOUND, NULL },
        /* unknown, not local, malformed */
        { "nobody@ex.test", "+", MG_USERDB_NOT_FOUND, NULL },
        { "someone@remote.example", "+", MG_USERDB_NOT_LOCAL, NULL },
        { "someone@EX.test.", "+", MG_USERDB_INVALID, NULL },
        { "no-domain", "+", MG_USERDB_INVALID, NULL },
        { "", "+", MG_USERDB_INVALID, NULL },
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
        check_resolve(f->db, &cases[i]);

    struct mg_userdb_resolution res;
    const char *error;
    assert_int_equal(mg_userdb_resolve(f->db, "nobody@ex.test", "+", &res, &error),
                     MG_USERDB_NOT_FOUND);
    assert_string_equal(error, "unknown address: nobody@ex.test");
    assert_int_equal(mg_userdb_resolve(f->db, "x@remote.example", "+", &res, &error),
                     MG_USERDB_NOT_LOCAL);
    assert_string_equal(error, "not a local domain: remote.example");

    assert_int_equal(mg_userdb_resolve(f->db, "bob+x@ex.test", "+", &res, &error), 0);
    assert_int_equal(res.n_targets, 1);
    assert_true(res.targets[0].is_local);
    assert_true(res.targets[0].is_enabled);
    assert_int_equal(res.targets[0].quota_bytes, 1000);
    assert_non_null(find_target(&res, "bob@ex.test"));
    mg_userdb_resolution_clear(&res);
    mg_userdb_resolution_clear(&res);
    mg_userdb_resolution_clear(NULL);
}

/* RFC 5321 4.5.1: postmaster@ a local domain reaches someone as soon as
 * the domain has an enabled user, follows the users as they change, and
 * an alias overrides it. */
static void test_userdb_resolve_postmaster(void **state)
{
    struct fixture *f = *state;
    const char *error;
    must_add_domain(f->db, "pm.test");
    static const struct resolve_case none = { "postmaster@pm.test", "+", MG_USERDB_NOT_FOUND, NULL };
    check_resolve(f->db, &none);
    /* amy is the older and the smaller address: the pick whatever the
     * clock's second did between the two adds. */
    must_add_user(f->db, "amy@pm.test");
    must_add_user(f->db, "zed@pm.test");
    static const struct resolve_case amy = { "postmaster@pm.test", "+", 0, "amy@pm.test" };
    check_resolve(f->db, &amy);
    assert_int_equal(mg_userdb_user_set_enabled(f->db, "amy@pm.test", false, &error), 0);
    static const struct resolve_case zed = { "postmaster@pm.test", "+", 0, "zed@pm.test" };
    check_resolve(f->db, &zed);
    assert_int_equal(mg_userdb_user_set_enabled(f->db, "amy@pm.test", true, &error), 0);
    must_add_alias(f->db, "postmaster@pm.test", "zed@pm.test", "ops@remote.example", NULL);
    static const struct resolve_case alias = { "postmaster@pm.test", "+", 0,
                                               "zed@pm.test ops@remote.example:remote" };
    check_resolve(f->db, &alias);
    assert_int_equal(mg_userdb_alias_del(f->db, "postmaster@pm.test", &error), 0);
    assert_int_equal(mg_userdb_user_del(f->db, "amy@pm.test", &error), 0);
    check_resolve(f->db, &zed);
    assert_int_equal(mg_userdb_user_del(f->db, "zed@pm.test", &error), 0);
    check_resolve(f->db, &none);
    /* Nothing stored: the domain goes as if postmaster had never been asked. */
    assert_int_equal(mg_userdb_domain_del(f->db, "pm.test", &error), 0);
}

static void test_userdb_resolve_limits(void **state)
{
    struct fixture *f = *state;
    const char *error;
    must_add_domain(f->db, "ex.test");
    /* 1000 distinct remote targets: the most a resolution returns. */
    const char **targets = mg_calloc(MG_USERDB_ALIAS_TARGETS_MAX, sizeof(*targets));
    for (int i = 0; i < MG_USERDB_ALIAS_TARGETS_MAX; i++)
        targets[i] = mg_asprintf("r%d@remote.test", i);
    assert_int_equal(mg_userdb_alias_add(f->db, "big@ex.test", targets, MG_USERDB_ALIAS_TARGETS_MAX,
                                         &error), 0);
    must_add_alias(f->db, "bigger@ex.test", "big@ex.test", "one-more@remote.test", NULL);
    /* Many aliases to the same 1000 stay 1000 after duplicates go. */
    must_add_alias(f->db, "same@ex.test", "big@ex.test", "big+x@ex.test", "r0@REMOTE.test");

    struct mg_userdb_resolution res;
    assert_int_equal(mg_userdb_resolve(f->db, "big@ex.test", "+", &res, &error), 0);
    assert_int_equal(res.n_targets, MG_USERDB_RESOLVE_MAX);
    assert_non_null(find_target(&res, "r999@remote.test"));
    mg_userdb_resolution_clear(&res);
    assert_int_equal(mg_userdb_resolve(f->db, "same@ex.test", "+", &res, &error), 0);
    assert_int_equal(res.n_targets, MG_USERDB_RESOLVE_MAX);
    mg_userdb_resolution_clear(&res);
    assert_int_equal(mg_userdb_resolve(f->db, "bigger@ex.test", "+", &res, &error),
                     MG_USERDB_INVALID);
    assert_error_contains(error, "more than 1000");
    assert_null(res.targets);
    for (int i = 0; i < MG_USERDB_ALIAS_TARGETS_MAX; i++)
        free((char *)targets[i]);
    free(targets);
}

/* --- damaged records --- */

/* Opens the environment with BDB's own API, as another program would. */
static DB_ENV *raw_env_open(const char *path)
{
    DB_ENV *env;
    if (db_env_create(&env, 0) != 0)
        return NULL;
    uint32_t flags = DB_CREATE | DB_INIT_TXN | DB_INIT_LOCK | DB_INIT_LOG | DB_INIT_MPOOL |
                     DB_THREAD | DB_REGISTER | DB_RECOVER;
    if (env->open(env, path, flags, 0600) != 0) {
        env->close(env, 0);
        return NULL;
    }
    return env;
}

static DB *raw_db_open(DB_ENV *env, const char *name)
{
    DB *db;
    if (db_create(&db, env, 0) != 0)
        return NULL;
    if (db->open(db, NULL, name, NULL, DB_BTREE, DB_AUTO_COMMIT | DB_THREAD, 0600) != 0) {
        db->close(db, 0);
        return NULL;
    }
    return db;
}

static void raw_put(DB *db, const void *key, size_t key_len, const void *value, size_t len)
{
    DBT k, v;
    memset(&k, 0, sizeof(k));
    memset(&v, 0, sizeof(v));
    k.data = (void *)key;
    k.size = (u_int32_t)key_len;
    v.data = (void *)value;
    v.size = (u_int32_t)len;
    assert_int_equal(db->put(db, NULL, &k, &v, DB_AUTO_COMMIT), 0);
}

static void test_userdb_damaged_records(void **state)
{
    struct fixture *f = *state;
    const char *error = NULL;
    must_add_domain(f->db, "ex.test");
    must_add_user(f->db, "alice@ex.test");
    must_add_alias(f->db, "ok@ex.test", "alice@ex.test", NULL, NULL);
    mg_userdb_close(&f->db);

    DB_ENV *env = raw_env_open(f->path);
    assert_non_null(env);
    DB *users = raw_db_open(env, "users.db");
    DB *aliases = raw_db_open(env, "aliases.db");
    DB *domains = raw_db_open(env, "domains.db");
    assert_non_null(users);
    assert_non_null(aliases);
    assert_non_null(domains);
    raw_put(users, "ex.test\0bad", 11, "garbage", 7);
    /* A well-formed record under the wrong key. */
    struct mg_arena *arena = mg_arena_new(0);
    struct mg_buf rec = MG_BUF_INIT;
    struct mg__userdb_user_rec ur = { true, 0, 1, "someone@ex.test", HASH };
    mg__userdb_record_user_encode(&rec, &ur);
    raw_put(users, "ex.test\0moved", 13, rec.data, rec.len);
    mg_buf_reset(&rec);
    const char *targets[] = { "alice@ex.test" };
    struct mg__userdb_alias_rec ar = { "broken@ex.test", 1, targets };
    mg__userdb_record_alias_encode(&rec, &ar);
    raw_put(aliases, "ex.test\0broken", 14, rec.data, rec.len - 3); /* truncated */
    raw_put(domains, "damaged.test", 12, "\x01", 1);
    mg_buf_free(&rec);
    mg_arena_free(&arena);
    domains->close(domains, 0);
    aliases->close(aliases, 0);
    users->close(users, 0);
    env->close(env, 0);

    reopen(f);
    struct mg_user u;
    assert_int_equal(mg_userdb_user_get(f->db, "bad@ex.test", &u, &error), MG_USERDB_ERROR);
    assert_error_contains(error, "damaged user record bad@ex.test");
    assert_null(u.address);
    assert_int_equal(mg_userdb_user_get(f->db, "moved@ex.test", &u, &error), MG_USERDB_ERROR);
    assert_error_contains(error, "does not match its key");
    assert_int_equal(
        mg_userdb_user_list(f->db, NULL, collect_user, &(struct collect){ MG_BUF_INIT, 0, 0 }),
        MG_USERDB_ERROR);
    assert_error_contains(mg_userdb_last_error(), "damaged user record");

    struct mg_userdb_resolution res;
    assert_int_equal(mg_userdb_resolve(f->db, "broken@ex.test", "+", &res, &error),
                     MG_USERDB_ERROR);
    assert_error_contains(error, "damaged alias record broken@ex.test");
    assert_int_equal(mg_userdb_resolve(f->db, "bad@ex.test", "+", &res, &error), MG_USERDB_ERROR);
    assert_int_equal(
        mg_userdb_alias_list(f->db, NULL, collect_alias, &(struct collect){ MG_BUF_INIT, 0, 0 }),
        MG_USERDB_ERROR);
    assert_true(mg_userdb_domain_exists(f->db, "damaged.test") < 0);
    assert_error_contains(mg_userdb_last_error(), "damaged domain record");
    assert_int_equal(mg_userdb_user_add(f->db, "x@damaged.test", HASH, 0, &error), MG_USERDB_ERROR);
    assert_int_equal(
        mg_userdb_domain_list(f->db, collect_domain, &(struct collect){ MG_BUF_INIT, 0, 0 }),
        MG_USERDB_ERROR);

    /* Everything else still works, and damaged records can be removed. */
    assert_int_equal(mg_userdb_user_get(f->db, "alice@ex.test", &u, &error), 0);
    mg_user_clear(&u);
    assert_int_equal(mg_userdb_resolve(f->db, "ok@ex.test", "+", &res, &error), 0);
    mg_userdb_resolution_clear(&res);
    assert_int_equal(mg_userdb_user_del(f->db, "bad@ex.test", &error), 0);
    assert_int_equal(mg_userdb_user_del(f->db, "moved@ex.test", &error), 0);
    assert_int_equal(mg_userdb_alias_del(f->db, "broken@ex.test", &error), 0);
    assert_int_equal(count_users(f->db), 1);
}

static void test_userdb_record_decoding(void **state)
{
    (void)state;
    struct mg_arena *arena = mg_arena_new(0);
    struct mg_buf b = MG_BUF_INIT;
    const char *error;

    struct mg__userdb_user_rec in = { false, 0x0102030405060708ULL, -5, "Bob@ex.test", "$y$abc" };
    mg__userdb_record_user_encode(&b, &in);
    struct mg__userdb_user_rec out;
    assert_int_equal(mg__userdb_record_user_decode(b.data, b.len, arena, &out, &error), 0);
    assert_false(out.is_enabled);
    assert_true(out.quota_bytes == 0x0102030405060708ULL);
    assert_int_equal(out.created, -5);
    assert_string_equal(out.address, "Bob@ex.test");
    assert_string_equal(out.hash, "$y$abc");
    /* Explicit byte order: the quota is big-endian right after the flags. */
    assert_memory_equal(b.data + 2, "\x01\x02\x03\x04\x05\x06\x07\x08", 8);
    assert_int_equal(mg__userdb_record_user_decode_key("ex.test\0bob", 11, b.data, b.len, arena,
                                                       &out, &error), 0);
    assert_int_equal(mg__userdb_record_user_decode_key("ex.test\0bobby", 13, b.data, b.len, arena,
                                                       &out, &error), -1);
    assert_int_equal(mg__userdb_record_user_decode_key("ex.tesT\0bob", 11, b.data, b.len, arena,
                                                       &out, &error), -1);
    /* Every truncation fails, and so does a trailing byte. */
    for (size_t len = 0; len < b.len; len++)
        assert_int_equal(mg__userdb_record_user_decode(b.data, len, arena, &out, &error), -1);
    mg_buf_append_byte(&b, 'x');
    assert_int_equal(mg__userdb_record_user_decode(b.data, b.len, arena, &out, &error), -1);
    assert_string_equal(error, "trailing bytes in record");
    mg_buf_truncate(&b, b.len - 1);
    /* Version, flags, NUL and bad UTF-8 inside strings. */
    struct mg_buf bad = MG_BUF_INIT;
    mg_buf_append(&bad, b.data, b.len);
    bad.data[0] = 2;
    assert_int_equal(mg__userdb_record_user_decode(bad.data, bad.len, arena, &out, &error), -1);
    assert_string_equal(error, "unknown record version");
    bad.data[0] = 1;
    bad.data[1] = 0x02;
    assert_int_equal(mg__userdb_record_user_decode(bad.data, bad.len, arena, &out, &error), -1);
    bad.data[1] = 0;
    bad.data[20] = '\0'; /* inside the address */
    assert_int_equal(mg__userdb_record_user_decode(bad.data, bad.len, arena, &out, &error), -1);
    bad.data[20] = (char)0xc3;
    assert_int_equal(mg__userdb_record_user_decode(bad.data, bad.len, arena, &out, &error), -1);
    bad.data[20] = 'b';
    bad.data[18] = (char)0xff; /* address length 0xff0b: beyond the end */
    assert_int_equal(mg__userdb_record_user_decode(bad.data, bad.len, arena, &out, &error), -1);
    mg_buf_free(&bad);

    /* Aliases. */
    mg_buf_reset(&b);
    const char *targets[] = { "a@x.test", "b@y.test" };
    struct mg__userdb_alias_rec ain = { "@x.test", 2, targets }, aout;
    mg__userdb_record_alias_encode(&b, &ain);
    assert_int_equal(mg__userdb_record_alias_decode(b.data, b.len, arena, &aout, &error), 0);
    assert_string_equal(aout.address, "@x.test");
    assert_int_equal(aout.n_targets, 2);
    assert_string_equal(aout.targets[1], "b@y.test");
    for (size_t len = 0; len < b.len; len++)
        assert_int_equal(mg__userdb_record_alias_decode(b.data, len, arena, &aout, &error), -1);
    /* A count of 0, and one above the limit. */
    size_t count_at = 2 + 2 + strlen("@x.test");
    b.data[count_at] = 0;
    b.data[count_at + 1] = 0;
    assert_int_equal(mg__userdb_record_alias_decode(b.data, b.len, arena, &aout, &error), -1);
    b.data[count_at] = (char)(1001 >> 8);
    b.data[count_at + 1] = (char)(1001 & 0xff);
    assert_int_equal(mg__userdb_record_alias_decode(b.data, b.len, arena, &aout, &error), -1);

    /* Domains. */
    mg_buf_reset(&b);
    struct mg__userdb_domain_rec din = { 1700000000 }, dout;
    mg__userdb_record_domain_encode(&b, &din);
    assert_int_equal(mg__userdb_record_domain_decode(b.data, b.len, &dout, &error), 0);
    assert_int_equal(dout.created, 1700000000);
    assert_int_equal(mg__userdb_record_domain_decode(b.data, b.len - 1, &dout, &error), -1);

    /* Damage anywhere: every byte of valid records flipped to every value,
     * and random garbage. Decoding fails or succeeds, never reads past
     * the end (ASan) or returns strings with NULs. */
    mg_buf_reset(&b);
    mg__userdb_record_user_encode(&b, &in);
    size_t user_len = b.len;
    mg__userdb_record_alias_encode(&b, &ain);
    for (size_t i = 0; i < b.len; i++) {
        for (int v = 0; v < 256; v++) {
            char *copy = mg_malloc(b.len);
            memcpy(copy, b.data, b.len);
            copy[i] = (char)v;
            if (mg__userdb_record_user_decode(copy, user_len, arena, &out, &error) == 0)
                assert_true(strlen(out.address) > 0 && strlen(out.hash) > 0);
            if (mg__userdb_record_alias_decode(copy + user_len, b.len - user_len, arena, &aout,
                                               &error) == 0)
                assert_true(aout.n_targets >= 1 && aout.n_targets <= MG_USERDB_ALIAS_TARGETS_MAX);
            free(copy);
        }
        mg_arena_clear(arena);
    }
    unsigned seed = 1;
    for (int round = 0; round < 20000; round++) {
        size_t len = (size_t)rand_r(&seed) % 64;
        char *garbage = mg_malloc(len + 1);
        for (size_t i = 0; i < len; i++)
            garbage[i] = (char)(rand_r(&seed) % 4 == 0 ? rand_r(&seed) % 4 : rand_r(&seed));
        (void)mg__userdb_record_user_decode(garbage, len, arena, &out, &error);
        (void)mg__userdb_record_alias_decode(garbage, len, arena, &aout, &error);
        (void)mg__userdb_record_domain_decode(garbage, len, &dout, &error);
        free(garbage);
        if (round % 1000 == 0)
            mg_arena_clear(arena);
    }
    mg_buf_free(&b);
    mg_arena_free(&arena);
}

/* --- persistence and logs --- */

static int count_log_files(const char *path)
{
    DIR *d = opendir(path);
    assert_non_null(d);
    int n = 0;
    struct dirent *de;
    while ((de = readdir(d)) != NULL)
        n += strncmp(de->d_name, "log.", 4) == 0;
    closedir(d);
    return n;
}

static void test_userdb_persistence_and_logs(void **state)
{
    struct fixture *f = *state;
    const char *error = NULL;
    must_add_domain(f->db, "ex.test");
    must_add_user(f->db, "Keep@ex.test");
    must_add_alias(f->db, "@ex.test", "keep@ex.test", NULL, NULL);
    reopen(f);
    struct mg_user u;
    assert_int_equal(mg_userdb_user_get(f->db, "keep@ex.test", &u, &error), 0);
    assert_string_equal(u.address, "Keep@ex.test");
    mg_user_clear(&u);
    assert_int_equal(mg_userdb_domain_exists(f->db, "ex.test"), 1);
    struct mg_userdb_resolution res;
    assert_int_equal(mg_userdb_resolve(f->db, "other@ex.test", "+", &res, &error), 0);
    assert_string_equal(res.targets[0].address, "Keep@ex.test");
    mg_userdb_resolution_clear(&res);

    /* Write several log files' worth (1 MiB each): after a checkpoint
     * the logs that are no longer needed are gone. */
    const char **targets = mg_calloc(MG_USERDB_ALIAS_TARGETS_MAX, sizeof(*targets));
    for (int i = 0; i < MG_USERDB_ALIAS_TARGETS_MAX; i++)
        targets[i] = mg_asprintf("someone.with.a.long.name.%d@remote.example", i);
    for (int round = 0; round < 60; round++) {
        assert_int_equal(mg_userdb_alias_add(f->db, "big@ex.test", targets,
                                             MG_USERDB_ALIAS_TARGETS_MAX, &error), 0);
        assert_int_equal(mg_userdb_alias_del(f->db, "big@ex.test", &error), 0);
    }
    for (int i = 0; i < MG_USERDB_ALIAS_TARGETS_MAX; i++)
        free((char *)targets[i]);
    free(targets);
    assert_int_equal(mg_userdb_checkpoint(f->db), 0);
    assert_int_equal(mg_userdb_checkpoint(f->db), 0);
    int n_logs = count_log_files(f->path);
    if (n_logs > 2)
        fail_msg("%d log files left after checkpoints", n_logs);
    reopen(f);
    assert_int_equal(count_users(f->db), 1);
}

/* --- several processes --- */

static int child_add_users(const char *path, const char *prefix, int n)
{
    struct mg_userdb *db;
    const char *error;
    if (mg_userdb_open(path, 0, &db, &error) != 0) {
        fprintf(stderr, "child open: %s\n", error);
        return 1;
    }
    for (int i = 0; i < n; i++) {
        char address[64];
        snprintf(address, sizeof(address), "%s%d@ex.test", prefix, i);
        if (mg_userdb_user_add(db, address, HASH, (uint64_t)i, &error) != 0) {
            fprintf(stderr, "child add %s: %s\n", address, error);
            mg_userdb_close(&db);
            return 1;
        }
    }
    mg_userdb_close(&db);
    return 0;
}

static void test_userdb_two_processes(void **state)
{
    struct fixture *f = *state;
    must_add_domain(f->db, "ex.test");
    mg_userdb_close(&f->db);

    enum { PER_CHILD = 200 };
    pid_t pids[2];
    for (int k = 0; k < 2; k++) {
        pids[k] = fork();
        assert_true(pids[k] >= 0);
        if (pids[k] == 0)
            _exit(child_add_users(f->path, k == 0 ? "first" : "second", PER_CHILD));
    }
    for (int k = 0; k < 2; k++) {
        int status;
        assert_int_equal(waitpid(pids[k], &status, 0), pids[k]);
        assert_true(WIFEXITED(status));
        assert_int_equal(WEXITSTATUS(status), 0);
    }
    reopen(f);
    assert_int_equal(count_users(f->db), 2 * PER_CHILD);
    for (int i = 0; i < PER_CHILD; i++) {
        char a[64];
        struct mg_user u;
        const char *error;
        snprintf(a, sizeof(a), "first%d@ex.test", i);
        assert_int_equal(mg_userdb_user_get(f->db, a, &u, &error), 0);
        assert_int_equal(u.quota_bytes, i);
        mg_user_clear(&u);
        snprintf(a, sizeof(a), "second%d@ex.test", i);
        assert_int_equal(mg_userdb_user_get(f->db, a, &u, &error), 0);
        mg_user_clear(&u);
    }
}

/* A child that writes a user in a transaction it never commits: after
 * flushing the log and the cache (so the uncommitted change is on disk
 * and only recovery can undo it) it reports on fd and waits to be killed. */
static void child_uncommitted(const char *path, const char *key, size_t key_len, int fd)
{
    DB_ENV *env = raw_env_open(path);
    DB *users = env != NULL ? raw_db_open(env, "users.db") : NULL;
    if (users == NULL)
        _exit(1);
    DB_TXN *txn;
    if (env->txn_begin(env, NULL, &txn, 0) != 0)
        _exit(1);
    struct mg_buf rec = MG_BUF_INIT;
    struct mg__userdb_user_rec ur = { true, 0, 1, "uncommitted@ex.test", HASH };
    mg__userdb_record_user_encode(&rec, &ur);
    DBT k, v;
    memset(&k, 0, sizeof(k));
    memset(&v, 0, sizeof(v));
    k.data = (void *)key;
    k.size = (u_int32_t)key_len;
    v.data = rec.data;
    v.size = (u_int32_t)rec.len;
    if (users->put(users, txn, &k, &v, 0) != 0)
        _exit(1);
    env->log_flush(env, NULL);
    env->memp_sync(env, NULL);
    if (write(fd, "r", 1) != 1)
        _exit(1);
    for (;;)
        pause();
}

static pid_t start_uncommitted_child(const char *path)
{
    int p[2];
    assert_int_equal(pipe(p), 0);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        close(p[0]);
        child_uncommitted(path, "ex.test\0uncommitted", 19, p[1]);
    }
    close(p[1]);
    char c;
    assert_int_equal(read(p[0], &c, 1), 1);
    close(p[0]);
    return pid;
}

static void kill_child(pid_t pid)
{
    int status;
    assert_int_equal(kill(pid, SIGKILL), 0);
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFSIGNALED(status));
}

static void test_userdb_crash_mid_transaction(void **state)
{
    struct fixture *f = *state;
    const char *error;
    must_add_domain(f->db, "ex.test");
    must_add_user(f->db, "committed@ex.test");
    mg_userdb_close(&f->db);

    kill_child(start_uncommitted_child(f->path));
    /* The uncommitted change reached the database file: only recovery can
     * take it out again. */
    char *file = mg_asprintf("%s/users.db", f->path);
    size_t len;
    char *data = testutil_read_file(file, &len);
    assert_non_null(data);
    assert_non_null(memmem(data, len, "uncommitted@ex.test", 19));
    free(data);
    free(file);

    /* DB_REGISTER sees the dead process and DB_RECOVER undoes its write. */
    reopen(f);
    struct mg_user u;
    assert_int_equal(mg_userdb_user_get(f->db, "committed@ex.test", &u, &error), 0);
    mg_user_clear(&u);
    assert_int_equal(mg_userdb_user_get(f->db, "uncommitted@ex.test", &u, &error),
                     MG_USERDB_NOT_FOUND);
    assert_int_equal(count_users(f->db), 1);
    must_add_user(f->db, "after@ex.test");
    must_add_user(f->db, "uncommitted@ex.test");
    assert_int_equal(count_users(f->db), 3);
    reopen(f);
    assert_int_equal(count_users(f->db), 3);
}

static void test_userdb_crash_between_commits(void **state)
{
    struct fixture *f = *state;
    must_add_domain(f->db, "ex.test");
    mg_userdb_close(&f->db);

    int p[2];
    assert_int_equal(pipe(p), 0);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        close(p[0]);
        struct mg_userdb *db;
        const char *error;
        if (mg_userdb_open(f->path, 0, &db, &error) != 0)
            _exit(1);
        for (int i = 0;; i++) {
            char a[64];
            snprintf(a, sizeof(a), "loop%d@ex.test", i);
            if (mg_userdb_user_add(db, a, HASH, 0, &error) != 0)
                _exit(1);
            if (write(p[1], "c", 1) != 1) /* i is committed */
                _exit(1);
        }
    }
    close(p[1]);
    int confirmed = 0;
    char c;
    while (confirmed < 40 && read(p[0], &c, 1) == 1)
        confirmed++;
    kill_child(pid);
    while (read(p[0], &c, 1) == 1)
        confirmed++;
    close(p[0]);
    assert_int_equal(confirmed >= 40, 1);

    reopen(f);
    /* Every confirmed commit is there, nothing after a gap: the users are
     * loop0 .. loop(n-1), and n is the confirmed count or one more (killed
     * between commit and confirmation). */
    int n = count_users(f->db);
    assert_true(n == confirmed || n == confirmed + 1);
    for (int i = 0; i < n; i++) {
        char a[64];
        struct mg_user u;
        const char *error;
        snprintf(a, sizeof(a), "loop%d@ex.test", i);
        if (mg_userdb_user_get(f->db, a, &u, &error) != 0)
            fail_msg("%s missing after the crash: %s", a, error);
        mg_user_clear(&u);
    }
    must_add_user(f->db, "later@ex.test");
    assert_int_equal(count_users(f->db), n + 1);
}

/* Another process dies holding a write lock while this one has the
 * directory open: a blocked reader is freed by the next checkpoint
 * (failchk), and the dead transaction is rolled back. */
struct blocked_get {
    struct mg_userdb *db;
    int ret;
    volatile int done;
};

static void *blocked_get_thread(void *arg)
{
    struct blocked_get *bg = arg;
    struct mg_user u;
    const char *error;
    bg->ret = mg_userdb_user_get(bg->db, "committed@ex.test", &u, &error);
    mg_user_clear(&u);
    bg->done = 1;
    return NULL;
}

static void test_userdb_dead_lock_holder(void **state)
{
    struct fixture *f = *state;
    const char *error;
    must_add_domain(f->db, "ex.test");
    must_add_user(f->db, "committed@ex.test");
    assert_int_equal(mg_userdb_checkpoint(f->db), 0);

    kill_child(start_uncommitted_child(f->path));
    alarm(60); /* a hang here is the bug this test is about */
    struct blocked_get bg = { f->db, 1, 0 };
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, blocked_get_thread, &bg), 0);
    usleep(300 * 1000);
    assert_int_equal(bg.done, 0); /* waiting for the dead process's lock */
    assert_int_equal(mg_userdb_checkpoint(f->db), 0);
    assert_int_equal(pthread_join(t, NULL), 0);
    assert_int_equal(bg.ret, 0);
    struct mg_user u;
    assert_int_equal(mg_userdb_user_get(f->db, "uncommitted@ex.test", &u, &error),
                     MG_USERDB_NOT_FOUND);
    must_add_user(f->db, "after@ex.test");
    assert_int_equal(count_users(f->db), 2);
    alarm(0);
}

/* Another process runs recovery while this one has the directory open:
 * our handles are dead (DB_RUNRECOVERY) and are replaced transparently. */
static void test_userdb_reopen_after_recovery(void **state)
{
    struct fixture *f = *state;
    const char *error;
    must_add_domain(f->db, "ex.test");
    must_add_user(f->db, "committed@ex.test");

    kill_child(start_uncommitted_child(f->path));
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        struct mg_userdb *db;
        if (mg_userdb_open(f->path, 0, &db, &error) != 0)
            _exit(1);
        struct mg_user u;
        int ret = mg_userdb_user_get(db, "uncommitted@ex.test", &u, &error);
        mg_userdb_close(&db);
        _exit(ret == MG_USERDB_NOT_FOUND ? 0 : 2);
    }
    int status;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 0);

    alarm(60);
    struct mg_user u;
    assert_int_equal(mg_userdb_user_get(f->db, "committed@ex.test", &u, &error), 0);
    mg_user_clear(&u);
    assert_int_equal(mg_userdb_user_get(f->db, "uncommitted@ex.test", &u, &error),
                     MG_USERDB_NOT_FOUND);
    must_add_user(f->db, "after@ex.test");
    assert_int_equal(count_users(f->db), 2);
    assert_int_equal(mg_userdb_checkpoint(f->db), 0);
    alarm(0);
}

/* --- threads --- */

enum { THREADS = 4, THREAD_USERS = 40 };

struct thread_arg {
    struct mg_userdb *db;
    const char *hash; /* of "secret" */
    int id;
    int failures;
};

static void *thread_main(void *p)
{
    struct thread_arg *a = p;
    const char *error;
    for (int i = 0; i < THREAD_USERS; i++) {
        char address[64];
        snprintf(address, sizeof(address), "t%d-%d@ex.test", a->id, i);
        if (mg_userdb_user_add(a->db, address, a->hash, 0, &error) != 0)
            a->failures++;
        struct mg_user u;
        if (mg_userdb_user_get(a->db, address, &u, &error) != 0)
            a->failures++;
        else
            mg_user_clear(&u);
        /* Everyone changes the same user too: deadlocks are retried. */
        if (mg_userdb_user_set_quota(a->db, "shared@ex.test", (uint64_t)i, &error) != 0)
            a->failures++;
        struct mg_userdb_resolution res;
        if (mg_userdb_resolve(a->db, "all@ex.test", "+", &res, &error) != 0)
            a->failures++;
        mg_userdb_resolution_clear(&res);
        if (i % 10 == 0) {
            if (mg_userdb_user_get(a->db, "shared@ex.test", &u, &error) != 0)
                a->failures++;
            else if (!mg_password_verify("secret", u.password_hash) ||
                     mg_password_verify("Secret", u.password_hash))
                a->failures++;
            mg_user_clear(&u);
        }
    }
    return NULL;
}

static void test_userdb_threads(void **state)
{
    struct fixture *f = *state;
    const char *error;
    char *hash;
    assert_int_equal(mg_password_hash("secret", &hash, &error), 0);
    must_add_domain(f->db, "ex.test");
    assert_int_equal(mg_userdb_user_add(f->db, "shared@ex.test", hash, 0, &error), 0);
    must_add_alias(f->db, "all@ex.test", "shared@ex.test", "x@remote.test", NULL);

    pthread_t t[THREADS];
    struct thread_arg args[THREADS];
    for (int i = 0; i < THREADS; i++) {
        args[i] = (struct thread_arg){ f->db, hash, i, 0 };
        assert_int_equal(pthread_create(&t[i], NULL, thread_main, &args[i]), 0);
    }
    /* Checkpoints run beside the workers, as the auth service does. */
    for (int i = 0; i < 5; i++) {
        assert_int_equal(mg_userdb_checkpoint(f->db), 0);
        usleep(20 * 1000);
    }
    for (int i = 0; i < THREADS; i++) {
        assert_int_equal(pthread_join(t[i], NULL), 0);
        assert_int_equal(args[i].failures, 0);
    }
    assert_int_equal(count_users(f->db), 1 + THREADS * THREAD_USERS);
    free(hash);
}

int main(void)
{
    /* Children are killed on purpose; a dead reader must not kill us. */
    signal(SIGPIPE, SIG_IGN);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_userdb_open_modes),
        cmocka_unit_test_setup_teardown(test_userdb_domains, setup, teardown),
        cmocka_unit_test_setup_teardown(test_userdb_users, setup, teardown),
        cmocka_unit_test_setup_teardown(test_userdb_user_list, setup, teardown),
        cmocka_unit_test_setup_teardown(test_userdb_aliases, setup, teardown),
        cmocka_unit_test_setup_teardown(test_userdb_resolve, setup, teardown),
        cmocka_unit_test_setup_teardown(test_userdb_resolve_postmaster, setup, teardown),
        cmocka_unit_test_setup_teardown(test_userdb_resolve_limits, setup, teardown),
        cmocka_unit_test_setup_teardown(test_userdb_damaged_records, setup, teardown),
        cmocka_unit_test(test_userdb_record_decoding),
        cmocka_unit_test_setup_teardown(test_userdb_persistence_and_logs, setup, teardown),
        cmocka_unit_test_setup_teardown(test_userdb_two_processes, setup, teardown),
        cmocka_unit_test_setup_teardown(test_userdb_crash_mid_transaction, setup, teardown),
        cmocka_unit_test_setup_teardown(test_userdb_crash_between_commits, setup, teardown),
        cmocka_unit_test_setup_teardown(test_userdb_dead_lock_holder, setup, teardown),
        cmocka_unit_test_setup_teardown(test_userdb_reopen_after_recovery, setup, teardown),
        cmocka_unit_test_setup_teardown(test_userdb_threads, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
