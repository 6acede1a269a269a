/* Case-insensitive substring matching over UTF-8 for IMAP SEARCH (RFC 3501
 * section 6.4.4: "case-insensitive substring").
 *
 * Both sides are folded with simple (one to one) case folding, then
 * compared bytewise. The folding covers ASCII, Latin-1, Latin Extended-A,
 * the regular pairs of Latin Extended-B and Latin Extended Additional
 * (Vietnamese), Greek (with final sigma and the tonos capitals), Cyrillic,
 * Armenian and fullwidth Latin letters; other scripts match exactly. There
 * is no full folding ("ß" does not match "ss") and no normalization
 * (precomposed "é" does not match "e" + U+0301). Invalid UTF-8 bytes
 * become U+FFFD on both sides. */
#ifndef MG_MDA_MIME_SEARCH_H
#define MG_MDA_MIME_SEARCH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/buf.h"

/* The folded form of one code point. */
uint32_t mime_search_fold_char(uint32_t cp);

/* Appends the folded form of the UTF-8 text in[0..len) to out. */
void mime_search_fold(const char *in, size_t len, struct mg_buf *out);

/* A search key, folded once and matched against many texts. */
struct mime_search {
    struct mg_buf needle;
    struct mg_buf scratch; /* folded text being searched */
};

void mime_search_init(struct mime_search *search, const char *key, size_t len);
void mime_search_deinit(struct mime_search *search);
/* Whether the UTF-8 text contains the key (an empty key matches). */
bool mime_search_match(struct mime_search *search, const char *text, size_t len);

#endif
