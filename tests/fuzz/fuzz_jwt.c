/* SPDX-License-Identifier: Apache-2.0 */
/*
 * fuzz_jwt: JWT verification (src/store/jwt.c): header, claims and the ACL claim, and the
 * JWKS parser.
 *
 * Input: the first byte chooses a mode, the rest is its text.
 *   0: a whole token, verified with a fixed HS256 secret (segments, base64url, the header's
 *      JSON and alg; a fuzzed signature almost never verifies, so this mostly reaches the
 *      header).
 *   1: "HEADER\nPAYLOAD": two JSON texts, signed here with the same secret (HMAC-SHA256,
 *      OpenSSL) into a token, so the verifier reaches the claims and the ACL claim
 *      (object and list forms, qos, retain, topics) with a valid signature.
 *   2: a JWK Set document (wd_jwt_keyset_from_jwks).
 * Invariants besides no crash and no leak: the status and the return code agree; on WD_OK
 * the ACL rules are well formed (actions within pub|sub, qos mask within 0..7, retain -1, 0
 * or 1, a topic string) and the error list is bounded; a JWK Set that loads has at least
 * one and at most WD_JWT_KEYS_MAX keys.
 */
#include <jansson.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <stdbool.h>

#include "core/base64.h"
#include "core/buf.h"
#include "core/log.h"
#include "core/request.h"
#include "core/wd.h"
#include "fuzz.h"
#include "store/jwt.h"

#define SECRET "correct horse battery staple, 32+"
#define NOW 1700000000LL

static struct wd_jwt_verifier *verifier;

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

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    wd_log_set_level(WD_LOG_ERROR);
    json_object_seed(1); /* jansson's hash order fixed: a fixed -seed replays the same run */
    struct wd_jwt_keyset *ks = NULL;
    if (wd_jwt_keyset_from_secret(SECRET, strlen(SECRET), false, &ks, NULL, 0) != WD_OK)
        abort();
    static const struct wd_jwt_claim_check checks[] = {{"clientid", "${clientid}"}};
    struct wd_jwt_config cfg = {
        .leeway = 5, .check_iat = true, .verify_claims = checks, .n_verify_claims = 0};
    char err[256];
    if (wd_jwt_verifier_new(&cfg, ks, &verifier, err, sizeof err) != WD_OK)
        abort();
    wd_jwt_keyset_release(ks);
    return 0;
}

static void verify(const char *tok, size_t len)
{
    struct wd_jwt_result r;
    int rc = wd_jwt_verify(verifier, tok, len, &client, NOW, &r);
    FUZZ_CHECK((rc == WD_OK) == (r.status == WD_JWT_OK), "rc %d status %d", rc, r.status);
    FUZZ_CHECK(r.reason != NULL, "no reason");
    if (rc == WD_OK) {
        FUZZ_CHECK(r.n_acl <= WD_JWT_ACL_RULES_MAX, "%zu rules", r.n_acl);
        FUZZ_CHECK(r.n_acl_errors <= WD_JWT_ACL_ERRORS_MAX, "%zu errors", r.n_acl_errors);
        FUZZ_CHECK(r.exp >= 0 && r.exp <= WD_JWT_EXP_MAX, "exp %lld", (long long)r.exp);
        for (size_t i = 0; i < r.n_acl; i++) {
            const struct wd_acl_entry *a = &r.acl[i];
            FUZZ_CHECK(a->actions && !(a->actions & ~(WD_ACL_PUBLISH | WD_ACL_SUBSCRIBE)),
                       "rule %zu actions %u", i, a->actions);
            FUZZ_CHECK(a->qos_mask && a->qos_mask <= 7, "rule %zu qos %u", i, a->qos_mask);
            FUZZ_CHECK(a->retain >= -1 && a->retain <= 1, "rule %zu retain %d", i, a->retain);
            FUZZ_CHECK(a->topic != NULL, "rule %zu without topic", i);
        }
        for (size_t i = 0; i < r.n_acl_errors; i++)
            FUZZ_CHECK(r.acl_errors[i] != NULL, "error %zu", i);
        (void)wd_jwt_result_claim(&r, "sub");
        (void)wd_jwt_result_claim(&r, "a.b");
    }
    wd_jwt_result_cleanup(&r);
    wd_jwt_result_cleanup(&r); /* idempotent */
}

static void sign_and_verify(const char *text, size_t len)
{
    const char *nl = memchr(text, '\n', len);
    const char *hdr = "{\"alg\":\"HS256\",\"typ\":\"JWT\"}";
    size_t hlen = strlen(hdr);
    const char *pl = text;
    size_t plen = len;
    if (nl) {
        hdr = text;
        hlen = (size_t)(nl - text);
        pl = nl + 1;
        plen = len - hlen - 1;
    }
    struct wd_buf b = {0};
    wd_base64_encode(&b, (const unsigned char *)hdr, hlen, WD_BASE64_URL);
    wd_buf_putc(&b, '.');
    wd_base64_encode(&b, (const unsigned char *)pl, plen, WD_BASE64_URL);
    unsigned char sig[EVP_MAX_MD_SIZE];
    unsigned int sl = 0;
    if (!HMAC(EVP_sha256(), SECRET, (int)strlen(SECRET), (const unsigned char *)b.s, b.len, sig,
              &sl))
        abort();
    wd_buf_putc(&b, '.');
    wd_base64_encode(&b, sig, sl, WD_BASE64_URL);
    verify(b.s, b.len);
    wd_buf_free(&b);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1 || size > 64 * 1024)
        return 0;
    const char *text = (const char *)data + 1;
    size_t len = size - 1;
    switch (data[0] % 3) {
    case 0:
        verify(text, len);
        break;
    case 1:
        sign_and_verify(text, len);
        break;
    default: {
        struct wd_jwt_keyset *ks = NULL;
        char err[256];
        if (wd_jwt_keyset_from_jwks(text, len, &ks, err, sizeof err) == WD_OK) {
            size_t n = wd_jwt_keyset_count(ks);
            FUZZ_CHECK(n >= 1 && n <= WD_JWT_KEYS_MAX, "%zu keys", n);
            wd_jwt_keyset_release(ks);
        } else {
            FUZZ_CHECK(ks == NULL, "a key set after an error");
        }
    }
    }
    return 0;
}
