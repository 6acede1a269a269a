/* mda/imap/imap_date: INTERNALDATE formatting in the local zone (set
 * through TZ with POSIX rules, so no tzdata is needed), date-time and
 * SEARCH date parsing. */
#include "tests/unit/testutil.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "mda/imap/imap_date.h"

static void set_tz(const char *tz)
{
    setenv("TZ", tz, 1);
    tzset();
}

static const struct {
    const char *tz;
    time_t t;
    const char *text;
} format_cases[] = {
    { "UTC0", 0, " 1-Jan-1970 00:00:00 +0000" },
    { "UTC0", 1700000000, "14-Nov-2023 22:13:20 +0000" },
    { "UTC0", 951782400, "29-Feb-2000 00:00:00 +0000" },
    { "UTC0", -1, "31-Dec-1969 23:59:59 +0000" },
    { "IST-5:30", 1700000000, "15-Nov-2023 03:43:20 +0530" },
    { "NST3:30", 0, "31-Dec-1969 20:30:00 -0330" },
    { "CET-1CEST,M3.5.0,M10.5.0/3", 1700000000, "14-Nov-2023 23:13:20 +0100" },
    { "CET-1CEST,M3.5.0,M10.5.0/3", 1688000000, "29-Jun-2023 02:53:20 +0200" },
    { "EST5EDT,M3.2.0,M11.1.0", 1688000000, "28-Jun-2023 20:53:20 -0400" },
    { "EST5EDT,M3.2.0,M11.1.0", 1700000000, "14-Nov-2023 17:13:20 -0500" },
    { "<+1245>-12:45", 1700000000, "15-Nov-2023 10:58:20 +1245" },
    { "UTC0", 253402300799, "31-Dec-9999 23:59:59 +0000" },
    { "UTC0", -62167219200, " 1-Jan-0000 00:00:00 +0000" },
};

/* Times outside years 0000-9999 show as the ends of that range. */
static void test_format_clamp(void **state)
{
    (void)state;
    char out[IMAP_DATETIME_SIZE];
    setenv("TZ", "UTC0", 1);
    tzset();
    imap_date_format_datetime(253402300800, out);
    assert_string_equal(out, "31-Dec-9999 23:59:59 +0000");
    imap_date_format_datetime((time_t)1 << 50, out);
    assert_string_equal(out, "31-Dec-9999 23:59:59 +0000");
    imap_date_format_datetime(-62167219201, out);
    assert_string_equal(out, " 1-Jan-0000 00:00:00 +0000");
    imap_date_format_datetime(-((time_t)1 << 50), out);
    assert_string_equal(out, " 1-Jan-0000 00:00:00 +0000");
    setenv("TZ", "IST-5:30", 1);
    tzset();
    imap_date_format_datetime(253402300799, out);
    assert_string_equal(out, "31-Dec-9999 23:59:59 +0000");
    unsetenv("TZ");
    tzset();
}

static void test_format(void **state)
{
    (void)state;
    char *old = getenv("TZ") ? strdup(getenv("TZ")) : NULL;
    for (size_t i = 0; i < sizeof(format_cases) / sizeof(format_cases[0]); i++) {
        set_tz(format_cases[i].tz);
        char out[IMAP_DATETIME_SIZE];
        memset(out, 'x', sizeof(out));
        imap_date_format_datetime(format_cases[i].t, out);
        if (strcmp(out, format_cases[i].text) != 0)
            fail_msg("%s %lld: \"%s\", expected \"%s\"", format_cases[i].tz,
                     (long long)format_cases[i].t, out, format_cases[i].text);
        assert_int_equal(strlen(out), IMAP_DATETIME_SIZE - 1);
        /* and back */
        time_t t;
        assert_int_equal(imap_date_parse_datetime(out, strlen(out), &t), 0);
        assert_int_equal(t, format_cases[i].t);
    }
    if (old != NULL) {
        set_tz(old);
        free(old);
    } else {
        unsetenv("TZ");
        tzset();
    }
}

static const struct {
    const char *text;
    int ret;
    time_t t;
} datetime_cases[] = {
    { "14-Nov-2023 22:13:20 +0000", 0, 1700000000 },
    { " 1-Jan-1970 00:00:00 +0000", 0, 0 },
    { "01-Jan-1970 00:00:00 +0000", 0, 0 },
    { "1-Jan-1970 00:00:00 +0000", 0, 0 }, /* tolerated */
    { "15-Nov-2023 03:43:20 +0530", 0, 1700000000 },
    { "31-Dec-1969 20:30:00 -0330", 0, 0 },
    { "14-nov-2023 22:13:20 +0000", 0, 1700000000 },
    { "14-NOV-2023 22:13:20 +0000", 0, 1700000000 },
    { "14-Nov-2023 23:13:20 +0100", 0, 1700000000 },
    { "14-Nov-2023 12:13:20 -1000", 0, 1700000000 },
    { "29-Feb-2024 00:00:00 +0000", 0, 1709164800 },
    { "29-Feb-2000 00:00:00 +0000", 0, 951782400 },
    { "31-Dec-2016 23:59:60 +0000", 0, 1483228800 },
    { "01-Jan-1900 00:00:00 +0000", 0, -2208988800LL },
    { "29-Feb-2023 00:00:00 +0000", -1, 0 },
    { "29-Feb-1900 00:00:00 +0000", -1, 0 },
    { "31-Apr-2023 00:00:00 +0000", -1, 0 },
    { "31-Jun-2023 00:00:00 +0000", -1, 0 },
    { "00-Jan-2023 00:00:00 +0000", -1, 0 },
    { "32-Jan-2023 00:00:00 +0000", -1, 0 },
    { "14-Nov-2023 22:13:20", -1, 0 },
    { "14-Nov-2023 22:13:20 ", -1, 0 },
    { "14-Nov-2023 22:13:20 0000", -1, 0 },
    { "14-Nov-2023 22:13:20 +000", -1, 0 },
    { "14-Nov-2023 22:13:20 +00000", -1, 0 },
    { "14-Nov-2023 22:13:20 +0060", -1, 0 },
    { "14-Nov-2023 22:13:20 +2400", -1, 0 },
    { "14-Nov-2023 22:13:20 -9959", -1, 0 },
    { "15-Nov-2023 22:12:20 +2359", 0, 1700000000 },
    { "14-Nov-2023 22:12:20 -0001", 0, 1700000000 },
    { "14-Nov-2023 22:13:20 +00:0", -1, 0 },
    { "14-Nov-2023 22:13:20 GMT", -1, 0 },
    { "14-Nov-2023 24:00:00 +0000", -1, 0 },
    { "14-Nov-2023 22:60:00 +0000", -1, 0 },
    { "14-Nov-2023 22:13:61 +0000", -1, 0 },
    { "14-Nov-2023 2:13:20 +0000", -1, 0 },
    { "14-Nov-2023 22:13 +0000", -1, 0 },
    { "14-Nov-2023  22:13:20 +0000", -1, 0 },
    { "14-Nov-23 22:13:20 +0000", -1, 0 },
    { "14-Nvm-2023 22:13:20 +0000", -1, 0 },
    { "14 Nov 2023 22:13:20 +0000", -1, 0 },
    { "14/Nov/2023 22:13:20 +0000", -1, 0 },
    { " 14-Nov-2023 22:13:20 +0000", -1, 0 },
    { "114-Nov-2023 22:13:20 +0000", -1, 0 },
    { "\"14-Nov-2023 22:13:20 +0000\"", -1, 0 },
    { "Tue, 14 Nov 2023 22:13:20 +0000", -1, 0 },
    { "14-Nov-2023", -1, 0 },
    { "", -1, 0 },
    { " ", -1, 0 },
    { "1-", -1, 0 },
};

static void test_parse_datetime(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof(datetime_cases) / sizeof(datetime_cases[0]); i++) {
        const char *s = datetime_cases[i].text;
        size_t len = strlen(s);
        char *copy = malloc(len ? len : 1);
        memcpy(copy, s, len);
        time_t t = 12345;
        int r = imap_date_parse_datetime(copy, len, &t);
        if (r != datetime_cases[i].ret)
            fail_msg("\"%s\": returned %d", s, r);
        if (r == 0 && t != datetime_cases[i].t)
            fail_msg("\"%s\": %lld, expected %lld", s, (long long)t,
                     (long long)datetime_cases[i].t);
        /* prefixes never read past their end */
        for (size_t p = 0; p < len; p++) {
            char *pre = malloc(p ? p : 1);
            memcpy(pre, s, p);
            (void)imap_date_parse_datetime(pre, p, &t);
            free(pre);
        }
        free(copy);
    }
}

static const struct {
    const char *text;
    int ret;
    long days;
} date_cases[] = {
    { "1-Jan-1970", 0, 0 },
    { "01-Jan-1970", 0, 0 },
    { "2-jan-1970", 0, 1 },
    { "14-Nov-2023", 0, 19675 },
    { "29-Feb-2024", 0, 19782 },
    { "1-Mar-2024", 0, 19783 },
    { "31-Dec-1969", 0, -1 },
    { "1-Jan-1900", 0, -25567 },
    { "31-Dec-9999", 0, 2932896 },
    { " 1-Jan-1970", -1, 0 },
    { "1-Jan-1970 ", -1, 0 },
    { "1-Jan-70", -1, 0 },
    { "1-Jan-19700", -1, 0 },
    { "29-Feb-2023", -1, 0 },
    { "31-Jun-2023", -1, 0 },
    { "31-Sep-2023", -1, 0 },
    { "31-Nov-2023", -1, 0 },
    { "0-Jan-2023", -1, 0 },
    { "001-Jan-2023", -1, 0 },
    { "1-Jan-2023 00:00:00 +0000", -1, 0 },
    { "1-Foo-2023", -1, 0 },
    { "1-Ja-2023", -1, 0 },
    { "1/Jan/2023", -1, 0 },
    { "1-Jan-20x3", -1, 0 },
    { "-Jan-2023", -1, 0 },
    { "", -1, 0 },
};

static void test_parse_date(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof(date_cases) / sizeof(date_cases[0]); i++) {
        const char *s = date_cases[i].text;
        size_t len = strlen(s);
        char *copy = malloc(len ? len : 1);
        memcpy(copy, s, len);
        long days = 12345;
        int r = imap_date_parse_date(copy, len, &days);
        if (r != date_cases[i].ret)
            fail_msg("\"%s\": returned %d", s, r);
        if (r == 0 && days != date_cases[i].days)
            fail_msg("\"%s\": day %ld, expected %ld", s, days, date_cases[i].days);
        free(copy);
    }
    /* every day of 2000-2030 in both spellings agrees with the count */
    static const char *const mon[] = { "Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                       "Jul", "Aug", "Sep", "Oct", "Nov", "Dec" };
    long expected = 10957; /* 1-Jan-2000 */
    for (int y = 2000; y <= 2030; y++) {
        for (int m = 0; m < 12; m++) {
            for (int d = 1; d <= 31; d++) {
                char buf[32];
                int n = snprintf(buf, sizeof(buf), "%d-%s-%d", d, mon[m], y);
                long days;
                if (imap_date_parse_date(buf, (size_t)n, &days) < 0)
                    continue;
                if (days != expected)
                    fail_msg("%s: %ld, expected %ld", buf, days, expected);
                n = snprintf(buf, sizeof(buf), "%02d-%s-%d", d, mon[m], y);
                assert_int_equal(imap_date_parse_date(buf, (size_t)n, &days), 0);
                assert_int_equal(days, expected);
                expected++;
            }
        }
    }
    assert_int_equal(expected, 22280); /* 1-Jan-2031 */
}

static void test_days(void **state)
{
    (void)state;
    assert_int_equal(imap_date_days(0, 0), 0);
    assert_int_equal(imap_date_days(-1, 0), -1);
    assert_int_equal(imap_date_days(-86400, 0), -1);
    assert_int_equal(imap_date_days(-86401, 0), -2);
    assert_int_equal(imap_date_days(86399, 0), 0);
    assert_int_equal(imap_date_days(86400, 0), 1);
    assert_int_equal(imap_date_days(0, 3600), 0);
    assert_int_equal(imap_date_days(0, -3600), -1);
    assert_int_equal(imap_date_days(82800, 3600), 1);
    assert_int_equal(imap_date_days(1700000000, 0), 19675);
    assert_int_equal(imap_date_days(1700000000, 5 * 3600 + 1800), 19676);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_format),
        cmocka_unit_test(test_format_clamp),
        cmocka_unit_test(test_parse_datetime),
        cmocka_unit_test(test_parse_date),
        cmocka_unit_test(test_days),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
