#include "common/daemon.h"

#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "common/log.h"
#include "common/privileges.h"
#include "common/sd_notify.h"
#include "common/settings.h"

#define STOP_POLL_MS 100

static void usage(const struct mg_daemon_info *info, FILE *out)
{
    fprintf(out,
            "Usage: %s [-c FILE] [--check-config] [--dump-config]\n"
            "\n"
            "%s\n"
            "\n"
            "  -c, --config FILE   configuration file (default %s)\n"
            "      --check-config  check the configuration and exit\n"
            "      --dump-config   print the effective configuration and exit\n"
            "  -h, --help          this help\n"
            "  -V, --version       the version\n"
            "\n"
            "Signals: SIGTERM stops gracefully, SIGHUP reloads certificates and log_level.\n",
            info->name, info->summary, MG_DEFAULT_CONFIG_FILE);
}

int mg_daemon_init(struct mg_daemon *d, const struct mg_daemon_info *info, int argc,
                   char **argv, int *exit_status_r)
{
    enum { OPT_CHECK_CONFIG = 256, OPT_DUMP_CONFIG }; /* long options only */
    static const struct option longopts[] = {
        { "config", required_argument, NULL, 'c' },
        { "check-config", no_argument, NULL, OPT_CHECK_CONFIG },
        { "dump-config", no_argument, NULL, OPT_DUMP_CONFIG },
        { "help", no_argument, NULL, 'h' },
        { "version", no_argument, NULL, 'V' },
        { NULL, 0, NULL, 0 },
    };
    *d = (struct mg_daemon){ .info = info, .config_path = MG_DEFAULT_CONFIG_FILE };
    bool check = false, dump = false;
    int c;
    while ((c = getopt_long(argc, argv, "c:hV", longopts, NULL)) != -1) {
        switch (c) {
        case 'c': d->config_path = optarg; break;
        case OPT_CHECK_CONFIG: check = true; break;
        case OPT_DUMP_CONFIG: dump = true; break;
        case 'h': usage(info, stdout); *exit_status_r = 0; return -1;
        case 'V': printf("%s %s\n", info->name, MG_VERSION); *exit_status_r = 0; return -1;
        default: usage(info, stderr); *exit_status_r = 2; return -1;
        }
    }
    if (optind != argc) {
        usage(info, stderr);
        *exit_status_r = 2;
        return -1;
    }
    mg_log_init(info->name);
    char *error = NULL;
    if (mg_settings_load(d->config_path, &d->settings, &error) != 0 ||
        mg_settings_require(d->settings, info->required, &error) != 0) {
        fprintf(stderr, "%s: %s\n", info->name, error);
        free(error);
        mg_settings_free(&d->settings);
        *exit_status_r = 1;
        return -1;
    }
    if (dump || check) {
        *exit_status_r = 0;
        if (dump) {
            mg_settings_dump(d->settings, stdout);
        } else {
            /* Only problems are worth a line: what the check builds logs
             * its start-up chatter at info. */
            mg_log_set_level(MG_LOG_WARNING);
            if (info->check != NULL && info->check(d->settings, &error) != 0) {
                fprintf(stderr, "%s: %s\n", info->name, error);
                free(error);
                *exit_status_r = 1;
            } else {
                printf("%s: %s is valid\n", info->name, d->config_path);
            }
        }
        /* Freed on the way out too: LeakSanitizer builds fail otherwise. */
        mg_settings_free(&d->settings);
        return -1;
    }
    mg_log_set_level(d->settings->log_level);
    /* Enough threads for fsyncs to overlap (each delivery waits on disk). */
    if (getenv("UV_THREADPOOL_SIZE") == NULL)
        setenv("UV_THREADPOOL_SIZE", "16", 1);
    d->loop = uv_default_loop();
    return 0;
}

void mg_daemon_drop_privileges(const struct mg_daemon *d, const char *user, const char *group,
                               const char *section)
{
    char *error = NULL;
    if (mg_privileges_drop(user, group, &error) != 0)
        mg_log_fatal(d->info->name, "%s", error);
    if (geteuid() == 0)
        mg_log_warning(d->info->name, "running as root: set [%s] user (development only)", section);
}

static void stop_timer_cb(uv_timer_t *t)
{
    struct mg_daemon *d = t->data;
    bool is_idle = d->hooks->is_idle(d->ctx);
    d->stop_waited_ms += STOP_POLL_MS;
    if (!is_idle && d->stop_waited_ms < MG_DAEMON_STOP_GRACE_MS)
        return;
    if (!is_idle)
        mg_log_warning(d->info->name, "%s", d->info->busy_warning);
    uv_timer_stop(t);
    uv_stop(d->loop);
}

static void on_stop(void *ctx)
{
    struct mg_daemon *d = ctx;
    if (d->is_stopping)
        return;
    d->is_stopping = true;
    mg_sd_notify("STOPPING=1");
    d->hooks->stop(d->ctx);
    uv_timer_start(&d->stop_timer, stop_timer_cb, STOP_POLL_MS, STOP_POLL_MS);
}

static void on_reload(void *ctx)
{
    struct mg_daemon *d = ctx;
    mg_sd_notify("RELOADING=1");
    struct mg_settings *fresh = NULL;
    char *error = NULL;
    if (mg_settings_load(d->config_path, &fresh, &error) != 0) {
        mg_log_error(d->info->name, "reload failed, keeping the old configuration: %s", error);
        free(error);
    } else {
        mg_log_set_level(fresh->log_level);
        d->hooks->reload(d->ctx, fresh);
        mg_settings_free(&fresh);
    }
    mg_sd_notify("READY=1");
}

void mg_daemon_start(struct mg_daemon *d, const struct mg_daemon_hooks *hooks, void *ctx)
{
    d->hooks = hooks;
    d->ctx = ctx;
    mg_signals_init(&d->signals, d->loop, on_stop, on_reload, d);
    uv_timer_init(d->loop, &d->stop_timer);
    d->stop_timer.data = d;
}

void mg_daemon_close(struct mg_daemon *d)
{
    if (d->hooks != NULL) {
        mg_signals_close(&d->signals);
        uv_close((uv_handle_t *)&d->stop_timer, NULL);
        d->hooks = NULL;
    }
    mg_settings_free(&d->settings);
}
