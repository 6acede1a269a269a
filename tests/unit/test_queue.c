/* The queue manager (mta/queue/) against a fake local agent: due work is
 * handed out oldest first and only while the agent takes it; retries come
 * back by themselves; hold, release and delete; a message delivered at
 * once leaves no status log; spool files of finished messages are
 * rewritten by new ones (cut to their length), and only once msg/ was
 * synced after they left it. */
#include "testutil.h"

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <uv.h>

#include "common/alloc.h"
#include "common/arena.h"
#include "common/buf.h"
#include "common/log.h"
#include "common/settings.h"
#include "mta/queue/queue.h"
#include "mta/queue/queue_file.h"

#define MAX_TAKEN 64
#define MAX_SEEN 256

struct fake_agent {
    struct queue_agent agent;
    struct queue *queue;
    unsigned capacity;                  /* deliveries it holds at once */
    struct queue_delivery *taken[MAX_TAKEN];
    size_t n_taken;
    char seen[MAX_SEEN][MG_UNIQUE_ID_LEN + 1]; /* IDs in the order taken */
    size_t n_seen;
};

static bool fake_deliver(struct queue_agent *qa, struct queue_delivery *d)
{
    struct fake_agent *a = qa->ctx;
    if (a->n_taken >= a->capacity)
        return false;
    a->taken[a->n_taken++] = d;
    if (a->n_seen < MAX_SEEN)
        snprintf(a->seen[a->n_seen++], sizeof(a->seen[0]), "%s", d->id);
    return true;
}

/* Every delivery held gets this result for all its recipients. */
static void fake_finish_all(struct fake_agent *a, int result, const char *dsn, const char *text)
{
    size_t n = a->n_taken;
    struct queue_delivery *list[MAX_TAKEN];
    memcpy(list, a->taken, n * sizeof(*list));
    a->n_taken = 0;
    for (size_t i = 0; i < n; i++) {
        for (size_t k = 0; k < list[i]->n_rcpts; k++) {
            list[i]->rcpts[k].result = result;
            snprintf(list[i]->rcpts[k].dsn, sizeof(list[i]->rcpts[k].dsn), "%s", dsn);
            list[i]->rcpts[k].text = mg_strdup(text);
        }
        queue_delivery_done(a->queue, list[i]);
    }
}

struct fixture {
    uv_loop_t loop;
    char *dir;
    char *queue_dir;
    struct mg_settings *settings;
    struct queue *queue;
    struct fake_agent agent;
    int committed;
    char last_id[MG_UNIQUE_ID_LEN + 1];
};

static void fixture_start(struct fixture *f)
{
    memset(f, 0, sizeof(*f));
    uv_loop_init(&f->loop);
    f->dir = testutil_mkdtemp();
    f->queue_dir = mg_asprintf("%s/queue", f->dir);
    struct mg_buf conf = MG_BUF_INIT;
    mg_buf_printf(&conf, "hostname = mailgenic.test\n[mta]\nqueue_dir = %s\n[queue]\nretry_min = 1s\nretry_max = 1s\n",
                  f->queue_dir);
    char *error = NULL;
    if (mg_settings_load_string(conf.data, conf.len, "test.conf", &f->settings, &error) != 0)
        fail_msg("%s", error);
    mg_buf_free(&conf);
    if (queue_open(&f->loop, f->settings, &f->queue, &error) != 0)
        fail_msg("queue: %s", error);
    f->agent.agent.deliver = fake_deliver;
    f->agent.agent.ctx = &f->agent;
    f->agent.queue = f->queue;
    queue_set_agents(f->queue, &f->agent.agent, NULL);
}

static bool jobs_done(void *ctx)
{
    struct fixture *f = ctx;
    return queue_jobs_running(f->queue) == 0;
}

static void wait_jobs(struct fixture *f)
{
    if (!testutil_run_until(&f->loop, jobs_done, f, 10))
        fail_msg("queue jobs still running: %u", queue_jobs_running(f->queue));
}

static void fixture_stop(struct fixture *f)
{
    wait_jobs(f);
    queue_close(&f->queue);
    testutil_run_loop(&f->loop, 5); /* the queue's close callbacks */
    testutil_close_loop(&f->loop);
    mg_settings_free(&f->settings);
    testutil_rmtree(f->dir);
    free(f->queue_dir);
    free(f->dir);
}

static void commit_cb(int status, const char *id, void *ctx)
{
    struct fixture *f = ctx;
    assert_int_equal(status, 0);
    snprintf(f->last_id, sizeof(f->last_id), "%s", id);
    f->committed++;
}

static bool committed(void *ctx)
{
    struct fixture *f = ctx;
    return f->committed > 0;
}

/* Queues a message to one local recipient; returns its ID in f->last_id
 * once it is durable. */
static void inject(struct fixture *f, const char *content, size_t len)
{
    struct queue_file_rcpt r = { QUEUE_ROUTE_LOCAL, "bob@mailgenic.test", NULL, 0 };
    struct queue_envelope env = { 0 };
    env.from = "alice@example.test";
    env.rcpts = &r;
    env.n_rcpts = 1;
    env.client = "test";
    f->committed = 0;
    queue_inject(f->queue, &env, content, len, commit_cb, f);
    if (!testutil_run_until(&f->loop, committed, f, 10))
        fail_msg("no commit");
}

static const char small[] = "Subject: test\r\n\r\nhello\r\n";

struct wait_taken {
    struct fixture *f;
    size_t n;
};

static bool taken_n(void *ctx)
{
    struct wait_taken *w = ctx;
    return w->f->agent.n_taken >= w->n;
}

static void wait_taken(struct fixture *f, size_t n, double seconds)
{
    struct wait_taken w = { f, n };
    if (!testutil_run_until(&f->loop, taken_n, &w, seconds))
        fail_msg("the agent holds %zu deliveries, want %zu", f->agent.n_taken, n);
}

static char *spool_path(struct fixture *f, const char *sub, const char *name)
{
    return mg_asprintf("%s/%s/%s", f->queue_dir, sub, name);
}

static size_t dir_count(struct fixture *f, const char *sub, char *first, size_t size)
{
    char *path = spool_path(f, sub, "");
    DIR *d = opendir(path);
    free(path);
    assert_non_null(d);
    size_t n = 0;
    struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        if (de->d_name[0] == '.')
            continue;
        if (n == 0 && first != NULL && strlen(de->d_name) < size)
            memcpy(first, de->d_name, strlen(de->d_name) + 1);
        n++;
    }
    closedir(d);
    return n;
}

static bool exists(struct fixture *f, const char *sub, const char *name)
{
    char *path = spool_path(f, sub, name);
    bool r = access(path, F_OK) == 0;
    free(path);
    return r;
}

static ino_t inode_of(struct fixture *f, const char *sub, const char *name)
{
    char *path = spool_path(f, sub, name);
    struct stat st;
    if (stat(path, &st) != 0)
        fail_msg("no %s", path);
    free(path);
    return st.st_ino;
}

/* The content of msg/<id> as the queue file says it is. */
static char *read_content(struct fixture *f, const char *id, size_t *len_r)
{
    char *path = spool_path(f, "msg", id);
    struct mg_arena *arena = mg_arena_new(1024);
    struct queue_envelope env;
    uint64_t off, len;
    const char *error = NULL;
    if (queue_file_read(path, arena, &env, &off, &len, &error) != 0)
        fail_msg("%s: %s", path, error);
    assert_string_equal(env.id, id);
    size_t all_len;
    char *all = testutil_read_file(path, &all_len);
    assert_true(off + len <= all_len);
    char *content = mg_malloc(len + 1);
    memcpy(content, all + off, len);
    content[len] = '\0';
    free(all);
    free(path);
    mg_arena_free(&arena);
    *len_r = len;
    return content;
}

static void test_queue_oldest_first(void **state)
{
    (void)state;
    struct fixture f;
    fixture_start(&f);
    /* A full agent: everything waits, each refusal costs one offer. */
    char ids[8][MG_UNIQUE_ID_LEN + 1];
    for (int i = 0; i < 8; i++) {
        inject(&f, small, sizeof(small) - 1);
        memcpy(ids[i], f.last_id, sizeof(ids[i]));
    }
    testutil_run_until(&f.loop, jobs_done, &f, 1);
    assert_int_equal(f.agent.n_seen, 0);
    /* Room for one at a time: the oldest goes first. */
    f.agent.capacity = 1;
    for (int i = 0; i < 8; i++) {
        queue_kick(f.queue);
        wait_taken(&f, 1, 10);
        fake_finish_all(&f.agent, 2, "2.0.0", "250 2.0.0 Ok");
    }
    wait_jobs(&f);
    assert_int_equal(f.agent.n_seen, 8);
    for (int i = 0; i < 8; i++)
        assert_string_equal(f.agent.seen[i], ids[i]);
    assert_int_equal(queue_count(f.queue), 0);
    assert_int_equal(dir_count(&f, "msg", NULL, 0), 0);
    assert_int_equal(dir_count(&f, "log", NULL, 0), 0);
    assert_int_equal(dir_count(&f, "tmp", NULL, 0), 0);
    fixture_stop(&f);
}

static void test_queue_retry_hold_delete(void **state)
{
    (void)state;
    struct fixture f;
    fixture_start(&f);
    f.agent.capacity = 4;
    inject(&f, small, sizeof(small) - 1);
    char id[MG_UNIQUE_ID_LEN + 1];
    memcpy(id, f.last_id, sizeof(id));
    wait_taken(&f, 1, 10);
    /* A temporary failure: in the status log, tried again after
     * retry_min (1 s) without anybody kicking the queue. */
    fake_finish_all(&f.agent, 4, "4.3.0", "451 4.3.0 try later");
    char *log_path = spool_path(&f, "log", id);
    char *log = testutil_read_file(log_path, NULL);
    assert_non_null(log);
    assert_non_null(strstr(log, "0 deferred "));
    free(log);
    uint64_t t0 = uv_now(&f.loop);
    wait_taken(&f, 1, 5);
    uint64_t waited = uv_now(&f.loop) - t0;
    if (waited < 900)
        fail_msg("retried after %llu ms", (unsigned long long)waited);
    fake_finish_all(&f.agent, 2, "2.0.0", "250 2.0.0 Ok");
    wait_jobs(&f);
    assert_false(exists(&f, "msg", id));
    assert_false(exists(&f, "log", id));
    assert_int_equal(queue_count(f.queue), 0);

    /* Held: not offered; released: offered at once. */
    f.agent.capacity = 0;
    inject(&f, small, sizeof(small) - 1);
    memcpy(id, f.last_id, sizeof(id));
    assert_int_equal(queue_hold(f.queue, id, true), 0);
    f.agent.capacity = 4;
    queue_kick(f.queue);
    testutil_run_until(&f.loop, jobs_done, &f, 1);
    uv_run(&f.loop, UV_RUN_NOWAIT);
    assert_int_equal(f.agent.n_taken, 0);
    assert_int_equal(queue_hold(f.queue, id, false), 0);
    wait_taken(&f, 1, 5);
    /* Deleted while in flight: its result is ignored, the files go. */
    assert_int_equal(queue_delete(f.queue, id), 0);
    fake_finish_all(&f.agent, 4, "4.3.0", "451 4.3.0 try later");
    wait_jobs(&f);
    assert_int_equal(queue_count(f.queue), 0);
    assert_false(exists(&f, "msg", id));
    assert_false(exists(&f, "log", id));
    free(log_path);
    fixture_stop(&f);
}

static void test_queue_files_reused(void **state)
{
    (void)state;
    struct fixture f;
    fixture_start(&f);
    f.agent.capacity = 4;
    /* A large message (written to its file while it arrives), delivered
     * at once: no status log, its file goes to free/. */
    size_t big_len = 200 * 1024;
    char *big = mg_malloc(big_len);
    for (size_t i = 0; i < big_len; i++)
        big[i] = (i % 78 == 76) ? '\r' : (i % 78 == 77) ? '\n' : (char)('a' + i % 26);
    inject(&f, big, big_len);
    char a[MG_UNIQUE_ID_LEN + 1];
    memcpy(a, f.last_id, sizeof(a));
    size_t len;
    char *content = read_content(&f, a, &len);
    assert_int_equal(len, big_len);
    assert_memory_equal(content, big, big_len);
    free(content);
    wait_taken(&f, 1, 10);
    fake_finish_all(&f.agent, 2, "2.0.0", "250 2.0.0 Ok");
    assert_int_equal(dir_count(&f, "log", NULL, 0), 0); /* not even for a moment */
    wait_jobs(&f);
    char name[300];
    assert_int_equal(dir_count(&f, "free", name, sizeof(name)), 1);
    assert_false(exists(&f, "msg", a));
    ino_t reused = inode_of(&f, "free", name);

    /* Not reused before msg/ was synced after it left: the next message
     * gets a new file (and its commit syncs msg/)... */
    f.agent.capacity = 0;
    inject(&f, small, sizeof(small) - 1);
    char b[MG_UNIQUE_ID_LEN + 1];
    memcpy(b, f.last_id, sizeof(b));
    assert_true(inode_of(&f, "msg", b) != reused);
    wait_jobs(&f);
    /* ...the one after rewrites it, cut to its own length. */
    inject(&f, small, sizeof(small) - 1);
    char c[MG_UNIQUE_ID_LEN + 1];
    memcpy(c, f.last_id, sizeof(c));
    assert_true(inode_of(&f, "msg", c) == reused);
    assert_int_equal(dir_count(&f, "free", NULL, 0), 0);
    content = read_content(&f, c, &len);
    assert_int_equal(len, sizeof(small) - 1);
    assert_memory_equal(content, small, len);
    free(content);

    f.agent.capacity = 4;
    queue_kick(f.queue);
    wait_taken(&f, 2, 10);
    fake_finish_all(&f.agent, 2, "2.0.0", "250 2.0.0 Ok");
    wait_jobs(&f);
    assert_int_equal(queue_count(f.queue), 0);
    assert_int_equal(dir_count(&f, "msg", NULL, 0), 0);
    assert_int_equal(dir_count(&f, "log", NULL, 0), 0);
    assert_int_equal(dir_count(&f, "free", NULL, 0), 2);

    /* At the next start tmp/ and free/ are emptied. */
    queue_close(&f.queue);
    testutil_run_loop(&f.loop, 5);
    char *error = NULL;
    if (queue_open(&f.loop, f.settings, &f.queue, &error) != 0)
        fail_msg("queue: %s", error);
    assert_int_equal(dir_count(&f, "free", NULL, 0), 0);
    assert_int_equal(dir_count(&f, "tmp", NULL, 0), 0);
    free(big);
    fixture_stop(&f);
}

int main(void)
{
    mg_log_set_level(MG_LOG_ERROR);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_queue_oldest_first),
        cmocka_unit_test(test_queue_retry_hold_delete),
        cmocka_unit_test(test_queue_files_reused),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
