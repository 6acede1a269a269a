/* A few threads that run the store's fsyncs, so that the flushes one
 * write waits on (its message file, the directory entry that names it, the
 * index log) run at the same time instead of one after the other: a
 * delivery then waits about one disk flush, not three.
 *
 * Directory syncs are shared: a request for a directory that finds an
 * equal request still waiting in the queue is served by that one, so a
 * burst of deliveries into one folder costs one directory fsync. (A sync
 * that has started may not cover a rename made after it started, so only
 * waiting requests are merged.)
 *
 * Thread-safe; used from the libuv thread pool. Requests live in the
 * caller's memory until fsync_pool_wait returns. */
#ifndef MG_MDA_STORE_FSYNC_POOL_H
#define MG_MDA_STORE_FSYNC_POOL_H

#include <semaphore.h>
#include <stdbool.h>

struct fsync_pool;

struct fsync_req {
    /* Private. */
    struct fsync_req *next;
    int fd;               /* fdatasync of this descriptor, or -1 */
    const char *dir;      /* fsync of this directory, or NULL */
    int result;           /* 0 or -errno */
    sem_t done;           /* posted once the sync is done */
};

/* Starts threads (at least 1). Fatal when no thread can be started. */
struct fsync_pool *fsync_pool_new(unsigned threads);
/* Waits for the requests in the queue, then stops the threads. */
void fsync_pool_free(struct fsync_pool **pool);

/* fdatasync(fd) in the pool; fd stays open until fsync_pool_wait. */
void fsync_pool_datasync(struct fsync_pool *pool, struct fsync_req *req, int fd);
/* fsync of the directory at path (kept alive by the caller until
 * fsync_pool_wait); it covers every change made in the directory before
 * this call. */
void fsync_pool_dirsync(struct fsync_pool *pool, struct fsync_req *req, const char *path);
/* Waits for req; returns 0 or -errno. */
int fsync_pool_wait(struct fsync_pool *pool, struct fsync_req *req);

#endif
