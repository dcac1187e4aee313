/* SPDX-License-Identifier: Apache-2.0 */
/*
 * jwtident.h: a verified token as the engine keeps it (internal to src/engine/, and the
 * offline tools.c, which make one from a test case's claims): the
 * verifier's result (claims, ACL rules, exp, is_superuser) and its ACL claim compiled to a
 * policy, shared by reference between the verified-token cache entry and the sessions that
 * came from it (backends.c makes them from a token, sessions.c from a session read back
 * from Redis). Immutable once made; the reference count is atomic.
 */
#ifndef WD_ENGINE_JWTIDENT_H
#define WD_ENGINE_JWTIDENT_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>

#include "policy/policy.h"
#include "store/jwt.h"

struct wd_jwt_ident {
    atomic_uint refs;
    struct wd_jwt_result res;
    struct wd_policy *acl; /* compiled ACL claim; NULL when absent or invalid */
    size_t bytes;          /* what it costs, for the cache and session budgets */
};

/*
 * Makes an ident of res (taken over: the caller's copy must not be cleaned up), compiling
 * its ACL claim; who (client_label form, for logs) names the client in warnings about
 * skipped rules. extra_bytes is added to the memory estimate (the token's length).
 * Returns WD_OK with *out (one reference), or WD_EINVAL when the token must be refused: a
 * rule of the list (v2) form was skipped, and using the rest could allow what the issuer
 * meant to refuse (EMQX refuses such a token too); res is released then.
 */
int wd_jwt_ident_new(struct wd_jwt_result *res, const char *who, size_t extra_bytes,
                     struct wd_jwt_ident **out);
struct wd_jwt_ident *wd_jwt_ident_get(struct wd_jwt_ident *j); /* +1; NULL-safe */
void wd_jwt_ident_release(struct wd_jwt_ident *j);             /* -1; NULL-safe */

/* The JWT rule source (`rules jwt`) for a client whose session holds j (NULL: it
 * authenticated without a token). As wd_policy_sources.eval: 1 when the token's ACL claim
 * decides (out->decision; *reason a static text for logs), 0 when it has nothing to say
 * (no token, no ACL claim, or no rule of the list form matched). The object form denies
 * what it does not allow; an invalid or uncompilable ACL claim denies. */
int wd_jwt_ident_authorize(const struct wd_jwt_ident *j, const struct wd_authz_req *req,
                           struct wd_policy_result *out, const char **reason);

/* Points c's ${claim.NAME} at j's claims (nothing when j is NULL); j must outlive c's use. */
void wd_jwt_ident_bind_claims(const struct wd_jwt_ident *j, struct wd_client *c);

#endif
