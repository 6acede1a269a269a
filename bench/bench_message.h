/* The messages lmtp_load and smtp_load send: the options that say how
 * many, how big and to whom, the recipients of each, one body for every
 * message, and headers of their own for each (Subject and Message-ID name
 * the tool and the message's number). */
#ifndef MG_BENCH_MESSAGE_H
#define MG_BENCH_MESSAGE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct mg_conn;

#define BENCH_MESSAGE_RCPTS_MAX 100
#define BENCH_MESSAGE_ADDR_MAX 256

/* The options, defaults set by the tool. */
struct bench_message_options {
    unsigned sessions;          /* -c, --sessions: 1 to 10000 */
    uint64_t messages;          /* -n, --messages */
    bool has_messages;          /* -n was given */
    uint64_t size;              /* -s, --size: bytes, at most 1 GiB */
    const char *rcpt_pattern;   /* -r, --rcpt: "%d" replaced by a number... */
    unsigned range_lo, range_hi; /* -R, --range: ...from this range, in turn */
    unsigned rcpts_per_message; /* -k, 1 to BENCH_MESSAGE_RCPTS_MAX */
    const char *from;           /* -f, --from */
    bool no_pipelining;         /* --no-pipelining */
};

#define BENCH_MESSAGE_SHORT "c:n:s:r:R:k:f:"
#define BENCH_MESSAGE_OPTIONS                                               \
    { "sessions", required_argument, NULL, 'c' },                           \
    { "messages", required_argument, NULL, 'n' },                           \
    { "size", required_argument, NULL, 's' },                               \
    { "rcpt", required_argument, NULL, 'r' },                               \
    { "range", required_argument, NULL, 'R' },                              \
    { "rcpts-per-message", required_argument, NULL, 'k' },                  \
    { "from", required_argument, NULL, 'f' },                               \
    { "no-pipelining", no_argument, NULL, 'P' }

/* Takes option ch (with its arg) when it is one of BENCH_MESSAGE_OPTIONS:
 * true; false for another. A bad value exits 2 with tool's name. */
bool bench_message_option(struct bench_message_options *o, const char *tool, int ch,
                          const char *arg);
/* After the options: exits 2 when --rcpt does not fit the range. */
void bench_message_check(const struct bench_message_options *o, const char *tool);

/* The recipients of the next message, rcpts_per_message of them: the
 * pattern with the range's numbers in turn, *cursor counting them. */
void bench_message_rcpts(const struct bench_message_options *o, uint64_t *cursor,
                         char (*rcpts)[BENCH_MESSAGE_ADDR_MAX]);

/* Lines of text, none starting with a dot or a space, sized so that
 * headers plus body come to about size bytes (at least one short line).
 * Returns the body (to free), its length in *len_r. */
char *bench_message_body(uint64_t size, size_t *len_r);

/* Writes message number index (headers, body, the final dot) to conn in
 * one write. tool ("lmtp_load") is in its Subject, and its Message-ID's
 * domain is the tool's name with '-' for '_' under .test. Returns the
 * bytes of headers and body. */
size_t bench_message_send(struct mg_conn *conn, const char *tool, const char *from,
                          const char *to, uint64_t index, const char *body, size_t body_len);

#endif
