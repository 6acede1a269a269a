#include "testutil.h"

#include <crypt.h>
#include <stdlib.h>
#include <string.h>

#include "common/alloc.h"
#include "common/password.h"

static void test_password_hash_and_verify(void **state)
{
    (void)state;
    char *hash = NULL;
    const char *error = NULL;
    assert_int_equal(mg_password_hash("correct horse", &hash, &error), 0);
    assert_non_null(hash);
    assert_true(strncmp(hash, "$y$", 3) == 0);
    assert_null(strstr(hash, "correct horse"));
    assert_true(mg_password_verify("correct horse", hash));
    assert_false(mg_password_verify("correct horsE", hash));
    assert_false(mg_password_verify("correct horse ", hash));
    assert_false(mg_password_verify("", hash));
    assert_true(mg_password_hash_is_current(hash));
    free(hash);
}

static void test_password_salts_differ(void **state)
{
    (void)state;
    char *a = NULL, *b = NULL;
    const char *error;
    assert_int_equal(mg_password_hash("same", &a, &error), 0);
    assert_int_equal(mg_password_hash("same", &b, &error), 0);
    assert_string_not_equal(a, b);
    /* The salt field ($y$params$salt$hash) differs, not only the hash. */
    const char *sa = strchr(a + 3, '$'), *sb = strchr(b + 3, '$');
    assert_non_null(sa);
    assert_non_null(sb);
    assert_memory_not_equal(sa, sb, 10);
    assert_true(mg_password_verify("same", a));
    assert_true(mg_password_verify("same", b));
    free(a);
    free(b);
}

static void test_password_unusable_hashes(void **state)
{
    (void)state;
    static const char *const unusable[] = {
        "", "*", "!", "!!", "*LK*", "*NP*", "!$y$j9T$abc$def", "x", "$y$", "$6$",
        "$unknown$salt$hash",
    };
    for (size_t i = 0; i < sizeof(unusable) / sizeof(unusable[0]); i++) {
        assert_false(mg_password_verify("", unusable[i]));
        assert_false(mg_password_verify("password", unusable[i]));
        assert_false(mg_password_verify("*", unusable[i]));
        assert_false(mg_password_verify("!", unusable[i]));
        assert_false(mg_password_hash_is_current(unusable[i]));
    }
    assert_false(mg_password_verify("password", NULL));
    assert_false(mg_password_verify(NULL, "*"));
    assert_false(mg_password_hash_is_current(NULL));

    /* A locked account: "!" prepended to a hash that would match. */
    char *hash;
    const char *error;
    assert_int_equal(mg_password_hash("pw", &hash, &error), 0);
    char *locked = mg_asprintf("!%s", hash);
    assert_true(mg_password_verify("pw", hash));
    assert_false(mg_password_verify("pw", locked));
    free(locked);
    free(hash);
}

static void test_password_foreign_hashes(void **state)
{
    (void)state;
    /* sha512crypt as an old system would have made it, with crypt(3). */
    struct crypt_data *cd = mg_calloc(1, sizeof(*cd));
    const char *h6 = crypt_r("imported pw", "$6$saltsaltsalt$", cd);
    assert_non_null(h6);
    assert_true(strncmp(h6, "$6$", 3) == 0);
    char *copy = mg_strdup(h6);
    assert_true(mg_password_verify("imported pw", copy));
    assert_false(mg_password_verify("imported pW", copy));
    assert_false(mg_password_hash_is_current(copy));
    /* A bcrypt hash made the same way. */
    const char *h2b = crypt_r("bcrypt pw", "$2b$05$abcdefghijklmnopqrstuu", cd);
    assert_non_null(h2b);
    char *copy2 = mg_strdup(h2b);
    assert_true(mg_password_verify("bcrypt pw", copy2));
    assert_false(mg_password_verify("bcrypt pX", copy2));
    assert_false(mg_password_hash_is_current(copy2));
    free(copy);
    free(copy2);
    free(cd);
}

static void test_password_is_current(void **state)
{
    (void)state;
    char *hash;
    const char *error;
    assert_int_equal(mg_password_hash("x", &hash, &error), 0);
    assert_true(mg_password_hash_is_current(hash));
    /* yescrypt with a non-default cost is not current. */
    char *cheap = crypt_gensalt_ra("$y$", 1, NULL, 0);
    assert_non_null(cheap);
    struct crypt_data *cd = mg_calloc(1, sizeof(*cd));
    const char *h = crypt_r("x", cheap, cd);
    assert_non_null(h);
    assert_true(mg_password_verify("x", h));
    assert_false(mg_password_hash_is_current(h));
    /* The setting alone (no hash) is not a current hash. */
    char *setting = crypt_gensalt_ra("$y$", 0, NULL, 0);
    char *prefix_only = mg_strndup(setting, (size_t)(strrchr(setting, '$') - setting + 1));
    assert_false(mg_password_hash_is_current(prefix_only));
    free(prefix_only);
    free(setting);
    free(cheap);
    free(cd);
    free(hash);
}

static void test_password_length_limits(void **state)
{
    (void)state;
    char *big = mg_malloc(MG_PASSWORD_MAX + 2);
    memset(big, 'a', MG_PASSWORD_MAX + 1);
    big[MG_PASSWORD_MAX + 1] = '\0';
    char *hash = NULL;
    const char *error = NULL;
    assert_int_equal(mg_password_hash(big, &hash, &error), -1);
    assert_null(hash);
    assert_string_equal(error, "password too long");

    /* 511 bytes is the longest that works. */
    big[CRYPT_MAX_PASSPHRASE_SIZE - 1] = '\0';
    assert_int_equal(mg_password_hash(big, &hash, &error), 0);
    assert_true(mg_password_verify(big, hash));
    big[CRYPT_MAX_PASSPHRASE_SIZE - 2] = '\0';
    assert_false(mg_password_verify(big, hash));
    free(hash);

    assert_int_equal(mg_password_hash("", &hash, &error), -1);
    assert_string_equal(error, "empty password");
    free(big);
}

static void test_password_wipe(void **state)
{
    (void)state;
    char buf[32];
    memcpy(buf, "secret-secret-secret", 21);
    mg_password_wipe(buf, sizeof(buf));
    for (size_t i = 0; i < sizeof(buf); i++)
        assert_int_equal(buf[i], 0);
    mg_password_wipe(NULL, 10);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_password_hash_and_verify),
        cmocka_unit_test(test_password_salts_differ),
        cmocka_unit_test(test_password_unusable_hashes),
        cmocka_unit_test(test_password_foreign_hashes),
        cmocka_unit_test(test_password_is_current),
        cmocka_unit_test(test_password_length_limits),
        cmocka_unit_test(test_password_wipe),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
