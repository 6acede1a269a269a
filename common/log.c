#include "common/log.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include "common/fd_io.h"

/* Longest line we emit; longer messages are cut. journald's default line
 * limit is 48 KiB, but a log line that long is a bug somewhere else. */
#define LOG_LINE_MAX 4096

static const char *log_program = "mailgenic";
static enum mg_log_level log_level = MG_LOG_INFO;
static int log_journald;
/* getpid() is a system call each time (glibc stopped caching it): the pid
 * is kept here once mg_log_init registered the fork handler that forgets
 * it in a child (mgauthd forks its serving child). 0: not known. */
static pid_t log_pid;
static int log_has_atfork;

static void log_forget_pid(void)
{
    log_pid = 0;
}

static long log_getpid(void)
{
    if (!log_has_atfork)
        return (long)getpid();
    pid_t pid = __atomic_load_n(&log_pid, __ATOMIC_RELAXED);
    if (pid == 0) {
        pid = getpid();
        __atomic_store_n(&log_pid, pid, __ATOMIC_RELAXED);
    }
    return (long)pid;
}

static const struct {
    const char *name;
    int syslog_priority;
} log_levels[] = {
    [MG_LOG_DEBUG] = { "debug", 7 },
    [MG_LOG_INFO] = { "info", 6 },
    [MG_LOG_NOTICE] = { "notice", 5 },
    [MG_LOG_WARNING] = { "warning", 4 },
    [MG_LOG_ERROR] = { "error", 3 },
    [MG_LOG_FATAL] = { "fatal", 2 },
};

void mg_log_init(const char *program)
{
    log_program = program;
    /* systemd sets JOURNAL_STREAM to the device:inode of the stream it
     * connected to stderr; only then is the <N> prefix understood. */
    const char *js = getenv("JOURNAL_STREAM");
    log_journald = js != NULL && js[0] != '\0';
    if (!log_has_atfork && pthread_atfork(NULL, NULL, log_forget_pid) == 0)
        log_has_atfork = 1;
    log_pid = 0;
}

void mg_log_set_level(enum mg_log_level level)
{
    log_level = level;
}

enum mg_log_level mg_log_get_level(void)
{
    return log_level;
}

int mg_log_level_parse(const char *name, enum mg_log_level *level_r)
{
    for (size_t i = 0; i < MG_LOG_FATAL; i++) {
        if (strcmp(name, log_levels[i].name) == 0) {
            *level_r = (enum mg_log_level)i;
            return 0;
        }
    }
    return -1;
}

static void log_write_line(char *line, size_t len)
{
    /* One write(2) per line: lines from several processes sharing stderr
     * never interleave within a line. */
    line[len++] = '\n';
    (void)mg_fd_write_all(STDERR_FILENO, line, len); /* nowhere to report it */
}

static void __attribute__((format(printf, 4, 0)))
log_format(enum mg_log_level level, const char *component, const char *prefix_extra,
           const char *fmt, va_list ap)
{
    int saved_errno = errno;
    char line[LOG_LINE_MAX + 1];
    size_t n = 0;
    int r;

    if (log_journald) {
        r = snprintf(line, LOG_LINE_MAX, "<%d>", log_levels[level].syslog_priority);
    } else {
        /* The date and time to the second change once a second: each
         * thread keeps its last one. */
        static __thread time_t last_sec = -1;
        static __thread char last_text[64];
        struct timeval tv;
        gettimeofday(&tv, NULL);
        if (tv.tv_sec != last_sec) {
            struct tm tm;
            gmtime_r(&tv.tv_sec, &tm);
            snprintf(last_text, sizeof(last_text), "%04d-%02d-%02dT%02d:%02d:%02d", tm.tm_year + 1900,
                     tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec);
            last_sec = tv.tv_sec;
        }
        r = snprintf(line, LOG_LINE_MAX, "%s.%03ldZ %s[%ld]: ", last_text, (long)(tv.tv_usec / 1000),
                     log_program, log_getpid());
    }
    n = r > 0 ? (size_t)r : 0;
    r = snprintf(line + n, LOG_LINE_MAX - n, "%s %s: %s", log_levels[level].name,
                 component, prefix_extra != NULL ? prefix_extra : "");
    if (r > 0)
        n += (size_t)r < LOG_LINE_MAX - n ? (size_t)r : LOG_LINE_MAX - n - 1;
    errno = saved_errno; /* so %m works */
    r = vsnprintf(line + n, LOG_LINE_MAX - n, fmt, ap);
    if (r > 0)
        n += (size_t)r < LOG_LINE_MAX - n ? (size_t)r : LOG_LINE_MAX - n - 1;
    /* Formatted text may still hold a newline (a bug, or a value that
     * skipped mg_log_value): never let it start a forged line. */
    for (size_t i = 0; i < n; i++) {
        if (line[i] == '\n' || line[i] == '\r')
            line[i] = ' ';
    }
    log_write_line(line, n);
    errno = saved_errno;
}

void mg_logv(enum mg_log_level level, const char *component, const char *fmt, va_list ap)
{
    if (level < log_level)
        return;
    log_format(level, component, NULL, fmt, ap);
}

void mg_log(enum mg_log_level level, const char *component, const char *fmt, ...)
{
    if (level < log_level)
        return;
    va_list ap;
    va_start(ap, fmt);
    log_format(level, component, NULL, fmt, ap);
    va_end(ap);
}

void mg_log_fatal(const char *component, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    log_format(MG_LOG_FATAL, component, NULL, fmt, ap);
    va_end(ap);
    exit(1);
}

void mg_log_panic_at(const char *file, int line, const char *fmt, ...)
{
    char where[256];
    snprintf(where, sizeof(where), "panic at %s:%d: ", file, line);
    va_list ap;
    va_start(ap, fmt);
    log_format(MG_LOG_FATAL, "panic", where, fmt, ap);
    va_end(ap);
    abort();
}

static int log_value_is_bare(const char *value, size_t len)
{
    if (len == 0)
        return 0;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)value[i];
        if (c <= ' ' || c >= 0x7f || c == '"' || c == '=' || c == '\\')
            return 0;
    }
    return 1;
}

const char *mg_log_value(char *buf, size_t size, const char *value, size_t len)
{
    static const char hex[] = "0123456789abcdef";
    if (size < 8) {
        if (size > 0)
            buf[0] = '\0';
        return buf;
    }
    if (log_value_is_bare(value, len) && len < size) {
        memcpy(buf, value, len);
        buf[len] = '\0';
        return buf;
    }
    size_t o = 0;
    size_t limit = size - 5; /* room for `..."` and NUL */
    buf[o++] = '"';
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)value[i];
        char esc[4];
        size_t elen;
        if (c == '"' || c == '\\') {
            esc[0] = '\\';
            esc[1] = (char)c;
            elen = 2;
        } else if (c < ' ' || c == 0x7f) {
            esc[0] = '\\';
            esc[1] = 'x';
            esc[2] = hex[c >> 4];
            esc[3] = hex[c & 15];
            elen = 4;
        } else {
            /* UTF-8 bytes pass: journald and terminals show them. */
            esc[0] = (char)c;
            elen = 1;
        }
        if (o + elen > limit) {
            memcpy(buf + o, "...", 3);
            o += 3;
            break;
        }
        memcpy(buf + o, esc, elen);
        o += elen;
    }
    buf[o++] = '"';
    buf[o] = '\0';
    return buf;
}
