/* SPDX-License-Identifier: Apache-2.0 */
/*
 * jwt.h: JWT verification for EMQX-style JWT authentication (emqx-auth-formats.md section
 * 3), the only user of libjwt. A token is checked in this order, stopping at the first
 * failure (docs/internals/jwt.md has the long form):
 *
 *   1. size (max_token_len, default 8 KiB) before anything is read;
 *   2. shape: exactly three base64url segments (strict alphabet, no padding), a JSON object
 *      header and payload (duplicate keys refused); the signature segment must be present
 *      and valid base64url, checked after `alg` so an unsigned `none` token reads "refused";
 *   3. header: `alg` must be one the key set can verify. The algorithm family is PINNED BY
 *      THE KEY: an HMAC key verifies only HS256/384/512, an RSA key only RS256/384/512, an
 *      EC key only the ES algorithm of its curve (P-256 ES256, P-384 ES384, P-521 ES512).
 *      `alg: none`, unknown algorithms, `crit`, and algorithm confusion (an HS token against
 *      an RSA key) are refused here, before libjwt sees the token;
 *   4. key choice by `kid` (no key set at all: NO_KEYS): a key with a kid matches only that
 *      kid; a key without one (a single PEM or secret) matches any. A token kid that no
 *      key matches is "unknown kid". A token without a kid is tried against every
 *      compatible key in order (as EMQX does);
 *   5. signature: HMAC first recomputed here and compared with CRYPTO_memcmp, then every
 *      family by libjwt's jwt_decode with the chosen key (its parsed alg cross-checked);
 *   6. claims: exp (now < exp + leeway; leeway 0 is EMQX's strict `<`), nbf (nbf <= now +
 *      leeway), iat (refused if > now + leeway: EMQX does not check iat). Each is a JSON
 *      number or a decimal string (EMQX converts those); any other value (null, "tomorrow",
 *      true, "inf", an object) cannot be checked and fails that claim's check (EXPIRED,
 *      NOT_YET_VALID, IAT_FUTURE), a deny EMQX gives too, never MALFORMED (which a
 *      configuration may pass on). Huge values are compared as doubles: no overflow. iss
 *      and aud if configured (aud may be a string or an array), then verify_claims (rendered
 *      templates, exact string equality, a missing claim fails);
 *   7. the ACL claim, parsed in both EMQX formats (each rule by the shared EMQX rule parser,
 *      emqx_acl.h). Invalid entries are skipped and listed
 *      (EMQX fails the whole authentication on an invalid v2 entry; warden keeps the valid
 *      rules, and the lead decides what a non-empty error list means).
 *
 * Mapping to EMQX's outcomes (section 3.4): EMQX answers `ignore` for a malformed token or
 * a bad signature and `bad_username_or_password` for failed claims. warden FAILS CLOSED:
 * every non-OK status is a deny. wd_jwt_status_emqx_ignores() says which statuses EMQX
 * would have ignored, for a configuration switch that wants EMQX's behaviour.
 *
 * Thread safety: a verifier is immutable after construction except for its key-set slot,
 * which wd_jwt_verifier_set_keyset() swaps under a mutex (for JWKS refresh). Any number of
 * threads may call wd_jwt_verify() on one verifier; each call pins the key set it started
 * with (a reference), so a swap never frees keys under a running verification. Key sets
 * are immutable and refcounted.
 *
 * Secrets (HMAC keys) are wiped with OPENSSL_cleanse when a key set is freed and never
 * appear in error text.
 */
#ifndef WD_JWT_H
#define WD_JWT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/request.h"
#include "store/emqx_acl.h"

#define WD_JWT_TOKEN_MAX_DEFAULT 8192 /* bytes; max_token_len = 0 means this */
#define WD_JWT_KEYS_MAX 64            /* keys kept from one JWKS document */
#define WD_JWT_JWKS_MAX (256 * 1024)  /* bytes of JWKS text */
#define WD_JWT_ACL_RULES_MAX 1024     /* ACL rules kept from one token */
#define WD_JWT_ACL_ERRORS_MAX 32      /* reasons kept for skipped ACL entries */
#define WD_JWT_CLAIMS_MAX 256         /* flattened claims kept (wd_jwt_result_claim) */
#define WD_JWT_CLAIM_DEPTH_MAX 4      /* nesting of dotted claim names */
#define WD_JWT_RSA_BITS_MIN 2048      /* smaller RSA keys are refused at load */
/* Bounds of wd_jwt_result.exp when the token has an exp: 9999-12-31T23:59:59Z at most, so
 * a caller can add a leeway and convert to milliseconds without overflow. */
#define WD_JWT_EXP_MAX INT64_C(253402300799)

/* ---- key sets: immutable, refcounted ---- */

struct wd_jwt_keyset;

/* An HMAC secret (`secret`, `len` bytes; decoded from standard base64 first when `base64`).
 * Refused: empty, invalid base64, or text that looks like a PEM block (a public key
 * configured as an HMAC secret is the algorithm-confusion mistake). */
int wd_jwt_keyset_from_secret(const char *secret, size_t len, bool base64,
                              struct wd_jwt_keyset **out, char *err, size_t errcap);

/* One PEM public key ("-----BEGIN PUBLIC KEY-----", RSA >= 2048 bits or EC P-256/384/521). */
int wd_jwt_keyset_from_pem(const char *pem, size_t len, struct wd_jwt_keyset **out, char *err,
                           size_t errcap);

/* A JWK Set ({"keys":[...]}): kty RSA (n, e), EC (crv, x, y) and oct (k). Keys with `use`
 * other than "sig", an unknown kty/crv, or invalid parameters are skipped (named in err as
 * a warning when the set still has usable keys); a JWK `alg` pins that key further.
 * Returns WD_OK with at least one key; WD_ESYNTAX (not JSON / no keys array), WD_ENOENT
 * (no usable key), WD_ETOOBIG (over WD_JWT_JWKS_MAX). */
int wd_jwt_keyset_from_jwks(const char *json, size_t len, struct wd_jwt_keyset **out, char *err,
                            size_t errcap);

/* Reads a JWKS file (at most WD_JWT_JWKS_MAX bytes) then as wd_jwt_keyset_from_jwks. */
int wd_jwt_keyset_load_jwks_file(const char *path, struct wd_jwt_keyset **out, char *err,
                                 size_t errcap);

size_t wd_jwt_keyset_count(const struct wd_jwt_keyset *ks);
struct wd_jwt_keyset *wd_jwt_keyset_get(struct wd_jwt_keyset *ks); /* +1 ref; NULL-safe */
void wd_jwt_keyset_release(struct wd_jwt_keyset *ks);              /* -1 ref; NULL-safe */

/* ---- the verifier ---- */

/* A `verify_claims` entry: the claim `name` must be a JSON string exactly equal to `tmpl`
 * with ${clientid} and ${username} rendered from the client (other text is literal). */
struct wd_jwt_claim_check {
    const char *name;
    const char *tmpl;
};

/* Configuration; everything is copied by wd_jwt_verifier_new (borrowed for the call). */
struct wd_jwt_config {
    int64_t leeway;  /* seconds, >= 0, for exp / nbf / iat */
    bool check_iat;  /* refuse iat > now + leeway (EMQX never checks iat) */
    const char *iss; /* NULL: not checked */
    const char *aud; /* NULL: not checked; the token's aud: a string or an array */
    const struct wd_jwt_claim_check *verify_claims;
    size_t n_verify_claims;
    size_t max_token_len;  /* 0: WD_JWT_TOKEN_MAX_DEFAULT */
    const char *acl_claim; /* NULL: "acl" */
};

struct wd_jwt_verifier;

/* Builds a verifier using `ks` (a reference is taken; the caller keeps its own). `ks` may be
 * NULL (a JWKS URL whose first fetch failed): every well-formed token then fails with
 * WD_JWT_NO_KEYS until wd_jwt_verifier_set_keyset() installs a set. Returns WD_OK, or
 * WD_EINVAL with the reason in err (no configuration, negative leeway, empty claim name...). */
int wd_jwt_verifier_new(const struct wd_jwt_config *cfg, struct wd_jwt_keyset *ks,
                        struct wd_jwt_verifier **out, char *err, size_t errcap);
void wd_jwt_verifier_free(struct wd_jwt_verifier *v); /* NULL-safe; no verify may be running */

/* Swaps in a new key set (JWKS refresh): takes a reference to `ks` and releases the old set
 * once no running verification holds it. Verifications that already started finish with
 * the old set. A NULL `ks` is ignored (a slot, once filled, is never emptied). */
void wd_jwt_verifier_set_keyset(const struct wd_jwt_verifier *v, struct wd_jwt_keyset *ks);

/* The key-set generation: 1 at construction, +1 per wd_jwt_verifier_set_keyset. Part of the
 * cache key for verified claims (docs/cache.md), so a rotation invalidates cached verdicts.
 * A verification that races a swap may have used the previous set: read the generation
 * BEFORE verifying and cache under that value. */
uint64_t wd_jwt_verifier_generation(const struct wd_jwt_verifier *v);
/* Whether the verifier has a key set (false until a JWKS URL was first fetched). */
bool wd_jwt_verifier_has_keys(const struct wd_jwt_verifier *v);

/* ---- results ---- */

enum wd_jwt_status {
    WD_JWT_OK = 0,
    WD_JWT_TOO_BIG,        /* over max_token_len: nothing was parsed */
    WD_JWT_MALFORMED,      /* segments, base64url, JSON (an integer beyond 64 bits too) */
    WD_JWT_ALG_REFUSED,    /* none, unknown, or not the key's family/curve; crit header */
    WD_JWT_UNKNOWN_KID,    /* the token's kid names no key */
    WD_JWT_BAD_SIGNATURE,  /* no candidate key verifies it */
    WD_JWT_EXPIRED,        /* now >= exp + leeway, or exp not a number */
    WD_JWT_NOT_YET_VALID,  /* nbf > now + leeway, or nbf not a number */
    WD_JWT_IAT_FUTURE,     /* iat > now + leeway, or iat not a number (check_iat) */
    WD_JWT_BAD_ISS,        /* iss configured: absent or different */
    WD_JWT_BAD_AUD,        /* aud configured: absent, or not equal / not in the array */
    WD_JWT_CLAIM_MISSING,  /* a verify_claims claim is absent */
    WD_JWT_CLAIM_MISMATCH, /* a verify_claims claim differs (or is not a string) */
    WD_JWT_NO_KEYS,        /* the verifier has no key set yet (JWKS URL not fetched): a well-
                              formed token is refused before key choice; a malformed one
                              still reads MALFORMED / ALG_REFUSED */
};

/* Static text for a status ("bad signature", ...); never NULL. */
const char *wd_jwt_status_str(enum wd_jwt_status s);
/* True for the statuses EMQX 5.8 answers with `ignore` (malformed token, refused algorithm,
 * unknown key, bad signature, too big); false for claim failures, which EMQX answers with
 * bad_username_or_password. warden denies both by default. False for WD_JWT_NO_KEYS too
 * (EMQX, whose empty key set reads as a bad signature, would ignore): an IdP outage is
 * never passed on to the next authenticator, it denies. */
bool wd_jwt_status_emqx_ignores(enum wd_jwt_status s);

enum wd_jwt_acl_format {
    WD_JWT_ACL_ABSENT = 0, /* no ACL claim: the JWT source does not decide (EMQX ignore) */
    WD_JWT_ACL_V1_OBJECT,  /* {"pub":[..],"sub":[..],"all":[..]}: allow rules, and a request
                              matching none of them is DENIED, evaluation stops (spec 6.6) */
    WD_JWT_ACL_V2_LIST,    /* [{permission, action, topic(s), qos, retain}]: first match
                              wins, no match falls through to the next source */
    WD_JWT_ACL_INVALID,    /* the claim is neither an object nor an array: deny all */
};

/* One rule: struct wd_acl_entry (emqx_acl.h), the rule type shared with the Redis ACL.
 * Topics are stored as written: placeholders (${clientid}, ...) are rendered by the policy
 * at match time; `eq` rules are literal and never rendered. v1 rules allow any QoS and
 * retain. */

struct wd_jwt_claim_kv; /* internal */

/* Filled by wd_jwt_verify. On WD_OK it owns memory: release with wd_jwt_result_cleanup.
 * On failure only status/reason are meaningful and cleanup is a harmless no-op. */
struct wd_jwt_result {
    enum wd_jwt_status status;
    const char *reason; /* static; wd_jwt_status_str(status) */

    int64_t exp;       /* 0 if absent; else the first whole second at which the token is
                          expired without leeway: ceil(exp) (a fractional exp 100.5 is valid
                          at now = 100, expired at 101), clamped to 1..WD_JWT_EXP_MAX */
    bool is_superuser; /* claim is_superuser with EMQX's to_bool; false if absent */

    enum wd_jwt_acl_format acl_format;
    struct wd_acl_entry *acl;
    size_t n_acl;
    char **acl_errors; /* "acl[3]: invalid qos", at most WD_JWT_ACL_ERRORS_MAX */
    size_t n_acl_errors;
    size_t n_acl_skipped; /* entries skipped, including those beyond the error cap */

    struct wd_jwt_claim_kv *claims_; /* internal: flattened claims */
    size_t n_claims_;
};

/* Verifies `token` (`len` bytes, need not be NUL-terminated) for client `c` (used for
 * verify_claims templates) at `now` (Unix seconds). `out` is always set. Returns WD_OK, or:
 * WD_ETOOBIG (TOO_BIG), WD_EDECODE (MALFORMED), WD_EINVAL (every other status); the status
 * and reason are in out. */
int wd_jwt_verify(const struct wd_jwt_verifier *v, const char *token, size_t len,
                  const struct wd_client *c, int64_t now, struct wd_jwt_result *out);

/* A claim as text: strings as they are, integers in decimal, reals with %.17g, booleans as
 * "true"/"false"; nested objects by dotted name ("a.b"). NULL for absent, null, arrays and
 * objects. Valid until wd_jwt_result_cleanup. */
const char *wd_jwt_result_claim(const struct wd_jwt_result *r, const char *name);

/* The flattened claims one by one (i < wd_jwt_result_nclaims), for a session stored in
 * Redis (store/session_rec.h). true with *name and *value (valid until cleanup). */
size_t wd_jwt_result_nclaims(const struct wd_jwt_result *r);
bool wd_jwt_result_claim_at(const struct wd_jwt_result *r, size_t i, const char **name,
                            const char **value);
/* Adds a claim (both copied) to a result built outside wd_jwt_verify (a session read back
 * from Redis). WD_OK; WD_ETOOBIG beyond WD_JWT_CLAIMS_MAX. */
int wd_jwt_result_add_claim(struct wd_jwt_result *r, const char *name, const char *value);

void wd_jwt_result_cleanup(struct wd_jwt_result *r); /* NULL-safe, idempotent */

/* Where a JSON text is not what was wanted: jansson's message and 1-based position. */
struct wd_jwt_json_error {
    char text[160];
    int line, column;
};

/* The result a token with this payload would give once verified, with no token, key or
 * check: `json` (len bytes) is the payload, a JSON object (duplicate keys refused); claims,
 * is_superuser, exp and the ACL claim `acl_claim` (NULL: "acl") are read exactly as
 * wd_jwt_verify reads them. For `warden test` and `warden explain`, which describe a client
 * that authenticated with such a token. Returns WD_OK (release with wd_jwt_result_cleanup),
 * or WD_ESYNTAX with *err set (not JSON, or not an object). */
int wd_jwt_result_from_claims(const char *json, size_t len, const char *acl_claim,
                              struct wd_jwt_result *out, struct wd_jwt_json_error *err);

#endif
