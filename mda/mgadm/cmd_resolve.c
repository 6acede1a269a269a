/* mgadm resolve: where mail to an address goes. */
#include "mda/mgadm/mgadm.h"

#include <stdio.h>

#include "common/userdb.h"

static int resolve_run(struct mgadm *ctx)
{
    struct mg_userdb_resolution res;
    const char *error;
    if (mg_userdb_resolve(ctx->db, ctx->args[0], ctx->config.recipient_delimiter, &res,
                          &error) < 0)
        return mgadm_fail("%s", error);
    for (size_t i = 0; i < res.n_targets; i++) {
        const struct mg_userdb_target *t = &res.targets[i];
        printf("%s%s\n", t->address,
               !t->is_local ? " (remote)" : !t->is_enabled ? " (disabled)" : "");
    }
    mg_userdb_resolution_clear(&res);
    return MGADM_EXIT_OK;
}

const struct mgadm_cmd mgadm_resolve_cmds[] = {
    { "resolve", NULL, "ADDRESS", "print where mail to ADDRESS is delivered",
      "Follows aliases, sub-addresses (user+tag, with [userdb] recipient_delimiter)\n"
      "and the catch-all as delivery does, and prints each final address on its\n"
      "own line: local mailboxes as they are, \"(disabled)\" after a disabled\n"
      "user, \"(remote)\" after an address in another domain. Exits 1 when the\n"
      "address leads nowhere or its domain is not local.\n",
      1, 1, 0, MGADM_ACCESS_OPEN, NULL, NULL, resolve_run },
    { 0 },
};
