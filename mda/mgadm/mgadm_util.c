#include "mda/mgadm/mgadm.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "common/ascii.h"

int mgadm_fail(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs("mgadm: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    return MGADM_EXIT_FAIL;
}

int mgadm_usage_error(const struct mgadm_cmd *cmd, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs("mgadm: ", stderr);
    vfprintf(stderr, fmt, ap);
    if (cmd == NULL)
        fputs(" (see mgadm --help)\n", stderr);
    else if (cmd->verb == NULL)
        fprintf(stderr, " (see mgadm %s --help)\n", cmd->object);
    else
        fprintf(stderr, " (see mgadm %s %s --help)\n", cmd->object, cmd->verb);
    va_end(ap);
    return MGADM_EXIT_USAGE;
}

static const char size_suffixes[] = "KMGT";

int mgadm_size_parse(const char *text, uint64_t *bytes_r)
{
    if (mg_ascii_strcasecmp(text, "unlimited") == 0) {
        *bytes_r = 0;
        return 0;
    }
    uint64_t v = 0;
    const char *p = text;
    if (*p < '0' || *p > '9')
        return -1;
    for (; *p >= '0' && *p <= '9'; p++) {
        if (v > (UINT64_MAX - (uint64_t)(*p - '0')) / 10)
            return -1;
        v = v * 10 + (uint64_t)(*p - '0');
    }
    if (*p != '\0') {
        const char *s = strchr(size_suffixes, mg_ascii_toupper(*p));
        if (s == NULL || p[1] != '\0')
            return -1;
        unsigned shift = 10 * (unsigned)(s - size_suffixes + 1);
        if (v > (UINT64_MAX >> shift))
            return -1;
        v <<= shift;
    }
    *bytes_r = v;
    return 0;
}

void mgadm_size_format(uint64_t bytes, char *buf, size_t size)
{
    if (bytes == 0) {
        snprintf(buf, size, "unlimited");
        return;
    }
    int unit = 0;
    while (unit < 4 && (bytes & 1023) == 0) {
        bytes >>= 10;
        unit++;
    }
    if (unit == 0)
        snprintf(buf, size, "%" PRIu64, bytes);
    else
        snprintf(buf, size, "%" PRIu64 "%c", bytes, size_suffixes[unit - 1]);
}

void mgadm_time_format(int64_t t, char *buf, size_t size)
{
    time_t tt = (time_t)t;
    struct tm tm;
    if (gmtime_r(&tt, &tm) == NULL || strftime(buf, size, "%Y-%m-%dT%H:%M:%SZ", &tm) == 0)
        snprintf(buf, size, "%" PRId64, t);
}
