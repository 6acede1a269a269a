/* Modified UTF-7 for mailbox names (RFC 3501 section 5.1.3). */
#ifndef MG_MDA_IMAP_MUTF7_H
#define MG_MDA_IMAP_MUTF7_H

#include <stddef.h>

struct mg_buf;

/* UTF-8 to modified UTF-7, appended to out. Returns 0, or -1 (out
 * unchanged) if the input is not valid UTF-8 or holds a NUL. */
int mutf7_encode(const char *utf8, size_t len, struct mg_buf *out);
/* Modified UTF-7 to UTF-8, appended to out. Strict: returns -1 for
 * anything a conforming client would not send (unterminated "&" shifts,
 * printable ASCII encoded in base64, invalid base64, unpaired surrogates,
 * leftover bits, raw 8-bit bytes, adjacent shifts, U+0000); out is
 * unchanged then. */
int mutf7_decode(const char *mutf7, size_t len, struct mg_buf *out);

#endif
