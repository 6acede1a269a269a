/* Signal conventions shared by every daemon:
 *   SIGTERM, SIGINT  graceful stop: stop accepting, finish or hand back work,
 *                    exit (a second one stops at once)
 *   SIGHUP           reload configuration and TLS certificates
 *   SIGPIPE          ignored (write errors come back as EPIPE)
 * Handlers run on the event loop (uv_signal_t), never in signal context. */
#ifndef MG_COMMON_SIGNALS_H
#define MG_COMMON_SIGNALS_H

#include <uv.h>

struct mg_signals {
    uv_signal_t term;
    uv_signal_t intr;
    uv_signal_t hup;
    void (*on_stop)(void *ctx);
    void (*on_reload)(void *ctx);
    void *ctx;
    int stop_count;
};

/* Installs the handlers; the handles are unreferenced, so they never keep
 * the loop alive on their own. */
void mg_signals_init(struct mg_signals *signals, uv_loop_t *loop,
                     void (*on_stop)(void *ctx), void (*on_reload)(void *ctx), void *ctx);
/* Closes the handles (the struct must live until the loop ran once more). */
void mg_signals_close(struct mg_signals *signals);

#endif
