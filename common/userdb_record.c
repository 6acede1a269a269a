#include "common/userdb_record.h"

#include <stdio.h>
#include <string.h>

#include "common/address.h"
#include "common/arena.h"
#include "common/ascii.h"
#include "common/buf.h"
#include "common/log.h"
#include "common/userdb.h"
#include "common/utf8.h"

/* Longest address stored: "local@domain" as given (an alias's "@domain"
 * is shorter). */
#define RECORD_ADDRESS_MAX (MG_ADDRESS_LOCAL_MAX + 1 + MG_ADDRESS_DOMAIN_MAX)

char *mg__userdb_record_key(struct mg_arena *arena, const char *domain, const char *local,
                            size_t local_len, size_t *len_r)
{
    size_t domain_len = strlen(domain);
    char *key = mg_arena_alloc(arena, domain_len + 1 + local_len + 1);
    memcpy(key, domain, domain_len);
    key[domain_len] = '\0';
    memcpy(key + domain_len + 1, local, local_len);
    mg_ascii_lower(key + domain_len + 1, local_len);
    key[domain_len + 1 + local_len] = '\0';
    *len_r = domain_len + 1 + local_len;
    return key;
}

int mg__userdb_record_domain_parse(struct mg_arena *arena, const char *text,
                                   const char **domain_r, const char **error_r)
{
    size_t len = strlen(text);
    if (!mg_address_domain_is_valid(text, len, MG_ADDRESS_ALLOW_UTF8)) {
        *error_r = "invalid domain name";
        return -1;
    }
    char *domain = mg_arena_strndup(arena, text, len);
    mg_ascii_lower(domain, len);
    *domain_r = domain;
    return 0;
}

int mg__userdb_record_name_parse(struct mg_arena *arena, const char *text, bool is_alias,
                                 struct mg__userdb_name *name_r, const char **error_r)
{
    if (is_alias && text[0] == '@') {
        if (mg__userdb_record_domain_parse(arena, text + 1, &name_r->domain, error_r) < 0)
            return -1;
        name_r->local = "";
        name_r->address = mg_arena_printf(arena, "@%s", name_r->domain);
    } else {
        struct mg_address a;
        if (mg_address_parse(text, strlen(text), MG_ADDRESS_ALLOW_UTF8, arena, &a, error_r) < 0)
            return -1;
        name_r->local = a.local;
        name_r->domain = a.domain;
        name_r->address = mg_address_format(arena, &a);
    }
    name_r->key = mg__userdb_record_key(arena, name_r->domain, name_r->local,
                                        strlen(name_r->local), &name_r->key_len);
    return 0;
}

static bool hash_is_printable(const char *hash)
{
    for (const char *p = hash; *p != '\0'; p++) {
        if ((unsigned char)*p <= ' ' || (unsigned char)*p >= 0x7f)
            return false;
    }
    return true;
}

bool mg__userdb_record_hash_is_valid(const char *hash)
{
    return hash != NULL && hash[0] != '\0' && strlen(hash) <= MG__USERDB_HASH_MAX &&
           hash_is_printable(hash);
}

const char *mg__userdb_record_key_text(struct mg_arena *arena, const void *key, size_t len)
{
    const char *k = key;
    const char *nul = memchr(k, '\0', len);
    char *raw = nul == NULL ? mg_arena_strndup(arena, k, len)
                            : mg_arena_printf(arena, "%.*s@%.*s",
                                              (int)(len - (size_t)(nul - k) - 1), nul + 1,
                                              (int)(nul - k), k);
    char v[MG_LOG_VALUE_MAX];
    return mg_arena_strdup(arena, mg_log_value(v, sizeof(v), raw, strlen(raw)));
}

/* --- encoding --- */

static void put_u8(struct mg_buf *out, unsigned v)
{
    mg_buf_append_byte(out, (char)(v & 0xff));
}

static void put_u16(struct mg_buf *out, size_t v)
{
    mg_assert(v <= 0xffff);
    unsigned char b[2] = { (unsigned char)(v >> 8), (unsigned char)v };
    mg_buf_append(out, b, sizeof(b));
}

static void put_u64(struct mg_buf *out, uint64_t v)
{
    unsigned char b[8];
    for (int i = 7; i >= 0; i--) {
        b[i] = (unsigned char)(v & 0xff);
        v >>= 8;
    }
    mg_buf_append(out, b, sizeof(b));
}

static void put_str(struct mg_buf *out, const char *s)
{
    size_t len = strlen(s);
    put_u16(out, len);
    mg_buf_append(out, s, len);
}

void mg__userdb_record_domain_encode(struct mg_buf *out, const struct mg__userdb_domain_rec *rec)
{
    put_u8(out, MG__USERDB_RECORD_VERSION);
    put_u8(out, 0);
    put_u64(out, (uint64_t)rec->created);
}

void mg__userdb_record_user_encode(struct mg_buf *out, const struct mg__userdb_user_rec *rec)
{
    mg_assert(strlen(rec->address) <= RECORD_ADDRESS_MAX);
    mg_assert(strlen(rec->hash) <= MG__USERDB_HASH_MAX);
    put_u8(out, MG__USERDB_RECORD_VERSION);
    put_u8(out, rec->is_enabled ? 0 : MG__USERDB_USER_DISABLED);
    put_u64(out, rec->quota_bytes);
    put_u64(out, (uint64_t)rec->created);
    put_str(out, rec->address);
    put_str(out, rec->hash);
}

void mg__userdb_record_alias_encode(struct mg_buf *out, const struct mg__userdb_alias_rec *rec)
{
    mg_assert(strlen(rec->address) <= RECORD_ADDRESS_MAX);
    mg_assert(rec->n_targets >= 1 && rec->n_targets <= MG_USERDB_ALIAS_TARGETS_MAX);
    put_u8(out, MG__USERDB_RECORD_VERSION);
    put_u8(out, 0);
    put_str(out, rec->address);
    put_u16(out, rec->n_targets);
    for (size_t i = 0; i < rec->n_targets; i++) {
        mg_assert(strlen(rec->targets[i]) <= MG_ADDRESS_PATH_MAX);
        put_str(out, rec->targets[i]);
    }
}

/* --- decoding: every read is bounds-checked against the value's length --- */

struct reader {
    const unsigned char *p;
    size_t left;
    const char *error;
};

static bool get_u8(struct reader *r, unsigned *v_r)
{
    if (r->left < 1) {
        r->error = "record truncated";
        return false;
    }
    *v_r = r->p[0];
    r->p++;
    r->left--;
    return true;
}

static bool get_u16(struct reader *r, size_t *v_r)
{
    if (r->left < 2) {
        r->error = "record truncated";
        return false;
    }
    *v_r = ((size_t)r->p[0] << 8) | r->p[1];
    r->p += 2;
    r->left -= 2;
    return true;
}

static bool get_u64(struct reader *r, uint64_t *v_r)
{
    if (r->left < 8) {
        r->error = "record truncated";
        return false;
    }
    uint64_t v = 0;
    for (int i = 0; i < 8; i++)
        v = (v << 8) | r->p[i];
    *v_r = v;
    r->p += 8;
    r->left -= 8;
    return true;
}

/* A length-prefixed string of 1..max bytes: no NUL, valid UTF-8. */
static bool get_str(struct reader *r, size_t max, struct mg_arena *arena, const char **s_r)
{
    size_t len;
    if (!get_u16(r, &len))
        return false;
    if (len == 0 || len > max) {
        r->error = "bad string length in record";
        return false;
    }
    if (r->left < len) {
        r->error = "record truncated";
        return false;
    }
    const char *s = (const char *)r->p;
    if (memchr(s, '\0', len) != NULL || !mg_utf8_is_valid(s, len)) {
        r->error = "bad string in record";
        return false;
    }
    *s_r = mg_arena_strndup(arena, s, len);
    r->p += len;
    r->left -= len;
    return true;
}

static bool get_header(struct reader *r, unsigned allowed_flags, unsigned *flags_r)
{
    unsigned version;
    if (!get_u8(r, &version) || !get_u8(r, flags_r))
        return false;
    if (version != MG__USERDB_RECORD_VERSION) {
        r->error = "unknown record version";
        return false;
    }
    if ((*flags_r & ~allowed_flags) != 0) {
        r->error = "unknown flags in record";
        return false;
    }
    return true;
}

static int reader_finish(struct reader *r, bool ok, const char **error_r)
{
    if (ok && r->left != 0) {
        r->error = "trailing bytes in record";
        ok = false;
    }
    if (!ok) {
        *error_r = r->error;
        return -1;
    }
    return 0;
}

int mg__userdb_record_domain_decode(const void *data, size_t len,
                                    struct mg__userdb_domain_rec *rec_r, const char **error_r)
{
    struct reader r = { data, len, NULL };
    unsigned flags;
    uint64_t created;
    bool ok = get_header(&r, 0, &flags) && get_u64(&r, &created);
    if (ok)
        rec_r->created = (int64_t)created;
    return reader_finish(&r, ok, error_r);
}

int mg__userdb_record_user_decode(const void *data, size_t len, struct mg_arena *arena,
                                  struct mg__userdb_user_rec *rec_r, const char **error_r)
{
    struct reader r = { data, len, NULL };
    unsigned flags;
    uint64_t quota, created;
    const char *address, *hash;
    bool ok = get_header(&r, MG__USERDB_USER_DISABLED, &flags) && get_u64(&r, &quota) &&
              get_u64(&r, &created) && get_str(&r, RECORD_ADDRESS_MAX, arena, &address) &&
              get_str(&r, MG__USERDB_HASH_MAX, arena, &hash);
    if (ok && !hash_is_printable(hash)) {
        r.error = "bad password hash in record";
        ok = false;
    }
    if (ok) {
        rec_r->is_enabled = (flags & MG__USERDB_USER_DISABLED) == 0;
        rec_r->quota_bytes = quota;
        rec_r->created = (int64_t)created;
        rec_r->address = address;
        rec_r->hash = hash;
    }
    return reader_finish(&r, ok, error_r);
}

int mg__userdb_record_user_decode_key(const void *key, size_t key_len, const void *data,
                                      size_t len, struct mg_arena *arena,
                                      struct mg__userdb_user_rec *rec_r, const char **error_r)
{
    if (mg__userdb_record_user_decode(data, len, arena, rec_r, error_r) < 0)
        return -1;
    /* The key is "domain\0local"; the record holds "Local@domain". */
    const char *k = key;
    const char *nul = memchr(k, '\0', key_len);
    size_t domain_len = nul != NULL ? (size_t)(nul - k) : 0;
    size_t local_len = nul != NULL ? key_len - domain_len - 1 : 0;
    const char *a = rec_r->address;
    bool is_match = nul != NULL && strlen(a) == local_len + 1 + domain_len &&
                    a[local_len] == '@' && memcmp(a + local_len + 1, k, domain_len) == 0;
    for (size_t i = 0; is_match && i < local_len; i++)
        is_match = mg_ascii_tolower(a[i]) == nul[1 + i];
    if (!is_match) {
        *error_r = "address does not match its key";
        return -1;
    }
    return 0;
}

int mg__userdb_record_alias_decode(const void *data, size_t len, struct mg_arena *arena,
                                   struct mg__userdb_alias_rec *rec_r, const char **error_r)
{
    struct reader r = { data, len, NULL };
    unsigned flags;
    const char *address;
    size_t count;
    bool ok = get_header(&r, 0, &flags) && get_str(&r, RECORD_ADDRESS_MAX, arena, &address) &&
              get_u16(&r, &count);
    if (ok && (count == 0 || count > MG_USERDB_ALIAS_TARGETS_MAX)) {
        r.error = "bad target count in record";
        ok = false;
    }
    const char **targets = NULL;
    if (ok) {
        targets = mg_arena_alloc(arena, count * sizeof(*targets));
        for (size_t i = 0; ok && i < count; i++)
            ok = get_str(&r, MG_ADDRESS_PATH_MAX, arena, &targets[i]);
    }
    if (ok) {
        rec_r->address = address;
        rec_r->n_targets = count;
        rec_r->targets = targets;
    }
    return reader_finish(&r, ok, error_r);
}
