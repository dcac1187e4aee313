/* SPDX-License-Identifier: Apache-2.0 */
/*
 * metrics.h: process-wide counters and latency histograms, the one registry the Prometheus
 * endpoint (server/metrics_http.c), the admin socket's `stats` and the decision log read.
 * They describe this process only, so replicas never need to agree on them.
 *
 * Counters: one X-macro list. Each has the short name `warden admin stats` prints (kept
 * stable: scripts read it) and a Prometheus family with its labels; rows of one family are
 * adjacent in the list so that the exposition prints HELP and TYPE once per family. They
 * are relaxed atomics on their own cache line (a counter is a statistic, not a
 * synchronization point).
 *
 * Histograms: fixed buckets (WD_METRICS_BUCKETS, in seconds at exposition, nanoseconds
 * here), one relaxed atomic per bucket, plus the sum. An observation is a bucket search
 * over 14 bounds and two atomic adds: no lock, no allocation. Buckets are stored
 * non-cumulative and summed at exposition, and the exposed _count is that sum, so a scrape
 * always reads buckets that are cumulative and a _count equal to the +Inf bucket, even while
 * workers observe (the _sum may lead or lag by the observations in flight).
 *
 * Samples that are snapshots of other modules' state (cache sizes, hash threads, process
 * fds) are not kept here: their owners fill struct wd_metrics_sample arrays at scrape time
 * and wd_metrics_render() writes them with the rest.
 */
#ifndef WD_METRICS_H
#define WD_METRICS_H

#include <stddef.h>
#include <stdint.h>

#include "core/buf.h"

#define WD_ML_AUTHN "hook=\"client.authenticate\","
#define WD_ML_AUTHZ "hook=\"client.authorize\","

/* X(id, admin stats name, Prometheus family, labels, help of the family) */
#define WD_METRICS_MAP(X)                                                                          \
    X(RPC_CALLS, "rpc_calls_total", "warden_rpc_calls_total", "",                                  \
      "gRPC calls answered (any method, any status)")                                              \
    X(RPC_BAD_REQUEST, "rpc_bad_request_total", "warden_rpc_bad_requests_total", "",               \
      "requests that could not be decoded or were invalid")                                        \
    X(RPC_UNIMPLEMENTED, "rpc_unimplemented_total", "warden_rpc_unimplemented_total", "",          \
      "calls to unknown methods")                                                                  \
    X(RPC_FAILED, "rpc_failed_total", "warden_rpc_failed_total", "",                               \
      "calls answered with an error status")                                                       \
    X(AUTHN_ALLOW, "authn_allow_total", "warden_decisions_total",                                  \
      WD_ML_AUTHN "decision=\"allow\"", "decisions by hook and outcome")                           \
    X(AUTHN_DENY, "authn_deny_total", "warden_decisions_total", WD_ML_AUTHN "decision=\"deny\"",   \
      "")                                                                                          \
    X(AUTHN_NOMATCH, "authn_nomatch_total", "warden_decisions_total",                              \
      WD_ML_AUTHN "decision=\"nomatch\"", "")                                                      \
    X(AUTHZ_ALLOW, "authz_allow_total", "warden_decisions_total",                                  \
      WD_ML_AUTHZ "decision=\"allow\"", "")                                                        \
    X(AUTHZ_DENY, "authz_deny_total", "warden_decisions_total", WD_ML_AUTHZ "decision=\"deny\"",   \
      "")                                                                                          \
    X(AUTHZ_NOMATCH, "authz_nomatch_total", "warden_decisions_total",                              \
      WD_ML_AUTHZ "decision=\"nomatch\"", "")                                                      \
    X(HEALTH_CHECKS, "health_checks_total", "warden_grpc_health_checks_total", "",                 \
      "grpc.health.v1 Check calls")                                                                \
    X(PROVIDER_LOADED, "provider_loaded_total", "warden_provider_loaded_total", "",                \
      "OnProviderLoaded calls (an EMQX node registered the hooks)")                                \
    X(AUTHN_CACHE_HITS, "authn_cache_hits_total", "warden_authn_cache_hits_total", "",             \
      "credential checks answered by the cache")                                                   \
    X(PASSWD_CHECKS, "passwd_checks_total", "warden_password_hashes_total", "",                    \
      "password hashes computed (cache misses)")                                                   \
    X(AUTHN_COALESCED, "authn_coalesced_total", "warden_authn_coalesced_total", "",                \
      "credential checks that waited for an identical one")                                        \
    X(AUTHZ_CACHE_HITS, "authz_cache_hits_total", "warden_authz_cache_hits_total", "",             \
      "Redis ACLs served from the cache")                                                          \
    X(REDIS_LOOKUPS, "redis_lookups_total", "warden_redis_commands_total", "",                     \
      "Redis lookups sent (user and ACL)")                                                         \
    X(REDIS_ERRORS, "redis_errors_total", "warden_redis_errors_total", "",                         \
      "Redis lookups that failed (down, slow, wrong type)")                                        \
    X(REDIS_RETRIED, "redis_retried_total", "warden_redis_retried_total", "",                      \
      "Redis requests re-sent once on a new connection after the server closed or reset theirs")   \
    X(JWT_VERIFIED, "jwt_verified_total", "warden_jwt_verified_total", "",                         \
      "tokens verified (signature and claims)")                                                    \
    /* refusals by reason: in the order of enum wd_jwt_status (store/jwt.h), checked there */      \
    X(JWT_REFUSED_TOO_BIG, "jwt_refused_too_big_total", "warden_jwt_refused_total",                \
      "reason=\"too_big\"", "tokens refused, by reason")                                           \
    X(JWT_REFUSED_MALFORMED, "jwt_refused_malformed_total", "warden_jwt_refused_total",            \
      "reason=\"malformed\"", "")                                                                  \
    X(JWT_REFUSED_ALG, "jwt_refused_alg_total", "warden_jwt_refused_total",                        \
      "reason=\"alg_refused\"", "")                                                                \
    X(JWT_REFUSED_KID, "jwt_refused_kid_total", "warden_jwt_refused_total",                        \
      "reason=\"unknown_kid\"", "")                                                                \
    X(JWT_REFUSED_SIGNATURE, "jwt_refused_signature_total", "warden_jwt_refused_total",            \
      "reason=\"bad_signature\"", "")                                                              \
    X(JWT_REFUSED_EXPIRED, "jwt_refused_expired_total", "warden_jwt_refused_total",                \
      "reason=\"expired\"", "")                                                                    \
    X(JWT_REFUSED_NBF, "jwt_refused_nbf_total", "warden_jwt_refused_total",                        \
      "reason=\"not_yet_valid\"", "")                                                              \
    X(JWT_REFUSED_IAT, "jwt_refused_iat_total", "warden_jwt_refused_total",                        \
      "reason=\"iat_future\"", "")                                                                 \
    X(JWT_REFUSED_ISS, "jwt_refused_iss_total", "warden_jwt_refused_total", "reason=\"bad_iss\"",  \
      "")                                                                                          \
    X(JWT_REFUSED_AUD, "jwt_refused_aud_total", "warden_jwt_refused_total", "reason=\"bad_aud\"",  \
      "")                                                                                          \
    X(JWT_REFUSED_CLAIM_MISSING, "jwt_refused_claim_missing_total", "warden_jwt_refused_total",    \
      "reason=\"claim_missing\"", "")                                                              \
    X(JWT_REFUSED_CLAIM_MISMATCH, "jwt_refused_claim_mismatch_total", "warden_jwt_refused_total",  \
      "reason=\"claim_mismatch\"", "")                                                             \
    X(JWT_REFUSED_NO_KEYS, "jwt_refused_no_keys_total", "warden_jwt_refused_total",                \
      "reason=\"no_keys\"", "")                                                                    \
    X(SESSIONS_CREATED, "sessions_created_total", "warden_sessions_created_total", "",             \
      "sessions recorded by authenticate")                                                         \
    X(SESSIONS_DROPPED, "sessions_dropped_total", "warden_sessions_dropped_total", "",             \
      "sessions dropped on client.disconnected")                                                   \
    X(CONN_ACCEPTED, "connections_accepted_total", "warden_connections_accepted_total", "",        \
      "connections accepted and handed to a worker (transport h2)")                                \
    X(CONN_CLOSED, "connections_closed_total", "warden_connections_closed_total", "",              \
      "accepted connections closed (transport h2)")                                                \
    X(CONN_REFUSED_MAX, "connections_refused_max_total", "warden_connections_refused_total",       \
      "reason=\"max_connections\"", "connections closed at accept, by limit (transport h2)")       \
    X(CONN_REFUSED_PEER, "connections_refused_peer_total", "warden_connections_refused_total",     \
      "reason=\"max_connections_per_peer\"", "")                                                   \
    X(POLICY_RELOAD_OK, "policy_reloads_ok_total", "warden_policy_reloads_total",                  \
      "outcome=\"ok\"", "policy reloads (SIGHUP, file change), by outcome")                        \
    X(POLICY_RELOAD_FAILED, "policy_reloads_failed_total", "warden_policy_reloads_total",          \
      "outcome=\"failed\"", "")                                                                    \
    X(DLOG_LINES, "decision_log_lines_total", "warden_decision_log_lines_total", "",               \
      "decision log lines written")                                                                \
    X(DLOG_DROPPED, "decision_log_dropped_total", "warden_decision_log_dropped_total", "",         \
      "decision log lines dropped: the queue was full (calls never wait for the log)")             \
    X(DLOG_ERRORS, "decision_log_errors_total", "warden_decision_log_errors_total", "",            \
      "decision log writes or reopens that failed")                                                \
    X(SESSIONS_SHARED_READS, "sessions_shared_reads_total", "warden_sessions_shared_reads_total",  \
      "", "local session misses read from Redis (session_store redis)")                            \
    X(SESSIONS_SHARED_FOUND, "sessions_shared_found_total", "warden_sessions_shared_found_total",  \
      "", "sessions read from Redis and used by this replica")                                     \
    X(SESSIONS_SHARED_ERRORS, "sessions_shared_errors_total",                                      \
      "warden_sessions_shared_errors_total", "",                                                   \
      "shared-session writes, reads and deletes that failed (Redis down, slow, refused)")          \
    X(SESSIONS_SHARED_REFUSED, "sessions_shared_refused_total",                                    \
      "warden_sessions_shared_refused_total", "",                                                  \
      "sessions in Redis refused: malformed, oversized or not warden's")

enum wd_metric {
#define WD_METRIC_ENUM(id, stat, family, labels, help) WD_M_##id,
    WD_METRICS_MAP(WD_METRIC_ENUM)
#undef WD_METRIC_ENUM
        WD_M__COUNT
};

void wd_metrics_inc(enum wd_metric m);
void wd_metrics_add(enum wd_metric m, uint64_t n);
uint64_t wd_metrics_get(enum wd_metric m);
/* The short name `warden admin stats` prints ("authn_allow_total"). */
const char *wd_metrics_name(enum wd_metric m);
const char *wd_metrics_family(enum wd_metric m); /* "warden_decisions_total" */
const char *wd_metrics_labels(enum wd_metric m); /* "hook=\"...\",decision=\"allow\"" or "" */
const char *wd_metrics_help(enum wd_metric m);   /* the family's help, on its first row */

/* ---- histograms ---- */

/* X(id, family, labels); the help is per family, in metrics.c */
#define WD_HISTOGRAMS_MAP(X)                                                                       \
    X(CALL_AUTHN, "warden_call_duration_seconds", "hook=\"client.authenticate\"")                  \
    X(CALL_AUTHZ, "warden_call_duration_seconds", "hook=\"client.authorize\"")                     \
    X(CALL_PUBLISH, "warden_call_duration_seconds", "hook=\"message.publish\"")                    \
    X(CALL_DISCONNECTED, "warden_call_duration_seconds", "hook=\"client.disconnected\"")           \
    X(CALL_OTHER, "warden_call_duration_seconds", "hook=\"other\"")                                \
    X(REDIS, "warden_redis_duration_seconds", "")

enum wd_histogram {
#define WD_HISTOGRAM_ENUM(id, family, labels) WD_H_##id,
    WD_HISTOGRAMS_MAP(WD_HISTOGRAM_ENUM)
#undef WD_HISTOGRAM_ENUM
        WD_H__COUNT
};

/* Upper bounds in seconds (exposition) and nanoseconds; +Inf follows the last. */
#define WD_METRICS_BUCKETS 14
extern const uint64_t wd_metrics_bucket_ns[WD_METRICS_BUCKETS];

/* Records one duration (nanoseconds). Lock-free; any thread. */
void wd_metrics_observe(enum wd_histogram h, uint64_t ns);

struct wd_metrics_hist_snapshot {
    uint64_t cumulative[WD_METRICS_BUCKETS + 1]; /* the last is +Inf, equal to count */
    uint64_t count;
    uint64_t sum_ns;
};
void wd_metrics_hist_get(enum wd_histogram h, struct wd_metrics_hist_snapshot *out);

/* A monotonic clock in nanoseconds, for durations. */
uint64_t wd_metrics_now_ns(void);

/* ---- exposition ---- */

enum wd_metrics_type { WD_METRICS_COUNTER, WD_METRICS_GAUGE };

/* One sample owned by another module, written with the registry's. Samples of one family
 * are adjacent; help and type are taken from the first of them. */
struct wd_metrics_sample {
    const char *family;
    enum wd_metrics_type type;
    const char *help;
    char labels[160]; /* `name="value",...` (values already escaped), or "" */
    double value;
};

/* Appends the Prometheus text exposition (format 0.0.4) of every counter and histogram,
 * then of the n extra samples, to out. */
void wd_metrics_render(struct wd_buf *out, const struct wd_metrics_sample *extra, size_t n);

/* Escapes s for a label value (backslash, double quote, newline) into out (cap bytes,
 * truncated, always terminated). Returns out. */
char *wd_metrics_label_escape(char *out, size_t cap, const char *s);

#endif
