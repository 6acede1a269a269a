/* TLS with OpenSSL over memory BIOs: the engine knows nothing of sockets.
 *
 * The connection layer (common/conn.h) feeds it ciphertext from the network,
 * takes plaintext out, hands it plaintext to send and takes ciphertext out.
 * That keeps TLS usable under libuv (and in tests) without OpenSSL ever
 * touching a file descriptor.
 *
 * Policy, not configurable below it (docs/tls.md): TLS 1.2 and 1.3 only;
 * TLS 1.2 with ECDHE + AEAD ciphers only (a cipher list with anything else
 * is refused); TLS 1.3 with OpenSSL's three default suites; groups X25519,
 * P-256, P-384; compression off; renegotiation refused; no 0-RTT data;
 * SSL_MODE_RELEASE_BUFFERS so idle connections hold no buffers. Servers
 * also: their own cipher order (ChaCha20 first for clients that prefer
 * it); OpenSSL security level 2 (no RSA key under 2048 bits, no SHA-1
 * signatures); session resumption by ID and by ticket, ticket keys
 * rotated hourly and erased after the last ticket they made expired;
 * SNI is not looked at (one certificate set per context). */
#ifndef MG_COMMON_TLS_H
#define MG_COMMON_TLS_H

#include <stdbool.h>
#include <stddef.h>

struct mg_buf;
struct mg_settings;
struct mg_settings_tls;

/* A configured SSL_CTX. Reloading builds a new context and swaps it in:
 * connections keep the context they started with until they close. */
struct mg_tls_context;

struct mg_tls_server_options {
    const char *cert_file;     /* PEM chain, leaf first */
    const char *key_file;
    const char *alt_cert_file; /* optional second pair of another key type */
    const char *alt_key_file;
    const char *ciphers;       /* TLS 1.2 cipher list; NULL: built-in */
    const char *min_version;   /* "TLSv1.2" (default) or "TLSv1.3" */
    /* Client certificates (mutual TLS between Mailgenic hosts): when set,
     * peers must present a certificate signed by this CA. */
    const char *client_ca_file;
    /* The ALPN protocol ID of the service ("imap"), or NULL. When set, a
     * client offering it gets it, a client offering ALPN without it fails
     * the handshake (no_application_protocol, against cross-protocol
     * attacks), a client without ALPN is served. NULL: ALPN is ignored
     * (SMTP has no registered ID). */
    const char *alpn;
};

struct mg_tls_client_options {
    const char *ca_file;     /* NULL: the system's trust store */
    const char *cert_file;   /* optional client certificate */
    const char *key_file;
    const char *ciphers;
    const char *min_version;
    /* Fail the handshake when the peer cannot be verified. Without it the
     * handshake completes and mg_tls_is_verified() tells the result
     * (opportunistic TLS for SMTP). */
    bool require_verification;
    /* Delivery to other mail servers: TLS 1.2 also with the older ciphers
     * many of them still have (forward secrecy or AEAD first, never RC4,
     * 3DES, export or anonymous ones) and OpenSSL security level 1, since
     * a failed handshake means sending in plaintext. Only without ciphers. */
    bool is_opportunistic;
};

int mg_tls_context_new_server(const struct mg_tls_server_options *options,
                              struct mg_tls_context **ctx_r, char **error_r);
int mg_tls_context_new_client(const struct mg_tls_client_options *options,
                              struct mg_tls_context **ctx_r, char **error_r);
/* Server options from the [tls] settings. */
void mg_tls_server_options_from_settings(const struct mg_settings_tls *set,
                                         struct mg_tls_server_options *options_r);
/* The contexts of the links between Mailgenic hosts (LMTP and the auth
 * service over TCP): [cluster] certificate and key, the private CA as the
 * only trust anchor, peers verified both ways; ciphers and minimum
 * version from [tls]. Returns 0, or -1 with a reason (to free). */
int mg_tls_context_new_link_server(const struct mg_settings *settings,
                                   struct mg_tls_context **ctx_r, char **error_r);
int mg_tls_context_new_link_client(const struct mg_settings *settings,
                                   struct mg_tls_context **ctx_r, char **error_r);
void mg_tls_context_ref(struct mg_tls_context *ctx);
/* Drops a reference; accepts NULL; sets *ctx to NULL. */
void mg_tls_context_unref(struct mg_tls_context **ctx);
/* Library-internal, for tests: rotates a server context's session ticket
 * keys now, as an hour passing does. */
void mg__tls_context_rotate_ticket_keys(struct mg_tls_context *ctx);

/* One TLS connection. */
struct mg_tls;

enum mg_tls_status {
    MG_TLS_OK = 0,      /* progress, or nothing to do until more input */
    MG_TLS_CLOSED = 1,  /* the peer sent close_notify */
    MG_TLS_ERROR = -1,  /* fatal: mg_tls_error() says why */
};

/* Server side: peer_name NULL. Client side: peer_name is sent as SNI
 * (unless it is an IP literal) and checked against the certificate. */
struct mg_tls *mg_tls_new_server(struct mg_tls_context *ctx);
struct mg_tls *mg_tls_new_client(struct mg_tls_context *ctx, const char *peer_name);
void mg_tls_free(struct mg_tls **tls);

/* Ciphertext received from the peer. */
void mg_tls_feed(struct mg_tls *tls, const void *data, size_t len);
/* Advances the handshake and appends every plaintext byte available to
 * out. Call after each mg_tls_feed(), then send mg_tls_take_output(). */
enum mg_tls_status mg_tls_read(struct mg_tls *tls, struct mg_buf *out);
/* Plaintext to send. Before the handshake completes it is held back and
 * sent once it does. */
enum mg_tls_status mg_tls_write(struct mg_tls *tls, const void *data, size_t len);
/* Queues close_notify. */
void mg_tls_shutdown(struct mg_tls *tls);
/* Moves pending ciphertext into out; returns the number of bytes. */
size_t mg_tls_take_output(struct mg_tls *tls, struct mg_buf *out);
/* Ciphertext bytes waiting in the engine. */
size_t mg_tls_output_pending(const struct mg_tls *tls);

bool mg_tls_is_handshake_done(const struct mg_tls *tls);
/* The reason of the last MG_TLS_ERROR (static or internal text). */
const char *mg_tls_error(const struct mg_tls *tls);
/* "TLSv1.3", "TLS_AES_256_GCM_SHA384" once the handshake is done. */
const char *mg_tls_version(const struct mg_tls *tls);
const char *mg_tls_cipher(const struct mg_tls *tls);
/* Whether the peer's certificate chain verified (and, for a client, its
 * name matched); the reason otherwise. */
bool mg_tls_is_verified(const struct mg_tls *tls);
const char *mg_tls_verify_error(const struct mg_tls *tls);
/* The peer certificate's subject common name, or NULL. */
const char *mg_tls_peer_common_name(struct mg_tls *tls);
/* Whether the session was resumed. */
bool mg_tls_is_resumed(const struct mg_tls *tls);

#endif
