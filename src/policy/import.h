/* SPDX-License-Identifier: Apache-2.0 */
/*
 * import.h: `warden import-acl`: translates EMQX's file ACL (acl.conf, Erlang terms, see
 * the spec's section 4) into the warden policy language (docs/policy.md).
 *
 * The translation is faithful or it is an error: a construct warden cannot express
 * (client_attr, ${zone}, a bare-string topic list EMQX itself rejects, ...) is reported
 * at its file:line:col and no policy is produced. Where warden deliberately behaves
 * differently from EMQX (anchored regexes, `a/+` not allowing a subscription to `a/#`,
 * placeholders that never widen a rule, EMQX's `all` topics including every `$`-topic)
 * the translation keeps EMQX's meaning when it can and says so in a warning otherwise.
 * The output keeps acl.conf's rule order (first match wins in both), marks each rule
 * with `# FILE:LINE` and ends with `authz default allow`, EMQX's `no_match` default.
 */
#ifndef WD_IMPORT_H
#define WD_IMPORT_H

#include <stddef.h>

#include "policy/diag.h"

/* The largest acl.conf accepted (the policy file limit: the output is at least as big). */
#define WD_IMPORT_MAX_BYTES (16u << 20)

/* Translates EMQX acl.conf text into warden policy text. Errors (with file:line:col via
 * diags, which the caller initialized with the file name and source) for anything that
 * cannot be translated faithfully; warnings where warden deliberately differs from EMQX.
 * The file name in diags also names the source in the output's comments.
 * Returns WD_OK and sets *out (malloc'd, NUL-terminated policy text; the caller frees it)
 * when there were no errors; else WD_ESYNTAX (WD_ETOOBIG for an oversized input) and
 * *out = NULL. src need not be NUL-terminated. Every translation that succeeds compiles
 * with wd_policy_compile without errors (checked before returning). */
int wd_import_acl(const char *src, size_t len, struct wd_diags *diags, char **out);

#endif
