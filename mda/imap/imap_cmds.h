/* Handlers of the IMAP commands (cmd_*.c), for the command table. Each
 * runs a parsed command and answers it with imap_cmd_finish() now
 * (IMAP_CMD_DONE) or later (IMAP_CMD_ASYNC). */
#ifndef MG_MDA_IMAP_CMDS_H
#define MG_MDA_IMAP_CMDS_H

#include "mda/imap/imap_private.h"

enum imap_cmd_result cmd_capability(struct imap_cmd *cmd);
enum imap_cmd_result cmd_noop(struct imap_cmd *cmd);
enum imap_cmd_result cmd_logout(struct imap_cmd *cmd);
enum imap_cmd_result cmd_id(struct imap_cmd *cmd);
enum imap_cmd_result cmd_enable(struct imap_cmd *cmd);
enum imap_cmd_result cmd_login(struct imap_cmd *cmd);
enum imap_cmd_result cmd_authenticate(struct imap_cmd *cmd);
enum imap_cmd_result cmd_starttls(struct imap_cmd *cmd);
enum imap_cmd_result cmd_select(struct imap_cmd *cmd);
enum imap_cmd_result cmd_examine(struct imap_cmd *cmd);
enum imap_cmd_result cmd_create(struct imap_cmd *cmd);
enum imap_cmd_result cmd_delete(struct imap_cmd *cmd);
enum imap_cmd_result cmd_rename(struct imap_cmd *cmd);
enum imap_cmd_result cmd_subscribe(struct imap_cmd *cmd);
enum imap_cmd_result cmd_unsubscribe(struct imap_cmd *cmd);
enum imap_cmd_result cmd_list(struct imap_cmd *cmd);
enum imap_cmd_result cmd_lsub(struct imap_cmd *cmd);
enum imap_cmd_result cmd_status(struct imap_cmd *cmd);
enum imap_cmd_result cmd_namespace(struct imap_cmd *cmd);
enum imap_cmd_result cmd_append(struct imap_cmd *cmd);
enum imap_cmd_result cmd_check(struct imap_cmd *cmd);
enum imap_cmd_result cmd_close(struct imap_cmd *cmd);
enum imap_cmd_result cmd_unselect(struct imap_cmd *cmd);
enum imap_cmd_result cmd_expunge(struct imap_cmd *cmd);
enum imap_cmd_result cmd_idle(struct imap_cmd *cmd);
enum imap_cmd_result cmd_fetch(struct imap_cmd *cmd);
enum imap_cmd_result cmd_store(struct imap_cmd *cmd);
enum imap_cmd_result cmd_copy(struct imap_cmd *cmd);
enum imap_cmd_result cmd_move(struct imap_cmd *cmd);
enum imap_cmd_result cmd_search(struct imap_cmd *cmd);


#endif
