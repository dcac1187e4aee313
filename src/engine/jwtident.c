/* SPDX-License-Identifier: Apache-2.0 */
/*
 * jwtident.c: see jwtident.h. The ACL claim's rules become policy rules (allow or deny,
 * actions, one topic, eq, QoS mask, retain) compiled by the policy layer, so a JWT ACL is
 * matched by the same code as the policy's own rules.
 */
#include "engine/jwtident.h"

#include <stdlib.h>

#include "core/log.h"
#include "core/wd.h"

struct skip_ctx {
    const char *who;
    size_t skipped;
};

static void log_skip(void *ud, size_t index, const char *why)
{
    struct skip_ctx *s = ud;
    s->skipped++;
    wd_log_warn("acl", "JWT ACL of %s: entry %zu skipped: %s", s->who, index + 1, why);
}

/* Compiles the token's ACL claim. *skipped counts the rules that could not be used. */
static struct wd_policy *compile_acl(const struct wd_jwt_result *r, const char *who,
                                     size_t *skipped)
{
    *skipped = r->n_acl_skipped;
    if (r->acl_format != WD_JWT_ACL_V1_OBJECT && r->acl_format != WD_JWT_ACL_V2_LIST)
        return NULL;
    struct wd_policy_rule_in *in = wd_calloc(r->n_acl ? r->n_acl : 1, sizeof *in);
    for (size_t i = 0; i < r->n_acl; i++) {
        const struct wd_acl_entry *a = &r->acl[i];
        in[i].perm = a->allow ? WD_DECISION_ALLOW : WD_DECISION_DENY;
        in[i].actions = a->actions;
        in[i].topics = (const char *const *)&a->topic;
        in[i].ntopics = 1;
        in[i].eq = a->eq;
        in[i].qos_mask = a->qos_mask;
        in[i].retain = a->retain;
    }
    for (size_t i = 0; i < r->n_acl_errors; i++)
        wd_log_warn("acl", "JWT ACL of %s: %s (entry skipped)", who, r->acl_errors[i]);
    struct skip_ctx sk = {who, 0};
    struct wd_policy *p = NULL;
    if (wd_policy_compile_rules(in, r->n_acl, log_skip, &sk, &p) != WD_OK)
        p = NULL;
    free(in);
    *skipped += sk.skipped;
    return p;
}

static void ident_free(struct wd_jwt_ident *j)
{
    wd_jwt_result_cleanup(&j->res);
    wd_policy_release(j->acl);
    free(j);
}

int wd_jwt_ident_new(struct wd_jwt_result *res, const char *who, size_t extra_bytes,
                     struct wd_jwt_ident **out)
{
    struct wd_jwt_ident *j = wd_calloc(1, sizeof *j);
    atomic_init(&j->refs, 1);
    j->res = *res;
    size_t skipped = 0;
    j->acl = compile_acl(&j->res, who, &skipped);
    if (skipped && j->res.acl_format == WD_JWT_ACL_V2_LIST) {
        ident_free(j);
        *out = NULL;
        return WD_EINVAL;
    }
    j->bytes = sizeof *j + extra_bytes + (j->acl ? wd_policy_memory(j->acl) : 0);
    *out = j;
    return WD_OK;
}

struct wd_jwt_ident *wd_jwt_ident_get(struct wd_jwt_ident *j)
{
    if (j)
        atomic_fetch_add(&j->refs, 1);
    return j;
}

void wd_jwt_ident_release(struct wd_jwt_ident *j)
{
    if (j && atomic_fetch_sub(&j->refs, 1) == 1)
        ident_free(j);
}
