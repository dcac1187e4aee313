/* SPDX-License-Identifier: Apache-2.0 */
/*
 * passwd.c: see passwd.h. Uses OpenSSL's EVP digests and CRYPTO_memcmp; intermediate
 * digests of the presented password are wiped with OPENSSL_cleanse.
 */
#include "store/passwd.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <string.h>

#include "core/wd.h"

struct scheme {
    const char *name;
    const EVP_MD *(*md)(void);
    size_t hexlen;
};

static const struct scheme schemes[] = {
    {"sha256", EVP_sha256, 64},
    {"sha512", EVP_sha512, 128},
};

static int hexval(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    return -1;
}

bool wd_passwd_is_plaintext(const char *stored)
{
    return strncmp(stored, "plain:", 6) == 0;
}

/* Finds the scheme; *rest points after "name:". */
static const struct scheme *find_scheme(const char *stored, const char **rest)
{
    for (size_t i = 0; i < WD_ARRAY_LEN(schemes); i++) {
        size_t n = strlen(schemes[i].name);
        if (strncmp(stored, schemes[i].name, n) == 0 && stored[n] == ':') {
            *rest = stored + n + 1;
            return &schemes[i];
        }
    }
    return NULL;
}

int wd_passwd_check_format(const char *stored, char *err, size_t errcap)
{
    if (wd_passwd_is_plaintext(stored))
        return WD_OK;
    const char *rest;
    const struct scheme *s = find_scheme(stored, &rest);
    if (!s) {
        snprintf(err, errcap, "unknown password scheme (expected plain:, sha256: or sha512:)");
        return WD_EINVAL;
    }
    const char *colon = strrchr(rest, ':');
    if (!colon) {
        snprintf(err, errcap, "%s secret must be %s:SALT:HEX", s->name, s->name);
        return WD_EINVAL;
    }
    const char *hex = colon + 1;
    if (strlen(hex) != s->hexlen) {
        snprintf(err, errcap, "%s digest must be %zu lowercase hex digits", s->name, s->hexlen);
        return WD_EINVAL;
    }
    for (const char *p = hex; *p; p++) {
        if (hexval(*p) < 0) {
            snprintf(err, errcap, "%s digest must be lowercase hex", s->name);
            return WD_EINVAL;
        }
    }
    return WD_OK;
}

/* digest(prefix || data) into out; returns its length */
static unsigned digest2(const EVP_MD *md, const void *a, size_t alen, const void *b, size_t blen,
                        unsigned char *out)
{
    unsigned len = 0;
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    if (!ctx || EVP_DigestInit_ex(ctx, md, NULL) != 1 || EVP_DigestUpdate(ctx, a, alen) != 1 ||
        EVP_DigestUpdate(ctx, b, blen) != 1 || EVP_DigestFinal_ex(ctx, out, &len) != 1) {
        fprintf(stderr, "warden: OpenSSL digest failure, aborting\n");
        abort();
    }
    EVP_MD_CTX_free(ctx);
    return len;
}

int wd_passwd_verify(const char *stored, const char *password, size_t pwlen, bool *match)
{
    *match = false;
    unsigned char want[EVP_MAX_MD_SIZE], got[EVP_MAX_MD_SIZE];
    char err[128];
    if (wd_passwd_check_format(stored, err, sizeof err) != WD_OK)
        return WD_EINVAL;

    if (wd_passwd_is_plaintext(stored)) {
        /* compare digests, not strings: constant time whatever the lengths */
        const char *p = stored + 6;
        digest2(EVP_sha256(), "", 0, p, strlen(p), want);
        digest2(EVP_sha256(), "", 0, password, pwlen, got);
        *match = CRYPTO_memcmp(want, got, 32) == 0;
        OPENSSL_cleanse(got, sizeof got);
        return WD_OK;
    }

    const char *rest;
    const struct scheme *s = find_scheme(stored, &rest);
    const char *colon = strrchr(rest, ':');
    size_t saltlen = (size_t)(colon - rest);
    const char *hex = colon + 1;
    size_t n = s->hexlen / 2;
    for (size_t i = 0; i < n; i++)
        want[i] = (unsigned char)(hexval(hex[2 * i]) << 4 | hexval(hex[2 * i + 1]));
    digest2(s->md(), rest, saltlen, password, pwlen, got);
    *match = CRYPTO_memcmp(want, got, n) == 0;
    OPENSSL_cleanse(got, sizeof got);
    return WD_OK;
}
