/* libFuzzer harness: RFC 5321 address and path parsing with every flag
 * combination (the first byte picks the flags), then formatting and keys
 * of whatever parsed, which must parse again to the same key. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "common/address.h"
#include "common/arena.h"
#include "common/log.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    unsigned flags = data[0] & 7;
    const char *text = (const char *)data + 1;
    size_t len = size - 1;
    struct mg_arena *arena = mg_arena_new(0);
    struct mg_address addr;
    const char *error;
    size_t consumed;

    if (mg_address_parse(text, len, flags, arena, &addr, &error) == 0) {
        char *formatted = mg_address_format(arena, &addr);
        char *key = mg_address_key(arena, &addr);
        struct mg_address again;
        /* The formatted form must parse back to the same mailbox. */
        if (formatted[0] != '\0' &&
            mg_address_parse(formatted, strlen(formatted), flags, arena, &again, &error) != 0)
            mg_panic("formatted address does not parse: %s", error);
        if (formatted[0] != '\0' && strcmp(mg_address_key(arena, &again), key) != 0)
            mg_panic("key changed after round trip");
        (void)mg_address_base_local_len(addr.local, strlen(addr.local), "+-");
    }
    if (mg_address_parse_path(text, len, flags, arena, &addr, &consumed, &error) == 0) {
        if (consumed > len)
            mg_panic("consumed past the end");
    }
    (void)mg_address_domain_is_valid(text, len, flags);
    mg_arena_free(&arena);
    return 0;
}
