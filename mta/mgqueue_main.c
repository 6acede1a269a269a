/* mgqueue: the mail queue, like Postfix's mailq and postqueue.
 *
 *   mgqueue [-c FILE] list           what is queued, with the last error
 *   mgqueue [-c FILE] flush          retry everything deferred now
 *   mgqueue [-c FILE] delete ID      remove a message (no bounce)
 *   mgqueue [-c FILE] hold ID        keep a message from delivery
 *   mgqueue [-c FILE] release ID     let it go again
 *
 * It talks to mgsmtpd over its control socket; when mgsmtpd is not
 * running, list, delete, hold and release work on the spool directly. */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/un.h>
#include <unistd.h>
#include <uv.h>

#include "common/buf.h"
#include "common/log.h"
#include "common/settings.h"
#include "common/unique_id.h"
#include "mta/queue/queue.h"

static void usage(FILE *out)
{
    fprintf(out,
            "Usage: mgqueue [-c FILE] COMMAND [ID]\n"
            "\n"
            "Commands:\n"
            "  list          show the queue (as mailq does)\n"
            "  flush         retry all deferred mail now\n"
            "  delete ID     remove a message without a bounce\n"
            "  hold ID       keep a message from delivery\n"
            "  release ID    release a held message\n"
            "\n"
            "  -c, --config FILE   configuration file (default %s)\n"
            "  -h, --help          this help\n",
            MG_DEFAULT_CONFIG_FILE);
}

/* mgsmtpd answers at once; a hung one must not hang scripts. */
#define MGQUEUE_ANSWER_TIMEOUT_S 60

/* Sends one command to mgsmtpd; returns 0 and prints the answer, 1 when
 * the answer is an error (or mgsmtpd is there but cannot be asked), -1
 * when mgsmtpd is not running (no socket, or nobody listening on it). */
static int via_daemon(const char *socket_path, const char *command)
{
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_un sun = { .sun_family = AF_UNIX };
    snprintf(sun.sun_path, sizeof(sun.sun_path), "%s", socket_path);
    if (fd < 0 || connect(fd, (struct sockaddr *)&sun, sizeof(sun)) != 0) {
        int e = errno;
        if (fd >= 0)
            close(fd);
        if (e == ENOENT || e == ECONNREFUSED)
            return -1;
        /* Not "not running": do not go behind its back. */
        fprintf(stderr, "mgqueue: cannot connect to %s: %s%s\n", socket_path, strerror(e),
                e == EACCES ? " (run as mgsmtpd's user or root)" : "");
        return 1;
    }
    struct timeval tv = { .tv_sec = MGQUEUE_ANSWER_TIMEOUT_S };
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    dprintf(fd, "%s\n", command);
    struct mg_buf answer = MG_BUF_INIT;
    char buf[4096];
    ssize_t n;
    while ((n = read(fd, buf, sizeof(buf))) > 0)
        mg_buf_append(&answer, buf, (size_t)n);
    int read_errno = n < 0 ? errno : 0;
    close(fd);
    if (read_errno != 0 || answer.len == 0) {
        fprintf(stderr, "mgqueue: no answer from mgsmtpd: %s\n",
                read_errno != 0 ? strerror(read_errno) : "connection closed");
        mg_buf_free(&answer);
        return 1;
    }
    /* The last line is the status. */
    const char *text = mg_buf_cstr(&answer);
    size_t len = answer.len;
    if (len > 0 && text[len - 1] == '\n')
        len--;
    size_t last = len;
    while (last > 0 && text[last - 1] != '\n')
        last--;
    fwrite(text, 1, last, stdout);
    int ret = strncmp(text + last, "OK", 2) == 0 ? 0 : 1;
    if (ret != 0)
        fprintf(stderr, "mgqueue: %.*s\n", (int)(len - last), text + last);
    mg_buf_free(&answer);
    return ret;
}

/* mgsmtpd is down: open the spool ourselves. */
static int offline(const struct mg_settings *settings, const char *cmd, const char *id)
{
    if (strcmp(cmd, "flush") == 0) {
        fprintf(stderr, "mgqueue: mgsmtpd is not running; queued mail is tried when it starts\n");
        return 1;
    }
    uv_loop_t *loop = uv_default_loop();
    struct queue *q;
    char *error = NULL;
    if (queue_open(loop, settings, &q, &error) != 0) {
        fprintf(stderr, "mgqueue: %s\n", error);
        free(error);
        return 1;
    }
    int ret = 0;
    if (strcmp(cmd, "list") == 0) {
        struct mg_buf out = MG_BUF_INIT;
        queue_list(q, &out);
        fwrite(out.data, 1, out.len, stdout);
        mg_buf_free(&out);
    } else {
        int r = strcmp(cmd, "delete") == 0 ? queue_delete(q, id) : queue_hold(q, id, strcmp(cmd, "hold") == 0);
        if (r != 0) {
            fprintf(stderr, "mgqueue: no such message: %s\n", id);
            ret = 1;
        }
    }
    queue_close(&q);
    uv_run(loop, UV_RUN_DEFAULT);
    return ret;
}

int main(int argc, char **argv)
{
    static const struct option longopts[] = {
        { "config", required_argument, NULL, 'c' },
        { "help", no_argument, NULL, 'h' },
        { NULL, 0, NULL, 0 },
    };
    const char *config = MG_DEFAULT_CONFIG_FILE;
    int c;
    while ((c = getopt_long(argc, argv, "c:h", longopts, NULL)) != -1) {
        switch (c) {
        case 'c': config = optarg; break;
        case 'h': usage(stdout); return 0;
        default: usage(stderr); return 2;
        }
    }
    if (optind >= argc) {
        usage(stderr);
        return 2;
    }
    const char *cmd = argv[optind];
    const char *id = optind + 1 < argc ? argv[optind + 1] : NULL;
    bool needs_id = strcmp(cmd, "delete") == 0 || strcmp(cmd, "hold") == 0 || strcmp(cmd, "release") == 0;
    bool known = needs_id || strcmp(cmd, "list") == 0 || strcmp(cmd, "flush") == 0;
    if (!known || (needs_id != (id != NULL)) || optind + (needs_id ? 2 : 1) != argc) {
        usage(stderr);
        return 2;
    }
    if (needs_id && !mg_unique_id_is_valid(id)) {
        fprintf(stderr, "mgqueue: not a queue ID: %s\n", id);
        return 2;
    }
    mg_log_init("mgqueue");
    mg_log_set_level(MG_LOG_WARNING);
    struct mg_settings *settings = NULL;
    char *error = NULL;
    if (mg_settings_load(config, &settings, &error) != 0) {
        fprintf(stderr, "mgqueue: %s\n", error);
        free(error);
        return 1;
    }
    char command[128];
    snprintf(command, sizeof(command), "%s%s%s", strcmp(cmd, "list") == 0      ? "LIST"
                                                 : strcmp(cmd, "flush") == 0   ? "FLUSH"
                                                 : strcmp(cmd, "delete") == 0  ? "DELETE"
                                                 : strcmp(cmd, "hold") == 0    ? "HOLD"
                                                                               : "RELEASE",
             id != NULL ? " " : "", id != NULL ? id : "");
    int r = via_daemon(settings->mta.control_socket, command);
    if (r < 0)
        r = offline(settings, cmd, id);
    mg_settings_free(&settings);
    return r;
}
