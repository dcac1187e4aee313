/* SPDX-License-Identifier: Apache-2.0 */
/*
 * session_share.h: the Redis side of `session_store redis` (docs/sessions.md "Shared
 * sessions"): where a session lives in Redis, the commands a replica sends to write, read
 * and delete it, and what a reply means. It does no I/O: backends.c sends the commands on a
 * worker's asynchronous connection (a call waits, never blocks) or on a blocking client,
 * and hands the reply back here. The local table in front is engine/sessions.h; the
 * record's encoding is store/session_rec.h.
 *
 * Key layout: session_redis_prefix + clientid (the clientid's bytes as they are: the key
 * is one argument of the command, never parsed). The configuration check refuses a prefix
 * that overlaps the fixed head of redis_authn_key or redis_acl_key, so a client id can
 * never name a user record or an ACL (a SET there would replace a password hash).
 *
 * Thread safety: the handle is immutable after wd_session_share_new(); every function may
 * be called from any thread.
 */
#ifndef WD_ENGINE_SESSION_SHARE_H
#define WD_ENGINE_SESSION_SHARE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/buf.h"
#include "core/config.h"
#include "core/request.h"
#include "engine/sessions.h"
#include "store/redis.h"

struct wd_session_share;

/* How long a replica remembers that Redis has no session for a connection (the local
 * table's miss_ttl_ms), so that a client without one costs one Redis read per second at
 * most, not one per call. */
#define WD_SESSION_SHARE_MISS_TTL_MS 1000

/* One command to send: argv[i] (lens[i] bytes) are valid until wd_share_cmd_cleanup(). */
#define WD_SHARE_CMD_MAX_ARGS 7
struct wd_share_cmd {
    int argc;
    const char *argv[WD_SHARE_CMD_MAX_ARGS];
    size_t lens[WD_SHARE_CMD_MAX_ARGS];
    size_t max_len; /* largest string reply accepted (0: no limit) */
    char *own[4];   /* storage of the arguments built for this command */
    char num[24];
};
void wd_share_cmd_cleanup(struct wd_share_cmd *c); /* NULL-safe; the command is empty after */

/* Reads the session_* directives. *out is NULL when sessions are not shared (session_store
 * local, or auto without Redis); redis_on: Redis is configured. Each problem is one line
 * appended to e and counted in *n (then *out is NULL). */
void wd_session_share_new(const struct wd_config *cfg, bool redis_on, struct wd_session_share **out,
                          struct wd_buf *e, int *n);
void wd_session_share_free(struct wd_session_share *s); /* NULL-safe */

/* The write after a login: `SET key record PX ttl`, one command, so a reader sees the old
 * session or the new one, never a mix. The TTL never outlives the token nor session_ttl
 * (end_ms, on t's clock; 0: none) nor session_redis_ttl. sess NULL (not recorded locally),
 * or a record that cannot be shared (too large, already ended): `DEL key`, so the
 * clientid's older session in Redis does not outlive this login. */
void wd_session_share_put(const struct wd_session_share *s, struct wd_sessions *t,
                          const char *clientid, const struct wd_session *sess, int64_t end_ms,
                          struct wd_share_cmd *out);

/* The read of a session the local table does not have: `GET key`, replies over
 * WD_SESSION_REC_MAX bytes refused. */
void wd_session_share_get(const struct wd_session_share *s, const char *clientid,
                          struct wd_share_cmd *out);

/* A disconnect's delete: an EVAL of a script that deletes the record only if it is this
 * connection's (username, peer host, and peer port unless either is 0: the comparison
 * wd_sessions_drop makes locally), inside Redis, so a new login's session written between
 * a read and a DEL is never deleted. Always EVAL, never EVALSHA: after a restart, a SCRIPT
 * FLUSH or a failover, EVALSHA answered NOSCRIPT and the EVAL sent then ran after a GET
 * pipelined behind it, which brought the dropped session back. Redis caches the compiled
 * script by its body. */
void wd_session_share_drop(const struct wd_session_share *s, const struct wd_client *c,
                           struct wd_share_cmd *out);

enum wd_share_found {
    WD_SHARE_FOUND,   /* a session of c's, adopted into t */
    WD_SHARE_NONE,    /* none in Redis, or another connection's or ended: a miss is noted */
    WD_SHARE_REFUSED, /* not a record of warden's, or too large: a miss is noted; why says */
    WD_SHARE_FAILED,  /* Redis failed: nothing noted, the caller fails closed */
};

/* What the reply to wd_session_share_get() means for the connection c (rc, raw as
 * wd_redis_command() gives them). *out: a reference to the adopted session (FOUND) or NULL.
 * who: how logs name the client. why (cap bytes): the reason of REFUSED. */
enum wd_share_found wd_session_share_found(struct wd_sessions *t, const struct wd_client *c, int rc,
                                           const struct wd_redis_raw *raw, const char *who,
                                           struct wd_session **out, char *why, size_t cap);

#endif
