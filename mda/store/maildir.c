#include "mda/store/maildir.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <unistd.h>

#include "common/alloc.h"
#include "common/fd_io.h"
#include "common/buf.h"

/* Local parts may hold any byte SMTPUTF8 allows; on disk only a safe set
 * is kept verbatim. */
static bool is_safe_local_char(unsigned char c)
{
    return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '.' || c == '_' ||
           c == '-' || c == '+' || c >= 0x80;
}

char *maildir_user_root(const char *mail_dir, const char *address)
{
    const char *at = strrchr(address, '@');
    struct mg_buf b = MG_BUF_INIT;
    mg_buf_printf(&b, "%s/%s/", mail_dir, at != NULL ? at + 1 : "local");
    size_t local_len = at != NULL ? (size_t)(at - address) : strlen(address);
    for (size_t i = 0; i < local_len; i++) {
        unsigned char c = (unsigned char)address[i];
        /* A leading dot would hide the directory and look like a folder. */
        if (!is_safe_local_char(c) || (i == 0 && c == '.'))
            mg_buf_printf(&b, "%%%02X", c);
        else
            mg_buf_append_byte(&b, (char)c);
    }
    return mg_buf_steal(&b, NULL);
}

char *maildir_folder_path(const char *user_root, const char *disk_name)
{
    if (disk_name[0] == '\0')
        return mg_strdup(user_root);
    return mg_asprintf("%s/.%s", user_root, disk_name);
}

void maildir_new_base(char out[MAILDIR_BASE_MAX])
{
    static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
    static unsigned long counter;
    static char host[64];
    struct timeval tv;
    gettimeofday(&tv, NULL);
    pthread_mutex_lock(&lock);
    unsigned long q = ++counter;
    if (host[0] == '\0') {
        char raw[256];
        if (gethostname(raw, sizeof(raw) - 1) != 0)
            strcpy(raw, "localhost");
        raw[sizeof(raw) - 1] = '\0';
        /* Maildir: '/' and ':' in the host name are written as octal. */
        size_t o = 0;
        for (size_t i = 0; raw[i] != '\0' && o + 5 < sizeof(host); i++) {
            if (raw[i] == '/')
                o += (size_t)snprintf(host + o, sizeof(host) - o, "\\057");
            else if (raw[i] == ':')
                o += (size_t)snprintf(host + o, sizeof(host) - o, "\\072");
            else if (raw[i] == ',')
                o += (size_t)snprintf(host + o, sizeof(host) - o, "\\054");
            else
                host[o++] = raw[i];
        }
        host[o] = '\0';
    }
    pthread_mutex_unlock(&lock);
    snprintf(out, MAILDIR_BASE_MAX, "%ld.M%06ldP%ldQ%lu.%s", (long)tv.tv_sec,
             (long)tv.tv_usec, (long)getpid(), q, host);
}

void maildir_final_base(char out[MAILDIR_BASE_MAX], const char *base, uint64_t size,
                        uint32_t uid)
{
    snprintf(out, MAILDIR_BASE_MAX, "%s,S=%" PRIu64 ",U=%" PRIu32, base, size, uid);
}

void maildir_final_base_checked(char out[MAILDIR_BASE_MAX], const char *base, uint64_t size,
                                uint32_t uid, uint32_t checksum)
{
    snprintf(out, MAILDIR_BASE_MAX, "%s,C=%08" PRIx32 ",S=%" PRIu64 ",U=%" PRIu32, base,
             checksum, size, uid);
}

/* CRC-32C (Castagnoli), eight bytes at a time with the SSE 4.2
 * instruction when the CPU has it, a byte at a time from a table
 * otherwise. */
static uint32_t crc32c_table[256];
static pthread_once_t crc32c_once = PTHREAD_ONCE_INIT;
static bool crc32c_has_sse42;

static void crc32c_init(void)
{
    for (uint32_t i = 0; i < 256; i++) {
        uint32_t c = i;
        for (int k = 0; k < 8; k++)
            c = c & 1 ? (c >> 1) ^ 0x82f63b78u : c >> 1;
        crc32c_table[i] = c;
    }
#if defined(__x86_64__)
    __builtin_cpu_init();
    crc32c_has_sse42 = __builtin_cpu_supports("sse4.2");
#endif
}

#if defined(__x86_64__)
__attribute__((target("sse4.2"))) static uint32_t crc32c_sse42(uint32_t crc, const unsigned char *p,
                                                              size_t len)
{
    uint64_t c = crc;
    while (len >= 8) {
        uint64_t v;
        memcpy(&v, p, 8);
        c = __builtin_ia32_crc32di(c, v);
        p += 8;
        len -= 8;
    }
    uint32_t c32 = (uint32_t)c;
    while (len-- > 0)
        c32 = __builtin_ia32_crc32qi(c32, *p++);
    return c32;
}
#endif

uint32_t maildir_checksum(uint32_t crc, const void *data, size_t len)
{
    pthread_once(&crc32c_once, crc32c_init);
    const unsigned char *p = data;
    crc = ~crc;
#if defined(__x86_64__)
    if (crc32c_has_sse42)
        return ~crc32c_sse42(crc, p, len);
#endif
    while (len-- > 0)
        crc = crc32c_table[(crc ^ *p++) & 0xff] ^ (crc >> 8);
    return ~crc;
}

/* ",C=<8 hex digits>" in the base of a file name. */
static int name_checksum(const char *name, size_t base_len, uint32_t *sum_r)
{
    for (const char *p = memchr(name, ',', base_len); p != NULL && p + 11 <= name + base_len;
         p = memchr(p + 1, ',', (size_t)(name + base_len - p - 1))) {
        if (p[1] != 'C' || p[2] != '=')
            continue;
        uint32_t v = 0;
        size_t i = 0;
        for (; i < 8; i++) {
            char c = p[3 + i];
            int d = c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
            if (d < 0)
                break;
            v = v << 4 | (uint32_t)d;
        }
        if (i == 8 && (p + 11 == name + base_len || p[11] == ',')) {
            *sum_r = v;
            return 0;
        }
    }
    return -1;
}

int maildir_file_check(const char *path)
{
    const char *name = strrchr(path, '/');
    name = name != NULL ? name + 1 : path;
    uint32_t uid = 0, want_sum;
    uint64_t want_size = 0;
    size_t base_len;
    unsigned flags;
    maildir_parse_name(name, &uid, &want_size, &base_len, &flags);
    if (name_checksum(name, base_len, &want_sum) != 0)
        return -1;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -errno;
    struct stat st;
    if (fstat(fd, &st) != 0) {
        int e = errno;
        close(fd);
        return -e;
    }
    if ((uint64_t)st.st_size != want_size) {
        close(fd);
        return 0;
    }
    uint32_t sum = 0;
    char buf[16384];
    int r = 1;
    for (;;) {
        ssize_t n = read(fd, buf, sizeof(buf));
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            r = -errno;
            break;
        }
        if (n == 0)
            break;
        sum = maildir_checksum(sum, buf, (size_t)n);
    }
    close(fd);
    if (r < 0)
        return r;
    return sum == want_sum ? 1 : 0;
}

void maildir_flags_letters(unsigned flags, char out[8])
{
    size_t n = 0;
    if (flags & MAILDIR_FLAG_DRAFT)
        out[n++] = 'D';
    if (flags & MAILDIR_FLAG_FLAGGED)
        out[n++] = 'F';
    if (flags & MAILDIR_FLAG_ANSWERED)
        out[n++] = 'R';
    if (flags & MAILDIR_FLAG_SEEN)
        out[n++] = 'S';
    if (flags & MAILDIR_FLAG_DELETED)
        out[n++] = 'T';
    out[n] = '\0';
}

void maildir_file_rel(char *out, size_t size, const char *base, bool in_new, unsigned flags)
{
    if (in_new) {
        snprintf(out, size, "new/%s", base);
        return;
    }
    char letters[8];
    maildir_flags_letters(flags, letters);
    snprintf(out, size, "cur/%s:2,%s", base, letters);
}

int maildir_parse_name(const char *name, uint32_t *uid_r, uint64_t *size_r,
                       size_t *base_len_r, unsigned *flags_r)
{
    const char *info = strstr(name, ":2,");
    size_t base_len = info != NULL ? (size_t)(info - name) : strlen(name);
    *base_len_r = base_len;
    *flags_r = 0;
    if (info != NULL) {
        for (const char *p = info + 3; *p != '\0'; p++) {
            switch (*p) {
            case 'D': *flags_r |= MAILDIR_FLAG_DRAFT; break;
            case 'F': *flags_r |= MAILDIR_FLAG_FLAGGED; break;
            case 'R': *flags_r |= MAILDIR_FLAG_ANSWERED; break;
            case 'S': *flags_r |= MAILDIR_FLAG_SEEN; break;
            case 'T': *flags_r |= MAILDIR_FLAG_DELETED; break;
            default: break; /* P and keyword letters are not ours */
            }
        }
    }
    *size_r = 0;
    bool have_uid = false;
    /* Fields are ",X=value" after the unique part. */
    for (const char *p = memchr(name, ',', base_len); p != NULL && p < name + base_len;
         p = memchr(p + 1, ',', (size_t)(name + base_len - p - 1))) {
        if (p + 3 > name + base_len || p[2] != '=')
            continue;
        char *end;
        errno = 0;
        unsigned long long v = strtoull(p + 3, &end, 10);
        if (errno != 0 || end == p + 3 || (end != name + base_len && *end != ','))
            continue;
        if (p[1] == 'S')
            *size_r = v;
        else if (p[1] == 'U' && v > 0 && v <= UINT32_MAX) {
            *uid_r = (uint32_t)v;
            have_uid = true;
        }
    }
    return have_uid ? 0 : -1;
}

int maildir_fsync_dir(const char *path)
{
    int fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        return -errno;
    int r = fsync(fd) == 0 ? 0 : -errno;
    close(fd);
    return r;
}

static int mkdir_one(const char *path, bool *created)
{
    if (mkdir(path, 0700) == 0) {
        *created = true;
        return 0;
    }
    return errno == EEXIST ? 0 : -errno;
}

/* mkdir -p for the parents of a user's Maildir (<mail_dir>/<domain>). */
static int mkdir_parents(const char *path)
{
    char *tmp = mg_strdup(path);
    int r = 0;
    for (char *p = tmp + 1; *p != '\0'; p++) {
        if (*p != '/')
            continue;
        *p = '\0';
        if (mkdir(tmp, 0700) != 0 && errno != EEXIST) {
            r = -errno;
            break;
        }
        *p = '/';
    }
    free(tmp);
    return r;
}

/* Written to a temporary name and renamed: a crash leaves either the old
 * file or the complete new one. */
static int write_meta_file(const char *path, const char *value)
{
    char *tmp = mg_asprintf("%s.tmp", path);
    int r = 0;
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0) {
        r = -errno;
    } else {
        r = mg_fd_write_all(fd, value, strlen(value));
        if (r == 0)
            r = mg_fd_write_all(fd, "\n", 1);
        if (r == 0 && fsync(fd) != 0)
            r = -errno;
        close(fd);
        if (r == 0 && rename(tmp, path) != 0)
            r = -errno;
        if (r != 0)
            unlink(tmp);
    }
    free(tmp);
    return r;
}

int maildir_folder_write_meta(const char *folder_path, const char *name, const char *value)
{
    char *path = mg_asprintf("%s/%s", folder_path, name);
    int r = write_meta_file(path, value);
    free(path);
    if (r == 0)
        r = maildir_fsync_dir(folder_path);
    return r;
}

int maildir_folder_read_meta(const char *folder_path, const char *name, char *buf, size_t size)
{
    char *path = mg_asprintf("%s/%s", folder_path, name);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    free(path);
    if (fd < 0)
        return -errno;
    ssize_t n = read(fd, buf, size - 1);
    int r = n < 0 ? -errno : 0;
    close(fd);
    if (r != 0)
        return r;
    buf[n] = '\0';
    buf[strcspn(buf, "\r\n")] = '\0';
    return 0;
}

int maildir_folder_create(const char *folder_path, bool is_inbox, uint32_t uidvalidity)
{
    int r = mkdir_parents(folder_path);
    if (r < 0)
        return r;
    bool created = false;
    if ((r = mkdir_one(folder_path, &created)) < 0)
        return r;
    static const char *const subdirs[] = { "cur", "new", "tmp" };
    bool sub_created = false;
    for (size_t i = 0; i < 3; i++) {
        char *p = mg_asprintf("%s/%s", folder_path, subdirs[i]);
        r = mkdir_one(p, &sub_created);
        free(p);
        if (r < 0)
            return r;
    }
    if (!is_inbox) {
        char *marker = mg_asprintf("%s/maildirfolder", folder_path);
        int fd = open(marker, O_WRONLY | O_CREAT | O_CLOEXEC, 0600);
        free(marker);
        if (fd >= 0)
            close(fd);
    }
    char *vpath = mg_asprintf("%s/%s", folder_path, MAILDIR_UIDVALIDITY_FILE);
    struct stat st;
    if (stat(vpath, &st) != 0) {
        char line[32];
        snprintf(line, sizeof(line), "%" PRIu32, uidvalidity);
        r = write_meta_file(vpath, line);
        created = true;
    }
    free(vpath);
    if (r == 0 && (created || sub_created)) {
        r = maildir_fsync_dir(folder_path);
        if (r == 0) {
            /* The folder's own entry lives in its parent. */
            char *parent = mg_strdup(folder_path);
            char *slash = strrchr(parent, '/');
            if (slash != NULL && slash != parent) {
                *slash = '\0';
                r = maildir_fsync_dir(parent);
            }
            free(parent);
        }
    }
    return r;
}

uint32_t maildir_folder_uidvalidity(const char *folder_path)
{
    char *vpath = mg_asprintf("%s/%s", folder_path, MAILDIR_UIDVALIDITY_FILE);
    FILE *f = fopen(vpath, "re");
    free(vpath);
    if (f == NULL)
        return 0;
    unsigned long v = 0;
    if (fscanf(f, "%lu", &v) != 1 || v > UINT32_MAX)
        v = 0;
    fclose(f);
    return (uint32_t)v;
}

int maildir_write_tmp(const char *folder_path, const char *base, const struct mg_buf *parts,
                      size_t n_parts)
{
    char *path = mg_asprintf("%s/tmp/%s", folder_path, base);
    int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    int r = 0;
    if (fd < 0) {
        r = -errno;
        free(path);
        return r;
    }
    for (size_t i = 0; i < n_parts && r == 0; i++)
        r = mg_fd_write_all(fd, parts[i].data, parts[i].len);
    if (r == 0 && fdatasync(fd) != 0)
        r = -errno;
    if (close(fd) != 0 && r == 0)
        r = -errno;
    if (r != 0)
        unlink(path);
    free(path);
    return r;
}
