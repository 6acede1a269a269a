#include "common/signals.h"

#include <signal.h>
#include <stdlib.h>

#include "common/log.h"

static void signals_stop_cb(uv_signal_t *handle, int signum)
{
    struct mg_signals *s = handle->data;
    if (++s->stop_count > 1) {
        /* The operator asked twice: do not wait for slow peers. */
        mg_log_notice("daemon", "stopping now signal=%d", signum);
        exit(1);
    }
    mg_log_info("daemon", "stopping signal=%d", signum);
    s->on_stop(s->ctx);
}

static void signals_reload_cb(uv_signal_t *handle, int signum)
{
    struct mg_signals *s = handle->data;
    (void)signum;
    mg_log_info("daemon", "reloading signal=SIGHUP");
    if (s->on_reload != NULL)
        s->on_reload(s->ctx);
}

static void signals_start(uv_loop_t *loop, uv_signal_t *h, uv_signal_cb cb, int signum,
                          struct mg_signals *s)
{
    uv_signal_init(loop, h);
    h->data = s;
    uv_signal_start(h, cb, signum);
    uv_unref((uv_handle_t *)h);
}

void mg_signals_init(struct mg_signals *signals, uv_loop_t *loop,
                     void (*on_stop)(void *ctx), void (*on_reload)(void *ctx), void *ctx)
{
    signal(SIGPIPE, SIG_IGN);
    signals->on_stop = on_stop;
    signals->on_reload = on_reload;
    signals->ctx = ctx;
    signals->stop_count = 0;
    signals_start(loop, &signals->term, signals_stop_cb, SIGTERM, signals);
    signals_start(loop, &signals->intr, signals_stop_cb, SIGINT, signals);
    signals_start(loop, &signals->hup, signals_reload_cb, SIGHUP, signals);
}

void mg_signals_close(struct mg_signals *signals)
{
    uv_close((uv_handle_t *)&signals->term, NULL);
    uv_close((uv_handle_t *)&signals->intr, NULL);
    uv_close((uv_handle_t *)&signals->hup, NULL);
}
