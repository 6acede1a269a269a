/* Allocation that never returns NULL.
 *
 * A mail daemon that runs out of memory cannot answer anything sensible, and
 * checking every small allocation spreads error paths that are never tested.
 * Inputs are bounded elsewhere (line, literal and message limits), so an
 * allocation failure here is a bug or a machine in trouble: we abort with a
 * message, and the supervisor (systemd) restarts the daemon, whose durable
 * state is always consistent on disk. */
#ifndef MG_COMMON_ALLOC_H
#define MG_COMMON_ALLOC_H

#include <stddef.h>

void *mg_malloc(size_t size);
void *mg_calloc(size_t nmemb, size_t size);
void *mg_realloc(void *ptr, size_t size);
/* realloc for arrays: checks nmemb * size for overflow. */
void *mg_reallocarray(void *ptr, size_t nmemb, size_t size);
char *mg_strdup(const char *s);
char *mg_strndup(const char *s, size_t n);
/* printf into a new allocation; the caller frees it. */
char *mg_asprintf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* Frees *p and sets it to NULL; accepts p NULL and *p NULL. Evaluates p
 * once, like a function would. */
#define mg_free(p) \
    do { \
        __typeof__(p) mg_free_p_ = (p); \
        if (mg_free_p_ != NULL) { \
            free(*mg_free_p_); \
            *mg_free_p_ = NULL; \
        } \
    } while (0)

#endif
