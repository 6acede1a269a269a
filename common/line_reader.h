/* Incremental reader of CRLF protocol lines, with IMAP literals.
 *
 * Input arrives in pieces into an mg_buf that the connection layer owns;
 * the reader walks it without copying. Lines are returned without their
 * line ending; a line ended by a bare LF is flagged so the protocol can
 * decide (SMTP refuses it, IMAP accepts it as Dovecot does).
 *
 * Bounds: a line longer than max_len is reported once as MG_LINE_TOO_LONG
 * and the rest of it, up to its LF, is discarded without being stored, so
 * a peer sending an endless line costs no memory. The protocol answers
 * (500 / BAD) and reading goes on with the next line.
 *
 * Literals: after a line that announced "{n}" or "{n+}", the protocol calls
 * mg_line_reader_expect_literal(); the next calls return the n bytes as
 * MG_LINE_LITERAL chunks (as many as the input arrives in), then reading
 * goes back to lines. Chunks are not buffered until complete: APPEND
 * streams them to disk.
 *
 * Pointers returned in struct mg_line point into the input buffer: valid
 * until the buffer is appended to or compacted. Call
 * mg_line_reader_compact() after handling a batch of input. */
#ifndef MG_COMMON_LINE_READER_H
#define MG_COMMON_LINE_READER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct mg_buf;

enum mg_line_status {
    MG_LINE_NEED_MORE, /* no complete line (or literal byte) yet */
    MG_LINE_OK,        /* a complete line */
    MG_LINE_TOO_LONG,  /* the current line passed max_len; its rest is skipped */
    MG_LINE_LITERAL,   /* a chunk of literal data */
};

struct mg_line {
    const char *data;
    size_t len;
    bool is_bare_lf;       /* ended by LF without CR */
    bool is_literal_end;   /* MG_LINE_LITERAL: the literal's last chunk */
};

struct mg_line_reader {
    size_t max_len;
    size_t pos;            /* bytes of the input consumed */
    size_t scan;           /* bytes already searched for LF (from pos) */
    uint64_t literal_left; /* literal bytes still to deliver */
    bool is_skipping;      /* discarding the rest of an over-long line */
};

void mg_line_reader_init(struct mg_line_reader *reader, size_t max_len);
enum mg_line_status mg_line_reader_next(struct mg_line_reader *reader, struct mg_buf *in,
                                        struct mg_line *line_r);
/* The next size bytes are literal data (size may be 0). */
void mg_line_reader_expect_literal(struct mg_line_reader *reader, uint64_t size);
/* Whether a literal is being read. */
bool mg_line_reader_in_literal(const struct mg_line_reader *reader);
/* Drops the consumed bytes from the input. */
void mg_line_reader_compact(struct mg_line_reader *reader, struct mg_buf *in);
/* Drops everything (after STARTTLS: nothing sent before the handshake may
 * be read after it). Returns the number of unread bytes dropped. */
size_t mg_line_reader_discard(struct mg_line_reader *reader, struct mg_buf *in);
/* Bytes received but not yet consumed. */
size_t mg_line_reader_pending(const struct mg_line_reader *reader, const struct mg_buf *in);

/* Whether a line ends with an IMAP literal announcement "{n}" or "{n+}";
 * on success sets the size, whether it is non-synchronising, and the
 * length of the line before the '{'. Sizes above UINT32_MAX are refused
 * (returns -1 for a malformed or too large announcement, 0 for none, 1 for
 * one). */
int mg_line_literal_announcement(const char *line, size_t len, uint64_t *size_r,
                                 bool *is_nonsync_r, size_t *prefix_len_r);

#endif
