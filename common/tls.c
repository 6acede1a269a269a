#include "common/tls.h"

#include <arpa/inet.h>
#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/alloc.h"
#include "common/buf.h"
#include "common/settings.h"

/* ECDHE with AEAD only, ECDSA first (cheaper handshakes). Whatever list
 * [tls] ciphers gives, tls_check_ciphers() holds it to ECDHE + AEAD. */
#define TLS_DEFAULT_CIPHERS                                          \
    "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:"     \
    "ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384:"     \
    "ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305"
/* Server to server over SMTP (opportunistic STARTTLS): what the other side
 * can do is all there is, and anything of TLS 1.2 with forward secrecy or
 * an AEAD beats the plaintext a failed handshake falls back to (Postfix's
 * "medium" grade, without RC4, 3DES and other weak ciphers). */
#define TLS_OPPORTUNISTIC_CIPHERS \
    TLS_DEFAULT_CIPHERS ":ECDHE+AES:DHE+AESGCM:DHE+AES:RSA+AESGCM:RSA+AES:!aNULL:!eNULL:!MD5:!DSS"
/* TLS 1.3: OpenSSL's default suites in its order, spelled out so that a
 * system openssl.cnf cannot add CCM or take one away. */
#define TLS_13_CIPHERSUITES \
    "TLS_AES_256_GCM_SHA384:TLS_CHACHA20_POLY1305_SHA256:TLS_AES_128_GCM_SHA256"
#define TLS_GROUPS "X25519:P-256:P-384"
/* Servers: at least 112-bit security (RSA and DH of 2048 bits, no SHA-1
 * signatures), whatever the system's openssl.cnf says. */
#define TLS_SERVER_SECURITY_LEVEL 2
/* Session resumption. A session (ID or ticket) lives TLS_SESSION_LIFETIME_S.
 * A ticket key encrypts new tickets for TLS_TICKET_ROTATE_S, decrypts them
 * until the last one it made has expired, and is then erased (at the next
 * ticket operation): a key read from memory opens the sessions of its own
 * hour, not every session since the daemon started, as OpenSSL's built-in
 * key (made once per SSL_CTX, never changed) would. */
#define TLS_SESSION_LIFETIME_S 7200
#define TLS_TICKET_ROTATE_S 3600
#define TLS_TICKET_KEYS (1 + (TLS_SESSION_LIFETIME_S + TLS_TICKET_ROTATE_S - 1) / TLS_TICKET_ROTATE_S)
/* Plaintext read per SSL_read call: one TLS record. */
#define TLS_READ_CHUNK 16384

struct tls_ticket_key {
    unsigned char name[16];
    unsigned char aes_key[32];  /* AES-256-CBC */
    unsigned char hmac_key[32]; /* HMAC-SHA256 */
    bool is_set;
};

/* What an SSL_CTX's callbacks need. It hangs off the SSL_CTX (ex_data),
 * not off struct mg_tls_context: connections keep the SSL_CTX alive after
 * the last mg_tls_context_unref(), and their callbacks still run. */
struct tls_ctx_extra {
    pthread_mutex_t lock;  /* keys: contexts may be shared between threads */
    struct tls_ticket_key keys[TLS_TICKET_KEYS]; /* [0] encrypts, all decrypt */
    uint64_t rotated_at_ms;
    unsigned char alpn[256]; /* ALPN wire format: length byte, name */
    unsigned int alpn_len;   /* 0: ALPN ignored */
};

struct mg_tls_context {
    SSL_CTX *ssl_ctx;
    atomic_int refcount;
};

struct mg_tls {
    SSL *ssl;
    BIO *rbio; /* network -> SSL */
    BIO *wbio; /* SSL -> network */
    struct mg_buf held;  /* plaintext written before the handshake completed */
    bool is_handshake_done;
    bool is_failed;
    bool is_client;
    char error[256];
    char peer_cn[256];
};

/* Records the OpenSSL error queue's first entry (or a fallback text). */
static void tls_set_error(char *buf, size_t size, const char *what)
{
    /* "what: reason", cut to size: a long path in `what` may leave the
     * reason short, which is still readable. */
    size_t len = strlen(what);
    if (len > size - 1)
        len = size - 1;
    memcpy(buf, what, len);
    buf[len] = '\0';
    unsigned long e = ERR_get_error();
    if (e != 0 && len + 3 < size) {
        memcpy(buf + len, ": ", 3);
        ERR_error_string_n(e, buf + len + 2, size - len - 2);
    }
    ERR_clear_error();
}

static int tls_min_version(const char *name, int *version_r)
{
    if (name == NULL || name[0] == '\0' || strcmp(name, "TLSv1.2") == 0)
        *version_r = TLS1_2_VERSION;
    else if (strcmp(name, "TLSv1.3") == 0)
        *version_r = TLS1_3_VERSION;
    else
        return -1;
    return 0;
}

/* Every TLS 1.2 cipher of the list must be ECDHE with an AEAD cipher: a
 * [tls] ciphers of "ALL" or "AES128-SHA" is a configuration error, not a
 * quietly weaker server (TLS 1.3 suites are all ECDHE and AEAD). */
static int tls_check_ciphers(SSL_CTX *ctx, char **error_r)
{
    STACK_OF(SSL_CIPHER) *list = SSL_CTX_get_ciphers(ctx);
    int n_tls12 = 0;
    for (int i = 0; i < sk_SSL_CIPHER_num(list); i++) {
        const SSL_CIPHER *c = sk_SSL_CIPHER_value(list, i);
        if (SSL_CIPHER_get_kx_nid(c) == NID_kx_any) /* a TLS 1.3 suite */
            continue;
        if (SSL_CIPHER_get_kx_nid(c) != NID_kx_ecdhe || !SSL_CIPHER_is_aead(c) ||
            SSL_CIPHER_get_auth_nid(c) == NID_auth_null) {
            *error_r = mg_asprintf("TLS: cipher %s is not ECDHE with AES-GCM or "
                                   "ChaCha20-Poly1305 ([tls] ciphers)", SSL_CIPHER_get_name(c));
            return -1;
        }
        n_tls12++;
    }
    if (n_tls12 == 0) {
        *error_r = mg_strdup("TLS: no TLS 1.2 cipher left in the cipher list ([tls] ciphers)");
        return -1;
    }
    return 0;
}

/* The SSL_CTX ex_data slot of struct tls_ctx_extra (server contexts). */
static int tls_extra_index = -1;

static uint64_t tls_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* Drops the oldest key (erased) and makes a fresh one the encrypting key.
 * Called with extra->lock held. */
static int tls_ticket_keys_rotate(struct tls_ctx_extra *extra)
{
    OPENSSL_cleanse(&extra->keys[TLS_TICKET_KEYS - 1], sizeof(extra->keys[0]));
    memmove(&extra->keys[1], &extra->keys[0], sizeof(extra->keys[0]) * (TLS_TICKET_KEYS - 1));
    struct tls_ticket_key *k = &extra->keys[0];
    if (RAND_bytes(k->name, sizeof(k->name)) != 1 ||
        RAND_priv_bytes(k->aes_key, sizeof(k->aes_key)) != 1 ||
        RAND_priv_bytes(k->hmac_key, sizeof(k->hmac_key)) != 1) {
        OPENSSL_cleanse(k, sizeof(*k));
        return -1;
    }
    k->is_set = true;
    return 0;
}

/* Rotates once per TLS_TICKET_ROTATE_S that passed (at most the whole
 * ring), lazily, at the next ticket operation. */
static int tls_ticket_keys_update(struct tls_ctx_extra *extra)
{
    uint64_t now = tls_now_ms();
    uint64_t period = (uint64_t)TLS_TICKET_ROTATE_S * 1000;
    uint64_t due = (now - extra->rotated_at_ms) / period;
    if (due == 0 && extra->keys[0].is_set)
        return 0;
    for (uint64_t i = 0; i < due && i < TLS_TICKET_KEYS; i++) {
        if (tls_ticket_keys_rotate(extra) < 0)
            return -1;
    }
    if (!extra->keys[0].is_set && tls_ticket_keys_rotate(extra) < 0)
        return -1;
    extra->rotated_at_ms += due * period;
    return 0;
}

static int tls_ticket_key_set(const struct tls_ticket_key *k, EVP_CIPHER_CTX *cctx,
                              EVP_MAC_CTX *hctx, unsigned char *iv, int enc)
{
    OSSL_PARAM params[] = {
        OSSL_PARAM_construct_octet_string(OSSL_MAC_PARAM_KEY, (void *)k->hmac_key,
                                          sizeof(k->hmac_key)),
        OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, (char *)"SHA256", 0),
        OSSL_PARAM_construct_end(),
    };
    if (EVP_MAC_CTX_set_params(hctx, params) != 1)
        return -1;
    int ok = enc ? EVP_EncryptInit_ex(cctx, EVP_aes_256_cbc(), NULL, k->aes_key, iv)
                 : EVP_DecryptInit_ex(cctx, EVP_aes_256_cbc(), NULL, k->aes_key, iv);
    return ok == 1 ? 0 : -1;
}

/* OpenSSL's ticket callback (SSL_CTX_set_tlsext_ticket_key_evp_cb(3)):
 * encrypt with the newest key; decrypt with any key of the ring, and ask
 * for a fresh ticket (2) when the key is not the newest. */
static int tls_ticket_key_cb(SSL *ssl, unsigned char key_name[16], unsigned char *iv,
                             EVP_CIPHER_CTX *cctx, EVP_MAC_CTX *hctx, int enc)
{
    struct tls_ctx_extra *extra = SSL_CTX_get_ex_data(SSL_get_SSL_CTX(ssl), tls_extra_index);
    int ret = -1;
    pthread_mutex_lock(&extra->lock);
    if (tls_ticket_keys_update(extra) < 0)
        goto out;
    if (enc) {
        const struct tls_ticket_key *k = &extra->keys[0];
        int iv_len = EVP_CIPHER_get_iv_length(EVP_aes_256_cbc());
        if (RAND_bytes(iv, iv_len) != 1)
            goto out;
        memcpy(key_name, k->name, sizeof(k->name));
        ret = tls_ticket_key_set(k, cctx, hctx, iv, 1) < 0 ? -1 : 1;
        goto out;
    }
    ret = 0; /* unknown or expired key: a full handshake */
    for (int i = 0; i < TLS_TICKET_KEYS; i++) {
        const struct tls_ticket_key *k = &extra->keys[i];
        if (!k->is_set || CRYPTO_memcmp(key_name, k->name, sizeof(k->name)) != 0)
            continue;
        if (tls_ticket_key_set(k, cctx, hctx, iv, 0) < 0)
            ret = -1;
        else
            ret = i == 0 ? 1 : 2;
        break;
    }
out:
    pthread_mutex_unlock(&extra->lock);
    return ret;
}

/* ALPN (RFC 7301): a client that offers our protocol gets it; one that
 * offers only others gets no_application_protocol (RFC 7301 3.2, RFC 9325
 * 3.8: the defence against cross-protocol attacks such as ALPACA); one
 * that offers nothing is served as before. */
static int tls_alpn_select_cb(SSL *ssl, const unsigned char **out, unsigned char *outlen,
                              const unsigned char *in, unsigned int inlen, void *arg)
{
    const struct tls_ctx_extra *extra = arg;
    unsigned char *selected = NULL;
    (void)ssl;
    if (SSL_select_next_proto(&selected, outlen, extra->alpn, extra->alpn_len, in, inlen) !=
        OPENSSL_NPN_NEGOTIATED)
        return SSL_TLSEXT_ERR_ALERT_FATAL;
    *out = selected;
    return SSL_TLSEXT_ERR_OK;
}

static void tls_ctx_extra_free(void *parent, void *ptr, CRYPTO_EX_DATA *ad, int idx, long argl,
                               void *argp)
{
    struct tls_ctx_extra *extra = ptr;
    (void)parent, (void)ad, (void)idx, (void)argl, (void)argp;
    if (extra == NULL)
        return;
    pthread_mutex_destroy(&extra->lock);
    OPENSSL_cleanse(extra, sizeof(*extra));
    free(extra);
}

static void tls_extra_index_init(void)
{
    /* The free function runs when the SSL_CTX goes, after its last SSL. */
    tls_extra_index = SSL_CTX_get_ex_new_index(0, NULL, NULL, NULL, tls_ctx_extra_free);
    if (tls_extra_index < 0)
        mg_panic("SSL_CTX_get_ex_new_index failed");
}

static struct tls_ctx_extra *tls_ctx_extra_attach(SSL_CTX *ctx)
{
    static pthread_once_t once = PTHREAD_ONCE_INIT;
    pthread_once(&once, tls_extra_index_init);
    struct tls_ctx_extra *extra = mg_calloc(1, sizeof(*extra));
    pthread_mutex_init(&extra->lock, NULL);
    extra->rotated_at_ms = tls_now_ms();
    if (SSL_CTX_set_ex_data(ctx, tls_extra_index, extra) != 1)
        mg_panic("SSL_CTX_set_ex_data failed");
    return extra;
}

static SSL_CTX *tls_ctx_common(const SSL_METHOD *method, const char *ciphers,
                               const char *min_version, bool is_opportunistic, char **error_r)
{
    char err[300];
    int version;
    if (tls_min_version(min_version, &version) < 0) {
        *error_r = mg_asprintf("TLS: min_version must be TLSv1.2 or TLSv1.3");
        return NULL;
    }
    SSL_CTX *ctx = SSL_CTX_new(method);
    if (ctx == NULL) {
        tls_set_error(err, sizeof(err), "SSL_CTX_new");
        *error_r = mg_strdup(err);
        return NULL;
    }
    SSL_CTX_set_min_proto_version(ctx, version);
    /* No compression (CRIME), no renegotiation of any kind: a client's
     * renegotiation request gets a no_renegotiation alert. */
    SSL_CTX_set_options(ctx, SSL_OP_NO_COMPRESSION | SSL_OP_NO_RENEGOTIATION);
    /* Idle connections give back their record buffers; decisive with
     * thousands of IMAP IDLE sessions. */
    SSL_CTX_set_mode(ctx, SSL_MODE_RELEASE_BUFFERS);
    const char *list = ciphers != NULL && ciphers[0] ? ciphers
                       : is_opportunistic          ? TLS_OPPORTUNISTIC_CIPHERS
                                                   : TLS_DEFAULT_CIPHERS;
    if (SSL_CTX_set_cipher_list(ctx, list) != 1) {
        tls_set_error(err, sizeof(err), "TLS: no usable cipher in the cipher list");
        *error_r = mg_strdup(err);
        SSL_CTX_free(ctx);
        return NULL;
    }
    if (SSL_CTX_set_ciphersuites(ctx, TLS_13_CIPHERSUITES) != 1) {
        tls_set_error(err, sizeof(err), "TLS: TLS 1.3 cipher suites");
        *error_r = mg_strdup(err);
        SSL_CTX_free(ctx);
        return NULL;
    }
    if (!is_opportunistic && tls_check_ciphers(ctx, error_r) < 0) {
        SSL_CTX_free(ctx);
        return NULL;
    }
    /* Debian's level 2 refuses servers with 1024-bit keys: for
     * opportunistic TLS that means plaintext instead. */
    if (is_opportunistic)
        SSL_CTX_set_security_level(ctx, 1);
    if (SSL_CTX_set1_groups_list(ctx, TLS_GROUPS) != 1) {
        tls_set_error(err, sizeof(err), "TLS: groups");
        *error_r = mg_strdup(err);
        SSL_CTX_free(ctx);
        return NULL;
    }
    return ctx;
}

static int tls_load_pair(SSL_CTX *ctx, const char *cert, const char *key, char **error_r)
{
    char err[600];
    if (SSL_CTX_use_certificate_chain_file(ctx, cert) != 1) {
        char what[400];
        snprintf(what, sizeof(what), "TLS: cannot load certificate %s", cert);
        tls_set_error(err, sizeof(err), what);
        *error_r = mg_strdup(err);
        return -1;
    }
    if (SSL_CTX_use_PrivateKey_file(ctx, key, SSL_FILETYPE_PEM) != 1) {
        char what[400];
        if (ERR_GET_REASON(ERR_peek_last_error()) == X509_R_KEY_VALUES_MISMATCH) {
            ERR_clear_error();
            *error_r = mg_asprintf("TLS: key %s does not match certificate %s", key, cert);
            return -1;
        }
        snprintf(what, sizeof(what), "TLS: cannot load key %s", key);
        tls_set_error(err, sizeof(err), what);
        *error_r = mg_strdup(err);
        return -1;
    }
    if (SSL_CTX_check_private_key(ctx) != 1) {
        char what[400];
        snprintf(what, sizeof(what), "TLS: key %s does not match certificate %s", key, cert);
        tls_set_error(err, sizeof(err), what);
        *error_r = mg_strdup(err);
        return -1;
    }
    return 0;
}

static struct mg_tls_context *tls_context_wrap(SSL_CTX *ssl_ctx)
{
    struct mg_tls_context *ctx = mg_calloc(1, sizeof(*ctx));
    ctx->ssl_ctx = ssl_ctx;
    atomic_init(&ctx->refcount, 1);
    return ctx;
}

int mg_tls_context_new_server(const struct mg_tls_server_options *options,
                              struct mg_tls_context **ctx_r, char **error_r)
{
    if (options->cert_file == NULL || options->cert_file[0] == '\0' ||
        options->key_file == NULL || options->key_file[0] == '\0') {
        *error_r = mg_strdup("TLS: cert_file and key_file must be set");
        return -1;
    }
    size_t alpn_len = options->alpn != NULL ? strlen(options->alpn) : 0;
    if (alpn_len > 255) {
        *error_r = mg_strdup("TLS: ALPN protocol name longer than 255 bytes");
        return -1;
    }
    SSL_CTX *ctx = tls_ctx_common(TLS_server_method(), options->ciphers, options->min_version, false,
                                  error_r);
    struct tls_ctx_extra *extra = NULL;
    if (ctx == NULL)
        return -1;
    SSL_CTX_set_security_level(ctx, TLS_SERVER_SECURITY_LEVEL);
    /* Our cipher order, except that a client whose first choice is
     * ChaCha20 (a phone without AES instructions) gets ChaCha20: the
     * reason Mozilla's guideline leaves the order to clients. */
    SSL_CTX_set_options(ctx, SSL_OP_CIPHER_SERVER_PREFERENCE | SSL_OP_PRIORITIZE_CHACHA);
    if (tls_load_pair(ctx, options->cert_file, options->key_file, error_r) < 0)
        goto fail;
    if (options->alt_cert_file != NULL && options->alt_cert_file[0] != '\0' &&
        tls_load_pair(ctx, options->alt_cert_file, options->alt_key_file, error_r) < 0)
        goto fail;
    extra = tls_ctx_extra_attach(ctx);
    /* Session resumption: by session ID (TLS 1.2) and by ticket (TLS 1.2
     * and 1.3) under rotating keys; a session ID context so resumed
     * sessions stay tied to this service. No 0-RTT data (replayable). */
    SSL_CTX_set_session_id_context(ctx, (const unsigned char *)"mailgenic", 9);
    SSL_CTX_set_timeout(ctx, TLS_SESSION_LIFETIME_S);
    SSL_CTX_set_num_tickets(ctx, 1);
    SSL_CTX_set_max_early_data(ctx, 0);
    if (tls_ticket_keys_rotate(extra) < 0) {
        *error_r = mg_strdup("TLS: no random bytes for the session ticket key");
        goto fail;
    }
    SSL_CTX_set_tlsext_ticket_key_evp_cb(ctx, tls_ticket_key_cb);
    if (alpn_len > 0) {
        extra->alpn[0] = (unsigned char)alpn_len;
        memcpy(extra->alpn + 1, options->alpn, alpn_len);
        extra->alpn_len = (unsigned int)alpn_len + 1;
        SSL_CTX_set_alpn_select_cb(ctx, tls_alpn_select_cb, extra);
    }
    if (options->client_ca_file != NULL && options->client_ca_file[0] != '\0') {
        char err[600];
        STACK_OF(X509_NAME) *names = SSL_load_client_CA_file(options->client_ca_file);
        if (names == NULL ||
            SSL_CTX_load_verify_locations(ctx, options->client_ca_file, NULL) != 1) {
            char what[400];
            snprintf(what, sizeof(what), "TLS: cannot load client CA %s", options->client_ca_file);
            tls_set_error(err, sizeof(err), what);
            *error_r = mg_strdup(err);
            if (names != NULL)
                sk_X509_NAME_pop_free(names, X509_NAME_free);
            goto fail;
        }
        SSL_CTX_set_client_CA_list(ctx, names);
        SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT, NULL);
    }
    *ctx_r = tls_context_wrap(ctx);
    return 0;
fail:
    SSL_CTX_free(ctx);
    return -1;
}

int mg_tls_context_new_client(const struct mg_tls_client_options *options,
                              struct mg_tls_context **ctx_r, char **error_r)
{
    char err[600];
    SSL_CTX *ctx = tls_ctx_common(TLS_client_method(), options->ciphers, options->min_version,
                                  options->is_opportunistic,
                                  error_r);
    if (ctx == NULL)
        return -1;
    int ok = options->ca_file != NULL && options->ca_file[0] != '\0'
                 ? SSL_CTX_load_verify_locations(ctx, options->ca_file, NULL)
                 : SSL_CTX_set_default_verify_paths(ctx);
    if (ok != 1) {
        tls_set_error(err, sizeof(err), "TLS: cannot load trust anchors");
        *error_r = mg_strdup(err);
        goto fail;
    }
    if (options->cert_file != NULL && options->cert_file[0] != '\0' &&
        tls_load_pair(ctx, options->cert_file, options->key_file, error_r) < 0)
        goto fail;
    /* Without required verification the chain is still checked and the
     * result kept for mg_tls_is_verified(); the handshake goes on. */
    SSL_CTX_set_verify(ctx, options->require_verification ? SSL_VERIFY_PEER : SSL_VERIFY_NONE, NULL);
    *ctx_r = tls_context_wrap(ctx);
    return 0;
fail:
    SSL_CTX_free(ctx);
    return -1;
}

void mg_tls_server_options_from_settings(const struct mg_settings_tls *set,
                                         struct mg_tls_server_options *options_r)
{
    memset(options_r, 0, sizeof(*options_r));
    options_r->cert_file = set->cert_file;
    options_r->key_file = set->key_file;
    options_r->alt_cert_file = set->alt_cert_file;
    options_r->alt_key_file = set->alt_key_file;
    options_r->ciphers = set->ciphers;
    options_r->min_version = set->min_version;
}

int mg_tls_context_new_link_server(const struct mg_settings *settings,
                                   struct mg_tls_context **ctx_r, char **error_r)
{
    const struct mg_settings_cluster *c = &settings->cluster;
    struct mg_tls_server_options o = {
        .cert_file = c->cert_file, .key_file = c->key_file, .client_ca_file = c->ca_file,
        .ciphers = settings->tls.ciphers, .min_version = settings->tls.min_version,
    };
    if (c->ca_file[0] == '\0') {
        *error_r = mg_strdup("TLS: [cluster] ca_file must be set");
        return -1;
    }
    return mg_tls_context_new_server(&o, ctx_r, error_r);
}

int mg_tls_context_new_link_client(const struct mg_settings *settings,
                                   struct mg_tls_context **ctx_r, char **error_r)
{
    const struct mg_settings_cluster *c = &settings->cluster;
    struct mg_tls_client_options o = {
        .ca_file = c->ca_file, .cert_file = c->cert_file, .key_file = c->key_file,
        .ciphers = settings->tls.ciphers, .min_version = settings->tls.min_version,
        .require_verification = true,
    };
    /* An empty ca_file would mean the system's public CAs. */
    if (c->ca_file[0] == '\0' || c->cert_file[0] == '\0' || c->key_file[0] == '\0') {
        *error_r = mg_strdup("TLS: [cluster] ca_file, cert_file and key_file must be set");
        return -1;
    }
    return mg_tls_context_new_client(&o, ctx_r, error_r);
}

void mg_tls_context_ref(struct mg_tls_context *ctx)
{
    atomic_fetch_add(&ctx->refcount, 1);
}

void mg_tls_context_unref(struct mg_tls_context **ctx)
{
    if (*ctx == NULL)
        return;
    if (atomic_fetch_sub(&(*ctx)->refcount, 1) == 1) {
        /* Connections still using the SSL_CTX hold their own reference
         * to it through their SSL objects. */
        SSL_CTX_free((*ctx)->ssl_ctx);
        free(*ctx);
    }
    *ctx = NULL;
}

void mg__tls_context_rotate_ticket_keys(struct mg_tls_context *ctx)
{
    struct tls_ctx_extra *extra = SSL_CTX_get_ex_data(ctx->ssl_ctx, tls_extra_index);
    mg_assert(extra != NULL);
    pthread_mutex_lock(&extra->lock);
    if (tls_ticket_keys_rotate(extra) < 0)
        mg_panic("session ticket key rotation failed");
    pthread_mutex_unlock(&extra->lock);
}

static struct mg_tls *tls_new(struct mg_tls_context *ctx, bool is_client)
{
    struct mg_tls *tls = mg_calloc(1, sizeof(*tls));
    tls->ssl = SSL_new(ctx->ssl_ctx);
    if (tls->ssl == NULL)
        mg_panic("SSL_new failed");
    tls->rbio = BIO_new(BIO_s_mem());
    tls->wbio = BIO_new(BIO_s_mem());
    if (tls->rbio == NULL || tls->wbio == NULL)
        mg_panic("BIO_new failed");
    /* An empty read BIO means "wait for more", not end of file. */
    BIO_set_mem_eof_return(tls->rbio, -1);
    SSL_set_bio(tls->ssl, tls->rbio, tls->wbio);
    tls->is_client = is_client;
    return tls;
}

struct mg_tls *mg_tls_new_server(struct mg_tls_context *ctx)
{
    struct mg_tls *tls = tls_new(ctx, false);
    SSL_set_accept_state(tls->ssl);
    return tls;
}

static bool is_ip_literal(const char *name)
{
    unsigned char tmp[16];
    return inet_pton(AF_INET, name, tmp) == 1 || inet_pton(AF_INET6, name, tmp) == 1;
}

struct mg_tls *mg_tls_new_client(struct mg_tls_context *ctx, const char *peer_name)
{
    struct mg_tls *tls = tls_new(ctx, true);
    SSL_set_connect_state(tls->ssl);
    if (peer_name != NULL && peer_name[0] != '\0') {
        if (is_ip_literal(peer_name)) {
            X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(tls->ssl), peer_name);
        } else {
            SSL_set_tlsext_host_name(tls->ssl, peer_name);
            SSL_set1_host(tls->ssl, peer_name);
        }
    }
    /* Produce the ClientHello now so the caller can send it. */
    ERR_clear_error();
    SSL_do_handshake(tls->ssl);
    ERR_clear_error();
    return tls;
}

void mg_tls_free(struct mg_tls **tls)
{
    if (*tls == NULL)
        return;
    SSL_free((*tls)->ssl); /* frees both BIOs */
    mg_buf_free(&(*tls)->held);
    free(*tls);
    *tls = NULL;
}

void mg_tls_feed(struct mg_tls *tls, const void *data, size_t len)
{
    if (len > 0 && BIO_write(tls->rbio, data, (int)len) != (int)len)
        mg_panic("BIO_write to memory BIO failed");
}

static enum mg_tls_status tls_fail(struct mg_tls *tls, int ssl_error, const char *what)
{
    tls->is_failed = true;
    if (ssl_error == SSL_ERROR_SYSCALL && ERR_peek_error() == 0)
        snprintf(tls->error, sizeof(tls->error), "%s: protocol error", what);
    else
        tls_set_error(tls->error, sizeof(tls->error), what);
    return MG_TLS_ERROR;
}

static enum mg_tls_status tls_write_now(struct mg_tls *tls, const void *data, size_t len)
{
    size_t written;
    if (len == 0)
        return MG_TLS_OK;
    ERR_clear_error();
    int r = SSL_write_ex(tls->ssl, data, len, &written);
    if (r != 1)
        return tls_fail(tls, SSL_get_error(tls->ssl, r), "TLS write");
    return MG_TLS_OK;
}

enum mg_tls_status mg_tls_read(struct mg_tls *tls, struct mg_buf *out)
{
    if (tls->is_failed)
        return MG_TLS_ERROR;
    if (!tls->is_handshake_done) {
        ERR_clear_error();
        int r = SSL_do_handshake(tls->ssl);
        if (r != 1) {
            int e = SSL_get_error(tls->ssl, r);
            if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE)
                return MG_TLS_OK;
            return tls_fail(tls, e, "TLS handshake failed");
        }
        tls->is_handshake_done = true;
        if (tls->held.len > 0) {
            enum mg_tls_status st = tls_write_now(tls, tls->held.data, tls->held.len);
            mg_buf_free(&tls->held);
            if (st != MG_TLS_OK)
                return st;
        }
    }
    for (;;) {
        mg_buf_reserve(out, TLS_READ_CHUNK);
        size_t got = 0;
        ERR_clear_error();
        int r = SSL_read_ex(tls->ssl, out->data + out->len, TLS_READ_CHUNK, &got);
        if (r == 1) {
            out->len += got;
            out->data[out->len] = '\0';
            continue;
        }
        int e = SSL_get_error(tls->ssl, r);
        if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE)
            return MG_TLS_OK;
        if (e == SSL_ERROR_ZERO_RETURN)
            return MG_TLS_CLOSED;
        return tls_fail(tls, e, "TLS read");
    }
}

enum mg_tls_status mg_tls_write(struct mg_tls *tls, const void *data, size_t len)
{
    if (tls->is_failed)
        return MG_TLS_ERROR;
    if (!tls->is_handshake_done) {
        mg_buf_append(&tls->held, data, len);
        return MG_TLS_OK;
    }
    return tls_write_now(tls, data, len);
}

void mg_tls_shutdown(struct mg_tls *tls)
{
    if (tls->is_failed || !tls->is_handshake_done)
        return;
    ERR_clear_error();
    /* One call queues our close_notify; we do not wait for the peer's. */
    SSL_shutdown(tls->ssl);
    ERR_clear_error();
}

size_t mg_tls_output_pending(const struct mg_tls *tls)
{
    return BIO_ctrl_pending(tls->wbio);
}

size_t mg_tls_take_output(struct mg_tls *tls, struct mg_buf *out)
{
    size_t pending = BIO_ctrl_pending(tls->wbio);
    if (pending == 0)
        return 0;
    mg_buf_reserve(out, pending);
    int r = BIO_read(tls->wbio, out->data + out->len, (int)pending);
    if (r <= 0)
        return 0;
    out->len += (size_t)r;
    out->data[out->len] = '\0';
    return (size_t)r;
}

bool mg_tls_is_handshake_done(const struct mg_tls *tls)
{
    return tls->is_handshake_done;
}

const char *mg_tls_error(const struct mg_tls *tls)
{
    return tls->error[0] != '\0' ? tls->error : "no error";
}

const char *mg_tls_version(const struct mg_tls *tls)
{
    return SSL_get_version(tls->ssl);
}

const char *mg_tls_cipher(const struct mg_tls *tls)
{
    const char *c = SSL_get_cipher_name(tls->ssl);
    return c != NULL ? c : "none";
}

bool mg_tls_is_verified(const struct mg_tls *tls)
{
    return tls->is_handshake_done && SSL_get0_peer_certificate(tls->ssl) != NULL &&
           SSL_get_verify_result(tls->ssl) == X509_V_OK;
}

const char *mg_tls_verify_error(const struct mg_tls *tls)
{
    if (SSL_get0_peer_certificate(tls->ssl) == NULL)
        return "no peer certificate";
    return X509_verify_cert_error_string(SSL_get_verify_result(tls->ssl));
}

const char *mg_tls_peer_common_name(struct mg_tls *tls)
{
    X509 *cert = SSL_get0_peer_certificate(tls->ssl);
    if (cert == NULL)
        return NULL;
    X509_NAME *subject = X509_get_subject_name(cert);
    if (subject == NULL ||
        X509_NAME_get_text_by_NID(subject, NID_commonName, tls->peer_cn, sizeof(tls->peer_cn)) <= 0)
        return NULL;
    return tls->peer_cn;
}

bool mg_tls_is_resumed(const struct mg_tls *tls)
{
    return SSL_session_reused(tls->ssl) == 1;
}
