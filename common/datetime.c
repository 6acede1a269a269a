#include "common/datetime.h"

#include <stdio.h>
#include <string.h>

static const char *const wday_names[] = { "Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat" };
static const char *const month_names[] = { "Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                           "Jul", "Aug", "Sep", "Oct", "Nov", "Dec" };

long mg_datetime_utc_offset(time_t t)
{
    struct tm tm;
    localtime_r(&t, &tm);
    return tm.tm_gmtoff;
}

void mg_datetime_rfc5322(time_t t, char out[MG_DATETIME_RFC5322_SIZE])
{
    /* Month and day names are fixed English tokens, never the locale's. */
    struct tm tm;
    localtime_r(&t, &tm);
    long off = tm.tm_gmtoff;
    char sign = off < 0 ? '-' : '+';
    if (off < 0)
        off = -off;
    /* A roomy buffer first: the compiler cannot know tm's fields are in
     * range, and a truncated date is worse than a long one. */
    char tmp[96];
    snprintf(tmp, sizeof(tmp), "%s, %02d %s %04d %02d:%02d:%02d %c%02ld%02ld",
             wday_names[tm.tm_wday % 7], tm.tm_mday, month_names[tm.tm_mon % 12],
             tm.tm_year + 1900, tm.tm_hour, tm.tm_min, tm.tm_sec, sign, (off / 3600) % 100,
             (off / 60) % 60);
    snprintf(out, MG_DATETIME_RFC5322_SIZE, "%.31s", tmp);
}

void mg_datetime_iso8601(time_t t, char out[MG_DATETIME_ISO8601_SIZE])
{
    struct tm tm;
    gmtime_r(&t, &tm);
    char tmp[96];
    snprintf(tmp, sizeof(tmp), "%04d-%02d-%02dT%02d:%02d:%02dZ", (tm.tm_year + 1900) % 10000,
             tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec);
    snprintf(out, MG_DATETIME_ISO8601_SIZE, "%.20s", tmp);
}

unsigned long long mg_datetime_monotonic_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (unsigned long long)ts.tv_sec * 1000ull + (unsigned long long)ts.tv_nsec / 1000000ull;
}
