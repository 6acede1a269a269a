/* Content-Transfer-Encoding decoding (RFC 2045 section 6) and the "Q"
 * encoding of RFC 2047 encoded words.
 *
 * The decoders are tolerant: they never fail and never read outside the
 * input. Base64 skips every byte outside its alphabet (line breaks, spaces,
 * garbage) and starts a new group after '=' padding; quoted-printable keeps an
 * invalid escape ("=ZZ", a lone '=') as it is and drops the white space
 * that transport added at line ends. */
#ifndef MG_MDA_MIME_TRANSFER_H
#define MG_MDA_MIME_TRANSFER_H

#include <stddef.h>

#include "common/buf.h"

enum mime_cte {
    MIME_CTE_7BIT = 0, /* also the default, and any unknown encoding */
    MIME_CTE_8BIT,
    MIME_CTE_BINARY,
    MIME_CTE_QUOTED_PRINTABLE,
    MIME_CTE_BASE64,
    MIME_CTE_UNKNOWN, /* named, but not one of the above: passed through */
};

/* Case-insensitive lookup of a Content-Transfer-Encoding token. */
enum mime_cte mime_transfer_cte_from_name(const char *name, size_t len);

/* Appends the decoded bytes of in[0..len) to out. */
void mime_transfer_base64_decode(const char *in, size_t len, struct mg_buf *out);
void mime_transfer_qp_decode(const char *in, size_t len, struct mg_buf *out);
/* RFC 2047 "Q": like quoted-printable, '_' is a space, no soft breaks. */
void mime_transfer_q_decode(const char *in, size_t len, struct mg_buf *out);
/* Dispatches on cte; identity for 7bit, 8bit, binary and unknown. */
void mime_transfer_decode(enum mime_cte cte, const char *in, size_t len,
                          struct mg_buf *out);

#endif
