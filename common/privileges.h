/* Dropping root. Daemons bind their ports and sockets as root, then call
 * mg_privileges_drop() before reading any network input. */
#ifndef MG_COMMON_PRIVILEGES_H
#define MG_COMMON_PRIVILEGES_H

#include <sys/types.h>

/* Looks up a user and a group (group NULL or "": the user's primary
 * group). Returns 0, or -1 with a reason in *error_r (to free). */
int mg_privileges_lookup(const char *user, const char *group, uid_t *uid_r, gid_t *gid_r,
                         char **error_r);

/* When running as root: switches to user and group for good (supplementary
 * groups: only those the user is a member of, from /etc/group), then checks
 * that root cannot be regained. user NULL or "": stay as we are (for
 * development; callers warn when that leaves them root). Not root and a
 * user named: fine if we already are that user, an error otherwise. */
int mg_privileges_drop(const char *user, const char *group, char **error_r);

#endif
