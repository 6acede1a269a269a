/* mgadm: command-line administration of the user directory.
 *
 * One table (mgadm_main.c) lists every command with its arguments and
 * options; main() checks the arguments against it, opens the directory
 * (after switching to the directory's owner when run as root) and calls
 * the command's run(). Commands print results on stdout and failures as
 * one line "mgadm: reason" on stderr (mgadm_fail). */
#ifndef MG_MDA_MGADM_H
#define MG_MDA_MGADM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/password.h"

struct mg_userdb;

/* Exit codes (docs/mgadm.md). */
#define MGADM_EXIT_OK 0
#define MGADM_EXIT_FAIL 1  /* operational: unknown user, duplicate, ... */
#define MGADM_EXIT_USAGE 2 /* bad command line */

#define MGADM_DEFAULT_CONFIG "/etc/mailgenic/mailgenic.conf"

/* Room for a password of MG_PASSWORD_MAX bytes, its line end and a NUL. */
#define MGADM_PASSWORD_BUF (MG_PASSWORD_MAX + 2)

struct mgadm_config {
    struct mg_settings *settings; /* the whole file (common/settings.h) */
    char *userdb_path;
    char *recipient_delimiter;
};

/* Reads the configuration with the shared settings module: the same
 * checks as the daemons (unknown keys and bad values are errors). A
 * missing file is fine unless is_required (an explicit -c): the defaults
 * apply. Returns 0, or -1 with a reason (to free) in *error_r. */
int mgadm_config_load(const char *path, bool is_required, struct mgadm_config *config_r,
                      char **error_r);
void mgadm_config_clear(struct mgadm_config *config);

enum mgadm_option {
    MGADM_OPT_QUOTA = 1 << 0,          /* --quota SIZE */
    MGADM_OPT_PASSWORD_STDIN = 1 << 1, /* --password-stdin */
};

enum mgadm_access {
    MGADM_ACCESS_NONE,   /* the command does not open the directory */
    MGADM_ACCESS_OPEN,   /* the directory must exist */
    MGADM_ACCESS_CREATE, /* created when missing (domain add) */
};

struct mgadm;

struct mgadm_cmd {
    const char *object;   /* "user" */
    const char *verb;     /* "add"; NULL for an object without verbs */
    const char *synopsis; /* arguments, for usage lines */
    const char *summary;  /* one line */
    const char *help;     /* the rest of --help; may be NULL */
    int min_args, max_args; /* positional arguments; max -1: no limit */
    unsigned options;       /* enum mgadm_option */
    enum mgadm_access access;
    /* Checks the arguments before anything is opened; returns an exit
     * code (MGADM_EXIT_USAGE after mgadm_usage_error). May be NULL. */
    int (*check)(struct mgadm *ctx);
    /* Runs after the configuration is read and before the directory is
     * opened: interactive input (passwords) happens here, so that mgadm
     * never sits in the environment waiting for a person (a Ctrl-C there
     * would make the next process run recovery). May be NULL. */
    int (*prepare)(struct mgadm *ctx);
    int (*run)(struct mgadm *ctx);
};

struct mgadm {
    const struct mgadm_cmd *cmd;
    struct mgadm_config config;
    struct mg_userdb *db;
    /* the command line after object and verb, options removed */
    char **args;
    int n_args;
    uint64_t quota_bytes;
    bool has_quota;
    bool is_password_stdin;
    /* from prepare(); main() wipes and frees them */
    char password[MGADM_PASSWORD_BUF];
    char *password_hash;
};

/* Opens the directory for ctx->cmd (switching to its owner first when run
 * as root); returns an exit code. */
int mgadm_open_directory(struct mgadm *ctx);

/* The command tables of each object (cmd_*.c), ended by a zeroed entry. */
extern const struct mgadm_cmd mgadm_domain_cmds[];
extern const struct mgadm_cmd mgadm_user_cmds[];
extern const struct mgadm_cmd mgadm_alias_cmds[];
extern const struct mgadm_cmd mgadm_auth_cmds[];
extern const struct mgadm_cmd mgadm_resolve_cmds[];
extern const struct mgadm_cmd mgadm_config_cmds[];
extern const struct mgadm_cmd mgadm_ca_cmds[];

/* Prints "mgadm: <text>" on stderr; returns MGADM_EXIT_FAIL. */
int mgadm_fail(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* Prints "mgadm: <text>" and a hint to use --help; returns MGADM_EXIT_USAGE. */
int mgadm_usage_error(const struct mgadm_cmd *cmd, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* Sizes: digits with an optional K, M, G or T suffix (powers of 1024,
 * either case), or "unlimited" (0). Returns 0 or -1. */
int mgadm_size_parse(const char *text, uint64_t *bytes_r);
/* The shortest exact form: "unlimited", "2G", "1536K", "1000". */
void mgadm_size_format(uint64_t bytes, char *buf, size_t size);
/* ISO 8601 UTC: "2026-01-31T12:00:00Z". */
void mgadm_time_format(int64_t t, char *buf, size_t size);

/* Passwords (mgadm_password.c), into buffers of MGADM_PASSWORD_BUF bytes
 * that callers wipe with mg_password_wipe() when done. Return 0, or -1
 * with a static reason. */
/* One line from standard input: the trailing CR/LF removed; an empty or
 * over-long line (or a NUL byte in it) is refused. */
int mgadm_password_read_stdin(char *buf, size_t size, const char **error_r);
/* From the terminal (/dev/tty) with echo off; with is_confirm asks twice
 * and refuses a mismatch. */
int mgadm_password_read_tty(const char *prompt, bool is_confirm, char *buf, size_t size,
                            const char **error_r);
/* --password-stdin, else the terminal: what user add and user passwd do. */
int mgadm_password_read(struct mgadm *ctx, bool is_confirm, char *buf, size_t size,
                        const char **error_r);

#endif
