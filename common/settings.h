/* Mailgenic's settings: every key of the configuration file, its type, its
 * default and its meaning, in one table (settings_schema.c) that all
 * programs share, so any of them can check any configuration file.
 * docs/configuration.md documents the same keys; a test keeps the two in
 * step.
 *
 * Loading fills defaults, then applies the file; unknown sections and keys,
 * malformed values and values out of range are errors naming file and line.
 * A daemon then asks for the keys it cannot work without
 * (mg_settings_require). */
#ifndef MG_COMMON_SETTINGS_H
#define MG_COMMON_SETTINGS_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/types.h>

#include "common/log.h"

#define MG_DEFAULT_CONFIG_FILE "/etc/mailgenic/mailgenic.conf"

/* One "host:port" (IPv6 as "[::1]:993"). */
struct mg_listen_addr {
    char *host; /* literal address, or "*" for every address */
    uint16_t port;
};

struct mg_listen_list {
    struct mg_listen_addr *addrs;
    size_t count;
};

struct mg_string_list {
    char **items;
    size_t count;
};

struct mg_settings_tls {
    char *cert_file;
    char *key_file;
    char *alt_cert_file;
    char *alt_key_file;
    char *ciphers;
    char *min_version;
    uint64_t handshake_timeout_ms;
};

struct mg_settings_userdb {
    char *path;
    char *recipient_delimiter;
};

struct mg_settings_auth {
    char *socket;
    struct mg_listen_list listen; /* TCP for MTAs on other hosts (mutual TLS) */
    mode_t socket_mode;
    char *socket_group;
    char *user;
    char *group;
    uint64_t workers;
    uint64_t cache_ttl_ms;
    char *program;
};

struct mg_settings_mda {
    char *user;
    char *group;
    char *mail_dir;
    char *index_dir;
    uint64_t index_cache_size;
};

struct mg_settings_imap {
    struct mg_listen_list listen;
    uint64_t max_connections;
    uint64_t max_connections_per_ip;
    uint64_t login_timeout_ms;
    uint64_t idle_timeout_ms;
    uint64_t max_line_length;
    uint64_t append_limit;
    uint64_t auth_failure_delay_ms;
    uint64_t max_auth_failures;
    uint64_t max_auth_failures_per_ip;
};

struct mg_settings_lmtp {
    char *socket;
    mode_t socket_mode;
    char *socket_group;
    struct mg_listen_list listen;
    uint64_t max_message_size;
    uint64_t max_recipients;
};

struct mg_settings_mta {
    char *user;
    char *group;
    char *queue_dir;
    char *lmtp;            /* socket path or host:port; "": [lmtp] socket */
    char *auth;            /* socket path or host:port; "": [auth] socket */
    char *submit_socket;   /* local injection (mgsendmail) */
    char *control_socket;  /* mgqueue */
};

struct mg_settings_smtp {
    struct mg_listen_list listen;
    uint64_t max_message_size;
    uint64_t max_recipients;
    uint64_t max_connections;
    uint64_t max_connections_per_ip;
    uint64_t max_errors;
    uint64_t timeout_ms;
    char *bare_newline;    /* reject | normalize */
};

struct mg_settings_submission {
    struct mg_listen_list listen;
    uint64_t auth_failure_delay_ms;
    uint64_t max_auth_failures;
};

struct mg_settings_queue {
    uint64_t lifetime_ms;
    uint64_t delay_warning_ms;
    uint64_t retry_min_ms;
    uint64_t retry_max_ms;
    uint64_t local_concurrency;
    uint64_t remote_concurrency;
    uint64_t destination_concurrency;
};

struct mg_settings_relay {
    char *relayhost;       /* host:port, "" for MX delivery */
    char *relayhost_security; /* tls | starttls */
    char *relayhost_user;
    char *relayhost_password_file;
    char *transport;       /* domain=host:port, ... */
    char *tls_verify;      /* none | verify */
    char *tls_ca_file;
    char *resolver;        /* ip:port of a DNS server, "" for the system's */
    uint64_t connect_timeout_ms;
};

/* The links between Mailgenic hosts (TCP LMTP and auth): mutual TLS
 * with certificates of a private CA (docs/scale-out.md). */
struct mg_settings_cluster {
    char *ca_file;   /* the CA certificate: the only trust anchor of links */
    char *cert_file; /* this host's certificate, issued by that CA */
    char *key_file;
    char *ca_dir;    /* where `mgadm ca` keeps the CA's key */
};

struct mg_settings {
    char *hostname;
    enum mg_log_level log_level;
    struct mg_settings_tls tls;
    struct mg_settings_userdb userdb;
    struct mg_settings_auth auth;
    struct mg_settings_mda mda;
    struct mg_settings_imap imap;
    struct mg_settings_lmtp lmtp;
    struct mg_settings_mta mta;
    struct mg_settings_smtp smtp;
    struct mg_settings_submission submission;
    struct mg_settings_queue queue;
    struct mg_settings_relay relay;
    struct mg_settings_cluster cluster;
    char *source_file; /* the file loaded, or "(defaults)" */
};

/* Loads the defaults, then the file at path, then every "*.conf" file in
 * the directory "<path>.d" (if there is one) in name order; a key set in a
 * later file replaces the earlier value. Returns 0, or -1 with a message
 * naming file and line in *error_r (to free). */
int mg_settings_load(const char *path, struct mg_settings **settings_r, char **error_r);
/* The same from text in memory (tests, fuzzing); name is used in errors. */
int mg_settings_load_string(const char *text, size_t len, const char *name,
                            struct mg_settings **settings_r, char **error_r);
/* Defaults only. */
struct mg_settings *mg_settings_new_defaults(void);
void mg_settings_free(struct mg_settings **settings);

/* Whether any link between daemons runs over TCP ([lmtp] listen, [auth]
 * listen, or a host:port in [mta] lmtp or auth); loading refuses such a
 * configuration unless [cluster] ca_file, cert_file and key_file are set. */
bool mg_settings_has_tcp_links(const struct mg_settings *settings);

/* Checks that each named key ("section.key" or "key") has a non-empty
 * value; -1 with "<file>: [section] key must be set" otherwise. */
int mg_settings_require(const struct mg_settings *settings, const char *const *names,
                        char **error_r);

/* Writes every key with its effective value, by section, in the file
 * syntax (for --dump-config). */
void mg_settings_dump(const struct mg_settings *settings, FILE *out);
/* Writes every key name as "section.key type default" lines, one per key
 * (the docs test reads this). */
void mg_settings_dump_schema(FILE *out);

/* Value parsers, exposed for programs that take the same formats on the
 * command line: 0 or -1. */
int mg_settings_parse_size(const char *text, uint64_t *bytes_r);
int mg_settings_parse_duration(const char *text, uint64_t *ms_r);
int mg_settings_parse_listen(const char *text, struct mg_listen_list *list_r,
                             const char **error_r);
void mg_settings_listen_list_free(struct mg_listen_list *list);

#endif
