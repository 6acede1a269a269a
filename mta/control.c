#include "mta/control.h"

#include <stdlib.h>
#include <string.h>

#include "common/alloc.h"
#include "common/buf.h"
#include "common/conn.h"
#include "common/line_reader.h"
#include "common/listener.h"
#include "common/log.h"
#include "common/unique_id.h"
#include "mta/queue/queue.h"

struct control {
    struct mg_listener listener;
    struct queue *queue;
    bool is_bound;
};

struct control_conn {
    struct control *control;
    struct mg_line_reader reader;
};

static void handle(struct control *c, struct mg_conn *conn, const char *line, size_t len)
{
    char cmd[16] = "", arg[64] = "";
    char copy[128];
    snprintf(copy, sizeof(copy), "%.*s", (int)(len < sizeof(copy) - 1 ? len : sizeof(copy) - 1), line);
    sscanf(copy, "%15s %63s", cmd, arg);
    struct mg_buf out = MG_BUF_INIT;
    if (strcmp(cmd, "LIST") == 0) {
        queue_list(c->queue, &out);
        mg_buf_append_str(&out, "OK\n");
    } else if (strcmp(cmd, "FLUSH") == 0) {
        queue_flush(c->queue);
        mg_log_notice("queue", "flush requested");
        mg_buf_append_str(&out, "OK\n");
    } else if (strcmp(cmd, "DELETE") == 0 || strcmp(cmd, "HOLD") == 0 || strcmp(cmd, "RELEASE") == 0) {
        int r = -1;
        if (mg_unique_id_is_valid(arg)) {
            if (cmd[0] == 'D')
                r = queue_delete(c->queue, arg);
            else
                r = queue_hold(c->queue, arg, cmd[0] == 'H');
        }
        mg_buf_append_str(&out, r == 0 ? "OK\n" : "ERROR no such message\n");
    } else {
        mg_buf_append_str(&out, "ERROR unknown command\n");
    }
    mg_conn_write(conn, out.data, out.len);
    mg_buf_free(&out);
    mg_conn_close(conn);
}

static void on_read(struct mg_conn *conn)
{
    struct control_conn *cc = mg_conn_data(conn);
    struct mg_line line;
    enum mg_line_status st = mg_line_reader_next(&cc->reader, mg_conn_input(conn), &line);
    if (st == MG_LINE_OK)
        handle(cc->control, conn, line.data, line.len);
    else if (st == MG_LINE_TOO_LONG)
        mg_conn_close(conn);
}

static void on_close(struct mg_conn *conn, const char *reason)
{
    (void)reason;
    free(mg_conn_data(conn));
}

static const struct mg_conn_callbacks control_cb = {
    .on_read = on_read,
    .on_close = on_close,
};

static void on_connection(uv_stream_t *stream, int status)
{
    struct mg_listener *l = stream->data;
    struct control *c = l->data;
    if (status < 0)
        return;
    struct control_conn *cc = mg_calloc(1, sizeof(*cc));
    cc->control = c;
    mg_line_reader_init(&cc->reader, 256);
    struct mg_conn *conn = mg_conn_accept(stream, NULL, 0, &control_cb, cc);
    if (conn == NULL) {
        free(cc);
        return;
    }
    mg_conn_set_idle_timeout(conn, 10000);
}

int control_bind(uv_loop_t *loop, const char *path, struct control **control_r, char **error_r)
{
    struct control *c = mg_calloc(1, sizeof(*c));
    if (mg_listener_bind_unix(&c->listener, loop, path, 0600, NULL, error_r) != 0) {
        free(c);
        return -1;
    }
    c->listener.data = c;
    c->is_bound = true;
    *control_r = c;
    return 0;
}

void control_start(struct control *control, struct queue *queue)
{
    control->queue = queue;
    int r = mg_listener_start(&control->listener, on_connection);
    if (r != 0)
        mg_log_fatal("control", "cannot listen on %s: %s", control->listener.name, uv_strerror(r));
}

void control_stop(struct control *control)
{
    if (control->is_bound)
        mg_listener_close(&control->listener, NULL);
    control->is_bound = false;
}

void control_free(struct control **control)
{
    free(*control);
    *control = NULL;
}
