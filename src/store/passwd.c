/* SPDX-License-Identifier: Apache-2.0 */
/*
 * passwd.c: parsing of policy secrets and verification of passwords (see passwd.h for the
 * formats, EMQX's semantics and the limits). Digests and PBKDF2 come from OpenSSL, bcrypt
 * from libxcrypt's reentrant crypt_rn, argon2id from libargon2's argon2_ctx run with one
 * thread. Hex results are compared as hex text against the stored text case-folded, which
 * is exactly EMQX's "lowercase both sides, compare" and needs no separate hex decoder for
 * the stored side: a stored non-hex character simply differs. Every limit is checked while
 * parsing, before any hashing, so an absurd cost is refused in microseconds.
 */
#include "store/passwd.h"

#include "core/base64.h"

#include <argon2.h>
#include <crypt.h>
#include <limits.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/wd.h"
#include "store/passwd_int.h"

/* ---- tables ---- */

struct digest_algo {
    enum wd_passwd_algo algo;
    const char *name; /* policy scheme name */
    const EVP_MD *(*md)(void);
};

static const struct digest_algo digest_algos[] = {
    {WD_PASSWD_MD5, "md5", EVP_md5},
    {WD_PASSWD_SHA1, "sha1", EVP_sha1},
    {WD_PASSWD_SHA256, "sha256", EVP_sha256},
    {WD_PASSWD_SHA512, "sha512", EVP_sha512},
};

struct mac_algo {
    enum wd_passwd_mac mac;
    const char *name;
    const char *emqx_name;
    const EVP_MD *(*md)(void);
};

static const struct mac_algo mac_algos[] = {
    {WD_PASSWD_MAC_SHA1, "sha1", "sha", EVP_sha1},
    {WD_PASSWD_MAC_SHA224, "sha224", "sha224", EVP_sha224},
    {WD_PASSWD_MAC_SHA256, "sha256", "sha256", EVP_sha256},
    {WD_PASSWD_MAC_SHA384, "sha384", "sha384", EVP_sha384},
    {WD_PASSWD_MAC_SHA512, "sha512", "sha512", EVP_sha512},
};

const EVP_MD *wd_passwd__algo_md(enum wd_passwd_algo a)
{
    for (size_t i = 0; i < WD_ARRAY_LEN(digest_algos); i++)
        if (digest_algos[i].algo == a)
            return digest_algos[i].md();
    return NULL;
}

const EVP_MD *wd_passwd__mac_md(enum wd_passwd_mac m)
{
    for (size_t i = 0; i < WD_ARRAY_LEN(mac_algos); i++)
        if (mac_algos[i].mac == m)
            return mac_algos[i].md();
    return NULL;
}

const char *wd_passwd__mac_name(enum wd_passwd_mac m)
{
    for (size_t i = 0; i < WD_ARRAY_LEN(mac_algos); i++)
        if (mac_algos[i].mac == m)
            return mac_algos[i].name;
    return NULL;
}

void wd_passwd__hex(const unsigned char *in, size_t n, char *out)
{
    static const char digits[] = "0123456789abcdef";
    for (size_t i = 0; i < n; i++) {
        out[2 * i] = digits[in[i] >> 4];
        out[2 * i + 1] = digits[in[i] & 15];
    }
}

int wd_passwd__pbkdf2_check(enum wd_passwd_mac mac, unsigned long iterations, size_t dk_length,
                            size_t *dk)
{
    const EVP_MD *md = wd_passwd__mac_md(mac);
    if (!md || iterations == 0)
        return WD_EINVAL;
    size_t hlen = (size_t)EVP_MD_get_size(md);
    *dk = dk_length ? dk_length : hlen;
    if (*dk > WD_PASSWD_PBKDF2_DK_MAX)
        return WD_ERANGE;
    unsigned long blocks = (unsigned long)((*dk + hlen - 1) / hlen);
    if (iterations > WD_PASSWD_PBKDF2_WORK_MAX / blocks)
        return WD_ERANGE;
    return WD_OK;
}

int wd_passwd__argon2_check(uint64_t m, uint64_t t, uint64_t p)
{
    if (t == 0 || p == 0)
        return WD_EINVAL;
    if (m > WD_PASSWD_ARGON2_M_MAX || t > WD_PASSWD_ARGON2_T_MAX || p > WD_PASSWD_ARGON2_P_MAX ||
        m * t > WD_PASSWD_ARGON2_WORK_MAX)
        return WD_ERANGE;
    if (m < 8 * p) /* argon2's own minimum: two blocks per slice per lane */
        return WD_EINVAL;
    return WD_OK;
}

int wd_passwd_algo_from_name(const char *name, enum wd_passwd_algo *out)
{
    static const struct {
        const char *name;
        enum wd_passwd_algo algo;
    } names[] = {
        {"plain", WD_PASSWD_PLAIN},       {"md5", WD_PASSWD_MD5},
        {"sha", WD_PASSWD_SHA1},          {"sha1", WD_PASSWD_SHA1},
        {"sha256", WD_PASSWD_SHA256},     {"sha512", WD_PASSWD_SHA512},
        {"bcrypt", WD_PASSWD_BCRYPT},     {"pbkdf2", WD_PASSWD_PBKDF2},
        {"argon2id", WD_PASSWD_ARGON2ID},
    };
    for (size_t i = 0; name && i < WD_ARRAY_LEN(names); i++) {
        if (strcmp(name, names[i].name) == 0) {
            *out = names[i].algo;
            return WD_OK;
        }
    }
    return WD_EINVAL;
}

int wd_passwd_mac_from_name(const char *name, enum wd_passwd_mac *out)
{
    for (size_t i = 0; name && i < WD_ARRAY_LEN(mac_algos); i++) {
        if (strcmp(name, mac_algos[i].name) == 0 || strcmp(name, mac_algos[i].emqx_name) == 0) {
            *out = mac_algos[i].mac;
            return WD_OK;
        }
    }
    return WD_EINVAL;
}

int wd_passwd_salt_pos_from_name(const char *name, enum wd_passwd_salt_pos *out)
{
    if (!name)
        return WD_EINVAL;
    if (strcmp(name, "prefix") == 0)
        *out = WD_PASSWD_SALT_PREFIX;
    else if (strcmp(name, "suffix") == 0)
        *out = WD_PASSWD_SALT_SUFFIX;
    else if (strcmp(name, "disable") == 0)
        *out = WD_PASSWD_SALT_DISABLE;
    else
        return WD_EINVAL;
    return WD_OK;
}

const char *wd_passwd_algo_str(enum wd_passwd_algo a)
{
    switch (a) {
    case WD_PASSWD_PLAIN:
        return "plain";
    case WD_PASSWD_MD5:
        return "md5";
    case WD_PASSWD_SHA1:
        return "sha1";
    case WD_PASSWD_SHA256:
        return "sha256";
    case WD_PASSWD_SHA512:
        return "sha512";
    case WD_PASSWD_BCRYPT:
        return "bcrypt";
    case WD_PASSWD_PBKDF2:
        return "pbkdf2";
    case WD_PASSWD_ARGON2ID:
        return "argon2id";
    }
    return "?";
}

/* ---- digests ---- */

static unsigned char fold_ascii(unsigned char c)
{
    return c >= 'A' && c <= 'Z' ? (unsigned char)(c - 'A' + 'a') : c;
}

/* Feeds p[0..n) to ctx, ASCII-lowercased when fold, through a small wiped buffer. */
static void md_feed(EVP_MD_CTX *ctx, const char *p, size_t n, bool fold)
{
    if (!fold) {
        if (n && EVP_DigestUpdate(ctx, p, n) != 1)
            goto fail;
        return;
    }
    unsigned char buf[256];
    while (n) {
        size_t k = n < sizeof buf ? n : sizeof buf;
        for (size_t i = 0; i < k; i++)
            buf[i] = fold_ascii((unsigned char)p[i]);
        if (EVP_DigestUpdate(ctx, buf, k) != 1)
            goto fail;
        p += k;
        n -= k;
    }
    OPENSSL_cleanse(buf, sizeof buf);
    return;
fail:
    fprintf(stderr, "warden: OpenSSL digest failure, aborting\n");
    abort();
}

/* out = md(a || b), each part folded when fold; returns the digest length */
static size_t digest2(const EVP_MD *md, const char *a, size_t alen, const char *b, size_t blen,
                      bool fold, unsigned char *out)
{
    unsigned len = 0;
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    if (!ctx || EVP_DigestInit_ex(ctx, md, NULL) != 1) {
        fprintf(stderr, "warden: OpenSSL digest failure, aborting\n");
        abort();
    }
    md_feed(ctx, a, alen, fold);
    md_feed(ctx, b, blen, fold);
    if (EVP_DigestFinal_ex(ctx, out, &len) != 1) {
        fprintf(stderr, "warden: OpenSSL digest failure, aborting\n");
        abort();
    }
    EVP_MD_CTX_free(ctx); /* also wipes the context */
    return len;
}

/* Compares the computed key, as lowercase hex, with the stored hex folded to lowercase:
 * EMQX's compare_secure(lowercase(hex(Key)), lowercase(Stored)). Constant time in the
 * content of both; the length check only tells whether the stored hash is well formed. */
static bool hex_equal(const unsigned char *key, size_t n, const char *stored, size_t stored_len)
{
    if (stored_len != 2 * n)
        return false;
    char *got = wd_malloc(2 * n), *want = wd_malloc(2 * n);
    wd_passwd__hex(key, n, got);
    for (size_t i = 0; i < 2 * n; i++)
        want[i] = (char)fold_ascii((unsigned char)stored[i]);
    bool eq = CRYPTO_memcmp(got, want, 2 * n) == 0;
    OPENSSL_cleanse(got, 2 * n);
    OPENSSL_cleanse(want, 2 * n);
    free(got);
    free(want);
    return eq;
}

/* The two parts hashed for salt position pos: (salt, pw), (pw, salt) or (pw, nothing). */
static int salted(const struct wd_passwd_spec *s, const char *pw, size_t pwlen, const char **a,
                  size_t *alen, const char **b, size_t *blen)
{
    switch (s->salt_pos) {
    case WD_PASSWD_SALT_PREFIX:
        *a = s->salt ? s->salt : "", *alen = s->salt_len, *b = pw, *blen = pwlen;
        return WD_OK;
    case WD_PASSWD_SALT_SUFFIX:
        *a = pw, *alen = pwlen, *b = s->salt ? s->salt : "", *blen = s->salt_len;
        return WD_OK;
    case WD_PASSWD_SALT_DISABLE:
        *a = pw, *alen = pwlen, *b = "", *blen = 0;
        return WD_OK;
    }
    return WD_EINVAL;
}

static int verify_plain(const struct wd_passwd_spec *s, const char *pw, size_t pwlen, bool *match)
{
    const char *a, *b;
    size_t alen, blen;
    if (salted(s, pw, pwlen, &a, &alen, &b, &blen) != WD_OK)
        return WD_EINVAL;
    /* digests of both sides: constant time whatever the lengths */
    bool fold = !s->plain_case_sensitive;
    unsigned char want[EVP_MAX_MD_SIZE], got[EVP_MAX_MD_SIZE];
    digest2(EVP_sha256(), s->hash ? s->hash : "", s->hash_len, "", 0, fold, want);
    digest2(EVP_sha256(), a, alen, b, blen, fold, got);
    *match = CRYPTO_memcmp(want, got, 32) == 0;
    OPENSSL_cleanse(want, sizeof want);
    OPENSSL_cleanse(got, sizeof got);
    return WD_OK;
}

static int verify_digest(const struct wd_passwd_spec *s, const char *pw, size_t pwlen, bool *match)
{
    const char *a, *b;
    size_t alen, blen;
    if (salted(s, pw, pwlen, &a, &alen, &b, &blen) != WD_OK)
        return WD_EINVAL;
    unsigned char got[EVP_MAX_MD_SIZE];
    size_t n = digest2(wd_passwd__algo_md(s->algo), a, alen, b, blen, false, got);
    *match = hex_equal(got, n, s->hash, s->hash_len);
    OPENSSL_cleanse(got, sizeof got);
    return WD_OK;
}

static int verify_pbkdf2(const struct wd_passwd_spec *s, const char *pw, size_t pwlen, bool *match)
{
    size_t dk;
    int rc = wd_passwd__pbkdf2_check(s->pbkdf2.mac, s->pbkdf2.iterations, s->pbkdf2.dk_length, &dk);
    if (rc != WD_OK)
        return rc;
    /* a stored key of another length cannot match: skip the work */
    if (s->hash_len != 2 * dk || pwlen > INT_MAX || s->salt_len > INT_MAX)
        return WD_OK;
    unsigned char key[WD_PASSWD_PBKDF2_DK_MAX];
    if (PKCS5_PBKDF2_HMAC(pw, (int)pwlen, (const unsigned char *)(s->salt ? s->salt : ""),
                          (int)s->salt_len, (int)s->pbkdf2.iterations,
                          wd_passwd__mac_md(s->pbkdf2.mac), (int)dk, key) != 1) {
        OPENSSL_cleanse(key, sizeof key);
        return WD_EIO;
    }
    *match = hex_equal(key, dk, s->hash, s->hash_len);
    OPENSSL_cleanse(key, dk);
    return WD_OK;
}

/* ---- bcrypt ---- */

#define BCRYPT_LEN 60     /* $2b$10$ + 22 salt + 31 hash */
#define BCRYPT_KEY_MAX 72 /* bcrypt uses at most 72 bytes of the password */

static bool bcrypt_char(char c)
{
    return c == '.' || c == '/' || (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
           (c >= '0' && c <= '9');
}

/* Checks a modular-crypt bcrypt string: WD_OK, WD_EINVAL (malformed, or a prefix other
 * than $2a$ $2b$ $2y$, or cost outside 4..31) or WD_ERANGE (cost over our limit). */
static int bcrypt_check(const char *h, size_t n, const char **why)
{
    *why = "bcrypt hash must be $2b$CC$ followed by 53 characters of [./A-Za-z0-9]";
    if (n != BCRYPT_LEN || h[0] != '$' || h[1] != '2' || h[3] != '$' || h[6] != '$')
        return WD_EINVAL;
    if (h[2] != 'a' && h[2] != 'b' && h[2] != 'y') {
        *why = "bcrypt prefix must be $2a$, $2b$ or $2y$";
        return WD_EINVAL;
    }
    if (h[4] < '0' || h[4] > '9' || h[5] < '0' || h[5] > '9')
        return WD_EINVAL;
    for (size_t i = 7; i < n; i++)
        if (!bcrypt_char(h[i]))
            return WD_EINVAL;
    int cost = (h[4] - '0') * 10 + (h[5] - '0');
    if (cost < WD_PASSWD_BCRYPT_COST_MIN || cost > 31) {
        *why = "bcrypt cost must be from 04 to 31";
        return WD_EINVAL;
    }
    if (cost > WD_PASSWD_BCRYPT_COST_MAX) {
        *why = "bcrypt cost is over warden's limit of 16";
        return WD_ERANGE;
    }
    return WD_OK;
}

static int verify_bcrypt(const struct wd_passwd_spec *s, const char *pw, size_t pwlen, bool *match)
{
    const char *why;
    int rc = bcrypt_check(s->hash, s->hash_len, &why);
    if (rc != WD_OK)
        return rc == WD_ERANGE ? WD_ERANGE : WD_OK; /* malformed: no match */
    size_t n = pwlen < BCRYPT_KEY_MAX ? pwlen : BCRYPT_KEY_MAX;
    if (n && memchr(pw, '\0', n))
        return WD_OK; /* libxcrypt would cut the key there: refuse rather than truncate */
    char key[BCRYPT_KEY_MAX + 1], setting[BCRYPT_LEN + 1];
    memcpy(key, pw, n);
    key[n] = '\0';
    memcpy(setting, s->hash, BCRYPT_LEN);
    setting[BCRYPT_LEN] = '\0';
    /* per call, on the heap (about 32 KiB): crypt_rn is reentrant with its own data */
    struct crypt_data *cd = wd_calloc(1, sizeof *cd);
    const char *out = crypt_rn(key, setting, cd, (int)sizeof *cd);
    if (out && strlen(out) == BCRYPT_LEN)
        *match = CRYPTO_memcmp(out, setting, BCRYPT_LEN) == 0;
    OPENSSL_cleanse(key, sizeof key);
    OPENSSL_cleanse(cd, sizeof *cd);
    free(cd);
    return WD_OK;
}

/* ---- argon2id (PHC string) ---- */

struct phc {
    uint32_t version, m, t, p;
    unsigned char salt[WD_PASSWD_ARGON2_SALT_MAX];
    size_t salt_len;
    unsigned char hash[WD_PASSWD_ARGON2_HASH_MAX];
    size_t hash_len;
};

/* Standard base64 without padding, canonical (unused bits zero), into out[0..cap).
 * Returns WD_OK, WD_EINVAL (bad characters) or WD_ERANGE (longer than cap). */
static int b64_decode(const char *in, size_t n, unsigned char *out, size_t cap, size_t *outlen)
{
    return wd_base64_decode(in, n, WD_BASE64_STD, out, cap, outlen);
}

/* Parses "name=DECIMAL" at *p (name included), no sign, no leading zeros; a value over
 * 2^32-1 is WD_ERANGE (no argon2 parameter is that large). */
static int phc_num(const char **p, const char *end, const char *name, uint32_t *out)
{
    size_t nl = strlen(name);
    if ((size_t)(end - *p) < nl + 1 || memcmp(*p, name, nl) != 0 || (*p)[nl] != '=')
        return WD_EINVAL;
    const char *q = *p + nl + 1;
    if (q == end || *q < '0' || *q > '9' ||
        (*q == '0' && q + 1 < end && q[1] >= '0' && q[1] <= '9'))
        return WD_EINVAL;
    uint64_t v = 0;
    for (; q < end && *q >= '0' && *q <= '9'; q++) {
        v = v * 10 + (uint64_t)(*q - '0');
        if (v > UINT32_MAX)
            return WD_ERANGE;
    }
    *out = (uint32_t)v;
    *p = q;
    return WD_OK;
}

/* "$argon2id[$v=19]$m=M,t=T,p=P$SALT$HASH": WD_OK, WD_EINVAL (malformed), WD_ERANGE (costs
 * or lengths over the limits). */
static int phc_parse(const char *s, size_t n, struct phc *ph, const char **why)
{
    const char *p = s, *end = s + n;
    int rc;
    *why = "argon2id secret must be $argon2id$v=19$m=M,t=T,p=P$SALT$HASH (PHC, base64)";
    static const char head[] = "$argon2id$";
    if (n < sizeof head - 1 || memcmp(p, head, sizeof head - 1) != 0)
        return WD_EINVAL;
    p += sizeof head - 1;
    ph->version = ARGON2_VERSION_10;
    if (end - p >= 2 && p[0] == 'v' && p[1] == '=') {
        uint32_t v;
        if ((rc = phc_num(&p, end, "v", &v)) != WD_OK)
            return WD_EINVAL;
        if (v != ARGON2_VERSION_10 && v != ARGON2_VERSION_13) {
            *why = "argon2id version must be v=19 (or v=16)";
            return WD_EINVAL;
        }
        ph->version = v;
        if (p == end || *p++ != '$')
            return WD_EINVAL;
    }
    if ((rc = phc_num(&p, end, "m", &ph->m)) != WD_OK || p == end || *p++ != ',' ||
        (rc = phc_num(&p, end, "t", &ph->t)) != WD_OK || p == end || *p++ != ',' ||
        (rc = phc_num(&p, end, "p", &ph->p)) != WD_OK || p == end || *p++ != '$') {
        if (rc == WD_ERANGE)
            goto range;
        return WD_EINVAL;
    }
    rc = wd_passwd__argon2_check(ph->m, ph->t, ph->p);
    if (rc == WD_ERANGE)
        goto range;
    if (rc != WD_OK) {
        *why = "argon2id costs must have t >= 1, p >= 1 and m >= 8 p";
        return WD_EINVAL;
    }
    const char *dollar = memchr(p, '$', (size_t)(end - p));
    if (!dollar)
        return WD_EINVAL;
    if ((rc = b64_decode(p, (size_t)(dollar - p), ph->salt, sizeof ph->salt, &ph->salt_len)) !=
            WD_OK ||
        (rc = b64_decode(dollar + 1, (size_t)(end - dollar - 1), ph->hash, sizeof ph->hash,
                         &ph->hash_len)) != WD_OK) {
        if (rc == WD_ERANGE) {
            *why = "argon2id salt and hash must each be at most 1024 bytes";
            return WD_ERANGE;
        }
        return WD_EINVAL;
    }
    if (ph->salt_len < ARGON2_MIN_SALT_LENGTH || ph->hash_len < ARGON2_MIN_OUTLEN) {
        *why = "argon2id salt must be at least 8 bytes and hash at least 4";
        return WD_EINVAL;
    }
    return WD_OK;
range:
    *why = "argon2id costs over warden's limits (m <= 262144 KiB, t <= 16, m x t <= 1048576, "
           "p <= 16)";
    return WD_ERANGE;
}

static int verify_argon2id(const struct wd_passwd_spec *s, const char *pw, size_t pwlen,
                           bool *match)
{
    const char *why;
    struct phc *ph = wd_malloc(sizeof *ph);
    int rc = phc_parse(s->hash ? s->hash : "", s->hash_len, ph, &why);
    if (rc != WD_OK) {
        free(ph);
        return rc == WD_ERANGE ? WD_ERANGE : WD_OK; /* malformed: no match */
    }
    if (pwlen > ARGON2_MAX_PWD_LENGTH) {
        free(ph);
        return WD_OK;
    }
    unsigned char *got = wd_malloc(ph->hash_len);
    argon2_context ctx = {
        .out = got,
        .outlen = (uint32_t)ph->hash_len,
        .pwd = (uint8_t *)(uintptr_t)pw, /* read only: no ARGON2_FLAG_CLEAR_PASSWORD */
        .pwdlen = (uint32_t)pwlen,
        .salt = ph->salt,
        .saltlen = (uint32_t)ph->salt_len,
        .t_cost = ph->t,
        .m_cost = ph->m,
        .lanes = ph->p,
        .threads = 1, /* lanes computed in this thread: no thread spawning per request */
        .version = ph->version,
        .flags = ARGON2_DEFAULT_FLAGS,
    };
    int arc = argon2_ctx(&ctx, Argon2_id);
    if (arc == ARGON2_OK)
        *match = CRYPTO_memcmp(got, ph->hash, ph->hash_len) == 0;
    else
        rc = arc == ARGON2_MEMORY_ALLOCATION_ERROR ? WD_ENOMEM : WD_EIO;
    OPENSSL_cleanse(got, ph->hash_len);
    free(got);
    free(ph);
    return rc;
}

/* ---- the spec layer ---- */

int wd_passwd_verify_spec(const struct wd_passwd_spec *s, const char *pw, size_t pwlen, bool *match)
{
    *match = false;
    if (!s || (!pw && pwlen) || (!s->salt && s->salt_len) || (!s->hash && s->hash_len))
        return WD_EINVAL;
    if (!pw)
        pw = "";
    switch (s->algo) {
    case WD_PASSWD_PLAIN:
        return verify_plain(s, pw, pwlen, match);
    case WD_PASSWD_MD5:
    case WD_PASSWD_SHA1:
    case WD_PASSWD_SHA256:
    case WD_PASSWD_SHA512:
        return verify_digest(s, pw, pwlen, match);
    case WD_PASSWD_BCRYPT:
        return verify_bcrypt(s, pw, pwlen, match);
    case WD_PASSWD_PBKDF2:
        return verify_pbkdf2(s, pw, pwlen, match);
    case WD_PASSWD_ARGON2ID:
        return verify_argon2id(s, pw, pwlen, match);
    }
    return WD_EINVAL;
}

/* ---- the policy string layer ---- */

bool wd_passwd_is_plaintext(const char *stored)
{
    return strncmp(stored, "plain:", 6) == 0;
}

static int fail(char *err, size_t errcap, int rc, const char *msg)
{
    if (err && errcap)
        snprintf(err, errcap, "%s", msg);
    return rc;
}

static bool lower_hex(const char *p, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (!((p[i] >= '0' && p[i] <= '9') || (p[i] >= 'a' && p[i] <= 'f')))
            return false;
    return true;
}

/* digest schemes: NAME[-suffix]:SALT:HEX */
static int parse_digest(const struct digest_algo *d, bool suffix, const char *rest,
                        struct wd_passwd_spec *out, char *err, size_t errcap)
{
    char msg[160];
    const char *colon = strrchr(rest, ':');
    size_t hexlen = (size_t)EVP_MD_get_size(d->md()) * 2;
    if (!colon || strlen(colon + 1) != hexlen || !lower_hex(colon + 1, hexlen)) {
        snprintf(msg, sizeof msg, "%s%s secret must be %s%s:SALT:HEX with %zu lowercase hex digits",
                 d->name, suffix ? "-suffix" : "", d->name, suffix ? "-suffix" : "", hexlen);
        return fail(err, errcap, WD_EINVAL, msg);
    }
    out->algo = d->algo;
    out->salt_pos = suffix ? WD_PASSWD_SALT_SUFFIX : WD_PASSWD_SALT_PREFIX;
    out->salt = rest;
    out->salt_len = (size_t)(colon - rest);
    out->hash = colon + 1;
    out->hash_len = hexlen;
    return WD_OK;
}

/* pbkdf2:MAC:ITER:SALT:HEX */
static int parse_pbkdf2(const char *rest, struct wd_passwd_spec *out, char *err, size_t errcap)
{
    static const char shape[] = "pbkdf2 secret must be pbkdf2:MAC:ITERATIONS:SALT:HEX";
    const char *c1 = strchr(rest, ':');
    if (!c1)
        return fail(err, errcap, WD_EINVAL, shape);
    enum wd_passwd_mac mac = 0;
    for (size_t i = 0; i < WD_ARRAY_LEN(mac_algos); i++) {
        size_t n = strlen(mac_algos[i].name);
        if ((size_t)(c1 - rest) == n && memcmp(rest, mac_algos[i].name, n) == 0)
            mac = mac_algos[i].mac;
    }
    if (!mac)
        return fail(err, errcap, WD_EINVAL,
                    "pbkdf2 MAC must be sha1, sha224, sha256, sha384 or sha512");
    const char *it = c1 + 1, *c2 = strchr(it, ':');
    if (!c2 || c2 == it || (*it == '0') || strspn(it, "0123456789") != (size_t)(c2 - it))
        return fail(err, errcap, WD_EINVAL,
                    "pbkdf2 iterations must be a decimal number from 1, without leading zeros");
    unsigned long iter = 0;
    for (const char *p = it; p < c2; p++) {
        if (iter > WD_PASSWD_PBKDF2_WORK_MAX)
            break; /* over the limit anyway; stop before overflowing */
        iter = iter * 10 + (unsigned long)(*p - '0');
    }
    const char *c3 = strrchr(c2 + 1, ':');
    if (!c3)
        return fail(err, errcap, WD_EINVAL, shape);
    const char *hex = c3 + 1;
    size_t hexlen = strlen(hex);
    if (hexlen < 32 || hexlen % 2 || !lower_hex(hex, hexlen))
        return fail(err, errcap, WD_EINVAL,
                    "pbkdf2 derived key must be an even number (at least 32) of lowercase hex "
                    "digits");
    size_t dk;
    if (wd_passwd__pbkdf2_check(mac, iter, hexlen / 2, &dk) != WD_OK)
        return fail(err, errcap, WD_ERANGE,
                    "pbkdf2 cost over warden's limits (iterations x blocks <= 10000000, derived "
                    "key <= 1024 bytes)");
    out->algo = WD_PASSWD_PBKDF2;
    out->salt = c2 + 1;
    out->salt_len = (size_t)(c3 - (c2 + 1));
    out->hash = hex;
    out->hash_len = hexlen;
    out->pbkdf2.mac = mac;
    out->pbkdf2.iterations = iter;
    out->pbkdf2.dk_length = hexlen / 2;
    return WD_OK;
}

int wd_passwd_parse(const char *stored, struct wd_passwd_spec *out, char *err, size_t errcap)
{
    memset(out, 0, sizeof *out);
    if (err && errcap)
        err[0] = '\0';
    int rc = WD_EINVAL;
    size_t len = strnlen(stored, WD_PASSWD_STORED_MAX + 1);
    if (len > WD_PASSWD_STORED_MAX)
        return fail(err, errcap, WD_ERANGE, "password secret is longer than 4096 bytes");

    const char *colon = strchr(stored, ':');
    size_t nl = colon ? (size_t)(colon - stored) : 0;
    const char *rest = colon ? colon + 1 : NULL;
#define IS(name) (nl == sizeof(name) - 1 && memcmp(stored, name, nl) == 0)
    if (colon && IS("plain")) {
        out->algo = WD_PASSWD_PLAIN;
        out->salt_pos = WD_PASSWD_SALT_DISABLE;
        out->hash = rest;
        out->hash_len = strlen(rest);
        out->plain_case_sensitive = true; /* warden's own format: exact, unlike EMQX 5.x */
        return WD_OK;
    }
    for (size_t i = 0; colon && i < WD_ARRAY_LEN(digest_algos); i++) {
        const struct digest_algo *d = &digest_algos[i];
        size_t dl = strlen(d->name);
        if (nl == dl && memcmp(stored, d->name, dl) == 0)
            rc = parse_digest(d, false, rest, out, err, errcap);
        else if (nl == dl + 7 && memcmp(stored, d->name, dl) == 0 &&
                 memcmp(stored + dl, "-suffix", 7) == 0)
            rc = parse_digest(d, true, rest, out, err, errcap);
        else
            continue;
        goto out;
    }
    if (colon && IS("bcrypt")) {
        const char *why;
        rc = bcrypt_check(rest, strlen(rest), &why);
        if (rc != WD_OK) {
            fail(err, errcap, rc, why);
            goto out;
        }
        out->algo = WD_PASSWD_BCRYPT;
        out->hash = rest;
        out->hash_len = strlen(rest);
        return WD_OK;
    }
    if (colon && IS("pbkdf2")) {
        rc = parse_pbkdf2(rest, out, err, errcap);
        goto out;
    }
    if (colon && IS("argon2id")) {
        const char *why;
        struct phc *ph = wd_malloc(sizeof *ph);
        rc = phc_parse(rest, strlen(rest), ph, &why);
        if (rc == WD_OK && ph->hash_len < 16) {
            rc = WD_EINVAL;
            why = "argon2id hash must be at least 16 bytes";
        }
        OPENSSL_cleanse(ph, sizeof *ph);
        free(ph);
        if (rc != WD_OK) {
            fail(err, errcap, rc, why);
            goto out;
        }
        out->algo = WD_PASSWD_ARGON2ID;
        out->hash = rest;
        out->hash_len = strlen(rest);
        return WD_OK;
    }
#undef IS
    return fail(err, errcap, WD_EINVAL,
                "unknown password scheme (expected plain:, md5:, sha1:, sha256:, sha512: (or "
                "NAME-suffix:), bcrypt:, pbkdf2: or argon2id:)");
out:
    if (rc != WD_OK)
        memset(out, 0, sizeof *out);
    return rc;
}

int wd_passwd_check_format(const char *stored, char *err, size_t errcap)
{
    struct wd_passwd_spec s;
    return wd_passwd_parse(stored, &s, err, errcap);
}

int wd_passwd_verify(const char *stored, const char *password, size_t pwlen, bool *match)
{
    *match = false;
    struct wd_passwd_spec s;
    int rc = wd_passwd_parse(stored, &s, NULL, 0);
    if (rc != WD_OK)
        return rc;
    return wd_passwd_verify_spec(&s, password, pwlen, match);
}
