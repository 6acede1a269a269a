#include "mda/imap/imap_date.h"

#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "common/ascii.h"

static const char *const months[] = { "Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                      "Jul", "Aug", "Sep", "Oct", "Nov", "Dec" };

static long days_from_civil(long y, unsigned m, unsigned d)
{
    y -= m <= 2;
    long era = (y >= 0 ? y : y - 399) / 400;
    unsigned yoe = (unsigned)(y - era * 400);
    unsigned doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + (long)doe - 719468;
}

void imap_date_format_datetime(time_t t, char out[IMAP_DATETIME_SIZE])
{
    struct tm tm;
    if (localtime_r(&t, &tm) == NULL || tm.tm_year + 1900 < 0 || tm.tm_year + 1900 > 9999) {
        /* date-year is 4DIGIT: times outside it show as its ends. */
        snprintf(out, IMAP_DATETIME_SIZE, "%s",
                 t < 0 ? " 1-Jan-0000 00:00:00 +0000" : "31-Dec-9999 23:59:59 +0000");
        return;
    }
    long off = tm.tm_gmtoff;
    char sign = off < 0 ? '-' : '+';
    if (off < 0)
        off = -off;
    char tmp[96];
    snprintf(tmp, sizeof(tmp), "%2d-%s-%04d %02d:%02d:%02d %c%02ld%02ld", tm.tm_mday,
             months[tm.tm_mon % 12], tm.tm_year + 1900, tm.tm_hour, tm.tm_min,
             tm.tm_sec, sign, (off / 3600) % 100, (off / 60) % 60);
    snprintf(out, IMAP_DATETIME_SIZE, "%.26s", tmp);
}

static int parse_month(const char *s)
{
    for (int i = 0; i < 12; i++) {
        if (mg_ascii_eq(s, 3, months[i]))
            return i + 1;
    }
    return -1;
}

static int digits(const char *s, size_t n, int *v)
{
    int x = 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9')
            return -1;
        x = x * 10 + (s[i] - '0');
    }
    *v = x;
    return 0;
}

static bool is_leap(int y)
{
    return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
}

static int month_days(int y, int m)
{
    static const int days[] = { 31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31 };
    return m == 2 && is_leap(y) ? 29 : days[m - 1];
}

/* "d-Mon-yyyy" or "dd-Mon-yyyy"; with is_fixed (date-time's
 * date-day-fixed) also " d". Sets the length consumed. */
static int parse_day_month_year(const char *s, size_t len, bool is_fixed, int *d, int *m,
                                int *y, size_t *used)
{
    size_t i = 0;
    size_t max_digits = 2;
    if (is_fixed && len >= 1 && s[0] == ' ') {
        i = 1;
        max_digits = 1;
    }
    size_t dstart = i;
    while (i < len && s[i] >= '0' && s[i] <= '9' && i - dstart < max_digits)
        i++;
    if (i == dstart || digits(s + dstart, i - dstart, d) < 0)
        return -1;
    /* "-Mon-yyyy": 9 more characters. */
    if (len - i < 9 || s[i] != '-' || s[i + 4] != '-')
        return -1;
    *m = parse_month(s + i + 1);
    if (*m < 0 || digits(s + i + 5, 4, y) < 0)
        return -1;
    if (*d < 1 || *d > month_days(*y, *m))
        return -1;
    *used = i + 9;
    return 0;
}

int imap_date_parse_date(const char *s, size_t len, long *days_r)
{
    int d, m, y;
    size_t used;
    if (parse_day_month_year(s, len, false, &d, &m, &y, &used) < 0 || used != len)
        return -1;
    *days_r = days_from_civil(y, (unsigned)m, (unsigned)d);
    return 0;
}

int imap_date_parse_datetime(const char *s, size_t len, time_t *t_r)
{
    int d, m, y, hh, mm, ss, zh, zm;
    size_t used;
    if (parse_day_month_year(s, len, true, &d, &m, &y, &used) < 0)
        return -1;
    /* SP time SP zone: " 13:51:19 +0100" */
    const char *p = s + used;
    if (len - used != 15 || p[0] != ' ' || p[3] != ':' || p[6] != ':' || p[9] != ' ' ||
        (p[10] != '+' && p[10] != '-'))
        return -1;
    if (digits(p + 1, 2, &hh) < 0 || digits(p + 4, 2, &mm) < 0 || digits(p + 7, 2, &ss) < 0 ||
        digits(p + 11, 2, &zh) < 0 || digits(p + 13, 2, &zm) < 0)
        return -1;
    /* Real zones are within a day of UTC. */
    if (hh > 23 || mm > 59 || ss > 60 || zh > 23 || zm > 59)
        return -1;
    long zone = (zh * 3600L + zm * 60L) * (p[10] == '-' ? -1 : 1);
    long days = days_from_civil(y, (unsigned)m, (unsigned)d);
    *t_r = (time_t)(days * 86400L + hh * 3600L + mm * 60L + ss - zone);
    return 0;
}

long imap_date_days(time_t t, long utc_offset)
{
    long long s = (long long)t + utc_offset;
    long long days = s / 86400;
    if (s < 0 && s % 86400 != 0)
        days--;
    return (long)days;
}
