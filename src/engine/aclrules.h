/* SPDX-License-Identifier: Apache-2.0 */
/*
 * aclrules.h: EMQX ACL entries (store/emqx_acl.h: a Redis ACL, a JWT ACL claim) compiled to
 * a policy of store rules (policy.h wd_policy_compile_rules), so a store's rules are
 * matched by the same code as the policy's own. The one place that maps an entry to a
 * rule: the Redis ACL source (backends.c), the JWT ident (jwtident.c) and the offline
 * tools (tools.c) all compile through it.
 */
#ifndef WD_ENGINE_ACLRULES_H
#define WD_ENGINE_ACLRULES_H

#include <stddef.h>

#include "policy/policy.h"
#include "store/emqx_acl.h"

/* Compiles n entries in order (rule i is entry i, its line i + 1); an entry that does not
 * compile is skipped and reported through skip (may be NULL). Returns the policy (one
 * reference; it answers NOMATCH when no rule matches), or NULL when it could not be built
 * (more than WD_POLICY_MAX_RULES entries). */
struct wd_policy *wd_acl_rules_compile(const struct wd_acl_entry *e, size_t n,
                                       wd_policy_skip_fn skip, void *ud);

#endif
