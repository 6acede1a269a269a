/* mgadm ca init | issue | list: the private CA of the links between
 * Mailgenic hosts (docs/scale-out.md). The CA lives in [cluster] ca_dir
 * (or $MG_CA_DIR): ca.key, ca.crt and one NAME.crt + NAME.key per host. */
#include "mda/mgadm/mgadm.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <arpa/inet.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/alloc.h"
#include "common/settings.h"
#include "common/x509_ca.h"

static const char *ca_dir(const struct mgadm *ctx)
{
    const char *env = getenv("MG_CA_DIR");
    return env != NULL && env[0] != '\0' ? env : ctx->config.settings->cluster.ca_dir;
}

/* Writes data to dir/name durably (temporary file, fsync, rename, fsync
 * of the directory), refusing to replace an existing file. */
static int write_new_file(const char *dir, const char *name, const char *data, mode_t mode)
{
    char *path = mg_asprintf("%s/%s", dir, name);
    char *tmp = mg_asprintf("%s/.%s.tmp", dir, name);
    int ret = MGADM_EXIT_FAIL;
    int fd = -1;
    size_t len = strlen(data);
    if (access(path, F_OK) == 0) {
        mgadm_fail("%s exists already; remove it first to replace it", path);
        goto out;
    }
    (void)unlink(tmp);
    fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, mode);
    if (fd < 0 || fchmod(fd, mode) < 0 || write(fd, data, len) != (ssize_t)len ||
        fsync(fd) < 0) {
        mgadm_fail("cannot write %s: %s", tmp, strerror(errno));
        goto out;
    }
    /* link(), not rename(): it fails instead of replacing a file that
     * appeared meanwhile. */
    if (link(tmp, path) < 0) {
        mgadm_fail("cannot create %s: %s", path, strerror(errno));
        goto out;
    }
    int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd >= 0) {
        (void)fsync(dfd);
        close(dfd);
    }
    ret = MGADM_EXIT_OK;
out:
    if (fd >= 0) {
        close(fd);
        (void)unlink(tmp);
    }
    free(path);
    free(tmp);
    return ret;
}

static char *read_text(const char *dir, const char *name)
{
    char *path = mg_asprintf("%s/%s", dir, name);
    FILE *f = fopen(path, "re");
    free(path);
    if (f == NULL)
        return NULL;
    char *text = NULL;
    size_t cap = 0;
    ssize_t n = getdelim(&text, &cap, '\0', f);
    fclose(f);
    if (n <= 0) {
        free(text);
        return NULL;
    }
    return text;
}

static int ca_init(struct mgadm *ctx)
{
    const char *dir = ca_dir(ctx);
    if (mkdir(dir, 0700) < 0 && errno != EEXIST)
        return mgadm_fail("cannot create %s: %s", dir, strerror(errno));
    char *key_path = mg_asprintf("%s/ca.key", dir);
    bool has_key = access(key_path, F_OK) == 0;
    free(key_path);
    if (has_key)
        return mgadm_fail("a CA exists already in %s", dir);
    char host[256] = "";
    const char *hostname = ctx->config.settings->hostname;
    if (hostname[0] == '\0' && gethostname(host, sizeof(host) - 1) == 0)
        hostname = host;
    char *name = ctx->n_args > 0 ? mg_strdup(ctx->args[0])
                                 : mg_asprintf("Mailgenic CA %.40s", hostname);
    char *cert = NULL, *key = NULL, *error = NULL;
    int ret = MGADM_EXIT_FAIL;
    if (mg_x509_ca_create(name, MG_X509_CA_DAYS, &cert, &key, &error) < 0) {
        mgadm_fail("%s", error);
        goto out;
    }
    /* the key first: a certificate without its key would block a retry */
    if ((ret = write_new_file(dir, "ca.key", key, 0600)) != MGADM_EXIT_OK ||
        (ret = write_new_file(dir, "ca.crt", cert, 0644)) != MGADM_EXIT_OK)
        goto out;
    printf("CA \"%s\" created in %s (valid %u days)\n"
           "copy %s/ca.crt to every host as [cluster] ca_file; keep ca.key here\n",
           name, dir, MG_X509_CA_DAYS, dir);
out:
    free(name);
    free(cert);
    free(error);
    mg_x509_ca_free_key(&key);
    return ret;
}

static int ca_issue_check(struct mgadm *ctx)
{
    for (int i = 0; i < ctx->n_args; i++) {
        if (mg_x509_ca_check_name(ctx->args[i]) < 0)
            return mgadm_usage_error(ctx->cmd, "not a host name or IP address: '%s'",
                                     ctx->args[i]);
    }
    if (strlen(ctx->args[0]) > MG_X509_CA_CN_MAX)
        return mgadm_usage_error(ctx->cmd, "NAME has at most %u characters; give a longer "
                                 "name as an ALTNAME", MG_X509_CA_CN_MAX);
    return MGADM_EXIT_OK;
}

static int ca_issue(struct mgadm *ctx)
{
    const char *dir = ca_dir(ctx);
    const char *name = ctx->args[0];
    char *ca_cert = read_text(dir, "ca.crt");
    char *ca_key = read_text(dir, "ca.key");
    char *cert = NULL, *key = NULL, *error = NULL;
    char *cert_name = mg_asprintf("%s.crt", name);
    char *key_name = mg_asprintf("%s.key", name);
    int ret = MGADM_EXIT_FAIL;
    if (ca_cert == NULL || ca_key == NULL) {
        mgadm_fail("no CA in %s (mgadm ca init creates one)", dir);
        goto out;
    }
    if (mg_x509_ca_issue(ca_cert, ca_key, name, (const char *const *)ctx->args + 1,
                         (size_t)ctx->n_args - 1, MG_X509_CA_ISSUE_DAYS, &cert, &key,
                         &error) < 0) {
        mgadm_fail("%s", error);
        goto out;
    }
    if ((ret = write_new_file(dir, key_name, key, 0600)) != MGADM_EXIT_OK)
        goto out;
    if ((ret = write_new_file(dir, cert_name, cert, 0644)) != MGADM_EXIT_OK) {
        /* leave no orphan key behind */
        char *key_path = mg_asprintf("%s/%s", dir, key_name);
        (void)unlink(key_path);
        free(key_path);
        goto out;
    }
    printf("%s/%s\n%s/%s\n", dir, cert_name, dir, key_name);
out:
    free(cert_name);
    free(key_name);
    free(ca_cert);
    free(cert);
    free(error);
    mg_x509_ca_free_key(&ca_key);
    mg_x509_ca_free_key(&key);
    return ret;
}

static void print_cert_line(const char *path, const char *name)
{
    FILE *f = fopen(path, "re");
    X509 *cert = f != NULL ? PEM_read_X509(f, NULL, NULL, NULL) : NULL;
    if (f != NULL)
        fclose(f);
    if (cert == NULL) {
        printf("%-24s (unreadable)\n", name);
        return;
    }
    char expires[64] = "?";
    BIO *bio = BIO_new(BIO_s_mem());
    if (bio != NULL && ASN1_TIME_print(bio, X509_get0_notAfter(cert)) == 1) {
        int n = BIO_read(bio, expires, sizeof(expires) - 1);
        expires[n > 0 ? n : 0] = '\0';
    }
    BIO_free(bio);
    printf("%-24s expires %s", name, expires);
    GENERAL_NAMES *names = X509_get_ext_d2i(cert, NID_subject_alt_name, NULL, NULL);
    for (int i = 0; names != NULL && i < sk_GENERAL_NAME_num(names); i++) {
        const GENERAL_NAME *gn = sk_GENERAL_NAME_value(names, i);
        if (gn->type == GEN_DNS) {
            printf("%s%.*s", i == 0 ? "  names " : ",", ASN1_STRING_length(gn->d.dNSName),
                   (const char *)ASN1_STRING_get0_data(gn->d.dNSName));
        } else if (gn->type == GEN_IPADD) {
            ASN1_OCTET_STRING *ip = gn->d.iPAddress;
            char text[64];
            int family = ASN1_STRING_length(ip) == 4 ? AF_INET : AF_INET6;
            if (inet_ntop(family, ASN1_STRING_get0_data(ip), text, sizeof(text)) != NULL)
                printf("%s%s", i == 0 ? "  names " : ",", text);
        }
    }
    GENERAL_NAMES_free(names);
    putchar('\n');
    X509_free(cert);
}

static int ca_list(struct mgadm *ctx)
{
    const char *dir = ca_dir(ctx);
    struct dirent **entries = NULL;
    int n = scandir(dir, &entries, NULL, alphasort);
    if (n < 0)
        return mgadm_fail("cannot open %s: %s", dir, strerror(errno));
    for (int i = 0; i < n; i++) {
        const char *file = entries[i]->d_name;
        size_t len = strlen(file);
        if (file[0] != '.' && len >= 5 && strcmp(file + len - 4, ".crt") == 0) {
            char *path = mg_asprintf("%s/%s", dir, file);
            char *name = mg_strndup(file, len - 4);
            print_cert_line(path, strcmp(name, "ca") == 0 ? "ca (the CA)" : name);
            free(path);
            free(name);
        }
        free(entries[i]);
    }
    free(entries);
    return MGADM_EXIT_OK;
}

const struct mgadm_cmd mgadm_ca_cmds[] = {
    { "ca", "init", "[NAME]", "create the private CA of the links between hosts",
      "Creates ca.key (mode 0600) and ca.crt in [cluster] ca_dir (or $MG_CA_DIR).\n"
      "NAME is the CA's name (default \"Mailgenic CA <hostname>\").\n",
      0, 1, 0, MGADM_ACCESS_NONE, NULL, NULL, ca_init },
    { "ca", "issue", "NAME [ALTNAME...]", "issue a host certificate (server and client)",
      "Writes NAME.crt and NAME.key (mode 0600) in the CA directory. NAME and each\n"
      "ALTNAME (host names or IP addresses) are the names other hosts may connect\n"
      "to this one by: include the address in [mta] lmtp / auth of the MTA.\n",
      1, 16, 0, MGADM_ACCESS_NONE, ca_issue_check, NULL, ca_issue },
    { "ca", "list", "", "list the CA and the certificates it issued, with expiry",
      NULL, 0, 0, 0, MGADM_ACCESS_NONE, NULL, NULL, ca_list },
    { 0 },
};
