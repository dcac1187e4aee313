/* SPDX-License-Identifier: Apache-2.0 */
/*
 * tlsconn.c: see tlsconn.h. OpenSSL 3.0, non-blocking, on the caller's socket.
 *
 * - The per-thread error queue: SSL_get_error reads it, so a stale entry left by another
 *   connection of the same worker would make it lie. ERR_clear_error() before every SSL_*
 *   I/O call, and the queue is emptied after every failure.
 * - SSL_ERROR_SYSCALL and SSL_ERROR_SSL (3.0 reports a TCP close without close_notify as the
 *   latter: routine when EMQX drops a connection) mark the connection broken: no
 *   SSL_shutdown after them. Otherwise close_notify is sent once at free, never waited for.
 * - SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER: the caller's output buffer may be compacted or grown
 *   between a write that would block and its retry (the bytes stay the same).
 *   SSL_MODE_ENABLE_PARTIAL_WRITE: a write returns after each record, so the caller's buffer
 *   drains record by record. SSL_MODE_RELEASE_BUFFERS: an idle connection holds no 16 KiB
 *   record buffers (thousands of idle peers must not cost hundreds of MB).
 * - The context is built from the PEM text wd_tls_load read and checked (one read of each
 *   file, and the same error messages as `--check-config`). It is never changed after the
 *   first SSL_new (openssl-threads.pod); SSL objects hold a reference to it.
 */
#include "server/tlsconn.h"

#include <errno.h>
#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <stdlib.h>
#include <string.h>

#include "core/log.h"
#include "core/wd.h"
#include "server/loop.h"
#include "server/tls.h"

/* TLS 1.2 only: 1.3's suites are all AEAD. HTTP/2 (RFC 9113 9.2.2) blocklists the rest. */
#define CIPHERS_TLS12 "ECDHE+AESGCM:ECDHE+CHACHA20"

struct wd_tlsconn_ctx {
    SSL_CTX *ssl_ctx;
    bool mutual;
};

struct wd_tlsconn {
    SSL *ssl;
    unsigned hs_wants;     /* the handshake waits for this readiness */
    bool read_wants_write; /* the last read returned AGAIN waiting for writability */
    bool write_wants_read; /* the last write returned AGAIN waiting for readability */
    bool broken;           /* SSL_ERROR_SYSCALL / SSL_ERROR_SSL: no close_notify */
    const char *why;       /* static text, "" while nothing failed */
};

/* ---- the context ---- */

static const char *ossl_reason(const char *fallback)
{
    unsigned long e = ERR_peek_last_error();
    const char *r = e ? ERR_reason_error_string(e) : NULL;
    ERR_clear_error();
    return r ? r : fallback;
}

/* ALPN: `h2` or a fatal no_application_protocol alert. Without the extension this is not
 * called and the client speaks HTTP/2 by prior knowledge. */
static int alpn_select(SSL *ssl, const unsigned char **out, unsigned char *outlen,
                       const unsigned char *in, unsigned int inlen, void *arg)
{
    (void)ssl;
    (void)arg;
    for (unsigned int i = 0; i < inlen;) {
        unsigned int l = in[i];
        if (l == 0 || i + 1 + l > inlen)
            break; /* malformed list: OpenSSL checks it first, refuse anyway */
        if (l == 2 && memcmp(in + i + 1, "h2", 2) == 0) {
            *out = in + i + 1;
            *outlen = 2;
            return SSL_TLSEXT_ERR_OK;
        }
        i += 1 + l;
    }
    return SSL_TLSEXT_ERR_ALERT_FATAL;
}

/* The certificate chain: the leaf first, then the intermediates. */
static int use_chain(SSL_CTX *ctx, const char *pem, const char *path, char *err, size_t errcap)
{
    BIO *bio = BIO_new_mem_buf(pem, -1);
    X509 *x = bio ? PEM_read_bio_X509_AUX(bio, NULL, NULL, NULL) : NULL;
    int rc = WD_ETLS;
    if (!x || SSL_CTX_use_certificate(ctx, x) != 1) {
        wd_seterr(err, errcap, "%s: cannot use the certificate: %s", path,
                  ossl_reason("not valid PEM"));
        goto out;
    }
    X509 *ca;
    while ((ca = PEM_read_bio_X509(bio, NULL, NULL, NULL)) != NULL) {
        if (SSL_CTX_add0_chain_cert(ctx, ca) != 1) {
            X509_free(ca);
            wd_seterr(err, errcap, "%s: cannot use a chain certificate: %s", path,
                      ossl_reason("unknown error"));
            goto out;
        }
    }
    ERR_clear_error(); /* the end of the PEM text */
    rc = WD_OK;
out:
    X509_free(x);
    BIO_free(bio);
    return rc;
}

/* Never OpenSSL's default passphrase prompt (terminal or stdin): an encrypted key fails
 * (wd_tls_load, called first, has already said why). */
static int refuse_passphrase(char *buf, int size, int rwflag, void *u)
{
    return -1;
}

static int use_key(SSL_CTX *ctx, const char *pem, const char *path, char *err, size_t errcap)
{
    BIO *bio = BIO_new_mem_buf(pem, -1);
    EVP_PKEY *key = bio ? PEM_read_bio_PrivateKey(bio, NULL, refuse_passphrase, NULL) : NULL;
    int rc = WD_ETLS;
    if (!key || SSL_CTX_use_PrivateKey(ctx, key) != 1 || SSL_CTX_check_private_key(ctx) != 1)
        wd_seterr(err, errcap, "%s: cannot use the private key: %s", path,
                  ossl_reason("not valid PEM"));
    else
        rc = WD_OK;
    EVP_PKEY_free(key);
    BIO_free(bio);
    return rc;
}

/* Mutual TLS: the CAs go to the trust store, and their names to the CertificateRequest
 * (separate lists in OpenSSL). */
static int use_client_ca(SSL_CTX *ctx, const char *pem, const char *path, char *err, size_t errcap)
{
    BIO *bio = BIO_new_mem_buf(pem, -1);
    STACK_OF(X509_NAME) *names = sk_X509_NAME_new_null();
    X509_STORE *store = SSL_CTX_get_cert_store(ctx);
    int rc = WD_ETLS, n = 0;
    X509 *ca;
    while (bio && names && (ca = PEM_read_bio_X509(bio, NULL, NULL, NULL)) != NULL) {
        X509_NAME *name = X509_NAME_dup(X509_get_subject_name(ca));
        int ok = name && X509_STORE_add_cert(store, ca) == 1 && sk_X509_NAME_push(names, name);
        X509_free(ca);
        if (!ok) {
            X509_NAME_free(name);
            wd_seterr(err, errcap, "%s: cannot use a CA certificate: %s", path,
                      ossl_reason("unknown error"));
            goto out;
        }
        n++;
    }
    ERR_clear_error();
    if (n == 0) {
        wd_seterr(err, errcap, "%s: no CA certificate found", path);
        goto out;
    }
    SSL_CTX_set_client_CA_list(ctx, names); /* takes the stack */
    names = NULL;
    SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT, NULL);
    rc = WD_OK;
out:
    sk_X509_NAME_pop_free(names, X509_NAME_free);
    BIO_free(bio);
    return rc;
}

int wd_tlsconn_ctx_new(const struct wd_config *cfg, struct wd_tlsconn_ctx **out, char *err,
                       size_t errcap)
{
    *out = NULL;
    struct wd_tls_material m;
    if (wd_tls_load(cfg, &m, err, errcap) != WD_OK)
        return WD_ETLS;
    int rc = WD_ETLS;
    SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
    if (!ctx) {
        wd_seterr(err, errcap, "cannot create a TLS context: %s", ossl_reason("unknown error"));
        goto out;
    }
    SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
    SSL_CTX_set_options(ctx, SSL_OP_NO_RENEGOTIATION | SSL_OP_NO_TICKET | SSL_OP_NO_COMPRESSION |
                                 SSL_OP_CIPHER_SERVER_PREFERENCE);
    SSL_CTX_set_num_tickets(ctx, 0);
    SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
    static const unsigned char sid_ctx[] = "warden";
    SSL_CTX_set_session_id_context(ctx, sid_ctx, sizeof sid_ctx - 1);
    SSL_CTX_set_mode(ctx, SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER | SSL_MODE_ENABLE_PARTIAL_WRITE |
                              SSL_MODE_RELEASE_BUFFERS);
    if (SSL_CTX_set_cipher_list(ctx, CIPHERS_TLS12) != 1) {
        wd_seterr(err, errcap, "cannot set the TLS 1.2 ciphers: %s", ossl_reason("unknown error"));
        goto out;
    }
    SSL_CTX_set_alpn_select_cb(ctx, alpn_select, NULL);
    if (use_chain(ctx, m.cert_pem, cfg->tls_cert, err, errcap) != WD_OK ||
        use_key(ctx, m.key_pem, cfg->tls_key, err, errcap) != WD_OK)
        goto out;
    if (m.ca_pem && use_client_ca(ctx, m.ca_pem, cfg->tls_client_ca, err, errcap) != WD_OK)
        goto out;
    struct wd_tlsconn_ctx *c = wd_calloc(1, sizeof *c);
    c->ssl_ctx = ctx;
    c->mutual = m.ca_pem != NULL;
    ctx = NULL;
    *out = c;
    rc = WD_OK;
out:
    SSL_CTX_free(ctx);
    wd_tls_cleanup(&m); /* wipes the key text; the context keeps its own copy */
    return rc;
}

void wd_tlsconn_ctx_free(struct wd_tlsconn_ctx *ctx)
{
    if (!ctx)
        return;
    SSL_CTX_free(ctx->ssl_ctx);
    free(ctx);
}

bool wd_tlsconn_ctx_mutual(const struct wd_tlsconn_ctx *ctx)
{
    return ctx->mutual;
}

/* ---- connections ---- */

struct wd_tlsconn *wd_tlsconn_new(struct wd_tlsconn_ctx *ctx, int fd)
{
    struct wd_tlsconn *t = wd_calloc(1, sizeof *t);
    t->why = "";
    t->hs_wants = WD_LOOP_READ; /* the ClientHello */
    t->ssl = SSL_new(ctx->ssl_ctx);
    if (!t->ssl || SSL_set_fd(t->ssl, fd) != 1) {
        /* allocation failure inside OpenSSL: the connection fails its first call */
        ERR_clear_error();
        t->broken = true;
        t->why = "cannot create the TLS connection";
        return t;
    }
    SSL_set_accept_state(t->ssl);
    return t;
}

void wd_tlsconn_free(struct wd_tlsconn *t)
{
    if (!t)
        return;
    if (t->ssl && !t->broken && SSL_is_init_finished(t->ssl)) {
        ERR_clear_error();
        SSL_shutdown(t->ssl); /* close_notify, once; the peer's is not waited for */
        ERR_clear_error();
    }
    SSL_free(t->ssl);
    free(t);
}

/* Maps a failed SSL_* call (ret <= 0) to AGAIN / EOF / ERROR; sets *wants for AGAIN. */
static int failed(struct wd_tlsconn *t, int ret, unsigned *wants)
{
    int e = SSL_get_error(t->ssl, ret);
    switch (e) {
    case SSL_ERROR_WANT_READ:
        *wants = WD_LOOP_READ;
        return WD_TLSCONN_AGAIN;
    case SSL_ERROR_WANT_WRITE:
        *wants = WD_LOOP_WRITE;
        return WD_TLSCONN_AGAIN;
    case SSL_ERROR_ZERO_RETURN: /* close_notify received: answering with ours is fine */
        return WD_TLSCONN_EOF;
    case SSL_ERROR_SYSCALL:
        t->broken = true;
        t->why = errno ? "socket error" : "the peer closed the connection";
        ERR_clear_error();
        return WD_TLSCONN_ERROR;
    default: /* SSL_ERROR_SSL: protocol error, failed verification, or EOF without notify */
        t->broken = true;
        t->why = ossl_reason("protocol error");
        return WD_TLSCONN_ERROR;
    }
}

int wd_tlsconn_handshake(struct wd_tlsconn *t)
{
    if (t->broken)
        return WD_TLSCONN_ERROR;
    ERR_clear_error();
    errno = 0;
    int ret = SSL_do_handshake(t->ssl);
    if (ret == 1) {
        t->hs_wants = 0;
        if (wd_log_enabled(WD_LOG_DEBUG)) {
            const unsigned char *alpn = NULL;
            unsigned int alen = 0;
            SSL_get0_alpn_selected(t->ssl, &alpn, &alen);
            wd_log_debug("tls", "handshake done: %s, %s, ALPN %s", SSL_get_version(t->ssl),
                         SSL_get_cipher_name(t->ssl), alen ? "h2" : "none (prior knowledge)");
        }
        return WD_OK;
    }
    int rc = failed(t, ret, &t->hs_wants);
    if (rc == WD_TLSCONN_EOF) { /* close_notify inside the handshake */
        t->broken = true;
        t->why = "the peer closed the connection";
        rc = WD_TLSCONN_ERROR;
    }
    return rc;
}

ssize_t wd_tlsconn_read(struct wd_tlsconn *t, void *buf, size_t cap)
{
    if (t->broken)
        return WD_TLSCONN_ERROR;
    t->read_wants_write = false;
    int len = cap > INT32_MAX ? INT32_MAX : (int)cap;
    ERR_clear_error();
    errno = 0;
    int ret = SSL_read(t->ssl, buf, len);
    if (ret > 0)
        return ret;
    unsigned wants = 0;
    int rc = failed(t, ret, &wants);
    if (rc == WD_TLSCONN_AGAIN && wants == WD_LOOP_WRITE)
        t->read_wants_write = true;
    return rc;
}

bool wd_tlsconn_pending(const struct wd_tlsconn *t)
{
    return !t->broken && SSL_has_pending(t->ssl);
}

ssize_t wd_tlsconn_write(struct wd_tlsconn *t, const void *p, size_t n)
{
    if (t->broken)
        return WD_TLSCONN_ERROR;
    t->write_wants_read = false;
    int len = n > INT32_MAX ? INT32_MAX : (int)n;
    ERR_clear_error();
    errno = 0;
    int ret = SSL_write(t->ssl, p, len);
    if (ret > 0)
        return ret;
    unsigned wants = 0;
    int rc = failed(t, ret, &wants);
    if (rc == WD_TLSCONN_EOF) { /* cannot happen on a write; treat as broken */
        t->broken = true;
        rc = WD_TLSCONN_ERROR;
    }
    if (rc == WD_TLSCONN_AGAIN && wants == WD_LOOP_READ)
        t->write_wants_read = true;
    return rc;
}

unsigned wd_tlsconn_wants(const struct wd_tlsconn *t)
{
    unsigned m = t->hs_wants;
    if (t->read_wants_write)
        m |= WD_LOOP_WRITE;
    if (t->write_wants_read)
        m |= WD_LOOP_READ;
    return m;
}

const char *wd_tlsconn_error(const struct wd_tlsconn *t)
{
    return t->why;
}
