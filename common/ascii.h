/* Locale-independent ASCII case handling for protocol tokens and names.
 * (The C library's tolower() and strcasecmp() follow the locale.) */
#ifndef MG_COMMON_ASCII_H
#define MG_COMMON_ASCII_H

#include <stdbool.h>
#include <stddef.h>

static inline char mg_ascii_tolower(char c)
{
    return c >= 'A' && c <= 'Z' ? (char)(c + ('a' - 'A')) : c;
}

static inline char mg_ascii_toupper(char c)
{
    return c >= 'a' && c <= 'z' ? (char)(c - ('a' - 'A')) : c;
}

/* Lower-cases ASCII letters of s[0..len) in place. */
void mg_ascii_lower(char *s, size_t len);
/* Case-insensitive comparison of two NUL-terminated strings (<0, 0, >0). */
int mg_ascii_strcasecmp(const char *a, const char *b);
/* Case-insensitive equality of s[0..len) with the NUL-terminated word. */
bool mg_ascii_eq(const char *s, size_t len, const char *word);
/* Whether s[0..len) starts with prefix, ignoring ASCII case. */
bool mg_ascii_has_prefix(const char *s, size_t len, const char *prefix);

#endif
