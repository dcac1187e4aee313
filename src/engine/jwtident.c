/* SPDX-License-Identifier: Apache-2.0 */
/*
 * jwtident.c: see jwtident.h. The ACL claim's rules become policy rules (allow or deny,
 * actions, one topic, eq, QoS mask, retain) compiled by the policy layer, so a JWT ACL is
 * matched by the same code as the policy's own rules.
 */
#include "engine/jwtident.h"

#include <stdlib.h>
#include <string.h>

#include "core/log.h"
#include "core/wd.h"
#include "engine/aclrules.h"

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
    for (size_t i = 0; i < r->n_acl_errors; i++)
        wd_log_warn("acl", "JWT ACL of %s: %s (entry skipped)", who, r->acl_errors[i]);
    struct skip_ctx sk = {who, 0};
    struct wd_policy *p = wd_acl_rules_compile(r->acl, r->n_acl, log_skip, &sk);
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

int wd_jwt_ident_authorize(const struct wd_jwt_ident *jwt, const struct wd_authz_req *req,
                           struct wd_policy_result *out, const char **reason)
{
    struct wd_policy_result r;
    if (!jwt)
        return 0; /* authenticated without a token: this source has nothing to say */
    switch (jwt->res.acl_format) {
    case WD_JWT_ACL_ABSENT:
        return 0;
    case WD_JWT_ACL_INVALID:
        out->decision = WD_DECISION_DENY;
        *reason = "jwt: ACL claim is neither an object nor a list: denied";
        return 1;
    case WD_JWT_ACL_V1_OBJECT:
    case WD_JWT_ACL_V2_LIST:
        break;
    }
    if (!jwt->acl) {
        out->decision = WD_DECISION_DENY;
        *reason = "jwt: ACL could not be compiled: denied";
        return 1;
    }
    wd_policy_authorize(jwt->acl, req, &r);
    if (r.decision == WD_DECISION_NOMATCH) {
        if (jwt->res.acl_format == WD_JWT_ACL_V2_LIST)
            return 0;
        /* EMQX: the v1 object form denies what it does not allow */
        out->decision = WD_DECISION_DENY;
        *reason = "jwt: ACL claim (pub/sub/all) does not allow it";
        return 1;
    }
    out->decision = r.decision;
    *reason = "jwt ACL rule matched";
    return 1;
}

static const char *ident_claim(const void *ctx, const char *name, size_t len)
{
    const struct wd_jwt_ident *j = ctx;
    char buf[256];
    if (len >= sizeof buf)
        return NULL;
    memcpy(buf, name, len);
    buf[len] = '\0';
    return wd_jwt_result_claim(&j->res, buf);
}

void wd_jwt_ident_bind_claims(const struct wd_jwt_ident *j, struct wd_client *c)
{
    if (j) {
        c->claim = ident_claim;
        c->claim_ctx = j;
    }
}
