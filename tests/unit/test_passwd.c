/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Unit tests for src/store/passwd*.c: both layers (the EMQX spec, the policy strings),
 * creation, limits and concurrency. Every known answer was computed with a tool independent
 * of warden's code; the command is next to each literal, and tests/data/passwd/kat.sh runs
 * them all again. Password "hunter2" and salt "pepper" unless stated otherwise.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include <pthread.h>
#include <stdlib.h>
#include <time.h>

#include "core/wd.h"
#include "store/passwd.h"

/* ---- known answers ---- */

/* printf 'pepperhunter2' | md5sum */
#define MD5_PEPPER_HUNTER2 "946ccf1cf1cfccb6bce540c3b83432f7"
/* printf 'hunter2pepper' | md5sum */
#define MD5_HUNTER2_PEPPER "ca4e28ee4e4ba78f52caf39d9d8df67a"
/* printf 'pepperhunter2' | sha1sum */
#define SHA1_PEPPER_HUNTER2 "41261643931e0445b31d73fb225ba5e789ff5841"
/* printf 'hunter2pepper' | sha1sum */
#define SHA1_HUNTER2_PEPPER "68b2b23d7a7b0908df8c018352779b6a0844b6ee"
/* printf 'pepperhunter2' | sha256sum */
#define SHA256_PEPPER_HUNTER2 "ca458f67a1e64e60f40414c062c57abbfc1d41b5d0c30cd07d12704540067f21"
/* printf 'hunter2pepper' | sha256sum */
#define SHA256_HUNTER2_PEPPER "2dd47348967664fcf1e906b16a98c3e2a7c3b3b234023872c02834513b4ef7c0"
/* printf 'pepperhunter2' | openssl dgst -sha512 */
#define SHA512_PEPPER_HUNTER2                                                                      \
    "bbce77ce67a5ecd79df30dc4c10ae6a9c44b7665ef38b9366939e73502cc9678f7454db24b1a"                 \
    "948313d452cbfefc25a086677e7afe2781f4eee65a79f034f4c2"
/* printf 'hunter2pepper' | sha512sum */
#define SHA512_HUNTER2_PEPPER                                                                      \
    "97eff7c34fc9625eb30ef2e496c6841bb189cbe049e8e9ac3841ab43094ca02dd5783d062a4a"                 \
    "6231a05081fc2f56694fe7fd0a3f93eae8968b99a3c21f3ffc51"
/* printf 'hunter2' | sha256sum */
#define SHA256_HUNTER2 "f52fbd32b2b3b86ff88ef6c490628285f482af15ddcb29541f94bcf526a3f6c7"
/* printf 'pepper' | sha256sum  (empty password, prefix salt) */
#define SHA256_PEPPER "8cbbcf29d9cef89675c5f5c1dcfe827d0570416a5aaba30dd0de159661ad905b"
/* printf 'a\0b' | sha256sum */
#define SHA256_A_NUL_B "59b271ae1bbcb1d31d41929817f4b16fb439eb4f31520b5ad1d5ce98920a7138"
/* printf '\377\000shunter2' | sha256sum  (salt = the raw bytes ff 00 73) */
#define SHA256_RAWSALT_HUNTER2 "19a2a5c8148120f913ba64bfaeb585b97c6ce431c504e1bfa12fe9cfc59a36e4"
/* { printf pepper; head -c 65536 /dev/zero | tr '\0' x; } | sha256sum */
#define SHA256_PEPPER_64K_X "185624cf8c47a1a2575cc7515cc61be593050af91886adc299a8a2b332a24e30"

/* python3 -c "import hashlib; print(hashlib.pbkdf2_hmac(MAC, b'hunter2', b'pepper',
 * 1000).hex())" for each MAC; sha256 and sha512 also agree with `openssl kdf -keylen N
 * -kdfopt digest:SHA256 -kdfopt pass:hunter2 -kdfopt salt:pepper -kdfopt iter:1000 PBKDF2` */
#define PBKDF2_SHA1 "90f4e939c75205b2c75a0db5da1e0dc9971ef519"
#define PBKDF2_SHA224 "d5c408574c12bdacd11abc426359746d99e33f2d045807840a240f46"
#define PBKDF2_SHA256 "97d7b1cabe059e02230ec294c7e29f03c25daccbb566a63dcaaced9e89aafac0"
#define PBKDF2_SHA384                                                                              \
    "810c1da4564f8cfe787242c1f51339b3767a9bd9a526c786d129ac79f88c5f5dc1f1d61efd3f"                 \
    "dd70c96f1ffd0bfc6f33"
#define PBKDF2_SHA512                                                                              \
    "ca191b6b7f86e1213bee3597eeee3065907b0d1d47db4b5f5a2beb60a12c2f508edd65b005c8"                 \
    "31e5b0e459fe48ad9c1e809f46221a3a3df51d3b3377867f8977"
/* ... hashlib.pbkdf2_hmac('sha256', b'hunter2', b'pepper', 1000, 40).hex()  (two blocks) */
#define PBKDF2_SHA256_DK40                                                                         \
    "97d7b1cabe059e02230ec294c7e29f03c25daccbb566a63dcaaced9e89aafac0902b9ce25849"                 \
    "8a37"
/* ... hashlib.pbkdf2_hmac('sha256', b'hunter2', b'pepper', 1000, 10).hex() */
#define PBKDF2_SHA256_DK10 "97d7b1cabe059e02230e"
/* ... hashlib.pbkdf2_hmac('sha256', b'', b'pepper', 1000).hex() */
#define PBKDF2_SHA256_EMPTY "d7a6647fa0e19a9d418801774397721fc1e7859ba6e59f108be52792b1e873b8"
/* ... hashlib.pbkdf2_hmac('sha256', b'x' * 65536, b'pepper', 1000).hex() */
#define PBKDF2_SHA256_64K_X "68421b8ab2f5861a3dc56a8740ce27d8d688864990e06d156334147a51682ac2"
/* ... hashlib.pbkdf2_hmac('sha256', b'hunter2', b'', 1).hex()  (EMQX: a missing salt is "") */
#define PBKDF2_SHA256_NOSALT_C1 "4bab2b355f0fbb2a69156aaab86ef6704c40da88a06932f78f71f4127a9a40ef"
/* RFC 6070 test vectors (published; hashlib agrees) */
#define RFC6070_C1 "0c60c80f961f0e71f3a9b524af6012062fe037a6"
#define RFC6070_C4096 "4b007901b765489abead49d926f721d065a429c1"
#define RFC6070_NUL "56fa6aa75548099dcc37d7f03425e0c3"

/* htpasswd -bnBC 10 u hunter2 */
#define BCRYPT_2Y_10 "$2y$10$OIej9KIZH1FN1lc4xc73iuNw3VsmWsR5SP8Bo1nOgCUAmLlkxGuiG"
/* htpasswd -bnBC 4 u hunter2 */
#define BCRYPT_2Y_04 "$2y$04$hyuHHIqrzQbffksQLzfOV.LHbrDs5MRiyvS5yhOYqS1dlgV1xp9C."
/* htpasswd -bnBC 4 u '' */
#define BCRYPT_EMPTY "$2y$04$hnSa4G7l3/DBr2nC38F8J.CdIWkgVs46ZLGAqQsOckaunjLoue02e"
/* htpasswd -bnBC 4 u "$(head -c 72 /dev/zero | tr '\0' x)" */
#define BCRYPT_72_X "$2y$04$9NZc7nRcOCxvdiFCLsqdJ.vvG5AWPMkJLj7BvkswXYjPnlGRaMUgq"
/* htpasswd -bnBC 4 u 'pässwörd'  (UTF-8 bytes) */
#define BCRYPT_UTF8 "$2y$04$6/LZOgNvf98.B2nuXtGO.Onst/i2WD7Mbq9imlbDlZH0SutCYlXwa"
/* node -e 'console.log(require("bcryptjs").hashSync("hunter2", "$2a$04$abcdefghijklmnopqrstuu"))'
 * and the same with "$2b$04$..." */
#define BCRYPT_2A_04 "$2a$04$abcdefghijklmnopqrstuuV3duMsC0HpUex6N9qapiuOHHWkwRXVm"
#define BCRYPT_2B_04 "$2b$04$abcdefghijklmnopqrstuuV3duMsC0HpUex6N9qapiuOHHWkwRXVm"
/* Openwall crypt_blowfish's published vectors (bcryptjs compareSync agrees) */
#define BCRYPT_OPENWALL_UU "$2a$05$CCCCCCCCCCCCCCCCCCCCC.E5YPO9kmyuRGyh0XouQYb4YMJKvyOeW"
#define BCRYPT_OPENWALL_72 "$2a$05$abcdefghijklmnopqrstuu5s2v8.iXieOjg/.AySBTTZIIVFJeBui"
#define OPENWALL_72_PW                                                                             \
    "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789chars "               \
    "after 72 are ignored"

/* printf hunter2 | argon2 saltsaltsalt -id -t 2 -m 10 -p 1 -l 32 -e
 * (hash-wasm's argon2id() gives the same string) */
#define ARGON2_T2_M1024                                                                            \
    "$argon2id$v=19$m=1024,t=2,p=1$c2FsdHNhbHRzYWx0$33ACrqXTGhuAHoCsjDrcU3nE96acKKrWH9hEwBQk0Cs"
/* printf hunter2 | argon2 saltsaltsalt -id -t 1 -m 8 -p 2 -l 32 -e  (two lanes; hash-wasm
 * agrees) */
#define ARGON2_P2                                                                                  \
    "$argon2id$v=19$m=256,t=1,p=2$c2FsdHNhbHRzYWx0$672wNRl+ww1M3ruXXo8YbBPbKeDJJALlbQ72JxH8opg"
/* printf hunter2 | argon2 saltsaltsalt -id -t 1 -m 8 -p 1 -l 32 -v 10 -e  (version 0x10) */
#define ARGON2_V16                                                                                 \
    "$argon2id$v=16$m=256,t=1,p=1$c2FsdHNhbHRzYWx0$OsCz1mcY9YHeksFYwiiNUoKpsx4AEWK8gKc98QAB5zo"
/* printf 'a\0b' | argon2 saltsaltsalt -id -t 1 -m 8 -p 1 -l 32 -e  (hash-wasm agrees) */
#define ARGON2_A_NUL_B                                                                             \
    "$argon2id$v=19$m=256,t=1,p=1$c2FsdHNhbHRzYWx0$N0kobWkfOynwDCS/VF31RSQ0Wpf1JxUUkNOceojnwEQ"
/* node: require("hash-wasm").argon2id({password: "x".repeat(65536), salt: "saltsaltsalt",
 * parallelism: 1, iterations: 1, memorySize: 256, hashLength: 32, outputType: "encoded"})
 * (the argon2 CLI reads at most 127 bytes) */
#define ARGON2_64K_X                                                                               \
    "$argon2id$v=19$m=256,t=1,p=1$c2FsdHNhbHRzYWx0$Vq6mN8tdW2lJIU6CmhKWTnvop7LVQf47scwiwhKhRSQ"

#define BIG (64 * 1024)
static char big_x[BIG]; /* 64 KiB of 'x', filled by main */

/* ---- helpers ---- */

static bool verify(const char *stored, const char *pw, size_t len)
{
    bool ok = true;
    assert_int_equal(wd_passwd_verify(stored, pw, len, &ok), WD_OK);
    return ok;
}

static bool verifys(const char *stored, const char *pw)
{
    return verify(stored, pw, strlen(pw));
}

static bool spec_verify(const struct wd_passwd_spec *s, const char *pw, size_t len)
{
    bool ok = true;
    assert_int_equal(wd_passwd_verify_spec(s, pw, len, &ok), WD_OK);
    return ok;
}

static struct wd_passwd_spec spec(enum wd_passwd_algo algo, enum wd_passwd_salt_pos pos,
                                  const char *salt, const char *hash)
{
    struct wd_passwd_spec s = {.algo = algo, .salt_pos = pos};
    s.salt = salt;
    s.salt_len = salt ? strlen(salt) : 0;
    s.hash = hash;
    s.hash_len = hash ? strlen(hash) : 0;
    return s;
}

static double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

/* ---- policy strings: digests ---- */

static void every_digest_with_prefix_salt_matches_its_known_answer(void **state)
{
    const char *s[] = {
        "md5:pepper:" MD5_PEPPER_HUNTER2,
        "sha1:pepper:" SHA1_PEPPER_HUNTER2,
        "sha256:pepper:" SHA256_PEPPER_HUNTER2,
        "sha512:pepper:" SHA512_PEPPER_HUNTER2,
    };
    for (size_t i = 0; i < WD_ARRAY_LEN(s); i++) {
        assert_true(verifys(s[i], "hunter2"));
        assert_false(verifys(s[i], "hunter3"));
        assert_false(verifys(s[i], "Hunter2"));
        assert_false(verifys(s[i], "hunter"));
        assert_false(verifys(s[i], ""));
    }
}

static void every_digest_with_suffix_salt_matches_its_known_answer(void **state)
{
    const char *s[] = {
        "md5-suffix:pepper:" MD5_HUNTER2_PEPPER,
        "sha1-suffix:pepper:" SHA1_HUNTER2_PEPPER,
        "sha256-suffix:pepper:" SHA256_HUNTER2_PEPPER,
        "sha512-suffix:pepper:" SHA512_HUNTER2_PEPPER,
    };
    for (size_t i = 0; i < WD_ARRAY_LEN(s); i++) {
        assert_true(verifys(s[i], "hunter2"));
        assert_false(verifys(s[i], "hunter3"));
    }
    /* the positions are not interchangeable */
    assert_false(verifys("sha256:pepper:" SHA256_HUNTER2_PEPPER, "hunter2"));
    assert_false(verifys("sha256-suffix:pepper:" SHA256_PEPPER_HUNTER2, "hunter2"));
}

static void an_empty_salt_is_emqx_salt_position_disable(void **state)
{
    assert_true(verifys("sha256::" SHA256_HUNTER2, "hunter2"));
    assert_true(verifys("sha256-suffix::" SHA256_HUNTER2, "hunter2"));
    assert_false(verifys("sha256::" SHA256_HUNTER2, "hunter"));
}

static void salt_may_contain_colons(void **state)
{
    /* the digest is after the last colon; "pep:per" + "hunter2" != "pepperhunter2" */
    assert_false(verify("sha256:pep:per:" SHA256_PEPPER_HUNTER2, "hunter2", 7));
    assert_true(verify("sha256:pep:" SHA256_PEPPER_HUNTER2, "perhunter2", 10));
}

static void plain_compares_whole_password_including_nul_bytes(void **state)
{
    assert_true(verify("plain:secret", "secret", 6));
    assert_false(verify("plain:secret", "secret\0", 7));
    assert_false(verify("plain:secret", "secre", 5));
    assert_false(verify("plain:secret", "secretX", 7));
    assert_true(verify("plain:", "", 0));
    assert_true(verify("plain:a:b", "a:b", 3));
}

static void plain_policy_secrets_are_case_sensitive_unlike_emqx_5(void **state)
{
    assert_false(verifys("plain:Secret", "secret"));
    assert_false(verifys("plain:secret", "SECRET"));
    assert_true(wd_passwd_is_plaintext("plain:x"));
    assert_false(wd_passwd_is_plaintext("sha256::" SHA256_HUNTER2));
}

static void nul_in_password_does_not_truncate(void **state)
{
    /* sha256("a\0b") with empty salt: a password "a\0b" must not verify as "a" */
    const char *s = "sha256::" SHA256_A_NUL_B;
    assert_true(verify(s, "a\0b", 3));
    assert_false(verify(s, "a", 1));
    assert_true(verify("argon2id:" ARGON2_A_NUL_B, "a\0b", 3));
    assert_false(verify("argon2id:" ARGON2_A_NUL_B, "a", 1));
}

static void empty_password_verifies_only_against_its_own_hash(void **state)
{
    assert_true(verify("sha256:pepper:" SHA256_PEPPER, "", 0));
    assert_false(verify("sha256:pepper:" SHA256_PEPPER, "pepper", 6));
    assert_true(verify("pbkdf2:sha256:1000:pepper:" PBKDF2_SHA256_EMPTY, "", 0));
    assert_false(verify("pbkdf2:sha256:1000:pepper:" PBKDF2_SHA256, "", 0));
    assert_true(verify("bcrypt:" BCRYPT_EMPTY, "", 0));
    assert_false(verify("bcrypt:" BCRYPT_EMPTY, " ", 1));
    assert_false(verify("bcrypt:" BCRYPT_2Y_04, "", 0));
    assert_false(verify("argon2id:" ARGON2_T2_M1024, "", 0));
    /* NULL with length 0 is the empty password */
    assert_true(verify("sha256:pepper:" SHA256_PEPPER, NULL, 0));
}

static void passwords_of_64_kib_verify_in_every_format(void **state)
{
    assert_true(verify("sha256:pepper:" SHA256_PEPPER_64K_X, big_x, BIG));
    assert_false(verify("sha256:pepper:" SHA256_PEPPER_64K_X, big_x, BIG - 1));
    assert_true(verify("pbkdf2:sha256:1000:pepper:" PBKDF2_SHA256_64K_X, big_x, BIG));
    assert_false(verify("pbkdf2:sha256:1000:pepper:" PBKDF2_SHA256_64K_X, big_x, BIG - 1));
    assert_true(verify("argon2id:" ARGON2_64K_X, big_x, BIG));
    assert_false(verify("argon2id:" ARGON2_64K_X, big_x, BIG - 1));
    /* bcrypt keys are the first 72 bytes: 64 KiB of x is 72 x */
    assert_true(verify("bcrypt:" BCRYPT_72_X, big_x, BIG));
    char *p = NULL;
    assert_int_equal(wd_passwd_hash("plain", big_x, BIG, &p), WD_ETOOBIG);
    assert_null(p);
}

/* ---- policy strings: bcrypt, pbkdf2, argon2id ---- */

static void bcrypt_2a_2b_and_2y_match_their_known_answers(void **state)
{
    assert_true(verifys("bcrypt:" BCRYPT_2Y_10, "hunter2"));
    assert_false(verifys("bcrypt:" BCRYPT_2Y_10, "hunter3"));
    assert_true(verifys("bcrypt:" BCRYPT_2Y_04, "hunter2"));
    assert_true(verifys("bcrypt:" BCRYPT_2A_04, "hunter2"));
    assert_true(verifys("bcrypt:" BCRYPT_2B_04, "hunter2"));
    assert_false(verifys("bcrypt:" BCRYPT_2B_04, "Hunter2"));
    assert_true(verifys("bcrypt:" BCRYPT_UTF8, "p\xc3\xa4ssw\xc3\xb6rd"));
    assert_true(verifys("bcrypt:" BCRYPT_OPENWALL_UU, "U*U"));
    assert_false(verifys("bcrypt:" BCRYPT_OPENWALL_UU, "U*U*"));
}

static void bcrypt_uses_only_the_first_72_bytes(void **state)
{
    assert_true(verifys("bcrypt:" BCRYPT_OPENWALL_72, OPENWALL_72_PW));
    assert_true(verify("bcrypt:" BCRYPT_OPENWALL_72, OPENWALL_72_PW, 72));
    assert_false(verify("bcrypt:" BCRYPT_OPENWALL_72, OPENWALL_72_PW, 71));
    assert_true(verify("bcrypt:" BCRYPT_72_X, big_x, 72));
    assert_true(verify("bcrypt:" BCRYPT_72_X, big_x, 73));
    assert_false(verify("bcrypt:" BCRYPT_72_X, big_x, 71));
}

static void bcrypt_never_matches_a_nul_byte_within_the_key(void **state)
{
    /* libxcrypt would read "hunter2\0xyz" as "hunter2": refused instead of truncated */
    assert_false(verify("bcrypt:" BCRYPT_2Y_04, "hunter2\0xyz", 11));
    assert_false(verify("bcrypt:" BCRYPT_2Y_04, "hunter2\0", 8));
    /* past the 72nd byte nothing counts, NUL included */
    char pw[80];
    memset(pw, 'x', sizeof pw);
    pw[75] = '\0';
    assert_true(verify("bcrypt:" BCRYPT_72_X, pw, sizeof pw));
}

static void pbkdf2_matches_known_answers_for_every_mac(void **state)
{
    assert_true(verifys("pbkdf2:sha1:1000:pepper:" PBKDF2_SHA1, "hunter2"));
    assert_true(verifys("pbkdf2:sha224:1000:pepper:" PBKDF2_SHA224, "hunter2"));
    assert_true(verifys("pbkdf2:sha256:1000:pepper:" PBKDF2_SHA256, "hunter2"));
    assert_true(verifys("pbkdf2:sha384:1000:pepper:" PBKDF2_SHA384, "hunter2"));
    assert_true(verifys("pbkdf2:sha512:1000:pepper:" PBKDF2_SHA512, "hunter2"));
    assert_false(verifys("pbkdf2:sha512:1000:pepper:" PBKDF2_SHA512, "hunter3"));
    assert_false(verifys("pbkdf2:sha256:1001:pepper:" PBKDF2_SHA256, "hunter2"));
    assert_false(verifys("pbkdf2:sha256:1000:Pepper:" PBKDF2_SHA256, "hunter2"));
    /* the hex length is the key length: 40 bytes is two sha256 blocks */
    assert_true(verifys("pbkdf2:sha256:1000:pepper:" PBKDF2_SHA256_DK40, "hunter2"));
    /* RFC 6070 */
    assert_true(verifys("pbkdf2:sha1:1:salt:" RFC6070_C1, "password"));
    assert_true(verifys("pbkdf2:sha1:4096:salt:" RFC6070_C4096, "password"));
}

static void argon2id_matches_known_answers(void **state)
{
    assert_true(verifys("argon2id:" ARGON2_T2_M1024, "hunter2"));
    assert_false(verifys("argon2id:" ARGON2_T2_M1024, "hunter3"));
    assert_true(verifys("argon2id:" ARGON2_P2, "hunter2"));
    assert_false(verifys("argon2id:" ARGON2_P2, "Hunter2"));
    assert_true(verifys("argon2id:" ARGON2_V16, "hunter2"));
    assert_false(verifys("argon2id:" ARGON2_V16, "hunter"));
}

/* ---- the EMQX spec layer ---- */

static void spec_digests_place_the_salt_as_configured(void **state)
{
    struct wd_passwd_spec s =
        spec(WD_PASSWD_SHA256, WD_PASSWD_SALT_PREFIX, "pepper", SHA256_PEPPER_HUNTER2);
    assert_true(spec_verify(&s, "hunter2", 7));
    s = spec(WD_PASSWD_SHA256, WD_PASSWD_SALT_SUFFIX, "pepper", SHA256_HUNTER2_PEPPER);
    assert_true(spec_verify(&s, "hunter2", 7));
    s = spec(WD_PASSWD_SHA256, WD_PASSWD_SALT_SUFFIX, "pepper", SHA256_PEPPER_HUNTER2);
    assert_false(spec_verify(&s, "hunter2", 7));
    /* disable: the salt field is ignored */
    s = spec(WD_PASSWD_SHA256, WD_PASSWD_SALT_DISABLE, "pepper", SHA256_HUNTER2);
    assert_true(spec_verify(&s, "hunter2", 7));
    /* a missing salt (NULL) is "" as in EMQX */
    s = spec(WD_PASSWD_SHA256, WD_PASSWD_SALT_PREFIX, NULL, SHA256_HUNTER2);
    assert_true(spec_verify(&s, "hunter2", 7));
    s = spec(WD_PASSWD_MD5, WD_PASSWD_SALT_SUFFIX, "pepper", MD5_HUNTER2_PEPPER);
    assert_true(spec_verify(&s, "hunter2", 7));
    s = spec(WD_PASSWD_SHA1, WD_PASSWD_SALT_PREFIX, "pepper", SHA1_PEPPER_HUNTER2);
    assert_true(spec_verify(&s, "hunter2", 7));
    s = spec(WD_PASSWD_SHA512, WD_PASSWD_SALT_SUFFIX, "pepper", SHA512_HUNTER2_PEPPER);
    assert_true(spec_verify(&s, "hunter2", 7));
}

static void spec_digest_hex_is_compared_case_insensitively_as_in_emqx(void **state)
{
    struct wd_passwd_spec s =
        spec(WD_PASSWD_SHA256, WD_PASSWD_SALT_PREFIX, "pepper",
             "CA458F67A1E64E60F40414C062C57ABBFC1D41B5D0C30CD07D12704540067F21");
    assert_true(spec_verify(&s, "hunter2", 7));
    s.hash = "Ca458f67A1e64e60f40414c062c57abbfc1d41b5d0c30cd07d12704540067F21";
    assert_true(spec_verify(&s, "hunter2", 7));
    s = spec(WD_PASSWD_MD5, WD_PASSWD_SALT_PREFIX, "pepper", "946CCF1CF1CFCCB6BCE540C3B83432F7");
    assert_true(spec_verify(&s, "hunter2", 7));
    struct wd_passwd_spec p = {.algo = WD_PASSWD_PBKDF2,
                               .salt = "pepper",
                               .salt_len = 6,
                               .hash = "90F4E939C75205B2C75A0DB5DA1E0DC9971EF519",
                               .hash_len = 40,
                               .pbkdf2 = {WD_PASSWD_MAC_SHA1, 1000, 0}};
    assert_true(spec_verify(&p, "hunter2", 7));
    /* the salt is not case-folded: it is raw bytes */
    s = spec(WD_PASSWD_SHA256, WD_PASSWD_SALT_PREFIX, "PEPPER", SHA256_PEPPER_HUNTER2);
    assert_false(spec_verify(&s, "hunter2", 7));
}

static void spec_digest_of_wrong_length_or_non_hex_never_matches(void **state)
{
    const char *bad[] = {
        "ca458f67a1e64e60f40414c062c57abbfc1d41b5d0c30cd07d12704540067f2",   /* short */
        "ca458f67a1e64e60f40414c062c57abbfc1d41b5d0c30cd07d12704540067f210", /* long */
        "ca458f67a1e64e60f40414c062c57abbfc1d41b5d0c30cd07d12704540067f2g",  /* non-hex */
        " ca458f67a1e64e60f40414c062c57abbfc1d41b5d0c30cd07d12704540067f2",  /* space */
        "",
    };
    for (size_t i = 0; i < WD_ARRAY_LEN(bad); i++) {
        struct wd_passwd_spec s = spec(WD_PASSWD_SHA256, WD_PASSWD_SALT_PREFIX, "pepper", bad[i]);
        assert_false(spec_verify(&s, "hunter2", 7));
    }
    struct wd_passwd_spec s = spec(WD_PASSWD_SHA256, WD_PASSWD_SALT_PREFIX, "pepper", NULL);
    assert_false(spec_verify(&s, "hunter2", 7));
}

static void spec_salt_is_raw_bytes_never_decoded(void **state)
{
    struct wd_passwd_spec s = {.algo = WD_PASSWD_SHA256,
                               .salt_pos = WD_PASSWD_SALT_PREFIX,
                               .salt = "\xff\0s",
                               .salt_len = 3,
                               .hash = SHA256_RAWSALT_HUNTER2,
                               .hash_len = 64};
    assert_true(spec_verify(&s, "hunter2", 7));
    s.salt_len = 1; /* the NUL inside the salt counts */
    assert_false(spec_verify(&s, "hunter2", 7));
    /* a hex-looking salt is used as its characters, not decoded */
    s = spec(WD_PASSWD_SHA256, WD_PASSWD_SALT_PREFIX, "706570706572" /* hex of pepper */,
             SHA256_PEPPER_HUNTER2);
    assert_false(spec_verify(&s, "hunter2", 7));
}

static void spec_plain_is_case_insensitive_like_emqx_5(void **state)
{
    struct wd_passwd_spec s = spec(WD_PASSWD_PLAIN, WD_PASSWD_SALT_DISABLE, "ignored", "Secret");
    assert_true(spec_verify(&s, "Secret", 6));
    assert_true(spec_verify(&s, "secret", 6));
    assert_true(spec_verify(&s, "SECRET", 6));
    assert_false(spec_verify(&s, "secret ", 7));
    assert_false(spec_verify(&s, "secre", 5));
    /* salts are part of the compared text */
    s = spec(WD_PASSWD_PLAIN, WD_PASSWD_SALT_PREFIX, "salt", "SALTsecret");
    assert_true(spec_verify(&s, "SECRET", 6));
    s = spec(WD_PASSWD_PLAIN, WD_PASSWD_SALT_SUFFIX, "salt", "secretsalt");
    assert_true(spec_verify(&s, "secret", 6));
    assert_false(spec_verify(&s, "saltsecret", 10));
    /* only ASCII is folded: UTF-8 bytes compare exactly */
    s = spec(WD_PASSWD_PLAIN, WD_PASSWD_SALT_DISABLE, NULL, "\xc3\xa9t\xc3\xa9");
    assert_true(spec_verify(&s, "\xc3\xa9T\xc3\xa9", 5));
    assert_false(spec_verify(&s, "\xc3\x89t\xc3\x89", 5));
    /* empty stored password matches the empty password, as in EMQX */
    s = spec(WD_PASSWD_PLAIN, WD_PASSWD_SALT_DISABLE, NULL, "");
    assert_true(spec_verify(&s, "", 0));
    assert_false(spec_verify(&s, "x", 1));
}

static void spec_plain_case_sensitive_flag_compares_exactly(void **state)
{
    struct wd_passwd_spec s = spec(WD_PASSWD_PLAIN, WD_PASSWD_SALT_DISABLE, NULL, "Secret");
    s.plain_case_sensitive = true;
    assert_true(spec_verify(&s, "Secret", 6));
    assert_false(spec_verify(&s, "secret", 6));
}

static void spec_bcrypt_ignores_the_salt_field_and_its_position(void **state)
{
    struct wd_passwd_spec s = spec(WD_PASSWD_BCRYPT, WD_PASSWD_SALT_SUFFIX, "pepper", BCRYPT_2Y_04);
    assert_true(spec_verify(&s, "hunter2", 7));
    s.salt_pos = WD_PASSWD_SALT_PREFIX;
    assert_true(spec_verify(&s, "hunter2", 7));
    assert_false(spec_verify(&s, "pepperhunter2", 13));
    /* compared exactly: a case change or trailing byte in the stored string never matches */
    s = spec(WD_PASSWD_BCRYPT, WD_PASSWD_SALT_PREFIX, NULL,
             "$2y$04$hyuHHIqrzQbffksQLzfOV.LHbrDs5MRiyvS5yhOYqS1dlgV1xp9c.");
    assert_false(spec_verify(&s, "hunter2", 7));
    s = spec(WD_PASSWD_BCRYPT, WD_PASSWD_SALT_PREFIX, NULL, BCRYPT_2Y_04 "\n");
    assert_false(spec_verify(&s, "hunter2", 7));
    s = spec(WD_PASSWD_BCRYPT, WD_PASSWD_SALT_PREFIX, NULL, "$2y$04$hyuHHIqrzQbffksQLzfOV.");
    assert_false(spec_verify(&s, "hunter2", 7));
}

static void spec_bcrypt_2x_and_2_prefixes_never_match(void **state)
{
    struct wd_passwd_spec s = spec(WD_PASSWD_BCRYPT, WD_PASSWD_SALT_PREFIX, NULL,
                                   "$2x$04$hyuHHIqrzQbffksQLzfOV.LHbrDs5MRiyvS5yhOYqS1dlgV1xp9C.");
    assert_false(spec_verify(&s, "hunter2", 7));
    s = spec(WD_PASSWD_BCRYPT, WD_PASSWD_SALT_PREFIX, NULL,
             "$2$04$hyuHHIqrzQbffksQLzfOV.LHbrDs5MRiyvS5yhOYqS1dlgV1xp9C.");
    assert_false(spec_verify(&s, "hunter2", 7));
}

static void spec_pbkdf2_ignores_salt_position_and_defaults_to_the_digest_size(void **state)
{
    struct wd_passwd_spec s = {.algo = WD_PASSWD_PBKDF2,
                               .salt_pos = WD_PASSWD_SALT_SUFFIX,
                               .salt = "pepper",
                               .salt_len = 6,
                               .hash = PBKDF2_SHA512,
                               .hash_len = 128,
                               .pbkdf2 = {WD_PASSWD_MAC_SHA512, 1000, 0}};
    assert_true(spec_verify(&s, "hunter2", 7));
    s.salt_pos = WD_PASSWD_SALT_DISABLE;
    assert_true(spec_verify(&s, "hunter2", 7));
    /* explicit dk_length: 10 bytes, 20 hex digits */
    s = (struct wd_passwd_spec){.algo = WD_PASSWD_PBKDF2,
                                .salt = "pepper",
                                .salt_len = 6,
                                .hash = PBKDF2_SHA256_DK10,
                                .hash_len = 20,
                                .pbkdf2 = {WD_PASSWD_MAC_SHA256, 1000, 10}};
    assert_true(spec_verify(&s, "hunter2", 7));
    s.pbkdf2.dk_length = 0; /* then 32 bytes are expected: the stored 10 never match */
    assert_false(spec_verify(&s, "hunter2", 7));
    /* a missing salt is the empty salt */
    s = (struct wd_passwd_spec){.algo = WD_PASSWD_PBKDF2,
                                .hash = PBKDF2_SHA256_NOSALT_C1,
                                .hash_len = 64,
                                .pbkdf2 = {WD_PASSWD_MAC_SHA256, 1, 0}};
    assert_true(spec_verify(&s, "hunter2", 7));
    /* RFC 6070 with NULs in both password and salt */
    s = (struct wd_passwd_spec){.algo = WD_PASSWD_PBKDF2,
                                .salt = "sa\0lt",
                                .salt_len = 5,
                                .hash = RFC6070_NUL,
                                .hash_len = 32,
                                .pbkdf2 = {WD_PASSWD_MAC_SHA1, 4096, 16}};
    assert_true(spec_verify(&s, "pass\0word", 9));
    assert_false(spec_verify(&s, "pass", 4));
}

static void spec_argon2id_ignores_the_salt_field(void **state)
{
    struct wd_passwd_spec s = spec(WD_PASSWD_ARGON2ID, WD_PASSWD_SALT_PREFIX, "pepper", ARGON2_P2);
    assert_true(spec_verify(&s, "hunter2", 7));
    s = spec(WD_PASSWD_ARGON2ID, WD_PASSWD_SALT_PREFIX, NULL, "$argon2id$v=19$m=256,t=1,p=2$");
    assert_false(spec_verify(&s, "hunter2", 7));
    s = spec(
        WD_PASSWD_ARGON2ID, WD_PASSWD_SALT_PREFIX, NULL,
        "$argon2i$v=19$m=256,t=1,p=2$c2FsdHNhbHRzYWx0$672wNRl+ww1M3ruXXo8YbBPbKeDJJALlbQ72JxH8opg");
    assert_false(spec_verify(&s, "hunter2", 7));
}

static void spec_that_is_zeroed_or_inconsistent_is_refused(void **state)
{
    bool ok = true;
    struct wd_passwd_spec z = {0};
    assert_int_equal(wd_passwd_verify_spec(&z, "", 0, &ok), WD_EINVAL);
    assert_false(ok);
    struct wd_passwd_spec s =
        spec(WD_PASSWD_SHA256, (enum wd_passwd_salt_pos)7, "", SHA256_HUNTER2);
    assert_int_equal(wd_passwd_verify_spec(&s, "hunter2", 7, &ok), WD_EINVAL);
    s = spec(WD_PASSWD_SHA256, WD_PASSWD_SALT_PREFIX, NULL, NULL);
    s.hash_len = 3;
    assert_int_equal(wd_passwd_verify_spec(&s, "hunter2", 7, &ok), WD_EINVAL);
    s = spec(WD_PASSWD_SHA256, WD_PASSWD_SALT_PREFIX, NULL, SHA256_HUNTER2);
    assert_int_equal(wd_passwd_verify_spec(&s, NULL, 1, &ok), WD_EINVAL);
    struct wd_passwd_spec p = {.algo = WD_PASSWD_PBKDF2, .hash = "", .pbkdf2 = {0, 1000, 0}};
    assert_int_equal(wd_passwd_verify_spec(&p, "x", 1, &ok), WD_EINVAL); /* no mac */
    p.pbkdf2.mac = WD_PASSWD_MAC_SHA256;
    p.pbkdf2.iterations = 0;
    assert_int_equal(wd_passwd_verify_spec(&p, "x", 1, &ok), WD_EINVAL);
    assert_false(ok);
}

static void spec_costs_over_the_limits_are_refused_without_hashing(void **state)
{
    bool ok = true;
    double t0 = now_ms();
    struct wd_passwd_spec p = {.algo = WD_PASSWD_PBKDF2,
                               .hash = PBKDF2_SHA256,
                               .hash_len = 64,
                               .pbkdf2 = {WD_PASSWD_MAC_SHA256, 4294967295UL, 0}};
    assert_int_equal(wd_passwd_verify_spec(&p, "x", 1, &ok), WD_ERANGE);
    p.pbkdf2.iterations = WD_PASSWD_PBKDF2_WORK_MAX / 2 + 1;
    p.pbkdf2.dk_length = 64; /* two sha256 blocks: twice the work */
    assert_int_equal(wd_passwd_verify_spec(&p, "x", 1, &ok), WD_ERANGE);
    p.pbkdf2.iterations = 1;
    p.pbkdf2.dk_length = WD_PASSWD_PBKDF2_DK_MAX + 1;
    assert_int_equal(wd_passwd_verify_spec(&p, "x", 1, &ok), WD_ERANGE);
    /* stored in Redis: bcrypt cost 31, argon2 m = 4 GiB */
    struct wd_passwd_spec b = spec(WD_PASSWD_BCRYPT, WD_PASSWD_SALT_PREFIX, NULL,
                                   "$2b$31$hyuHHIqrzQbffksQLzfOV.LHbrDs5MRiyvS5yhOYqS1dlgV1xp9C.");
    assert_int_equal(wd_passwd_verify_spec(&b, "hunter2", 7, &ok), WD_ERANGE);
    struct wd_passwd_spec a = spec(WD_PASSWD_ARGON2ID, WD_PASSWD_SALT_PREFIX, NULL,
                                   "$argon2id$v=19$m=4194304,t=1,p=1$c2FsdHNhbHRzYWx0$"
                                   "33ACrqXTGhuAHoCsjDrcU3nE96acKKrWH9hEwBQk0Cs");
    assert_int_equal(wd_passwd_verify_spec(&a, "hunter2", 7, &ok), WD_ERANGE);
    assert_false(ok);
    assert_true(now_ms() - t0 < 100);
}

/* ---- refusals ---- */

static void malformed_secrets_are_refused_not_matched(void **state)
{
    /* each carries the marker "SeKr1t" (or is a well-known digest) that messages must not
     * echo */
    const char *bad[] = {
        "sha256:salt:ABCDEF",                   /* too short, uppercase */
        "sha256:" SHA256_PEPPER_HUNTER2,        /* no salt separator */
        "sha256:s:" SHA256_PEPPER_HUNTER2 "00", /* too long */
        "sha256:s:CA458F67A1E64E60F40414C062C57ABBFC1D41B5D0C30CD07D12704540067F21",
        "md5:SeKr1t:abc",
        "sha1:SeKr1t:" MD5_PEPPER_HUNTER2, /* md5 length under sha1 */
        "sha512-suffix:SeKr1t:" SHA256_PEPPER_HUNTER2,
        "sha256-prefix:SeKr1t:" SHA256_PEPPER_HUNTER2,
        "SHA256:SeKr1t:" SHA256_PEPPER_HUNTER2,
        "SeKr1t",
        "plainSeKr1t",
        "",
        "bcrypt:SeKr1t",
        "bcrypt:$2x$04$SeKr1tIZQbffksQLzfOV.LHbrDs5MRiyvS5yhOYqS1dlgV1xp9C.",
        "bcrypt:$2$04$SeKr1tqrzQbffksQLzfOV.LHbrDs5MRiyvS5yhOYqS1dlgV1xp9C.",
        "bcrypt:$2b$03$SeKr1tqrzQbffksQLzfOV.LHbrDs5MRiyvS5yhOYqS1dlgV1xp9C.", /* cost 3 */
        "bcrypt:$2b$4$SeKr1tIqrzQbffksQLzfOV.LHbrDs5MRiyvS5yhOYqS1dlgV1xp9C.",
        "bcrypt:$2b$04$SeKr1t!qrzQbffksQLzfOV.LHbrDs5MRiyvS5yhOYqS1dlgV1xp9C.",
        "bcrypt:$2b$04$SeKr1tqrzQbffksQLzfOV.LHbrDs5MRiyvS5yhOYqS1dlgV1xp9C",
        "pbkdf2:md5:1000:SeKr1t:" PBKDF2_SHA256,
        "pbkdf2:sha256:0:SeKr1t:" PBKDF2_SHA256,
        "pbkdf2:sha256:01000:SeKr1t:" PBKDF2_SHA256,
        "pbkdf2:sha256:-1:SeKr1t:" PBKDF2_SHA256,
        "pbkdf2:sha256:1e3:SeKr1t:" PBKDF2_SHA256,
        "pbkdf2:sha256:1000:" PBKDF2_SHA256,             /* no salt field */
        "pbkdf2:sha256:1000:SeKr1t:" PBKDF2_SHA256_DK10, /* 10-byte key: too weak */
        "pbkdf2:sha256:1000:SeKr1t:"
        "97D7B1CABE059E02230EC294C7E29F03C25DACCBB566A63DCAACED9E89AAFAC0",
        "pbkdf2:sha256:1000:SeKr1t:"
        "97d7b1cabe059e02230ec294c7e29f03c25daccbb566a63dcaaced9e89aafac",
        "pbkdf2:sha256",
        "argon2id:SeKr1t",
        "argon2id:$argon2i$v=19$m=256,t=1,p=1$c2FsdHNhbHRzYWx0$"
        "U2VLcjF0U2VLcjF0U2VLcjF0U2VLcjF0",
        "argon2id:$argon2id$v=18$m=256,t=1,p=1$c2FsdHNhbHRzYWx0$"
        "U2VLcjF0U2VLcjF0U2VLcjF0U2VLcjF0",
        "argon2id:$argon2id$v=19$m=256,t=0,p=1$c2FsdHNhbHRzYWx0$"
        "U2VLcjF0U2VLcjF0U2VLcjF0U2VLcjF0",
        "argon2id:$argon2id$v=19$m=7,t=1,p=1$c2FsdHNhbHRzYWx0$U2VLcjF0U2VLcjF0U2VLcjF0U2VLcjF0",
        "argon2id:$argon2id$v=19$m=256,t=1,p=0$c2FsdHNhbHRzYWx0$"
        "U2VLcjF0U2VLcjF0U2VLcjF0U2VLcjF0",
        "argon2id:$argon2id$v=19$m=0256,t=1,p=1$c2FsdHNhbHRzYWx0$"
        "U2VLcjF0U2VLcjF0U2VLcjF0U2VLcjF0",
        "argon2id:$argon2id$v=19$t=1,m=256,p=1$c2FsdHNhbHRzYWx0$"
        "U2VLcjF0U2VLcjF0U2VLcjF0U2VLcjF0",
        /* 4-byte salt */
        "argon2id:$argon2id$v=19$m=256,t=1,p=1$c2FsdA$U2VLcjF0U2VLcjF0U2VLcjF0U2VLcjF0",
        "argon2id:$argon2id$v=19$m=256,t=1,p=1$c2FsdHNhbHRzYWx0$U2VLcjF0", /* 6-byte hash */
        "argon2id:$argon2id$v=19$m=256,t=1,p=1$c2FsdHNhbHRzYWx0$"
        "U2VLcjF0U2VLcjF0U2VLcjF0U2VLcjF0=",
        "argon2id:$argon2id$v=19$m=256,t=1,p=1$c2FsdHNhbHRzYWx0$U2VLcjF0U2VLcjF0U2VL*"
        "jF0U2VLcjF0",
        "argon2id:$argon2id$v=19$m=256,t=1,p=1$c2FsdHNhbHRzYWx0cx$"
        "U2VLcjF0U2VLcjF0U2VLcjF0U2VLcjF0", /* non-canonical */
        "argon2id:$argon2id$v=19$m=256,t=1,p=1,keyid=SeKr1t$c2FsdHNhbHRzYWx0$"
        "U2VLcjF0U2VLcjF0U2VLcjF0U2VLcjF0",
        "argon2id:$argon2id$v=19$m=256,t=1,p=1$c2FsdHNhbHRzYWx0",
    };
    for (size_t i = 0; i < WD_ARRAY_LEN(bad); i++) {
        char err[256] = "";
        bool ok = true;
        int rc = wd_passwd_check_format(bad[i], err, sizeof err);
        if (rc != WD_EINVAL)
            fail_msg("secret %zu accepted or wrong code %d", i, rc);
        assert_int_equal(wd_passwd_verify(bad[i], "hunter2", 7, &ok), WD_EINVAL);
        assert_false(ok);
        assert_true(err[0] != '\0');
        /* the message never echoes the secret */
        assert_null(strstr(err, "SeKr1t"));
        assert_null(strstr(err, "ABCDEF"));
        assert_null(strstr(err, "c2FsdHNhbHRzYWx0"));
        assert_null(strstr(err, "97d7b1"));
        assert_null(strstr(err, "ca458f"));
        assert_null(strstr(err, "hyuHH"));
        /* parse leaves a zeroed spec behind */
        struct wd_passwd_spec s;
        assert_int_equal(wd_passwd_parse(bad[i], &s, NULL, 0), WD_EINVAL);
        assert_int_equal(s.algo, 0);
        assert_null(s.hash);
    }
}

static void absurd_costs_are_refused_quickly_by_check_format(void **state)
{
    char big_secret[WD_PASSWD_STORED_MAX + 16];
    memset(big_secret, 'a', sizeof big_secret - 1);
    memcpy(big_secret, "plain:", 6);
    big_secret[sizeof big_secret - 1] = '\0';
    const char *over[] = {
        "bcrypt:$2b$31$SeKr1tqrzQbffksQLzfOV.LHbrDs5MRiyvS5yhOYqS1dlgV1xp9C.",
        "bcrypt:$2y$17$SeKr1tqrzQbffksQLzfOV.LHbrDs5MRiyvS5yhOYqS1dlgV1xp9C.",
        "pbkdf2:sha256:4294967295:SeKr1t:" PBKDF2_SHA256,
        "pbkdf2:sha256:99999999999999999999999999999999:SeKr1t:" PBKDF2_SHA256,
        "pbkdf2:sha1:10000001:SeKr1t:" PBKDF2_SHA1,
        "pbkdf2:sha256:5000001:SeKr1t:" PBKDF2_SHA256_DK40, /* x 2 blocks */
        /* m = 4 GiB */
        "argon2id:$argon2id$v=19$m=4194304,t=1,p=1$c2FsdHNhbHRzYWx0$"
        "U2VLcjF0U2VLcjF0U2VLcjF0U2VLcjF0",
        "argon2id:$argon2id$v=19$m=4294967295,t=1,p=1$c2FsdHNhbHRzYWx0$"
        "U2VLcjF0U2VLcjF0U2VLcjF0U2VLcjF0",
        "argon2id:$argon2id$v=19$m=99999999999,t=1,p=1$c2FsdHNhbHRzYWx0$"
        "U2VLcjF0U2VLcjF0U2VLcjF0U2VLcjF0",
        "argon2id:$argon2id$v=19$m=65536,t=4294967295,p=1$c2FsdHNhbHRzYWx0$"
        "U2VLcjF0U2VLcjF0U2VLcjF0U2VLcjF0",
        "argon2id:$argon2id$v=19$m=262144,t=5,p=1$c2FsdHNhbHRzYWx0$"
        "U2VLcjF0U2VLcjF0U2VLcjF0U2VLcjF0",
        "argon2id:$argon2id$v=19$m=65536,t=1,p=16777215$c2FsdHNhbHRzYWx0$"
        "U2VLcjF0U2VLcjF0U2VLcjF0U2VLcjF0",
        big_secret,
    };
    double t0 = now_ms();
    for (size_t i = 0; i < WD_ARRAY_LEN(over); i++) {
        char err[256] = "";
        bool ok = true;
        int rc = wd_passwd_check_format(over[i], err, sizeof err);
        if (rc != WD_ERANGE)
            fail_msg("secret %zu: code %d, expected WD_ERANGE", i, rc);
        assert_int_equal(wd_passwd_verify(over[i], "hunter2", 7, &ok), WD_ERANGE);
        assert_false(ok);
        assert_null(strstr(err, "SeKr1t"));
        assert_null(strstr(err, "aaaa"));
    }
    assert_true(now_ms() - t0 < 100);
    /* and the limits themselves are accepted */
    assert_int_equal(wd_passwd_check_format("pbkdf2:sha256:10000000:s:" PBKDF2_SHA256, NULL, 0),
                     WD_OK);
    assert_int_equal(
        wd_passwd_check_format(
            "bcrypt:$2b$16$hyuHHIqrzQbffksQLzfOV.LHbrDs5MRiyvS5yhOYqS1dlgV1xp9C.", NULL, 0),
        WD_OK);
    assert_int_equal(
        wd_passwd_check_format("argon2id:$argon2id$v=19$m=262144,t=4,p=16$c2FsdHNhbHRzYWx0$"
                               "U2VLcjF0U2VLcjF0U2VLcjF0U2VLcjF0",
                               NULL, 0),
        WD_OK);
}

/* ---- creation ---- */

static void hashes_round_trip_through_check_format_and_verify_in_every_scheme(void **state)
{
    const char *schemes[] = {
        "plain",
        "md5",
        "sha1",
        "sha256",
        "sha512",
        "md5-suffix",
        "sha1-suffix",
        "sha256-suffix",
        "sha512-suffix",
        "bcrypt",
        "bcrypt:4",
        "pbkdf2",
        "pbkdf2:sha1",
        "pbkdf2:sha512:1000",
        "argon2id",
        "argon2id:m=256,t=1,p=2",
        NULL,
    };
    const char *prefix[] = {
        "plain:",
        "md5:",
        "sha1:",
        "sha256:",
        "sha512:",
        "md5-suffix:",
        "sha1-suffix:",
        "sha256-suffix:",
        "sha512-suffix:",
        "bcrypt:$2b$10$",
        "bcrypt:$2b$04$",
        "pbkdf2:sha256:600000:",
        "pbkdf2:sha1:600000:",
        "pbkdf2:sha512:1000:",
        "argon2id:$argon2id$v=19$m=19456,t=2,p=1$",
        "argon2id:$argon2id$v=19$m=256,t=1,p=2$",
        "bcrypt:$2b$10$",
    };
    for (size_t i = 0; i < WD_ARRAY_LEN(schemes); i++) {
        char *h = NULL;
        assert_int_equal(wd_passwd_hash(schemes[i], "hunter2", 7, &h), WD_OK);
        assert_non_null(h);
        if (strncmp(h, prefix[i], strlen(prefix[i])) != 0)
            fail_msg("scheme %s: unexpected secret shape", schemes[i] ? schemes[i] : "(default)");
        char err[256];
        assert_int_equal(wd_passwd_check_format(h, err, sizeof err), WD_OK);
        assert_true(verifys(h, "hunter2"));
        assert_false(verifys(h, "hunter3"));
        assert_false(verifys(h, ""));
        wd_passwd_secret_free(h);
    }
    /* binary passwords, including NUL bytes, round-trip where the scheme allows them */
    const char *bin_schemes[] = {"sha256", "sha512-suffix", "pbkdf2:sha256:1000",
                                 "argon2id:m=256,t=1,p=1"};
    for (size_t i = 0; i < WD_ARRAY_LEN(bin_schemes); i++) {
        char *h = NULL;
        assert_int_equal(wd_passwd_hash(bin_schemes[i], "a\0\xff", 3, &h), WD_OK);
        assert_true(verify(h, "a\0\xff", 3));
        assert_false(verify(h, "a", 1));
        wd_passwd_secret_free(h);
        assert_int_equal(wd_passwd_hash(bin_schemes[i], big_x, BIG, &h), WD_OK);
        assert_true(verify(h, big_x, BIG));
        assert_false(verify(h, big_x, BIG - 1));
        wd_passwd_secret_free(h);
        assert_int_equal(wd_passwd_hash(bin_schemes[i], "", 0, &h), WD_OK);
        assert_true(verify(h, "", 0));
        /* HMAC pads its key with zeros, so for PBKDF2 (here and in EMQX) "" and "\0" are
         * the same key: documented in passwd.h, pinned here */
        if (strncmp(bin_schemes[i], "pbkdf2", 6) == 0)
            assert_true(verify(h, "\0", 1));
        else
            assert_false(verify(h, "\0", 1));
        assert_false(verify(h, "x", 1));
        wd_passwd_secret_free(h);
    }
    wd_passwd_secret_free(NULL);
}

static void hashes_use_a_fresh_random_salt_each_time(void **state)
{
    const char *schemes[] = {"sha256", "bcrypt:4", "pbkdf2:sha256:1000", "argon2id:m=256,t=1,p=1"};
    for (size_t i = 0; i < WD_ARRAY_LEN(schemes); i++) {
        char *a = NULL, *b = NULL;
        assert_int_equal(wd_passwd_hash(schemes[i], "hunter2", 7, &a), WD_OK);
        assert_int_equal(wd_passwd_hash(schemes[i], "hunter2", 7, &b), WD_OK);
        assert_string_not_equal(a, b);
        wd_passwd_secret_free(a);
        wd_passwd_secret_free(b);
    }
}

static void hash_refuses_unknown_schemes_bad_parameters_and_unsafe_passwords(void **state)
{
    const struct {
        const char *scheme;
        const char *pw;
        size_t len;
        int rc;
    } cases[] = {
        {"md4", "x", 1, WD_EINVAL},
        {"sha", "x", 1, WD_EINVAL},
        {"", "x", 1, WD_EINVAL},
        {"sha256:extra", "x", 1, WD_EINVAL},
        {"plain:x", "x", 1, WD_EINVAL},
        {"plain", "a\0b", 3, WD_EINVAL},
        {"bcrypt:3", "x", 1, WD_EINVAL},
        {"bcrypt:17", "x", 1, WD_ERANGE},
        {"bcrypt:31", "x", 1, WD_ERANGE},
        {"bcrypt:x", "x", 1, WD_EINVAL},
        {"bcrypt:010", "x", 1, WD_EINVAL},
        {"bcrypt", "a\0b", 3, WD_EINVAL},
        {"bcrypt", OPENWALL_72_PW, sizeof OPENWALL_72_PW - 1, WD_ETOOBIG},
        {"pbkdf2:md5", "x", 1, WD_EINVAL},
        {"pbkdf2:sha256:0", "x", 1, WD_EINVAL},
        {"pbkdf2:sha256:10000001", "x", 1, WD_ERANGE},
        {"pbkdf2:sha256:99999999999999999999999", "x", 1, WD_ERANGE},
        {"pbkdf2:sha256:", "x", 1, WD_EINVAL},
        {"argon2id:m=4194304,t=1,p=1", "x", 1, WD_ERANGE},
        {"argon2id:t=1,m=256,p=1", "x", 1, WD_EINVAL},
        {"argon2id:m=256,t=0,p=1", "x", 1, WD_EINVAL},
        {"argon2id:m=8,t=1,p=2", "x", 1, WD_EINVAL},
        {"argon2id:m=256,t=1", "x", 1, WD_EINVAL},
    };
    for (size_t i = 0; i < WD_ARRAY_LEN(cases); i++) {
        char *h = (char *)"untouched";
        int rc = wd_passwd_hash(cases[i].scheme, cases[i].pw, cases[i].len, &h);
        if (rc != cases[i].rc)
            fail_msg("scheme %s: code %d, expected %d", cases[i].scheme, rc, cases[i].rc);
        assert_null(h);
    }
}

/* ---- names ---- */

static void emqx_configuration_names_map_to_the_spec(void **state)
{
    enum wd_passwd_algo a = 0;
    assert_int_equal(wd_passwd_algo_from_name("sha", &a), WD_OK);
    assert_int_equal(a, WD_PASSWD_SHA1);
    assert_int_equal(wd_passwd_algo_from_name("bcrypt", &a), WD_OK);
    assert_int_equal(a, WD_PASSWD_BCRYPT);
    assert_int_equal(wd_passwd_algo_from_name("SHA256", &a), WD_EINVAL);
    assert_int_equal(wd_passwd_algo_from_name(NULL, &a), WD_EINVAL);
    assert_string_equal(wd_passwd_algo_str(WD_PASSWD_ARGON2ID), "argon2id");
    assert_string_equal(wd_passwd_algo_str(0), "?");
    enum wd_passwd_mac m = 0;
    assert_int_equal(wd_passwd_mac_from_name("sha", &m), WD_OK);
    assert_int_equal(m, WD_PASSWD_MAC_SHA1);
    assert_int_equal(wd_passwd_mac_from_name("sha384", &m), WD_OK);
    assert_int_equal(m, WD_PASSWD_MAC_SHA384);
    assert_int_equal(wd_passwd_mac_from_name("md5", &m), WD_EINVAL); /* gone since 5.8.3 */
    enum wd_passwd_salt_pos p = WD_PASSWD_SALT_PREFIX;
    assert_int_equal(wd_passwd_salt_pos_from_name("disable", &p), WD_OK);
    assert_int_equal(p, WD_PASSWD_SALT_DISABLE);
    assert_int_equal(wd_passwd_salt_pos_from_name("none", &p), WD_EINVAL);
}

/* ---- concurrency ---- */

struct worker {
    const char *stored;
    int rounds;
    int wrong; /* answers that were not as expected */
};

static void *verify_worker(void *arg)
{
    struct worker *w = arg;
    for (int i = 0; i < w->rounds; i++) {
        bool ok = false;
        if (wd_passwd_verify(w->stored, "hunter2", 7, &ok) != WD_OK || !ok)
            w->wrong++;
        if (wd_passwd_verify(w->stored, "hunter3", 7, &ok) != WD_OK || ok)
            w->wrong++;
    }
    return NULL;
}

static void concurrent_bcrypt_and_argon2_verifications_give_correct_answers(void **state)
{
    struct worker w[4] = {
        {"bcrypt:" BCRYPT_2Y_04, 20, 0},
        {"argon2id:" ARGON2_P2, 20, 0},
        {"bcrypt:" BCRYPT_2B_04, 20, 0},
        {"argon2id:" ARGON2_T2_M1024, 10, 0},
    };
    pthread_t t[4];
    for (int i = 0; i < 4; i++)
        assert_int_equal(pthread_create(&t[i], NULL, verify_worker, &w[i]), 0);
    for (int i = 0; i < 4; i++) {
        assert_int_equal(pthread_join(t[i], NULL), 0);
        assert_int_equal(w[i].wrong, 0);
    }
}

int main(void)
{
    memset(big_x, 'x', sizeof big_x);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(every_digest_with_prefix_salt_matches_its_known_answer),
        cmocka_unit_test(every_digest_with_suffix_salt_matches_its_known_answer),
        cmocka_unit_test(an_empty_salt_is_emqx_salt_position_disable),
        cmocka_unit_test(salt_may_contain_colons),
        cmocka_unit_test(plain_compares_whole_password_including_nul_bytes),
        cmocka_unit_test(plain_policy_secrets_are_case_sensitive_unlike_emqx_5),
        cmocka_unit_test(nul_in_password_does_not_truncate),
        cmocka_unit_test(empty_password_verifies_only_against_its_own_hash),
        cmocka_unit_test(passwords_of_64_kib_verify_in_every_format),
        cmocka_unit_test(bcrypt_2a_2b_and_2y_match_their_known_answers),
        cmocka_unit_test(bcrypt_uses_only_the_first_72_bytes),
        cmocka_unit_test(bcrypt_never_matches_a_nul_byte_within_the_key),
        cmocka_unit_test(pbkdf2_matches_known_answers_for_every_mac),
        cmocka_unit_test(argon2id_matches_known_answers),
        cmocka_unit_test(spec_digests_place_the_salt_as_configured),
        cmocka_unit_test(spec_digest_hex_is_compared_case_insensitively_as_in_emqx),
        cmocka_unit_test(spec_digest_of_wrong_length_or_non_hex_never_matches),
        cmocka_unit_test(spec_salt_is_raw_bytes_never_decoded),
        cmocka_unit_test(spec_plain_is_case_insensitive_like_emqx_5),
        cmocka_unit_test(spec_plain_case_sensitive_flag_compares_exactly),
        cmocka_unit_test(spec_bcrypt_ignores_the_salt_field_and_its_position),
        cmocka_unit_test(spec_bcrypt_2x_and_2_prefixes_never_match),
        cmocka_unit_test(spec_pbkdf2_ignores_salt_position_and_defaults_to_the_digest_size),
        cmocka_unit_test(spec_argon2id_ignores_the_salt_field),
        cmocka_unit_test(spec_that_is_zeroed_or_inconsistent_is_refused),
        cmocka_unit_test(spec_costs_over_the_limits_are_refused_without_hashing),
        cmocka_unit_test(malformed_secrets_are_refused_not_matched),
        cmocka_unit_test(absurd_costs_are_refused_quickly_by_check_format),
        cmocka_unit_test(hashes_round_trip_through_check_format_and_verify_in_every_scheme),
        cmocka_unit_test(hashes_use_a_fresh_random_salt_each_time),
        cmocka_unit_test(hash_refuses_unknown_schemes_bad_parameters_and_unsafe_passwords),
        cmocka_unit_test(emqx_configuration_names_map_to_the_spec),
        cmocka_unit_test(concurrent_bcrypt_and_argon2_verifications_give_correct_answers),
    };
    return cmocka_run_group_tests_name("passwd", tests, NULL, NULL);
}
