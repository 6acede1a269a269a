/* mgadm alias add|del|list */
#include "mda/mgadm/mgadm.h"

#include <stdio.h>

#include "common/userdb.h"

static int alias_add_run(struct mgadm *ctx)
{
    const char *error;
    if (mg_userdb_alias_add(ctx->db, ctx->args[0], (const char *const *)ctx->args + 1,
                            (size_t)ctx->n_args - 1, &error) < 0)
        return mgadm_fail("%s", error);
    return MGADM_EXIT_OK;
}

static int alias_del_run(struct mgadm *ctx)
{
    const char *error;
    if (mg_userdb_alias_del(ctx->db, ctx->args[0], &error) < 0)
        return mgadm_fail("%s", error);
    return MGADM_EXIT_OK;
}

static int alias_list_print(const char *address, const char *const *targets, size_t n_targets,
                            void *ctx)
{
    (void)ctx;
    printf("%s\t", address);
    for (size_t i = 0; i < n_targets; i++)
        printf("%s%s", i > 0 ? " " : "", targets[i]);
    printf("\n");
    return 0;
}

static int alias_list_run(struct mgadm *ctx)
{
    const char *domain = ctx->n_args > 0 ? ctx->args[0] : NULL;
    if (mg_userdb_alias_list(ctx->db, domain, alias_list_print, NULL) < 0)
        return mgadm_fail("%s", mg_userdb_last_error());
    return MGADM_EXIT_OK;
}

const struct mgadm_cmd mgadm_alias_cmds[] = {
    { "alias", "add", "ADDRESS TARGET...", "forward ADDRESS to one or more addresses",
      "ADDRESS is local@domain, or @domain for the domain's catch-all (mail to any\n"
      "address of the domain that is neither a user nor another alias). Its\n"
      "domain must be local. Targets are local users, other aliases or remote\n"
      "addresses. To change an alias, delete it and add it again.\n",
      2, -1, 0, MGADM_ACCESS_OPEN, NULL, NULL, alias_add_run },
    { "alias", "del", "ADDRESS", "delete an alias (or @domain, the catch-all)",
      NULL, 1, 1, 0, MGADM_ACCESS_OPEN, NULL, NULL, alias_del_run },
    { "alias", "list", "[DOMAIN]", "print aliases: address, tab, targets",
      "One line per alias: the address, a tab, and the targets separated by spaces.\n",
      0, 1, 0, MGADM_ACCESS_OPEN, NULL, NULL, alias_list_run },
    { 0 },
};
