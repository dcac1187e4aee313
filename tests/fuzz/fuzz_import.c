/* SPDX-License-Identifier: Apache-2.0 */
/*
 * fuzz_import: `warden import-acl` (src/policy/import.c over src/policy/erlterm.c) on
 * arbitrary acl.conf text.
 *
 * Input: acl.conf text. It is translated with wd_import_acl; the diagnostics are always
 * rendered (source line and caret for any byte).
 * Invariants besides no crash, no leak and no UB:
 *   - WD_OK comes with a policy text and no error; WD_ESYNTAX / WD_ETOOBIG with at least
 *     one error and no text (the importer refused the input and said why);
 *   - what the importer wrote is a policy warden accepts: wd_policy_compile (what `warden
 *     check` runs) on the text gives no error and a policy, whose rendered diagnostics
 *     (warnings) render too;
 *   - translating the same input again gives the same text (no state kept between calls).
 */
#include <stdbool.h>

#include "core/log.h"
#include "core/wd.h"
#include "fuzz.h"
#include "policy/diag.h"
#include "policy/import.h"
#include "policy/policy.h"

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    wd_log_set_level(WD_LOG_ERROR);
    return 0;
}

static int translate(const char *src, size_t size, char **out, size_t *nerrors)
{
    struct wd_diags d;
    wd_diags_init(&d, "acl.conf", src, size);
    int rc = wd_import_acl(src, size, &d, out);
    char *rep = wd_diags_render(&d);
    FUZZ_CHECK(rep != NULL, "no rendering");
    free(rep);
    *nerrors = d.nerrors;
    wd_diags_cleanup(&d);
    return rc;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > 256 * 1024)
        return 0;
    const char *src = (const char *)data;
    char *out = NULL;
    size_t nerr = 0;
    int rc = translate(src, size, &out, &nerr);
    if (rc != WD_OK) {
        FUZZ_CHECK(rc == WD_ESYNTAX || rc == WD_ETOOBIG, "rc %d", rc);
        FUZZ_CHECK(out == NULL, "a policy text with rc %d", rc);
        FUZZ_CHECK(nerr > 0, "refused (rc %d) without an error", rc);
        return 0;
    }
    FUZZ_CHECK(out != NULL && nerr == 0, "WD_OK with %zu errors", nerr);

    /* the importer's output compiles: `warden check` accepts it */
    size_t olen = strlen(out);
    struct wd_diags d;
    wd_diags_init(&d, "imported.policy", out, olen);
    struct wd_policy *p = NULL;
    int crc = wd_policy_compile(out, olen, &d, &p);
    if (crc != WD_OK || d.nerrors) {
        char *rep = wd_diags_render(&d);
        fprintf(stderr, "%s\n--- policy ---\n%s\n", rep ? rep : "", out);
        free(rep);
    }
    FUZZ_CHECK(crc == WD_OK && p != NULL && d.nerrors == 0,
               "the imported policy does not compile (rc %d, %zu errors)", crc, d.nerrors);
    wd_policy_release(p);
    wd_diags_cleanup(&d);

    /* deterministic */
    char *out2 = NULL;
    size_t nerr2 = 0;
    FUZZ_CHECK(translate(src, size, &out2, &nerr2) == WD_OK && out2 && strcmp(out, out2) == 0,
               "a second translation differs");
    free(out2);
    free(out);
    return 0;
}
