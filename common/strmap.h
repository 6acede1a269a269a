/* A hash map from strings to pointers (chained, growing). Keys are
 * copied; values are the caller's. Not thread-safe: guard it yourself. */
#ifndef MG_COMMON_STRMAP_H
#define MG_COMMON_STRMAP_H

#include <stddef.h>

struct mg_strmap;

struct mg_strmap *mg_strmap_new(void);
/* Frees the map (not the values); accepts NULL, sets *map to NULL. */
void mg_strmap_free(struct mg_strmap **map);
void *mg_strmap_get(const struct mg_strmap *map, const char *key);
/* Sets key to value (replacing and returning any previous value). */
void *mg_strmap_set(struct mg_strmap *map, const char *key, void *value);
/* Removes key; returns its value or NULL. */
void *mg_strmap_remove(struct mg_strmap *map, const char *key);
size_t mg_strmap_count(const struct mg_strmap *map);
/* Calls cb for each entry (order unspecified); cb must not change the map
 * except by returning 1 to remove the entry it was given. */
void mg_strmap_foreach(struct mg_strmap *map, int (*cb)(const char *key, void *value, void *ctx),
                       void *ctx);

#endif
