#include "common/alloc.h"

#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static void __attribute__((noreturn)) alloc_fail(size_t size)
{
    /* No allocation and no stdio here: we are out of memory. */
    static const char msg[] = "<2>crit alloc: out of memory, aborting\n";
    (void)size;
    ssize_t w = write(STDERR_FILENO, msg, sizeof(msg) - 1);
    (void)w;
    abort();
}

void *mg_malloc(size_t size)
{
    void *p = malloc(size ? size : 1);
    if (p == NULL)
        alloc_fail(size);
    return p;
}

void *mg_calloc(size_t nmemb, size_t size)
{
    /* Nothing asked for (0 members of any size): one byte, like malloc(0)
     * here; not nmemb or size bumped to 1 alone, which turns calloc(0, big)
     * into an impossible allocation. */
    if (nmemb == 0 || size == 0)
        nmemb = size = 1;
    void *p = calloc(nmemb, size);
    if (p == NULL)
        alloc_fail(size);
    return p;
}

void *mg_realloc(void *ptr, size_t size)
{
    void *p = realloc(ptr, size ? size : 1);
    if (p == NULL)
        alloc_fail(size);
    return p;
}

void *mg_reallocarray(void *ptr, size_t nmemb, size_t size)
{
    if (size != 0 && nmemb > SIZE_MAX / size)
        alloc_fail(SIZE_MAX);
    return mg_realloc(ptr, nmemb * size);
}

char *mg_strdup(const char *s)
{
    return mg_strndup(s, strlen(s));
}

char *mg_strndup(const char *s, size_t n)
{
    size_t len = strnlen(s, n);
    char *p = mg_malloc(len + 1);
    memcpy(p, s, len);
    p[len] = '\0';
    return p;
}

char *mg_asprintf(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    char *p = NULL;
    int n = vasprintf(&p, fmt, ap);
    va_end(ap);
    if (n < 0)
        alloc_fail(0);
    return p;
}
