/* libFuzzer harness: the configuration file parser and the settings that
 * interpret it (every value type), and the dump of what was loaded. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include "common/settings.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct mg_settings *set = NULL;
    char *error = NULL;
    if (mg_settings_load_string((const char *)data, size, "fuzz", &set, &error) == 0) {
        FILE *devnull = fopen("/dev/null", "w");
        if (devnull != NULL) {
            mg_settings_dump(set, devnull);
            fclose(devnull);
        }
        mg_settings_free(&set);
    } else {
        free(error);
    }
    return 0;
}
