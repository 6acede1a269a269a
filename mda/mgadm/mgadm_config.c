/* mgadm's configuration: the shared settings module (common/settings.h),
 * so mgadm accepts exactly what the daemons accept. */
#include "mda/mgadm/mgadm.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "common/alloc.h"
#include "common/settings.h"

int mgadm_config_load(const char *path, bool is_required, struct mgadm_config *config_r,
                      char **error_r)
{
    memset(config_r, 0, sizeof(*config_r));
    struct stat st;
    if (!is_required && stat(path, &st) != 0 && errno == ENOENT) {
        config_r->settings = mg_settings_new_defaults();
    } else if (mg_settings_load(path, &config_r->settings, error_r) != 0) {
        return -1;
    }
    if (config_r->settings->userdb.path[0] == '\0') {
        *error_r = mg_asprintf("%s: [userdb] path must be set", path);
        mg_settings_free(&config_r->settings);
        return -1;
    }
    config_r->userdb_path = mg_strdup(config_r->settings->userdb.path);
    config_r->recipient_delimiter = mg_strdup(config_r->settings->userdb.recipient_delimiter);
    return 0;
}

void mgadm_config_clear(struct mgadm_config *config)
{
    mg_settings_free(&config->settings);
    free(config->userdb_path);
    free(config->recipient_delimiter);
    memset(config, 0, sizeof(*config));
}
