#include "mda/auth/auth_server.h"

#include <stdlib.h>
#include <string.h>

#include "common/address.h"
#include "common/alloc.h"
#include "common/arena.h"
#include "common/ascii.h"
#include "common/auth_proto.h"
#include "common/buf.h"
#include "common/conn.h"
#include "common/line_reader.h"
#include "common/listener.h"
#include "common/log.h"
#include "common/password.h"
#include "common/settings.h"
#include "common/unique_id.h"
#include "common/userdb.h"
#include "mda/auth/auth_cache.h"

/* Requests in flight per connection: a client that floods us waits. */
#define AUTH_SESSION_INFLIGHT_MAX 256
/* Verified against when the user does not exist, so that an unknown user
 * costs as much time as a wrong password. */
#define AUTH_DUMMY_PASSWORD "mailgenic-timing-equaliser"

struct auth_session;

struct auth_server {
    uv_loop_t *loop;
    const struct mg_settings *settings;
    struct mg_userdb *userdb;
    struct mg_listener *listener;
    struct auth_cache *cache;
    char *dummy_hash;
    struct auth_session *sessions;
    unsigned jobs_running;
};

struct auth_session {
    struct auth_session *next, *prev;
    struct auth_server *server;
    struct mg_conn *conn;
    struct mg_line_reader reader;
    int refcount;
    unsigned inflight;
    bool has_hello;
    char id[MG_SESSION_ID_LEN + 1];
    char client[64];
};

enum job_kind { JOB_VERIFY, JOB_RESOLVE, JOB_DOMAIN };

struct auth_job {
    uv_work_t req;
    struct auth_session *session;
    enum job_kind kind;
    char *id;
    char *args[6];
    size_t n_args;
    struct mg_buf answer;
};

static void session_unref(struct auth_session *s)
{
    if (--s->refcount > 0)
        return;
    if (s->prev != NULL)
        s->prev->next = s->next;
    else if (s->server->sessions == s)
        s->server->sessions = s->next;
    if (s->next != NULL)
        s->next->prev = s->prev;
    free(s);
}

static void job_free(struct auth_job *j)
{
    for (size_t i = 0; i < j->n_args; i++) {
        /* Arguments of VERIFY include the password. */
        mg_password_wipe(j->args[i], strlen(j->args[i]));
        free(j->args[i]);
    }
    free(j->id);
    mg_buf_free(&j->answer);
    free(j);
}

/* ---- the work: VERIFY in the thread pool (yescrypt), look-ups on the
 * loop ---- */

static void answer_fields(struct auth_job *j, const char *status, const char *const *fields, size_t n)
{
    mg_buf_reset(&j->answer);
    mg_auth_proto_cfield(&j->answer, status);
    mg_auth_proto_cfield(&j->answer, j->id);
    for (size_t i = 0; i < n; i++)
        mg_auth_proto_cfield(&j->answer, fields[i]);
}

static void answer1(struct auth_job *j, const char *status, const char *reason)
{
    answer_fields(j, status, &reason, 1);
}

static void do_verify(struct auth_job *j, struct auth_server *server)
{
    /* args: service, remote, authzid, authcid, password */
    const char *authzid = j->args[2], *authcid = j->args[3], *password = j->args[4];
    struct mg_user user = { 0 };
    const char *error = NULL;
    int r = mg_userdb_user_get(server->userdb, authcid, &user, &error);
    if (r == MG_USERDB_ERROR) {
        answer1(j, "TEMPFAIL", "directory unavailable");
        return;
    }
    if (r != MG_USERDB_OK) {
        mg_password_verify(password, server->dummy_hash);
        answer1(j, "FAIL", "unknown");
        return;
    }
    char *canon = mg_strdup(user.address);
    mg_ascii_lower(canon, strlen(canon));
    if (authzid[0] != '\0' && mg_ascii_strcasecmp(authzid, canon) != 0 &&
        mg_ascii_strcasecmp(authzid, authcid) != 0) {
        answer1(j, "FAIL", "authzid");
    } else if (!user.is_enabled) {
        mg_password_verify(password, server->dummy_hash);
        answer1(j, "FAIL", "disabled");
    } else if (auth_cache_check(server->cache, canon, password, user.password_hash) ||
               mg_password_verify(password, user.password_hash)) {
        auth_cache_add(server->cache, canon, password, user.password_hash);
        char quota[32];
        snprintf(quota, sizeof(quota), "%llu", (unsigned long long)user.quota_bytes);
        const char *fields[] = { canon, quota };
        answer_fields(j, "OK", fields, 2);
    } else {
        answer1(j, "FAIL", "password");
    }
    free(canon);
    mg_user_clear(&user);
}

static void do_resolve(struct auth_job *j, struct auth_server *server)
{
    struct mg_userdb_resolution res = { 0 };
    const char *error = NULL;
    int r = mg_userdb_resolve(server->userdb, j->args[0], server->settings->userdb.recipient_delimiter,
                              &res, &error);
    switch (r) {
    case MG_USERDB_OK:
        break;
    case MG_USERDB_NOT_LOCAL:
        answer1(j, "FAIL", "notlocal");
        return;
    case MG_USERDB_NOT_FOUND:
    case MG_USERDB_INVALID:
        answer1(j, "FAIL", "notfound");
        return;
    default:
        answer1(j, "TEMPFAIL", "directory unavailable");
        return;
    }
    mg_buf_reset(&j->answer);
    mg_auth_proto_cfield(&j->answer, "OK");
    mg_auth_proto_cfield(&j->answer, j->id);
    for (size_t i = 0; i < res.n_targets; i++) {
        const struct mg_userdb_target *t = &res.targets[i];
        char *addr = mg_strdup(t->address);
        if (t->is_local)
            mg_ascii_lower(addr, strlen(addr));
        char quota[32];
        snprintf(quota, sizeof(quota), "%llu", (unsigned long long)t->quota_bytes);
        mg_auth_proto_cfield(&j->answer, t->is_local ? "L" : "R");
        mg_auth_proto_cfield(&j->answer, addr);
        mg_auth_proto_cfield(&j->answer, t->is_local && t->is_enabled ? "1" : "0");
        mg_auth_proto_cfield(&j->answer, t->is_local ? quota : "0");
        free(addr);
    }
    mg_userdb_resolution_clear(&res);
}

static void do_domain(struct auth_job *j, struct auth_server *server)
{
    int r = mg_userdb_domain_exists(server->userdb, j->args[0]);
    if (r < 0)
        answer1(j, "TEMPFAIL", "directory unavailable");
    else
        answer1(j, "OK", r == 1 ? "local" : "remote");
}

static void job_run(struct auth_job *j, struct auth_server *server)
{
    switch (j->kind) {
    case JOB_VERIFY: do_verify(j, server); break;
    case JOB_RESOLVE: do_resolve(j, server); break;
    case JOB_DOMAIN: do_domain(j, server); break;
    }
    mg_buf_append_byte(&j->answer, '\n');
}

static void job_work(uv_work_t *req)
{
    struct auth_job *j = req->data;
    job_run(j, j->session->server);
}

static void job_after(uv_work_t *req, int status)
{
    (void)status;
    struct auth_job *j = req->data;
    struct auth_session *s = j->session;
    s->server->jobs_running--;
    s->inflight--;
    if (s->conn != NULL) {
        mg_conn_write(s->conn, j->answer.data, j->answer.len);
        if (s->inflight < AUTH_SESSION_INFLIGHT_MAX)
            mg_conn_resume_reading(s->conn);
    }
    job_free(j);
    session_unref(s);
}

/* ---- protocol ---- */

static void protocol_error(struct auth_session *s, const char *text)
{
    mg_log_warning("auth", "protocol error session=%s client=%s error=%s", s->id, s->client, text);
    struct mg_buf b = MG_BUF_INIT;
    mg_auth_proto_cfield(&b, "ERROR");
    mg_auth_proto_cfield(&b, text);
    mg_buf_append_byte(&b, '\n');
    mg_conn_write(s->conn, b.data, b.len);
    mg_buf_free(&b);
    mg_conn_close(s->conn);
}

static void handle_line(struct auth_session *s, char *line, size_t len)
{
    char *f[16];
    int n = mg_auth_proto_split(line, len, f, 16);
    if (n < 1) {
        protocol_error(s, "malformed line");
        return;
    }
    if (strcmp(f[0], "HELLO") == 0) {
        if (n < 2 || strcmp(f[1], "1") != 0) {
            protocol_error(s, "unsupported version");
            return;
        }
        s->has_hello = true;
        snprintf(s->client, sizeof(s->client), "%s", n > 2 ? f[2] : "client");
        struct mg_buf b = MG_BUF_INIT;
        mg_auth_proto_cfield(&b, "HELLO");
        mg_auth_proto_cfield(&b, "1");
        mg_auth_proto_cfield(&b, "mgauthd");
        mg_buf_append_byte(&b, '\n');
        mg_conn_write(s->conn, b.data, b.len);
        mg_buf_free(&b);
        return;
    }
    if (!s->has_hello) {
        protocol_error(s, "HELLO first");
        return;
    }
    enum job_kind kind;
    size_t want;
    if (strcmp(f[0], "VERIFY") == 0) {
        kind = JOB_VERIFY;
        want = 7;
    } else if (strcmp(f[0], "RESOLVE") == 0) {
        kind = JOB_RESOLVE;
        want = 3;
    } else if (strcmp(f[0], "DOMAIN") == 0) {
        kind = JOB_DOMAIN;
        want = 3;
    } else {
        protocol_error(s, "unknown request");
        return;
    }
    if ((size_t)n != want || f[1][0] == '\0' || strlen(f[1]) > 10) {
        protocol_error(s, "wrong number of fields");
        return;
    }
    if (kind != JOB_VERIFY) {
        /* Directory look-ups are a few B-tree reads in pages the cache
         * holds: answered here, they cost far less than the hand-over to
         * a worker thread and back (two context switches, a wake-up of
         * the loop). Only a writer holding a page (mgadm, between its
         * change and the commit) can make one wait. */
        struct auth_job j = { .session = s, .kind = kind, .id = f[1], .n_args = 1 };
        j.args[0] = f[2];
        job_run(&j, s->server);
        mg_conn_write(s->conn, j.answer.data, j.answer.len);
        mg_buf_free(&j.answer);
        return;
    }
    struct auth_job *j = mg_calloc(1, sizeof(*j));
    j->session = s;
    j->kind = kind;
    j->id = mg_strdup(f[1]);
    for (int i = 2; i < n; i++)
        j->args[j->n_args++] = mg_strdup(f[i]);
    /* Wipe the password from the line buffer right away. */
    if (kind == JOB_VERIFY)
        mg_password_wipe(f[6], strlen(f[6]));
    j->req.data = j;
    s->refcount++;
    s->inflight++;
    s->server->jobs_running++;
    uv_queue_work(s->server->loop, &j->req, job_work, job_after);
    if (s->inflight >= AUTH_SESSION_INFLIGHT_MAX)
        mg_conn_pause_reading(s->conn);
}

static void conn_on_read(struct mg_conn *conn)
{
    struct auth_session *s = mg_conn_data(conn);
    struct mg_buf *in = mg_conn_input(conn);
    struct mg_line line;
    enum mg_line_status st;
    /* Answers given at once go out in one write. */
    mg_conn_cork(conn);
    while (!mg_conn_is_closing(conn) &&
           (st = mg_line_reader_next(&s->reader, in, &line)) != MG_LINE_NEED_MORE) {
        if (st != MG_LINE_OK) {
            protocol_error(s, "line too long");
            break;
        }
        char buf[MG_AUTH_PROTO_LINE_MAX + 1];
        memcpy(buf, line.data, line.len);
        buf[line.len] = '\0';
        mg_password_wipe((char *)line.data, line.len);
        handle_line(s, buf, line.len);
        mg_password_wipe(buf, line.len);
    }
    mg_line_reader_compact(&s->reader, in);
    mg_conn_uncork(conn);
}

static void conn_on_close(struct mg_conn *conn, const char *reason)
{
    struct auth_session *s = mg_conn_data(conn);
    (void)reason;
    s->conn = NULL;
    session_unref(s);
}

static const struct mg_conn_callbacks auth_conn_cb = {
    .on_read = conn_on_read,
    .on_close = conn_on_close,
};

static void on_connection(uv_stream_t *stream, int status)
{
    struct mg_listener *l = stream->data;
    struct auth_server *server = l->data;
    if (status < 0)
        return;
    struct mg_conn *conn = mg_conn_accept(stream, NULL, 0, &auth_conn_cb, NULL);
    if (conn == NULL)
        return;
    struct auth_session *s = mg_calloc(1, sizeof(*s));
    s->server = server;
    s->conn = conn;
    s->refcount = 1;
    mg_unique_id_session(s->id);
    snprintf(s->client, sizeof(s->client), "unknown");
    mg_line_reader_init(&s->reader, MG_AUTH_PROTO_LINE_MAX);
    s->next = server->sessions;
    if (server->sessions != NULL)
        server->sessions->prev = s;
    server->sessions = s;
    mg_conn_set_data(conn, s);
}

struct auth_server *auth_server_start(uv_loop_t *loop, const struct mg_settings *settings,
                                      struct mg_userdb *userdb, struct mg_listener *listener)
{
    struct auth_server *server = mg_calloc(1, sizeof(*server));
    server->loop = loop;
    server->settings = settings;
    server->userdb = userdb;
    server->listener = listener;
    server->cache = auth_cache_new(settings->auth.cache_ttl_ms);
    const char *error;
    if (mg_password_hash(AUTH_DUMMY_PASSWORD, &server->dummy_hash, &error) != 0)
        mg_log_fatal("auth", "cannot hash: %s", error);
    listener->data = server;
    int r = mg_listener_start(listener, on_connection);
    if (r != 0)
        mg_log_fatal("auth", "cannot listen on %s: %s", listener->name, uv_strerror(r));
    return server;
}

void auth_server_stop(struct auth_server *server)
{
    mg_listener_close(server->listener, NULL);
    for (struct auth_session *s = server->sessions; s != NULL; s = s->next) {
        if (s->conn != NULL)
            mg_conn_close(s->conn);
    }
}

unsigned auth_server_jobs_running(const struct auth_server *server)
{
    return server->jobs_running;
}

bool auth_server_is_idle(const struct auth_server *server)
{
    return server->jobs_running == 0 && server->sessions == NULL;
}

void auth_server_free(struct auth_server **server)
{
    if (*server == NULL)
        return;
    auth_cache_free(&(*server)->cache);
    free((*server)->dummy_hash);
    free(*server);
    *server = NULL;
}
