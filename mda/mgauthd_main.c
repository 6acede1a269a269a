/* mgauthd: the auth service. The only process that opens the user
 * directory and reads password hashes (docs/auth-protocol.md).
 *
 * It binds its socket, switches to [auth] user, and then runs as a small
 * supervisor: a child serves the socket, and when the child dies another
 * takes its place at once, on the same socket. The supervisor itself reads
 * nothing from the network. */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <uv.h>

#include "common/alloc.h"
#include "common/listener.h"
#include "common/log.h"
#include "common/privileges.h"
#include "common/settings.h"
#include "common/signals.h"
#include "common/userdb.h"
#include "mda/auth/auth_server.h"

#define CHECKPOINT_MS 30000

static volatile sig_atomic_t got_term;
static volatile sig_atomic_t got_hup;
static volatile sig_atomic_t got_io;
/* --watch-fd: the read end of a pipe whose write end mgimapd holds. Its
 * end (mgimapd exited, however) stops us: once we run as another user,
 * mgimapd may not signal us, and neither may the kernel for it (a
 * parent-death signal is checked against the dying parent's rights). */
static int watch_fd = -1;

static void usage(FILE *out)
{
    fprintf(out,
            "Usage: mgauthd [-c FILE] [--check-config]\n"
            "\n"
            "The Mailgenic auth service; mgimapd starts it.\n"
            "\n"
            "  -c, --config FILE   configuration file (default %s)\n"
            "      --check-config  check the configuration and exit\n"
            "      --watch-fd N    stop when the pipe on descriptor N is closed (mgimapd's)\n"
            "  -h, --help          this help\n"
            "  -V, --version       the version\n",
            MG_DEFAULT_CONFIG_FILE);
}

/* ---- the serving child ---- */

struct child {
    uv_loop_t *loop;
    struct mg_settings *settings;
    struct mg_userdb *userdb;
    struct mg_listener listener;
    struct auth_server *server;
    struct mg_signals signals;
    uv_timer_t checkpoint;
    uv_timer_t stop_timer;
};

static void checkpoint_work(uv_work_t *req)
{
    struct child *c = req->data;
    mg_userdb_checkpoint(c->userdb);
}

static void checkpoint_after(uv_work_t *req, int status)
{
    (void)status;
    free(req);
}

static void checkpoint_cb(uv_timer_t *t)
{
    uv_work_t *req = mg_calloc(1, sizeof(*req));
    req->data = t->data;
    uv_queue_work(t->loop, req, checkpoint_work, checkpoint_after);
}

static void child_stop_check(uv_timer_t *t)
{
    struct child *c = t->data;
    /* Sessions go in their close callbacks: wait for those too, so that
     * nothing is left to leak when the loop ends. */
    if (auth_server_is_idle(c->server))
        uv_stop(c->loop);
}

static void child_on_stop(void *ctx)
{
    struct child *c = ctx;
    auth_server_stop(c->server);
    uv_timer_stop(&c->checkpoint);
    uv_timer_start(&c->stop_timer, child_stop_check, 0, 50);
}

static int child_main(struct mg_settings *settings, int listen_fd)
{
    struct child c = { 0 };
    c.settings = settings;
    char workers[16];
    snprintf(workers, sizeof(workers), "%llu", (unsigned long long)settings->auth.workers + 1);
    setenv("UV_THREADPOOL_SIZE", workers, 1);
    c.loop = uv_default_loop();
    const char *error = NULL;
    if (mg_userdb_open(settings->userdb.path, MG_USERDB_CREATE, &c.userdb, &error) != 0)
        mg_log_fatal("mgauthd", "cannot open the user directory %s: %s", settings->userdb.path, error);
    if (mg_listener_adopt_unix(&c.listener, c.loop, listen_fd, settings->auth.socket) != 0)
        mg_log_fatal("mgauthd", "cannot use the socket %s", settings->auth.socket);
    c.server = auth_server_start(c.loop, settings, c.userdb, &c.listener);
    mg_signals_init(&c.signals, c.loop, child_on_stop, NULL, &c);
    uv_timer_init(c.loop, &c.checkpoint);
    c.checkpoint.data = &c;
    uv_timer_start(&c.checkpoint, checkpoint_cb, CHECKPOINT_MS, CHECKPOINT_MS);
    uv_unref((uv_handle_t *)&c.checkpoint);
    uv_timer_init(c.loop, &c.stop_timer);
    c.stop_timer.data = &c;
    mg_log_info("mgauthd", "serving socket=%s", settings->auth.socket);
    uv_run(c.loop, UV_RUN_DEFAULT);
    auth_server_free(&c.server);
    mg_signals_close(&c.signals);
    uv_close((uv_handle_t *)&c.checkpoint, NULL);
    uv_close((uv_handle_t *)&c.stop_timer, NULL);
    uv_run(c.loop, UV_RUN_DEFAULT); /* the close callbacks */
    mg_userdb_close(&c.userdb);
    return 0;
}

/* ---- the supervisor ---- */

static void on_term(int sig)
{
    (void)sig;
    got_term = 1;
}

static void on_hup(int sig)
{
    (void)sig;
    got_hup = 1;
}

static void on_io(int sig)
{
    (void)sig;
    got_io = 1;
}

/* Whether the watched pipe has ended (mgimapd never writes to it). */
static bool is_watch_closed(void)
{
    char c;
    ssize_t n = read(watch_fd, &c, 1);
    return n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR);
}

static pid_t spawn_child(struct mg_settings *settings, int fd)
{
    pid_t pid = fork();
    if (pid < 0)
        mg_log_fatal("mgauthd", "fork: %s", strerror(errno));
    if (pid == 0) {
        if (watch_fd >= 0)
            close(watch_fd);
        signal(SIGIO, SIG_DFL);
        signal(SIGTERM, SIG_DFL);
        signal(SIGINT, SIG_DFL);
        signal(SIGHUP, SIG_DFL);
        exit(child_main(settings, fd));
    }
    return pid;
}

int main(int argc, char **argv)
{
    static const struct option longopts[] = {
        { "config", required_argument, NULL, 'c' },
        { "check-config", no_argument, NULL, 'C' },
        { "watch-fd", required_argument, NULL, 'W' },
        { "help", no_argument, NULL, 'h' },
        { "version", no_argument, NULL, 'V' },
        { NULL, 0, NULL, 0 },
    };
    const char *config = MG_DEFAULT_CONFIG_FILE;
    bool check = false;
    int opt;
    while ((opt = getopt_long(argc, argv, "c:hV", longopts, NULL)) != -1) {
        switch (opt) {
        case 'c': config = optarg; break;
        case 'C': check = true; break;
        case 'W': watch_fd = atoi(optarg); break;
        case 'h': usage(stdout); return 0;
        case 'V': printf("mgauthd %s\n", MG_VERSION); return 0;
        default: usage(stderr); return 2;
        }
    }
    mg_log_init("mgauthd");
    /* mgimapd starts us; if it dies without stopping us, we go too (a
     * stale auth service would keep the socket from the next one). */
    if (getppid() != 1)
        prctl(PR_SET_PDEATHSIG, SIGTERM);
    struct mg_settings *settings = NULL;
    char *error = NULL;
    if (mg_settings_load(config, &settings, &error) != 0) {
        fprintf(stderr, "mgauthd: %s\n", error);
        return 1;
    }
    if (check) {
        printf("mgauthd: %s is valid\n", config);
        return 0;
    }
    mg_log_set_level(settings->log_level);

    int fd;
    if (mg_listener_unix_socket(settings->auth.socket, settings->auth.socket_mode,
                                settings->auth.socket_group, &fd, &error) != 0)
        mg_log_fatal("mgauthd", "%s", error);
    /* The socket file should belong to us after the switch, so that a
     * later start (as ourselves) can replace it. Only root can give it
     * away; under systemd the runtime directory is made anew anyway. */
    if (settings->auth.user[0] != '\0') {
        uid_t uid;
        gid_t gid;
        if (mg_privileges_lookup(settings->auth.user, settings->auth.group, &uid, &gid, &error) != 0)
            mg_log_fatal("mgauthd", "%s", error);
        if (chown(settings->auth.socket, uid, (gid_t)-1) != 0 && geteuid() == 0)
            mg_log_fatal("mgauthd", "cannot chown %s: %s", settings->auth.socket, strerror(errno));
    }
    if (mg_privileges_drop(settings->auth.user, settings->auth.group, &error) != 0)
        mg_log_fatal("mgauthd", "%s", error);

    struct sigaction sa = { 0 };
    sa.sa_handler = on_term;
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    sa.sa_handler = on_hup;
    sigaction(SIGHUP, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);
    if (watch_fd >= 0) {
        /* SIGIO when the pipe ends; our own signal, allowed whoever we are. */
        sa.sa_handler = on_io;
        sigaction(SIGIO, &sa, NULL);
        if (fcntl(watch_fd, F_SETOWN, getpid()) != 0 ||
            fcntl(watch_fd, F_SETFL, fcntl(watch_fd, F_GETFL) | O_ASYNC | O_NONBLOCK) != 0)
            mg_log_fatal("mgauthd", "cannot watch descriptor %d: %s", watch_fd, strerror(errno));
        if (is_watch_closed())
            got_term = 1;
    }

    unsigned restarts = 0;
    pid_t child = spawn_child(settings, fd);
    time_t started = time(NULL);
    for (;;) {
        int status;
        if (got_term) {
            kill(child, SIGTERM);
            while (waitpid(child, &status, 0) < 0 && errno == EINTR)
                ;
            break;
        }
        pid_t r = waitpid(child, &status, 0);
        if (r < 0 && errno == EINTR) {
            if (got_io) {
                got_io = 0;
                if (is_watch_closed())
                    got_term = 1;
            }
            if (got_hup) {
                got_hup = 0;
                kill(child, SIGHUP);
            }
            continue;
        }
        if (got_term)
            break;
        mg_log_error("mgauthd", "serving process ended %s=%d, restarting",
                     WIFSIGNALED(status) ? "signal" : "status",
                     WIFSIGNALED(status) ? WTERMSIG(status) : WEXITSTATUS(status));
        /* A child that keeps dying at start (a broken directory) must not
         * spin: back off. */
        restarts = time(NULL) - started > 10 ? 0 : restarts + 1;
        if (restarts > 0) {
            struct timespec ts = { .tv_sec = restarts > 5 ? 5 : 0,
                                   .tv_nsec = restarts > 5 ? 0 : 200000000L * (long)restarts };
            nanosleep(&ts, NULL);
        }
        if (got_term)
            break;
        child = spawn_child(settings, fd);
        started = time(NULL);
    }
    close(fd);
    unlink(settings->auth.socket);
    mg_settings_free(&settings);
    return 0;
}
