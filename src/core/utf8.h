/* SPDX-License-Identifier: Apache-2.0 */
/*
 * utf8.h: strict UTF-8 validation (no overlongs, no surrogates, nothing above U+10FFFF)
 * that also refuses NUL: what MQTT requires of topics, client ids and usernames.
 */
#ifndef WD_UTF8_H
#define WD_UTF8_H

#include <stdbool.h>
#include <stddef.h>

bool wd_utf8_valid_nonul(const void *s, size_t n);

/* Length of the valid UTF-8 sequence at p (n >= 1 bytes left; NUL counts as a valid
 * one-byte sequence here), 0 if it is not one. */
size_t wd_utf8_seq_len(const unsigned char *p, size_t n);

#endif
