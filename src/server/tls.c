/* SPDX-License-Identifier: Apache-2.0 */
/*
 * tls.c: see tls.h. Uses OpenSSL only to check the PEM files (parse, key matches
 * certificate, validity dates, CA bundle non-empty); tlsconn.c does the TLS itself, from the
 * text read here.
 */
#include "server/tls.h"

#include <errno.h>
#include <openssl/bio.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/file.h"
#include "core/log.h"
#include "core/wd.h"

#define MAX_PEM (1 << 20)

static char *read_text(const char *path, char *err, size_t errcap)
{
    char *buf;
    size_t len;
    return wd_file_read(path, MAX_PEM, &buf, &len, err, errcap) == WD_OK ? buf : NULL;
}

static const char *ossl_reason(void)
{
    unsigned long e = ERR_get_error();
    ERR_clear_error();
    const char *r = e ? ERR_reason_error_string(e) : NULL;
    return r ? r : "not valid PEM";
}

/* OpenSSL's default passphrase callback asks on the terminal, or reads standard input: a
 * daemon must never wait there (nor take a passphrase from whatever its stdin is). This one
 * refuses, and notes that the key asked for one: it is encrypted. */
static int refuse_passphrase(char *buf, int size, int rwflag, void *asked)
{
    *(bool *)asked = true;
    return -1;
}

int wd_tls_load(const struct wd_config *cfg, struct wd_tls_material *out, char *err, size_t errcap)
{
    memset(out, 0, sizeof *out);
    X509 *cert = NULL;
    EVP_PKEY *key = NULL;
    BIO *bio = NULL;
    int rc = WD_ETLS;

    if (!(out->cert_pem = read_text(cfg->tls_cert, err, errcap)))
        goto out;
    if (!(out->key_pem = read_text(cfg->tls_key, err, errcap)))
        goto out;
    bio = BIO_new_mem_buf(out->cert_pem, -1);
    cert = bio ? PEM_read_bio_X509(bio, NULL, NULL, NULL) : NULL;
    BIO_free(bio);
    if (!cert) {
        snprintf(err, errcap, "%s: no certificate: %s", cfg->tls_cert, ossl_reason());
        goto out;
    }
    bool encrypted = false;
    bio = BIO_new_mem_buf(out->key_pem, -1);
    key = bio ? PEM_read_bio_PrivateKey(bio, NULL, refuse_passphrase, &encrypted) : NULL;
    BIO_free(bio);
    if (!key && encrypted) {
        ERR_clear_error();
        snprintf(err, errcap,
                 "%s: the private key is encrypted (it needs a passphrase) and warden does not "
                 "ask for one: store it decrypted, readable only by warden (openssl pkey -in "
                 "KEY -out KEY.new)",
                 cfg->tls_key);
        goto out;
    }
    if (!key) {
        snprintf(err, errcap, "%s: no private key: %s", cfg->tls_key, ossl_reason());
        goto out;
    }
    if (X509_check_private_key(cert, key) != 1) {
        ERR_clear_error();
        snprintf(err, errcap, "%s: private key does not match certificate %s", cfg->tls_key,
                 cfg->tls_cert);
        goto out;
    }
    if (X509_cmp_current_time(X509_get0_notAfter(cert)) <= 0)
        wd_log_warn("tls", "%s: certificate has expired; clients will refuse it", cfg->tls_cert);
    if (X509_cmp_current_time(X509_get0_notBefore(cert)) > 0)
        wd_log_warn("tls", "%s: certificate is not valid yet", cfg->tls_cert);

    if (cfg->tls_client_ca) {
        if (!(out->ca_pem = read_text(cfg->tls_client_ca, err, errcap)))
            goto out;
        bio = BIO_new_mem_buf(out->ca_pem, -1);
        int n = 0;
        X509 *ca;
        while (bio && (ca = PEM_read_bio_X509(bio, NULL, NULL, NULL)) != NULL) {
            X509_free(ca);
            n++;
        }
        BIO_free(bio);
        ERR_clear_error();
        if (n == 0) {
            snprintf(err, errcap, "%s: no CA certificate found", cfg->tls_client_ca);
            goto out;
        }
    }
    rc = WD_OK;
out:
    X509_free(cert);
    EVP_PKEY_free(key);
    if (rc != WD_OK)
        wd_tls_cleanup(out);
    return rc;
}

void wd_tls_cleanup(struct wd_tls_material *m)
{
    if (m->key_pem) {
        OPENSSL_cleanse(m->key_pem, strlen(m->key_pem));
        free(m->key_pem);
    }
    free(m->cert_pem);
    free(m->ca_pem);
    memset(m, 0, sizeof *m);
}
