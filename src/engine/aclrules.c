/* SPDX-License-Identifier: Apache-2.0 */
/*
 * aclrules.c: see aclrules.h. An entry is one rule on one topic: its permission (always
 * allow for Redis), actions, eq flag, QoS mask and retain become the rule's.
 */
#include "engine/aclrules.h"

#include <stdlib.h>

#include "core/wd.h"

struct wd_policy *wd_acl_rules_compile(const struct wd_acl_entry *e, size_t n,
                                       wd_policy_skip_fn skip, void *ud)
{
    struct wd_policy_rule_in *in = wd_calloc(n ? n : 1, sizeof *in);
    for (size_t i = 0; i < n; i++) {
        in[i].perm = e[i].allow ? WD_DECISION_ALLOW : WD_DECISION_DENY;
        in[i].actions = e[i].actions;
        in[i].topics = (const char *const *)&e[i].topic;
        in[i].ntopics = 1;
        in[i].eq = e[i].eq;
        in[i].qos_mask = e[i].qos_mask;
        in[i].retain = e[i].retain;
    }
    struct wd_policy *p = NULL;
    if (wd_policy_compile_rules(in, n, skip, ud, &p) != WD_OK)
        p = NULL;
    free(in);
    return p;
}
