/* SMTP/LMTP message data: dot-stuffing (RFC 5321 section 4.5.2).
 *
 * The decoder recognises the end of data only as CR LF "." CR LF, where the
 * first CR LF may be the start of the data. A bare LF or bare CR never ends
 * a line for this purpose, so "\n.\n", "\r.\r" and mixtures can neither end
 * a message early nor split one into two (SMTP smuggling). Bare CR and LF
 * are counted; with normalize_bare set they are written as CR LF, otherwise
 * kept as received, and the protocol decides whether to refuse the message
 * (see docs/smtp.md). */
#ifndef MG_COMMON_DOTSTUFF_H
#define MG_COMMON_DOTSTUFF_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct mg_buf;

struct mg_dotstuff_decoder {
    int state;
    uint64_t size;       /* content bytes produced (also counted past max) */
    uint64_t max_size;   /* 0: no limit */
    bool normalize_bare; /* write bare CR and LF as CR LF */
    bool is_too_big;     /* size passed max_size: output stopped */
    uint64_t bare_lf;
    uint64_t bare_cr;
};

void mg_dotstuff_decoder_init(struct mg_dotstuff_decoder *dec, uint64_t max_size,
                              bool normalize_bare);
/* Consumes input and appends the content to out (nothing once the message
 * is too big). Returns the bytes consumed; *is_done_r is set when the
 * end-of-data line was consumed, and bytes after it (a pipelined command)
 * are left unconsumed. */
size_t mg_dotstuff_decode(struct mg_dotstuff_decoder *dec, const char *in, size_t len,
                          struct mg_buf *out, bool *is_done_r);

/* Encoder state: whether the next byte starts a line. */
struct mg_dotstuff_encoder {
    bool at_line_start;
    bool ends_with_crlf;
    char last;
};

void mg_dotstuff_encoder_init(struct mg_dotstuff_encoder *enc);
/* Appends in to out with a dot added before every line that starts with
 * one. Input is expected in CR LF form. */
void mg_dotstuff_encode(struct mg_dotstuff_encoder *enc, const char *in, size_t len,
                        struct mg_buf *out);
/* Appends the end-of-data line, preceded by CR LF if the content did not
 * end with one. */
void mg_dotstuff_encode_end(struct mg_dotstuff_encoder *enc, struct mg_buf *out);

#endif
