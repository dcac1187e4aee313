/* SPDX-License-Identifier: Apache-2.0 */
/*
 * file.c: see file.h.
 */
#include "core/file.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/wd.h"

int wd_file_read(const char *path, size_t max, char **out, size_t *len, char *err, size_t errcap)
{
    *out = NULL;
    *len = 0;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        snprintf(err, errcap, "%s: cannot open: %s", path, strerror(errno));
        return WD_EIO;
    }
    struct stat st;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        snprintf(err, errcap, "%s: not a regular file", path);
        close(fd);
        return WD_EIO;
    }
    if ((unsigned long long)st.st_size > max) {
        snprintf(err, errcap, "%s: larger than %zu bytes", path, max);
        close(fd);
        return WD_ETOOBIG;
    }
    size_t size = (size_t)st.st_size;
    char *buf = wd_malloc(size + 1);
    size_t got = 0;
    while (got < size) {
        ssize_t r = read(fd, buf + got, size - got);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            break;
        got += (size_t)r;
    }
    int rerr = errno;
    close(fd);
    if (got != size) {
        snprintf(err, errcap, "%s: short read: %s", path, got < size ? strerror(rerr) : "");
        free(buf);
        return WD_EIO;
    }
    buf[got] = '\0';
    *out = buf;
    *len = got;
    return WD_OK;
}
