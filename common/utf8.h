/* UTF-8 validation (RFC 3629). */
#ifndef MG_COMMON_UTF8_H
#define MG_COMMON_UTF8_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Whether s[0..len) is well-formed UTF-8: no overlong forms, no surrogates,
 * nothing above U+10FFFF, no truncated sequence at the end. */
bool mg_utf8_is_valid(const char *s, size_t len);

/* Decodes one code point at s[0..len). Returns its length in bytes (1-4),
 * or 0 for an invalid or truncated sequence. */
size_t mg_utf8_decode(const char *s, size_t len, uint32_t *cp_r);

/* Encodes a code point (<= U+10FFFF, not a surrogate) into out[4];
 * returns the length, or 0 when cp is not encodable. */
size_t mg_utf8_encode(uint32_t cp, char out[4]);

#endif
