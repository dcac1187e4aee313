/* SPDX-License-Identifier: Apache-2.0 */
/*
 * metrics.h: process-wide counters, the points a metrics endpoint and the audit log will
 * read. One X-macro list; counters are relaxed atomics (a counter is a statistic, not a
 * synchronization point). They describe this process only, so replicas never need to
 * agree on them.
 */
#ifndef WD_METRICS_H
#define WD_METRICS_H

#include <stdint.h>

#define WD_METRICS_MAP(X)                                                                          \
    X(RPC_CALLS, "rpc_calls_total", "RPCs answered (any method, any status)")                      \
    X(RPC_BAD_REQUEST, "rpc_bad_request_total", "requests that could not be decoded")              \
    X(RPC_UNIMPLEMENTED, "rpc_unimplemented_total", "calls to unknown methods")                    \
    X(RPC_FAILED, "rpc_failed_total", "calls that ended with an error status")                     \
    X(AUTHN_ALLOW, "authn_allow_total", "authentications allowed")                                 \
    X(AUTHN_DENY, "authn_deny_total", "authentications denied")                                    \
    X(AUTHN_NOMATCH, "authn_nomatch_total", "authentications nothing decided")                     \
    X(AUTHZ_ALLOW, "authz_allow_total", "authorizations allowed")                                  \
    X(AUTHZ_DENY, "authz_deny_total", "authorizations denied")                                     \
    X(AUTHZ_NOMATCH, "authz_nomatch_total", "authorizations nothing decided")                      \
    X(HEALTH_CHECKS, "health_checks_total", "grpc.health.v1 Check calls")                          \
    X(PROVIDER_LOADED, "provider_loaded_total", "OnProviderLoaded calls")                          \
    X(AUTHN_CACHE_HITS, "authn_cache_hits_total", "credential checks answered by the cache")       \
    X(PASSWD_CHECKS, "passwd_checks_total", "password hashes computed (cache misses)")             \
    X(AUTHN_COALESCED, "authn_coalesced_total",                                                    \
      "credential checks that waited for an identical one")                                        \
    X(AUTHZ_CACHE_HITS, "authz_cache_hits_total", "Redis ACLs served from the cache")              \
    X(REDIS_LOOKUPS, "redis_lookups_total", "Redis commands sent (user and ACL lookups)")          \
    X(REDIS_ERRORS, "redis_errors_total", "Redis lookups that failed (down, slow, wrong type)")    \
    X(JWT_VERIFIED, "jwt_verified_total", "tokens verified (signature and claims)")                \
    X(JWT_REFUSED, "jwt_refused_total", "tokens refused")                                          \
    X(SESSIONS_CREATED, "sessions_created_total", "sessions recorded by authenticate")             \
    X(SESSIONS_DROPPED, "sessions_dropped_total", "sessions dropped on client.disconnected")       \
    X(SESSIONS_SHARED_READS, "sessions_shared_reads_total",                                        \
      "local session misses read from Redis (session_store redis)")                                \
    X(SESSIONS_SHARED_FOUND, "sessions_shared_found_total",                                        \
      "sessions read from Redis and used by this replica")                                         \
    X(SESSIONS_SHARED_ERRORS, "sessions_shared_errors_total",                                      \
      "shared-session writes, reads and deletes that failed (Redis down, slow, refused)")          \
    X(SESSIONS_SHARED_REFUSED, "sessions_shared_refused_total",                                    \
      "sessions in Redis refused: malformed, oversized or not warden's")

enum wd_metric {
#define WD_METRIC_ENUM(id, name, help) WD_M_##id,
    WD_METRICS_MAP(WD_METRIC_ENUM)
#undef WD_METRIC_ENUM
        WD_M__COUNT
};

void wd_metrics_inc(enum wd_metric m);
void wd_metrics_add(enum wd_metric m, uint64_t n);
uint64_t wd_metrics_get(enum wd_metric m);
const char *wd_metrics_name(enum wd_metric m);
const char *wd_metrics_help(enum wd_metric m);

#endif
