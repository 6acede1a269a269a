#include "mta/queue/queue_file.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/arena.h"
#include "common/buf.h"

#define QUEUE_MAGIC "MGQ1\n"
#define QUEUE_HEAD_MAX (16u * 1024 * 1024)
#define QUEUE_RCPTS_MAX 100000

/* Field values: control bytes, spaces and '%' as %XX, so that a line is
 * split on spaces and never broken. */
static void escape_value(struct mg_buf *out, const char *value)
{
    for (const char *p = value; *p != '\0'; p++) {
        unsigned char c = (unsigned char)*p;
        if (c <= ' ' || c == '%' || c == 0x7f)
            mg_buf_printf(out, "%%%02X", c);
        else
            mg_buf_append_byte(out, (char)c);
    }
}

static void kv(struct mg_buf *out, const char *key, const char *value)
{
    mg_buf_append_str(out, key);
    mg_buf_append_byte(out, ' ');
    escape_value(out, value);
    mg_buf_append_byte(out, '\n');
}

/* An optional field: "-" for none, and a real "-" escaped. */
static void escape_optional(struct mg_buf *out, const char *value)
{
    if (value == NULL || value[0] == '\0')
        mg_buf_append_byte(out, '-');
    else if (strcmp(value, "-") == 0)
        mg_buf_append_str(out, "%2D");
    else
        escape_value(out, value);
}

void queue_file_write_head(const struct queue_envelope *env, struct mg_buf *out)
{
    mg_buf_append_str(out, QUEUE_MAGIC);
    kv(out, "id", env->id);
    mg_buf_printf(out, "arrival %lld\n", (long long)env->arrival);
    /* The null sender must survive the round trip: "<>" on disk. */
    kv(out, "from", env->from[0] != '\0' ? env->from : "<>");
    if (env->envid != NULL)
        kv(out, "envid", env->envid);
    if (env->ret != QUEUE_RET_DEFAULT)
        kv(out, "ret", env->ret == QUEUE_RET_FULL ? "full" : "hdrs");
    if (env->body != QUEUE_BODY_DEFAULT)
        kv(out, "body", env->body == QUEUE_BODY_8BITMIME ? "8bitmime" : "7bit");
    if (env->is_smtputf8)
        kv(out, "smtputf8", "1");
    if (env->is_bounce)
        kv(out, "bounce", env->is_double_bounce ? "2" : "1");
    if (env->auth_user != NULL)
        kv(out, "auth", env->auth_user);
    if (env->client != NULL)
        kv(out, "client", env->client);
    for (size_t i = 0; i < env->n_rcpts; i++) {
        const struct queue_file_rcpt *r = &env->rcpts[i];
        mg_buf_printf(out, "rcpt %c ", r->route);
        escape_optional(out, r->address);
        mg_buf_append_byte(out, ' ');
        escape_optional(out, r->orcpt);
        mg_buf_printf(out, " %u\n", r->notify);
    }
    mg_buf_append_str(out, "data 00000000000000000000\n");
}

size_t queue_file_length_offset(const struct mg_buf *head)
{
    return head->len - 21; /* 20 digits and the LF */
}

void queue_file_format_length(uint64_t len, char out[21])
{
    snprintf(out, 21, "%020" PRIu64, len);
}

void queue_file_write_trailer(const char *id, struct mg_buf *out)
{
    mg_buf_printf(out, "end %s\n", id);
}

static int hexval(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    return -1;
}

/* Unescapes s in place; "-" becomes NULL when dash_is_null. */
static char *unescape(char *s, bool dash_is_null)
{
    if (dash_is_null && strcmp(s, "-") == 0)
        return NULL;
    char *o = s;
    for (char *p = s; *p != '\0'; p++) {
        if (*p == '%' && hexval(p[1]) >= 0 && hexval(p[2]) >= 0) {
            *o++ = (char)(hexval(p[1]) * 16 + hexval(p[2]));
            p += 2;
        } else {
            *o++ = *p;
        }
    }
    *o = '\0';
    return s;
}

int queue_file_read(const char *path, struct mg_arena *arena, struct queue_envelope *env_r,
                    uint64_t *content_off_r, uint64_t *content_len_r, const char **error_r)
{
    memset(env_r, 0, sizeof(*env_r));
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        *error_r = "cannot open";
        return -1;
    }
    struct stat st;
    if (fstat(fd, &st) != 0) {
        close(fd);
        *error_r = "cannot stat";
        return -1;
    }
    /* The head is read in one go (it is bounded); content stays on disk. */
    size_t want = (size_t)st.st_size < QUEUE_HEAD_MAX ? (size_t)st.st_size : QUEUE_HEAD_MAX;
    char *head = mg_arena_alloc(arena, want + 1);
    ssize_t got = pread(fd, head, want, 0);
    if (got < 0 || (size_t)got != want) {
        close(fd);
        *error_r = "short read";
        return -1;
    }
    head[want] = '\0';
    if (want < 5 || memcmp(head, QUEUE_MAGIC, 5) != 0) {
        close(fd);
        *error_r = "not a queue file";
        return -1;
    }
    size_t cap = 8;
    env_r->rcpts = mg_arena_alloc(arena, cap * sizeof(*env_r->rcpts));
    env_r->from = NULL;
    char *p = head + 5;
    char *end = head + want;
    int ret = -1;
    *error_r = "truncated head";
    while (p < end) {
        char *nl = memchr(p, '\n', (size_t)(end - p));
        if (nl == NULL)
            break;
        *nl = '\0';
        char *line = p;
        p = nl + 1;
        char *sp = strchr(line, ' ');
        if (sp == NULL) {
            *error_r = "malformed line";
            break;
        }
        *sp = '\0';
        char *value = sp + 1;
        if (strcmp(line, "data") == 0) {
            char *e;
            errno = 0;
            unsigned long long len = strtoull(value, &e, 10);
            if (errno != 0 || *e != '\0') {
                *error_r = "bad length";
                break;
            }
            uint64_t off = (uint64_t)(p - head);
            /* The trailer must be exactly where the length says. */
            char expect[64];
            int n = snprintf(expect, sizeof(expect), "end %s\n", env_r->id);
            if ((uint64_t)st.st_size != off + len + (uint64_t)n) {
                *error_r = "length does not match the file (truncated)";
                break;
            }
            char trailer[64];
            if (pread(fd, trailer, (size_t)n, (off_t)(off + len)) != n ||
                memcmp(trailer, expect, (size_t)n) != 0) {
                *error_r = "end marker missing";
                break;
            }
            *content_off_r = off;
            *content_len_r = len;
            ret = 0;
            break;
        }
        if (strcmp(line, "id") == 0) {
            if (!mg_unique_id_is_valid(value)) {
                *error_r = "bad id";
                break;
            }
            memcpy(env_r->id, value, MG_UNIQUE_ID_LEN + 1);
        } else if (strcmp(line, "arrival") == 0) {
            env_r->arrival = (time_t)strtoll(value, NULL, 10);
        } else if (strcmp(line, "from") == 0) {
            char *f = unescape(value, false);
            env_r->from = strcmp(f, "<>") == 0 ? "" : f;
        } else if (strcmp(line, "envid") == 0) {
            env_r->envid = unescape(value, false);
        } else if (strcmp(line, "ret") == 0) {
            env_r->ret = strcmp(value, "full") == 0 ? QUEUE_RET_FULL : QUEUE_RET_HDRS;
        } else if (strcmp(line, "body") == 0) {
            env_r->body = strcmp(value, "8bitmime") == 0 ? QUEUE_BODY_8BITMIME : QUEUE_BODY_7BIT;
        } else if (strcmp(line, "smtputf8") == 0) {
            env_r->is_smtputf8 = true;
        } else if (strcmp(line, "bounce") == 0) {
            env_r->is_bounce = true;
            env_r->is_double_bounce = strcmp(value, "2") == 0;
        } else if (strcmp(line, "auth") == 0) {
            env_r->auth_user = unescape(value, false);
        } else if (strcmp(line, "client") == 0) {
            env_r->client = unescape(value, false);
        } else if (strcmp(line, "rcpt") == 0) {
            char *f[4];
            size_t nf = 0;
            for (char *t = strtok(value, " "); t != NULL && nf < 4; t = strtok(NULL, " "))
                f[nf++] = t;
            if (nf != 4 || strlen(f[0]) != 1 || env_r->n_rcpts >= QUEUE_RCPTS_MAX) {
                *error_r = "bad recipient";
                break;
            }
            if (env_r->n_rcpts == cap) {
                struct queue_file_rcpt *bigger = mg_arena_alloc(arena, cap * 2 * sizeof(*bigger));
                memcpy(bigger, env_r->rcpts, cap * sizeof(*bigger));
                env_r->rcpts = bigger;
                cap *= 2;
            }
            struct queue_file_rcpt *r = &env_r->rcpts[env_r->n_rcpts++];
            r->route = f[0][0];
            r->address = unescape(f[1], true);
            r->orcpt = unescape(f[2], true);
            r->notify = (unsigned)strtoul(f[3], NULL, 10);
            if (r->address == NULL) {
                *error_r = "bad recipient";
                break;
            }
        }
        /* Unknown keys are skipped: a newer version may add some. */
    }
    close(fd);
    if (ret == 0 && (env_r->id[0] == '\0' || env_r->from == NULL || env_r->n_rcpts == 0)) {
        *error_r = "incomplete envelope";
        ret = -1;
    }
    return ret;
}
