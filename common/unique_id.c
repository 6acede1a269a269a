#include "common/unique_id.h"

#include <openssl/rand.h>
#include <pthread.h>
#include <string.h>
#include <sys/time.h>
#include <unistd.h>

static const char id_alphabet[] = "0123456789ABCDEFGHJKMNPQRSTVWXYZ";

static pthread_mutex_t id_lock = PTHREAD_MUTEX_INITIALIZER;
static uint64_t id_last_usec;
static uint32_t id_random;
static uint32_t id_counter;
static pid_t id_pid;

static void encode(char *out, uint64_t value, int chars)
{
    for (int i = chars - 1; i >= 0; i--) {
        out[i] = id_alphabet[value & 31];
        value >>= 5;
    }
}

static uint32_t random_u32(void)
{
    uint32_t r;
    if (RAND_bytes((unsigned char *)&r, sizeof(r)) != 1) {
        /* Only uniqueness, not secrecy, depends on this value. */
        struct timeval tv;
        gettimeofday(&tv, NULL);
        r = (uint32_t)tv.tv_usec ^ ((uint32_t)getpid() << 16);
    }
    return r;
}

void mg_unique_id_new(char out[MG_UNIQUE_ID_LEN + 1])
{
    struct timeval tv;
    gettimeofday(&tv, NULL);
    uint64_t usec = (uint64_t)tv.tv_sec * 1000000u + (uint64_t)tv.tv_usec;

    pthread_mutex_lock(&id_lock);
    /* A fork must not continue its parent's sequence. */
    if (id_pid != getpid()) {
        id_pid = getpid();
        id_random = random_u32();
        id_counter = 0;
    }
    if (usec <= id_last_usec)
        usec = id_last_usec + 1; /* clock stepped back, or same microsecond */
    id_last_usec = usec;
    uint32_t tail = (id_random + id_counter++) & 0x1ffffff;
    pthread_mutex_unlock(&id_lock);

    encode(out, usec, 11);
    encode(out + 11, tail, 5);
    out[MG_UNIQUE_ID_LEN] = '\0';
}

void mg_unique_id_session(char out[MG_SESSION_ID_LEN + 1])
{
    uint64_t r = ((uint64_t)random_u32() << 32) | random_u32();
    encode(out, r, MG_SESSION_ID_LEN);
    out[MG_SESSION_ID_LEN] = '\0';
}

int mg_unique_id_is_valid(const char *s)
{
    if (strlen(s) != MG_UNIQUE_ID_LEN)
        return 0;
    for (size_t i = 0; i < MG_UNIQUE_ID_LEN; i++) {
        if (strchr(id_alphabet, s[i]) == NULL || s[i] == '\0')
            return 0;
    }
    return 1;
}
