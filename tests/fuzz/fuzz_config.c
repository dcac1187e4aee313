/* SPDX-License-Identifier: Apache-2.0 */
/*
 * fuzz_config: the configuration parser (src/core/config.c) on arbitrary text.
 *
 * Input: a configuration file's text, parsed over the defaults with wd_config_parse. Any
 * input: no crash, no leak, and an error report exactly when the parse fails. When it
 * parses, the cross-option checks (wd_config_validate) and the derived values run too, and
 * the effective configuration printed in config-file syntax (wd_config_print, as
 * `warden config` shows it) must parse again and print the same text: what warden prints is
 * what it would read.
 */
#include <stdbool.h>
#include <sys/mman.h>
#include <unistd.h>

#include "core/config.h"
#include "core/log.h"
#include "core/wd.h"
#include "fuzz.h"

static int out_fd = -1;

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    wd_log_set_level(WD_LOG_ERROR);
    out_fd = memfd_create("fuzz_config", 0);
    return out_fd < 0 ? -1 : 0;
}

/* The printed configuration, malloc'd and NUL-terminated. */
static char *printed(const struct wd_config *cfg, size_t *len)
{
    if (ftruncate(out_fd, 0) != 0 || lseek(out_fd, 0, SEEK_SET) != 0)
        abort();
    wd_config_print(cfg, out_fd);
    off_t n = lseek(out_fd, 0, SEEK_CUR);
    char *s = malloc((size_t)n + 1);
    if (!s || pread(out_fd, s, (size_t)n, 0) != n)
        abort();
    s[n] = '\0';
    *len = (size_t)n;
    return s;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > 1 << 20)
        return 0; /* wd_config_load_file reads at most 1 MiB */
    struct wd_config cfg;
    wd_config_defaults(&cfg);
    char *errors = NULL;
    int rc = wd_config_parse(&cfg, "fuzz.conf", (const char *)data, size, &errors);
    FUZZ_CHECK((rc == WD_OK) == (errors == NULL), "rc %d, errors %p", rc, (void *)errors);
    free(errors);
    if (rc == WD_OK) {
        errors = NULL;
        if (wd_config_validate(&cfg, &errors) != WD_OK)
            FUZZ_CHECK(errors != NULL, "validate failed without a message");
        free(errors);
        (void)wd_config_request_limit(&cfg);
        size_t n1, n2;
        char *p1 = printed(&cfg, &n1);
        struct wd_config again;
        wd_config_defaults(&again);
        errors = NULL;
        rc = wd_config_parse(&again, "fuzz.conf", p1, n1, &errors);
        FUZZ_CHECK(rc == WD_OK, "the printed configuration does not parse: %s\n---\n%s",
                   errors ? errors : "", p1);
        char *p2 = printed(&again, &n2);
        FUZZ_CHECK(n1 == n2 && memcmp(p1, p2, n1) == 0, "printed twice differs:\n---\n%s\n---\n%s",
                   p1, p2);
        free(p1);
        free(p2);
        wd_config_cleanup(&again);
    }
    wd_config_cleanup(&cfg);
    return 0;
}
