/* The messages lmtp_load and smtp_load send: one body for every message,
 * and headers of their own for each (Subject and Message-ID name the tool
 * and the message's number). */
#ifndef MG_BENCH_MESSAGE_H
#define MG_BENCH_MESSAGE_H

#include <stddef.h>
#include <stdint.h>

struct mg_conn;

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
