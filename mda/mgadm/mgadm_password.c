/* Reading passwords: from the terminal with echo off, or one line from
 * standard input (--password-stdin, for scripts). Plaintext lives only in
 * the caller's buffer, which the caller wipes; read(2) is used instead of
 * stdio so that no copy stays behind in a FILE buffer. */
#include "mda/mgadm/mgadm.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <string.h>
#include <termios.h>
#include <unistd.h>

/* Reads one line from fd into buf; returns its length without the line
 * end, or -1. One byte at a time: nothing after the line is consumed. */
static int password_read_line(int fd, char *buf, size_t size, const char **error_r)
{
    size_t len = 0;
    bool is_too_long = false, has_nul = false;
    for (;;) {
        char c;
        ssize_t r = read(fd, &c, 1);
        if (r < 0) {
            if (errno == EINTR)
                continue;
            *error_r = "cannot read the password";
            return -1;
        }
        if (r == 0 || c == '\n')
            break;
        if (c == '\0')
            has_nul = true;
        if (len + 1 < size)
            buf[len++] = c;
        else
            is_too_long = true;
    }
    if (len > 0 && buf[len - 1] == '\r')
        len--;
    buf[len] = '\0';
    if (is_too_long || len > MG_PASSWORD_MAX) {
        *error_r = "password too long";
        return -1;
    }
    if (has_nul) {
        *error_r = "NUL byte in password";
        return -1;
    }
    if (len == 0) {
        *error_r = "empty password";
        return -1;
    }
    return (int)len;
}

int mgadm_password_read_stdin(char *buf, size_t size, const char **error_r)
{
    return password_read_line(STDIN_FILENO, buf, size, error_r) < 0 ? -1 : 0;
}

/* The terminal state to restore if a signal arrives while echo is off. */
static volatile sig_atomic_t tty_fd = -1;
static struct termios tty_saved;

static void tty_signal_restore(int sig)
{
    if (tty_fd >= 0)
        tcsetattr(tty_fd, TCSAFLUSH, &tty_saved);
    signal(sig, SIG_DFL);
    raise(sig);
}

static const int tty_signals[] = { SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGTSTP };

static int tty_prompt(int fd, const char *prompt, char *buf, size_t size, const char **error_r)
{
    if (write(fd, prompt, strlen(prompt)) < 0) {
        *error_r = "cannot write to the terminal";
        return -1;
    }
    int ret = password_read_line(fd, buf, size, error_r);
    /* Echo is off, so the user's Enter did not move the cursor. */
    if (write(fd, "\n", 1) < 0)
        ret = -1;
    return ret < 0 ? -1 : 0;
}

int mgadm_password_read_tty(const char *prompt, bool is_confirm, char *buf, size_t size,
                            const char **error_r)
{
    int fd = open("/dev/tty", O_RDWR | O_NOCTTY | O_CLOEXEC);
    if (fd < 0) {
        *error_r = "no terminal to read the password from (use --password-stdin)";
        return -1;
    }
    struct termios quiet;
    if (tcgetattr(fd, &tty_saved) < 0) {
        close(fd);
        *error_r = "cannot read the terminal settings";
        return -1;
    }
    struct sigaction sa, old[sizeof(tty_signals) / sizeof(tty_signals[0])];
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = tty_signal_restore;
    sigemptyset(&sa.sa_mask);
    tty_fd = fd;
    for (size_t i = 0; i < sizeof(tty_signals) / sizeof(tty_signals[0]); i++)
        sigaction(tty_signals[i], &sa, &old[i]);
    quiet = tty_saved;
    quiet.c_lflag &= ~(tcflag_t)(ECHO | ECHOE | ECHOK | ECHONL);
    int ret = tcsetattr(fd, TCSAFLUSH, &quiet);
    if (ret < 0)
        *error_r = "cannot turn off echo on the terminal";
    if (ret == 0)
        ret = tty_prompt(fd, prompt, buf, size, error_r);
    if (ret == 0 && is_confirm) {
        char again[MGADM_PASSWORD_BUF];
        ret = tty_prompt(fd, "Retype password: ", again, sizeof(again), error_r);
        if (ret == 0 && strcmp(buf, again) != 0) {
            *error_r = "passwords do not match";
            ret = -1;
        }
        mg_password_wipe(again, sizeof(again));
    }
    tcsetattr(fd, TCSAFLUSH, &tty_saved);
    tty_fd = -1;
    for (size_t i = 0; i < sizeof(tty_signals) / sizeof(tty_signals[0]); i++)
        sigaction(tty_signals[i], &old[i], NULL);
    close(fd);
    if (ret < 0)
        mg_password_wipe(buf, size);
    return ret;
}

int mgadm_password_read(struct mgadm *ctx, bool is_confirm, char *buf, size_t size,
                        const char **error_r)
{
    if (ctx->is_password_stdin)
        return mgadm_password_read_stdin(buf, size, error_r);
    return mgadm_password_read_tty("Password: ", is_confirm, buf, size, error_r);
}
