/* mgadm config check | dump | keys: the configuration file itself. */
#include "mda/mgadm/mgadm.h"

#include <stdio.h>

#include "common/settings.h"

static int config_check(struct mgadm *ctx)
{
    printf("%s: valid\n", ctx->config.settings->source_file);
    return MGADM_EXIT_OK;
}

static int config_dump(struct mgadm *ctx)
{
    mg_settings_dump(ctx->config.settings, stdout);
    return MGADM_EXIT_OK;
}

static int config_keys(struct mgadm *ctx)
{
    (void)ctx;
    mg_settings_dump_schema(stdout);
    return MGADM_EXIT_OK;
}

const struct mgadm_cmd mgadm_config_cmds[] = {
    { "config", "check", "", "check the configuration file (exit 1 with file:line on errors)",
      NULL, 0, 0, 0, MGADM_ACCESS_NONE, NULL, NULL, config_check },
    { "config", "dump", "", "print every key with its effective value",
      NULL, 0, 0, 0, MGADM_ACCESS_NONE, NULL, NULL, config_dump },
    { "config", "keys", "", "print every key with its type and default",
      NULL, 0, 0, 0, MGADM_ACCESS_NONE, NULL, NULL, config_keys },
    { 0 },
};
