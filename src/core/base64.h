/* SPDX-License-Identifier: Apache-2.0 */
/*
 * base64.h: strict decoding of canonical, unpadded base64 in the standard (RFC 4648 §4)
 * or URL-safe (§5) alphabet. "Canonical" means the unused bits of the last character
 * must be zero, so every value has exactly one encoding (JWT segments, PHC hashes). Callers
 * that accept '=' padding strip it first.
 */
#ifndef WD_BASE64_H
#define WD_BASE64_H

#include <stddef.h>

#include "core/buf.h"

enum wd_base64_alphabet {
    WD_BASE64_STD, /* + / */
    WD_BASE64_URL, /* - _ */
};

/* Bytes needed to decode n characters (an upper bound). */
size_t wd_base64_decoded_max(size_t n);

/* Decodes in[0..n) into out[0..cap). Returns WD_OK with *outlen set; WD_EINVAL for a bad
 * character, an impossible length or non-zero unused bits; WD_ERANGE when it would not
 * fit in cap. */
int wd_base64_decode(const char *in, size_t n, enum wd_base64_alphabet alpha, unsigned char *out,
                     size_t cap, size_t *outlen);

/* Appends the unpadded encoding of p[0..n) to b (tests mint tokens with it). */
void wd_base64_encode(struct wd_buf *b, const void *p, size_t n, enum wd_base64_alphabet alpha);

#endif
