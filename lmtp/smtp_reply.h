/* SMTP replies (RFC 5321 section 4.2): writing them on the server side,
 * parsing them on the client side.
 *
 * Writing never trusts the text it is given: control characters (a CR LF
 * would let a hook inject a second reply) and bytes outside printable
 * ASCII become '?', and overlong texts are cut, so every line we send is a
 * well-formed reply line of at most 512 bytes.
 *
 * The parser is incremental like every parser here: it takes bytes and
 * says NEED_MORE, DONE or ERROR, keeping its own state, so the client
 * engine, unit tests and the fuzzer feed it the same way. */
#ifndef MG_LMTP_SMTP_REPLY_H
#define MG_LMTP_SMTP_REPLY_H

#include <stdbool.h>
#include <stddef.h>

#include "common/buf.h"
#include "common/line_reader.h"

struct smtp_reply;

/* A reply to send: static strings (the engine's own replies, parse errors). */
struct smtp_status {
    unsigned code;
    const char *enhanced; /* "5.5.4", or NULL for none */
    const char *text;
};

/* Longest reply text we send on one line: 512 bytes per line minus code,
 * enhanced code and CR LF (RFC 5321 section 4.5.3.1.5). */
#define SMTP_REPLY_TEXT_MAX 480
/* Longest enhanced status code "x.yyy.zzz" (RFC 3463). */
#define SMTP_REPLY_ENHANCED_MAX 9

/* Appends "<code>-<enhanced> <text>\r\n" (or "<code> ..." when is_last)
 * to out; enhanced may be NULL. Text is sanitised and cut to
 * SMTP_REPLY_TEXT_MAX. */
void smtp_reply_append(struct mg_buf *out, unsigned code, bool is_last, const char *enhanced,
                       const char *text);
/* Whether enhanced is a well-formed RFC 3463 code whose class matches
 * code's first digit (2, 4 or 5). */
bool smtp_reply_enhanced_is_valid(const char *enhanced, unsigned code);
/* The length of an enhanced code "c.s.d" at the start of text followed by
 * a space or the end (0 if there is none). */
size_t smtp_reply_enhanced_len(const char *text, size_t len);

/* Client side: one reply at a time from the peer's bytes. */
#define SMTP_REPLY_LINE_MAX 4096 /* longer reply lines fail the session */
#define SMTP_REPLY_LINES_MAX 100 /* so do replies of more lines */
#define SMTP_REPLY_KEEP_DEFAULT 4096

enum smtp_reply_status {
    SMTP_REPLY_NEED_MORE,
    SMTP_REPLY_DONE,
    SMTP_REPLY_ERROR,
};

struct smtp_reply_parser {
    struct mg_line_reader reader;
    struct mg_buf text;     /* the joined text of the reply being read */
    size_t max_text;        /* text beyond this is dropped */
    unsigned code;          /* of the first line; 0 before it */
    unsigned lines;
    char enhanced[SMTP_REPLY_ENHANCED_MAX + 1];
};

/* max_text: longest text kept (0: SMTP_REPLY_KEEP_DEFAULT). */
void smtp_reply_parser_init(struct smtp_reply_parser *parser, size_t max_text);
void smtp_reply_parser_deinit(struct smtp_reply_parser *parser);
/* Reads the next complete reply from in. DONE fills *reply_r, whose text
 * points into the parser and lives until the next call. ERROR sets
 * *error_r (static text); the parser is then unusable. Consumed bytes are
 * dropped from in before returning. */
enum smtp_reply_status smtp_reply_parser_next(struct smtp_reply_parser *parser, struct mg_buf *in,
                                              struct smtp_reply *reply_r, const char **error_r);
/* Forgets everything unread (after STARTTLS). */
void smtp_reply_parser_discard(struct smtp_reply_parser *parser, struct mg_buf *in);

#endif
