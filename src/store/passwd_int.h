/* SPDX-License-Identifier: Apache-2.0 */
/*
 * passwd_int.h: what passwd.c (parsing, verification) and passwd_hash.c (creation) share:
 * the digest and MAC tables, lowercase hex, and the limit checks, so that a secret
 * wd_passwd_hash() writes is always one wd_passwd_parse() accepts. Not for other modules.
 */
#ifndef WD_PASSWD_INT_H
#define WD_PASSWD_INT_H

#include <openssl/evp.h>
#include <stddef.h>
#include <stdint.h>

#include "store/passwd.h"

/* Digest of a simple algo (MD5, SHA1, SHA256, SHA512), or NULL for the others. */
const EVP_MD *wd_passwd__algo_md(enum wd_passwd_algo a);

/* Digest of a pbkdf2 MAC, or NULL for an unknown value. */
const EVP_MD *wd_passwd__mac_md(enum wd_passwd_mac m);

/* Our name of a MAC ("sha1", "sha224", ...), or NULL. */
const char *wd_passwd__mac_name(enum wd_passwd_mac m);

/* Writes 2n lowercase hex digits (no NUL) of in[0..n) to out. */
void wd_passwd__hex(const unsigned char *in, size_t n, char *out);

/* PBKDF2 parameters: WD_OK, WD_EINVAL (unknown mac, iterations 0) or WD_ERANGE (dk over
 * WD_PASSWD_PBKDF2_DK_MAX, iterations x blocks over WD_PASSWD_PBKDF2_WORK_MAX). *dk gets
 * the effective key length (dk_length, or the digest size when 0). */
int wd_passwd__pbkdf2_check(enum wd_passwd_mac mac, unsigned long iterations, size_t dk_length,
                            size_t *dk);

/* Argon2 costs: WD_OK, WD_EINVAL (t or p is 0, m < 8 p) or WD_ERANGE (over the limits). */
int wd_passwd__argon2_check(uint64_t m, uint64_t t, uint64_t p);

#endif
