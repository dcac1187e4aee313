/* SPDX-License-Identifier: Apache-2.0 */
/*
 * jwt.c: JWT verification (see jwt.h for the order of checks and the contract). The only
 * file that includes <jwt.h> from libjwt; no jwt_t leaves it.
 *
 * Decisions worth knowing:
 * - The header and payload are decoded and parsed HERE (strict base64url, jansson with
 *   duplicate keys refused) before libjwt runs, so that `alg` is checked against the key's
 *   family before any verifier sees the token. libjwt 1.10's jwt_decode() takes the
 *   algorithm from the token and uses whatever key bytes it is given as an HMAC secret for
 *   HS*, which is exactly the algorithm-confusion hole; it is only ever called with a key
 *   whose family matches the already-checked alg, and its parsed alg is cross-checked.
 * - Claims are read from our own parse of the payload bytes, which are the bytes the
 *   signature covers, so libjwt's parse and ours cannot disagree on what was signed.
 * - libjwt 1.10 has no JWK support: JWKS keys are converted to SPKI PEM with OpenSSL
 *   (EVP_PKEY_fromdata, public-key check) at load time, once, never on the request path.
 * - HMAC signatures are also recomputed here and compared with CRYPTO_memcmp before libjwt
 *   runs: libjwt 1.10.2 as released compared them with strcmp (CVE-2024-25189).
 * - PEM keys are re-serialised (PEM_write_bio_PUBKEY) so libjwt always sees one canonical
 *   form, and their type and curve are learned from OpenSSL, not from the text.
 */
#include "store/jwt.h"

#include "core/base64.h"

#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>
#include <jwt.h>
#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/objects.h>
#include <openssl/param_build.h>
#include <openssl/pem.h>

#include "core/buf.h"
#include "core/file.h"
#include "core/wd.h"

/* ---- keys ---- */

enum key_kind { KEY_HMAC, KEY_RSA, KEY_EC };

struct jkey {
    char *kid; /* NULL: matches any token kid */
    enum key_kind kind;
    jwt_alg_t pin;      /* JWT_ALG_NONE: any algorithm of the family (EC: set by curve) */
    unsigned char *mat; /* HMAC secret, or SPKI PEM text (NUL-terminated) */
    size_t len;
};

struct wd_jwt_keyset {
    atomic_uint refs;
    size_t n;
    struct jkey *keys;
};

struct keyslot {
    pthread_mutex_t mu;
    struct wd_jwt_keyset *ks;
    uint64_t generation; /* +1 per swap, under mu */
};

struct wd_jwt_verifier {
    int64_t leeway;
    bool check_iat;
    char *iss, *aud;
    struct wd_jwt_claim_check *claims; /* name/tmpl owned */
    size_t n_claims;
    size_t max_len;
    char *acl_claim;
    struct keyslot *slot; /* the one mutable part, behind its own lock */
};

struct wd_jwt_claim_kv {
    char *name;
    char *value;
};

#define seterr wd_seterr

/* ---- base64 (url: strict, unpadded; std: optional correct padding) ---- */

/* Returns a malloc'd buffer (NUL-terminated for convenience) or NULL when `s` is not
 * canonical base64 of the given flavour (bad characters, impossible length, non-zero
 * trailing bits). */
static unsigned char *b64_decode(const char *s, size_t n, bool url, size_t *outlen)
{
    if (!url && n > 0 && n % 4 == 0) {
        size_t pad = 0;
        while (pad < 2 && n > 0 && s[n - 1] == '=') {
            n--;
            pad++;
        }
    }
    size_t cap = wd_base64_decoded_max(n);
    unsigned char *out = wd_malloc(cap + 1);
    if (wd_base64_decode(s, n, url ? WD_BASE64_URL : WD_BASE64_STD, out, cap, outlen) != WD_OK) {
        free(out);
        return NULL;
    }
    out[*outlen] = 0;
    return out;
}

/* ---- algorithms ---- */

static const struct {
    const char *name;
    jwt_alg_t alg;
    enum key_kind kind;
} algs[] = {
    {"HS256", JWT_ALG_HS256, KEY_HMAC}, {"HS384", JWT_ALG_HS384, KEY_HMAC},
    {"HS512", JWT_ALG_HS512, KEY_HMAC}, {"RS256", JWT_ALG_RS256, KEY_RSA},
    {"RS384", JWT_ALG_RS384, KEY_RSA},  {"RS512", JWT_ALG_RS512, KEY_RSA},
    {"ES256", JWT_ALG_ES256, KEY_EC},   {"ES384", JWT_ALG_ES384, KEY_EC},
    {"ES512", JWT_ALG_ES512, KEY_EC},
};

/* Exact, case-sensitive names (RFC 7518); "none" and everything else: not found. */
static int alg_lookup(const char *name, jwt_alg_t *alg, enum key_kind *kind)
{
    for (size_t i = 0; i < WD_ARRAY_LEN(algs); i++)
        if (strcmp(name, algs[i].name) == 0) {
            *alg = algs[i].alg;
            *kind = algs[i].kind;
            return 0;
        }
    return -1;
}

static bool key_accepts(const struct jkey *k, jwt_alg_t alg, enum key_kind kind)
{
    if (k->kind != kind)
        return false;
    return k->pin == JWT_ALG_NONE || k->pin == alg;
}

/* ---- key sets ---- */

static void jkey_cleanup(struct jkey *k)
{
    free(k->kid);
    if (k->mat) {
        OPENSSL_cleanse(k->mat, k->len);
        free(k->mat);
    }
    memset(k, 0, sizeof(*k));
}

static struct wd_jwt_keyset *keyset_new(size_t cap)
{
    struct wd_jwt_keyset *ks = wd_calloc(1, sizeof(*ks));
    atomic_init(&ks->refs, 1);
    ks->keys = wd_calloc(cap ? cap : 1, sizeof(*ks->keys));
    return ks;
}

struct wd_jwt_keyset *wd_jwt_keyset_get(struct wd_jwt_keyset *ks)
{
    if (ks)
        atomic_fetch_add_explicit(&ks->refs, 1, memory_order_relaxed);
    return ks;
}

void wd_jwt_keyset_release(struct wd_jwt_keyset *ks)
{
    if (!ks || atomic_fetch_sub_explicit(&ks->refs, 1, memory_order_acq_rel) != 1)
        return;
    for (size_t i = 0; i < ks->n; i++)
        jkey_cleanup(&ks->keys[i]);
    free(ks->keys);
    free(ks);
}

size_t wd_jwt_keyset_count(const struct wd_jwt_keyset *ks)
{
    return ks ? ks->n : 0;
}

static bool looks_like_pem(const unsigned char *s, size_t n)
{
    size_t i = 0;
    while (i < n && (s[i] == ' ' || s[i] == '\t' || s[i] == '\r' || s[i] == '\n'))
        i++;
    return n - i >= 10 && memcmp(s + i, "-----BEGIN", 10) == 0;
}

int wd_jwt_keyset_from_secret(const char *secret, size_t len, bool base64,
                              struct wd_jwt_keyset **out, char *err, size_t errcap)
{
    *out = NULL;
    unsigned char *mat;
    size_t n;
    if (!secret)
        return WD_EINVAL;
    if (base64) {
        mat = b64_decode(secret, len, false, &n);
        if (!mat) {
            seterr(err, errcap, "jwt secret: invalid base64");
            return WD_EINVAL;
        }
    } else {
        mat = wd_malloc(len + 1);
        memcpy(mat, secret, len);
        mat[len] = 0;
        n = len;
    }
    if (n == 0 || looks_like_pem(mat, n)) {
        seterr(err, errcap, "%s",
               n == 0 ? "jwt secret: empty"
                      : "jwt secret: looks like a PEM key (configure it as a public key, "
                        "not as an HMAC secret)");
        OPENSSL_cleanse(mat, n);
        free(mat);
        return WD_EINVAL;
    }
    struct wd_jwt_keyset *ks = keyset_new(1);
    ks->keys[0] = (struct jkey){.kind = KEY_HMAC, .pin = JWT_ALG_NONE, .mat = mat, .len = n};
    ks->n = 1;
    *out = ks;
    return WD_OK;
}

static const struct {
    const char *name; /* OpenSSL group names and the JOSE crv names */
    const char *jose;
    jwt_alg_t alg;
    size_t bytes;
} curves[] = {
    {"prime256v1", "P-256", JWT_ALG_ES256, 32},
    {"secp384r1", "P-384", JWT_ALG_ES384, 48},
    {"secp521r1", "P-521", JWT_ALG_ES512, 66},
};

/* Classifies a public key and stores it as canonical SPKI PEM in `k`. */
static int key_from_pkey(EVP_PKEY *pk, struct jkey *k, char *err, size_t errcap)
{
    int id = EVP_PKEY_get_base_id(pk);
    if (id == EVP_PKEY_RSA) {
        if (EVP_PKEY_get_bits(pk) < WD_JWT_RSA_BITS_MIN) {
            seterr(err, errcap, "RSA key of %d bits (at least %d required)", EVP_PKEY_get_bits(pk),
                   WD_JWT_RSA_BITS_MIN);
            return WD_EINVAL;
        }
        k->kind = KEY_RSA;
        k->pin = JWT_ALG_NONE;
    } else if (id == EVP_PKEY_EC) {
        char g[64];
        size_t gl = 0;
        if (!EVP_PKEY_get_utf8_string_param(pk, OSSL_PKEY_PARAM_GROUP_NAME, g, sizeof(g), &gl)) {
            seterr(err, errcap, "EC key without a named curve");
            return WD_EINVAL;
        }
        size_t i;
        for (i = 0; i < WD_ARRAY_LEN(curves); i++)
            if (strcmp(g, curves[i].name) == 0 || strcmp(g, curves[i].jose) == 0)
                break;
        if (i == WD_ARRAY_LEN(curves)) {
            seterr(err, errcap, "EC curve %.40s not supported (P-256, P-384, P-521)", g);
            return WD_EINVAL;
        }
        k->kind = KEY_EC;
        k->pin = curves[i].alg;
    } else {
        seterr(err, errcap, "unsupported public key type (RSA or EC)");
        return WD_EINVAL;
    }
    BIO *b = BIO_new(BIO_s_mem());
    if (!b)
        abort();
    if (!PEM_write_bio_PUBKEY(b, pk)) {
        BIO_free(b);
        seterr(err, errcap, "cannot serialise the public key");
        return WD_EINVAL;
    }
    char *data = NULL;
    long dl = BIO_get_mem_data(b, &data);
    k->mat = (unsigned char *)wd_strndup(data, (size_t)dl);
    k->len = (size_t)dl;
    BIO_free(b);
    return WD_OK;
}

int wd_jwt_keyset_from_pem(const char *pem, size_t len, struct wd_jwt_keyset **out, char *err,
                           size_t errcap)
{
    *out = NULL;
    if (!pem || len > WD_JWT_JWKS_MAX || len > INT32_MAX) {
        seterr(err, errcap, "jwt public key: missing or too large");
        return WD_EINVAL;
    }
    BIO *b = BIO_new_mem_buf(pem, (int)len);
    if (!b)
        abort();
    EVP_PKEY *pk = PEM_read_bio_PUBKEY(b, NULL, NULL, NULL);
    BIO_free(b);
    if (!pk) {
        seterr(err, errcap, "jwt public key: not a PEM \"PUBLIC KEY\" block");
        return WD_EINVAL;
    }
    struct jkey k = {0};
    char why[160] = "";
    int rc = key_from_pkey(pk, &k, why, sizeof(why));
    EVP_PKEY_free(pk);
    if (rc != WD_OK) {
        seterr(err, errcap, "jwt public key: %s", why);
        return rc;
    }
    struct wd_jwt_keyset *ks = keyset_new(1);
    ks->keys[0] = k;
    ks->n = 1;
    *out = ks;
    return WD_OK;
}

/* base64url member of a JWK, or NULL */
static unsigned char *jwk_b64(json_t *jwk, const char *name, size_t *n)
{
    json_t *v = json_object_get(jwk, name);
    if (!json_is_string(v) || json_string_length(v) == 0)
        return NULL;
    return b64_decode(json_string_value(v), json_string_length(v), true, n);
}

static EVP_PKEY *pkey_fromdata(const char *type, OSSL_PARAM_BLD *bld)
{
    OSSL_PARAM *params = OSSL_PARAM_BLD_to_param(bld);
    EVP_PKEY_CTX *ctx = EVP_PKEY_CTX_new_from_name(NULL, type, NULL);
    EVP_PKEY *pk = NULL;
    if (params && ctx && EVP_PKEY_fromdata_init(ctx) > 0)
        if (EVP_PKEY_fromdata(ctx, &pk, EVP_PKEY_PUBLIC_KEY, params) <= 0)
            pk = NULL;
    EVP_PKEY_CTX_free(ctx);
    OSSL_PARAM_free(params);
    if (pk) { /* the point is on the curve, the modulus is sane */
        EVP_PKEY_CTX *c2 = EVP_PKEY_CTX_new_from_pkey(NULL, pk, NULL);
        int ok = c2 && EVP_PKEY_public_check(c2) > 0;
        EVP_PKEY_CTX_free(c2);
        if (!ok) {
            EVP_PKEY_free(pk);
            pk = NULL;
        }
    }
    return pk;
}

static EVP_PKEY *jwk_rsa(json_t *jwk, const char **why)
{
    size_t nl = 0, el = 0;
    unsigned char *n = jwk_b64(jwk, "n", &nl), *e = jwk_b64(jwk, "e", &el);
    EVP_PKEY *pk = NULL;
    *why = "RSA key needs base64url n and e";
    if (n && e) {
        BIGNUM *bn = BN_bin2bn(n, (int)nl, NULL), *be = BN_bin2bn(e, (int)el, NULL);
        OSSL_PARAM_BLD *bld = OSSL_PARAM_BLD_new();
        if (bn && be && bld && OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_N, bn) &&
            OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_E, be))
            pk = pkey_fromdata("RSA", bld);
        if (!pk)
            *why = "invalid RSA parameters";
        OSSL_PARAM_BLD_free(bld);
        BN_free(bn);
        BN_free(be);
    }
    free(n);
    free(e);
    return pk;
}

static EVP_PKEY *jwk_ec(json_t *jwk, const char **why)
{
    const char *crv = json_string_value(json_object_get(jwk, "crv"));
    size_t i;
    for (i = 0; crv && i < WD_ARRAY_LEN(curves); i++)
        if (strcmp(crv, curves[i].jose) == 0)
            break;
    if (!crv || i == WD_ARRAY_LEN(curves)) {
        *why = "EC key needs crv P-256, P-384 or P-521";
        return NULL;
    }
    size_t xl = 0, yl = 0;
    unsigned char *x = jwk_b64(jwk, "x", &xl), *y = jwk_b64(jwk, "y", &yl);
    EVP_PKEY *pk = NULL;
    *why = "EC key needs x and y of the curve's size";
    if (x && y && xl == curves[i].bytes && yl == curves[i].bytes) {
        unsigned char pt[1 + 2 * 66];
        pt[0] = 0x04; /* uncompressed point */
        memcpy(pt + 1, x, xl);
        memcpy(pt + 1 + xl, y, yl);
        OSSL_PARAM_BLD *bld = OSSL_PARAM_BLD_new();
        if (bld &&
            OSSL_PARAM_BLD_push_utf8_string(bld, OSSL_PKEY_PARAM_GROUP_NAME, curves[i].name, 0) &&
            OSSL_PARAM_BLD_push_octet_string(bld, OSSL_PKEY_PARAM_PUB_KEY, pt, 1 + xl + yl))
            pk = pkey_fromdata("EC", bld);
        if (!pk)
            *why = "invalid EC point";
        OSSL_PARAM_BLD_free(bld);
    }
    free(x);
    free(y);
    return pk;
}

/* One JWK into `k`; returns NULL or the reason it was skipped (static or in `buf`). */
static const char *jwk_load(json_t *jwk, struct jkey *k, char *buf, size_t bufcap)
{
    if (!json_is_object(jwk))
        return "not an object";
    const char *kty = json_string_value(json_object_get(jwk, "kty"));
    json_t *use = json_object_get(jwk, "use");
    json_t *kid = json_object_get(jwk, "kid");
    json_t *alg = json_object_get(jwk, "alg");
    if (!kty)
        return "no kty";
    if (use && !(json_is_string(use) && strcmp(json_string_value(use), "sig") == 0))
        return "use is not \"sig\"";
    if (kid && (!json_is_string(kid) || json_string_length(kid) != strlen(json_string_value(kid))))
        return "kid is not a string";
    if (alg && !json_is_string(alg))
        return "alg is not a string";

    const char *why = NULL;
    if (strcmp(kty, "oct") == 0) {
        size_t n = 0;
        unsigned char *m = jwk_b64(jwk, "k", &n);
        if (!m)
            return "oct key needs a non-empty base64url k";
        k->kind = KEY_HMAC;
        k->pin = JWT_ALG_NONE;
        k->mat = m;
        k->len = n;
    } else if (strcmp(kty, "RSA") == 0 || strcmp(kty, "EC") == 0) {
        EVP_PKEY *pk = kty[0] == 'R' ? jwk_rsa(jwk, &why) : jwk_ec(jwk, &why);
        if (!pk)
            return why;
        int rc = key_from_pkey(pk, k, buf, bufcap);
        EVP_PKEY_free(pk);
        if (rc != WD_OK)
            return buf;
    } else {
        return "kty not RSA, EC or oct";
    }
    if (alg) {
        jwt_alg_t a;
        enum key_kind kind;
        if (alg_lookup(json_string_value(alg), &a, &kind) != 0 || !key_accepts(k, a, kind)) {
            jkey_cleanup(k);
            return "alg unknown or not suited to the key";
        }
        k->pin = a;
    }
    if (kid)
        k->kid = wd_strdup(json_string_value(kid));
    return NULL;
}

int wd_jwt_keyset_from_jwks(const char *text, size_t len, struct wd_jwt_keyset **out, char *err,
                            size_t errcap)
{
    *out = NULL;
    if (!text)
        return WD_EINVAL;
    if (len > WD_JWT_JWKS_MAX) {
        seterr(err, errcap, "jwks: %zu bytes (at most %d)", len, WD_JWT_JWKS_MAX);
        return WD_ETOOBIG;
    }
    json_error_t je;
    json_t *root = json_loadb(text, len, JSON_REJECT_DUPLICATES, &je);
    json_t *keys = json_object_get(root, "keys");
    if (!json_is_array(keys)) {
        seterr(err, errcap, "jwks: %s", root ? "no \"keys\" array" : je.text);
        json_decref(root);
        return WD_ESYNTAX;
    }
    size_t total = json_array_size(keys);
    struct wd_jwt_keyset *ks = keyset_new(total < WD_JWT_KEYS_MAX ? total : WD_JWT_KEYS_MAX);
    size_t skipped = 0;
    char first[200] = "";
    for (size_t i = 0; i < total; i++) {
        char buf[160] = "";
        const char *why = "beyond WD_JWT_KEYS_MAX keys";
        struct jkey k = {0};
        if (ks->n < WD_JWT_KEYS_MAX)
            why = jwk_load(json_array_get(keys, i), &k, buf, sizeof(buf));
        if (why) {
            if (skipped++ == 0)
                snprintf(first, sizeof(first), "keys[%zu]: %s", i, why);
            continue;
        }
        ks->keys[ks->n++] = k;
    }
    json_decref(root);
    if (ks->n == 0) {
        seterr(err, errcap, "jwks: no usable key%s%s", skipped ? "; " : "", first);
        wd_jwt_keyset_release(ks);
        return WD_ENOENT;
    }
    if (skipped)
        seterr(err, errcap, "jwks: %zu key(s) skipped; %s", skipped, first);
    else
        seterr(err, errcap, "%s", "");
    *out = ks;
    return WD_OK;
}

int wd_jwt_keyset_load_jwks_file(const char *path, struct wd_jwt_keyset **out, char *err,
                                 size_t errcap)
{
    *out = NULL;
    char *text = NULL;
    size_t len = 0;
    int rc = wd_file_read(path, WD_JWT_JWKS_MAX, &text, &len, err, errcap);
    if (rc != WD_OK)
        return rc;
    rc = wd_jwt_keyset_from_jwks(text, len, out, err, errcap);
    free(text);
    return rc;
}

/* ---- verifier ---- */

int wd_jwt_verifier_new(const struct wd_jwt_config *cfg, struct wd_jwt_keyset *ks,
                        struct wd_jwt_verifier **out, char *err, size_t errcap)
{
    *out = NULL;
    if (!cfg) {
        seterr(err, errcap, "jwt: no configuration");
        return WD_EINVAL;
    }
    if (cfg->leeway < 0 || cfg->leeway > 86400 * 365) {
        seterr(err, errcap, "jwt: leeway must be 0..31536000 seconds");
        return WD_EINVAL;
    }
    for (size_t i = 0; i < cfg->n_verify_claims; i++) {
        const struct wd_jwt_claim_check *cc = &cfg->verify_claims[i];
        if (!cc->name || !cc->name[0] || !cc->tmpl) {
            seterr(err, errcap, "jwt: verify_claims[%zu]: empty claim name or no value", i);
            return WD_EINVAL;
        }
    }
    if (cfg->acl_claim && !cfg->acl_claim[0]) {
        seterr(err, errcap, "jwt: empty acl claim name");
        return WD_EINVAL;
    }
    struct wd_jwt_verifier *v = wd_calloc(1, sizeof(*v));
    v->leeway = cfg->leeway;
    v->check_iat = cfg->check_iat;
    v->iss = cfg->iss ? wd_strdup(cfg->iss) : NULL;
    v->aud = cfg->aud ? wd_strdup(cfg->aud) : NULL;
    v->n_claims = cfg->n_verify_claims;
    v->claims = wd_calloc(v->n_claims ? v->n_claims : 1, sizeof(*v->claims));
    for (size_t i = 0; i < v->n_claims; i++) {
        v->claims[i].name = wd_strdup(cfg->verify_claims[i].name);
        v->claims[i].tmpl = wd_strdup(cfg->verify_claims[i].tmpl);
    }
    v->max_len = cfg->max_token_len ? cfg->max_token_len : WD_JWT_TOKEN_MAX_DEFAULT;
    v->acl_claim = wd_strdup(cfg->acl_claim ? cfg->acl_claim : "acl");
    v->slot = wd_calloc(1, sizeof(*v->slot));
    pthread_mutex_init(&v->slot->mu, NULL);
    v->slot->ks = wd_jwt_keyset_get(ks); /* NULL: no keys until set_keyset (JWKS URL) */
    v->slot->generation = 1;
    *out = v;
    seterr(err, errcap, "%s", "");
    return WD_OK;
}

void wd_jwt_verifier_free(struct wd_jwt_verifier *v)
{
    if (!v)
        return;
    free(v->iss);
    free(v->aud);
    for (size_t i = 0; i < v->n_claims; i++) {
        free((char *)v->claims[i].name);
        free((char *)v->claims[i].tmpl);
    }
    free(v->claims);
    free(v->acl_claim);
    pthread_mutex_destroy(&v->slot->mu);
    wd_jwt_keyset_release(v->slot->ks);
    free(v->slot);
    free(v);
}

void wd_jwt_verifier_set_keyset(const struct wd_jwt_verifier *v, struct wd_jwt_keyset *ks)
{
    if (!v || !ks)
        return;
    wd_jwt_keyset_get(ks);
    pthread_mutex_lock(&v->slot->mu);
    struct wd_jwt_keyset *old = v->slot->ks;
    v->slot->ks = ks;
    v->slot->generation++;
    pthread_mutex_unlock(&v->slot->mu);
    wd_jwt_keyset_release(old);
}

uint64_t wd_jwt_verifier_generation(const struct wd_jwt_verifier *v)
{
    pthread_mutex_lock(&v->slot->mu);
    uint64_t g = v->slot->generation;
    pthread_mutex_unlock(&v->slot->mu);
    return g;
}

bool wd_jwt_verifier_has_keys(const struct wd_jwt_verifier *v)
{
    pthread_mutex_lock(&v->slot->mu);
    bool has = v->slot->ks != NULL;
    pthread_mutex_unlock(&v->slot->mu);
    return has;
}

static struct wd_jwt_keyset *pin_keyset(const struct wd_jwt_verifier *v)
{
    pthread_mutex_lock(&v->slot->mu);
    struct wd_jwt_keyset *ks = wd_jwt_keyset_get(v->slot->ks);
    pthread_mutex_unlock(&v->slot->mu);
    return ks;
}

/* ---- statuses ---- */

static const char *const status_text[] = {
    [WD_JWT_OK] = "ok",
    [WD_JWT_TOO_BIG] = "token too big",
    [WD_JWT_MALFORMED] = "malformed token",
    [WD_JWT_ALG_REFUSED] = "algorithm refused",
    [WD_JWT_UNKNOWN_KID] = "unknown kid",
    [WD_JWT_BAD_SIGNATURE] = "bad signature",
    [WD_JWT_EXPIRED] = "token expired",
    [WD_JWT_NOT_YET_VALID] = "token not yet valid",
    [WD_JWT_IAT_FUTURE] = "token issued in the future",
    [WD_JWT_BAD_ISS] = "wrong issuer",
    [WD_JWT_BAD_AUD] = "wrong audience",
    [WD_JWT_CLAIM_MISSING] = "required claim missing",
    [WD_JWT_CLAIM_MISMATCH] = "claim mismatch",
    [WD_JWT_NO_KEYS] = "no key set loaded yet",
};

const char *wd_jwt_status_str(enum wd_jwt_status s)
{
    if ((unsigned)s < WD_ARRAY_LEN(status_text) && status_text[s])
        return status_text[s];
    return "unknown jwt status";
}

bool wd_jwt_status_emqx_ignores(enum wd_jwt_status s)
{
    switch (s) {
    case WD_JWT_TOO_BIG:
    case WD_JWT_MALFORMED:
    case WD_JWT_ALG_REFUSED:
    case WD_JWT_UNKNOWN_KID:
    case WD_JWT_BAD_SIGNATURE:
        return true;
    default:
        return false;
    }
}

/* ---- claims ---- */

/* A decimal number as text, as Erlang's binary_to_integer/float read it: digits, sign,
 * point and exponent only (strtod alone would also take "0x10", "inf", " 1"). */
static bool decimal(const char *s, double *out)
{
    size_t n = strlen(s);
    if (n == 0 || n > 32 || strspn(s, "0123456789+-.eE") != n)
        return false;
    char *end = NULL;
    errno = 0;
    double d = strtod(s, &end);
    if (errno != 0 || !end || *end != 0 || !isfinite(d))
        return false;
    *out = d;
    return true;
}

/* A time claim: a JSON number or a numeric string (EMQX converts those). Returns 0 absent,
 * 1 present (value in *t), -1 wrong type. */
static int time_claim(json_t *payload, const char *name, double *t)
{
    json_t *j = json_object_get(payload, name);
    if (!j)
        return 0;
    if (json_is_integer(j)) {
        *t = (double)json_integer_value(j);
        return 1;
    }
    if (json_is_real(j)) {
        *t = json_real_value(j);
        return isfinite(*t) ? 1 : -1;
    }
    if (json_is_string(j) && decimal(json_string_value(j), t))
        return 1;
    return -1;
}

/* The result's exp: the first whole second at which the token is expired (for whole-second
 * clocks `now < t` is `now < ceil(t)`), saturated to 1..WD_JWT_EXP_MAX before the
 * conversion, so neither the cast nor a caller's `(exp + leeway - now) * 1000` overflows
 * (1e300 and 9223372036854775807 did). 0 stays "no exp". */
static int64_t exp_seconds(double t)
{
    if (!(t > 0.0))
        return 1;
    if (t >= (double)WD_JWT_EXP_MAX)
        return WD_JWT_EXP_MAX;
    int64_t s = (int64_t)t; /* in range: defined; then ceil (no libm) */
    return (double)s < t ? s + 1 : s;
}

static bool jstr_eq(json_t *j, const char *s)
{
    if (!json_is_string(j))
        return false;
    size_t n = strlen(s);
    return json_string_length(j) == n && memcmp(json_string_value(j), s, n) == 0;
}

static void render(struct wd_buf *b, const char *t, const struct wd_client *c)
{
    static const char ph_c[] = "${clientid}", ph_u[] = "${username}";
    while (*t) {
        if (strncmp(t, ph_c, sizeof(ph_c) - 1) == 0) {
            wd_buf_puts(b, c && c->clientid ? c->clientid : "");
            t += sizeof(ph_c) - 1;
        } else if (strncmp(t, ph_u, sizeof(ph_u) - 1) == 0) {
            wd_buf_puts(b, c && c->username ? c->username : "");
            t += sizeof(ph_u) - 1;
        } else {
            wd_buf_putc(b, *t++);
        }
    }
    if (!b->s)
        wd_buf_puts(b, "");
}

/* EMQX to_bool: true, "true", "1", an integer >= 1 or a numeric string >= 1. */
static bool to_bool(json_t *j)
{
    if (json_is_true(j))
        return true;
    if (json_is_integer(j))
        return json_integer_value(j) >= 1;
    if (json_is_string(j)) {
        const char *s = json_string_value(j);
        double d;
        return strcmp(s, "true") == 0 || (decimal(s, &d) && d >= 1);
    }
    return false;
}

static void flatten(struct wd_jwt_result *r, json_t *obj, const char *prefix, int depth)
{
    const char *key;
    json_t *val;
    json_object_foreach(obj, key, val)
    {
        if (r->n_claims_ >= WD_JWT_CLAIMS_MAX)
            return;
        struct wd_buf name = {0};
        if (prefix)
            wd_buf_printf(&name, "%s.%s", prefix, key);
        else
            wd_buf_puts(&name, key);
        char tmp[64];
        const char *text = NULL;
        if (json_is_string(val)) {
            if (json_string_length(val) == strlen(json_string_value(val)))
                text = json_string_value(val); /* embedded NUL: not representable, skipped */
        } else if (json_is_integer(val)) {
            snprintf(tmp, sizeof(tmp), "%" JSON_INTEGER_FORMAT, json_integer_value(val));
            text = tmp;
        } else if (json_is_real(val)) {
            snprintf(tmp, sizeof(tmp), "%.17g", json_real_value(val));
            text = tmp;
        } else if (json_is_boolean(val)) {
            text = json_is_true(val) ? "true" : "false";
        } else if (json_is_object(val) && depth + 1 < WD_JWT_CLAIM_DEPTH_MAX) {
            flatten(r, val, name.s, depth + 1);
        }
        if (text) {
            r->claims_[r->n_claims_].name = name.s;
            r->claims_[r->n_claims_].value = wd_strdup(text);
            r->n_claims_++;
        } else {
            wd_buf_free(&name);
        }
    }
}

const char *wd_jwt_result_claim(const struct wd_jwt_result *r, const char *name)
{
    if (!r || !name)
        return NULL;
    for (size_t i = 0; i < r->n_claims_; i++)
        if (strcmp(r->claims_[i].name, name) == 0)
            return r->claims_[i].value;
    return NULL;
}

size_t wd_jwt_result_nclaims(const struct wd_jwt_result *r)
{
    return r ? r->n_claims_ : 0;
}

bool wd_jwt_result_claim_at(const struct wd_jwt_result *r, size_t i, const char **name,
                            const char **value)
{
    if (!r || i >= r->n_claims_)
        return false;
    *name = r->claims_[i].name;
    *value = r->claims_[i].value;
    return true;
}

int wd_jwt_result_add_claim(struct wd_jwt_result *r, const char *name, const char *value)
{
    if (!r->claims_)
        r->claims_ = wd_calloc(WD_JWT_CLAIMS_MAX, sizeof(*r->claims_));
    if (r->n_claims_ >= WD_JWT_CLAIMS_MAX)
        return WD_ETOOBIG;
    r->claims_[r->n_claims_].name = wd_strdup(name);
    r->claims_[r->n_claims_].value = wd_strdup(value);
    r->n_claims_++;
    return WD_OK;
}

void wd_jwt_result_cleanup(struct wd_jwt_result *r)
{
    if (!r)
        return;
    for (size_t i = 0; i < r->n_acl; i++)
        free(r->acl[i].topic);
    free(r->acl);
    for (size_t i = 0; i < r->n_acl_errors; i++)
        free(r->acl_errors[i]);
    free(r->acl_errors);
    for (size_t i = 0; i < r->n_claims_; i++) {
        free(r->claims_[i].name);
        free(r->claims_[i].value);
    }
    free(r->claims_);
    r->acl = NULL;
    r->acl_errors = NULL;
    r->claims_ = NULL;
    r->n_acl = r->n_acl_errors = r->n_acl_skipped = r->n_claims_ = 0;
}

/* ---- the ACL claim (spec 3.5 and 4.4) ---- */

static void acl_skip(struct wd_jwt_result *r, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static void acl_skip(struct wd_jwt_result *r, const char *fmt, ...)
{
    r->n_acl_skipped++;
    if (r->n_acl_errors >= WD_JWT_ACL_ERRORS_MAX)
        return;
    char buf[200];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof(buf), fmt, ap);
    va_end(ap);
    r->acl_errors[r->n_acl_errors++] = wd_strdup(buf);
}

static void acl_v1(struct wd_jwt_result *r, json_t *obj, const char *cn)
{
    static const struct {
        const char *key;
        unsigned actions;
    } lists[] = {{"pub", WD_ACL_PUBLISH},
                 {"sub", WD_ACL_SUBSCRIBE},
                 {"all", WD_ACL_PUBLISH | WD_ACL_SUBSCRIBE}};
    r->acl_format = WD_JWT_ACL_V1_OBJECT;
    const char *key;
    json_t *val;
    json_object_foreach(obj, key, val)
    {
        if (strcmp(key, "pub") && strcmp(key, "sub") && strcmp(key, "all"))
            acl_skip(r, "%s.%.40s: unknown key (only pub, sub, all)", cn, key);
    }
    for (size_t l = 0; l < WD_ARRAY_LEN(lists); l++) {
        json_t *arr = json_object_get(obj, lists[l].key);
        if (!arr)
            continue;
        if (!json_is_array(arr)) {
            acl_skip(r, "%s.%s: not a list", cn, lists[l].key);
            continue;
        }
        size_t i;
        json_t *t;
        json_array_foreach(arr, i, t)
        {
            struct wd_acl_entry e = {.allow = true,
                                     .actions = lists[l].actions,
                                     .qos_mask = WD_ACL_QOS_ALL,
                                     .retain = -1};
            const char *why = NULL;
            if (wd_emqx_acl_topic_json(t, &e, &why) != WD_OK) {
                acl_skip(r, "%s.%s[%zu]: %s", cn, lists[l].key, i, why);
                continue;
            }
            if (r->n_acl >= WD_JWT_ACL_RULES_MAX) {
                wd_acl_entry_cleanup(&e);
                acl_skip(r, "%s: more than %d rules, the rest is skipped", cn,
                         WD_JWT_ACL_RULES_MAX);
                return;
            }
            r->acl[r->n_acl++] = e;
        }
    }
}

static void acl_v2(struct wd_jwt_result *r, json_t *arr, const char *cn)
{
    r->acl_format = WD_JWT_ACL_V2_LIST;
    size_t i;
    json_t *e;
    json_array_foreach(arr, i, e)
    {
        struct wd_acl_entry *v = NULL;
        size_t n = 0, ntopics = 0;
        const char *why = NULL;
        if (wd_emqx_acl_rule_parse(e, WD_JWT_ACL_RULES_MAX - r->n_acl, &v, &n, &ntopics, &why) !=
            WD_OK) {
            acl_skip(r, "%s[%zu]: %s", cn, i, why);
            continue;
        }
        if (n)
            memcpy(&r->acl[r->n_acl], v, n * sizeof *v);
        r->n_acl += n;
        free(v); /* the topics moved into r->acl */
        if (n < ntopics) {
            acl_skip(r, "%s: more than %d rules, the rest is skipped", cn, WD_JWT_ACL_RULES_MAX);
            return;
        }
    }
}

static void acl_parse(struct wd_jwt_result *r, json_t *claim, const char *cn)
{
    r->acl = wd_calloc(WD_JWT_ACL_RULES_MAX, sizeof(*r->acl));
    r->acl_errors = wd_calloc(WD_JWT_ACL_ERRORS_MAX, sizeof(*r->acl_errors));
    if (json_is_object(claim))
        acl_v1(r, claim, cn);
    else if (json_is_array(claim))
        acl_v2(r, claim, cn);
    else {
        r->acl_format = WD_JWT_ACL_INVALID;
        acl_skip(r, "%s: neither an object nor a list", cn);
    }
}

/* ---- verification ---- */

static int fail(struct wd_jwt_result *out, enum wd_jwt_status s)
{
    wd_jwt_result_cleanup(out);
    out->status = s;
    out->reason = wd_jwt_status_str(s);
    out->exp = 0;
    out->is_superuser = false;
    out->acl_format = WD_JWT_ACL_ABSENT;
    return s == WD_JWT_TOO_BIG ? WD_ETOOBIG : s == WD_JWT_MALFORMED ? WD_EDECODE : WD_EINVAL;
}

static json_t *decode_json(const char *seg, size_t n)
{
    size_t bl = 0;
    unsigned char *b = b64_decode(seg, n, true, &bl);
    if (!b)
        return NULL;
    json_t *j = json_loadb((const char *)b, bl, JSON_REJECT_DUPLICATES, NULL);
    free(b);
    if (j && !json_is_object(j)) {
        json_decref(j);
        return NULL;
    }
    return j;
}

/* HMAC keys are checked here first, in constant time (CRYPTO_memcmp): libjwt 1.10.2 as
 * released compared with strcmp (CVE-2024-25189, fixed in Debian's 1.10.2-1+deb12u1), so
 * a forged HMAC never reaches libjwt's comparison on any build. libjwt then verifies too. */
static bool hmac_ok(const struct jkey *k, jwt_alg_t alg, const char *signed_part, size_t n,
                    const unsigned char *sig, size_t sl)
{
    const EVP_MD *md = alg == JWT_ALG_HS256   ? EVP_sha256()
                       : alg == JWT_ALG_HS384 ? EVP_sha384()
                                              : EVP_sha512();
    unsigned char mac[EVP_MAX_MD_SIZE];
    unsigned int ml = 0;
    if (!HMAC(md, k->mat, (int)k->len, (const unsigned char *)signed_part, n, mac, &ml))
        return false;
    bool ok = sl == ml && CRYPTO_memcmp(mac, sig, ml) == 0;
    OPENSSL_cleanse(mac, sizeof(mac));
    return ok;
}

static bool sig_ok(const struct jkey *k, const char *tok, jwt_alg_t alg, size_t signed_len,
                   const unsigned char *sig, size_t sl)
{
    if (k->kind == KEY_HMAC && !hmac_ok(k, alg, tok, signed_len, sig, sl))
        return false;
    jwt_t *j = NULL;
    int rc = jwt_decode(&j, tok, k->mat, (int)k->len);
    bool ok = rc == 0 && j && jwt_get_alg(j) == alg;
    jwt_free(j);
    return ok;
}

/* Time claims are compared as doubles (finite, so every comparison is defined and nothing
 * overflows). A time claim that is present but not a number cannot be shown to hold: it
 * fails its check, as an expired token does (EMQX: bad_username_or_password), and is not
 * MALFORMED, which `jwt_on_invalid next` would pass on. */
static enum wd_jwt_status check_claims(const struct wd_jwt_verifier *v, json_t *p,
                                       const struct wd_client *c, int64_t now)
{
    double t, dnow = (double)now, lw = (double)v->leeway;
    int rc = time_claim(p, "exp", &t);
    if (rc < 0 || (rc > 0 && !(dnow < t + lw)))
        return WD_JWT_EXPIRED;
    rc = time_claim(p, "nbf", &t);
    if (rc < 0 || (rc > 0 && t > dnow + lw))
        return WD_JWT_NOT_YET_VALID;
    if (v->check_iat) {
        rc = time_claim(p, "iat", &t);
        if (rc < 0 || (rc > 0 && t > dnow + lw))
            return WD_JWT_IAT_FUTURE;
    }
    if (v->iss && !jstr_eq(json_object_get(p, "iss"), v->iss))
        return WD_JWT_BAD_ISS;
    if (v->aud) {
        json_t *a = json_object_get(p, "aud");
        bool ok = jstr_eq(a, v->aud);
        if (json_is_array(a)) {
            size_t i;
            json_t *e;
            json_array_foreach(a, i, e) ok = ok || jstr_eq(e, v->aud);
        }
        if (!ok)
            return WD_JWT_BAD_AUD;
    }
    for (size_t i = 0; i < v->n_claims; i++) {
        json_t *j = json_object_get(p, v->claims[i].name);
        if (!j)
            return WD_JWT_CLAIM_MISSING;
        struct wd_buf b = {0};
        render(&b, v->claims[i].tmpl, c);
        bool eq = json_is_string(j) && json_string_length(j) == b.len &&
                  memcmp(json_string_value(j), b.s, b.len) == 0;
        wd_buf_free(&b);
        if (!eq)
            return WD_JWT_CLAIM_MISMATCH;
    }
    return WD_JWT_OK;
}

/* The result of a payload whose checks passed: exp, is_superuser, the claims, the ACL. */
static void fill_result(struct wd_jwt_result *out, json_t *pl, const char *acl_claim)
{
    double t;
    if (time_claim(pl, "exp", &t) > 0)
        out->exp = exp_seconds(t);
    out->is_superuser = to_bool(json_object_get(pl, "is_superuser"));
    out->claims_ = wd_calloc(WD_JWT_CLAIMS_MAX, sizeof(*out->claims_));
    flatten(out, pl, NULL, 0);
    json_t *acl = json_object_get(pl, acl_claim);
    if (acl)
        acl_parse(out, acl, acl_claim);
    out->status = WD_JWT_OK;
    out->reason = wd_jwt_status_str(WD_JWT_OK);
}

int wd_jwt_result_from_claims(const char *json, size_t len, const char *acl_claim,
                              struct wd_jwt_result *out, struct wd_jwt_json_error *err)
{
    memset(out, 0, sizeof(*out));
    memset(err, 0, sizeof(*err));
    json_error_t je;
    json_t *pl = json_loadb(json, len, JSON_REJECT_DUPLICATES, &je);
    if (!pl || !json_is_object(pl)) {
        if (pl) {
            snprintf(err->text, sizeof err->text, "the claims must be a JSON object");
            err->line = 1;
            err->column = 1;
        } else {
            snprintf(err->text, sizeof err->text, "%s", je.text);
            err->line = je.line > 0 ? je.line : 1;
            err->column = je.column > 0 ? je.column : 1;
        }
        json_decref(pl);
        fail(out, WD_JWT_MALFORMED);
        return WD_ESYNTAX;
    }
    fill_result(out, pl, acl_claim ? acl_claim : "acl");
    json_decref(pl);
    return WD_OK;
}

int wd_jwt_verify(const struct wd_jwt_verifier *v, const char *token, size_t len,
                  const struct wd_client *c, int64_t now, struct wd_jwt_result *out)
{
    memset(out, 0, sizeof(*out));
    if (!v || !token)
        return fail(out, WD_JWT_MALFORMED);
    if (len > v->max_len)
        return fail(out, WD_JWT_TOO_BIG);

    /* shape: three segments, header and payload non-empty, no NUL; the signature is
     * checked after the header so that an unsigned `alg: none` token reads as refused */
    const char *d1 = len ? memchr(token, '.', len) : NULL;
    const char *d2 = d1 ? memchr(d1 + 1, '.', len - (size_t)(d1 + 1 - token)) : NULL;
    if (!d2 || memchr(d2 + 1, '.', len - (size_t)(d2 + 1 - token)) || memchr(token, 0, len) ||
        d1 == token || d2 == d1 + 1)
        return fail(out, WD_JWT_MALFORMED);

    enum wd_jwt_status st = WD_JWT_OK;
    json_t *hdr = decode_json(token, (size_t)(d1 - token));
    json_t *pl = NULL;
    struct wd_jwt_keyset *ks = NULL;
    char *tok = NULL;
    unsigned char *sig = NULL;
    size_t sig_len = 0;
    if (!hdr) {
        st = WD_JWT_MALFORMED;
        goto out;
    }
    json_t *ja = json_object_get(hdr, "alg"), *jk = json_object_get(hdr, "kid");
    if (!json_is_string(ja) || (jk && !json_is_string(jk))) {
        st = WD_JWT_MALFORMED;
        goto out;
    }
    jwt_alg_t alg;
    enum key_kind kind;
    if (alg_lookup(json_string_value(ja), &alg, &kind) != 0 ||
        json_string_length(ja) != strlen(json_string_value(ja)) || json_object_get(hdr, "crit")) {
        st = WD_JWT_ALG_REFUSED;
        goto out;
    }
    const char *kid = jk ? json_string_value(jk) : NULL;
    /* no signature (only `none` has none, refused above) or not strict base64url */
    if (d2 + 1 == token + len ||
        !(sig = b64_decode(d2 + 1, len - (size_t)(d2 + 1 - token), true, &sig_len))) {
        st = WD_JWT_MALFORMED;
        goto out;
    }
    pl = decode_json(d1 + 1, (size_t)(d2 - d1 - 1));
    if (!pl) {
        st = WD_JWT_MALFORMED;
        goto out;
    }

    /* key choice: kid first, then the algorithm pinned by each candidate key. No key set
     * yet (a JWKS URL that has not answered): an outage, not the token's fault */
    ks = pin_keyset(v);
    if (!ks) {
        st = WD_JWT_NO_KEYS;
        goto out;
    }
    size_t by_kid = 0, cand = 0;
    const struct jkey *cands[WD_JWT_KEYS_MAX];
    for (size_t i = 0; i < ks->n; i++) {
        const struct jkey *k = &ks->keys[i];
        if (k->kid && kid && strcmp(k->kid, kid) != 0)
            continue;
        by_kid++;
        if (key_accepts(k, alg, kind) && cand < WD_JWT_KEYS_MAX)
            cands[cand++] = k;
    }
    if (by_kid == 0) {
        st = kid ? WD_JWT_UNKNOWN_KID : WD_JWT_BAD_SIGNATURE;
        goto out;
    }
    if (cand == 0) {
        st = WD_JWT_ALG_REFUSED;
        goto out;
    }
    tok = wd_strndup(token, len);
    bool verified = false;
    for (size_t i = 0; i < cand && !verified; i++)
        verified = sig_ok(cands[i], tok, alg, (size_t)(d2 - token), sig, sig_len);
    if (!verified) {
        st = WD_JWT_BAD_SIGNATURE;
        goto out;
    }

    st = check_claims(v, pl, c, now);
    if (st != WD_JWT_OK)
        goto out;

    fill_result(out, pl, v->acl_claim);

out:
    free(tok);
    free(sig);
    wd_jwt_keyset_release(ks);
    json_decref(hdr);
    json_decref(pl);
    if (st != WD_JWT_OK)
        return fail(out, st);
    out->status = WD_JWT_OK;
    out->reason = wd_jwt_status_str(WD_JWT_OK);
    return WD_OK;
}
