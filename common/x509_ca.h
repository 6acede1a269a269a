/* A small private certificate authority for the links between Mailgenic
 * hosts (LMTP and the auth service over TCP, docs/scale-out.md).
 *
 * Both ends of such a link present a certificate issued by this CA and
 * accept only peers that do (mutual TLS); public CAs play no part, so a
 * certificate bought for the MX name can never open the auth service.
 *
 * Keys are ECDSA P-256: every TLS 1.2/1.3 stack handles them and they are
 * cheap to sign with. Certificates and keys travel as PEM text; the caller
 * writes them to files with the modes it wants. */
#ifndef MG_COMMON_X509_CA_H
#define MG_COMMON_X509_CA_H

#include <stddef.h>

/* Validity, in days. The CA outlives the certificates it issues; renewing
 * a host certificate is one `mgadm ca issue`. */
#define MG_X509_CA_DAYS 3650u
#define MG_X509_CA_ISSUE_DAYS 1095u

/* Names a certificate may carry: a host name (letters, digits, '-', '.',
 * '_') or an IP literal, at most 253 bytes. */
#define MG_X509_CA_NAME_MAX 253
/* X.509 bounds a common name to 64 characters (ub-common-name). */
#define MG_X509_CA_CN_MAX 64u

/* Whether name is acceptable as a common name or an alternative name. */
int mg_x509_ca_check_name(const char *name);

/* A new self-signed CA named common_name (free text, 1 to 64 bytes). On success *cert_pem_r and
 * *key_pem_r hold PEM text (the caller frees them; wipe the key with
 * mg_x509_ca_free_key). Returns 0, or -1 with a reason (to free). */
int mg_x509_ca_create(const char *common_name, unsigned days, char **cert_pem_r,
                      char **key_pem_r, char **error_r);

/* A certificate for a host, signed by the CA whose PEM certificate and key
 * are given. common_name (a name as above, at most 64 bytes) is also the
 * first subjectAltName; alt_names adds
 * more (host names or IP literals). The certificate serves both as a TLS
 * server and a TLS client certificate, since every host is both. */
int mg_x509_ca_issue(const char *ca_cert_pem, const char *ca_key_pem, const char *common_name,
                     const char *const *alt_names, size_t n_alt_names, unsigned days,
                     char **cert_pem_r, char **key_pem_r, char **error_r);

/* Clears and frees PEM key text; accepts NULL; sets *key_pem to NULL. */
void mg_x509_ca_free_key(char **key_pem);

#endif
