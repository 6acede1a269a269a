/* Placeholder until the SMTP relay lands: takes no work, so remote
 * recipients stay queued (and expire after [queue] lifetime). */
#include "mta/delivery/remote_agent.h"

#include <stdlib.h>

#include "common/alloc.h"
#include "mta/queue/queue.h"

struct remote_agent {
    struct queue_agent agent;
};

static bool agent_deliver(struct queue_agent *qa, struct queue_delivery *d)
{
    (void)qa;
    (void)d;
    return false;
}

struct remote_agent *remote_agent_new(uv_loop_t *loop, const struct mg_settings *settings,
                                      struct queue *queue, char **error_r)
{
    (void)loop;
    (void)settings;
    (void)queue;
    (void)error_r;
    struct remote_agent *a = mg_calloc(1, sizeof(*a));
    a->agent.deliver = agent_deliver;
    a->agent.ctx = a;
    return a;
}

struct queue_agent *remote_agent_queue_agent(struct remote_agent *agent)
{
    return &agent->agent;
}

void remote_agent_stop(struct remote_agent *agent)
{
    (void)agent;
}

unsigned remote_agent_busy(const struct remote_agent *agent)
{
    (void)agent;
    return 0;
}

void remote_agent_free(struct remote_agent **agent)
{
    free(*agent);
    *agent = NULL;
}
