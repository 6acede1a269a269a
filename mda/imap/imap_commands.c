/* The command table: every IMAP command, the states it is allowed in and
 * its handler. */
#include "mda/imap/imap_cmds.h"
#include "mda/imap/imap_private.h"

#include "common/ascii.h"

#define ANY (IMAP_CMDF_PREAUTH | IMAP_CMDF_AUTH)
#define PRE IMAP_CMDF_PREAUTH
#define AUTH IMAP_CMDF_AUTH
#define SEL (IMAP_CMDF_AUTH | IMAP_CMDF_SELECTED)

static const struct imap_command imap_commands[] = {
    { "CAPABILITY", ANY, cmd_capability },
    { "NOOP", ANY, cmd_noop },
    { "LOGOUT", ANY, cmd_logout },
    { "ID", ANY, cmd_id },
    { "ENABLE", AUTH, cmd_enable },
    { "LOGIN", PRE, cmd_login },
    { "AUTHENTICATE", PRE, cmd_authenticate },
    { "STARTTLS", ANY, cmd_starttls },
    { "SELECT", AUTH, cmd_select },
    { "EXAMINE", AUTH, cmd_examine },
    { "CREATE", AUTH, cmd_create },
    { "DELETE", AUTH, cmd_delete },
    { "RENAME", AUTH, cmd_rename },
    { "SUBSCRIBE", AUTH, cmd_subscribe },
    { "UNSUBSCRIBE", AUTH, cmd_unsubscribe },
    { "LIST", AUTH, cmd_list },
    { "LSUB", AUTH, cmd_lsub },
    { "STATUS", AUTH, cmd_status },
    { "NAMESPACE", AUTH, cmd_namespace },
    { "APPEND", AUTH, cmd_append },
    { "CHECK", SEL, cmd_check },
    { "CLOSE", SEL, cmd_close },
    { "UNSELECT", SEL, cmd_unselect },
    { "EXPUNGE", SEL | IMAP_CMDF_UID, cmd_expunge },
    { "IDLE", AUTH, cmd_idle },
    { "FETCH", SEL | IMAP_CMDF_UID | IMAP_CMDF_NO_EXPUNGE, cmd_fetch },
    { "STORE", SEL | IMAP_CMDF_UID | IMAP_CMDF_NO_EXPUNGE, cmd_store },
    { "SEARCH", SEL | IMAP_CMDF_UID | IMAP_CMDF_NO_EXPUNGE, cmd_search },
    { "COPY", SEL | IMAP_CMDF_UID, cmd_copy },
    { "MOVE", SEL | IMAP_CMDF_UID, cmd_move },
};

const struct imap_command *imap_command_find(const char *name, size_t len)
{
    for (size_t i = 0; i < sizeof(imap_commands) / sizeof(imap_commands[0]); i++) {
        if (mg_ascii_eq(name, len, imap_commands[i].name))
            return &imap_commands[i];
    }
    return NULL;
}
