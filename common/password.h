/* Password hashing with libxcrypt.
 *
 * New hashes use libxcrypt's preferred method (yescrypt, "$y$"); any hash
 * crypt(3) understands verifies, so hashes imported from elsewhere
 * ("$6$", "$2b$") keep working. Plaintext passwords live only in memory the
 * caller owns, and callers wipe them (mg_password_wipe) when done. */
#ifndef MG_COMMON_PASSWORD_H
#define MG_COMMON_PASSWORD_H

#include <stdbool.h>
#include <stddef.h>

/* Longest password accepted anywhere (SASL, mgadm). Note: libxcrypt
 * hashes at most CRYPT_MAX_PASSPHRASE_SIZE - 1 (511) bytes, so
 * mg_password_hash() refuses longer passwords and mg_password_verify()
 * never matches them. */
#define MG_PASSWORD_MAX 511

/* Hashes with a fresh random salt. Returns 0 and a new string in *hash_r
 * (the caller frees it), or -1 with a static reason in *error_r. */
int mg_password_hash(const char *password, char **hash_r, const char **error_r);

/* Whether password matches hash. The comparison of the computed and the
 * stored hash is constant-time; an unusable hash ("*", "!") never matches.
 * Thread-safe. Slow by design (yescrypt): never call on an event loop. */
bool mg_password_verify(const char *password, const char *hash);

/* Whether the hash uses the preferred method and cost (else: rehash on the
 * next successful login, or tell the operator): "$y$" followed by exactly
 * the parameters crypt_gensalt() picks by default today ("$y$j9T$"), a
 * salt and a hash. */
bool mg_password_hash_is_current(const char *hash);

/* Overwrites len bytes in a way the compiler may not drop. */
void mg_password_wipe(void *p, size_t len);

#endif
