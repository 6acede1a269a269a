#include "common/ascii.h"

#include <string.h>

void mg_ascii_lower(char *s, size_t len)
{
    for (size_t i = 0; i < len; i++)
        s[i] = mg_ascii_tolower(s[i]);
}

int mg_ascii_strcasecmp(const char *a, const char *b)
{
    for (;; a++, b++) {
        unsigned char ca = (unsigned char)mg_ascii_tolower(*a);
        unsigned char cb = (unsigned char)mg_ascii_tolower(*b);
        if (ca != cb || ca == '\0')
            return (int)ca - (int)cb;
    }
}

bool mg_ascii_eq(const char *s, size_t len, const char *word)
{
    size_t wlen = strlen(word);
    if (wlen != len)
        return false;
    for (size_t i = 0; i < len; i++) {
        if (mg_ascii_tolower(s[i]) != mg_ascii_tolower(word[i]))
            return false;
    }
    return true;
}

bool mg_ascii_has_prefix(const char *s, size_t len, const char *prefix)
{
    size_t plen = strlen(prefix);
    if (plen > len)
        return false;
    for (size_t i = 0; i < plen; i++) {
        if (mg_ascii_tolower(s[i]) != mg_ascii_tolower(prefix[i]))
            return false;
    }
    return true;
}
