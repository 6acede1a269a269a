/* Unique identifiers for queue files, log correlation and sessions.
 *
 * An ID is MG_UNIQUE_ID_LEN characters of Crockford base32 (digits and
 * upper-case letters without I, L, O, U): 11 characters of microseconds since
 * the epoch, so IDs sort by creation time, then 5 characters that mix a
 * random per-process value with a counter. IDs are strictly increasing
 * within a process; across processes a collision needs the same
 * microsecond and the same 25 random bits, and every user of an ID as a
 * file name creates the file with O_EXCL anyway. */
#ifndef MG_COMMON_UNIQUE_ID_H
#define MG_COMMON_UNIQUE_ID_H

#include <stdint.h>

#define MG_UNIQUE_ID_LEN 16

/* Writes a new ID and a NUL into out. Thread-safe. */
void mg_unique_id_new(char out[MG_UNIQUE_ID_LEN + 1]);

/* Short random session tag for log lines (8 base32 characters). */
#define MG_SESSION_ID_LEN 8
void mg_unique_id_session(char out[MG_SESSION_ID_LEN + 1]);

/* Whether s is MG_UNIQUE_ID_LEN characters of the ID alphabet (for IDs
 * that arrive from the command line or from file names). */
int mg_unique_id_is_valid(const char *s);

#endif
