/* Mailbox names: what IMAP may call a mailbox, and where it lives on disk.
 *
 * Internally names are UTF-8 with '/' as the hierarchy separator; "INBOX"
 * in any case is INBOX. (IMAP carries them as modified UTF-7; the IMAP
 * layer converts.) On disk a folder is ".A.B" for "A/B", with '.', '%',
 * '/' and control characters inside a component written as %XX, so no
 * name can reach outside the user's directory or collide with another. */
#ifndef MG_MDA_STORE_MAILBOX_NAME_H
#define MG_MDA_STORE_MAILBOX_NAME_H

#include <stdbool.h>
#include <stddef.h>

#define MAILBOX_NAME_MAX 512
#define MAILBOX_NAME_DEPTH_MAX 16
#define MAILBOX_SEPARATOR '/'

/* Validates and normalises a UTF-8 name into out (INBOX spelled in upper
 * case, also as the first component). Refuses: empty names or components,
 * leading or trailing separators, "." and ".." components, control
 * characters, the IMAP wildcards '%' and '*', invalid UTF-8, names longer
 * than MAILBOX_NAME_MAX bytes or deeper than MAILBOX_NAME_DEPTH_MAX.
 * Returns 0, or -1 with a reason for the client in *error_r. */
int mailbox_name_normalize(const char *name, size_t len, char out[MAILBOX_NAME_MAX + 1],
                           const char **error_r);

bool mailbox_name_is_inbox(const char *name);

/* The on-disk folder name (without the leading '.'; "" for INBOX). */
char *mailbox_name_to_disk(const char *name);
/* Back from a directory entry ".A.B" (given without the dot); NULL if
 * the entry is not one of ours. */
char *mailbox_name_from_disk(const char *disk);

/* Whether child is strictly inside parent's hierarchy ("A/B" in "A"). */
bool mailbox_name_is_child(const char *parent, const char *child);

#endif
