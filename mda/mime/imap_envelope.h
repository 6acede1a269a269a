/* IMAP ENVELOPE (RFC 3501 section 7.4.2) of a message or of an
 * encapsulated message/rfc822 part.
 *
 * Values are the raw header text (RFC 2047 words are not decoded), taken
 * from the first field of each name. Date, Message-ID and In-Reply-To are
 * unfolded and sent as IMAP strings; the subject and display names are
 * cleaned for people the way Dovecot does it (white space runs shrunk; a
 * literal when anything changed or 8-bit text is present). Addresses follow
 * mime_address.h with the missing parts filled in as Dovecot shows them;
 * groups use IMAP's group syntax ((NIL NIL "name" NIL) ... (NIL NIL NIL
 * NIL)). Sender and Reply-To default to From when absent or empty. A
 * missing field is NIL. */
#ifndef MG_MDA_IMAP_ENVELOPE_H
#define MG_MDA_IMAP_ENVELOPE_H

#include "common/buf.h"
#include "mda/mime/mime_parser.h"

/* Appends the ten envelope fields, separated by spaces and without the
 * enclosing parentheses, for the header of msg (the root part, or the child
 * of a message/rfc822 part) in data. */
void imap_envelope_write(struct mg_buf *out, const char *data,
                         const struct mime_part *msg);

#endif
