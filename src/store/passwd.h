/* SPDX-License-Identifier: Apache-2.0 */
/*
 * passwd.h: verification of stored password secrets.
 *
 * A stored secret names its scheme first, so the format of every entry is explicit:
 *
 *   plain:PASSWORD          the password itself (development only; warned about at start)
 *   sha256:SALT:HEX         lowercase hex of SHA-256(SALT || password) (EMQX salt "prefix")
 *   sha512:SALT:HEX         the same with SHA-512
 *
 * The credential-store issue extends this module with EMQX's remaining formats (bcrypt,
 * pbkdf2, argon2id, salt suffix). Comparison is constant-time over fixed-size digests, so
 * neither the content nor the length of the stored secret leaks through timing.
 */
#ifndef WD_PASSWD_H
#define WD_PASSWD_H

#include <stdbool.h>
#include <stddef.h>

/* Checks that `stored` is a well-formed secret. Returns WD_OK, or WD_EINVAL with a
 * message (never containing the secret) in err. */
int wd_passwd_check_format(const char *stored, char *err, size_t errcap);

/* Verifies `password` (pwlen bytes, may contain NULs) against `stored`. Sets *match.
 * Returns WD_OK, or WD_EINVAL if `stored` is malformed (then *match is false). */
int wd_passwd_verify(const char *stored, const char *password, size_t pwlen, bool *match);

/* true when the scheme stores the password itself (plain:) */
bool wd_passwd_is_plaintext(const char *stored);

#endif
