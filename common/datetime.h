/* Dates as mail needs them. */
#ifndef MG_COMMON_DATETIME_H
#define MG_COMMON_DATETIME_H

#include <stddef.h>
#include <time.h>

/* "Sat, 28 Nov 2026 13:51:19 +0100" (RFC 5322 section 3.3) in the local
 * time zone: 31 characters and a NUL. */
#define MG_DATETIME_RFC5322_SIZE 32
void mg_datetime_rfc5322(time_t t, char out[MG_DATETIME_RFC5322_SIZE]);

/* "2026-11-28T12:51:19Z" (ISO 8601, UTC). */
#define MG_DATETIME_ISO8601_SIZE 21
void mg_datetime_iso8601(time_t t, char out[MG_DATETIME_ISO8601_SIZE]);

/* Seconds east of UTC of the local zone at time t. */
long mg_datetime_utc_offset(time_t t);

/* Monotonic milliseconds, for timeouts and durations in logs. */
unsigned long long mg_datetime_monotonic_ms(void);

#endif
