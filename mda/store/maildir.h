/* Maildir++ on disk: names, paths and the durable file operations.
 *
 * Layout of one user (INBOX at the root, folders as ".Name"):
 *
 *   <mail_dir>/<domain>/<local>/{cur,new,tmp}/
 *   <mail_dir>/<domain>/<local>/.Sent/{cur,new,tmp}/ + maildirfolder
 *   <mail_dir>/<domain>/<local>/.Archive.2026/...
 *
 * Every folder holds `mailgenic-uidvalidity` (its UIDVALIDITY, written
 * once) and every message file name carries its UID, so the index can be
 * rebuilt from the Maildir alone with UIDs intact:
 *
 *   <sec>.M<usec>P<pid>Q<n>.<host>,S=<size>,U=<uid>[:2,<flags>]
 *
 * Files are written to tmp/, fsynced, and renamed into new/ (deliveries)
 * or cur/ (APPEND, COPY); directories are fsynced before a message is
 * acknowledged. These functions block: call them from the thread pool. */
#ifndef MG_MDA_STORE_MAILDIR_H
#define MG_MDA_STORE_MAILDIR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

struct mg_buf;

/* IMAP system flags as stored (and as Maildir letters). */
enum maildir_flag {
    MAILDIR_FLAG_SEEN = 1 << 0,     /* S */
    MAILDIR_FLAG_ANSWERED = 1 << 1, /* R */
    MAILDIR_FLAG_FLAGGED = 1 << 2,  /* F */
    MAILDIR_FLAG_DELETED = 1 << 3,  /* T */
    MAILDIR_FLAG_DRAFT = 1 << 4,    /* D */
};
#define MAILDIR_FLAGS_ALL 0x1f

#define MAILDIR_UIDVALIDITY_FILE "mailgenic-uidvalidity"
/* What the index knows and a rebuild from the Maildir alone could not
 * guess: the folder's UIDNEXT once its highest UIDs were expunged (UIDs
 * must never be handed out twice under one UIDVALIDITY), and its RFC 6154
 * special use. One line each. */
#define MAILDIR_UIDNEXT_FILE "mailgenic-uidnext"
#define MAILDIR_SPECIAL_USE_FILE "mailgenic-special-use"
/* In the user's root: the subscribed names, one a line. */
#define MAILDIR_SUBSCRIPTIONS_FILE "mailgenic-subscriptions"
#define MAILDIR_BASE_MAX 200

/* "<mail_dir>/<domain>/<escaped local>" for a lower-cased address. */
char *maildir_user_root(const char *mail_dir, const char *address);
/* The folder directory of an on-disk folder name ("" for INBOX). */
char *maildir_folder_path(const char *user_root, const char *disk_name);

/* A new unique base name (without size and UID) for a file in tmp/. */
void maildir_new_base(char out[MAILDIR_BASE_MAX]);
/* The final base: base ",S=<size>,U=<uid>". */
void maildir_final_base(char out[MAILDIR_BASE_MAX], const char *base, uint64_t size,
                        uint32_t uid);
/* The same with ",C=<checksum>" (8 hex digits) before the size: the name of
 * a message renamed into place before its data is known to be on disk,
 * so that a file a crash cut short is recognised (maildir_file_check). */
void maildir_final_base_checked(char out[MAILDIR_BASE_MAX], const char *base, uint64_t size,
                                uint32_t uid, uint32_t checksum);
/* CRC-32C of data, continuing from crc (0 to start). */
uint32_t maildir_checksum(uint32_t crc, const void *data, size_t len);
/* Whether the file at path holds what its name promises: the size of
 * ",S=" and the checksum of ",C=". Returns 1 when it does, 0 when it does
 * not (a write a crash cut short), -1 when the name carries no checksum
 * (nothing to check), -errno when the file cannot be read. */
int maildir_file_check(const char *path);
/* "cur/<base>:2,<flags>" or "new/<base>", relative to the folder. */
void maildir_file_rel(char *out, size_t size, const char *base, bool in_new, unsigned flags);
/* Parses ",U=<uid>" and ",S=<size>" out of a file name (any directory);
 * *base_len_r is the length of the base (up to ":2,"). Returns 0, or -1
 * when the name carries no UID. */
int maildir_parse_name(const char *name, uint32_t *uid_r, uint64_t *size_r,
                       size_t *base_len_r, unsigned *flags_r);
/* Maildir letters for flags, in ASCII order, NUL-terminated. */
void maildir_flags_letters(unsigned flags, char out[8]);

/* Creates the folder's cur/new/tmp (and maildirfolder for non-INBOX), and
 * its UIDVALIDITY file when missing; fsyncs what it created. Returns 0 or
 * -errno. */
int maildir_folder_create(const char *folder_path, bool is_inbox, uint32_t uidvalidity);
/* Reads the folder's UIDVALIDITY (0 when missing or unreadable). */
uint32_t maildir_folder_uidvalidity(const char *folder_path);

/* Writes the one-line metadata file name of the folder durably: to a
 * temporary name, fsync, rename, fsync of the folder. Returns 0 or -errno. */
int maildir_folder_write_meta(const char *folder_path, const char *name, const char *value);
/* Reads its line (without the LF) into buf. Returns 0 or -errno (-ENOENT
 * when there is none). */
int maildir_folder_read_meta(const char *folder_path, const char *name, char *buf,
                             size_t size);

/* Writes data to tmp/<base> and fsyncs it. Returns 0 or -errno. */
int maildir_write_tmp(const char *folder_path, const char *base, const struct mg_buf *parts,
                      size_t n_parts);
/* fsync of a directory. */
int maildir_fsync_dir(const char *path);

#endif
