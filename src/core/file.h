/* SPDX-License-Identifier: Apache-2.0 */
/*
 * file.h: reading a whole configuration-sized file (configuration, policy, PEM, test
 * files): regular files only, bounded, NUL-terminated, EINTR-safe.
 */
#ifndef WD_FILE_H
#define WD_FILE_H

#include <stddef.h>

/* Reads `path` (a regular file of at most `max` bytes) into *out (malloc'd, NUL-terminated,
 * length in *len). Returns WD_OK; WD_EIO or WD_ETOOBIG with "path: reason" in err. */
int wd_file_read(const char *path, size_t max, char **out, size_t *len, char *err, size_t errcap);

#endif
