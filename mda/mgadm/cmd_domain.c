/* mgadm domain add|del|list */
#include "mda/mgadm/mgadm.h"

#include <stdio.h>

#include "common/userdb.h"

static int domain_add_run(struct mgadm *ctx)
{
    const char *error;
    if (mg_userdb_domain_add(ctx->db, ctx->args[0], &error) < 0)
        return mgadm_fail("%s", error);
    return MGADM_EXIT_OK;
}

static int domain_del_run(struct mgadm *ctx)
{
    const char *error;
    if (mg_userdb_domain_del(ctx->db, ctx->args[0], &error) < 0)
        return mgadm_fail("%s", error);
    return MGADM_EXIT_OK;
}

static int domain_list_print(const char *domain, void *ctx)
{
    (void)ctx;
    printf("%s\n", domain);
    return 0;
}

static int domain_list_run(struct mgadm *ctx)
{
    if (mg_userdb_domain_list(ctx->db, domain_list_print, NULL) < 0)
        return mgadm_fail("%s", mg_userdb_last_error());
    return MGADM_EXIT_OK;
}

const struct mgadm_cmd mgadm_domain_cmds[] = {
    { "domain", "add", "DOMAIN", "add a local domain",
      "The name is stored lower-cased. The first domain add creates the user\n"
      "directory if it does not exist yet.\n",
      1, 1, 0, MGADM_ACCESS_CREATE, NULL, NULL, domain_add_run },
    { "domain", "del", "DOMAIN", "delete a domain that has no users or aliases left",
      NULL, 1, 1, 0, MGADM_ACCESS_OPEN, NULL, NULL, domain_del_run },
    { "domain", "list", "", "print the local domains, one per line",
      NULL, 0, 0, 0, MGADM_ACCESS_OPEN, NULL, NULL, domain_list_run },
    { 0 },
};
