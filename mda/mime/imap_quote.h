/* IMAP strings (RFC 3501 section 4.3, 9 "string", "nstring", "astring").
 *
 * The choice between quoted string and literal follows Dovecot
 * (lib-imap/imap-quote.c) so that output matches it byte for byte:
 *  - quoted when the text has no CR, LF, NUL or 8-bit byte, with '"' and
 *    '\' escaped, as long as there are at most 4 of them (a literal is
 *    shorter beyond that);
 *  - otherwise a synchronizing literal "{n}\r\n" + bytes; a NUL byte (not
 *    allowed in IMAP text) is sent as 0x80.
 * IMAP UTF8=ACCEPT quoting is not done here: 8-bit text is a literal. */
#ifndef MG_MDA_IMAP_QUOTE_H
#define MG_MDA_IMAP_QUOTE_H

#include <stddef.h>

#include "common/buf.h"

/* Quoted string or literal. */
void imap_quote_append_string(struct mg_buf *out, const char *s, size_t len);
/* NIL when s is NULL, else as imap_quote_append_string(). */
void imap_quote_append_nstring(struct mg_buf *out, const char *s, size_t len);
/* Atom when s is non-empty ASTRING-CHARs and not "NIL", else a string. */
void imap_quote_append_astring(struct mg_buf *out, const char *s, size_t len);
/* NUL-terminated conveniences (s may be NULL for the nstring form). */
void imap_quote_append_cstring(struct mg_buf *out, const char *s);
void imap_quote_append_cnstring(struct mg_buf *out, const char *s);
/* nstring of s with CR and LF removed (a space is put where a line break
 * is not followed by white space): for unfolded-but-unchecked header text
 * such as Content-Description. */
void imap_quote_append_nstring_nolf(struct mg_buf *out, const char *s);
/* Header text for people (ENVELOPE subject, display names), as Dovecot's
 * imap_append_string_for_humans(): TAB, CR and LF become spaces, runs of
 * white space shrink to one, leading and trailing white space goes; a
 * value that needed any change, or has quotes, backslashes or 8-bit bytes,
 * is sent as a literal, otherwise quoted. */
void imap_quote_append_string_for_humans(struct mg_buf *out, const char *s,
                                         size_t len);

#endif
