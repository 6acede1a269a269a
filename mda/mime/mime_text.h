/* Decoded text of a message for SEARCH BODY/TEXT and for logs.
 *
 * A text part is a leaf of type text/... (any subtype: HTML is searched as
 * its markup) or a container the parser left unsplit (shown as text/plain).
 * Its body is transfer-decoded (mime_transfer.h) and converted from its
 * charset parameter to UTF-8 (mime_charset.h: default us-ascii, unknown
 * charsets read as UTF-8, invalid bytes replaced with U+FFFD). The headers of
 * encapsulated messages are not included: use mime_header.h for them. */
#ifndef MG_MDA_MIME_TEXT_H
#define MG_MDA_MIME_TEXT_H

#include <stdbool.h>
#include <stddef.h>

#include "common/buf.h"
#include "mda/mime/mime_parser.h"

/* Appends the decoded UTF-8 text of the part's body (whatever its type). */
void mime_text_decode_part(const struct mime_part *part, const char *data,
                           struct mg_buf *out);

/* Called for each text part with its decoded text (valid until the call
 * returns); returns false to stop the iteration. */
typedef bool mime_text_callback(void *context, const struct mime_part *part,
                                const char *text, size_t len);

/* Calls cb for every text part under root in document order. Returns false
 * when cb stopped it. */
bool mime_text_foreach(const struct mime_part *root, const char *data,
                       mime_text_callback *cb, void *context);

#endif
