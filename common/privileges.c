#include "common/privileges.h"

#include <errno.h>
#include <stdbool.h>
#include <grp.h>
#include <pwd.h>
#include <stdlib.h>
#include <string.h>
#include <linux/capability.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
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

/* Empties the bounding set while we still may (CAP_SETPCAP, as root), so
 * that nothing this process or its children exec can get a capability
 * back. Without CAP_SETPCAP (systemd's ambient CAP_SETUID only) each drop
 * fails with EPERM and the unit's CapabilityBoundingSet= is what limits. */
static void drop_bounding_set(void)
{
    for (int cap = 0; prctl(PR_CAPBSET_READ, cap, 0, 0, 0) >= 0; cap++)
        prctl(PR_CAPBSET_DROP, cap, 0, 0, 0);
}

/* Clears every capability: effective, permitted, inheritable and ambient.
 * A daemon started by systemd with AmbientCapabilities (to bind port 25,
 * or to start mgauthd under its own user) keeps none of them. */
static int drop_capabilities(char **error_r)
{
    prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0);
    struct __user_cap_header_struct hdr = { .version = _LINUX_CAPABILITY_VERSION_3, .pid = 0 };
    struct __user_cap_data_struct data[2];
    memset(data, 0, sizeof(data));
    if (syscall(SYS_capset, &hdr, data) != 0) {
        *error_r = mg_asprintf("cannot drop capabilities: %s", strerror(errno));
        return -1;
    }
    /* Nothing we exec may gain privileges either (no setuid helpers). */
    if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0) {
        *error_r = mg_asprintf("cannot set no_new_privs: %s", strerror(errno));
        return -1;
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
    drop_bounding_set();
    if (geteuid() != uid || getegid() != gid) {
        /* Root, or a process given CAP_SETUID/CAP_SETGID (systemd's
         * AmbientCapabilities), can switch; anyone else cannot. */
        if (initgroups(user, gid) != 0 || setgid(gid) != 0 || setuid(uid) != 0) {
            *error_r = mg_asprintf("cannot switch to user %s: %s", user,
                                   errno == EPERM ? "not root and no CAP_SETUID/CAP_SETGID" : strerror(errno));
            return -1;
        }
    }
    if (drop_capabilities(error_r) < 0)
        return -1;
    /* Paranoia: a process that can become root again did not drop. */
    if (uid != 0 && (setuid(0) == 0 || seteuid(0) == 0)) {
        *error_r = mg_strdup("could regain root after dropping privileges");
        return -1;
    }
    return 0;
}
