/* A stop-gap reader for the two keys mgadm needs from mailgenic.conf.
 *
 * TEMPORARY: mgadm_config_load() is to be replaced by the shared settings
 * module (common/settings.h) once that is available; nothing else in mgadm
 * reads the configuration, so the swap touches this file only. It accepts
 * the shared syntax (docs/configuration.md): "# comment" lines, "[section]"
 * lines, "key = value" lines with the value trimmed, a " #" comment after
 * an unquoted value, and double-quoted values with \" and \\ escapes. */
#include "mda/mgadm/mgadm.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/alloc.h"

#define CONFIG_LINE_MAX 4096

static bool is_blank(char c)
{
    return c == ' ' || c == '\t';
}

static char *trim(char *s)
{
    while (is_blank(*s))
        s++;
    size_t len = strlen(s);
    while (len > 0 && is_blank(s[len - 1]))
        s[--len] = '\0';
    return s;
}

/* Unquotes or strips the comment off a value in place; NULL if malformed. */
static char *config_value(char *v)
{
    if (v[0] != '"') {
        for (char *p = v; *p != '\0'; p++) {
            if (*p == '#' && (p == v || is_blank(p[-1]))) {
                *p = '\0';
                break;
            }
        }
        return trim(v);
    }
    char *out = v, *p = v + 1;
    for (; *p != '"'; p++) {
        if (*p == '\0')
            return NULL;
        if (*p == '\\') {
            if (p[1] != '"' && p[1] != '\\')
                return NULL;
            p++;
        }
        *out++ = *p;
    }
    char *rest = trim(p + 1);
    if (rest[0] != '\0' && rest[0] != '#')
        return NULL;
    *out = '\0';
    return v;
}

static void config_set(char **slot, const char *value)
{
    free(*slot);
    *slot = mg_strdup(value);
}

int mgadm_config_load(const char *path, bool is_required, struct mgadm_config *config_r,
                      char **error_r)
{
    memset(config_r, 0, sizeof(*config_r));
    FILE *f = fopen(path, "re");
    if (f == NULL && (is_required || errno != ENOENT)) {
        *error_r = mg_asprintf("%s: cannot open: %s", path, strerror(errno));
        return -1;
    }
    char line[CONFIG_LINE_MAX + 2];
    char section[CONFIG_LINE_MAX] = "";
    unsigned lineno = 0;
    const char *bad = NULL;
    while (f != NULL && bad == NULL && fgets(line, sizeof(line), f) != NULL) {
        lineno++;
        size_t len = strlen(line);
        if (len > 0 && line[len - 1] == '\n')
            line[--len] = '\0';
        else if (!feof(f)) {
            bad = "line too long";
            break;
        }
        if (len > 0 && line[len - 1] == '\r')
            line[--len] = '\0';
        char *s = trim(line);
        if (s[0] == '\0' || s[0] == '#')
            continue;
        if (s[0] == '[') {
            char *end = strchr(s, ']');
            if (end == NULL || trim(end + 1)[0] != '\0') {
                bad = "malformed section line";
                break;
            }
            *end = '\0';
            snprintf(section, sizeof(section), "%s", trim(s + 1));
            continue;
        }
        char *eq = strchr(s, '=');
        if (eq == NULL) {
            bad = "expected key = value";
            break;
        }
        *eq = '\0';
        char *key = trim(s);
        char *value = config_value(trim(eq + 1));
        if (key[0] == '\0' || value == NULL) {
            bad = key[0] == '\0' ? "missing key" : "malformed value";
            break;
        }
        if (strcmp(section, "userdb") != 0)
            continue;
        if (strcmp(key, "path") == 0) {
            if (value[0] == '\0') {
                bad = "[userdb] path is empty";
                break;
            }
            config_set(&config_r->userdb_path, value);
        } else if (strcmp(key, "recipient_delimiter") == 0) {
            config_set(&config_r->recipient_delimiter, value);
        }
    }
    if (f != NULL && bad == NULL && ferror(f))
        bad = "read error";
    if (f != NULL)
        fclose(f);
    if (bad != NULL) {
        *error_r = mg_asprintf("%s:%u: %s", path, lineno, bad);
        mgadm_config_clear(config_r);
        return -1;
    }
    if (config_r->userdb_path == NULL)
        config_r->userdb_path = mg_strdup(MGADM_DEFAULT_USERDB);
    if (config_r->recipient_delimiter == NULL)
        config_r->recipient_delimiter = mg_strdup("+");
    return 0;
}

void mgadm_config_clear(struct mgadm_config *config)
{
    free(config->userdb_path);
    free(config->recipient_delimiter);
    memset(config, 0, sizeof(*config));
}
