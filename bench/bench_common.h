/* Helpers shared by the load tools in bench/: clocks, option values,
 * addresses, the TLS client context, latency statistics and readers for
 * SMTP/LMTP replies and IMAP responses (literals skipped).
 *
 * The tools are clients of any server: nothing here knows Mailgenic's
 * internals, only the protocols. */
#ifndef MG_BENCH_COMMON_H
#define MG_BENCH_COMMON_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

struct mg_buf;
struct mg_tls_context;

/* Monotonic clock in nanoseconds. */
uint64_t bench_now_ns(void);
double bench_seconds(uint64_t from_ns, uint64_t to_ns);
/* CPU seconds (user + system) this process used so far. */
double bench_cpu_seconds(void);

/* Parses a decimal number in [min, max]; 0 or -1. */
int bench_parse_u64(const char *s, uint64_t min, uint64_t max, uint64_t *v_r);
/* "A-B" or "A" (A <= B); 0 or -1. */
int bench_parse_range(const char *s, unsigned *lo_r, unsigned *hi_r);
/* Writes pattern with its one "%d" (if any) replaced by n. Returns 0, or
 * -1 when the pattern has another conversion or does not fit. */
int bench_format_pattern(char *out, size_t size, const char *pattern, unsigned n);
/* Exits with a message on standard error (status 2: usage, 1: failure). */
void bench_die(int status, const char *fmt, ...) __attribute__((format(printf, 2, 3), noreturn));

/* Resolves host and port (numeric or names) to the first address. */
int bench_resolve(const char *host, const char *port, struct sockaddr_storage *ss_r);

/* A TLS client context. With ca_file the peer must verify against it;
 * without, any certificate is accepted (self-signed test instances). */
struct mg_tls_context *bench_tls_client(const char *ca_file);

/* Latency samples (seconds) and their percentiles. */
struct bench_stats {
    double *v;
    size_t n, cap;
    bool is_sorted;
};

void bench_stats_add(struct bench_stats *s, double v);
/* p in [0, 100]; 0 without samples. */
double bench_stats_percentile(struct bench_stats *s, double p);
void bench_stats_free(struct bench_stats *s);

/* SMTP/LMTP replies: calls cb for each complete reply line with its code,
 * whether it is the last line of the reply, and the text. Consumes what
 * it read from in (once per call). */
typedef void bench_reply_cb(void *ctx, int code, bool is_last, const char *text, size_t len);
void bench_read_replies(struct mg_buf *in, bench_reply_cb *cb, void *ctx);

/* IMAP responses, one logical response at a time: a line, plus the lines
 * after each literal it announces. The literals' contents are skipped; cb
 * gets the first BENCH_IMAP_HEAD bytes of the first line (enough for
 * "* 12 FETCH", "tag OK", "+ idling") and the response's total size. */
#define BENCH_IMAP_HEAD 200

struct bench_imap_reader {
    char head[BENCH_IMAP_HEAD + 1];
    size_t head_len;
    bool in_response;      /* a literal was announced: more lines follow */
    uint64_t literal_left; /* bytes of literal still to skip */
    uint64_t size;         /* bytes of the response so far */
};

typedef void bench_imap_cb(void *ctx, const char *head, size_t len, uint64_t size);
void bench_imap_read(struct bench_imap_reader *r, struct mg_buf *in, bench_imap_cb *cb,
                     void *ctx);

/* Whether the response head is "<tag> OK ...". */
bool bench_imap_is_tagged_ok(const char *head, size_t len, char tag);

/* Appends s as an IMAP quoted string ('"' and '\' escaped). Returns -1 for
 * text a quoted string cannot carry (CR, LF, NUL). */
int bench_imap_quote(struct mg_buf *out, const char *s);

#endif
