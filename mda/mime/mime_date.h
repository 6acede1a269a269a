/* RFC 5322 date-time (Date:, Resent-Date:) to time_t, for SEARCH
 * SENTBEFORE/SENTON/SENTSINCE and for sorting.
 *
 *   [day-of-week ","] day month year hour ":" minute [":" second] zone
 *
 * Tolerated: comments and folding anywhere, a missing or misspelt day of
 * week, full or capitalised month names ("JANUARY"), a numeric month
 * (1-12), two-digit years (< 50: 20xx, else 19xx) and three-digit years
 * (+1900, RFC 5322 obs-year), a time without seconds, "." as time
 * separator, a missing zone, the obsolete zones (UT, GMT, EST, EDT, CST,
 * CDT, MST, MDT, PST, PDT), military letters and unknown names (which
 * count as +0000, as RFC 5322 says for military zones), text after the
 * zone. */
#ifndef MG_MDA_MIME_DATE_H
#define MG_MDA_MIME_DATE_H

#include <stddef.h>
#include <time.h>

struct mime_date {
    int year, month, day;      /* month 1-12 */
    int hour, minute, second;  /* second may be 60 */
    int zone_minutes;          /* offset east of UTC, e.g. -330 for -0530 */
};

/* Parses the raw header value. Returns 0 and fills *date_r, or -1. */
int mime_date_parse_fields(const char *value, size_t len, struct mime_date *date_r);

/* The instant: *time_r is UTC seconds since the epoch (negative before
 * 1970) and *zone_minutes_r the zone (may be NULL). Returns 0 or -1 when
 * the value is not a date. */
int mime_date_parse(const char *value, size_t len, time_t *time_r,
                    int *zone_minutes_r);

/* Days since 1970-01-01 of a proleptic Gregorian date. */
long mime_date_days_from_civil(int year, int month, int day);

#endif
