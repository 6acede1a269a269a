/* The command line the load tools share: -H/--host, -p/--port, --timeout,
 * -q/--quiet and -h/--help; for the tools that speak TLS --plain,
 * --starttls and --ca; for those that log in -u/--user, -w/--password and
 * --password-file. With them the first line of a file, the checks after
 * the last option and the server's address.
 *
 * A tool puts BENCH_CLI_OPTIONS (and BENCH_CLI_TLS_OPTIONS,
 * BENCH_CLI_LOGIN_OPTIONS) in its getopt_long table and BENCH_CLI_SHORT
 * (and BENCH_CLI_LOGIN_SHORT) in its short options, handles its own
 * options and hands every other one to bench_cli_option(). Failures exit
 * the way bench_die() does, with the tool's name in front. */
#ifndef MG_BENCH_CLI_H
#define MG_BENCH_CLI_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/socket.h>

/* Codes of the shared long options that have no short letter (above any
 * letter a tool uses for its own); a tool's own such codes start at
 * BENCH_CLI_OPT_TOOL. */
enum {
    BENCH_CLI_OPT_TIMEOUT = 256,
    BENCH_CLI_OPT_PLAIN,
    BENCH_CLI_OPT_STARTTLS,
    BENCH_CLI_OPT_CA,
    BENCH_CLI_OPT_PASSWORD_FILE,
    BENCH_CLI_OPT_TOOL,
};

#define BENCH_CLI_SHORT "H:p:qh"
#define BENCH_CLI_OPTIONS                                                   \
    { "host", required_argument, NULL, 'H' },                               \
    { "port", required_argument, NULL, 'p' },                               \
    { "timeout", required_argument, NULL, BENCH_CLI_OPT_TIMEOUT },          \
    { "quiet", no_argument, NULL, 'q' },                                    \
    { "help", no_argument, NULL, 'h' }
#define BENCH_CLI_TLS_OPTIONS                                               \
    { "plain", no_argument, NULL, BENCH_CLI_OPT_PLAIN },                    \
    { "starttls", no_argument, NULL, BENCH_CLI_OPT_STARTTLS },              \
    { "ca", required_argument, NULL, BENCH_CLI_OPT_CA }
#define BENCH_CLI_LOGIN_SHORT "u:w:"
#define BENCH_CLI_LOGIN_OPTIONS                                             \
    { "user", required_argument, NULL, 'u' },                               \
    { "password", required_argument, NULL, 'w' },                           \
    { "password-file", required_argument, NULL, BENCH_CLI_OPT_PASSWORD_FILE }

struct bench_cli {
    const char *tool;             /* "imap_fetch": in front of every message */
    void (*usage)(FILE *out);
    /* The options; the tool sets its defaults before parsing. */
    const char *host;
    const char *port;
    uint64_t timeout_ms;          /* --timeout, 1 to 86400 seconds */
    bool is_quiet;
    bool is_plain;                /* no TLS */
    bool is_starttls;             /* TLS after STARTTLS */
    const char *ca_file;          /* NULL: any certificate is accepted */
    const char *user;
    const char *password;         /* --password-file: allocated, never freed */
};

/* Takes option ch (getopt_long's return value, arg its optarg). -h prints
 * the usage on stdout and exits 0; an option the tool does not know (or a
 * bad --timeout) exits 2 after the usage or a message on stderr. */
void bench_cli_option(struct bench_cli *cli, int ch, const char *arg);

/* After the options: exits 2 with the usage on stderr when arguments are
 * left over (from optind on), when is_complete is false (a required
 * option is missing) or when both --plain and --starttls were given. */
void bench_cli_finish(const struct bench_cli *cli, int argc, bool is_complete);

/* The first line of the file at path without its line end, at most 1023
 * bytes (to free); exits 1 when the file cannot be read. */
char *bench_cli_read_line(const struct bench_cli *cli, const char *path);

/* The address of host and port; exits 1 when they do not resolve. */
void bench_cli_resolve(const struct bench_cli *cli, struct sockaddr_storage *ss_r);

#endif
