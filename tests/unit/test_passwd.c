/* SPDX-License-Identifier: Apache-2.0 */
/* Unit tests for src/store/passwd.c. Known answers computed independently with
 * `printf 'pepperhunter2' | sha256sum` and `... | openssl dgst -sha512`. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "core/wd.h"
#include "store/passwd.h"

#define SHA256_PEPPER_HUNTER2 "ca458f67a1e64e60f40414c062c57abbfc1d41b5d0c30cd07d12704540067f21"
#define SHA512_PEPPER_HUNTER2                                                      \
    "bbce77ce67a5ecd79df30dc4c10ae6a9c44b7665ef38b9366939e73502cc9678f7454db24b1a" \
    "948313d452cbfefc25a086677e7afe2781f4eee65a79f034f4c2"

static bool verify(const char *stored, const char *pw, size_t len)
{
    bool ok = true;
    assert_int_equal(wd_passwd_verify(stored, pw, len, &ok), WD_OK);
    return ok;
}

static void sha256_salt_prefix_known_answer(void **state)
{
    const char *s = "sha256:pepper:" SHA256_PEPPER_HUNTER2;
    assert_true(verify(s, "hunter2", 7));
    assert_false(verify(s, "hunter3", 7));
    assert_false(verify(s, "hunter", 6));
    assert_false(verify(s, "", 0));
}

static void sha512_salt_prefix_known_answer(void **state)
{
    const char *s = "sha512:pepper:" SHA512_PEPPER_HUNTER2;
    assert_true(verify(s, "hunter2", 7));
    assert_false(verify(s, "Hunter2", 7));
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
}

static void nul_in_password_does_not_truncate(void **state)
{
    /* sha256("a\0b") with empty salt: a password "a\0b" must not verify as "a" */
    const char *s = "sha256::59b271ae1bbcb1d31d41929817f4b16fb439eb4f31520b5ad1d5ce98920a7138";
    assert_true(verify(s, "a\0b", 3));
    assert_false(verify(s, "a", 1));
}

static void malformed_secrets_are_refused_not_matched(void **state)
{
    const char *bad[] = {
        "sha256:salt:ABCDEF",                                   /* too short, uppercase */
        "sha256:" SHA256_PEPPER_HUNTER2,                        /* no salt separator */
        "sha256:s:" SHA256_PEPPER_HUNTER2 "00",                 /* too long */
        "sha256:s:CA458F67A1E64E60F40414C062C57ABBFC1D41B5D0C30CD07D12704540067F21",
        "md5:s:abc",
        "hunter2",
        "",
    };
    for (size_t i = 0; i < WD_ARRAY_LEN(bad); i++) {
        char err[128];
        bool ok = true;
        assert_int_equal(wd_passwd_check_format(bad[i], err, sizeof err), WD_EINVAL);
        assert_int_equal(wd_passwd_verify(bad[i], "hunter2", 7, &ok), WD_EINVAL);
        assert_false(ok);
        /* the message never echoes the secret */
        assert_null(strstr(err, "ABCDEF"));
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(sha256_salt_prefix_known_answer),
        cmocka_unit_test(sha512_salt_prefix_known_answer),
        cmocka_unit_test(salt_may_contain_colons),
        cmocka_unit_test(plain_compares_whole_password_including_nul_bytes),
        cmocka_unit_test(nul_in_password_does_not_truncate),
        cmocka_unit_test(malformed_secrets_are_refused_not_matched),
    };
    return cmocka_run_group_tests_name("passwd", tests, NULL, NULL);
}
