/* IMAP dates: INTERNALDATE ("28-Nov-2026 13:51:19 +0100") and SEARCH
 * dates ("28-Nov-2026"). */
#ifndef MG_MDA_IMAP_DATE_H
#define MG_MDA_IMAP_DATE_H

#include <stdbool.h>
#include <stddef.h>
#include <time.h>

/* " 8-Nov-2026 13:51:19 +0100" without quotes, 26 characters + NUL, in
 * the server's local zone. Times before year 0000 or after 9999 (there)
 * show as " 1-Jan-0000 00:00:00 +0000" and "31-Dec-9999 23:59:59 +0000". */
#define IMAP_DATETIME_SIZE 27
void imap_date_format_datetime(time_t t, char out[IMAP_DATETIME_SIZE]);
/* Parses date-time (without quotes): "dd-Mon-yyyy hh:mm:ss +zzzz" with
 * the day as 2DIGIT or SP DIGIT (one digit alone is tolerated); month
 * names in any case; the day must exist in that month; the zone within
 * +-23:59. -1 when malformed. */
int imap_date_parse_datetime(const char *s, size_t len, time_t *t_r);
/* Parses a SEARCH date "d-Mon-yyyy" or "dd-Mon-yyyy" (no space): the day
 * as days since the epoch; -1 when malformed or not a real day. */
int imap_date_parse_date(const char *s, size_t len, long *days_r);
/* Days since the epoch of a time, in the zone offset given (seconds). */
long imap_date_days(time_t t, long utc_offset);

#endif
