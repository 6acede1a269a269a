/* mgadm user add|del|list|passwd|enable|disable|quota */
#include "mda/mgadm/mgadm.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/password.h"
#include "common/userdb.h"

/* Refuses early, before asking for a password, what the directory would
 * refuse anyway (the add itself checks again, in its transaction). */
static int user_add_precheck(struct mgadm *ctx, const char *address)
{
    struct mg_user user;
    const char *error;
    int ret = mg_userdb_user_get(ctx->db, address, &user, &error);
    if (ret == 0) {
        ret = mgadm_fail("user exists: %s", user.address);
        mg_user_clear(&user);
        return ret;
    }
    if (ret != MG_USERDB_NOT_FOUND)
        return mgadm_fail("%s", error);
    const char *at = strrchr(address, '@');
    if (at != NULL && mg_userdb_domain_exists(ctx->db, at + 1) == 0)
        return mgadm_fail("unknown domain: %s", at + 1);
    return MGADM_EXIT_OK;
}

static int user_passwd_precheck(struct mgadm *ctx, const char *address)
{
    struct mg_user user;
    const char *error;
    if (mg_userdb_user_get(ctx->db, address, &user, &error) < 0)
        return mgadm_fail("%s", error);
    mg_user_clear(&user);
    return MGADM_EXIT_OK;
}

/* A look at the directory (opened and closed again), then the password,
 * read and hashed into ctx->password_hash; the plaintext is wiped. */
static int user_read_password(struct mgadm *ctx,
                              int (*precheck)(struct mgadm *ctx, const char *address))
{
    int ret = mgadm_open_directory(ctx);
    if (ret == MGADM_EXIT_OK)
        ret = precheck(ctx, ctx->args[0]);
    mg_userdb_close(&ctx->db);
    if (ret != MGADM_EXIT_OK)
        return ret;
    const char *error;
    if (mgadm_password_read(ctx, true, ctx->password, sizeof(ctx->password), &error) < 0 ||
        mg_password_hash(ctx->password, &ctx->password_hash, &error) < 0)
        ret = mgadm_fail("%s", error);
    mg_password_wipe(ctx->password, sizeof(ctx->password));
    return ret;
}

static int user_add_prepare(struct mgadm *ctx)
{
    return user_read_password(ctx, user_add_precheck);
}

static int user_add_run(struct mgadm *ctx)
{
    const char *error;
    if (mg_userdb_user_add(ctx->db, ctx->args[0], ctx->password_hash, ctx->quota_bytes,
                           &error) < 0)
        return mgadm_fail("%s", error);
    return MGADM_EXIT_OK;
}

static int user_del_run(struct mgadm *ctx)
{
    const char *error;
    if (mg_userdb_user_del(ctx->db, ctx->args[0], &error) < 0)
        return mgadm_fail("%s", error);
    return MGADM_EXIT_OK;
}

static int user_list_print(const struct mg_user *user, void *ctx)
{
    (void)ctx;
    char quota[32], created[32];
    mgadm_size_format(user->quota_bytes, quota, sizeof(quota));
    mgadm_time_format(user->created, created, sizeof(created));
    printf("%s\t%s\t%s\t%s\n", user->address, quota, user->is_enabled ? "enabled" : "disabled",
           created);
    return 0;
}

static int user_list_run(struct mgadm *ctx)
{
    const char *domain = ctx->n_args > 0 ? ctx->args[0] : NULL;
    if (mg_userdb_user_list(ctx->db, domain, user_list_print, NULL) < 0)
        return mgadm_fail("%s", mg_userdb_last_error());
    return MGADM_EXIT_OK;
}

static int user_passwd_prepare(struct mgadm *ctx)
{
    return user_read_password(ctx, user_passwd_precheck);
}

static int user_passwd_run(struct mgadm *ctx)
{
    const char *error;
    if (mg_userdb_user_set_password(ctx->db, ctx->args[0], ctx->password_hash, &error) < 0)
        return mgadm_fail("%s", error);
    return MGADM_EXIT_OK;
}

static int user_set_enabled(struct mgadm *ctx, bool is_enabled)
{
    const char *error;
    if (mg_userdb_user_set_enabled(ctx->db, ctx->args[0], is_enabled, &error) < 0)
        return mgadm_fail("%s", error);
    return MGADM_EXIT_OK;
}

static int user_enable_run(struct mgadm *ctx)
{
    return user_set_enabled(ctx, true);
}

static int user_disable_run(struct mgadm *ctx)
{
    return user_set_enabled(ctx, false);
}

static int user_quota_check(struct mgadm *ctx)
{
    if (mgadm_size_parse(ctx->args[1], &ctx->quota_bytes) < 0)
        return mgadm_usage_error(ctx->cmd, "bad SIZE '%s' (e.g. 500M, 2G, 0 for unlimited)",
                                 ctx->args[1]);
    return MGADM_EXIT_OK;
}

static int user_quota_run(struct mgadm *ctx)
{
    const char *error;
    if (mg_userdb_user_set_quota(ctx->db, ctx->args[0], ctx->quota_bytes, &error) < 0)
        return mgadm_fail("%s", error);
    return MGADM_EXIT_OK;
}

#define PASSWORD_HELP \
    "The password is read from the terminal with echo off (twice, the two must\n" \
    "match), or with --password-stdin as the first line of standard input\n" \
    "(a trailing CR LF or LF is removed; an empty password is refused).\n"

const struct mgadm_cmd mgadm_user_cmds[] = {
    { "user", "add", "EMAIL [--quota SIZE] [--password-stdin]", "add a user (mailbox)",
      PASSWORD_HELP
      "SIZE is a number of bytes with an optional K, M, G or T suffix (powers of\n"
      "1024); 0 or \"unlimited\" (the default) means no limit. The domain must exist.\n",
      1, 1, MGADM_OPT_QUOTA | MGADM_OPT_PASSWORD_STDIN, MGADM_ACCESS_OPEN, NULL,
      user_add_prepare, user_add_run },
    { "user", "del", "EMAIL", "delete a user (the mail on disk stays)",
      NULL, 1, 1, 0, MGADM_ACCESS_OPEN, NULL, NULL, user_del_run },
    { "user", "list", "[DOMAIN]", "print users: address, quota, state, creation time",
      "One line per user, fields separated by a tab: the address, the quota\n"
      "(\"unlimited\" or a size like 2G), \"enabled\" or \"disabled\", and the\n"
      "creation time in ISO 8601 UTC. Ordered by domain, then local part.\n",
      0, 1, 0, MGADM_ACCESS_OPEN, NULL, NULL, user_list_run },
    { "user", "passwd", "EMAIL [--password-stdin]", "set a user's password",
      PASSWORD_HELP, 1, 1, MGADM_OPT_PASSWORD_STDIN, MGADM_ACCESS_OPEN, NULL,
      user_passwd_prepare, user_passwd_run },
    { "user", "enable", "EMAIL", "allow the user's logins and mail again",
      NULL, 1, 1, 0, MGADM_ACCESS_OPEN, NULL, NULL, user_enable_run },
    { "user", "disable", "EMAIL", "refuse the user's logins and new mail (550 5.2.1)",
      NULL, 1, 1, 0, MGADM_ACCESS_OPEN, NULL, NULL, user_disable_run },
    { "user", "quota", "EMAIL SIZE", "set a user's quota (0: unlimited)",
      "SIZE is a number of bytes with an optional K, M, G or T suffix (powers of\n"
      "1024); 0 or \"unlimited\" means no limit.\n",
      2, 2, 0, MGADM_ACCESS_OPEN, user_quota_check, NULL, user_quota_run },
    { 0 },
};
