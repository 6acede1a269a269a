#include "common/arena.h"

#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/alloc.h"

#define ARENA_ALIGN 16
#define ARENA_DEFAULT_CHUNK 4096

struct arena_chunk {
    struct arena_chunk *next;
    size_t size;
    size_t used;
    _Alignas(ARENA_ALIGN) unsigned char data[];
};

struct mg_arena {
    struct arena_chunk *head; /* current chunk; older ones follow */
    size_t chunk_size;
    size_t used_total;
};

static struct arena_chunk *chunk_new(size_t size)
{
    struct arena_chunk *c = mg_malloc(sizeof(*c) + size);
    c->next = NULL;
    c->size = size;
    c->used = 0;
    return c;
}

struct mg_arena *mg_arena_new(size_t chunk_size)
{
    struct mg_arena *a = mg_calloc(1, sizeof(*a));
    a->chunk_size = chunk_size ? chunk_size : ARENA_DEFAULT_CHUNK;
    a->head = chunk_new(a->chunk_size);
    return a;
}

void mg_arena_free(struct mg_arena **arena)
{
    if (*arena == NULL)
        return;
    struct arena_chunk *c = (*arena)->head;
    while (c != NULL) {
        struct arena_chunk *next = c->next;
        free(c);
        c = next;
    }
    free(*arena);
    *arena = NULL;
}

void mg_arena_clear(struct mg_arena *arena)
{
    /* One chunk of the default size stays for reuse; blocks made for one
     * big allocation go, so a session that once held a large command does
     * not keep its memory while idle. The default chunk need not be the
     * oldest: a big block can sit behind the head (mg_arena_alloc). */
    struct arena_chunk *keep = NULL;
    struct arena_chunk *c = arena->head;
    while (c != NULL) {
        struct arena_chunk *next = c->next;
        if (keep == NULL && c->size == arena->chunk_size)
            keep = c;
        else
            free(c);
        c = next;
    }
    if (keep == NULL)
        keep = chunk_new(arena->chunk_size);
    keep->next = NULL;
    keep->used = 0;
    arena->head = keep;
    arena->used_total = 0;
}

void *mg_arena_alloc(struct mg_arena *arena, size_t size)
{
    if (size > SIZE_MAX - ARENA_ALIGN)
        abort();
    size_t rounded = (size + ARENA_ALIGN - 1) & ~(size_t)(ARENA_ALIGN - 1);
    if (rounded == 0)
        rounded = ARENA_ALIGN;
    struct arena_chunk *c = arena->head;
    if (c->size - c->used < rounded) {
        size_t csize = rounded > arena->chunk_size ? rounded : arena->chunk_size;
        struct arena_chunk *n = chunk_new(csize);
        /* A big one-off block goes behind the head so the head's free
         * space stays usable for the next small allocations. */
        if (rounded > arena->chunk_size / 2 && c->size - c->used > ARENA_ALIGN) {
            n->next = c->next;
            c->next = n;
            c = n;
        } else {
            n->next = c;
            arena->head = n;
            c = n;
        }
    }
    void *p = c->data + c->used;
    c->used += rounded;
    arena->used_total += rounded;
    return p;
}

void *mg_arena_zalloc(struct mg_arena *arena, size_t size)
{
    void *p = mg_arena_alloc(arena, size);
    memset(p, 0, size);
    return p;
}

void *mg_arena_memdup(struct mg_arena *arena, const void *p, size_t size)
{
    void *q = mg_arena_alloc(arena, size);
    if (size > 0)
        memcpy(q, p, size);
    return q;
}

char *mg_arena_strdup(struct mg_arena *arena, const char *s)
{
    return mg_arena_strndup(arena, s, strlen(s));
}

char *mg_arena_strndup(struct mg_arena *arena, const char *s, size_t n)
{
    char *p = mg_arena_alloc(arena, n + 1);
    if (n > 0)
        memcpy(p, s, n);
    p[n] = '\0';
    return p;
}

char *mg_arena_printf(struct mg_arena *arena, const char *fmt, ...)
{
    va_list ap, ap2;
    va_start(ap, fmt);
    va_copy(ap2, ap);
    int n = vsnprintf(NULL, 0, fmt, ap2);
    va_end(ap2);
    if (n < 0) {
        va_end(ap);
        return mg_arena_strdup(arena, "");
    }
    char *p = mg_arena_alloc(arena, (size_t)n + 1);
    vsnprintf(p, (size_t)n + 1, fmt, ap);
    va_end(ap);
    return p;
}

size_t mg_arena_used(const struct mg_arena *arena)
{
    return arena->used_total;
}
