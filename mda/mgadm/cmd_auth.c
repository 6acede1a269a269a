/* mgadm auth test: checks a password the way the auth service does. */
#include "mda/mgadm/mgadm.h"

#include <stdio.h>
#include <unistd.h>

#include "common/password.h"
#include "common/userdb.h"

static int auth_test_prepare(struct mgadm *ctx)
{
    const char *error;
    int ret = isatty(STDIN_FILENO) ? mgadm_password_read_tty("Password: ", false, ctx->password,
                                                             sizeof(ctx->password), &error)
                                   : mgadm_password_read_stdin(ctx->password,
                                                               sizeof(ctx->password), &error);
    return ret < 0 ? mgadm_fail("%s", error) : MGADM_EXIT_OK;
}

static int auth_test_run(struct mgadm *ctx)
{
    struct mg_user user;
    const char *error;
    int ret = mg_userdb_user_get(ctx->db, ctx->args[0], &user, &error);
    bool is_ok = ret == 0 && user.is_enabled &&
                 mg_password_verify(ctx->password, user.password_hash);
    mg_password_wipe(ctx->password, sizeof(ctx->password));
    mg_user_clear(&user);
    /* An unknown user fails like a wrong password; a malformed address or
     * a storage failure is an error of its own. */
    if (ret < 0 && ret != MG_USERDB_NOT_FOUND)
        return mgadm_fail("%s", error);
    printf("auth: %s\n", is_ok ? "ok" : "failed");
    return is_ok ? MGADM_EXIT_OK : MGADM_EXIT_FAIL;
}

const struct mgadm_cmd mgadm_auth_cmds[] = {
    { "auth", "test", "EMAIL", "check a password (read from standard input)",
      "Reads the password from the first line of standard input (from the\n"
      "terminal with echo off when standard input is one). Prints \"auth: ok\"\n"
      "and exits 0 when it is right; prints \"auth: failed\" and exits 1 when it\n"
      "is wrong, the user is unknown or the user is disabled.\n",
      1, 1, 0, MGADM_ACCESS_OPEN, NULL, auth_test_prepare, auth_test_run },
    { 0 },
};
