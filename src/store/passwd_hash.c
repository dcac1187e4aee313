/* SPDX-License-Identifier: Apache-2.0 */
/*
 * passwd_hash.c: creation of policy secrets for `warden passwd` (see wd_passwd_hash() in
 * passwd.h). Salts come from RAND_bytes. Digest and pbkdf2 salts are written as 32 hex
 * characters and used as those characters, like the salts EMQX generates, so a secret can
 * be copied into a Redis hash (password_hash, salt) unchanged. Every result is checked with
 * wd_passwd_parse() before it is returned: what this writes, the verifier accepts.
 */
#include <argon2.h>
#include <crypt.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/wd.h"
#include "store/passwd.h"
#include "store/passwd_int.h"

#define SALT_BYTES 16 /* 128 bits, written as 32 hex characters */
#define BCRYPT_KEY_MAX 72
#define ARGON2_HASH_BYTES 32

/* Parses a decimal unsigned number filling exactly [p, end); WD_OK, WD_EINVAL or WD_ERANGE
 * (over max). */
static int number(const char *p, const char *end, unsigned long max, unsigned long *out)
{
    if (p == end || (*p == '0' && end - p > 1))
        return WD_EINVAL;
    unsigned long v = 0;
    for (; p < end; p++) {
        if (*p < '0' || *p > '9')
            return WD_EINVAL;
        if (v > (max - (unsigned long)(*p - '0')) / 10)
            return WD_ERANGE;
        v = v * 10 + (unsigned long)(*p - '0');
    }
    *out = v;
    return WD_OK;
}

static int random_hex_salt(char out[2 * SALT_BYTES + 1])
{
    unsigned char raw[SALT_BYTES];
    if (RAND_bytes(raw, sizeof raw) != 1)
        return WD_EIO;
    wd_passwd__hex(raw, sizeof raw, out);
    out[2 * SALT_BYTES] = '\0';
    OPENSSL_cleanse(raw, sizeof raw);
    return WD_OK;
}

static int hash_digest(const EVP_MD *md, const char *name, bool suffix, const char *pw,
                       size_t pwlen, char **out)
{
    char salt[2 * SALT_BYTES + 1];
    int rc = random_hex_salt(salt);
    if (rc != WD_OK)
        return rc;
    unsigned char d[EVP_MAX_MD_SIZE];
    unsigned dlen = 0;
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    if (!ctx || EVP_DigestInit_ex(ctx, md, NULL) != 1 ||
        EVP_DigestUpdate(ctx, suffix ? pw : salt, suffix ? pwlen : strlen(salt)) != 1 ||
        EVP_DigestUpdate(ctx, suffix ? salt : pw, suffix ? strlen(salt) : pwlen) != 1 ||
        EVP_DigestFinal_ex(ctx, d, &dlen) != 1) {
        EVP_MD_CTX_free(ctx);
        return WD_EIO;
    }
    EVP_MD_CTX_free(ctx);
    size_t cap = strlen(name) + 8 + 1 + sizeof salt + 2 * dlen + 1;
    char *s = wd_malloc(cap);
    int n = snprintf(s, cap, "%s%s:%s:", name, suffix ? "-suffix" : "", salt);
    wd_passwd__hex(d, dlen, s + n);
    s[n + 2 * (int)dlen] = '\0';
    OPENSSL_cleanse(d, sizeof d);
    *out = s;
    return WD_OK;
}

static int hash_bcrypt(const char *params, const char *pw, size_t pwlen, char **out)
{
    unsigned long cost = WD_PASSWD_BCRYPT_COST_DEFAULT;
    if (params) {
        int rc = number(params, params + strlen(params), 99, &cost);
        if (rc != WD_OK)
            return rc;
        if (cost < WD_PASSWD_BCRYPT_COST_MIN)
            return WD_EINVAL;
        if (cost > WD_PASSWD_BCRYPT_COST_MAX)
            return WD_ERANGE;
    }
    if (pwlen > BCRYPT_KEY_MAX)
        return WD_ETOOBIG; /* bcrypt would ignore the rest: say so rather than surprise */
    if (pwlen && memchr(pw, '\0', pwlen))
        return WD_EINVAL; /* the verifier never matches a NUL within the key */
    unsigned char rnd[16];
    char setting[CRYPT_GENSALT_OUTPUT_SIZE], key[BCRYPT_KEY_MAX + 1];
    if (RAND_bytes(rnd, sizeof rnd) != 1)
        return WD_EIO;
    int rc = WD_EIO;
    struct crypt_data *cd = wd_calloc(1, sizeof *cd);
    if (!crypt_gensalt_rn("$2b$", cost, (const char *)rnd, (int)sizeof rnd, setting,
                          (int)sizeof setting))
        goto out;
    memcpy(key, pw, pwlen);
    key[pwlen] = '\0';
    const char *h = crypt_rn(key, setting, cd, (int)sizeof *cd);
    if (!h || h[0] != '$')
        goto out;
    size_t cap = strlen("bcrypt:") + strlen(h) + 1;
    *out = wd_malloc(cap);
    snprintf(*out, cap, "bcrypt:%s", h);
    rc = WD_OK;
out:
    OPENSSL_cleanse(rnd, sizeof rnd);
    OPENSSL_cleanse(key, sizeof key);
    OPENSSL_cleanse(cd, sizeof *cd);
    free(cd);
    return rc;
}

/* params: MAC[:ITER] */
static int hash_pbkdf2(const char *params, const char *pw, size_t pwlen, char **out)
{
    enum wd_passwd_mac mac = WD_PASSWD_MAC_SHA256;
    unsigned long iter = WD_PASSWD_PBKDF2_ITER_DEFAULT;
    if (params) {
        const char *c = strchr(params, ':');
        size_t ml = c ? (size_t)(c - params) : strlen(params);
        char name[16];
        if (ml >= sizeof name)
            return WD_EINVAL;
        memcpy(name, params, ml);
        name[ml] = '\0';
        if (wd_passwd_mac_from_name(name, &mac) != WD_OK)
            return WD_EINVAL;
        if (c) {
            int rc = number(c + 1, c + 1 + strlen(c + 1), WD_PASSWD_PBKDF2_WORK_MAX, &iter);
            if (rc != WD_OK)
                return rc;
        }
    }
    size_t dk;
    int rc = wd_passwd__pbkdf2_check(mac, iter, 0, &dk);
    if (rc != WD_OK)
        return rc;
    if (pwlen > INT32_MAX)
        return WD_ETOOBIG;
    char salt[2 * SALT_BYTES + 1];
    if ((rc = random_hex_salt(salt)) != WD_OK)
        return rc;
    unsigned char key[EVP_MAX_MD_SIZE];
    if (PKCS5_PBKDF2_HMAC(pw, (int)pwlen, (const unsigned char *)salt, (int)strlen(salt), (int)iter,
                          wd_passwd__mac_md(mac), (int)dk, key) != 1)
        return WD_EIO;
    const char *mname = wd_passwd__mac_name(mac);
    size_t cap = strlen("pbkdf2:") + strlen(mname) + 1 + 20 + 1 + sizeof salt + 2 * dk + 1;
    char *s = wd_malloc(cap);
    int n = snprintf(s, cap, "pbkdf2:%s:%lu:%s:", mname, iter, salt);
    wd_passwd__hex(key, dk, s + n);
    s[n + 2 * (int)dk] = '\0';
    OPENSSL_cleanse(key, sizeof key);
    *out = s;
    return WD_OK;
}

/* params: m=M,t=T,p=P (all three, in this order) */
static int hash_argon2id(const char *params, const char *pw, size_t pwlen, char **out)
{
    unsigned long m = WD_PASSWD_ARGON2_M_DEFAULT, t = WD_PASSWD_ARGON2_T_DEFAULT,
                  p = WD_PASSWD_ARGON2_P_DEFAULT;
    if (params) {
        const char *c1 = strchr(params, ','), *c2 = c1 ? strchr(c1 + 1, ',') : NULL;
        if (!c1 || !c2 || strncmp(params, "m=", 2) != 0 || strncmp(c1 + 1, "t=", 2) != 0 ||
            strncmp(c2 + 1, "p=", 2) != 0)
            return WD_EINVAL;
        int rc;
        if ((rc = number(params + 2, c1, 0xFFFFFFFFUL, &m)) != WD_OK ||
            (rc = number(c1 + 3, c2, 0xFFFFFFFFUL, &t)) != WD_OK ||
            (rc = number(c2 + 3, c2 + strlen(c2), 0xFFFFFFFFUL, &p)) != WD_OK)
            return rc;
    }
    int rc = wd_passwd__argon2_check(m, t, p);
    if (rc != WD_OK)
        return rc;
    if (pwlen > ARGON2_MAX_PWD_LENGTH)
        return WD_ETOOBIG;
    unsigned char salt[SALT_BYTES];
    if (RAND_bytes(salt, sizeof salt) != 1)
        return WD_EIO;
    size_t elen = argon2_encodedlen((uint32_t)t, (uint32_t)m, (uint32_t)p, sizeof salt,
                                    ARGON2_HASH_BYTES, Argon2_id);
    char *enc = wd_malloc(elen);
    int arc = argon2id_hash_encoded((uint32_t)t, (uint32_t)m, (uint32_t)p, pw, pwlen, salt,
                                    sizeof salt, ARGON2_HASH_BYTES, enc, elen);
    OPENSSL_cleanse(salt, sizeof salt);
    if (arc != ARGON2_OK) {
        free(enc);
        return arc == ARGON2_MEMORY_ALLOCATION_ERROR ? WD_ENOMEM : WD_EIO;
    }
    size_t cap = strlen("argon2id:") + strlen(enc) + 1;
    *out = wd_malloc(cap);
    snprintf(*out, cap, "argon2id:%s", enc);
    free(enc);
    return WD_OK;
}

int wd_passwd_hash(const char *scheme, const char *password, size_t pwlen, char **out)
{
    *out = NULL;
    if (!password && pwlen)
        return WD_EINVAL;
    if (!password)
        password = "";
    if (!scheme)
        scheme = WD_PASSWD_DEFAULT_SCHEME;
    const char *colon = strchr(scheme, ':');
    size_t nl = colon ? (size_t)(colon - scheme) : strlen(scheme);
    const char *params = colon ? colon + 1 : NULL;
    char name[24];
    if (nl >= sizeof name)
        return WD_EINVAL;
    memcpy(name, scheme, nl);
    name[nl] = '\0';

    int rc = WD_EINVAL;
    if (strcmp(name, "plain") == 0) {
        if (params || (pwlen && memchr(password, '\0', pwlen)))
            return WD_EINVAL;
        if (pwlen > WD_PASSWD_STORED_MAX - 6)
            return WD_ETOOBIG;
        *out = wd_malloc(6 + pwlen + 1);
        memcpy(*out, "plain:", 6);
        memcpy(*out + 6, password, pwlen);
        (*out)[6 + pwlen] = '\0';
        rc = WD_OK;
    } else if (strcmp(name, "bcrypt") == 0) {
        rc = hash_bcrypt(params, password, pwlen, out);
    } else if (strcmp(name, "pbkdf2") == 0) {
        rc = hash_pbkdf2(params, password, pwlen, out);
    } else if (strcmp(name, "argon2id") == 0) {
        rc = hash_argon2id(params, password, pwlen, out);
    } else {
        static const struct {
            const char *name;
            enum wd_passwd_algo algo;
        } digests[] = {{"md5", WD_PASSWD_MD5},
                       {"sha1", WD_PASSWD_SHA1},
                       {"sha256", WD_PASSWD_SHA256},
                       {"sha512", WD_PASSWD_SHA512}};
        for (size_t i = 0; i < WD_ARRAY_LEN(digests); i++) {
            size_t dl = strlen(digests[i].name);
            bool plain_name = strcmp(name, digests[i].name) == 0;
            bool suffix_name =
                strncmp(name, digests[i].name, dl) == 0 && strcmp(name + dl, "-suffix") == 0;
            if (!plain_name && !suffix_name)
                continue;
            if (params)
                return WD_EINVAL;
            rc = hash_digest(wd_passwd__algo_md(digests[i].algo), digests[i].name, suffix_name,
                             password, pwlen, out);
            break;
        }
    }
    if (rc != WD_OK)
        return rc;

    /* what we write, we must accept */
    char err[160];
    if (wd_passwd_check_format(*out, err, sizeof err) != WD_OK) {
        fprintf(stderr, "warden: internal error: created secret refused: %s\n", err);
        wd_passwd_secret_free(*out);
        *out = NULL;
        return WD_EIO;
    }
    return WD_OK;
}

void wd_passwd_secret_free(char *secret)
{
    if (!secret)
        return;
    OPENSSL_cleanse(secret, strlen(secret));
    free(secret);
}
