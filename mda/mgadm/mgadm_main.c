/* mgadm: administration of the user directory (docs/mgadm.md).
 *
 *   mgadm [-c FILE] [-v] <object> <verb> [arguments]
 *
 * Exit codes: 0 done, 1 the operation failed (and changed nothing),
 * 2 the command line was wrong. */
#include "mda/mgadm/mgadm.h"

#include <errno.h>
#include <grp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/alloc.h"
#include "common/log.h"
#include "common/password.h"
#include "common/userdb.h"

static const struct {
    const char *name;
    const struct mgadm_cmd *cmds;
} mgadm_objects[] = {
    { "domain", mgadm_domain_cmds },
    { "user", mgadm_user_cmds },
    { "alias", mgadm_alias_cmds },
    { "auth", mgadm_auth_cmds },
    { "resolve", mgadm_resolve_cmds },
    { "config", mgadm_config_cmds },
    { "ca", mgadm_ca_cmds },
};

#define N_OBJECTS (sizeof(mgadm_objects) / sizeof(mgadm_objects[0]))

static void print_cmd_line(FILE *out, const struct mgadm_cmd *cmd)
{
    char left[160];
    snprintf(left, sizeof(left), "%s%s%s %s", cmd->object, cmd->verb != NULL ? " " : "",
             cmd->verb != NULL ? cmd->verb : "", cmd->synopsis);
    fprintf(out, "  %-50s %s\n", left, cmd->summary);
}

static void print_usage(FILE *out)
{
    fputs("usage: mgadm [-c FILE] [-v] <object> <verb> [arguments]\n"
          "\n"
          "Manages the Mailgenic user directory: domains, users and aliases.\n"
          "\n"
          "commands:\n", out);
    for (size_t i = 0; i < N_OBJECTS; i++) {
        for (const struct mgadm_cmd *cmd = mgadm_objects[i].cmds; cmd->object != NULL; cmd++)
            print_cmd_line(out, cmd);
    }
    fputs("\n"
          "options:\n"
          "  -c FILE     configuration file (default " MGADM_DEFAULT_CONFIG ");\n"
          "              the directory is [userdb] path, or $MG_USERDB_PATH\n"
          "  -v          debug logging on stderr\n"
          "  --version   print the version\n"
          "  --help      this text; mgadm OBJECT --help and mgadm OBJECT VERB --help\n"
          "              describe one object or command\n"
          "\n"
          "exit status: 0 done, 1 failed (nothing changed), 2 usage error\n", out);
}

static void print_object_usage(FILE *out, const char *object, const struct mgadm_cmd *cmds)
{
    fprintf(out, "usage: mgadm [-c FILE] %s%s\n\n", object,
            cmds[0].verb != NULL ? " <verb> [arguments]" : " [arguments]");
    for (const struct mgadm_cmd *cmd = cmds; cmd->object != NULL; cmd++)
        print_cmd_line(out, cmd);
    fprintf(out, "\nmgadm %s%s --help describes each.\n", object,
            cmds[0].verb != NULL ? " VERB" : "");
}

static void print_cmd_usage(FILE *out, const struct mgadm_cmd *cmd)
{
    fprintf(out, "usage: mgadm [-c FILE] %s%s%s %s\n\n%s\n", cmd->object,
            cmd->verb != NULL ? " " : "", cmd->verb != NULL ? cmd->verb : "", cmd->synopsis,
            cmd->summary);
    if (cmd->help != NULL)
        fprintf(out, "\n%s", cmd->help);
}

static bool is_help(const char *arg)
{
    return strcmp(arg, "--help") == 0 || strcmp(arg, "-h") == 0;
}

/* Splits the arguments after object and verb into options and positional
 * arguments (in place: argv is reordered). Returns an exit code, or -1 to
 * go on. */
static int parse_args(struct mgadm *ctx, int argc, char **argv)
{
    const struct mgadm_cmd *cmd = ctx->cmd;
    int n = 0;
    bool is_options_done = false;
    for (int i = 0; i < argc; i++) {
        const char *arg = argv[i];
        if (is_options_done || arg[0] != '-' || arg[1] == '\0') {
            argv[n++] = argv[i];
            continue;
        }
        if (strcmp(arg, "--") == 0) {
            is_options_done = true;
        } else if (is_help(arg)) {
            print_cmd_usage(stdout, cmd);
            return MGADM_EXIT_OK;
        } else if ((cmd->options & MGADM_OPT_QUOTA) &&
                   (strcmp(arg, "--quota") == 0 || strncmp(arg, "--quota=", 8) == 0)) {
            const char *value = arg[7] == '=' ? arg + 8 : i + 1 < argc ? argv[++i] : NULL;
            if (value == NULL)
                return mgadm_usage_error(cmd, "--quota needs a SIZE");
            if (mgadm_size_parse(value, &ctx->quota_bytes) < 0)
                return mgadm_usage_error(cmd, "bad SIZE '%s' (e.g. 500M, 2G, 0 for unlimited)",
                                         value);
            ctx->has_quota = true;
        } else if ((cmd->options & MGADM_OPT_PASSWORD_STDIN) &&
                   strcmp(arg, "--password-stdin") == 0) {
            ctx->is_password_stdin = true;
        } else {
            return mgadm_usage_error(cmd, "unknown option '%s'", arg);
        }
    }
    ctx->args = argv;
    ctx->n_args = n;
    if (n < cmd->min_args)
        return mgadm_usage_error(cmd, "missing argument: %s", cmd->synopsis);
    if (cmd->max_args >= 0 && n > cmd->max_args)
        return mgadm_usage_error(cmd, "too many arguments");
    return -1;
}

/* Run as root on a directory that belongs to someone else (the auth
 * service's user), mgadm becomes that user and group for good, so that no
 * file in the directory ends up owned by root and unreadable to the
 * service. A missing directory is created as whoever runs mgadm. */
static int switch_to_owner(const char *path)
{
    struct stat st;
    if (geteuid() != 0 || stat(path, &st) < 0 || st.st_uid == 0)
        return 0;
    if (setgroups(0, NULL) < 0 || setgid(st.st_gid) < 0 || setuid(st.st_uid) < 0) {
        return mgadm_fail("cannot switch to the owner of %s (uid %u, gid %u): %s", path,
                          (unsigned)st.st_uid, (unsigned)st.st_gid, strerror(errno));
    }
    if (setuid(0) == 0 || geteuid() != st.st_uid || getegid() != st.st_gid)
        return mgadm_fail("switching to uid %u left root privileges behind", (unsigned)st.st_uid);
    return 0;
}

int mgadm_open_directory(struct mgadm *ctx)
{
    const char *path = ctx->config.userdb_path;
    int ret = switch_to_owner(path);
    if (ret != 0)
        return ret;
    const char *error;
    unsigned flags = ctx->cmd->access == MGADM_ACCESS_CREATE ? MG_USERDB_CREATE : 0;
    if (mg_userdb_open(path, flags, &ctx->db, &error) < 0)
        return mgadm_fail("%s", error);
    return 0;
}

static const struct mgadm_cmd *find_cmd(const struct mgadm_cmd *cmds, const char *verb)
{
    for (const struct mgadm_cmd *cmd = cmds; cmd->object != NULL; cmd++) {
        if (cmd->verb == NULL || strcmp(cmd->verb, verb) == 0)
            return cmd;
    }
    return NULL;
}

static int run(int argc, char **argv)
{
    const char *config_path = NULL;
    int i = 1;
    for (; i < argc && argv[i][0] == '-'; i++) {
        const char *arg = argv[i];
        if (is_help(arg)) {
            print_usage(stdout);
            return MGADM_EXIT_OK;
        } else if (strcmp(arg, "--version") == 0) {
            printf("mgadm (Mailgenic) %s\n", MG_VERSION);
            return MGADM_EXIT_OK;
        } else if (strcmp(arg, "-c") == 0) {
            if (++i >= argc)
                return mgadm_usage_error(NULL, "-c needs a FILE");
            config_path = argv[i];
        } else if (strcmp(arg, "-v") == 0) {
            mg_log_set_level(MG_LOG_DEBUG);
        } else {
            return mgadm_usage_error(NULL, "unknown option '%s'", arg);
        }
    }
    if (i >= argc)
        return mgadm_usage_error(NULL, "missing command");

    const char *object = argv[i++];
    const struct mgadm_cmd *cmds = NULL;
    for (size_t k = 0; k < N_OBJECTS; k++) {
        if (strcmp(mgadm_objects[k].name, object) == 0)
            cmds = mgadm_objects[k].cmds;
    }
    if (cmds == NULL)
        return mgadm_usage_error(NULL, "unknown command '%s'", object);

    struct mgadm ctx;
    memset(&ctx, 0, sizeof(ctx));
    if (cmds[0].verb != NULL) {
        if (i >= argc) {
            char verbs[256] = "";
            for (const struct mgadm_cmd *cmd = cmds; cmd->object != NULL; cmd++) {
                size_t len = strlen(verbs);
                snprintf(verbs + len, sizeof(verbs) - len, "%s%s", len > 0 ? ", " : "", cmd->verb);
            }
            const struct mgadm_cmd object_only = { .object = object };
            return mgadm_usage_error(&object_only, "%s: missing verb (%s)", object, verbs);
        }
        if (is_help(argv[i])) {
            print_object_usage(stdout, object, cmds);
            return MGADM_EXIT_OK;
        }
        ctx.cmd = find_cmd(cmds, argv[i]);
        if (ctx.cmd == NULL) {
            const struct mgadm_cmd object_only = { .object = object };
            return mgadm_usage_error(&object_only, "unknown command '%s %s'", object, argv[i]);
        }
        i++;
    } else {
        ctx.cmd = cmds;
    }

    int ret = parse_args(&ctx, argc - i, argv + i);
    if (ret >= 0)
        return ret;
    if (ctx.cmd->check != NULL && (ret = ctx.cmd->check(&ctx)) != MGADM_EXIT_OK)
        return ret;

    char *error;
    if (mgadm_config_load(config_path != NULL ? config_path : MGADM_DEFAULT_CONFIG,
                          config_path != NULL, &ctx.config, &error) < 0) {
        ret = mgadm_fail("%s", error);
        free(error);
        return ret;
    }
    const char *env_path = getenv("MG_USERDB_PATH");
    if (env_path != NULL && env_path[0] != '\0') {
        free(ctx.config.userdb_path);
        ctx.config.userdb_path = mg_strdup(env_path);
    }

    ret = MGADM_EXIT_OK;
    if (ctx.cmd->prepare != NULL)
        ret = ctx.cmd->prepare(&ctx);
    if (ret == MGADM_EXIT_OK && ctx.cmd->access != MGADM_ACCESS_NONE)
        ret = mgadm_open_directory(&ctx);
    if (ret == MGADM_EXIT_OK)
        ret = ctx.cmd->run(&ctx);
    mg_userdb_close(&ctx.db);
    mg_password_wipe(ctx.password, sizeof(ctx.password));
    free(ctx.password_hash);
    mgadm_config_clear(&ctx.config);
    return ret;
}

int main(int argc, char **argv)
{
    mg_log_init("mgadm");
    /* Reasons reach the operator as "mgadm: ..." lines; the library's own
     * log lines would repeat them. -v shows them. */
    mg_log_set_level(MG_LOG_FATAL);
    int ret = run(argc, argv);
    if (fflush(stdout) != 0 || ferror(stdout)) {
        mgadm_fail("cannot write the output: %s", strerror(errno));
        ret = MGADM_EXIT_FAIL;
    }
    return ret;
}
