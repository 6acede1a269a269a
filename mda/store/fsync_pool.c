#include "mda/store/fsync_pool.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/alloc.h"
#include "common/log.h"

#define FSYNC_POOL_THREADS_MAX 64

struct fsync_pool {
    pthread_mutex_t lock;      /* guards the queue */
    struct fsync_req *head, *tail;
    /* One post per request queued (and one per thread at stop). Threads
     * and waiters sleep on semaphores rather than on conditions of the
     * queue's mutex: a wake-up then wakes one thread, which does not
     * have to fight for the mutex first. */
    sem_t work;
    bool is_stopping;
    unsigned n_threads;
    pthread_t threads[FSYNC_POOL_THREADS_MAX];
};

static int sync_dir(const char *path)
{
    int fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        return -errno;
    int r = fsync(fd) == 0 ? 0 : -errno;
    close(fd);
    return r;
}

/* Takes the head of the queue and, when it is a directory sync, every
 * other waiting request for the same directory (lock held). Returns the
 * group as a list. */
static struct fsync_req *take_group(struct fsync_pool *pool)
{
    struct fsync_req *first = pool->head;
    pool->head = first->next;
    first->next = NULL;
    if (first->dir != NULL) {
        struct fsync_req **pp = &pool->head, *last = first;
        while (*pp != NULL) {
            struct fsync_req *r = *pp;
            if (r->dir != NULL && strcmp(r->dir, first->dir) == 0) {
                *pp = r->next;
                r->next = NULL;
                last->next = r;
                last = r;
            } else {
                pp = &r->next;
            }
        }
    }
    pool->tail = NULL;
    for (struct fsync_req *r = pool->head; r != NULL; r = r->next)
        pool->tail = r;
    return first;
}

static void *pool_thread(void *arg)
{
    struct fsync_pool *pool = arg;
    for (;;) {
        while (sem_wait(&pool->work) != 0)
            ; /* EINTR */
        pthread_mutex_lock(&pool->lock);
        if (pool->head == NULL) {
            bool stop = pool->is_stopping;
            pthread_mutex_unlock(&pool->lock);
            if (stop)
                break;
            continue; /* served with an earlier request of its directory */
        }
        struct fsync_req *group = take_group(pool);
        pthread_mutex_unlock(&pool->lock);
        int r;
        if (group->dir != NULL)
            r = sync_dir(group->dir);
        else
            r = fdatasync(group->fd) == 0 ? 0 : -errno;
        for (struct fsync_req *q = group; q != NULL;) {
            struct fsync_req *next = q->next;
            q->result = r;
            sem_post(&q->done); /* q may be gone after this */
            q = next;
        }
    }
    return NULL;
}

struct fsync_pool *fsync_pool_new(unsigned threads)
{
    struct fsync_pool *pool = mg_calloc(1, sizeof(*pool));
    pthread_mutex_init(&pool->lock, NULL);
    sem_init(&pool->work, 0, 0);
    if (threads == 0)
        threads = 1;
    if (threads > FSYNC_POOL_THREADS_MAX)
        threads = FSYNC_POOL_THREADS_MAX;
    /* The threads only wait on the disk: small stacks will do (with room
     * for the sanitizers' bookkeeping). */
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    pthread_attr_setstacksize(&attr, 256 * 1024);
    int err = 0;
    for (unsigned i = 0; i < threads; i++) {
        int e = pthread_create(&pool->threads[pool->n_threads], &attr, pool_thread, pool);
        if (e == 0)
            pool->n_threads++;
        else
            err = e;
    }
    pthread_attr_destroy(&attr);
    if (pool->n_threads == 0)
        mg_log_fatal("store", "cannot start fsync threads: %s", strerror(err));
    return pool;
}

void fsync_pool_free(struct fsync_pool **pool)
{
    struct fsync_pool *p = *pool;
    if (p == NULL)
        return;
    pthread_mutex_lock(&p->lock);
    p->is_stopping = true;
    pthread_mutex_unlock(&p->lock);
    for (unsigned i = 0; i < p->n_threads; i++)
        sem_post(&p->work);
    for (unsigned i = 0; i < p->n_threads; i++)
        pthread_join(p->threads[i], NULL);
    pthread_mutex_destroy(&p->lock);
    sem_destroy(&p->work);
    free(p);
    *pool = NULL;
}

static void pool_submit(struct fsync_pool *pool, struct fsync_req *req)
{
    req->next = NULL;
    req->result = 0;
    sem_init(&req->done, 0, 0);
    pthread_mutex_lock(&pool->lock);
    if (pool->tail != NULL)
        pool->tail->next = req;
    else
        pool->head = req;
    pool->tail = req;
    pthread_mutex_unlock(&pool->lock);
    sem_post(&pool->work);
}

void fsync_pool_datasync(struct fsync_pool *pool, struct fsync_req *req, int fd)
{
    req->fd = fd;
    req->dir = NULL;
    pool_submit(pool, req);
}

void fsync_pool_dirsync(struct fsync_pool *pool, struct fsync_req *req, const char *path)
{
    req->fd = -1;
    req->dir = path;
    pool_submit(pool, req);
}

int fsync_pool_wait(struct fsync_pool *pool, struct fsync_req *req)
{
    (void)pool;
    while (sem_wait(&req->done) != 0)
        ; /* EINTR */
    sem_destroy(&req->done);
    return req->result;
}
