/* The control socket mgqueue talks to: one command per connection,
 *   LIST | FLUSH | DELETE <id> | HOLD <id> | RELEASE <id>
 * answered with text, the last line "OK" or "ERROR <reason>". Only the
 * socket's permissions (mgsmtpd's user, mode 0600) guard it. */
#ifndef MG_MTA_CONTROL_H
#define MG_MTA_CONTROL_H

#include <uv.h>

struct queue;
struct control;

int control_bind(uv_loop_t *loop, const char *path, struct control **control_r, char **error_r);
void control_start(struct control *control, struct queue *queue);
void control_stop(struct control *control);
void control_free(struct control **control);

#endif
