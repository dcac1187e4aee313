/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Unit tests for src/store/jwt.c. Every token is minted here with OpenSSL alone (HMAC for
 * HS*, EVP_DigestSign for RS* and ES*, the ECDSA DER signature converted to JOSE's R||S),
 * never with libjwt, so the tests do not share code with what they test. Keys (RSA 2048 x2,
 * EC P-256, P-384, P-521) are generated at group setup; nothing private is committed. JWKS
 * documents are built from the generated keys' public parameters.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/pem.h>

#include "core/base64.h"
#include "core/buf.h"
#include "core/wd.h"
#include "store/jwt.h"

#define NOW 1700000000LL
#define SECRET "correct horse battery staple, 32+"

static EVP_PKEY *rsa, *rsa2, *ec256, *ec384, *ec521;
static char *rsa_pem, *rsa2_pem, *ec256_pem, *ec384_pem, *ec521_pem;

static const struct wd_client client = {
    .node = "n",
    .clientid = "dev-1",
    .username = "alice",
    .peerhost = "127.0.0.1",
    .protocol = "mqtt",
    .mountpoint = "",
    .cn = "",
    .dn = "",
};

/* ---- minting ---- */

#define b64url(b, p, n) wd_base64_encode((b), (p), (n), WD_BASE64_URL)

static const EVP_MD *md_of(const char *alg)
{
    const char *bits = alg + 2;
    return !strcmp(bits, "256") ? EVP_sha256() : !strcmp(bits, "384") ? EVP_sha384() : EVP_sha512();
}

/* Signs `header`.`payload` (JSON texts) with `alg`; HS uses secret/slen, RS/ES use pk;
 * alg "none" (or NULL key material) gives an empty signature. Returns malloc'd text. */
static char *mint_raw(const char *alg, const void *secret, size_t slen, EVP_PKEY *pk,
                      const char *header, const char *payload)
{
    struct wd_buf b = {0};
    b64url(&b, (const unsigned char *)header, strlen(header));
    wd_buf_putc(&b, '.');
    b64url(&b, (const unsigned char *)payload, strlen(payload));
    unsigned char sig[1024];
    size_t sl = 0;
    if (alg[0] == 'H') {
        unsigned int ml = 0;
        assert_non_null(HMAC(md_of(alg), secret, (int)slen, (unsigned char *)b.s, b.len, sig, &ml));
        sl = ml;
    } else if (alg[0] == 'R' || alg[0] == 'E') {
        EVP_MD_CTX *ctx = EVP_MD_CTX_new();
        unsigned char der[1024];
        size_t dl = sizeof(der);
        assert_int_equal(EVP_DigestSignInit(ctx, NULL, md_of(alg), NULL, pk), 1);
        assert_int_equal(EVP_DigestSign(ctx, der, &dl, (unsigned char *)b.s, b.len), 1);
        EVP_MD_CTX_free(ctx);
        if (alg[0] == 'R') {
            memcpy(sig, der, dl);
            sl = dl;
        } else { /* DER ECDSA-Sig-Value to JOSE R || S, each padded to the field size */
            const unsigned char *p = der;
            ECDSA_SIG *es = d2i_ECDSA_SIG(NULL, &p, (long)dl);
            assert_non_null(es);
            int fb = (EVP_PKEY_get_bits(pk) + 7) / 8;
            BN_bn2binpad(ECDSA_SIG_get0_r(es), sig, fb);
            BN_bn2binpad(ECDSA_SIG_get0_s(es), sig + fb, fb);
            sl = (size_t)fb * 2;
            ECDSA_SIG_free(es);
        }
    }
    wd_buf_putc(&b, '.');
    b64url(&b, sig, sl);
    return b.s;
}

static EVP_PKEY *key_for(const char *alg)
{
    if (alg[0] == 'R')
        return rsa;
    if (!strcmp(alg, "ES256"))
        return ec256;
    if (!strcmp(alg, "ES384"))
        return ec384;
    return ec521;
}

/* A token with header {"alg":alg[,"kid":kid],"typ":"JWT"} and the given payload. */
static char *mint(const char *alg, const char *kid, const char *payload)
{
    char hdr[256];
    if (kid)
        snprintf(hdr, sizeof(hdr), "{\"alg\":\"%s\",\"typ\":\"JWT\",\"kid\":\"%s\"}", alg, kid);
    else
        snprintf(hdr, sizeof(hdr), "{\"alg\":\"%s\",\"typ\":\"JWT\"}", alg);
    if (alg[0] == 'H')
        return mint_raw(alg, SECRET, strlen(SECRET), NULL, hdr, payload);
    return mint_raw(alg, NULL, 0, key_for(alg), hdr, payload);
}

/* ---- keys and JWKS ---- */

static char *pub_pem(EVP_PKEY *pk)
{
    BIO *b = BIO_new(BIO_s_mem());
    assert_int_equal(PEM_write_bio_PUBKEY(b, pk), 1);
    char *d = NULL;
    long n = BIO_get_mem_data(b, &d);
    char *s = wd_strndup(d, (size_t)n);
    BIO_free(b);
    return s;
}

static void put_bn(struct wd_buf *b, EVP_PKEY *pk, const char *param, int pad)
{
    BIGNUM *bn = NULL;
    assert_int_equal(EVP_PKEY_get_bn_param(pk, param, &bn), 1);
    unsigned char buf[1024];
    int n = pad ? BN_bn2binpad(bn, buf, pad) : BN_bn2bin(bn, buf);
    b64url(b, buf, (size_t)n);
    BN_free(bn);
}

/* One JWK for pk with the given kid (NULL: none) */
static void jwk(struct wd_buf *b, EVP_PKEY *pk, const char *kid)
{
    wd_buf_puts(b, "{");
    if (kid)
        wd_buf_printf(b, "\"kid\":\"%s\",", kid);
    if (EVP_PKEY_get_base_id(pk) == EVP_PKEY_RSA) {
        wd_buf_puts(b, "\"kty\":\"RSA\",\"use\":\"sig\",\"n\":\"");
        put_bn(b, pk, OSSL_PKEY_PARAM_RSA_N, 0);
        wd_buf_puts(b, "\",\"e\":\"");
        put_bn(b, pk, OSSL_PKEY_PARAM_RSA_E, 0);
    } else {
        int bits = EVP_PKEY_get_bits(pk), fb = (bits + 7) / 8;
        wd_buf_printf(b, "\"kty\":\"EC\",\"crv\":\"P-%d\",\"x\":\"", bits);
        put_bn(b, pk, OSSL_PKEY_PARAM_EC_PUB_X, fb);
        wd_buf_puts(b, "\",\"y\":\"");
        put_bn(b, pk, OSSL_PKEY_PARAM_EC_PUB_Y, fb);
    }
    wd_buf_puts(b, "\"}");
}

static struct wd_jwt_keyset *jwks_of(const char *text)
{
    struct wd_jwt_keyset *ks = NULL;
    char err[256];
    int rc = wd_jwt_keyset_from_jwks(text, strlen(text), &ks, err, sizeof(err));
    if (rc != WD_OK)
        fail_msg("jwks: %s", err);
    return ks;
}

static int group_setup(void **state)
{
    (void)state;
    rsa = EVP_RSA_gen(2048);
    rsa2 = EVP_RSA_gen(2048);
    ec256 = EVP_EC_gen("P-256");
    ec384 = EVP_EC_gen("P-384");
    ec521 = EVP_EC_gen("P-521");
    if (!rsa || !rsa2 || !ec256 || !ec384 || !ec521)
        return -1;
    rsa_pem = pub_pem(rsa);
    rsa2_pem = pub_pem(rsa2);
    ec256_pem = pub_pem(ec256);
    ec384_pem = pub_pem(ec384);
    ec521_pem = pub_pem(ec521);
    return 0;
}

static int group_teardown(void **state)
{
    (void)state;
    EVP_PKEY_free(rsa);
    EVP_PKEY_free(rsa2);
    EVP_PKEY_free(ec256);
    EVP_PKEY_free(ec384);
    EVP_PKEY_free(ec521);
    free(rsa_pem);
    free(rsa2_pem);
    free(ec256_pem);
    free(ec384_pem);
    free(ec521_pem);
    return 0;
}

/* ---- verifier helpers ---- */

static struct wd_jwt_keyset *hmac_ks(void)
{
    struct wd_jwt_keyset *ks = NULL;
    assert_int_equal(wd_jwt_keyset_from_secret(SECRET, strlen(SECRET), false, &ks, NULL, 0), WD_OK);
    return ks;
}

static struct wd_jwt_keyset *pem_ks(const char *pem)
{
    struct wd_jwt_keyset *ks = NULL;
    char err[200];
    int rc = wd_jwt_keyset_from_pem(pem, strlen(pem), &ks, err, sizeof(err));
    if (rc != WD_OK)
        fail_msg("pem: %s", err);
    return ks;
}

/* A verifier over ks (consumed: the helper drops its reference) */
static struct wd_jwt_verifier *verifier(struct wd_jwt_keyset *ks, const struct wd_jwt_config *cfg)
{
    static const struct wd_jwt_config dflt = {.check_iat = true};
    struct wd_jwt_verifier *v = NULL;
    char err[200];
    int rc = wd_jwt_verifier_new(cfg ? cfg : &dflt, ks, &v, err, sizeof(err));
    wd_jwt_keyset_release(ks);
    if (rc != WD_OK)
        fail_msg("verifier: %s", err);
    return v;
}

/* Verifies and returns the status, cleaning the result up */
static enum wd_jwt_status check(const struct wd_jwt_verifier *v, const char *tok)
{
    struct wd_jwt_result r;
    int rc = wd_jwt_verify(v, tok, strlen(tok), &client, NOW, &r);
    assert_true((rc == WD_OK) == (r.status == WD_JWT_OK));
    assert_non_null(r.reason);
    enum wd_jwt_status st = r.status;
    wd_jwt_result_cleanup(&r);
    return st;
}

static enum wd_jwt_status check_free(const struct wd_jwt_verifier *v, char *tok)
{
    enum wd_jwt_status st = check(v, tok);
    free(tok);
    return st;
}

#define PAYLOAD "{\"sub\":\"alice\",\"exp\":1700000600}"

/* ---- valid tokens per algorithm ---- */

static void valid_for(const char *alg, struct wd_jwt_keyset *ks)
{
    struct wd_jwt_verifier *v = verifier(ks, NULL);
    char *tok = mint(alg, NULL, PAYLOAD);
    struct wd_jwt_result r;
    int rc = wd_jwt_verify(v, tok, strlen(tok), &client, NOW, &r);
    if (rc != WD_OK)
        fail_msg("%s: %s", alg, r.reason);
    assert_int_equal(r.exp, 1700000600);
    assert_string_equal(wd_jwt_result_claim(&r, "sub"), "alice");
    assert_int_equal(r.acl_format, WD_JWT_ACL_ABSENT);
    wd_jwt_result_cleanup(&r);
    free(tok);
    wd_jwt_verifier_free(v);
}

static void hs256_hs384_hs512_tokens_verify_with_the_secret(void **state)
{
    (void)state;
    valid_for("HS256", hmac_ks());
    valid_for("HS384", hmac_ks());
    valid_for("HS512", hmac_ks());
}

static void base64_encoded_secret_is_decoded_before_use(void **state)
{
    (void)state;
    unsigned char raw[48];
    for (size_t i = 0; i < sizeof(raw); i++)
        raw[i] = (unsigned char)(i * 37 + 1);
    unsigned char b64[80];
    int n = EVP_EncodeBlock(b64, raw, sizeof(raw));
    struct wd_jwt_keyset *ks = NULL;
    assert_int_equal(wd_jwt_keyset_from_secret((char *)b64, (size_t)n, true, &ks, NULL, 0), WD_OK);
    struct wd_jwt_verifier *v = verifier(ks, NULL);
    char *tok = mint_raw("HS256", raw, sizeof(raw), NULL, "{\"alg\":\"HS256\"}", PAYLOAD);
    assert_int_equal(check_free(v, tok), WD_JWT_OK);
    /* the base64 text itself is not the key */
    tok = mint_raw("HS256", b64, (size_t)n, NULL, "{\"alg\":\"HS256\"}", PAYLOAD);
    assert_int_equal(check_free(v, tok), WD_JWT_BAD_SIGNATURE);
    wd_jwt_verifier_free(v);
}

static void rs256_rs384_rs512_tokens_verify_with_the_public_key(void **state)
{
    (void)state;
    valid_for("RS256", pem_ks(rsa_pem));
    valid_for("RS384", pem_ks(rsa_pem));
    valid_for("RS512", pem_ks(rsa_pem));
}

static void es256_es384_es512_tokens_verify_with_the_matching_curve(void **state)
{
    (void)state;
    valid_for("ES256", pem_ks(ec256_pem));
    valid_for("ES384", pem_ks(ec384_pem));
    valid_for("ES512", pem_ks(ec521_pem));
}

static void every_algorithm_verifies_through_a_jwks(void **state)
{
    (void)state;
    struct wd_buf b = {0};
    wd_buf_puts(&b, "{\"keys\":[");
    jwk(&b, rsa, "r");
    wd_buf_putc(&b, ',');
    jwk(&b, ec256, "e256");
    wd_buf_putc(&b, ',');
    jwk(&b, ec384, "e384");
    wd_buf_putc(&b, ',');
    jwk(&b, ec521, "e521");
    wd_buf_puts(&b, ",{\"kty\":\"oct\",\"kid\":\"h\",\"k\":\"");
    b64url(&b, (const unsigned char *)SECRET, strlen(SECRET));
    wd_buf_puts(&b, "\"}]}");
    struct wd_jwt_keyset *ks = jwks_of(b.s);
    wd_buf_free(&b);
    assert_int_equal(wd_jwt_keyset_count(ks), 5);
    struct wd_jwt_verifier *v = verifier(ks, NULL);
    static const char *const a[][2] = {
        {"HS256", "h"},    {"HS512", "h"},    {"RS256", "r"},    {"RS512", "r"},
        {"ES256", "e256"}, {"ES384", "e384"}, {"ES512", "e521"},
    };
    for (size_t i = 0; i < WD_ARRAY_LEN(a); i++) {
        assert_int_equal(check_free(v, mint(a[i][0], a[i][1], PAYLOAD)), WD_JWT_OK);
        /* without a kid every compatible key is tried, as EMQX does */
        assert_int_equal(check_free(v, mint(a[i][0], NULL, PAYLOAD)), WD_JWT_OK);
    }
    /* a kid naming a key of another family: refused before any verification */
    assert_int_equal(check_free(v, mint("ES256", "r", PAYLOAD)), WD_JWT_ALG_REFUSED);
    wd_jwt_verifier_free(v);
}

/* ---- time claims ---- */

static char *hs_with(const char *payload)
{
    return mint("HS256", NULL, payload);
}

static void exp_equal_to_now_is_expired_and_one_second_later_is_valid(void **state)
{
    (void)state;
    struct wd_jwt_verifier *v = verifier(hmac_ks(), NULL);
    assert_int_equal(check_free(v, hs_with("{\"exp\":1700000000}")), WD_JWT_EXPIRED);
    assert_int_equal(check_free(v, hs_with("{\"exp\":1699990000}")), WD_JWT_EXPIRED);
    assert_int_equal(check_free(v, hs_with("{\"exp\":1700000001}")), WD_JWT_OK);
    /* numeric strings are numbers, as in EMQX; any other value fails the check */
    assert_int_equal(check_free(v, hs_with("{\"exp\":\"1700000001\"}")), WD_JWT_OK);
    assert_int_equal(check_free(v, hs_with("{\"exp\":\"1700000000\"}")), WD_JWT_EXPIRED);
    assert_int_equal(check_free(v, hs_with("{\"exp\":\"soon\"}")), WD_JWT_EXPIRED);
    assert_int_equal(check_free(v, hs_with("{\"exp\":\"0x7fffffff\"}")), WD_JWT_EXPIRED);
    assert_int_equal(check_free(v, hs_with("{\"exp\":\"inf\"}")), WD_JWT_EXPIRED);
    assert_int_equal(check_free(v, hs_with("{\"exp\":\" 1800000000\"}")), WD_JWT_EXPIRED);
    assert_int_equal(check_free(v, hs_with("{\"exp\":true}")), WD_JWT_EXPIRED);
    /* no exp at all: valid, and the result says 0 */
    struct wd_jwt_result r;
    char *tok = hs_with("{\"sub\":\"x\"}");
    assert_int_equal(wd_jwt_verify(v, tok, strlen(tok), &client, NOW, &r), WD_OK);
    assert_int_equal(r.exp, 0);
    wd_jwt_result_cleanup(&r);
    free(tok);
    wd_jwt_verifier_free(v);
}

static void nbf_in_the_future_is_not_yet_valid(void **state)
{
    (void)state;
    struct wd_jwt_verifier *v = verifier(hmac_ks(), NULL);
    assert_int_equal(check_free(v, hs_with("{\"nbf\":1700000000}")), WD_JWT_OK);
    assert_int_equal(check_free(v, hs_with("{\"nbf\":1700000001}")), WD_JWT_NOT_YET_VALID);
    wd_jwt_verifier_free(v);
}

static void leeway_extends_exp_nbf_and_iat_by_exactly_its_seconds(void **state)
{
    (void)state;
    struct wd_jwt_config cfg = {.leeway = 5, .check_iat = true};
    struct wd_jwt_verifier *v = verifier(hmac_ks(), &cfg);
    assert_int_equal(check_free(v, hs_with("{\"exp\":1699999996}")), WD_JWT_OK);
    assert_int_equal(check_free(v, hs_with("{\"exp\":1699999995}")), WD_JWT_EXPIRED);
    assert_int_equal(check_free(v, hs_with("{\"nbf\":1700000005}")), WD_JWT_OK);
    assert_int_equal(check_free(v, hs_with("{\"nbf\":1700000006}")), WD_JWT_NOT_YET_VALID);
    assert_int_equal(check_free(v, hs_with("{\"iat\":1700000005}")), WD_JWT_OK);
    assert_int_equal(check_free(v, hs_with("{\"iat\":1700000006}")), WD_JWT_IAT_FUTURE);
    wd_jwt_verifier_free(v);
}

static void iat_in_the_future_is_refused_unless_iat_checking_is_off(void **state)
{
    (void)state;
    struct wd_jwt_verifier *v = verifier(hmac_ks(), NULL);
    assert_int_equal(check_free(v, hs_with("{\"iat\":1700000000}")), WD_JWT_OK);
    assert_int_equal(check_free(v, hs_with("{\"iat\":1700000001}")), WD_JWT_IAT_FUTURE);
    wd_jwt_verifier_free(v);
    struct wd_jwt_config emqx = {.check_iat = false};
    v = verifier(hmac_ks(), &emqx);
    assert_int_equal(check_free(v, hs_with("{\"iat\":1800000000}")), WD_JWT_OK);
    wd_jwt_verifier_free(v);
}

/* Issue 8: a time claim that is not a number is a failed claim check (deny, as an expired
 * token; EMQX: bad_username_or_password), never MALFORMED, which `jwt_on_invalid next`
 * passes on to the next authenticator. */
static void time_claims_that_are_not_numbers_fail_their_check_and_are_not_malformed(void **state)
{
    (void)state;
    static const char *const bad[] = {
        "\"tomorrow\"",
        "null",
        "true",
        "false",
        "{}",
        "[]",
        "[1800000000]",
        "\"\"",
        "\"inf\"",
        "\"-inf\"",
        "\"NaN\"",
        "\"nan\"",
        "\"0x7fffffff\"",
        "\"1e999\"",
        "\" 1800000000\"",
        "\"1800000000 \"",
        "\"1_800_000_000\"",
        "\"18e8x\"",
    };
    struct wd_jwt_config iat_on = {.check_iat = true}, iat_off = {.check_iat = false};
    struct wd_jwt_verifier *v = verifier(hmac_ks(), &iat_on);
    struct wd_jwt_verifier *emqx = verifier(hmac_ks(), &iat_off);
    char p[128];
    for (size_t i = 0; i < WD_ARRAY_LEN(bad); i++) {
        snprintf(p, sizeof p, "{\"exp\":%s}", bad[i]);
        assert_int_equal(check_free(v, hs_with(p)), WD_JWT_EXPIRED);
        snprintf(p, sizeof p, "{\"nbf\":%s}", bad[i]);
        assert_int_equal(check_free(v, hs_with(p)), WD_JWT_NOT_YET_VALID);
        snprintf(p, sizeof p, "{\"iat\":%s}", bad[i]);
        assert_int_equal(check_free(v, hs_with(p)), WD_JWT_IAT_FUTURE);
        /* iat is not checked at all when check_iat is off (EMQX) */
        assert_int_equal(check_free(emqx, hs_with(p)), WD_JWT_OK);
        /* with a valid exp next to a bad nbf: still refused */
        snprintf(p, sizeof p, "{\"exp\":1800000000,\"nbf\":%s}", bad[i]);
        assert_int_equal(check_free(v, hs_with(p)), WD_JWT_NOT_YET_VALID);
    }
    /* none of them is one of the statuses `jwt_on_invalid next` passes on */
    assert_false(wd_jwt_status_emqx_ignores(WD_JWT_EXPIRED));
    assert_false(wd_jwt_status_emqx_ignores(WD_JWT_NOT_YET_VALID));
    assert_false(wd_jwt_status_emqx_ignores(WD_JWT_IAT_FUTURE));
    /* strings of digits (and EMQX's decimal forms) are numbers */
    assert_int_equal(check_free(v, hs_with("{\"exp\":\"1800000000\"}")), WD_JWT_OK);
    assert_int_equal(check_free(v, hs_with("{\"exp\":\"18e8\"}")), WD_JWT_OK);
    assert_int_equal(check_free(v, hs_with("{\"exp\":\"+1800000000.5\"}")), WD_JWT_OK);
    assert_int_equal(check_free(v, hs_with("{\"nbf\":\"1700000000\"}")), WD_JWT_OK);
    assert_int_equal(check_free(v, hs_with("{\"nbf\":\"1700000001\"}")), WD_JWT_NOT_YET_VALID);
    wd_jwt_verifier_free(emqx);
    wd_jwt_verifier_free(v);
}

static int64_t exp_of(const struct wd_jwt_verifier *v, const char *payload)
{
    char *t = hs_with(payload);
    struct wd_jwt_result r;
    assert_int_equal(wd_jwt_verify(v, t, strlen(t), &client, NOW, &r), WD_OK);
    int64_t e = r.exp;
    wd_jwt_result_cleanup(&r);
    free(t);
    return e;
}

/* Issue 8: exp 9223372036854775807 or 1e300 gave INT64_MAX, and the engine's
 * (exp + leeway - now) * 1000 overflowed (UBSan abort). The result saturates instead, so
 * that arithmetic is defined; huge and negative values of every claim compare sanely. */
static void huge_and_negative_time_claims_saturate_and_never_overflow(void **state)
{
    (void)state;
    struct wd_jwt_config cfg = {.check_iat = true, .leeway = 31536000};
    struct wd_jwt_verifier *v = verifier(hmac_ks(), &cfg);
    static const char *const huge[] = {
        "9223372036854775807",     "9223372036854775806", "1e300",        "1.7976931348623157e308",
        "\"9223372036854775807\"", "\"1e300\"",           "253402300800", "1e19",
    };
    char p[128];
    for (size_t i = 0; i < WD_ARRAY_LEN(huge); i++) {
        snprintf(p, sizeof p, "{\"exp\":%s}", huge[i]);
        int64_t e = exp_of(v, p);
        assert_int_equal(e, WD_JWT_EXP_MAX);
        assert_true(e <= INT64_C(253402300799));
        /* what the engine computes from it: a cache / session TTL in ms */
        int64_t ttl_ms = (e + cfg.leeway - NOW) * 1000;
        assert_true(ttl_ms > 0);
        /* as nbf and iat: in the future */
        snprintf(p, sizeof p, "{\"nbf\":%s}", huge[i]);
        assert_int_equal(check_free(v, hs_with(p)), WD_JWT_NOT_YET_VALID);
        snprintf(p, sizeof p, "{\"iat\":%s}", huge[i]);
        assert_int_equal(check_free(v, hs_with(p)), WD_JWT_IAT_FUTURE);
    }
    static const char *const past[] = {
        "-9223372036854775808", "-1e300", "-1", "0", "\"-1e300\"", "-0.5",
    };
    for (size_t i = 0; i < WD_ARRAY_LEN(past); i++) {
        snprintf(p, sizeof p, "{\"exp\":%s}", past[i]);
        assert_int_equal(check_free(v, hs_with(p)), WD_JWT_EXPIRED);
        snprintf(p, sizeof p, "{\"nbf\":%s,\"iat\":%s}", past[i], past[i]);
        assert_int_equal(check_free(v, hs_with(p)), WD_JWT_OK);
    }
    wd_jwt_verifier_free(v);
    /* within the leeway, an exp at or before the epoch still reads as "has an exp" */
    struct wd_jwt_verifier *nl = verifier(hmac_ks(), NULL);
    char *t = hs_with("{\"exp\":0}");
    struct wd_jwt_result r;
    assert_int_equal(wd_jwt_verify(nl, t, strlen(t), &client, -1, &r), WD_OK);
    assert_int_equal(r.exp, 1);
    wd_jwt_result_cleanup(&r);
    free(t);
    /* an integer beyond 64 bits: the payload cannot be read exactly (documented) */
    assert_int_equal(check_free(nl, hs_with("{\"exp\":99999999999999999999}")), WD_JWT_MALFORMED);
    wd_jwt_verifier_free(nl);
}

/* A fractional exp is valid while now < exp: with whole-second clocks that is until
 * ceil(exp), which is what the result says (so a session or cache entry built from it
 * expires exactly when the verification would start failing). */
static void fractional_exp_is_valid_until_the_next_whole_second(void **state)
{
    (void)state;
    struct wd_jwt_verifier *v = verifier(hmac_ks(), NULL);
    assert_int_equal(check_free(v, hs_with("{\"exp\":1700000000.5}")), WD_JWT_OK);
    assert_int_equal(exp_of(v, "{\"exp\":1700000000.5}"), 1700000001);
    assert_int_equal(exp_of(v, "{\"exp\":1700000000.000001}"), 1700000001);
    assert_int_equal(exp_of(v, "{\"exp\":1700000001.0}"), 1700000001);
    assert_int_equal(check_free(v, hs_with("{\"exp\":1699999999.99}")), WD_JWT_EXPIRED);
    assert_int_equal(check_free(v, hs_with("{\"exp\":1700000000.0}")), WD_JWT_EXPIRED);
    wd_jwt_verifier_free(v);
}

/* ---- signatures and algorithms ---- */

static void flipped_signature_or_payload_byte_is_a_bad_signature(void **state)
{
    (void)state;
    static const char *const a[] = {"HS256", "RS256", "ES256"};
    for (size_t i = 0; i < WD_ARRAY_LEN(a); i++) {
        const char *pem = a[i][0] == 'R' ? rsa_pem : ec256_pem;
        struct wd_jwt_verifier *v = verifier(a[i][0] == 'H' ? hmac_ks() : pem_ks(pem), NULL);
        char *tok = mint(a[i], NULL, PAYLOAD);
        char *sig = strrchr(tok, '.') + 1;
        size_t mid = strlen(sig) / 2;
        sig[mid] = sig[mid] == 'A' ? 'B' : 'A';
        assert_int_equal(check(v, tok), WD_JWT_BAD_SIGNATURE);
        free(tok);
        tok = mint(a[i], NULL, PAYLOAD);
        char *pl = strchr(tok, '.') + 1;
        pl[2] = pl[2] == 'A' ? 'B' : 'A'; /* still base64url, still JSON? maybe not */
        enum wd_jwt_status st = check(v, tok);
        assert_true(st == WD_JWT_BAD_SIGNATURE || st == WD_JWT_MALFORMED);
        free(tok);
        wd_jwt_verifier_free(v);
    }
    /* a payload changed into other valid JSON under the original signature */
    struct wd_jwt_verifier *v = verifier(hmac_ks(), NULL);
    char *good = mint("HS256", NULL, "{\"sub\":\"alice\"}");
    char *evil = mint("HS256", NULL, "{\"sub\":\"admin\"}");
    struct wd_buf b = {0};
    wd_buf_put(&b, evil, (size_t)(strrchr(evil, '.') - evil));
    wd_buf_puts(&b, strrchr(good, '.'));
    assert_int_equal(check(v, b.s), WD_JWT_BAD_SIGNATURE);
    wd_buf_free(&b);
    free(good);
    free(evil);
    /* signed with another secret */
    char *other = mint_raw("HS256", "another secret", 14, NULL, "{\"alg\":\"HS256\"}", PAYLOAD);
    assert_int_equal(check_free(v, other), WD_JWT_BAD_SIGNATURE);
    wd_jwt_verifier_free(v);
    /* signed with another RSA key */
    v = verifier(pem_ks(rsa_pem), NULL);
    other = mint_raw("RS256", NULL, 0, rsa2, "{\"alg\":\"RS256\"}", PAYLOAD);
    assert_int_equal(check_free(v, other), WD_JWT_BAD_SIGNATURE);
    wd_jwt_verifier_free(v);
}

static void alg_none_is_refused_signed_or_not(void **state)
{
    (void)state;
    struct wd_jwt_verifier *vh = verifier(hmac_ks(), NULL);
    struct wd_jwt_verifier *vr = verifier(pem_ks(rsa_pem), NULL);
    static const char *const hdrs[] = {"{\"alg\":\"none\"}", "{\"alg\":\"None\"}",
                                       "{\"alg\":\"NONE\"}", "{\"alg\":\"\"}"};
    for (size_t i = 0; i < WD_ARRAY_LEN(hdrs); i++) {
        char *tok = mint_raw("none", NULL, 0, NULL, hdrs[i], PAYLOAD);
        assert_int_equal(check(vh, tok), WD_JWT_ALG_REFUSED);
        assert_int_equal(check(vr, tok), WD_JWT_ALG_REFUSED);
        /* with a signature appended it is still refused */
        struct wd_buf b = {0};
        wd_buf_puts(&b, tok);
        wd_buf_puts(&b, "c2lnbmF0dXJl");
        assert_int_equal(check(vh, b.s), WD_JWT_ALG_REFUSED);
        wd_buf_free(&b);
        free(tok);
    }
    /* an HMAC of the token under the secret does not make `none` acceptable */
    char *tok = mint_raw("HS256", SECRET, strlen(SECRET), NULL, "{\"alg\":\"none\"}", PAYLOAD);
    assert_int_equal(check_free(vh, tok), WD_JWT_ALG_REFUSED);
    /* no alg at all, or not a string: malformed */
    tok = mint_raw("HS256", SECRET, strlen(SECRET), NULL, "{\"typ\":\"JWT\"}", PAYLOAD);
    assert_int_equal(check_free(vh, tok), WD_JWT_MALFORMED);
    tok = mint_raw("HS256", SECRET, strlen(SECRET), NULL, "{\"alg\":256}", PAYLOAD);
    assert_int_equal(check_free(vh, tok), WD_JWT_MALFORMED);
    wd_jwt_verifier_free(vh);
    wd_jwt_verifier_free(vr);
}

static void hs256_token_keyed_with_the_rsa_public_pem_is_refused(void **state)
{
    (void)state;
    /* the classic confusion: sign HS256 with the public key's PEM text as the secret */
    char *tok = mint_raw("HS256", rsa_pem, strlen(rsa_pem), NULL, "{\"alg\":\"HS256\"}", PAYLOAD);
    struct wd_jwt_verifier *v = verifier(pem_ks(rsa_pem), NULL);
    assert_int_equal(check(v, tok), WD_JWT_ALG_REFUSED);
    wd_jwt_verifier_free(v);
    /* the same through a JWKS */
    struct wd_buf b = {0};
    wd_buf_puts(&b, "{\"keys\":[");
    jwk(&b, rsa, NULL);
    wd_buf_puts(&b, "]}");
    v = verifier(jwks_of(b.s), NULL);
    wd_buf_free(&b);
    assert_int_equal(check(v, tok), WD_JWT_ALG_REFUSED);
    wd_jwt_verifier_free(v);
    free(tok);
    /* and a secret that is a PEM block is refused when configured */
    struct wd_jwt_keyset *ks = NULL;
    char err[200];
    assert_int_equal(
        wd_jwt_keyset_from_secret(rsa_pem, strlen(rsa_pem), false, &ks, err, sizeof(err)),
        WD_EINVAL);
    assert_null(ks);
    assert_non_null(strstr(err, "PEM"));
}

static void header_alg_outside_the_key_family_or_curve_is_refused(void **state)
{
    (void)state;
    struct wd_jwt_verifier *vh = verifier(hmac_ks(), NULL);
    struct wd_jwt_verifier *vr = verifier(pem_ks(rsa_pem), NULL);
    struct wd_jwt_verifier *ve = verifier(pem_ks(ec384_pem), NULL);
    assert_int_equal(check_free(vh, mint("RS256", NULL, PAYLOAD)), WD_JWT_ALG_REFUSED);
    assert_int_equal(check_free(vh, mint("ES256", NULL, PAYLOAD)), WD_JWT_ALG_REFUSED);
    assert_int_equal(check_free(vr, mint("ES256", NULL, PAYLOAD)), WD_JWT_ALG_REFUSED);
    assert_int_equal(check_free(vr, mint("HS512", NULL, PAYLOAD)), WD_JWT_ALG_REFUSED);
    /* ES256 and ES512 against a P-384 key: the curve pins ES384 */
    assert_int_equal(check_free(ve, mint("ES256", NULL, PAYLOAD)), WD_JWT_ALG_REFUSED);
    assert_int_equal(check_free(ve, mint("ES512", NULL, PAYLOAD)), WD_JWT_ALG_REFUSED);
    assert_int_equal(check_free(ve, mint("ES384", NULL, PAYLOAD)), WD_JWT_OK);
    /* algorithms EMQX 6 allows but warden does not, unknown names, lower case */
    char *t = mint_raw("RS256", NULL, 0, rsa, "{\"alg\":\"PS256\"}", PAYLOAD);
    assert_int_equal(check_free(vr, t), WD_JWT_ALG_REFUSED);
    t = mint_raw("RS256", NULL, 0, rsa, "{\"alg\":\"rs256\"}", PAYLOAD);
    assert_int_equal(check_free(vr, t), WD_JWT_ALG_REFUSED);
    /* a crit header names extensions nobody here understands */
    t = mint_raw("RS256", NULL, 0, rsa, "{\"alg\":\"RS256\",\"crit\":[\"exp\"]}", PAYLOAD);
    assert_int_equal(check_free(vr, t), WD_JWT_ALG_REFUSED);
    /* a JWK alg pins one algorithm of the family */
    struct wd_buf b = {0};
    wd_buf_puts(&b, "{\"keys\":[{\"kty\":\"oct\",\"alg\":\"HS384\",\"k\":\"");
    b64url(&b, (const unsigned char *)SECRET, strlen(SECRET));
    wd_buf_puts(&b, "\"}]}");
    struct wd_jwt_verifier *vp = verifier(jwks_of(b.s), NULL);
    wd_buf_free(&b);
    assert_int_equal(check_free(vp, mint("HS384", NULL, PAYLOAD)), WD_JWT_OK);
    assert_int_equal(check_free(vp, mint("HS256", NULL, PAYLOAD)), WD_JWT_ALG_REFUSED);
    wd_jwt_verifier_free(vp);
    wd_jwt_verifier_free(vh);
    wd_jwt_verifier_free(vr);
    wd_jwt_verifier_free(ve);
}

/* ---- malformed and oversized ---- */

static void malformed_tokens_are_refused_as_malformed(void **state)
{
    (void)state;
    struct wd_jwt_verifier *v = verifier(hmac_ks(), NULL);
    char *good = mint("HS256", NULL, PAYLOAD);
    assert_int_equal(check(v, good), WD_JWT_OK);
    static const char *const bad[] = {
        "",
        ".",
        "..",
        "abc",
        "abc.def",
        "a.b.c.d",
        "eyJhbGciOiJIUzI1NiJ9..c2ln",                 /* empty payload */
        ".eyJzdWIiOiJ4In0.c2ln",                      /* empty header */
        "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJ4In0",       /* two segments */
        "eyJhbGciOiJIUzI1NiJ9=.eyJzdWIiOiJ4In0.c2ln", /* padding */
        "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJ4In0+.c2ln", /* standard alphabet */
        "eyJhbGciOiJIUzI1NiJ9.e.c2ln",                /* impossible length */
        "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJ4In1.c2ln",  /* non-zero trailing bits */
        "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJ4In0.",      /* no signature */
        "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJ4In0.c2l*",  /* signature not base64url */
    };
    for (size_t i = 0; i < WD_ARRAY_LEN(bad); i++) {
        enum wd_jwt_status st = check(v, bad[i]);
        if (st != WD_JWT_MALFORMED)
            fail_msg("case %zu (%s): %s", i, bad[i], wd_jwt_status_str(st));
    }
    /* JSON that is not JSON, not an object, or has a duplicate key */
    static const char *const pls[] = {"{\"sub\":", "[1,2]", "\"x\"",
                                      "{\"exp\":1,\"exp\":1800000000}", "{} trailing"};
    for (size_t i = 0; i < WD_ARRAY_LEN(pls); i++) {
        char *t = mint_raw("HS256", SECRET, strlen(SECRET), NULL, "{\"alg\":\"HS256\"}", pls[i]);
        if (check(v, t) != WD_JWT_MALFORMED)
            fail_msg("payload %s accepted", pls[i]);
        free(t);
        t = mint_raw("HS256", SECRET, strlen(SECRET), NULL, pls[i], "{}");
        assert_int_equal(check_free(v, t), WD_JWT_MALFORMED);
    }
    char *t = mint_raw("HS256", SECRET, strlen(SECRET), NULL,
                       "{\"alg\":\"HS256\",\"alg\":\"none\"}", "{}");
    assert_int_equal(check_free(v, t), WD_JWT_MALFORMED);
    t = mint_raw("HS256", SECRET, strlen(SECRET), NULL, "{\"alg\":\"HS256\",\"kid\":7}", "{}");
    assert_int_equal(check_free(v, t), WD_JWT_MALFORMED);
    /* an embedded NUL: the length, not strlen, is the token */
    struct wd_jwt_result r;
    size_t gl = strlen(good);
    char *nul = wd_malloc(gl + 2);
    memcpy(nul, good, gl + 1);
    nul[5] = '\0';
    assert_int_equal(wd_jwt_verify(v, nul, gl, &client, NOW, &r), WD_EDECODE);
    assert_int_equal(r.status, WD_JWT_MALFORMED);
    free(nul);
    /* NULL token */
    assert_int_equal(wd_jwt_verify(v, NULL, 0, &client, NOW, &r), WD_EDECODE);
    free(good);
    wd_jwt_verifier_free(v);
}

static void token_over_the_size_limit_is_refused_before_parsing(void **state)
{
    (void)state;
    struct wd_jwt_config cfg = {.max_token_len = 200};
    struct wd_jwt_verifier *v = verifier(hmac_ks(), &cfg);
    struct wd_buf pl = {0};
    wd_buf_puts(&pl, "{\"pad\":\"");
    while (pl.len < 300)
        wd_buf_putc(&pl, 'x');
    wd_buf_puts(&pl, "\"}");
    char *tok = hs_with(pl.s);
    struct wd_jwt_result r;
    assert_int_equal(wd_jwt_verify(v, tok, strlen(tok), &client, NOW, &r), WD_ETOOBIG);
    assert_int_equal(r.status, WD_JWT_TOO_BIG);
    assert_string_equal(r.reason, "token too big");
    free(tok);
    wd_buf_free(&pl);
    /* exactly at the limit is parsed; one more byte is not, even as garbage */
    char big[202];
    memset(big, 'A', sizeof(big));
    assert_int_equal(wd_jwt_verify(v, big, 200, &client, NOW, &r), WD_EDECODE);
    assert_int_equal(wd_jwt_verify(v, big, 201, &client, NOW, &r), WD_ETOOBIG);
    wd_jwt_verifier_free(v);
    /* the default is 8 KiB */
    v = verifier(hmac_ks(), NULL);
    char *huge = wd_malloc(WD_JWT_TOKEN_MAX_DEFAULT + 1);
    memset(huge, 'A', WD_JWT_TOKEN_MAX_DEFAULT + 1);
    assert_int_equal(wd_jwt_verify(v, huge, WD_JWT_TOKEN_MAX_DEFAULT + 1, &client, NOW, &r),
                     WD_ETOOBIG);
    free(huge);
    wd_jwt_verifier_free(v);
}

/* ---- kid and JWKS rotation ---- */

static char *jwks_text(EVP_PKEY *pk, const char *kid)
{
    struct wd_buf b = {0};
    wd_buf_puts(&b, "{\"keys\":[");
    jwk(&b, pk, kid);
    wd_buf_puts(&b, "]}");
    return b.s;
}

static void token_naming_an_unknown_kid_is_refused(void **state)
{
    (void)state;
    char *j = jwks_text(rsa, "k1");
    struct wd_jwt_verifier *v = verifier(jwks_of(j), NULL);
    free(j);
    assert_int_equal(check_free(v, mint("RS256", "k1", PAYLOAD)), WD_JWT_OK);
    assert_int_equal(check_free(v, mint("RS256", "k2", PAYLOAD)), WD_JWT_UNKNOWN_KID);
    assert_int_equal(check_free(v, mint("RS256", "", PAYLOAD)), WD_JWT_UNKNOWN_KID);
    assert_int_equal(check_free(v, mint("RS256", NULL, PAYLOAD)), WD_JWT_OK);
    wd_jwt_verifier_free(v);
    /* a key configured without a kid (a PEM) accepts any kid */
    v = verifier(pem_ks(rsa_pem), NULL);
    assert_int_equal(check_free(v, mint("RS256", "whatever", PAYLOAD)), WD_JWT_OK);
    wd_jwt_verifier_free(v);
}

static void jwks_rotation_fails_old_tokens_and_passes_new_ones(void **state)
{
    (void)state;
    char *j1 = jwks_text(rsa, "2026-01"), *j2 = jwks_text(rsa2, "2026-02");
    struct wd_jwt_keyset *ks1 = jwks_of(j1), *ks2 = jwks_of(j2);
    free(j1);
    free(j2);
    struct wd_jwt_verifier *v = verifier(wd_jwt_keyset_get(ks1), NULL);
    char *old = mint("RS256", "2026-01", PAYLOAD);
    char *neu =
        mint_raw("RS256", NULL, 0, rsa2, "{\"alg\":\"RS256\",\"kid\":\"2026-02\"}", PAYLOAD);
    assert_int_equal(check(v, old), WD_JWT_OK);
    assert_int_equal(check(v, neu), WD_JWT_UNKNOWN_KID);
    assert_int_equal(wd_jwt_verifier_generation(v), 1);
    wd_jwt_verifier_set_keyset(v, ks2);
    assert_int_equal(wd_jwt_verifier_generation(v), 2);
    wd_jwt_keyset_release(ks2);
    assert_int_equal(check(v, old), WD_JWT_UNKNOWN_KID);
    assert_int_equal(check(v, neu), WD_JWT_OK);
    /* the old set is still usable by whoever holds it; releasing it frees it */
    assert_int_equal(wd_jwt_keyset_count(ks1), 1);
    wd_jwt_keyset_release(ks1);
    free(old);
    free(neu);
    wd_jwt_verifier_free(v);
}

static void jwks_skips_unusable_keys_and_refuses_a_set_with_none(void **state)
{
    (void)state;
    struct wd_buf b = {0};
    wd_buf_puts(&b, "{\"keys\":[{\"kty\":\"EC\",\"crv\":\"P-256\",\"x\":\"AAAA\",\"y\":\"AAAA\"},"
                    "{\"kty\":\"OKP\",\"crv\":\"Ed25519\",\"x\":\"AAAA\"},"
                    "{\"kty\":\"RSA\",\"use\":\"enc\",\"n\":\"AQAB\",\"e\":\"AQAB\"},"
                    "{\"kty\":\"RSA\",\"n\":\"AQAB\",\"e\":\"AQAB\"},");
    jwk(&b, rsa, "ok");
    wd_buf_puts(&b, "]}");
    struct wd_jwt_keyset *ks = NULL;
    char err[256];
    assert_int_equal(wd_jwt_keyset_from_jwks(b.s, b.len, &ks, err, sizeof(err)), WD_OK);
    assert_int_equal(wd_jwt_keyset_count(ks), 1);
    assert_non_null(strstr(err, "4 key(s) skipped"));
    wd_jwt_keyset_release(ks);
    wd_buf_free(&b);
    assert_int_equal(wd_jwt_keyset_from_jwks("{\"keys\":[]}", 11, &ks, err, sizeof(err)),
                     WD_ENOENT);
    assert_int_equal(wd_jwt_keyset_from_jwks("{\"keys\":{}}", 11, &ks, err, sizeof(err)),
                     WD_ESYNTAX);
    assert_int_equal(wd_jwt_keyset_from_jwks("not json", 8, &ks, err, sizeof(err)), WD_ESYNTAX);
    assert_null(ks);
    /* a point not on the curve */
    char *j = jwks_text(ec256, "e");
    char *x = strstr(j, "\"x\":\"") + 5;
    x[3] = x[3] == 'A' ? 'B' : 'A';
    assert_int_equal(wd_jwt_keyset_from_jwks(j, strlen(j), &ks, err, sizeof(err)), WD_ENOENT);
    free(j);
}

static void jwks_file_is_loaded_and_a_missing_file_is_an_error(void **state)
{
    (void)state;
    char path[] = "/tmp/wd_test_jwks_XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    char *j = jwks_text(ec384, "file");
    assert_int_equal(write(fd, j, strlen(j)), (ssize_t)strlen(j));
    close(fd);
    free(j);
    struct wd_jwt_keyset *ks = NULL;
    char err[256];
    assert_int_equal(wd_jwt_keyset_load_jwks_file(path, &ks, err, sizeof(err)), WD_OK);
    unlink(path);
    struct wd_jwt_verifier *v = verifier(ks, NULL);
    assert_int_equal(check_free(v, mint("ES384", "file", PAYLOAD)), WD_JWT_OK);
    wd_jwt_verifier_free(v);
    ks = NULL;
    assert_int_not_equal(wd_jwt_keyset_load_jwks_file(path, &ks, err, sizeof(err)), WD_OK);
    assert_null(ks);
}

static void key_configuration_errors_are_reported(void **state)
{
    (void)state;
    struct wd_jwt_keyset *ks = NULL;
    char err[200];
    assert_int_equal(wd_jwt_keyset_from_secret("", 0, false, &ks, err, sizeof(err)), WD_EINVAL);
    assert_int_equal(wd_jwt_keyset_from_secret("not base64!", 11, true, &ks, err, sizeof(err)),
                     WD_EINVAL);
    assert_int_equal(wd_jwt_keyset_from_pem("junk", 4, &ks, err, sizeof(err)), WD_EINVAL);
    EVP_PKEY *small = EVP_RSA_gen(1024);
    char *pem = pub_pem(small);
    assert_int_equal(wd_jwt_keyset_from_pem(pem, strlen(pem), &ks, err, sizeof(err)), WD_EINVAL);
    assert_non_null(strstr(err, "1024"));
    free(pem);
    EVP_PKEY_free(small);
    assert_null(ks);
    /* configuration the verifier refuses */
    struct wd_jwt_claim_check empty = {.name = "", .tmpl = "x"};
    struct wd_jwt_config cfg = {.verify_claims = &empty, .n_verify_claims = 1};
    struct wd_jwt_verifier *v = NULL;
    ks = hmac_ks();
    assert_int_equal(wd_jwt_verifier_new(&cfg, ks, &v, err, sizeof(err)), WD_EINVAL);
    struct wd_jwt_config neg = {.leeway = -1};
    assert_int_equal(wd_jwt_verifier_new(&neg, ks, &v, err, sizeof(err)), WD_EINVAL);
    assert_null(v);
    wd_jwt_keyset_release(ks);
}

/* ---- iss, aud, verify_claims ---- */

static void iss_and_aud_are_checked_when_configured(void **state)
{
    (void)state;
    struct wd_jwt_config cfg = {.iss = "https://idp", .aud = "mqtt"};
    struct wd_jwt_verifier *v = verifier(hmac_ks(), &cfg);
    assert_int_equal(check_free(v, hs_with("{\"iss\":\"https://idp\",\"aud\":\"mqtt\"}")),
                     WD_JWT_OK);
    assert_int_equal(check_free(v, hs_with("{\"iss\":\"https://idp\",\"aud\":[\"web\",\"mqtt\"]}")),
                     WD_JWT_OK);
    assert_int_equal(check_free(v, hs_with("{\"iss\":\"https://evil\",\"aud\":\"mqtt\"}")),
                     WD_JWT_BAD_ISS);
    assert_int_equal(check_free(v, hs_with("{\"aud\":\"mqtt\"}")), WD_JWT_BAD_ISS);
    assert_int_equal(check_free(v, hs_with("{\"iss\":\"https://idp\",\"aud\":\"web\"}")),
                     WD_JWT_BAD_AUD);
    assert_int_equal(check_free(v, hs_with("{\"iss\":\"https://idp\",\"aud\":[\"web\"]}")),
                     WD_JWT_BAD_AUD);
    assert_int_equal(check_free(v, hs_with("{\"iss\":\"https://idp\",\"aud\":[]}")),
                     WD_JWT_BAD_AUD);
    assert_int_equal(check_free(v, hs_with("{\"iss\":\"https://idp\"}")), WD_JWT_BAD_AUD);
    assert_int_equal(check_free(v, hs_with("{\"iss\":\"https://idp\",\"aud\":\"mqtt2\"}")),
                     WD_JWT_BAD_AUD);
    wd_jwt_verifier_free(v);
    /* not configured: any iss and aud */
    v = verifier(hmac_ks(), NULL);
    assert_int_equal(check_free(v, hs_with("{\"iss\":\"x\",\"aud\":7}")), WD_JWT_OK);
    wd_jwt_verifier_free(v);
}

static void verify_claims_render_clientid_and_username_and_compare_exactly(void **state)
{
    (void)state;
    struct wd_jwt_claim_check cc[] = {
        {.name = "clientid", .tmpl = "${clientid}"},
        {.name = "who", .tmpl = "${username}@${clientid}/${peerhost}"},
    };
    struct wd_jwt_config cfg = {.verify_claims = cc, .n_verify_claims = 2};
    struct wd_jwt_verifier *v = verifier(hmac_ks(), &cfg);
    assert_int_equal(
        check_free(v, hs_with("{\"clientid\":\"dev-1\",\"who\":\"alice@dev-1/${peerhost}\"}")),
        WD_JWT_OK);
    assert_int_equal(
        check_free(v, hs_with("{\"clientid\":\"dev-2\",\"who\":\"alice@dev-1/${peerhost}\"}")),
        WD_JWT_CLAIM_MISMATCH);
    assert_int_equal(check_free(v, hs_with("{\"clientid\":\"dev-1\"}")), WD_JWT_CLAIM_MISSING);
    assert_int_equal(
        check_free(v, hs_with("{\"clientid\":\"DEV-1\",\"who\":\"alice@dev-1/${peerhost}\"}")),
        WD_JWT_CLAIM_MISMATCH);
    wd_jwt_verifier_free(v);
    /* a number is not the string of its digits; an empty username renders as "" */
    struct wd_jwt_claim_check cn[] = {{.name = "id", .tmpl = "123"},
                                      {.name = "u", .tmpl = "${username}-${clientid}"}};
    struct wd_jwt_config cfg2 = {.verify_claims = cn, .n_verify_claims = 2};
    v = verifier(hmac_ks(), &cfg2);
    struct wd_client anon = client;
    anon.username = "";
    char *t = hs_with("{\"id\":\"123\",\"u\":\"-dev-1\"}");
    struct wd_jwt_result r;
    assert_int_equal(wd_jwt_verify(v, t, strlen(t), &anon, NOW, &r), WD_OK);
    wd_jwt_result_cleanup(&r);
    assert_int_equal(wd_jwt_verify(v, t, strlen(t), &client, NOW, &r), WD_EINVAL);
    assert_int_equal(r.status, WD_JWT_CLAIM_MISMATCH);
    free(t);
    t = hs_with("{\"id\":123,\"u\":\"-dev-1\"}");
    assert_int_equal(wd_jwt_verify(v, t, strlen(t), &anon, NOW, &r), WD_EINVAL);
    assert_int_equal(r.status, WD_JWT_CLAIM_MISMATCH);
    free(t);
    wd_jwt_verifier_free(v);
}

/* ---- result: claims and ACL ---- */

static void result_exposes_string_number_bool_and_dotted_claims(void **state)
{
    (void)state;
    struct wd_jwt_verifier *v = verifier(hmac_ks(), NULL);
    char *t = hs_with("{\"s\":\"str\",\"i\":42,\"f\":1.5,\"b\":true,\"n\":null,\"a\":[1],"
                      "\"o\":{\"dept\":\"ops\",\"deep\":{\"x\":1}},\"is_superuser\":\"1\","
                      "\"exp\":1700000600.9}");
    struct wd_jwt_result r;
    assert_int_equal(wd_jwt_verify(v, t, strlen(t), &client, NOW, &r), WD_OK);
    assert_string_equal(wd_jwt_result_claim(&r, "s"), "str");
    assert_string_equal(wd_jwt_result_claim(&r, "i"), "42");
    assert_string_equal(wd_jwt_result_claim(&r, "f"), "1.5");
    assert_string_equal(wd_jwt_result_claim(&r, "b"), "true");
    assert_null(wd_jwt_result_claim(&r, "n"));
    assert_null(wd_jwt_result_claim(&r, "a"));
    assert_null(wd_jwt_result_claim(&r, "o"));
    assert_null(wd_jwt_result_claim(&r, "missing"));
    assert_string_equal(wd_jwt_result_claim(&r, "o.dept"), "ops");
    assert_string_equal(wd_jwt_result_claim(&r, "o.deep.x"), "1");
    assert_true(r.is_superuser);
    assert_int_equal(r.exp, 1700000601); /* 1700000600.9: valid through second ...600 */
    wd_jwt_result_cleanup(&r);
    wd_jwt_result_cleanup(&r); /* idempotent */
    free(t);
    static const char *const su[][2] = {{"true", "1"},    {"\"true\"", "1"}, {"2", "1"},
                                        {"\"5\"", "1"},   {"\"TRUE\"", "0"}, {"0", "0"},
                                        {"\"yes\"", "0"}, {"false", "0"},    {"null", "0"}};
    for (size_t i = 0; i < WD_ARRAY_LEN(su); i++) {
        char pl[64];
        snprintf(pl, sizeof(pl), "{\"is_superuser\":%s}", su[i][0]);
        t = hs_with(pl);
        assert_int_equal(wd_jwt_verify(v, t, strlen(t), &client, NOW, &r), WD_OK);
        if (r.is_superuser != (su[i][1][0] == '1'))
            fail_msg("is_superuser %s", su[i][0]);
        wd_jwt_result_cleanup(&r);
        free(t);
    }
    wd_jwt_verifier_free(v);
}

static void assert_rule(const struct wd_acl_entry *r, bool allow, unsigned actions,
                        const char *topic, bool eq, unsigned qos, int retain)
{
    assert_int_equal(r->allow, allow);
    assert_int_equal(r->actions, actions);
    assert_string_equal(r->topic, topic);
    assert_int_equal(r->eq, eq);
    assert_int_equal(r->qos_mask, qos);
    assert_int_equal(r->retain, retain);
}

/* `warden test` reads a case's claims with wd_jwt_result_from_claims: for any payload it
 * must give what verifying a token with that payload gives (claims, is_superuser, exp, the
 * ACL and its skipped entries), or the offline tests would not test the daemon. */
static void claims_read_without_a_token_equal_a_verified_tokens(void **state)
{
    (void)state;
    struct wd_jwt_verifier *v = verifier(hmac_ks(), NULL);
    static const char *const payloads[] = {
        "{}",
        "{\"s\":\"str\",\"i\":42,\"f\":1.5,\"b\":true,\"n\":null,\"o\":{\"d\":{\"x\":1}}}",
        "{\"is_superuser\":\"1\",\"exp\":1700000600.9,\"tenant\":\"acme\"}",
        "{\"is_superuser\":\"yes\"}",
        "{\"acl\":{\"pub\":[\"a/#\",\"eq b\"],\"sub\":[\"c/+\"],\"all\":[\"d\"]}}",
        "{\"acl\":[{\"permission\":\"deny\",\"action\":\"all\",\"topics\":[\"x/#\",\"y\"]},"
        "{\"permission\":\"allow\",\"action\":\"pub\",\"qos\":[0,1],\"retain\":true,"
        "\"topic\":\"t/${clientid}\"}]}",
        "{\"acl\":[{\"permission\":\"allow\",\"action\":\"publish\",\"qos\":7,\"topic\":\"a\"}]}",
        "{\"acl\":\"all\"}",
        "{\"acl\":{\"pub\":[1],\"other\":[]}}",
    };
    for (size_t i = 0; i < WD_ARRAY_LEN(payloads); i++) {
        char *t = hs_with(payloads[i]);
        struct wd_jwt_result a, b;
        struct wd_jwt_json_error je;
        assert_int_equal(wd_jwt_verify(v, t, strlen(t), &client, NOW, &a), WD_OK);
        assert_int_equal(
            wd_jwt_result_from_claims(payloads[i], strlen(payloads[i]), "acl", &b, &je), WD_OK);
        assert_int_equal(a.status, b.status);
        assert_int_equal(a.is_superuser, b.is_superuser);
        assert_int_equal(a.exp, b.exp);
        assert_int_equal(wd_jwt_result_nclaims(&a), wd_jwt_result_nclaims(&b));
        for (size_t k = 0; k < wd_jwt_result_nclaims(&a); k++) {
            const char *an, *av, *bn, *bv;
            assert_true(wd_jwt_result_claim_at(&a, k, &an, &av));
            assert_true(wd_jwt_result_claim_at(&b, k, &bn, &bv));
            assert_string_equal(an, bn);
            assert_string_equal(av, bv);
        }
        assert_int_equal(a.acl_format, b.acl_format);
        assert_int_equal(a.n_acl, b.n_acl);
        assert_int_equal(a.n_acl_skipped, b.n_acl_skipped);
        assert_int_equal(a.n_acl_errors, b.n_acl_errors);
        for (size_t k = 0; k < a.n_acl; k++)
            assert_rule(&b.acl[k], a.acl[k].allow, a.acl[k].actions, a.acl[k].topic, a.acl[k].eq,
                        a.acl[k].qos_mask, a.acl[k].retain);
        for (size_t k = 0; k < a.n_acl_errors; k++)
            assert_string_equal(a.acl_errors[k], b.acl_errors[k]);
        wd_jwt_result_cleanup(&a);
        wd_jwt_result_cleanup(&b);
        free(t);
    }
    wd_jwt_verifier_free(v);

    /* not JSON, not an object, a duplicate key: WD_ESYNTAX with jansson's position */
    static const struct {
        const char *text;
        int line, col;
    } bad[] = {{"{\"a\": x}", 1, 7},
               {"{\"a\":1,\n \"b\": }", 2, 7},
               {"{\"a\":1,\"a\":2}", 1, 10},
               {"[1]", 1, 1},
               {"", 1, 1}};
    for (size_t i = 0; i < WD_ARRAY_LEN(bad); i++) {
        struct wd_jwt_result r;
        struct wd_jwt_json_error je;
        assert_int_equal(wd_jwt_result_from_claims(bad[i].text, strlen(bad[i].text), NULL, &r, &je),
                         WD_ESYNTAX);
        assert_true(je.text[0] != '\0');
        if (je.line != bad[i].line || je.column != bad[i].col)
            fail_msg("%s: at %d:%d, want %d:%d", bad[i].text, je.line, je.column, bad[i].line,
                     bad[i].col);
        assert_int_equal(wd_jwt_result_nclaims(&r), 0);
        wd_jwt_result_cleanup(&r);
    }
}

static void acl_object_form_becomes_allow_rules_in_pub_sub_all_order(void **state)
{
    (void)state;
    struct wd_jwt_verifier *v = verifier(hmac_ks(), NULL);
    char *t = hs_with("{\"acl\":{\"all\":[\"x/#\"],\"sub\":[\"s/${clientid}\",\"s/#\"],"
                      "\"pub\":[\"p/${username}\",\"eq p/#\",5,\"\",\"eq \"],"
                      "\"publish\":[\"y\"]}}");
    struct wd_jwt_result r;
    assert_int_equal(wd_jwt_verify(v, t, strlen(t), &client, NOW, &r), WD_OK);
    assert_int_equal(r.acl_format, WD_JWT_ACL_V1_OBJECT);
    assert_int_equal(r.n_acl, 5);
    assert_rule(&r.acl[0], true, WD_ACL_PUBLISH, "p/${username}", false, 7, -1);
    assert_rule(&r.acl[1], true, WD_ACL_PUBLISH, "p/#", true, 7, -1);
    assert_rule(&r.acl[2], true, WD_ACL_SUBSCRIBE, "s/${clientid}", false, 7, -1);
    assert_rule(&r.acl[3], true, WD_ACL_SUBSCRIBE, "s/#", false, 7, -1);
    assert_rule(&r.acl[4], true, WD_ACL_PUBLISH | WD_ACL_SUBSCRIBE, "x/#", false, 7, -1);
    assert_int_equal(r.n_acl_skipped, 4);
    assert_int_equal(r.n_acl_errors, 4);
    assert_string_equal(r.acl_errors[0], "acl.publish: unknown key (only pub, sub, all)");
    assert_string_equal(r.acl_errors[1], "acl.pub[2]: topic is not a string");
    wd_jwt_result_cleanup(&r);
    free(t);
    /* an empty object: format v1 with no rules (the policy denies everything) */
    t = hs_with("{\"acl\":{}}");
    assert_int_equal(wd_jwt_verify(v, t, strlen(t), &client, NOW, &r), WD_OK);
    assert_int_equal(r.acl_format, WD_JWT_ACL_V1_OBJECT);
    assert_int_equal(r.n_acl, 0);
    wd_jwt_result_cleanup(&r);
    free(t);
    wd_jwt_verifier_free(v);
}

static void acl_list_form_parses_rules_and_skips_invalid_entries(void **state)
{
    (void)state;
    struct wd_jwt_config cfg = {.acl_claim = "perms"};
    struct wd_jwt_verifier *v = verifier(hmac_ks(), &cfg);
    char *t = hs_with(
        "{\"acl\":\"ignored: not the configured claim\",\"perms\":["
        "{\"permission\":\"allow\",\"action\":\"publish\",\"topic\":\"t/${clientid}\"},"
        "{\"permission\":\"allow\",\"action\":\"subscribe\",\"topic\":\"eq t/1/#\",\"qos\":[1],"
        "\"retain\":\"true\"},"
        "{\"permission\":\"deny\",\"action\":\"pub\",\"topic\":\"t/2\",\"retain\":true,"
        "\"qos\":\"0,2\"},"
        "{\"permission\":\"deny\",\"action\":\"all\",\"topics\":[\"t/3\",\"t/4/#\"],\"qos\":2,"
        "\"retain\":\"0\"},"
        "{\"permission\":\"allow\",\"action\":\"sub\",\"topic\":\"q\",\"qos\":[\"0\",2]},"
        "{\"permission\":\"allow\",\"topic\":\"no-action\"},"
        "{\"permission\":\"allow\",\"action\":\"publish\"},"
        "{\"permission\":\"maybe\",\"action\":\"publish\",\"topic\":\"x\"},"
        "{\"permission\":\"allow\",\"action\":\"unsubscribe\",\"topic\":\"x\"},"
        "{\"permission\":\"allow\",\"action\":\"publish\",\"topic\":\"x\",\"qos\":3},"
        "{\"permission\":\"allow\",\"action\":\"publish\",\"topic\":\"x\",\"retain\":\"maybe\"},"
        "{\"permission\":\"allow\",\"action\":\"publish\",\"topics\":[\"ok\",7]},"
        "\"not an object\","
        "{\"permission\":\"allow\",\"action\":\"all\",\"topic\":\"last\",\"qos\":null,"
        "\"retain\":\"all\"}]}");
    struct wd_jwt_result r;
    assert_int_equal(wd_jwt_verify(v, t, strlen(t), &client, NOW, &r), WD_OK);
    assert_int_equal(r.acl_format, WD_JWT_ACL_V2_LIST);
    assert_int_equal(r.n_acl, 7);
    assert_rule(&r.acl[0], true, WD_ACL_PUBLISH, "t/${clientid}", false, 7, -1);
    assert_rule(&r.acl[1], true, WD_ACL_SUBSCRIBE, "t/1/#", true, 2, -1);
    assert_rule(&r.acl[2], false, WD_ACL_PUBLISH, "t/2", false, 5, 1);
    assert_rule(&r.acl[3], false, 3, "t/3", false, 4, 0);
    assert_rule(&r.acl[4], false, 3, "t/4/#", false, 4, 0);
    assert_rule(&r.acl[5], true, WD_ACL_SUBSCRIBE, "q", false, 5, -1);
    assert_rule(&r.acl[6], true, 3, "last", false, 7, -1);
    assert_int_equal(r.n_acl_skipped, 8);
    assert_int_equal(r.n_acl_errors, 8);
    assert_string_equal(r.acl_errors[0], "perms[5]: invalid rule (needs permission and action)");
    assert_string_equal(r.acl_errors[1], "perms[6]: missing topic or topics");
    assert_string_equal(r.acl_errors[2], "perms[7]: invalid permission");
    assert_string_equal(r.acl_errors[3], "perms[8]: invalid action");
    assert_string_equal(r.acl_errors[4], "perms[9]: invalid qos");
    assert_string_equal(r.acl_errors[5], "perms[10]: invalid retain");
    assert_string_equal(r.acl_errors[6], "perms[11]: topic is not a string");
    assert_string_equal(r.acl_errors[7], "perms[12]: not an object");
    wd_jwt_result_cleanup(&r);
    free(t);
    /* a claim of another type: invalid, no rules */
    t = hs_with("{\"perms\":\"publish\"}");
    assert_int_equal(wd_jwt_verify(v, t, strlen(t), &client, NOW, &r), WD_OK);
    assert_int_equal(r.acl_format, WD_JWT_ACL_INVALID);
    assert_int_equal(r.n_acl, 0);
    assert_int_equal(r.n_acl_errors, 1);
    wd_jwt_result_cleanup(&r);
    free(t);
    wd_jwt_verifier_free(v);
}

static void acl_rules_and_reasons_are_bounded(void **state)
{
    (void)state;
    struct wd_jwt_config cfg = {.max_token_len = 1 << 20};
    struct wd_jwt_verifier *v = verifier(hmac_ks(), &cfg);
    struct wd_buf pl = {0};
    wd_buf_puts(&pl, "{\"acl\":{\"pub\":[");
    for (int i = 0; i < WD_JWT_ACL_RULES_MAX + 10; i++)
        wd_buf_printf(&pl, "%s\"t/%d\"", i ? "," : "", i);
    wd_buf_puts(&pl, "],\"sub\":[");
    for (int i = 0; i < 100; i++)
        wd_buf_printf(&pl, "%s%d", i ? "," : "", i);
    wd_buf_puts(&pl, "]}}");
    char *t = hs_with(pl.s);
    wd_buf_free(&pl);
    struct wd_jwt_result r;
    assert_int_equal(wd_jwt_verify(v, t, strlen(t), &client, NOW, &r), WD_OK);
    assert_int_equal(r.n_acl, WD_JWT_ACL_RULES_MAX);
    assert_int_equal(r.n_acl_errors, 1);
    assert_non_null(strstr(r.acl_errors[0], "more than"));
    wd_jwt_result_cleanup(&r);
    free(t);
    /* many invalid entries: every one counted, WD_JWT_ACL_ERRORS_MAX reasons kept */
    wd_buf_puts(&pl, "{\"acl\":[");
    for (int i = 0; i < 100; i++)
        wd_buf_printf(&pl, "%s%d", i ? "," : "", i);
    wd_buf_puts(&pl, "]}");
    t = hs_with(pl.s);
    wd_buf_free(&pl);
    assert_int_equal(wd_jwt_verify(v, t, strlen(t), &client, NOW, &r), WD_OK);
    assert_int_equal(r.n_acl, 0);
    assert_int_equal(r.n_acl_skipped, 100);
    assert_int_equal(r.n_acl_errors, WD_JWT_ACL_ERRORS_MAX);
    wd_jwt_result_cleanup(&r);
    free(t);
    wd_jwt_verifier_free(v);
}

/* The Redis ACL and the JWT ACL used to parse EMQX rules with two copies of the code; these
 * are the places the JWT copy disagreed (with the Redis one, or with EMQX). */
static void acl_topic_limit_counts_after_the_eq_prefix_as_for_redis(void **state)
{
    (void)state;
    struct wd_jwt_config cfg = {.max_token_len = 1 << 20};
    struct wd_jwt_verifier *v = verifier(hmac_ks(), &cfg);
    struct wd_buf pl = {0};
    wd_buf_puts(&pl, "{\"acl\":{\"pub\":[\"eq ");
    for (int i = 0; i < 65535; i++)
        wd_buf_putc(&pl, 'a');
    wd_buf_puts(&pl, "\"]}}");
    char *t = hs_with(pl.s);
    wd_buf_free(&pl);
    struct wd_jwt_result r;
    assert_int_equal(wd_jwt_verify(v, t, strlen(t), &client, NOW, &r), WD_OK);
    assert_int_equal(r.n_acl_skipped, 0);
    assert_int_equal(r.n_acl, 1);
    assert_true(r.acl[0].eq);
    assert_int_equal(strlen(r.acl[0].topic), 65535);
    wd_jwt_result_cleanup(&r);
    free(t);
    wd_jwt_verifier_free(v);
}

static void acl_list_rule_with_topic_and_topics_uses_topic_as_emqx_does(void **state)
{
    (void)state;
    struct wd_jwt_verifier *v = verifier(hmac_ks(), NULL);
    char *t = hs_with("{\"acl\":[{\"permission\":\"allow\",\"action\":\"all\","
                      "\"topic\":\"own/1\",\"topics\":[\"#\"]}]}");
    struct wd_jwt_result r;
    assert_int_equal(wd_jwt_verify(v, t, strlen(t), &client, NOW, &r), WD_OK);
    assert_int_equal(r.n_acl_skipped, 0);
    assert_int_equal(r.n_acl, 1);
    assert_rule(&r.acl[0], true, WD_ACL_PUBLISH | WD_ACL_SUBSCRIBE, "own/1", false, 7, -1);
    wd_jwt_result_cleanup(&r);
    free(t);
    wd_jwt_verifier_free(v);
}

static void status_mapping_matches_emqx_outcomes(void **state)
{
    (void)state;
    assert_true(wd_jwt_status_emqx_ignores(WD_JWT_BAD_SIGNATURE));
    assert_true(wd_jwt_status_emqx_ignores(WD_JWT_MALFORMED));
    assert_false(wd_jwt_status_emqx_ignores(WD_JWT_EXPIRED));
    assert_false(wd_jwt_status_emqx_ignores(WD_JWT_CLAIM_MISMATCH));
    assert_false(wd_jwt_status_emqx_ignores(WD_JWT_OK));
    assert_false(wd_jwt_status_emqx_ignores(WD_JWT_NO_KEYS));
    assert_string_equal(wd_jwt_status_str(WD_JWT_BAD_SIGNATURE), "bad signature");
    assert_string_equal(wd_jwt_status_str((enum wd_jwt_status)99), "unknown jwt status");
}

/* A JWKS URL whose first fetch failed leaves the verifier without keys: a deny with its
 * own status (an outage, not the client's fault), until a set is installed. */
static void verifier_without_a_key_set_refuses_tokens_as_no_keys_until_one_is_set(void **state)
{
    (void)state;
    struct wd_jwt_verifier *v = verifier(NULL, NULL);
    assert_int_equal(wd_jwt_verifier_generation(v), 1);
    assert_int_equal(check_free(v, mint("RS256", "k1", PAYLOAD)), WD_JWT_NO_KEYS);
    assert_int_equal(check_free(v, mint("HS256", NULL, PAYLOAD)), WD_JWT_NO_KEYS);
    char *tok = mint("ES256", NULL, PAYLOAD);
    struct wd_jwt_result r;
    assert_int_equal(wd_jwt_verify(v, tok, strlen(tok), &client, NOW, &r), WD_EINVAL);
    assert_int_equal(r.status, WD_JWT_NO_KEYS);
    assert_string_equal(r.reason, "no key set loaded yet");
    wd_jwt_result_cleanup(&r);
    free(tok);
    /* what does not depend on keys still reads as what it is */
    assert_int_equal(check(v, "a.b"), WD_JWT_MALFORMED);
    assert_int_equal(check_free(v, mint_raw("none", NULL, 0, NULL, "{\"alg\":\"none\"}", PAYLOAD)),
                     WD_JWT_ALG_REFUSED);
    assert_false(wd_jwt_status_emqx_ignores(WD_JWT_NO_KEYS));
    /* NULL is not a set: ignored */
    wd_jwt_verifier_set_keyset(v, NULL);
    assert_int_equal(wd_jwt_verifier_generation(v), 1);
    assert_int_equal(check_free(v, mint("HS256", NULL, PAYLOAD)), WD_JWT_NO_KEYS);
    struct wd_jwt_keyset *ks = hmac_ks();
    wd_jwt_verifier_set_keyset(v, ks);
    wd_jwt_keyset_release(ks);
    assert_int_equal(wd_jwt_verifier_generation(v), 2);
    assert_int_equal(check_free(v, mint("HS256", NULL, PAYLOAD)), WD_JWT_OK);
    wd_jwt_verifier_free(v);
    /* a configuration is still required */
    char err[200];
    assert_int_equal(wd_jwt_verifier_new(NULL, NULL, &v, err, sizeof(err)), WD_EINVAL);
    assert_null(v);
}

/* ---- threads ---- */

struct tctx {
    const struct wd_jwt_verifier *v;
    const char *tok;
    int bad;
};

static void *worker(void *arg)
{
    struct tctx *t = arg;
    for (int i = 0; i < 300; i++) {
        struct wd_jwt_result r;
        if (wd_jwt_verify(t->v, t->tok, strlen(t->tok), &client, NOW, &r) != WD_OK)
            t->bad++;
        wd_jwt_result_cleanup(&r);
    }
    return NULL;
}

static void verifiers_are_shared_by_threads_while_the_key_set_is_swapped(void **state)
{
    (void)state;
    struct wd_buf b = {0};
    wd_buf_puts(&b, "{\"keys\":[");
    jwk(&b, ec256, "a");
    wd_buf_puts(&b, "]}");
    struct wd_jwt_keyset *ks1 = jwks_of(b.s);
    wd_buf_free(&b);
    struct wd_jwt_verifier *v = verifier(wd_jwt_keyset_get(ks1), NULL);
    char *tok = mint("ES256", "a", "{\"acl\":{\"pub\":[\"a\"]},\"x\":\"y\"}");
    struct tctx ctx[4];
    pthread_t th[4];
    for (int i = 0; i < 4; i++) {
        ctx[i] = (struct tctx){.v = v, .tok = tok};
        assert_int_equal(pthread_create(&th[i], NULL, worker, &ctx[i]), 0);
    }
    for (int i = 0; i < 200; i++) { /* equivalent sets, fresh objects each time */
        struct wd_buf j = {0};
        wd_buf_puts(&j, "{\"keys\":[");
        jwk(&j, ec256, "a");
        wd_buf_puts(&j, "]}");
        struct wd_jwt_keyset *ks = jwks_of(j.s);
        wd_buf_free(&j);
        wd_jwt_verifier_set_keyset(v, ks);
        wd_jwt_keyset_release(ks);
    }
    for (int i = 0; i < 4; i++) {
        pthread_join(th[i], NULL);
        assert_int_equal(ctx[i].bad, 0);
    }
    wd_jwt_keyset_release(ks1);
    free(tok);
    wd_jwt_verifier_free(v);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(hs256_hs384_hs512_tokens_verify_with_the_secret),
        cmocka_unit_test(claims_read_without_a_token_equal_a_verified_tokens),
        cmocka_unit_test(time_claims_that_are_not_numbers_fail_their_check_and_are_not_malformed),
        cmocka_unit_test(huge_and_negative_time_claims_saturate_and_never_overflow),
        cmocka_unit_test(fractional_exp_is_valid_until_the_next_whole_second),
        cmocka_unit_test(base64_encoded_secret_is_decoded_before_use),
        cmocka_unit_test(rs256_rs384_rs512_tokens_verify_with_the_public_key),
        cmocka_unit_test(es256_es384_es512_tokens_verify_with_the_matching_curve),
        cmocka_unit_test(every_algorithm_verifies_through_a_jwks),
        cmocka_unit_test(exp_equal_to_now_is_expired_and_one_second_later_is_valid),
        cmocka_unit_test(nbf_in_the_future_is_not_yet_valid),
        cmocka_unit_test(leeway_extends_exp_nbf_and_iat_by_exactly_its_seconds),
        cmocka_unit_test(iat_in_the_future_is_refused_unless_iat_checking_is_off),
        cmocka_unit_test(flipped_signature_or_payload_byte_is_a_bad_signature),
        cmocka_unit_test(alg_none_is_refused_signed_or_not),
        cmocka_unit_test(hs256_token_keyed_with_the_rsa_public_pem_is_refused),
        cmocka_unit_test(header_alg_outside_the_key_family_or_curve_is_refused),
        cmocka_unit_test(malformed_tokens_are_refused_as_malformed),
        cmocka_unit_test(token_over_the_size_limit_is_refused_before_parsing),
        cmocka_unit_test(token_naming_an_unknown_kid_is_refused),
        cmocka_unit_test(jwks_rotation_fails_old_tokens_and_passes_new_ones),
        cmocka_unit_test(jwks_skips_unusable_keys_and_refuses_a_set_with_none),
        cmocka_unit_test(jwks_file_is_loaded_and_a_missing_file_is_an_error),
        cmocka_unit_test(key_configuration_errors_are_reported),
        cmocka_unit_test(iss_and_aud_are_checked_when_configured),
        cmocka_unit_test(verify_claims_render_clientid_and_username_and_compare_exactly),
        cmocka_unit_test(result_exposes_string_number_bool_and_dotted_claims),
        cmocka_unit_test(acl_object_form_becomes_allow_rules_in_pub_sub_all_order),
        cmocka_unit_test(acl_list_form_parses_rules_and_skips_invalid_entries),
        cmocka_unit_test(acl_rules_and_reasons_are_bounded),
        cmocka_unit_test(acl_topic_limit_counts_after_the_eq_prefix_as_for_redis),
        cmocka_unit_test(acl_list_rule_with_topic_and_topics_uses_topic_as_emqx_does),
        cmocka_unit_test(status_mapping_matches_emqx_outcomes),
        cmocka_unit_test(verifier_without_a_key_set_refuses_tokens_as_no_keys_until_one_is_set),
        cmocka_unit_test(verifiers_are_shared_by_threads_while_the_key_set_is_swapped),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
