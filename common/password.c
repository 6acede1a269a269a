#include "common/password.h"

#include <crypt.h>
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>

#include "common/alloc.h"

/* New hashes name yescrypt explicitly rather than relying on libxcrypt's
 * preferred method, so that a library upgrade cannot silently change the
 * format we write. */
#define PASSWORD_PREFIX "$y$"

/* libxcrypt refuses passphrases of CRYPT_MAX_PASSPHRASE_SIZE bytes or more
 * (ERANGE), which is below MG_PASSWORD_MAX: such passwords could never be
 * verified, so hashing them is refused too. */
#define PASSWORD_CRYPT_MAX (CRYPT_MAX_PASSPHRASE_SIZE - 1)

/* "$y$<params>$" as crypt_gensalt produces it with the default cost;
 * computed once, read by mg_password_hash_is_current(). */
static pthread_once_t password_default_once = PTHREAD_ONCE_INIT;
static char password_default_params[64];

static void password_default_init(void)
{
    char *setting = crypt_gensalt_ra(PASSWORD_PREFIX, 0, NULL, 0);
    if (setting == NULL)
        return;
    /* setting is "$y$j9T$<salt>": keep everything up to the third '$'. */
    const char *p = strchr(setting + strlen(PASSWORD_PREFIX), '$');
    if (p != NULL && (size_t)(p - setting) + 1 < sizeof(password_default_params))
        memcpy(password_default_params, setting, (size_t)(p - setting) + 1);
    free(setting);
}

/* Hashes with an explicit setting; the struct crypt_data (32 KiB) lives on
 * the heap because worker threads have small stacks, and is wiped because
 * it holds intermediate state derived from the password. Returns a new
 * string or NULL. */
static char *password_crypt(const char *password, const char *setting)
{
    struct crypt_data *data = mg_calloc(1, sizeof(*data));
    char *out = NULL;
    const char *res = crypt_rn(password, setting, data, (int)sizeof(*data));
    /* Failure is NULL or a "*..." token, which can never equal a stored
     * hash because stored hashes starting with '*' are refused first. */
    if (res != NULL && res[0] != '*')
        out = mg_strdup(res);
    mg_password_wipe(data, sizeof(*data));
    free(data);
    return out;
}

static bool password_hash_is_usable(const char *hash)
{
    return hash != NULL && hash[0] != '\0' && hash[0] != '*' && hash[0] != '!';
}

int mg_password_hash(const char *password, char **hash_r, const char **error_r)
{
    size_t len = strnlen(password, MG_PASSWORD_MAX + 1);
    if (len == 0) {
        *error_r = "empty password";
        return -1;
    }
    if (len > MG_PASSWORD_MAX || len > PASSWORD_CRYPT_MAX) {
        *error_r = "password too long";
        return -1;
    }
    char *setting = crypt_gensalt_ra(PASSWORD_PREFIX, 0, NULL, 0);
    if (setting == NULL) {
        *error_r = errno == ENOMEM ? "out of memory" : "cannot generate a salt";
        return -1;
    }
    char *hash = password_crypt(password, setting);
    free(setting);
    if (hash == NULL) {
        *error_r = "password hashing failed";
        return -1;
    }
    *hash_r = hash;
    return 0;
}

bool mg_password_verify(const char *password, const char *hash)
{
    if (password == NULL || !password_hash_is_usable(hash))
        return false;
    size_t len = strnlen(password, MG_PASSWORD_MAX + 1);
    if (len > MG_PASSWORD_MAX || len > PASSWORD_CRYPT_MAX)
        return false;
    char *computed = password_crypt(password, hash);
    if (computed == NULL)
        return false;
    /* The lengths are not secret (they follow from the method); the
     * contents are compared in constant time. */
    size_t clen = strlen(computed);
    bool is_match = clen == strlen(hash) && CRYPTO_memcmp(computed, hash, clen) == 0;
    mg_password_wipe(computed, clen);
    free(computed);
    return is_match;
}

bool mg_password_hash_is_current(const char *hash)
{
    /* Current means: yescrypt with exactly the parameters crypt_gensalt
     * chooses by default today (a cost raised in a later libxcrypt makes
     * older hashes "not current"), followed by a salt and a hash. */
    pthread_once(&password_default_once, password_default_init);
    size_t plen = strlen(password_default_params);
    if (hash == NULL || plen == 0 || strncmp(hash, password_default_params, plen) != 0)
        return false;
    const char *salt_end = strchr(hash + plen, '$');
    return salt_end != NULL && salt_end > hash + plen && salt_end[1] != '\0';
}

void mg_password_wipe(void *p, size_t len)
{
    if (p != NULL)
        explicit_bzero(p, len);
}
