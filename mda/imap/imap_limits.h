/* Hard limits of the IMAP server, in one place. Configurable ones
 * (line length, APPEND size, timeouts, failures) come from [imap]. */
#ifndef MG_MDA_IMAP_LIMITS_H
#define MG_MDA_IMAP_LIMITS_H

/* A whole command (lines and literals, except APPEND's message literal). */
#define IMAP_COMMAND_MAX (1024 * 1024)
/* Before login: a command is LOGIN or AUTHENTICATE at most. */
#define IMAP_COMMAND_MAX_PREAUTH (16 * 1024)
/* Literals announced before login (user names, passwords). */
#define IMAP_LITERAL_MAX_PREAUTH 4096
/* Bad commands in a row before the connection is closed. */
#define IMAP_MAX_BAD_COMMANDS 20
/* Tags are echoed back: keep them short. */
#define IMAP_TAG_MAX 128
/* Messages whose file is larger than this are read through the thread
 * pool; smaller ones are read directly (one page-cache read). */
#define IMAP_SYNC_READ_MAX (128 * 1024)
/* Chunk size when streaming message bodies. */
#define IMAP_STREAM_CHUNK (64 * 1024)
/* Message-data items in one FETCH. */
#define IMAP_FETCH_ITEMS_MAX 64
/* Search keys in one SEARCH (nested programs included). */
#define IMAP_SEARCH_KEYS_MAX 1000

#endif
