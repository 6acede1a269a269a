/* Framing of the auth protocol (docs/auth-protocol.md): TAB-separated
 * fields with %XX escapes, one request or answer per line. */
#ifndef MG_COMMON_AUTH_PROTO_H
#define MG_COMMON_AUTH_PROTO_H

#include <stddef.h>

struct mg_buf;

#define MG_AUTH_PROTO_LINE_MAX 8192
#define MG_AUTH_PROTO_FIELDS_MAX 4096

/* Appends a field (preceded by a TAB unless out is empty). */
void mg_auth_proto_field(struct mg_buf *out, const char *value, size_t len);
void mg_auth_proto_cfield(struct mg_buf *out, const char *value);

/* Splits a line (without its LF; line[len] must be writable) in place
 * into fields, decoding escapes:
 * fields_r[i] point into line, NUL-terminated. Returns the count, or -1
 * for a malformed escape or too many fields. */
int mg_auth_proto_split(char *line, size_t len, char **fields_r, size_t max_fields);

#endif
