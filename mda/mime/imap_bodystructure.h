/* IMAP BODY and BODYSTRUCTURE (RFC 3501 section 7.4.2) from a parsed
 * message, byte for byte as Dovecot writes them (lib-imap/
 * imap-bodystructure.c):
 *  - text parts without a charset get ("charset" "us-ascii");
 *  - a multipart without children is written with one empty text/plain
 *    part, as IMAP needs at least one;
 *  - a part cut by the parser's limits (MIME_PART_FLAG_OVERFLOW) is a
 *    text/plain leaf with the default charset;
 *  - parameters are written as received (RFC 2231 continuations merged but
 *    not decoded); type and subtype are lower-case;
 *  - sizes count bare LFs as CR LF (mime_parser.h).
 * message/global is written like message/rfc822 only with
 * IMAP_BODYSTRUCTURE_FLAG_GLOBAL_AS_MESSAGE (IMAP4rev2, RFC 9051); IMAP4rev1
 * clients expect it as a basic body. */
#ifndef MG_MDA_IMAP_BODYSTRUCTURE_H
#define MG_MDA_IMAP_BODYSTRUCTURE_H

#include "common/buf.h"
#include "mda/mime/mime_parser.h"

enum imap_bodystructure_flags {
    /* BODYSTRUCTURE (with body-ext fields) instead of BODY. */
    IMAP_BODYSTRUCTURE_FLAG_EXTENDED = 1 << 0,
    IMAP_BODYSTRUCTURE_FLAG_GLOBAL_AS_MESSAGE = 1 << 1,
};

/* Appends the structure of part (normally the root) without the outer
 * parentheses: "\"text\" \"plain\" (...) NIL NIL \"7bit\" 6 1 ...". data is
 * the message the tree was parsed from (envelopes are read from it). */
void imap_bodystructure_write(struct mg_buf *out, const char *data,
                              const struct mime_part *part, unsigned int flags);

#endif
