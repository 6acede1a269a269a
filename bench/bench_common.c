#include "bench/bench_common.h"

#include <netdb.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/resource.h>
#include <time.h>

#include "common/alloc.h"
#include "common/buf.h"
#include "common/tls.h"

uint64_t bench_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

double bench_seconds(uint64_t from_ns, uint64_t to_ns)
{
    return (double)(to_ns - from_ns) / 1e9;
}

double bench_cpu_seconds(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 +
           (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec / 1e6;
}

void bench_die(int status, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    exit(status);
}

int bench_parse_u64(const char *s, uint64_t min, uint64_t max, uint64_t *v_r)
{
    if (s == NULL || *s < '0' || *s > '9')
        return -1;
    uint64_t v = 0;
    for (; *s != '\0'; s++) {
        if (*s < '0' || *s > '9' || v > (UINT64_MAX - 9) / 10)
            return -1;
        v = v * 10 + (uint64_t)(*s - '0');
    }
    if (v < min || v > max)
        return -1;
    *v_r = v;
    return 0;
}

int bench_parse_range(const char *s, unsigned *lo_r, unsigned *hi_r)
{
    char a[32];
    const char *dash = strchr(s, '-');
    size_t alen = dash != NULL ? (size_t)(dash - s) : strlen(s);
    if (alen == 0 || alen >= sizeof(a))
        return -1;
    memcpy(a, s, alen);
    a[alen] = '\0';
    uint64_t lo, hi;
    if (bench_parse_u64(a, 0, UINT32_MAX, &lo) < 0)
        return -1;
    hi = lo;
    if (dash != NULL && bench_parse_u64(dash + 1, lo, UINT32_MAX, &hi) < 0)
        return -1;
    *lo_r = (unsigned)lo;
    *hi_r = (unsigned)hi;
    return 0;
}

int bench_format_pattern(char *out, size_t size, const char *pattern, unsigned n)
{
    size_t o = 0;
    bool used = false;
    for (const char *p = pattern; *p != '\0'; p++) {
        char num[16];
        const char *piece = p;
        size_t plen = 1;
        if (*p == '%') {
            if (p[1] == 'd' && !used) {
                plen = (size_t)snprintf(num, sizeof(num), "%u", n);
                piece = num;
                used = true;
                p++;
            } else if (p[1] == '%') {
                p++;
            } else {
                return -1;
            }
        }
        if (o + plen >= size)
            return -1;
        memcpy(out + o, piece, plen);
        o += plen;
    }
    out[o] = '\0';
    return 0;
}

int bench_resolve(const char *host, const char *port, struct sockaddr_storage *ss_r)
{
    struct addrinfo hints = { .ai_socktype = SOCK_STREAM, .ai_family = AF_UNSPEC };
    struct addrinfo *res = NULL;
    if (getaddrinfo(host, port, &hints, &res) != 0 || res == NULL)
        return -1;
    memset(ss_r, 0, sizeof(*ss_r));
    memcpy(ss_r, res->ai_addr, res->ai_addrlen);
    freeaddrinfo(res);
    return 0;
}

struct mg_tls_context *bench_tls_client(const char *ca_file)
{
    struct mg_tls_client_options o = {
        .ca_file = ca_file,
        .require_verification = ca_file != NULL,
    };
    struct mg_tls_context *ctx = NULL;
    char *error = NULL;
    if (mg_tls_context_new_client(&o, &ctx, &error) != 0)
        bench_die(1, "TLS: %s", error);
    return ctx;
}

void bench_stats_add(struct bench_stats *s, double v)
{
    if (s->n == s->cap) {
        s->cap = s->cap ? s->cap * 2 : 1024;
        s->v = mg_realloc(s->v, s->cap * sizeof(*s->v));
    }
    s->v[s->n++] = v;
    s->is_sorted = false;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

double bench_stats_percentile(struct bench_stats *s, double p)
{
    if (s->n == 0)
        return 0;
    if (!s->is_sorted) {
        qsort(s->v, s->n, sizeof(*s->v), cmp_double);
        s->is_sorted = true;
    }
    /* nearest rank */
    size_t rank = (size_t)(p / 100.0 * (double)s->n + 0.999999);
    if (rank == 0)
        rank = 1;
    if (rank > s->n)
        rank = s->n;
    return s->v[rank - 1];
}

void bench_stats_free(struct bench_stats *s)
{
    free(s->v);
    memset(s, 0, sizeof(*s));
}

void bench_read_replies(struct mg_buf *in, bench_reply_cb *cb, void *ctx)
{
    size_t pos = 0;
    while (pos < in->len) {
        const char *line = in->data + pos;
        const char *nl = memchr(line, '\n', in->len - pos);
        if (nl == NULL)
            break;
        size_t len = (size_t)(nl - line);
        pos += len + 1;
        if (len > 0 && line[len - 1] == '\r')
            len--;
        int code = -1;
        if (len >= 3 && line[0] >= '1' && line[0] <= '5' && line[1] >= '0' && line[1] <= '9' &&
            line[2] >= '0' && line[2] <= '9')
            code = (line[0] - '0') * 100 + (line[1] - '0') * 10 + (line[2] - '0');
        bool is_last = len <= 3 || line[3] != '-';
        cb(ctx, code, is_last, line, len);
    }
    if (pos > 0)
        mg_buf_consume(in, pos);
}

/* Whether the line (without CRLF) ends with a literal announcement
 * "{n}" or "{n+}"; its size in *n_r. */
static bool line_literal(const char *line, size_t len, uint64_t *n_r)
{
    if (len < 3 || line[len - 1] != '}')
        return false;
    size_t end = len - 1;
    if (line[end - 1] == '+')
        end--;
    size_t start = end;
    while (start > 0 && line[start - 1] >= '0' && line[start - 1] <= '9')
        start--;
    if (start == end || start == 0 || line[start - 1] != '{' || end - start > 18)
        return false;
    uint64_t n = 0;
    for (size_t i = start; i < end; i++)
        n = n * 10 + (uint64_t)(line[i] - '0');
    *n_r = n;
    return true;
}

void bench_imap_read(struct bench_imap_reader *r, struct mg_buf *in, bench_imap_cb *cb, void *ctx)
{
    size_t pos = 0;
    while (pos < in->len) {
        if (r->literal_left > 0) {
            size_t take = in->len - pos;
            if (take > r->literal_left)
                take = (size_t)r->literal_left;
            r->literal_left -= take;
            r->size += take;
            pos += take;
            continue;
        }
        const char *line = in->data + pos;
        const char *nl = memchr(line, '\n', in->len - pos);
        if (nl == NULL)
            break;
        size_t len = (size_t)(nl - line);
        pos += len + 1;
        r->size += len + 1;
        if (len > 0 && line[len - 1] == '\r')
            len--;
        if (!r->in_response) {
            r->head_len = len < BENCH_IMAP_HEAD ? len : BENCH_IMAP_HEAD;
            memcpy(r->head, line, r->head_len);
            r->head[r->head_len] = '\0';
        }
        uint64_t n;
        if (line_literal(line, len, &n)) {
            r->in_response = true;
            r->literal_left = n;
            continue;
        }
        cb(ctx, r->head, r->head_len, r->size);
        r->in_response = false;
        r->size = 0;
    }
    if (pos > 0)
        mg_buf_consume(in, pos);
}

bool bench_imap_is_tagged_ok(const char *head, size_t len, char tag)
{
    return len >= 4 && head[0] == tag && head[1] == ' ' && strncasecmp(head + 2, "OK", 2) == 0;
}

int bench_imap_quote(struct mg_buf *out, const char *s)
{
    if (strpbrk(s, "\r\n") != NULL)
        return -1;
    mg_buf_append_byte(out, '"');
    for (; *s != '\0'; s++) {
        if (*s == '"' || *s == '\\')
            mg_buf_append_byte(out, '\\');
        mg_buf_append_byte(out, *s);
    }
    mg_buf_append_byte(out, '"');
    return 0;
}
