/* SPDX-License-Identifier: Apache-2.0 */
/*
 * sessions.h: what authentication learned about a client, kept by clientid for authorize
 * (docs/sessions.md). Internal to src/engine/: backends.c records and looks sessions up
 * (and shares them through Redis, docs/sessions.md "Shared sessions"); engine.c and the
 * JWT source read them through the functions below.
 *
 * The table is an LRU (store/cache.h, a second instance next to the credential cache)
 * bounded by entries and bytes, with a TTL per session: the token's expiry (plus the JWT
 * leeway) and session_ttl, whichever comes first. A session is bound to the connection
 * that made it: wd_sessions_lookup() gives it only to the same username, peer host and
 * peer port (a port of 0, EMQX before 5.4, is not compared).
 *
 * Time: both clocks come from struct wd_clock (core/clock.h; NULL: the real ones), so tests
 * move time without waiting: `mono_ms` (never goes back) orders the LRU and runs the TTLs,
 * `unix_s` (the wall clock) is what a token's exp is compared with.
 *
 * Handles: struct wd_session is opaque and reference-counted. A lookup returns a reference
 * that keeps the session alive while the table evicts, replaces or drops it; release it
 * with wd_session_release(). Thread safety: every function may be called from any thread.
 */
#ifndef WD_ENGINE_SESSIONS_H
#define WD_ENGINE_SESSIONS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/buf.h"
#include "core/clock.h"
#include "core/request.h"
#include "store/session_rec.h" /* enum wd_session_source */

struct wd_jwt_ident;

struct wd_sessions_config {
    size_t max_entries;  /* session_max (>= 16) */
    size_t max_bytes;    /* session_memory (>= 64 KiB) */
    int64_t ttl_ms;      /* session_ttl; 0: none (token expiry and eviction only) */
    int64_t leeway_s;    /* jwt_leeway, added to a token's exp */
    int64_t miss_ttl_ms; /* how long a remembered miss stands (wd_sessions_note_miss); 0: 1 s */
    const struct wd_clock *clock; /* copied; NULL: wd_clock_real */
};

struct wd_sessions;
struct wd_session;

/* NULL when the limits are invalid (fewer than 16 entries, less than 64 KiB). */
struct wd_sessions *wd_sessions_new(const struct wd_sessions_config *cfg);
void wd_sessions_free(struct wd_sessions *t); /* NULL-safe */

/*
 * Records the session of client c after an ALLOW, replacing whatever c->clientid had:
 * src, the superuser flag (cleared for WD_SESSION_OTHER: only a step that checked a
 * credential makes a superuser) and jwt (taken over; may be NULL). Returns WD_OK with, when
 * out is not NULL, a reference to the new session in *out and the Unix time in
 * milliseconds at which it ends in *end_ms (0: no end but eviction); or WD_ETOOBIG when it
 * is larger than session_memory allows: nothing is recorded and the clientid's earlier
 * session is removed too (an earlier login's rights must not outlive this one).
 */
int wd_sessions_put(struct wd_sessions *t, const struct wd_client *c, enum wd_session_source src,
                    bool superuser, struct wd_jwt_ident *jwt, struct wd_session **out,
                    int64_t *end_ms);

enum wd_sessions_found {
    WD_SESSIONS_MISS = 0, /* nothing usable here: none, expired, another connection's */
    WD_SESSIONS_HIT,      /* *out: this connection's session (a reference) */
    WD_SESSIONS_ABSENT,   /* a miss remembered for this connection (wd_sessions_note_miss) */
};
/* The session of the connection c is on. */
enum wd_sessions_found wd_sessions_lookup(struct wd_sessions *t, const struct wd_client *c,
                                          struct wd_session **out);

/* Remembers for miss_ttl_ms that the connection c has no session anywhere (Redis said
 * so), so that its next calls do not ask again; a live session of another connection under
 * the same clientid is kept instead (a connection that is not the session's must not be
 * able to push it out). */
void wd_sessions_note_miss(struct wd_sessions *t, const struct wd_client *c);

/*
 * A session read back from Redis (rec, taken over and cleaned up) for the connection c:
 * returns a reference to it, also recorded here under c->clientid so that the next calls
 * find it locally, when it is c's (same binding as wd_sessions_lookup) and has not ended;
 * NULL otherwise (nothing recorded). who names the client in log lines.
 */
struct wd_session *wd_sessions_adopt(struct wd_sessions *t, const struct wd_client *c,
                                     struct wd_session_rec *rec, const char *who);

/* A view of s for wd_session_rec_encode (borrowed: valid while s is; never cleaned up). */
void wd_session_rec_view(const struct wd_session *s, int64_t end_ms, struct wd_session_rec *r);

/* Drops the clientid's session if it is the one this connection made. true if dropped. */
bool wd_sessions_drop(struct wd_sessions *t, const struct wd_client *c);

/* The table's wall clock, in Unix milliseconds. */
int64_t wd_sessions_now_ms(const struct wd_sessions *t);

/* Admin flushes; return how many were dropped. */
size_t wd_sessions_flush_all(struct wd_sessions *t);
size_t wd_sessions_flush_user(struct wd_sessions *t, const char *user, size_t len);
void wd_sessions_stats(struct wd_sessions *t, struct wd_buf *out);
/* The table's counters (entries, bytes, evictions ...), for the metrics endpoint. */
struct wd_cache_stats;
void wd_sessions_cache_stats(struct wd_sessions *t, struct wd_cache_stats *out);

/* ---- one session ---- */

struct wd_session *wd_session_get(struct wd_session *s); /* +1; NULL-safe */
void wd_session_release(struct wd_session *s);           /* -1; NULL-safe */
/* The session belongs to the connection c is on and has not expired (now). */
bool wd_session_usable(const struct wd_sessions *t, const struct wd_session *s,
                       const struct wd_client *c);
bool wd_session_superuser(const struct wd_session *s); /* NULL: false */
/* Its verified token (claims, ACL), or NULL (authenticated without one). */
const struct wd_jwt_ident *wd_session_jwt(const struct wd_session *s);
/* Sets c->claim / c->claim_ctx from the session's JWT claims (no-op without them). */
void wd_session_bind_claims(const struct wd_session *s, struct wd_client *c);

#endif
