/* Logging to stderr, one line per event, readable by journald and grep.
 *
 *   <6>info imap: login session=Q3xk user=demo@mailgenic.test remote=127.0.0.1
 *
 * Under systemd (JOURNAL_STREAM set) each line starts with the syslog
 * priority prefix `<N>` that journald turns into the entry's priority, and
 * journald adds time and PID itself. Elsewhere the line starts with an
 * ISO 8601 UTC timestamp and `program[pid]:`.
 *
 * After the level and the component comes a short event text, then
 * `key=value` fields. Values that come from the network must go through
 * mg_log_value() so that a peer cannot forge fields or lines. Never log a
 * password, a hash or key material: not even at debug level. */
#ifndef MG_COMMON_LOG_H
#define MG_COMMON_LOG_H

#include <stdarg.h>
#include <stddef.h>
#include <string.h>

enum mg_log_level {
    MG_LOG_DEBUG,
    MG_LOG_INFO,
    MG_LOG_NOTICE,
    MG_LOG_WARNING,
    MG_LOG_ERROR,
    MG_LOG_FATAL,
};

/* program: the name shown outside journald (e.g. "mgimapd"); not copied. */
void mg_log_init(const char *program);
void mg_log_set_level(enum mg_log_level level);
enum mg_log_level mg_log_get_level(void);
/* "debug", "info", "notice", "warning", "error"; 0 or -1. */
int mg_log_level_parse(const char *name, enum mg_log_level *level_r);

void mg_log(enum mg_log_level level, const char *component, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
void mg_logv(enum mg_log_level level, const char *component, const char *fmt,
             va_list ap) __attribute__((format(printf, 3, 0)));

#define mg_log_debug(comp, ...) \
    do { if (mg_log_get_level() <= MG_LOG_DEBUG) mg_log(MG_LOG_DEBUG, comp, __VA_ARGS__); } while (0)
#define mg_log_info(comp, ...) mg_log(MG_LOG_INFO, comp, __VA_ARGS__)
#define mg_log_notice(comp, ...) mg_log(MG_LOG_NOTICE, comp, __VA_ARGS__)
#define mg_log_warning(comp, ...) mg_log(MG_LOG_WARNING, comp, __VA_ARGS__)
#define mg_log_error(comp, ...) mg_log(MG_LOG_ERROR, comp, __VA_ARGS__)

/* Startup, configuration or privilege failure: logs and exits(1). */
void mg_log_fatal(const char *component, const char *fmt, ...)
    __attribute__((format(printf, 2, 3), noreturn));

/* A bug: logs file:line and aborts (core dump for the post-mortem). */
#define mg_panic(...) mg_log_panic_at(__FILE__, __LINE__, __VA_ARGS__)
void mg_log_panic_at(const char *file, int line, const char *fmt, ...)
    __attribute__((format(printf, 3, 4), noreturn));

/* Assertion that stays in release builds: protocol state machines rely on
 * their invariants for memory safety. */
#define mg_assert(expr) \
    do { if (!(expr)) mg_log_panic_at(__FILE__, __LINE__, "assertion failed: %s", #expr); } while (0)

/* Renders an untrusted value for a key=value field into buf: bare when it is
 * non-empty printable ASCII without spaces, quotes or '=', otherwise in
 * double quotes with \" \\ and \xNN escapes; cut with "..." when it would
 * not fit. Returns buf. */
const char *mg_log_value(char *buf, size_t size, const char *value, size_t len);
/* The same for a NUL-terminated string. */
#define MG_LOG_VALUE_MAX 256
#define mg_log_str(buf, s) mg_log_value((buf), sizeof(buf), (s), strlen(s))

#endif
