/* Private CA for inter-host links: key generation and signing with
 * OpenSSL's X509 API (no openssl(1) at run time, no config files). */
#include "common/x509_ca.h"

#include <arpa/inet.h>
#include <openssl/bn.h>
#include <openssl/ec.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "common/alloc.h"

static char *openssl_error(const char *what)
{
    unsigned long code = ERR_get_error();
    char text[256] = "unknown error";
    if (code != 0)
        ERR_error_string_n(code, text, sizeof(text));
    ERR_clear_error();
    return mg_asprintf("%s: %s", what, text);
}

static bool is_ip_literal(const char *name)
{
    unsigned char addr[16];
    return inet_pton(AF_INET, name, addr) == 1 || inet_pton(AF_INET6, name, addr) == 1;
}

int mg_x509_ca_check_name(const char *name)
{
    size_t len = strlen(name);
    if (len == 0 || len > MG_X509_CA_NAME_MAX)
        return -1;
    if (is_ip_literal(name))
        return 0;
    if (name[0] == '.' || name[0] == '-' || strstr(name, "..") != NULL)
        return -1;
    for (size_t i = 0; i < len; i++) {
        char c = name[i];
        bool is_ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
                     (c >= '0' && c <= '9') || c == '-' || c == '.' || c == '_';
        if (!is_ok)
            return -1;
    }
    return 0;
}

static char *bio_to_string(BIO *bio)
{
    char *data = NULL;
    long len = BIO_get_mem_data(bio, &data);
    return len > 0 ? mg_strndup(data, (size_t)len) : NULL;
}

/* PEM text of a certificate and a private key (unencrypted PKCS#8). */
static int to_pem(X509 *cert, EVP_PKEY *key, char **cert_pem_r, char **key_pem_r,
                  char **error_r)
{
    BIO *cert_bio = BIO_new(BIO_s_mem());
    BIO *key_bio = BIO_new(BIO_s_secmem());
    int ret = -1;
    if (cert_bio == NULL || key_bio == NULL || PEM_write_bio_X509(cert_bio, cert) != 1 ||
        PEM_write_bio_PrivateKey(key_bio, key, NULL, NULL, 0, NULL, NULL) != 1) {
        *error_r = openssl_error("cannot encode PEM");
        goto out;
    }
    *cert_pem_r = bio_to_string(cert_bio);
    *key_pem_r = bio_to_string(key_bio);
    ret = 0;
out:
    BIO_free(cert_bio);
    BIO_free(key_bio);
    return ret;
}

static int add_extension(X509 *cert, X509 *issuer, int nid, const char *value, char **error_r)
{
    X509V3_CTX ctx;
    X509V3_set_ctx_nodb(&ctx);
    X509V3_set_ctx(&ctx, issuer, cert, NULL, NULL, 0);
    X509_EXTENSION *ext = X509V3_EXT_conf_nid(NULL, &ctx, nid, value);
    if (ext == NULL || X509_add_ext(cert, ext, -1) != 1) {
        X509_EXTENSION_free(ext);
        *error_r = openssl_error("cannot add a certificate extension");
        return -1;
    }
    X509_EXTENSION_free(ext);
    return 0;
}

/* A certificate with a random 128-bit serial, the subject CN, the key and
 * the validity set; issuer and signature come later. */
static X509 *cert_new(const char *common_name, EVP_PKEY *key, unsigned days, char **error_r)
{
    X509 *cert = X509_new();
    BIGNUM *serial = BN_new();
    X509_NAME *subject = X509_NAME_new();
    bool is_ok = cert != NULL && serial != NULL && subject != NULL &&
                 X509_set_version(cert, 2) == 1 && BN_rand(serial, 127, BN_RAND_TOP_ANY,
                                                           BN_RAND_BOTTOM_ANY) == 1 &&
                 BN_to_ASN1_INTEGER(serial, X509_get_serialNumber(cert)) != NULL &&
                 X509_NAME_add_entry_by_txt(subject, "CN", MBSTRING_UTF8,
                                            (const unsigned char *)common_name, -1, -1,
                                            0) == 1 &&
                 X509_set_subject_name(cert, subject) == 1 &&
                 /* an hour back, for clocks a little apart */
                 X509_gmtime_adj(X509_getm_notBefore(cert), -3600) != NULL &&
                 X509_time_adj_ex(X509_getm_notAfter(cert), (int)days, 0, NULL) != NULL &&
                 X509_set_pubkey(cert, key) == 1;
    BN_free(serial);
    X509_NAME_free(subject);
    if (!is_ok) {
        *error_r = openssl_error("cannot build a certificate");
        X509_free(cert);
        return NULL;
    }
    return cert;
}

static EVP_PKEY *key_new(char **error_r)
{
    EVP_PKEY *key = EVP_EC_gen("P-256");
    if (key == NULL)
        *error_r = openssl_error("cannot generate a key");
    return key;
}

static int sign(X509 *cert, EVP_PKEY *key, char **error_r)
{
    if (X509_sign(cert, key, EVP_sha256()) <= 0) {
        *error_r = openssl_error("cannot sign the certificate");
        return -1;
    }
    return 0;
}

int mg_x509_ca_create(const char *common_name, unsigned days, char **cert_pem_r,
                      char **key_pem_r, char **error_r)
{
    *cert_pem_r = NULL;
    *key_pem_r = NULL;
    size_t len = strlen(common_name);
    if (len == 0 || len > MG_X509_CA_CN_MAX) {
        *error_r = mg_asprintf("a CA name has 1 to %u bytes", MG_X509_CA_CN_MAX);
        return -1;
    }
    EVP_PKEY *key = key_new(error_r);
    if (key == NULL)
        return -1;
    X509 *cert = cert_new(common_name, key, days, error_r);
    int ret = -1;
    if (cert == NULL)
        goto out;
    if (X509_set_issuer_name(cert, X509_get_subject_name(cert)) != 1) {
        *error_r = openssl_error("cannot set the issuer");
        goto out;
    }
    /* pathlen 0: the CA signs host certificates, never another CA. */
    if (add_extension(cert, cert, NID_basic_constraints, "critical,CA:TRUE,pathlen:0",
                      error_r) < 0 ||
        add_extension(cert, cert, NID_key_usage, "critical,keyCertSign,cRLSign", error_r) < 0 ||
        add_extension(cert, cert, NID_subject_key_identifier, "hash", error_r) < 0 ||
        sign(cert, key, error_r) < 0)
        goto out;
    ret = to_pem(cert, key, cert_pem_r, key_pem_r, error_r);
out:
    X509_free(cert);
    EVP_PKEY_free(key);
    return ret;
}

static X509 *cert_from_pem(const char *pem)
{
    BIO *bio = BIO_new_mem_buf(pem, -1);
    X509 *cert = bio != NULL ? PEM_read_bio_X509(bio, NULL, NULL, NULL) : NULL;
    BIO_free(bio);
    return cert;
}

static EVP_PKEY *key_from_pem(const char *pem)
{
    BIO *bio = BIO_new_mem_buf(pem, -1);
    EVP_PKEY *key = bio != NULL ? PEM_read_bio_PrivateKey(bio, NULL, NULL, NULL) : NULL;
    BIO_free(bio);
    return key;
}

/* "DNS:a,IP:10.0.0.2,..." for the names; NULL when one is unacceptable. */
static char *alt_names_value(const char *common_name, const char *const *alt_names,
                             size_t n_alt_names, char **error_r)
{
    size_t cap = 0;
    for (size_t i = 0; i < n_alt_names; i++)
        cap += strlen(alt_names[i]) + 5;
    cap += strlen(common_name) + 5 + 1;
    char *value = mg_malloc(cap);
    size_t len = 0;
    for (size_t i = 0; i <= n_alt_names; i++) {
        const char *name = i == 0 ? common_name : alt_names[i - 1];
        if (mg_x509_ca_check_name(name) < 0) {
            *error_r = mg_asprintf("not a host name or IP address: %s", name);
            free(value);
            return NULL;
        }
        len += (size_t)snprintf(value + len, cap - len, "%s%s:%s", i > 0 ? "," : "",
                                is_ip_literal(name) ? "IP" : "DNS", name);
    }
    return value;
}

int mg_x509_ca_issue(const char *ca_cert_pem, const char *ca_key_pem, const char *common_name,
                     const char *const *alt_names, size_t n_alt_names, unsigned days,
                     char **cert_pem_r, char **key_pem_r, char **error_r)
{
    *cert_pem_r = NULL;
    *key_pem_r = NULL;
    if (strlen(common_name) > MG_X509_CA_CN_MAX) {
        *error_r = mg_asprintf("a certificate name has at most %u bytes", MG_X509_CA_CN_MAX);
        return -1;
    }
    char *san = alt_names_value(common_name, alt_names, n_alt_names, error_r);
    if (san == NULL)
        return -1;
    X509 *ca_cert = cert_from_pem(ca_cert_pem);
    EVP_PKEY *ca_key = key_from_pem(ca_key_pem);
    EVP_PKEY *key = NULL;
    X509 *cert = NULL;
    int ret = -1;
    if (ca_cert == NULL || ca_key == NULL) {
        *error_r = openssl_error("cannot read the CA certificate and key");
        goto out;
    }
    if (X509_check_private_key(ca_cert, ca_key) != 1) {
        *error_r = mg_asprintf("the CA key does not belong to the CA certificate");
        ERR_clear_error();
        goto out;
    }
    if ((key = key_new(error_r)) == NULL ||
        (cert = cert_new(common_name, key, days, error_r)) == NULL)
        goto out;
    if (X509_set_issuer_name(cert, X509_get_subject_name(ca_cert)) != 1) {
        *error_r = openssl_error("cannot set the issuer");
        goto out;
    }
    if (add_extension(cert, ca_cert, NID_basic_constraints, "critical,CA:FALSE", error_r) < 0 ||
        add_extension(cert, ca_cert, NID_key_usage, "critical,digitalSignature", error_r) < 0 ||
        add_extension(cert, ca_cert, NID_ext_key_usage, "serverAuth,clientAuth", error_r) < 0 ||
        add_extension(cert, ca_cert, NID_subject_key_identifier, "hash", error_r) < 0 ||
        add_extension(cert, ca_cert, NID_authority_key_identifier, "keyid:always", error_r) < 0 ||
        add_extension(cert, ca_cert, NID_subject_alt_name, san, error_r) < 0 ||
        sign(cert, ca_key, error_r) < 0)
        goto out;
    ret = to_pem(cert, key, cert_pem_r, key_pem_r, error_r);
out:
    free(san);
    X509_free(cert);
    X509_free(ca_cert);
    EVP_PKEY_free(key);
    EVP_PKEY_free(ca_key);
    return ret;
}

void mg_x509_ca_free_key(char **key_pem)
{
    if (*key_pem == NULL)
        return;
    OPENSSL_cleanse(*key_pem, strlen(*key_pem));
    mg_free(key_pem);
}
