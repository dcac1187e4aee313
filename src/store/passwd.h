/* SPDX-License-Identifier: Apache-2.0 */
/*
 * passwd.h: verification and creation of stored password secrets, in two layers.
 *
 * 1. struct wd_passwd_spec is what EMQX keeps in a password-based store (a Redis hash read
 *    with HMGET password_hash salt ..., plus the authenticator's configured algorithm), and
 *    wd_passwd_verify_spec() checks a password against it with EMQX 5.x's semantics
 *    (emqx-auth-formats.md sections 2.2 and 6; emqx_passwd.erl, v5.8.5 and later). The
 *    credential-store code fills the spec; nothing in it is parsed or decoded here except
 *    what EMQX itself decodes (hex digests, the bcrypt and argon2 strings).
 *
 * 2. A self-describing string for policy files, `user "name" "SECRET"`, whose scheme is
 *    named first so every entry says how it was made:
 *
 *      plain:PASSWORD                     the password itself, compared exactly (development
 *                                         only; the engine warns about it at load)
 *      md5:SALT:HEX                       HEX = lowercase hex of MD5(SALT || password), i.e.
 *      sha1:SALT:HEX                      EMQX's salt_position = prefix; an empty SALT
 *      sha256:SALT:HEX                    ("sha256::HEX") is EMQX's salt_position = disable
 *      sha512:SALT:HEX
 *      md5-suffix:SALT:HEX                the same with the salt after the password,
 *      sha1-suffix:SALT:HEX               HEX = hex(H(password || SALT)), EMQX's
 *      sha256-suffix:SALT:HEX             salt_position = suffix. (Spelled in the scheme
 *      sha512-suffix:SALT:HEX             name, not as a trailing field, because SALT may
 *                                         contain colons: the digest is after the last one.)
 *      bcrypt:$2b$CC$<22 salt><31 hash>   a modular-crypt bcrypt string ($2a$, $2b$ or $2y$;
 *                                         `htpasswd -bnBC 10` writes $2y$)
 *      pbkdf2:MAC:ITER:SALT:HEX           MAC is sha1|sha224|sha256|sha384|sha512, ITER a
 *                                         decimal count, HEX the lowercase hex derived key
 *                                         (its length gives dk_length = len(HEX) / 2)
 *      argon2id:$argon2id$v=19$m=M,t=T,p=P$SALT$HASH
 *                                         the standard PHC string of libargon2 and the
 *                                         `argon2` CLI (base64 without padding; v=16 or no
 *                                         v= also accepted, meaning version 0x10)
 *
 *    SALT is used as the raw bytes written (as EMQX does: never hex- or base64-decoded) and
 *    may contain any character, colons included. HEX must be lowercase and exactly as long
 *    as the digest in policy strings (one canonical spelling; the spec layer accepts either
 *    case as EMQX does).
 *
 * Limits. Verification runs on the request path, so what a policy or a stored hash may ask
 * for is bounded, and anything above the bounds is refused before any hashing (a policy
 * with bcrypt cost 31 or argon2 m=4GiB must not take the server down):
 *   - a policy secret is at most WD_PASSWD_STORED_MAX bytes;
 *   - bcrypt cost WD_PASSWD_BCRYPT_COST_MIN..WD_PASSWD_BCRYPT_COST_MAX (4..16; cost 16 is
 *     about 4 s of CPU per check, EMQX and libxcrypt allow up to 31 = days);
 *   - pbkdf2: 1 <= iterations and iterations x ceil(dk_length / digest size) <=
 *     WD_PASSWD_PBKDF2_WORK_MAX (10,000,000 HMAC chains, a few seconds), dk_length <=
 *     WD_PASSWD_PBKDF2_DK_MAX (1024 bytes);
 *   - argon2id: m <= WD_PASSWD_ARGON2_M_MAX KiB (256 MiB), 1 <= t <= WD_PASSWD_ARGON2_T_MAX
 *     (16), m x t <= WD_PASSWD_ARGON2_WORK_MAX (1 GiB of block passes), 1 <= p <=
 *     WD_PASSWD_ARGON2_P_MAX (16), m >= 8 p, salt 8..1024 bytes, hash 4..1024 bytes. Lanes
 *     are computed in the calling thread (libargon2 threads = 1): a verification never
 *     starts threads.
 *
 * Constant time: fixed-size digests are compared with CRYPTO_memcmp; plain passwords are
 * compared as SHA-256 digests of both sides, so neither the content nor the length of the
 * stored secret leaks through timing. Intermediate buffers are wiped with OPENSSL_cleanse.
 *
 * Thread safety: every function is reentrant. bcrypt goes through libxcrypt's crypt_rn with
 * a per-call struct crypt_data (never crypt()); argon2 through argon2_ctx; digests through
 * per-call EVP contexts.
 *
 * Messages written to `err` name the scheme and the expected shape, never any byte of the
 * secret.
 */
#ifndef WD_PASSWD_H
#define WD_PASSWD_H

#include <stdbool.h>
#include <stddef.h>

#define WD_PASSWD_STORED_MAX 4096
#define WD_PASSWD_BCRYPT_COST_MIN 4
#define WD_PASSWD_BCRYPT_COST_MAX 16
#define WD_PASSWD_PBKDF2_WORK_MAX 10000000UL
#define WD_PASSWD_PBKDF2_DK_MAX 1024
#define WD_PASSWD_ARGON2_M_MAX 262144UL /* KiB: 256 MiB */
#define WD_PASSWD_ARGON2_T_MAX 16UL
#define WD_PASSWD_ARGON2_WORK_MAX 1048576UL /* m x t, KiB passes: 1 GiB */
#define WD_PASSWD_ARGON2_P_MAX 16UL
#define WD_PASSWD_ARGON2_SALT_MAX 1024
#define WD_PASSWD_ARGON2_HASH_MAX 1024

/* Defaults of wd_passwd_hash() (see there). */
#define WD_PASSWD_DEFAULT_SCHEME "bcrypt"
#define WD_PASSWD_BCRYPT_COST_DEFAULT 10
#define WD_PASSWD_PBKDF2_ITER_DEFAULT 600000UL /* OWASP 2023 for PBKDF2-HMAC-SHA256 */
#define WD_PASSWD_ARGON2_M_DEFAULT 19456UL     /* KiB; OWASP: m=19 MiB, t=2, p=1 */
#define WD_PASSWD_ARGON2_T_DEFAULT 2UL
#define WD_PASSWD_ARGON2_P_DEFAULT 1UL

/* The values start at 1: a zeroed spec is invalid, never "plain with an empty hash". */
enum wd_passwd_algo {
    WD_PASSWD_PLAIN = 1,
    WD_PASSWD_MD5,
    WD_PASSWD_SHA1, /* EMQX's name: "sha" */
    WD_PASSWD_SHA256,
    WD_PASSWD_SHA512,
    WD_PASSWD_BCRYPT,
    WD_PASSWD_PBKDF2,
    WD_PASSWD_ARGON2ID, /* not in EMQX; mosquitto users bring these */
};

/* EMQX's salt_position; PREFIX (0) is EMQX's default. */
enum wd_passwd_salt_pos {
    WD_PASSWD_SALT_PREFIX = 0,
    WD_PASSWD_SALT_SUFFIX,
    WD_PASSWD_SALT_DISABLE,
};

/* EMQX's pbkdf2 mac_fun (md4, md5 and ripemd160 are gone since EMQX 5.8.3). Starts at 1:
 * EMQX requires mac_fun, so 0 is "not set" and refused. */
enum wd_passwd_mac {
    WD_PASSWD_MAC_SHA1 = 1, /* EMQX's name: "sha" */
    WD_PASSWD_MAC_SHA224,
    WD_PASSWD_MAC_SHA256,
    WD_PASSWD_MAC_SHA384,
    WD_PASSWD_MAC_SHA512,
};

/*
 * What EMQX stores for one user, and how to check it. Pointers are borrowed; salt and hash
 * are byte strings (not NUL-terminated, may be NULL when their length is 0).
 *
 * Semantics of wd_passwd_verify_spec(), per algo (EMQX 5.x, emqx-auth-formats.md 2.2, 6):
 *   PLAIN    the stored hash is the salted password itself: salt||pw (PREFIX), pw||salt
 *            (SUFFIX) or pw (DISABLE). EMQX 5.x (v5.8.9, the spec's reference) lowercases
 *            both sides before comparing, so "PassWord" matches "password": that is what a
 *            zeroed plain_case_sensitive gives. Case folding is ASCII only (A-Z); other
 *            bytes are compared exactly. plain_case_sensitive = true is EMQX's later fix
 *            (exact compare; [6.x] in the spec), and what policy `plain:` secrets use. An
 *            empty stored hash matches an empty (salted) password, as in EMQX.
 *   MD5, SHA1, SHA256, SHA512
 *            hash = hex(H(salted password)) with the same salt placement. The stored hex is
 *            compared case-insensitively (EMQX >= 5.8.5 lowercases both sides); a stored
 *            hash of the wrong length or with a non-hex character never matches (EMQX:
 *            "unknown or mismatched lengths -> false").
 *   BCRYPT   hash is the full modular-crypt string ($2a$, $2b$, $2y$; 60 characters). The
 *            salt and salt_pos fields are ignored: the salt comes from the hash. The result
 *            is compared exactly (case-sensitive). bcrypt keys are at most 72 bytes: bytes
 *            after the 72nd are ignored, as bcrypt (and EMQX) does. Deliberate differences
 *            from EMQX, which are refusals, never extra matches: a NUL byte within the first
 *            72 bytes of the password never matches (EMQX's C code would silently cut the
 *            password there); $2$ and $2x$ strings never match (libxcrypt has no $2$, and
 *            $2x$ marks hashes of a known-broken implementation); cost above
 *            WD_PASSWD_BCRYPT_COST_MAX gives WD_ERANGE instead of days of CPU.
 *   PBKDF2   hash = hex(PBKDF2-HMAC(pbkdf2.mac, pw, salt, pbkdf2.iterations, dk)) where dk =
 *            pbkdf2.dk_length, or the digest size when it is 0 (sha1 20, sha224 28, sha256
 *            32, sha384 48, sha512 64). salt_pos is ignored. Hex compared case-insensitively;
 *            a stored hash that is not 2 x dk hex digits never matches. Inherent in HMAC
 *            (and so in EMQX): the key is zero-padded, so passwords that differ only by
 *            trailing NUL bytes within the hash block ("pw" and "pw\0") are the same key.
 *   ARGON2ID hash is the PHC string `$argon2id$v=19$m=..,t=..,p=..$SALT$HASH`; salt and
 *            salt_pos are ignored. Compared with CRYPTO_memcmp over the raw hash.
 * Anything in `hash` that EMQX could not have produced (bad length, bad characters, an
 * unparseable bcrypt or PHC string) is "no match", not an error: EMQX answers
 * bad_username_or_password there too.
 */
struct wd_passwd_spec {
    enum wd_passwd_algo algo;
    enum wd_passwd_salt_pos salt_pos; /* PLAIN and the digests only */
    const char *salt;
    size_t salt_len;
    const char *hash;
    size_t hash_len;
    struct {
        enum wd_passwd_mac mac;
        unsigned long iterations; /* >= 1 */
        size_t dk_length;         /* bytes; 0 = digest size of mac */
    } pbkdf2;
    bool plain_case_sensitive; /* PLAIN only; false = EMQX 5.x (case-insensitive) */
};

/* Verifies `pw` (pwlen bytes, may contain NULs; may be NULL when pwlen is 0) against the
 * spec. *match is set to false on entry and true only for a match. Returns:
 *   WD_OK      *match is the answer (including "stored hash malformed" -> false);
 *   WD_EINVAL  the spec itself is unusable: unknown algo, salt_pos or mac, iterations 0,
 *              a NULL pointer with a non-zero length (a configuration/programming error);
 *   WD_ERANGE  the configuration or the stored hash asks for more work than the limits
 *              above allow (pbkdf2 work or dk_length, bcrypt cost, argon2 m/t/p/lengths):
 *              refused without hashing. EMQX would compute; the caller should fail closed
 *              and say why;
 *   WD_ENOMEM  argon2 could not allocate the memory the hash asks for (m KiB);
 *   WD_EIO     the hash library failed otherwise (OpenSSL PBKDF2, libargon2).
 * On any error *match stays false. */
int wd_passwd_verify_spec(const struct wd_passwd_spec *s, const char *pw, size_t pwlen,
                          bool *match);

/* Parses a policy secret (the string formats above) into *out, whose pointers then point
 * into `stored` (which must outlive it). Validates everything, limits included. Returns
 * WD_OK; WD_EINVAL for a malformed secret, WD_ERANGE for one over the limits; on error, a
 * message (never containing any byte of the secret) in err (err may be NULL if errcap is
 * 0) and *out zeroed. */
int wd_passwd_parse(const char *stored, struct wd_passwd_spec *out, char *err, size_t errcap);

/* Checks that `stored` is a well-formed policy secret within the limits: wd_passwd_parse()
 * without the result. Returns WD_OK, WD_EINVAL or WD_ERANGE with a message in err. */
int wd_passwd_check_format(const char *stored, char *err, size_t errcap);

/* Verifies `password` (pwlen bytes, may contain NULs) against the policy secret `stored`.
 * Sets *match. Returns WD_OK, or the wd_passwd_parse() error if `stored` is malformed or
 * over the limits, or WD_ENOMEM / WD_EIO as wd_passwd_verify_spec() (then *match is
 * false). */
int wd_passwd_verify(const char *stored, const char *password, size_t pwlen, bool *match);

/* true when the scheme stores the password itself (plain:) */
bool wd_passwd_is_plaintext(const char *stored);

/*
 * Creates a policy secret for `password` (pwlen bytes) with a fresh random salt from
 * RAND_bytes, for `warden passwd`. *out is a NUL-terminated heap string in the formats
 * above, to be released with wd_passwd_secret_free(). scheme (NULL means
 * WD_PASSWD_DEFAULT_SCHEME) is one of:
 *   plain                         "plain:PASSWORD" (only when asked for by name; refuses a
 *                                 password containing a NUL byte)
 *   md5 sha1 sha256 sha512        prefix salt: 16 random bytes written as 32 hex characters
 *                                 (the salt EMQX generates), used as those characters
 *   md5-suffix ... sha512-suffix  the same, salt after the password
 *   bcrypt[:COST]                 $2b$, COST 4..16, default 10 (crypt_gensalt_rn + crypt_rn);
 *                                 refuses (WD_ETOOBIG) passwords over 72 bytes, which bcrypt
 *                                 would silently cut, and (WD_EINVAL) a NUL in them
 *   pbkdf2[:MAC[:ITER]]           MAC default sha256, ITER default 600,000 (whatever the
 *                                 MAC); dk = digest size; 32-hex-character salt
 *   argon2id[:m=M,t=T,p=P]        defaults m=19456 KiB, t=2, p=1 (OWASP); 16-byte salt,
 *                                 32-byte hash (argon2id_hash_encoded)
 * Returns WD_OK; WD_EINVAL for an unknown scheme or malformed parameters (*out NULL);
 * WD_ERANGE for parameters over the limits; WD_ETOOBIG (see bcrypt); WD_EIO if the random
 * generator or a hash library fails.
 */
int wd_passwd_hash(const char *scheme, const char *password, size_t pwlen, char **out);

/* Wipes (OPENSSL_cleanse) and frees a string from wd_passwd_hash(). NULL is fine. */
void wd_passwd_secret_free(char *secret);

/* Names, for configuration (the credential-store issue): EMQX's names and ours.
 * algo: plain md5 sha sha1 sha256 sha512 bcrypt pbkdf2 argon2id;
 * mac: sha sha1 sha224 sha256 sha384 sha512; salt position: prefix suffix disable.
 * Return WD_OK or WD_EINVAL (then *out is unchanged). Matching is exact (lowercase). */
int wd_passwd_algo_from_name(const char *name, enum wd_passwd_algo *out);
int wd_passwd_mac_from_name(const char *name, enum wd_passwd_mac *out);
int wd_passwd_salt_pos_from_name(const char *name, enum wd_passwd_salt_pos *out);
const char *wd_passwd_algo_str(enum wd_passwd_algo a); /* "?" for unknown values */

#endif
