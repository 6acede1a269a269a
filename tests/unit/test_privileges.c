/* common/privileges: user and group look-ups, and the drop itself in a
 * forked child when we are root (to nobody/nogroup): ids, groups,
 * capabilities, no_new_privs, and no way back to root. Without root the
 * drop cases are skipped. */
#include "testutil.h"

#include <errno.h>
#include <grp.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <linux/capability.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common/alloc.h"
#include "common/privileges.h"

/* The unprivileged pair every Debian has; nogroup may be "nobody" elsewhere. */
static const char *nobody_user = "nobody";
static const char *nobody_group;

static int group_setup(void **state)
{
    (void)state;
    if (getgrnam("nogroup") != NULL)
        nobody_group = "nogroup";
    else if (getgrnam("nobody") != NULL)
        nobody_group = "nobody";
    return 0;
}

static void test_privileges_lookup(void **state)
{
    (void)state;
    uid_t uid = 12345;
    gid_t gid = 12345;
    char *error = NULL;
    assert_int_equal(mg_privileges_lookup("root", NULL, &uid, &gid, &error), 0);
    assert_int_equal(uid, 0);
    assert_int_equal(gid, 0);
    assert_null(error);

    struct passwd *pw = getpwnam(nobody_user);
    if (pw == NULL)
        skip();
    uid_t want_uid = pw->pw_uid;
    gid_t want_gid = pw->pw_gid;
    /* No group: the user's primary group, also for "". */
    assert_int_equal(mg_privileges_lookup(nobody_user, NULL, &uid, &gid, &error), 0);
    assert_int_equal(uid, want_uid);
    assert_int_equal(gid, want_gid);
    uid = 1;
    gid = 1;
    assert_int_equal(mg_privileges_lookup(nobody_user, "", &uid, &gid, &error), 0);
    assert_int_equal(uid, want_uid);
    assert_int_equal(gid, want_gid);
    /* A named group wins over the primary one. */
    assert_int_equal(mg_privileges_lookup(nobody_user, "root", &uid, &gid, &error), 0);
    assert_int_equal(uid, want_uid);
    assert_int_equal(gid, 0);
    if (nobody_group != NULL) {
        struct group *gr = getgrnam(nobody_group);
        gid_t want = gr->gr_gid;
        assert_int_equal(mg_privileges_lookup("root", nobody_group, &uid, &gid, &error), 0);
        assert_int_equal(uid, 0);
        assert_int_equal(gid, want);
    }
    assert_null(error);
}

static void test_privileges_lookup_missing(void **state)
{
    (void)state;
    uid_t uid;
    gid_t gid;
    char *error = NULL;
    assert_int_equal(mg_privileges_lookup("mg-no-such-user", NULL, &uid, &gid, &error), -1);
    assert_non_null(error);
    assert_string_equal(error, "unknown user mg-no-such-user");
    free(error);
    error = NULL;
    assert_int_equal(mg_privileges_lookup("root", "mg-no-such-group", &uid, &gid, &error), -1);
    assert_string_equal(error, "unknown group mg-no-such-group");
    free(error);
    error = NULL;
    /* Names, not numbers: "0" is not root (unless a user is called so). */
    if (getpwnam("0") == NULL) {
        assert_int_equal(mg_privileges_lookup("0", NULL, &uid, &gid, &error), -1);
        assert_string_equal(error, "unknown user 0");
        free(error);
        error = NULL;
    }
    if (getgrnam("0") == NULL) {
        assert_int_equal(mg_privileges_lookup("root", "0", &uid, &gid, &error), -1);
        assert_string_equal(error, "unknown group 0");
        free(error);
        error = NULL;
    }
    /* Empty user: not a user. */
    assert_int_equal(mg_privileges_lookup("", NULL, &uid, &gid, &error), -1);
    assert_non_null(error);
    free(error);
}

static void test_privileges_drop_nobody_user(void **state)
{
    (void)state;
    /* No user: nothing changes, for anyone. */
    uid_t uid = geteuid();
    gid_t gid = getegid();
    char *error = NULL;
    assert_int_equal(mg_privileges_drop(NULL, NULL, &error), 0);
    assert_int_equal(mg_privileges_drop("", "nogroup", &error), 0);
    assert_null(error);
    assert_int_equal(geteuid(), uid);
    assert_int_equal(getegid(), gid);
}

/* ---- the drop, in a child ---- */

/* A line of /proc/self/status ("CapEff") as text, or "?". */
static void status_field(const char *name, char *out, size_t size)
{
    snprintf(out, size, "?");
    FILE *f = fopen("/proc/self/status", "r");
    if (f == NULL)
        return;
    char line[512];
    size_t n = strlen(name);
    while (fgets(line, sizeof(line), f) != NULL) {
        if (strncmp(line, name, n) == 0 && line[n] == ':') {
            char *v = line + n + 1;
            while (*v == ' ' || *v == '\t')
                v++;
            v[strcspn(v, "\n")] = '\0';
            snprintf(out, size, "%s", v);
            break;
        }
    }
    fclose(f);
}

/* Prints what the process is now, one key=value a line, for the parent. */
static void report(void)
{
    uid_t r, e, s;
    gid_t rg, eg, sg;
    getresuid(&r, &e, &s);
    getresgid(&rg, &eg, &sg);
    printf("uid=%u,%u,%u\n", (unsigned)r, (unsigned)e, (unsigned)s);
    printf("gid=%u,%u,%u\n", (unsigned)rg, (unsigned)eg, (unsigned)sg);
    gid_t groups[256];
    int n = getgroups(256, groups);
    printf("groups=");
    for (int i = 0; i < n; i++)
        printf("%s%u", i > 0 ? "," : "", (unsigned)groups[i]);
    printf("\n");
    static const char *const fields[] = { "CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb", "NoNewPrivs" };
    for (size_t i = 0; i < sizeof(fields) / sizeof(fields[0]); i++) {
        char v[128];
        status_field(fields[i], v, sizeof(v));
        printf("%s=%s\n", fields[i], v);
    }
    printf("prctl_nnp=%d\n", prctl(PR_GET_NO_NEW_PRIVS, 0, 0, 0, 0));
    /* No way back. */
    printf("setuid0=%d\n", setuid(0));
    printf("seteuid0=%d\n", seteuid(0));
    printf("setresuid0=%d\n", setresuid(0, 0, 0));
    printf("setgid0=%d\n", setgid(0));
    gid_t zero = 0;
    printf("setgroups0=%d\n", setgroups(1, &zero));
    printf("uid_after=%u\n", (unsigned)geteuid());
}

struct drop_case {
    const char *user, *group;
    /* Then a second drop in the same process. */
    const char *again_user, *again_group;
};

static int drop_child(void *ctx)
{
    const struct drop_case *dc = ctx;
    /* Start with something to lose: a supplementary root group and an
     * ambient capability are what a careless start would leave. */
    gid_t extra[2] = { 0, 4 };
    setgroups(2, extra);
    struct __user_cap_header_struct hdr = { .version = _LINUX_CAPABILITY_VERSION_3, .pid = 0 };
    struct __user_cap_data_struct data[2];
    if (syscall(SYS_capget, &hdr, data) == 0) {
        data[CAP_TO_INDEX(CAP_NET_BIND_SERVICE)].inheritable |= CAP_TO_MASK(CAP_NET_BIND_SERVICE);
        if (syscall(SYS_capset, &hdr, data) != 0 ||
            prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_RAISE, CAP_NET_BIND_SERVICE, 0, 0) != 0)
            printf("note: no ambient capability to start with: %s\n", strerror(errno));
    }
    char *error = NULL;
    if (mg_privileges_drop(dc->user, dc->group, &error) != 0) {
        printf("drop failed: %s\n", error);
        return 3;
    }
    if (dc->again_user != NULL) {
        int r = mg_privileges_drop(dc->again_user, dc->again_group, &error);
        printf("again=%d error=%s\n", r, r != 0 ? error : "");
        if (r != 0)
            free(error);
    }
    report();
    return 0;
}

/* The value of "key=" in the child's report. */
static char *field(const char *out, const char *key, char *buf, size_t size)
{
    char pat[64];
    snprintf(pat, sizeof(pat), "\n%s=", key);
    char *text = mg_asprintf("\n%s", out);
    const char *p = strstr(text, pat);
    if (p == NULL)
        fail_msg("no %s in:\n%s", key, out);
    p += strlen(pat);
    size_t n = strcspn(p, "\n");
    snprintf(buf, size, "%.*s", (int)n, p);
    free(text);
    return buf;
}

static void check_dropped(const char *out, uid_t uid, gid_t gid, const char *user)
{
    char b[256], want[128];
    if (strstr(out, "note:") != NULL)
        print_message("%s", out);
    snprintf(want, sizeof(want), "%u,%u,%u", (unsigned)uid, (unsigned)uid, (unsigned)uid);
    assert_string_equal(field(out, "uid", b, sizeof(b)), want);
    snprintf(want, sizeof(want), "%u,%u,%u", (unsigned)gid, (unsigned)gid, (unsigned)gid);
    assert_string_equal(field(out, "gid", b, sizeof(b)), want);
    /* Supplementary groups: only those of the user in /etc/group, plus the
     * primary one; never the root group or others we had. */
    field(out, "groups", b, sizeof(b));
    char *save = NULL;
    for (char *g = strtok_r(b, ",", &save); g != NULL; g = strtok_r(NULL, ",", &save)) {
        gid_t id = (gid_t)strtoul(g, NULL, 10);
        if (id == gid)
            continue;
        struct group *gr = getgrgid(id);
        bool member = false;
        for (char **m = gr != NULL ? gr->gr_mem : NULL; m != NULL && *m != NULL; m++)
            member = member || strcmp(*m, user) == 0;
        if (!member)
            fail_msg("kept group %u that %s is not a member of:\n%s", (unsigned)id, user, out);
    }
    static const char *const caps[] = { "CapInh", "CapPrm", "CapEff", "CapAmb", "CapBnd" };
    for (size_t i = 0; i < sizeof(caps) / sizeof(caps[0]); i++) {
        if (strcmp(field(out, caps[i], b, sizeof(b)), "0000000000000000") != 0)
            fail_msg("%s=%s after the drop:\n%s", caps[i], b, out);
    }
    assert_string_equal(field(out, "NoNewPrivs", b, sizeof(b)), "1");
    assert_string_equal(field(out, "prctl_nnp", b, sizeof(b)), "1");
    static const char *const back[] = { "setuid0", "seteuid0", "setresuid0", "setgid0", "setgroups0" };
    for (size_t i = 0; i < sizeof(back) / sizeof(back[0]); i++) {
        if (strcmp(field(out, back[i], b, sizeof(b)), "-1") != 0)
            fail_msg("%s succeeded after the drop:\n%s", back[i], out);
    }
    snprintf(want, sizeof(want), "%u", (unsigned)uid);
    assert_string_equal(field(out, "uid_after", b, sizeof(b)), want);
}

static bool can_drop(void)
{
    if (geteuid() != 0) {
        print_message("not root: skipping the privilege drop\n");
        return false;
    }
    if (getpwnam(nobody_user) == NULL || nobody_group == NULL) {
        print_message("no nobody/nogroup: skipping the privilege drop\n");
        return false;
    }
    return true;
}

static void test_privileges_drop_to_nobody(void **state)
{
    (void)state;
    if (!can_drop())
        skip();
    struct passwd *pw = getpwnam(nobody_user);
    uid_t uid = pw->pw_uid;
    gid_t gid = getgrnam(nobody_group)->gr_gid;
    struct drop_case dc = { nobody_user, nobody_group, NULL, NULL };
    char *out = NULL;
    int status = testutil_fork_run(drop_child, &dc, 60, &out);
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
        fail_msg("child status 0x%x:\n%s", status, out);
    check_dropped(out, uid, gid, nobody_user);
    free(out);

    /* The user's own primary group when none is named. */
    dc.group = NULL;
    status = testutil_fork_run(drop_child, &dc, 60, &out);
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
        fail_msg("child status 0x%x:\n%s", status, out);
    check_dropped(out, uid, pw->pw_gid, nobody_user);
    free(out);
}

static void test_privileges_drop_twice(void **state)
{
    (void)state;
    if (!can_drop())
        skip();
    uid_t uid = getpwnam(nobody_user)->pw_uid;
    gid_t gid = getgrnam(nobody_group)->gr_gid;
    /* Dropping again to the same user is fine (a daemon that runs as its
     * user already, under systemd's User=). */
    struct drop_case same = { nobody_user, nobody_group, nobody_user, nobody_group };
    char *out = NULL;
    int status = testutil_fork_run(drop_child, &same, 60, &out);
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
        fail_msg("child status 0x%x:\n%s", status, out);
    assert_non_null(strstr(out, "again=0 "));
    check_dropped(out, uid, gid, nobody_user);
    free(out);
    /* Back to root: refused with a reason, and nothing regained. */
    struct drop_case back = { nobody_user, nobody_group, "root", NULL };
    status = testutil_fork_run(drop_child, &back, 60, &out);
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
        fail_msg("child status 0x%x:\n%s", status, out);
    assert_non_null(strstr(out, "again=-1 error=cannot switch to user root"));
    check_dropped(out, uid, gid, nobody_user);
    free(out);
}

static int drop_missing_child(void *ctx)
{
    (void)ctx;
    char *error = NULL;
    int r = mg_privileges_drop("mg-no-such-user", NULL, &error);
    printf("r=%d error=%s euid=%u\n", r, error != NULL ? error : "", (unsigned)geteuid());
    free(error);
    error = NULL;
    r = mg_privileges_drop(nobody_user, "mg-no-such-group", &error);
    printf("r=%d error=%s euid=%u\n", r, error != NULL ? error : "", (unsigned)geteuid());
    free(error);
    return 0;
}

static void test_privileges_drop_unknown(void **state)
{
    (void)state;
    if (!can_drop())
        skip();
    /* In a child too: a drop that half-worked must not hit the runner. */
    char *out = NULL;
    int status = testutil_fork_run(drop_missing_child, NULL, 60, &out);
    assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    /* Refused before anything changed: still root. */
    assert_non_null(strstr(out, "r=-1 error=unknown user mg-no-such-user euid=0\n"));
    assert_non_null(strstr(out, "r=-1 error=unknown group mg-no-such-group euid=0\n"));
    free(out);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_privileges_lookup),
        cmocka_unit_test(test_privileges_lookup_missing),
        cmocka_unit_test(test_privileges_drop_nobody_user),
        cmocka_unit_test(test_privileges_drop_to_nobody),
        cmocka_unit_test(test_privileges_drop_twice),
        cmocka_unit_test(test_privileges_drop_unknown),
    };
    return cmocka_run_group_tests(tests, group_setup, NULL);
}
