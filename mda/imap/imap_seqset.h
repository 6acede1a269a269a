/* Sequence sets ("1:4,7,9:*") and their meaning in a mailbox view. */
#ifndef MG_MDA_IMAP_SEQSET_H
#define MG_MDA_IMAP_SEQSET_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct mg_arena;

#define IMAP_SEQ_STAR UINT32_MAX

struct imap_seq_range {
    uint32_t lo, hi; /* hi may be IMAP_SEQ_STAR; lo <= hi after parsing */
};

/* After imap_seqset_parse() the ranges are normalised: those without '*'
 * sorted by lo and disjoint (overlapping and adjacent ones merged), then
 * at most two "n:*" ranges that mean the same as all of the input's. */

struct imap_seqset {
    struct imap_seq_range *ranges;
    size_t count;
};

/* Parses a sequence set. Returns 0 or -1 (malformed, a 0 number, a
 * leading zero, or a number above 4294967294: 2^32-1 stands for '*'). */
int imap_seqset_parse(struct mg_arena *arena, const char *text, size_t len,
                      struct imap_seqset *set_r);

/* Resolves a set against a view of count messages with ascending UIDs:
 * appends the matching 0-based positions, ascending and unique, to
 * *idx_r (arena). Sequence numbers beyond count are an error (-1) unless
 * they come from '*'; UIDs that do not exist are skipped. In UID mode '*'
 * is the highest UID (and "n:*" with n above it still names it). The
 * cost is O(ranges log ranges + count); the result holds at most count
 * positions. */
int imap_seqset_resolve(struct mg_arena *arena, const struct imap_seqset *set, bool is_uid,
                        const uint32_t *uids, size_t count, uint32_t **idx_r, size_t *n_r);

/* Whether uid (or a sequence number) is in a set from imap_seqset_parse();
 * '*' means max_uid (or the highest sequence number). O(log ranges). */
bool imap_seqset_contains_uid(const struct imap_seqset *set, uint32_t uid, uint32_t max_uid);

/* Writes UIDs (ascending; duplicates allowed) in compact set form "1:3,7"
 * into out; nothing for n == 0. */
struct mg_buf;
void imap_seqset_write_uids(struct mg_buf *out, const uint32_t *uids, size_t n);

#endif
