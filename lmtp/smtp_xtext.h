/* xtext (RFC 3461 section 4) and utf-8-addr-xtext (RFC 6533 section 3):
 * the encodings of the DSN parameters ENVID= and ORCPT= and of AUTH=.
 *
 * Decoding is strict about syntax and refuses anything that would not be
 * safe as a C string in a log line or a DSN: NUL and other control
 * characters, and invalid UTF-8. */
#ifndef MG_LMTP_SMTP_XTEXT_H
#define MG_LMTP_SMTP_XTEXT_H

#include <stddef.h>

struct mg_buf;

/* Appends the xtext decoding of text[0..len) to out ("+2B" is '+'; hex
 * digits in either case). Returns 0, or -1 for malformed xtext or a
 * decoded control character (out is then left as it was). */
int smtp_xtext_decode(const char *text, size_t len, struct mg_buf *out);
/* Appends the xtext encoding of s[0..len) to out: '+', '=' and bytes
 * outside 33..126 become "+XX". */
void smtp_xtext_encode(const char *s, size_t len, struct mg_buf *out);

/* RFC 6533 utf-8-addr-xtext / utf-8-addr-unitext: "\x{HEX}" escapes,
 * plus raw UTF-8 (which only unitext, under SMTPUTF8, may carry). Returns
 * 0 or -1 as above. */
int smtp_xtext_decode_utf8_addr(const char *text, size_t len, struct mg_buf *out);
/* Appends the utf-8-addr-xtext form: '+', '=', '\\', controls and every
 * non-ASCII code point as "\x{HEX}". s must be valid UTF-8 (invalid bytes
 * are written as "\x{FFFD}"). */
void smtp_xtext_encode_utf8_addr(const char *s, size_t len, struct mg_buf *out);

#endif
