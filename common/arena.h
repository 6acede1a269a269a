/* Arenas: memory with one lifetime (a session, a command, a parse).
 *
 * Everything allocated from an arena is released at once by
 * mg_arena_clear() or mg_arena_free(); there is no per-object free. Use an
 * arena where many small allocations die together, and plain mg_malloc()
 * where an object outlives its creator's scope. */
#ifndef MG_COMMON_ARENA_H
#define MG_COMMON_ARENA_H

#include <stddef.h>

struct mg_arena;

/* chunk_size is a hint for the size of each block (0: 4 KiB). */
struct mg_arena *mg_arena_new(size_t chunk_size);
/* Frees the arena and everything in it; accepts NULL, sets *arena to NULL. */
void mg_arena_free(struct mg_arena **arena);
/* Releases every allocation but keeps the first block for reuse. */
void mg_arena_clear(struct mg_arena *arena);

/* Memory aligned for any type; never NULL. */
void *mg_arena_alloc(struct mg_arena *arena, size_t size);
void *mg_arena_zalloc(struct mg_arena *arena, size_t size);
void *mg_arena_memdup(struct mg_arena *arena, const void *p, size_t size);
char *mg_arena_strdup(struct mg_arena *arena, const char *s);
/* Copies n bytes and NUL-terminates (s need not be terminated). */
char *mg_arena_strndup(struct mg_arena *arena, const char *s, size_t n);
char *mg_arena_printf(struct mg_arena *arena, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
/* Bytes handed out since creation or the last clear (for limits). */
size_t mg_arena_used(const struct mg_arena *arena);

#endif
