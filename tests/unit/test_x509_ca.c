/* The private CA for inter-host links: what it issues must make mutual
 * TLS work between two Mailgenic hosts, and fail for everyone else (no
 * client certificate, a certificate of another CA, a wrong host name). */
#include "testutil.h"

#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/alloc.h"
#include "common/buf.h"
#include "common/tls.h"
#include "common/x509_ca.h"

struct pki {
    char *dir;
    char *ca_file, *other_ca_file;
    char *mda_cert, *mda_key;   /* CN mda.internal, SAN 127.0.0.1 */
    char *mta_cert, *mta_key;   /* CN mta.internal */
    char *rogue_cert, *rogue_key; /* CN mta.internal, other CA */
};

static char *write_pem(const char *dir, const char *name, char *pem)
{
    char *path = mg_asprintf("%s/%s", dir, name);
    testutil_write_file(path, pem, strlen(pem));
    return path;
}

static void issue(struct pki *pki, const char *ca_cert, const char *ca_key, const char *name,
                  const char *const *alt, size_t n_alt, const char *base, char **cert_r,
                  char **key_r)
{
    char *cert = NULL, *key = NULL, *error = NULL;
    int ret = mg_x509_ca_issue(ca_cert, ca_key, name, alt, n_alt, MG_X509_CA_ISSUE_DAYS,
                               &cert, &key, &error);
    if (ret != 0)
        fail_msg("issue %s: %s", name, error);
    char *file = mg_asprintf("%s.crt", base);
    *cert_r = write_pem(pki->dir, file, cert);
    free(file);
    file = mg_asprintf("%s.key", base);
    *key_r = write_pem(pki->dir, file, key);
    free(file);
    free(cert);
    mg_x509_ca_free_key(&key);
    assert_null(key);
}

static int setup(void **state)
{
    struct pki *pki = mg_calloc(1, sizeof(*pki));
    pki->dir = testutil_mkdtemp();
    char *ca_cert = NULL, *ca_key = NULL, *other_cert = NULL, *other_key = NULL;
    char *error = NULL;
    assert_int_equal(mg_x509_ca_create("Mailgenic test CA", MG_X509_CA_DAYS, &ca_cert, &ca_key,
                                       &error), 0);
    assert_int_equal(mg_x509_ca_create("Other CA", MG_X509_CA_DAYS, &other_cert, &other_key,
                                       &error), 0);
    pki->ca_file = write_pem(pki->dir, "ca.crt", ca_cert);
    pki->other_ca_file = write_pem(pki->dir, "other.crt", other_cert);
    const char *mda_alt[] = { "127.0.0.1", "::1" };
    issue(pki, ca_cert, ca_key, "mda.internal", mda_alt, 2, "mda", &pki->mda_cert,
          &pki->mda_key);
    issue(pki, ca_cert, ca_key, "mta.internal", NULL, 0, "mta", &pki->mta_cert, &pki->mta_key);
    issue(pki, other_cert, other_key, "mta.internal", NULL, 0, "rogue", &pki->rogue_cert,
          &pki->rogue_key);
    free(ca_cert);
    free(other_cert);
    mg_x509_ca_free_key(&ca_key);
    mg_x509_ca_free_key(&other_key);
    *state = pki;
    return 0;
}

static int teardown(void **state)
{
    struct pki *pki = *state;
    testutil_rmtree(pki->dir);
    char **strings[] = { &pki->dir, &pki->ca_file, &pki->other_ca_file, &pki->mda_cert,
                         &pki->mda_key, &pki->mta_cert, &pki->mta_key, &pki->rogue_cert,
                         &pki->rogue_key };
    for (size_t i = 0; i < sizeof(strings) / sizeof(strings[0]); i++)
        mg_free(strings[i]);
    free(pki);
    return 0;
}

/* Runs a handshake between the two engines in memory; true when both
 * sides completed it and neither failed. */
static bool handshake(struct mg_tls *client, struct mg_tls *server)
{
    struct mg_buf wire = MG_BUF_INIT;
    struct mg_buf plain = MG_BUF_INIT;
    bool is_failed = false;
    for (int round = 0; round < 20 && !is_failed; round++) {
        mg_buf_reset(&wire);
        mg_tls_take_output(client, &wire);
        mg_tls_feed(server, wire.data, wire.len);
        is_failed |= mg_tls_read(server, &plain) == MG_TLS_ERROR;
        mg_buf_reset(&wire);
        mg_tls_take_output(server, &wire);
        mg_tls_feed(client, wire.data, wire.len);
        is_failed |= mg_tls_read(client, &plain) == MG_TLS_ERROR;
        /* TLS 1.3: the server learns the client certificate was bad only
         * after the client thinks it is done; one more exchange tells. */
        if (mg_tls_is_handshake_done(client) && mg_tls_is_handshake_done(server) && round > 2)
            break;
    }
    mg_buf_free(&wire);
    mg_buf_free(&plain);
    return !is_failed && mg_tls_is_handshake_done(client) && mg_tls_is_handshake_done(server);
}

static bool link_works(const char *server_cert, const char *server_key, const char *client_ca,
                       const char *client_cert, const char *client_key, const char *server_ca,
                       const char *peer_name)
{
    struct mg_tls_server_options so = {
        .cert_file = server_cert, .key_file = server_key, .client_ca_file = client_ca,
    };
    struct mg_tls_client_options co = {
        .ca_file = server_ca, .cert_file = client_cert, .key_file = client_key,
        .require_verification = true,
    };
    struct mg_tls_context *sctx = NULL, *cctx = NULL;
    char *error = NULL;
    if (mg_tls_context_new_server(&so, &sctx, &error) != 0)
        fail_msg("server context: %s", error);
    if (mg_tls_context_new_client(&co, &cctx, &error) != 0)
        fail_msg("client context: %s", error);
    struct mg_tls *server = mg_tls_new_server(sctx);
    struct mg_tls *client = mg_tls_new_client(cctx, peer_name);
    bool is_ok = handshake(client, server);
    if (is_ok) {
        assert_true(mg_tls_is_verified(client));
        assert_true(mg_tls_is_verified(server));
        assert_string_equal(mg_tls_peer_common_name(server), "mta.internal");
    }
    mg_tls_free(&client);
    mg_tls_free(&server);
    mg_tls_context_unref(&sctx);
    mg_tls_context_unref(&cctx);
    return is_ok;
}

static void test_x509_ca_mutual_tls(void **state)
{
    struct pki *p = *state;
    assert_true(link_works(p->mda_cert, p->mda_key, p->ca_file, p->mta_cert, p->mta_key,
                           p->ca_file, "mda.internal"));
    /* the IP alternative names work too */
    assert_true(link_works(p->mda_cert, p->mda_key, p->ca_file, p->mta_cert, p->mta_key,
                           p->ca_file, "127.0.0.1"));
    assert_true(link_works(p->mda_cert, p->mda_key, p->ca_file, p->mta_cert, p->mta_key,
                           p->ca_file, "::1"));
}

static void test_x509_ca_refuses_strangers(void **state)
{
    struct pki *p = *state;
    /* no client certificate */
    assert_false(link_works(p->mda_cert, p->mda_key, p->ca_file, NULL, NULL, p->ca_file,
                            "mda.internal"));
    /* a client certificate of another CA, same name */
    assert_false(link_works(p->mda_cert, p->mda_key, p->ca_file, p->rogue_cert, p->rogue_key,
                            p->ca_file, "mda.internal"));
    /* the server's name does not match */
    assert_false(link_works(p->mda_cert, p->mda_key, p->ca_file, p->mta_cert, p->mta_key,
                            p->ca_file, "imap.example.org"));
    assert_false(link_works(p->mda_cert, p->mda_key, p->ca_file, p->mta_cert, p->mta_key,
                            p->ca_file, "10.0.0.9"));
    /* the client trusts another CA */
    assert_false(link_works(p->mda_cert, p->mda_key, p->ca_file, p->mta_cert, p->mta_key,
                            p->other_ca_file, "mda.internal"));
}

static X509 *read_cert(const char *path)
{
    FILE *f = fopen(path, "r");
    assert_non_null(f);
    X509 *cert = PEM_read_X509(f, NULL, NULL, NULL);
    fclose(f);
    assert_non_null(cert);
    return cert;
}

static void test_x509_ca_certificate_shape(void **state)
{
    struct pki *p = *state;
    X509 *ca = read_cert(p->ca_file);
    X509 *leaf = read_cert(p->mta_cert);
    assert_int_equal(X509_check_ca(ca), 1);
    assert_int_equal(X509_check_ca(leaf), 0);
    assert_int_equal(X509_check_issued(ca, leaf), X509_V_OK);
    assert_int_equal(X509_check_purpose(leaf, X509_PURPOSE_SSL_CLIENT, 0), 1);
    assert_int_equal(X509_check_purpose(leaf, X509_PURPOSE_SSL_SERVER, 0), 1);
    assert_int_equal(X509_check_host(leaf, "mta.internal", 0, 0, NULL), 1);
    /* about three years, and never already valid for long */
    int days = 0, secs = 0;
    assert_int_equal(ASN1_TIME_diff(&days, &secs, X509_get0_notBefore(leaf),
                                    X509_get0_notAfter(leaf)), 1);
    assert_in_range(days, MG_X509_CA_ISSUE_DAYS, MG_X509_CA_ISSUE_DAYS + 1);
    X509_free(ca);
    X509_free(leaf);
}

static void test_x509_ca_names(void **state)
{
    (void)state;
    assert_int_equal(mg_x509_ca_check_name("mx1.example.org"), 0);
    assert_int_equal(mg_x509_ca_check_name("10.0.0.2"), 0);
    assert_int_equal(mg_x509_ca_check_name("fd00::2"), 0);
    assert_int_equal(mg_x509_ca_check_name(""), -1);
    assert_int_equal(mg_x509_ca_check_name("../etc"), -1);
    assert_int_equal(mg_x509_ca_check_name("a/b"), -1);
    assert_int_equal(mg_x509_ca_check_name("-x"), -1);
    assert_int_equal(mg_x509_ca_check_name("a b"), -1);
    assert_int_equal(mg_x509_ca_check_name("a..b"), -1);

    char *cert = NULL, *key = NULL, *error = NULL;
    assert_int_equal(mg_x509_ca_create("", 10, &cert, &key, &error), -1);
    assert_non_null(error);
    mg_free(&error);
    assert_int_equal(mg_x509_ca_issue("junk", "junk", "a.b", NULL, 0, 10, &cert, &key, &error),
                     -1);
    assert_non_null(error);
    mg_free(&error);
    const char *bad_alt[] = { "ok.example", "not ok" };
    assert_int_equal(mg_x509_ca_issue("junk", "junk", "a.b", bad_alt, 2, 10, &cert, &key,
                                      &error), -1);
    assert_string_equal(error, "not a host name or IP address: not ok");
    mg_free(&error);
    assert_null(cert);
    assert_null(key);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_x509_ca_mutual_tls),
        cmocka_unit_test(test_x509_ca_refuses_strangers),
        cmocka_unit_test(test_x509_ca_certificate_shape),
        cmocka_unit_test(test_x509_ca_names),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
