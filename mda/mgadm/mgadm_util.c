#include "mda/mgadm/mgadm.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "common/ascii.h"
#include "common/settings.h"

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

int mgadm_size_parse(const char *text, uint64_t *bytes_r)
{
    if (mg_ascii_strcasecmp(text, "unlimited") == 0) {
        *bytes_r = 0;
        return 0;
    }
    /* The configuration's size syntax: one way to write sizes. */
    return mg_settings_parse_size(text, bytes_r);
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
        snprintf(buf, size, "%" PRIu64 "%c", bytes, "KMGT"[unit - 1]);
}

void mgadm_time_format(int64_t t, char *buf, size_t size)
{
    time_t tt = (time_t)t;
    struct tm tm;
    if (gmtime_r(&tt, &tm) == NULL || strftime(buf, size, "%Y-%m-%dT%H:%M:%SZ", &tm) == 0)
        snprintf(buf, size, "%" PRId64, t);
}
