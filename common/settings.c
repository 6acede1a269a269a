#include "common/settings.h"

#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/alloc.h"
#include "common/config.h"

enum setting_type {
    T_STRING,
    T_PATH,     /* absolute path, or empty */
    T_UINT,     /* decimal, within [min, max] */
    T_SIZE,     /* bytes: 10K, 50M, 1G (powers of 1024) */
    T_DURATION, /* 500ms, 30s, 5m, 2h, 5d; bare numbers are seconds */
    T_MODE,     /* octal file mode */
    T_LISTEN,   /* host:port, ... */
    T_LOGLEVEL,
    T_CHOICE,   /* one of the words in choices ("a|b|c") */
};

struct setting_def {
    const char *section;
    const char *key;
    enum setting_type type;
    size_t offset;
    const char *default_value;
    uint64_t min, max;
    const char *choices;
};

#define S(sec, field) offsetof(struct mg_settings, sec.field)
#define G(field) offsetof(struct mg_settings, field)
#define NOLIMIT 0, UINT64_MAX, NULL

/* The schema. docs/configuration.md explains every line of it. */
static const struct setting_def settings_schema[] = {
    { "", "hostname", T_STRING, G(hostname), "", NOLIMIT },
    { "", "log_level", T_LOGLEVEL, G(log_level), "info", NOLIMIT },

    { "tls", "cert_file", T_PATH, S(tls, cert_file), "", NOLIMIT },
    { "tls", "key_file", T_PATH, S(tls, key_file), "", NOLIMIT },
    { "tls", "alt_cert_file", T_PATH, S(tls, alt_cert_file), "", NOLIMIT },
    { "tls", "alt_key_file", T_PATH, S(tls, alt_key_file), "", NOLIMIT },
    { "tls", "ciphers", T_STRING, S(tls, ciphers),
      "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:"
      "ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384:"
      "ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305", NOLIMIT },
    { "tls", "min_version", T_STRING, S(tls, min_version), "TLSv1.2", NOLIMIT },
    { "tls", "handshake_timeout", T_DURATION, S(tls, handshake_timeout_ms), "30s", 100, 3600000, NULL },

    { "userdb", "path", T_PATH, S(userdb, path), "/var/lib/mailgenic/userdb", NOLIMIT },
    { "userdb", "recipient_delimiter", T_STRING, S(userdb, recipient_delimiter), "+", NOLIMIT },

    { "auth", "socket", T_PATH, S(auth, socket), "/run/mailgenic/mda/auth.sock", NOLIMIT },
    { "auth", "listen", T_LISTEN, S(auth, listen), "", NOLIMIT },
    { "auth", "socket_mode", T_MODE, S(auth, socket_mode), "0660", 0, 0777, NULL },
    { "auth", "socket_group", T_STRING, S(auth, socket_group), "mgsmtp", NOLIMIT },
    { "auth", "user", T_STRING, S(auth, user), "mgauth", NOLIMIT },
    { "auth", "group", T_STRING, S(auth, group), "mgauth", NOLIMIT },
    { "auth", "workers", T_UINT, S(auth, workers), "2", 1, 64, NULL },
    { "auth", "cache_ttl", T_DURATION, S(auth, cache_ttl_ms), "5m", 0, 86400000, NULL },
    { "auth", "program", T_PATH, S(auth, program), "", NOLIMIT },

    { "mda", "user", T_STRING, S(mda, user), "mgimap", NOLIMIT },
    { "mda", "group", T_STRING, S(mda, group), "mgimap", NOLIMIT },
    { "mda", "mail_dir", T_PATH, S(mda, mail_dir), "/var/lib/mailgenic/mail", NOLIMIT },
    { "mda", "index_dir", T_PATH, S(mda, index_dir), "/var/lib/mailgenic/index", NOLIMIT },
    { "mda", "index_cache_size", T_SIZE, S(mda, index_cache_size), "256M", 16777216, 1099511627776ull, NULL },

    { "imap", "listen", T_LISTEN, S(imap, listen), "*:993", NOLIMIT },
    { "imap", "max_connections", T_UINT, S(imap, max_connections), "10000", 1, 1000000, NULL },
    { "imap", "max_connections_per_ip", T_UINT, S(imap, max_connections_per_ip), "50", 1, 1000000, NULL },
    { "imap", "login_timeout", T_DURATION, S(imap, login_timeout_ms), "60s", 1000, 3600000, NULL },
    /* RFC 3501 5.4: at least 30 minutes once authenticated. */
    { "imap", "idle_timeout", T_DURATION, S(imap, idle_timeout_ms), "30m", 1800000, 86400000, NULL },
    { "imap", "max_line_length", T_SIZE, S(imap, max_line_length), "64K", 1024, 16777216, NULL },
    { "imap", "append_limit", T_SIZE, S(imap, append_limit), "50M", 1024, 4294967295u, NULL },
    { "imap", "auth_failure_delay", T_DURATION, S(imap, auth_failure_delay_ms), "2s", 0, 60000, NULL },
    { "imap", "max_auth_failures", T_UINT, S(imap, max_auth_failures), "3", 1, 100, NULL },
    { "imap", "max_auth_failures_per_ip", T_UINT, S(imap, max_auth_failures_per_ip), "20", 1, 100000, NULL },

    { "lmtp", "socket", T_PATH, S(lmtp, socket), "/run/mailgenic/mda/lmtp.sock", NOLIMIT },
    { "lmtp", "socket_mode", T_MODE, S(lmtp, socket_mode), "0660", 0, 0777, NULL },
    { "lmtp", "socket_group", T_STRING, S(lmtp, socket_group), "mgsmtp", NOLIMIT },
    { "lmtp", "listen", T_LISTEN, S(lmtp, listen), "", NOLIMIT },
    /* a little above [smtp]'s: the MTA's Received field must not push a
     * message it accepted over the MDA's limit */
    { "lmtp", "max_message_size", T_SIZE, S(lmtp, max_message_size), "51M", 1024, 4294967295u, NULL },
    { "lmtp", "max_recipients", T_UINT, S(lmtp, max_recipients), "1000", 1, 100000, NULL },

    { "mta", "user", T_STRING, S(mta, user), "mgsmtp", NOLIMIT },
    { "mta", "group", T_STRING, S(mta, group), "mgsmtp", NOLIMIT },
    { "mta", "queue_dir", T_PATH, S(mta, queue_dir), "/var/spool/mailgenic", NOLIMIT },
    { "mta", "lmtp", T_STRING, S(mta, lmtp), "", NOLIMIT },
    { "mta", "auth", T_STRING, S(mta, auth), "", NOLIMIT },
    { "mta", "submit_socket", T_PATH, S(mta, submit_socket), "/run/mailgenic/mta/submit.sock", NOLIMIT },
    { "mta", "control_socket", T_PATH, S(mta, control_socket), "/run/mailgenic/mta/mgsmtpd.ctl", NOLIMIT },

    { "smtp", "listen", T_LISTEN, S(smtp, listen), "*:25", NOLIMIT },
    { "smtp", "max_message_size", T_SIZE, S(smtp, max_message_size), "50M", 1024, 4294967295u, NULL },
    { "smtp", "max_recipients", T_UINT, S(smtp, max_recipients), "1000", 1, 100000, NULL },
    { "smtp", "max_connections", T_UINT, S(smtp, max_connections), "1000", 1, 1000000, NULL },
    { "smtp", "max_connections_per_ip", T_UINT, S(smtp, max_connections_per_ip), "20", 1, 1000000, NULL },
    { "smtp", "max_errors", T_UINT, S(smtp, max_errors), "10", 1, 1000, NULL },
    /* RFC 5321 4.5.3.2.7: at least 5 minutes. */
    { "smtp", "timeout", T_DURATION, S(smtp, timeout_ms), "5m", 300000, 3600000, NULL },
    { "smtp", "bare_newline", T_CHOICE, S(smtp, bare_newline), "reject", 0, UINT64_MAX, "reject|normalize" },

    { "submission", "listen", T_LISTEN, S(submission, listen), "*:465", NOLIMIT },
    { "submission", "auth_failure_delay", T_DURATION, S(submission, auth_failure_delay_ms), "2s", 0, 60000, NULL },
    { "submission", "max_auth_failures", T_UINT, S(submission, max_auth_failures), "3", 1, 100, NULL },

    { "queue", "lifetime", T_DURATION, S(queue, lifetime_ms), "5d", 60000, 2592000000u, NULL },
    { "queue", "delay_warning", T_DURATION, S(queue, delay_warning_ms), "0", 0, 2592000000u, NULL },
    { "queue", "retry_min", T_DURATION, S(queue, retry_min_ms), "5m", 1000, 86400000, NULL },
    { "queue", "retry_max", T_DURATION, S(queue, retry_max_ms), "4h", 1000, 86400000, NULL },
    { "queue", "local_concurrency", T_UINT, S(queue, local_concurrency), "20", 1, 256, NULL },
    { "queue", "remote_concurrency", T_UINT, S(queue, remote_concurrency), "50", 1, 1000, NULL },
    { "queue", "destination_concurrency", T_UINT, S(queue, destination_concurrency), "4", 1, 100, NULL },

    { "relay", "relayhost", T_STRING, S(relay, relayhost), "", NOLIMIT },
    { "relay", "relayhost_security", T_CHOICE, S(relay, relayhost_security), "tls", 0, UINT64_MAX, "tls|starttls" },
    { "relay", "relayhost_user", T_STRING, S(relay, relayhost_user), "", NOLIMIT },
    { "relay", "relayhost_password_file", T_PATH, S(relay, relayhost_password_file), "", NOLIMIT },
    { "relay", "transport", T_STRING, S(relay, transport), "", NOLIMIT },
    { "relay", "tls_verify", T_CHOICE, S(relay, tls_verify), "none", 0, UINT64_MAX, "none|verify" },
    { "relay", "tls_ca_file", T_PATH, S(relay, tls_ca_file), "", NOLIMIT },
    { "relay", "resolver", T_STRING, S(relay, resolver), "", NOLIMIT },
    { "relay", "connect_timeout", T_DURATION, S(relay, connect_timeout_ms), "30s", 1000, 600000, NULL },

    { "cluster", "ca_file", T_PATH, S(cluster, ca_file), "", NOLIMIT },
    { "cluster", "cert_file", T_PATH, S(cluster, cert_file), "", NOLIMIT },
    { "cluster", "key_file", T_PATH, S(cluster, key_file), "", NOLIMIT },
    { "cluster", "ca_dir", T_PATH, S(cluster, ca_dir), "/etc/mailgenic/ca", NOLIMIT },
};

#define SCHEMA_COUNT (sizeof(settings_schema) / sizeof(settings_schema[0]))

static const char *const log_level_names[] = { "debug", "info", "notice", "warning", "error" };

/* The decimal number text starts with (no sign or blank, which strtoull
 * would take): 0 with the unit after it in *end_r, or -1. */
static int parse_leading_number(const char *text, unsigned long long *v_r, char **end_r)
{
    if (text[0] < '0' || text[0] > '9')
        return -1;
    errno = 0;
    *v_r = strtoull(text, end_r, 10);
    return errno != 0 ? -1 : 0;
}

int mg_settings_parse_size(const char *text, uint64_t *bytes_r)
{
    char *end;
    unsigned long long v;
    if (parse_leading_number(text, &v, &end) < 0)
        return -1;
    uint64_t mult = 1;
    if (*end != '\0') {
        switch (*end) {
        case 'k': case 'K': mult = 1024ull; break;
        case 'm': case 'M': mult = 1024ull * 1024; break;
        case 'g': case 'G': mult = 1024ull * 1024 * 1024; break;
        case 't': case 'T': mult = 1024ull * 1024 * 1024 * 1024; break;
        default: return -1;
        }
        end++;
        /* Accept "K", "KB", "KiB" alike. */
        if (*end == 'i')
            end++;
        if (*end == 'B' || *end == 'b')
            end++;
        if (*end != '\0')
            return -1;
    }
    if (v > UINT64_MAX / mult)
        return -1;
    *bytes_r = v * mult;
    return 0;
}

int mg_settings_parse_duration(const char *text, uint64_t *ms_r)
{
    char *end;
    unsigned long long v;
    if (parse_leading_number(text, &v, &end) < 0)
        return -1;
    uint64_t mult;
    if (strcmp(end, "") == 0 || strcmp(end, "s") == 0)
        mult = 1000;
    else if (strcmp(end, "ms") == 0)
        mult = 1;
    else if (strcmp(end, "m") == 0 || strcmp(end, "min") == 0)
        mult = 60000;
    else if (strcmp(end, "h") == 0)
        mult = 3600000;
    else if (strcmp(end, "d") == 0)
        mult = 86400000;
    else
        return -1;
    if (v > UINT64_MAX / mult)
        return -1;
    *ms_r = v * mult;
    return 0;
}

void mg_settings_listen_list_free(struct mg_listen_list *list)
{
    for (size_t i = 0; i < list->count; i++)
        free(list->addrs[i].host);
    free(list->addrs);
    list->addrs = NULL;
    list->count = 0;
}

static int listen_parse_one(const char *s, size_t len, struct mg_listen_addr *addr,
                            const char **error_r)
{
    char host[INET6_ADDRSTRLEN + 1];
    const char *colon;
    size_t hlen;
    const char *hstart = s;
    if (len > 0 && s[0] == '[') {
        const char *close = memchr(s, ']', len);
        if (close == NULL || close + 1 >= s + len || close[1] != ':') {
            *error_r = "IPv6 listen address must look like [::1]:993";
            return -1;
        }
        hstart = s + 1;
        hlen = (size_t)(close - hstart);
        colon = close + 1;
    } else {
        colon = memrchr(s, ':', len);
        if (colon == NULL) {
            *error_r = "listen address needs a port: host:port";
            return -1;
        }
        hlen = (size_t)(colon - s);
        if (memchr(s, ':', hlen) != NULL) {
            *error_r = "IPv6 listen addresses go in brackets: [::1]:993";
            return -1;
        }
    }
    if (hlen == 0 || hlen >= sizeof(host)) {
        *error_r = "invalid listen host";
        return -1;
    }
    memcpy(host, hstart, hlen);
    host[hlen] = '\0';
    unsigned char tmp[16];
    if (strcmp(host, "*") != 0 && inet_pton(AF_INET, host, tmp) != 1 &&
        inet_pton(AF_INET6, host, tmp) != 1) {
        *error_r = "listen host must be an IP address or '*'";
        return -1;
    }
    const char *port = colon + 1;
    size_t plen = (size_t)(s + len - port);
    unsigned long p = 0;
    if (plen == 0 || plen > 5) {
        *error_r = "invalid port";
        return -1;
    }
    for (size_t i = 0; i < plen; i++) {
        if (port[i] < '0' || port[i] > '9') {
            *error_r = "invalid port";
            return -1;
        }
        p = p * 10 + (unsigned long)(port[i] - '0');
    }
    if (p == 0 || p > 65535) {
        *error_r = "port out of range";
        return -1;
    }
    addr->host = mg_strdup(host);
    addr->port = (uint16_t)p;
    return 0;
}

int mg_settings_parse_listen(const char *text, struct mg_listen_list *list_r,
                             const char **error_r)
{
    struct mg_listen_list list = { NULL, 0 };
    const char *p = text;
    while (*p != '\0') {
        while (*p == ' ' || *p == '\t' || *p == ',')
            p++;
        if (*p == '\0')
            break;
        const char *end = p;
        while (*end != '\0' && *end != ',' && *end != ' ' && *end != '\t')
            end++;
        if (list.count >= 64) {
            *error_r = "too many listen addresses";
            mg_settings_listen_list_free(&list);
            return -1;
        }
        list.addrs = mg_reallocarray(list.addrs, list.count + 1, sizeof(*list.addrs));
        if (listen_parse_one(p, (size_t)(end - p), &list.addrs[list.count], error_r) < 0) {
            mg_settings_listen_list_free(&list);
            return -1;
        }
        list.count++;
        p = end;
    }
    *list_r = list;
    return 0;
}

static void *field(struct mg_settings *set, const struct setting_def *def)
{
    return (char *)set + def->offset;
}

static const void *cfield(const struct mg_settings *set, const struct setting_def *def)
{
    return (const char *)set + def->offset;
}

static void setting_free_value(struct mg_settings *set, const struct setting_def *def)
{
    void *f = field(set, def);
    switch (def->type) {
    case T_STRING:
    case T_PATH:
    case T_CHOICE:
        mg_free((char **)f);
        break;
    case T_LISTEN:
        mg_settings_listen_list_free(f);
        break;
    default:
        break;
    }
}

/* Parses value into the field; on error *error_r is a static reason. */
static int setting_apply(struct mg_settings *set, const struct setting_def *def,
                         const char *value, const char **error_r)
{
    void *f = field(set, def);
    uint64_t v = 0;
    switch (def->type) {
    case T_STRING:
        setting_free_value(set, def);
        *(char **)f = mg_strdup(value);
        return 0;
    case T_CHOICE: {
        size_t vl = strlen(value);
        const char *c = def->choices;
        while (c != NULL && *c != '\0') {
            const char *bar = strchr(c, '|');
            size_t cl = bar != NULL ? (size_t)(bar - c) : strlen(c);
            if (cl == vl && strncmp(c, value, vl) == 0) {
                setting_free_value(set, def);
                *(char **)f = mg_strdup(value);
                return 0;
            }
            c = bar != NULL ? bar + 1 : NULL;
        }
        static __thread char why[160];
        snprintf(why, sizeof(why), "must be one of: %s", def->choices);
        for (char *p = why; *p != '\0'; p++) {
            if (*p == '|')
                *p = ',';
        }
        *error_r = why;
        return -1;
    }
    case T_PATH:
        if (value[0] != '\0' && value[0] != '/') {
            *error_r = "must be an absolute path";
            return -1;
        }
        setting_free_value(set, def);
        *(char **)f = mg_strdup(value);
        return 0;
    case T_UINT: {
        char *end;
        if (value[0] < '0' || value[0] > '9') {
            *error_r = "must be a whole number";
            return -1;
        }
        errno = 0;
        unsigned long long u = strtoull(value, &end, 10);
        if (errno != 0 || *end != '\0') {
            *error_r = "must be a whole number";
            return -1;
        }
        v = u;
        break;
    }
    case T_SIZE:
        if (mg_settings_parse_size(value, &v) < 0) {
            *error_r = "must be a size such as 512K, 50M or 1G";
            return -1;
        }
        break;
    case T_DURATION:
        if (mg_settings_parse_duration(value, &v) < 0) {
            *error_r = "must be a duration such as 500ms, 30s, 5m, 2h or 5d";
            return -1;
        }
        break;
    case T_MODE: {
        char *end;
        errno = 0;
        unsigned long m = strtoul(value, &end, 8);
        if (value[0] == '\0' || errno != 0 || *end != '\0' || m > def->max) {
            *error_r = "must be an octal mode such as 0660";
            return -1;
        }
        *(mode_t *)f = (mode_t)m;
        return 0;
    }
    case T_LISTEN: {
        struct mg_listen_list list;
        if (mg_settings_parse_listen(value, &list, error_r) < 0)
            return -1;
        setting_free_value(set, def);
        *(struct mg_listen_list *)f = list;
        return 0;
    }
    case T_LOGLEVEL: {
        enum mg_log_level level;
        if (mg_log_level_parse(value, &level) < 0) {
            *error_r = "must be debug, info, notice, warning or error";
            return -1;
        }
        *(enum mg_log_level *)f = level;
        return 0;
    }
    }
    if (v < def->min || v > def->max) {
        *error_r = "value out of range";
        return -1;
    }
    *(uint64_t *)f = v;
    return 0;
}

static const struct setting_def *schema_find(const char *section, const char *key)
{
    for (size_t i = 0; i < SCHEMA_COUNT; i++) {
        if (strcmp(settings_schema[i].section, section) == 0 &&
            strcmp(settings_schema[i].key, key) == 0)
            return &settings_schema[i];
    }
    return NULL;
}

static bool schema_has_section(const char *section)
{
    for (size_t i = 0; i < SCHEMA_COUNT; i++) {
        if (strcmp(settings_schema[i].section, section) == 0)
            return true;
    }
    return false;
}

struct mg_settings *mg_settings_new_defaults(void)
{
    struct mg_settings *set = mg_calloc(1, sizeof(*set));
    for (size_t i = 0; i < SCHEMA_COUNT; i++) {
        const char *error;
        if (setting_apply(set, &settings_schema[i], settings_schema[i].default_value, &error) < 0)
            mg_panic("default of %s.%s invalid: %s", settings_schema[i].section,
                     settings_schema[i].key, error);
    }
    set->source_file = mg_strdup("(defaults)");
    return set;
}

void mg_settings_free(struct mg_settings **settings)
{
    struct mg_settings *set = *settings;
    if (set == NULL)
        return;
    for (size_t i = 0; i < SCHEMA_COUNT; i++)
        setting_free_value(set, &settings_schema[i]);
    free(set->source_file);
    free(set);
    *settings = NULL;
}

static int settings_entry_cb(const struct mg_config_entry *entry, void *ctx,
                             const char **error_r)
{
    struct mg_settings *set = ctx;
    static __thread char reason[256];
    const struct setting_def *def = schema_find(entry->section, entry->key);
    if (def == NULL) {
        if (entry->section[0] != '\0' && !schema_has_section(entry->section))
            snprintf(reason, sizeof(reason), "unknown section [%.64s]", entry->section);
        else
            snprintf(reason, sizeof(reason), "unknown key '%.64s'%s%.64s%s", entry->key,
                     entry->section[0] ? " in [" : "", entry->section,
                     entry->section[0] ? "]" : "");
        *error_r = reason;
        return -1;
    }
    const char *why = "invalid value";
    if (setting_apply(set, def, entry->value, &why) < 0) {
        snprintf(reason, sizeof(reason), "%.64s: %s", entry->key, why);
        *error_r = reason;
        return -1;
    }
    return 0;
}

bool mg_settings_has_tcp_links(const struct mg_settings *settings)
{
    const char *mta_lmtp = settings->mta.lmtp, *mta_auth = settings->mta.auth;
    return settings->lmtp.listen.count > 0 || settings->auth.listen.count > 0 ||
           (mta_lmtp[0] != '\0' && mta_lmtp[0] != '/') ||
           (mta_auth[0] != '\0' && mta_auth[0] != '/');
}

/* Checks between keys, after the whole file is read. A link over TCP
 * without mutual TLS would hand password checks and mail to anyone who
 * can reach the port: not a configuration we run. */
static int settings_check(const struct mg_settings *set, char **error_r)
{
    if (!mg_settings_has_tcp_links(set))
        return 0;
    if (set->cluster.ca_file[0] == '\0' || set->cluster.cert_file[0] == '\0' ||
        set->cluster.key_file[0] == '\0') {
        *error_r = mg_asprintf("%s: LMTP or the auth service over TCP needs [cluster] ca_file, "
                               "cert_file and key_file (mutual TLS, docs/scale-out.md)",
                               set->source_file);
        return -1;
    }
    return 0;
}

static void settings_finish(struct mg_settings *set)
{
    if (set->hostname[0] == '\0') {
        char host[256];
        if (gethostname(host, sizeof(host) - 1) == 0) {
            host[sizeof(host) - 1] = '\0';
            free(set->hostname);
            set->hostname = mg_strdup(host);
        }
    }
}

/* After parsing (parse_result from it): names the source, derives
 * what follows from the values and checks them; hands set over in
 * *settings_r or frees it. */
static int settings_complete(struct mg_settings *set, int parse_result, const char *source,
                             struct mg_settings **settings_r, char **error_r)
{
    if (parse_result < 0) {
        mg_settings_free(&set);
        return -1;
    }
    free(set->source_file);
    set->source_file = mg_strdup(source);
    settings_finish(set);
    if (settings_check(set, error_r) < 0) {
        mg_settings_free(&set);
        return -1;
    }
    *settings_r = set;
    return 0;
}

int mg_settings_load_string(const char *text, size_t len, const char *name,
                            struct mg_settings **settings_r, char **error_r)
{
    struct mg_settings *set = mg_settings_new_defaults();
    int r = mg_config_parse(text, len, name, settings_entry_cb, set, error_r);
    return settings_complete(set, r, name, settings_r, error_r);
}

static int is_dropin(const struct dirent *de)
{
    size_t len = strlen(de->d_name);
    return de->d_name[0] != '.' && len > 5 && strcmp(de->d_name + len - 5, ".conf") == 0;
}

/* <path>.d/<name>.conf in name order, each over what came before: what
 * provisioning (or a package) sets without editing the main file. A
 * missing directory is fine. */
static int settings_load_dropins(struct mg_settings *set, const char *path, char **error_r)
{
    char *dir = mg_asprintf("%s.d", path);
    struct dirent **entries = NULL;
    int n = scandir(dir, &entries, is_dropin, alphasort);
    int ret = 0;
    if (n < 0) {
        if (errno != ENOENT && errno != ENOTDIR) {
            *error_r = mg_asprintf("%s: %s", dir, strerror(errno));
            ret = -1;
        }
        free(dir);
        return ret;
    }
    for (int i = 0; i < n; i++) {
        if (ret == 0) {
            char *file = mg_asprintf("%s/%s", dir, entries[i]->d_name);
            ret = mg_config_parse_file(file, settings_entry_cb, set, error_r);
            free(file);
        }
        free(entries[i]);
    }
    free(entries);
    free(dir);
    return ret < 0 ? -1 : 0;
}

int mg_settings_load(const char *path, struct mg_settings **settings_r, char **error_r)
{
    struct mg_settings *set = mg_settings_new_defaults();
    int r = mg_config_parse_file(path, settings_entry_cb, set, error_r);
    if (r >= 0)
        r = settings_load_dropins(set, path, error_r);
    return settings_complete(set, r, path, settings_r, error_r);
}

static void format_value(const struct mg_settings *set, const struct setting_def *def,
                         FILE *out)
{
    const void *f = cfield(set, def);
    switch (def->type) {
    case T_STRING:
    case T_PATH:
    case T_CHOICE: {
        const char *s = *(char *const *)f;
        bool quote = s[0] == '\0' || s[0] == ' ' || strchr(s, '#') != NULL ||
                     strchr(s, '"') != NULL || s[strlen(s) - 1] == ' ';
        if (!quote) {
            fputs(s, out);
            break;
        }
        fputc('"', out);
        for (; *s != '\0'; s++) {
            if (*s == '"' || *s == '\\')
                fputc('\\', out);
            fputc(*s, out);
        }
        fputc('"', out);
        break;
    }
    case T_UINT:
        fprintf(out, "%llu", (unsigned long long)*(const uint64_t *)f);
        break;
    case T_SIZE: {
        uint64_t v = *(const uint64_t *)f;
        static const char units[] = "KMGT";
        int u = -1;
        while (v >= 1024 && v % 1024 == 0 && u < 3) {
            v /= 1024;
            u++;
        }
        fprintf(out, "%llu", (unsigned long long)v);
        if (u >= 0)
            fputc(units[u], out);
        break;
    }
    case T_DURATION: {
        uint64_t ms = *(const uint64_t *)f;
        if (ms == 0)
            fputs("0s", out);
        else if (ms % 86400000 == 0)
            fprintf(out, "%llud", (unsigned long long)(ms / 86400000));
        else if (ms % 3600000 == 0)
            fprintf(out, "%lluh", (unsigned long long)(ms / 3600000));
        else if (ms % 60000 == 0)
            fprintf(out, "%llum", (unsigned long long)(ms / 60000));
        else if (ms % 1000 == 0)
            fprintf(out, "%llus", (unsigned long long)(ms / 1000));
        else
            fprintf(out, "%llums", (unsigned long long)ms);
        break;
    }
    case T_MODE:
        fprintf(out, "%04o", (unsigned)*(const mode_t *)f);
        break;
    case T_LISTEN: {
        const struct mg_listen_list *l = f;
        for (size_t i = 0; i < l->count; i++) {
            bool v6 = strchr(l->addrs[i].host, ':') != NULL;
            fprintf(out, "%s%s%s%s:%u", i ? ", " : "", v6 ? "[" : "", l->addrs[i].host,
                    v6 ? "]" : "", l->addrs[i].port);
        }
        break;
    }
    case T_LOGLEVEL:
        fputs(log_level_names[*(const enum mg_log_level *)f], out);
        break;
    }
}

void mg_settings_dump(const struct mg_settings *settings, FILE *out)
{
    const char *section = NULL;
    fprintf(out, "# effective configuration of %s\n", settings->source_file);
    for (size_t i = 0; i < SCHEMA_COUNT; i++) {
        const struct setting_def *def = &settings_schema[i];
        if (section == NULL || strcmp(section, def->section) != 0) {
            section = def->section;
            if (section[0] != '\0')
                fprintf(out, "\n[%s]\n", section);
        }
        fprintf(out, "%s = ", def->key);
        format_value(settings, def, out);
        fputc('\n', out);
    }
}

void mg_settings_dump_schema(FILE *out)
{
    static const char *const type_names[] = {
        [T_STRING] = "string", [T_PATH] = "path", [T_UINT] = "number",
        [T_SIZE] = "size", [T_DURATION] = "duration", [T_MODE] = "mode",
        [T_LISTEN] = "listen", [T_LOGLEVEL] = "log-level", [T_CHOICE] = "choice",
    };
    for (size_t i = 0; i < SCHEMA_COUNT; i++) {
        const struct setting_def *def = &settings_schema[i];
        fprintf(out, "%s%s%s %s \"%s\"\n", def->section, def->section[0] ? "." : "",
                def->key, type_names[def->type], def->default_value);
    }
}

int mg_settings_require(const struct mg_settings *settings, const char *const *names,
                        char **error_r)
{
    for (size_t n = 0; names[n] != NULL; n++) {
        const char *dot = strchr(names[n], '.');
        char section[64] = "";
        const char *key = names[n];
        if (dot != NULL) {
            size_t slen = (size_t)(dot - names[n]);
            if (slen >= sizeof(section))
                mg_panic("bad setting name %s", names[n]);
            memcpy(section, names[n], slen);
            section[slen] = '\0';
            key = dot + 1;
        }
        const struct setting_def *def = schema_find(section, key);
        if (def == NULL)
            mg_panic("mg_settings_require: unknown setting %s", names[n]);
        const void *f = cfield(settings, def);
        bool empty = false;
        if (def->type == T_STRING || def->type == T_PATH || def->type == T_CHOICE)
            empty = (*(char *const *)f)[0] == '\0';
        else if (def->type == T_LISTEN)
            empty = ((const struct mg_listen_list *)f)->count == 0;
        if (empty) {
            *error_r = mg_asprintf("%s: %s%s%s%s must be set", settings->source_file,
                                   section[0] ? "[" : "", section, section[0] ? "] " : "", key);
            return -1;
        }
    }
    return 0;
}
