/* RFC 2047 encoded words: decoding of header text to UTF-8, for SEARCH and
 * for logs (IMAP ENVELOPE and BODYSTRUCTURE send header text raw).
 *
 * mime_encword_decode() takes a raw header value (folding included) and
 * appends its text as valid UTF-8:
 *  - "=?charset[*lang]?B|Q?text?=" is decoded with the charset (any that
 *    glibc iconv knows; see mime_charset.h for unknown ones), also when it
 *    touches other text ("Re:=?utf-8?q?x?=" as mail software writes it);
 *  - white space between two encoded words is dropped, and the decoded bytes
 *    of adjacent words in the same charset are joined before conversion,
 *    so a character split over two words survives;
 *  - folding inside an encoded word is removed; a white space run that
 *    contains a line break becomes one space; leading and trailing white
 *    space is removed;
 *  - anything that is not a well-formed encoded word stays as it is, raw
 *    8-bit text is read as UTF-8 (invalid bytes become U+FFFD).
 * An encoded word longer than MIME_ENCWORD_MAX_LEN is left undecoded, which
 * bounds the work per "=?" and keeps decoding linear. */
#ifndef MG_MDA_MIME_ENCWORD_H
#define MG_MDA_MIME_ENCWORD_H

#include <stddef.h>

#include "common/buf.h"

#define MIME_ENCWORD_MAX_LEN 4096

void mime_encword_decode(const char *in, size_t len, struct mg_buf *out);

#endif
