/* TLS to other mail servers (opportunistic STARTTLS): an older server that
 * has only a CBC cipher or a small RSA key must still get an encrypted
 * session from the outbound client, since the alternative is plaintext;
 * the clients of our own links keep the strict policy; and nothing below
 * TLS 1.2, nor RC4, 3DES or anonymous ciphers, is ever accepted. */
#include "testutil.h"

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "common/alloc.h"
#include "common/buf.h"
#include "common/tls.h"

static char *dir;
static char *ec_cert, *ec_key;

/* A server as old mail servers are: a raw OpenSSL context with the given
 * TLS 1.2 cipher list and protocol range. */
static SSL_CTX *old_server(const char *ciphers, int max_version)
{
    SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
    assert_non_null(ctx);
    SSL_CTX_set_security_level(ctx, 0);
    SSL_CTX_set_min_proto_version(ctx, TLS1_VERSION);
    SSL_CTX_set_max_proto_version(ctx, max_version);
    assert_int_equal(SSL_CTX_set_cipher_list(ctx, ciphers), 1);
    assert_int_equal(SSL_CTX_use_certificate_chain_file(ctx, ec_cert), 1);
    assert_int_equal(SSL_CTX_use_PrivateKey_file(ctx, ec_key, SSL_FILETYPE_PEM), 1);
    return ctx;
}

/* Runs the handshake between our client and the raw server in memory;
 * returns the negotiated cipher name (static) or NULL on failure. */
static const char *handshake(struct mg_tls_context *cctx, SSL_CTX *sctx)
{
    SSL *server = SSL_new(sctx);
    BIO *rbio = BIO_new(BIO_s_mem()), *wbio = BIO_new(BIO_s_mem());
    BIO_set_mem_eof_return(rbio, -1);
    SSL_set_bio(server, rbio, wbio);
    SSL_set_accept_state(server);
    struct mg_tls *client = mg_tls_new_client(cctx, "mx.old.test");
    struct mg_buf wire = MG_BUF_INIT, plain = MG_BUF_INIT;
    bool is_failed = false;
    for (int round = 0; round < 10 && !is_failed && !mg_tls_is_handshake_done(client); round++) {
        mg_buf_reset(&wire);
        mg_tls_take_output(client, &wire);
        if (wire.len > 0)
            BIO_write(rbio, wire.data, (int)wire.len);
        int r = SSL_do_handshake(server);
        if (r <= 0 && SSL_get_error(server, r) != SSL_ERROR_WANT_READ)
            is_failed = true;
        char buf[16384];
        int n;
        while ((n = BIO_read(wbio, buf, sizeof(buf))) > 0)
            mg_tls_feed(client, buf, (size_t)n);
        is_failed |= mg_tls_read(client, &plain) == MG_TLS_ERROR;
    }
    const char *cipher = !is_failed && mg_tls_is_handshake_done(client)
                             ? SSL_CIPHER_get_name(SSL_get_current_cipher(server))
                             : NULL;
    ERR_clear_error();
    mg_tls_free(&client);
    SSL_free(server);
    mg_buf_free(&wire);
    mg_buf_free(&plain);
    return cipher;
}

static struct mg_tls_context *client(bool is_opportunistic)
{
    struct mg_tls_client_options o = { .is_opportunistic = is_opportunistic };
    struct mg_tls_context *ctx = NULL;
    char *error = NULL;
    if (mg_tls_context_new_client(&o, &ctx, &error) != 0)
        fail_msg("%s", error);
    return ctx;
}

static void test_tls_outbound_old_servers(void **state)
{
    (void)state;
    struct mg_tls_context *strict = client(false), *opportunistic = client(true);
    static const struct {
        const char *server_ciphers;
        bool is_accepted;   /* by the opportunistic client */
    } cases[] = {
        { "ECDHE-ECDSA-AES128-GCM-SHA256", true }, /* modern: both */
        { "ECDHE-ECDSA-AES128-SHA", true },        /* CBC with forward secrecy */
        { "ECDHE-ECDSA-AES256-SHA384", true },
        { "AECDH-AES128-SHA", false },             /* anonymous: never */
        { "ECDHE-ECDSA-NULL-SHA", false },         /* no encryption: never */
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        SSL_CTX *sctx = old_server(cases[i].server_ciphers, TLS1_2_VERSION);
        const char *got = handshake(opportunistic, sctx);
        if (cases[i].is_accepted) {
            if (got == NULL || strcmp(got, cases[i].server_ciphers) != 0)
                fail_msg("%s: opportunistic client got %s", cases[i].server_ciphers,
                         got != NULL ? got : "no session");
        } else if (got != NULL) {
            fail_msg("%s: opportunistic client accepted it", cases[i].server_ciphers);
        }
        /* the strict client (links, relayhost) stays with ECDHE + AEAD */
        bool is_modern = strstr(cases[i].server_ciphers, "GCM") != NULL;
        assert_int_equal(handshake(strict, sctx) != NULL, is_modern);
        SSL_CTX_free(sctx);
    }
    /* TLS 1.1 and older are refused by both */
    SSL_CTX *sctx = old_server("ECDHE-ECDSA-AES128-SHA", TLS1_1_VERSION);
    assert_null(handshake(opportunistic, sctx));
    assert_null(handshake(strict, sctx));
    SSL_CTX_free(sctx);
    mg_tls_context_unref(&strict);
    mg_tls_context_unref(&opportunistic);
}

static void test_tls_outbound_own_ciphers_still_checked(void **state)
{
    (void)state;
    /* an explicit list on a strict client is held to the policy */
    struct mg_tls_client_options o = { .ciphers = "AES128-SHA" };
    struct mg_tls_context *ctx = NULL;
    char *error = NULL;
    assert_int_equal(mg_tls_context_new_client(&o, &ctx, &error), -1);
    assert_non_null(error);
    free(error);
    assert_null(ctx);
}

static int setup(void **state)
{
    (void)state;
    dir = testutil_mkdtemp();
    testutil_make_cert(dir, "old", "mx.old.test", &ec_cert, &ec_key);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    testutil_rmtree(dir);
    free(dir);
    free(ec_cert);
    free(ec_key);
    return 0;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_tls_outbound_old_servers),
        cmocka_unit_test(test_tls_outbound_own_ciphers_still_checked),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
