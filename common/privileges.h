/* Dropping root. Daemons bind their ports and sockets as root, then call
 * mg_privileges_drop() before reading any network input. */
#ifndef MG_COMMON_PRIVILEGES_H
#define MG_COMMON_PRIVILEGES_H

#include <sys/types.h>

/* Looks up a user and a group (group NULL or "": the user's primary
 * group). Returns 0, or -1 with a reason in *error_r (to free). */
int mg_privileges_lookup(const char *user, const char *group, uid_t *uid_r, gid_t *gid_r,
                         char **error_r);

/* Switches to user and group for good (supplementary groups: those the
 * user is a member of, from /etc/group) when we are not them yet (as root,
 * or with CAP_SETUID/CAP_SETGID from systemd), then drops every capability
 * and sets no-new-privileges, and checks that root cannot be regained.
 * user NULL or "": stay as we are (for development; callers warn when
 * that leaves them root). */
int mg_privileges_drop(const char *user, const char *group, char **error_r);

#endif
