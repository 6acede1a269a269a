/* Base64 (RFC 4648) for SASL exchanges, which need strict decoding: a
 * malformed challenge response is an error, not something to guess at.
 * (MIME's lenient body decoding lives with the MIME parser.) */
#ifndef MG_COMMON_BASE64_H
#define MG_COMMON_BASE64_H

#include <stddef.h>

struct mg_buf;

/* Appends the encoding of data to out. */
void mg_base64_encode(const void *data, size_t len, struct mg_buf *out);
/* Appends the decoding of text to out: 0, or -1 for anything but canonical
 * padded base64 (no whitespace, length a multiple of 4). */
int mg_base64_decode(const char *text, size_t len, struct mg_buf *out);
/* Decoded size upper bound. */
#define MG_BASE64_DECODED_MAX(len) (((len) / 4) * 3)

#endif
