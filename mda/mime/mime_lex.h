/* Tokenizer for structured header fields (RFC 5322 section 3.2, RFC 2045
 * section 5.1): comments and folding white space, atoms, quoted strings,
 * MIME tokens, phrases and domains.
 *
 * The input is a raw header value as it appears in the message, folding
 * included: CR and LF count as white space, and a CR LF inside a quoted
 * string is dropped (that is what unfolding does). Nothing is allocated:
 * results are appended to caller-owned buffers.
 *
 * The scanning functions return the state of the input after the token and
 * any white space and comments that follow it:
 *   > 0  more input follows (lx->p < lx->end, *lx->p is valid),
 *     0  the input ended cleanly,
 *   < 0  syntax error (nothing usable, or an unterminated comment/quote). */
#ifndef MG_MDA_MIME_LEX_H
#define MG_MDA_MIME_LEX_H

#include <stdbool.h>
#include <stddef.h>

#include "common/buf.h"

struct mime_lex {
    const unsigned char *p;
    const unsigned char *end;
    /* When non-NULL, receives the text of the last comment that was
     * skipped (reset at each comment): addresses use it as display name. */
    struct mg_buf *comment;
};

void mime_lex_init(struct mime_lex *lx, const char *data, size_t len);

/* RFC 5322 atext, plus every 8-bit byte (RFC 6532 and real-world mail). */
bool mime_lex_is_atext(unsigned char c);
/* RFC 2045 token character; '.' included, 8-bit bytes too. */
bool mime_lex_is_token(unsigned char c);

/* Skips white space (SP, HT, CR, LF) and comments. */
int mime_lex_skip_cfws(struct mime_lex *lx);
/* 1*atext, then CFWS. */
int mime_lex_atom(struct mime_lex *lx, struct mg_buf *out);
/* atext runs joined by '.', CFWS allowed around the dots (RFC 822). */
int mime_lex_dot_atom(struct mime_lex *lx, struct mg_buf *out);
/* MIME token (possibly empty), then CFWS. */
int mime_lex_token(struct mime_lex *lx, struct mg_buf *out);
/* Quoted string at '"': unescaped content, then CFWS. */
int mime_lex_quoted(struct mime_lex *lx, struct mg_buf *out);
/* phrase = 1*word / obs-phrase: words joined with single spaces. Returns
 * < 0 when the input starts with '.'; leaves out unchanged at the end. */
int mime_lex_phrase(struct mime_lex *lx, struct mg_buf *out);
/* At '@': the domain (dot-atom or domain literal) without the '@'. */
int mime_lex_domain(struct mime_lex *lx, struct mg_buf *out);

#endif
