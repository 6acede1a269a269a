#include "bench/bench_cli.h"

#include <getopt.h>
#include <stdlib.h>
#include <string.h>

#include "bench/bench_common.h"
#include "common/alloc.h"

void bench_cli_option(struct bench_cli *cli, int ch, const char *arg)
{
    uint64_t v;
    switch (ch) {
    case 'H': cli->host = arg; return;
    case 'p': cli->port = arg; return;
    case 'u': cli->user = arg; return;
    case 'w': cli->password = arg; return;
    case BENCH_CLI_OPT_PASSWORD_FILE: cli->password = bench_cli_read_line(cli, arg); return;
    case 'q': cli->is_quiet = true; return;
    case BENCH_CLI_OPT_PLAIN: cli->is_plain = true; return;
    case BENCH_CLI_OPT_STARTTLS: cli->is_starttls = true; return;
    case BENCH_CLI_OPT_CA: cli->ca_file = arg; return;
    case BENCH_CLI_OPT_TIMEOUT:
        if (bench_parse_u64(arg, 1, 86400, &v) < 0)
            bench_die(2, "%s: --timeout: seconds", cli->tool);
        cli->timeout_ms = v * 1000;
        return;
    case 'h':
        cli->usage(stdout);
        exit(0);
    default:
        cli->usage(stderr);
        exit(2);
    }
}

void bench_cli_finish(const struct bench_cli *cli, int argc, bool is_complete)
{
    if (optind != argc || !is_complete || (cli->is_plain && cli->is_starttls)) {
        cli->usage(stderr);
        exit(2);
    }
}

char *bench_cli_read_line(const struct bench_cli *cli, const char *path)
{
    FILE *f = fopen(path, "r");
    if (f == NULL)
        bench_die(1, "%s: cannot read %s", cli->tool, path);
    char line[1024];
    if (fgets(line, sizeof(line), f) == NULL)
        line[0] = '\0';
    fclose(f);
    line[strcspn(line, "\r\n")] = '\0';
    return mg_strdup(line);
}

void bench_cli_resolve(const struct bench_cli *cli, struct sockaddr_storage *ss_r)
{
    if (bench_resolve(cli->host, cli->port, ss_r) < 0)
        bench_die(1, "%s: cannot resolve %s port %s", cli->tool, cli->host, cli->port);
}
