/* Conversion of text in a MIME charset to UTF-8 (glibc iconv).
 *
 * The output is always valid UTF-8: a byte sequence that is invalid in its
 * charset becomes U+FFFD. A charset that iconv does not know (or an absent
 * one) is read as UTF-8 with the same replacement, so ASCII always survives
 * and a mislabelled UTF-8 message still reads correctly. US-ASCII is read as
 * UTF-8 too: 8-bit bytes under a us-ascii label are common and are
 * almost always UTF-8. */
#ifndef MG_MDA_MIME_CHARSET_H
#define MG_MDA_MIME_CHARSET_H

#include <stdbool.h>
#include <stddef.h>

#include "common/buf.h"

/* Longest charset name passed to iconv; longer names count as unknown. */
#define MIME_CHARSET_NAME_MAX 64

/* Appends in[0..len) converted from charset (NULL: UTF-8) to out. Returns
 * false when the charset was unknown (the text was then read as UTF-8);
 * empty input is not looked at and gives true. */
bool mime_charset_to_utf8(const char *charset, const char *in, size_t len,
                          struct mg_buf *out);

/* Appends in[0..len), replacing every invalid UTF-8 sequence with U+FFFD. */
void mime_charset_utf8_sanitize(const char *in, size_t len, struct mg_buf *out);

/* Whether the name denotes UTF-8 or US-ASCII (read as UTF-8). */
bool mime_charset_is_utf8(const char *charset);

#endif
