/* libFuzzer harness: the auth protocol's field splitting and escaping;
 * every split line must re-encode to fields that split the same way. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "common/auth_proto.h"
#include "common/buf.h"
#include "common/log.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > MG_AUTH_PROTO_LINE_MAX)
        return 0;
    char *line = malloc(size + 1);
    memcpy(line, data, size);
    line[size] = '\0';
    char *fields[64];
    int n = mg_auth_proto_split(line, size, fields, 64);
    if (n > 0) {
        struct mg_buf enc = MG_BUF_INIT;
        size_t lens[64];
        for (int i = 0; i < n; i++) {
            lens[i] = strlen(fields[i]);
            mg_auth_proto_field(&enc, fields[i], lens[i]);
        }
        /* An empty first field leaves no TAB for the empty buffer: only
         * compare when the encoding can represent the list. */
        char *copy = malloc(enc.len + 1);
        memcpy(copy, enc.data != NULL ? enc.data : "", enc.len);
        copy[enc.len] = '\0';
        char *again[64];
        int m = mg_auth_proto_split(copy, enc.len, again, 64);
        if (lens[0] > 0 && m != n)
            mg_panic("field count changed: %d -> %d", n, m);
        for (int i = 0; lens[0] > 0 && i < n && i < m; i++) {
            if (strcmp(fields[i], again[i]) != 0)
                mg_panic("field %d changed", i);
        }
        free(copy);
        mg_buf_free(&enc);
    }
    free(line);
    return 0;
}
