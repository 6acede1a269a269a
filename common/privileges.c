#include "common/privileges.h"

#include <errno.h>
#include <stdbool.h>
#include <grp.h>
#include <pwd.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/alloc.h"

int mg_privileges_lookup(const char *user, const char *group, uid_t *uid_r, gid_t *gid_r,
                         char **error_r)
{
    errno = 0;
    struct passwd *pw = getpwnam(user);
    if (pw == NULL) {
        *error_r = mg_asprintf("unknown user %s", user);
        return -1;
    }
    *uid_r = pw->pw_uid;
    *gid_r = pw->pw_gid;
    if (group != NULL && group[0] != '\0') {
        struct group *gr = getgrnam(group);
        if (gr == NULL) {
            *error_r = mg_asprintf("unknown group %s", group);
            return -1;
        }
        *gid_r = gr->gr_gid;
    }
    return 0;
}

int mg_privileges_drop(const char *user, const char *group, char **error_r)
{
    if (user == NULL || user[0] == '\0')
        return 0; /* development: the caller warns when that means root */
    uid_t uid;
    gid_t gid;
    if (mg_privileges_lookup(user, group, &uid, &gid, error_r) < 0)
        return -1;
    if (geteuid() != 0) {
        if (geteuid() == uid)
            return 0;
        *error_r = mg_asprintf("not root and not %s: cannot switch user", user);
        return -1;
    }
    if (initgroups(user, gid) != 0 || setgid(gid) != 0 || setuid(uid) != 0) {
        *error_r = mg_asprintf("cannot switch to %s: %s", user, strerror(errno));
        return -1;
    }
    /* Paranoia: a process that can become root again did not drop. */
    if (uid != 0 && (setuid(0) == 0 || seteuid(0) == 0)) {
        *error_r = mg_strdup("could regain root after dropping privileges");
        return -1;
    }
    return 0;
}
