/* SPDX-License-Identifier: Apache-2.0 */
/*
 * redis_int.h: what the two hiredis wrappers of the store layer share, the blocking client
 * (redis.c) and the per-worker asynchronous one (redis_async.c): the argv of each lookup and
 * of the connection set-up (AUTH, SELECT), and the functions that turn a redisReply into
 * warden's own types. Module-internal (the `wd_redis__` prefix): only those two files
 * include it, so no redisReply leaves them. The reply functions only read the reply; the
 * caller frees it (redis.c) or hiredis does after the callback (redis_async.c).
 */
#ifndef WD_STORE_REDIS_INT_H
#define WD_STORE_REDIS_INT_H

#include <hiredis/hiredis.h>
#include <stdbool.h>
#include <stddef.h>
#include <sys/time.h>

#include "store/redis.h"

/* Checks opts (port 0..65535, database >= 0: else WD_EINVAL) and writes them to *out with
 * every default filled in (host, port, timeouts, backoff; backoff_max >= backoff_initial).
 * The strings stay borrowed from opts. The one place both clients take their defaults. */
int wd_redis__opts_resolve(const struct wd_redis_opts *opts, struct wd_redis_opts *out);

/* argv of `HMGET key password_hash password salt is_superuser` (key borrowed). */
#define WD_REDIS__USER_ARGC 6
void wd_redis__user_argv(const char *key, size_t keylen, const char **argv, size_t *lens);

/* argv of `HGETALL key` (key borrowed). */
#define WD_REDIS__ACL_ARGC 2
void wd_redis__acl_argv(const char *key, size_t keylen, const char **argv, size_t *lens);

/* argv of the AUTH to send on a fresh connection (2 or 3 elements: AUTH [user] password),
 * pointing into username/password (borrowed). Returns argc, 0 when password is NULL. */
int wd_redis__auth_argv(const char *username, const char *password, const char **argv,
                        size_t *lens);

/* argv of SELECT db, the number written into buf (at least 16 bytes). Returns argc, 0 when
 * db is 0 (nothing to select). */
int wd_redis__select_argv(int db, char *buf, const char **argv, size_t *lens);

/* argv of ROLE (one element): asked on each new connection when the address came from
 * Sentinel (redis_sentinel.h), as the Sentinel client guidelines say. */
void wd_redis__role_argv(const char **argv, size_t *lens);

/* The reply to ROLE: WD_OK when it says "master"; WD_ENOENT when it says anything else
 * ("slave", "sentinel": not the master, reason in err); WD_EBACKEND for an error reply (NOPERM:
 * the ACL user needs +role) or a reply of the wrong shape, reason in err. */
int wd_redis__role_from_reply(const redisReply *rep, char *err, size_t errcap);

/* Whether an error reply says the server is a replica (READONLY, or MASTERDOWN / a replica's
 * refusal): the master moved. */
bool wd_redis__reply_not_master(const redisReply *rep);

/* true when an AUTH or SELECT reply is +OK. Otherwise the reason goes to err ("WRONGPASS
 * ...", "unexpected reply"; errcap may be 0). */
bool wd_redis__setup_reply_ok(const redisReply *rep, char *err, size_t errcap);

/* The reply to the HMGET above as wd_redis_user_get() describes it: WD_OK, WD_ENOENT
 * (out->has_fields set) or WD_EBACKEND (an error reply, whose text goes to err, or a reply
 * of the wrong shape). *out is zeroed on entry and released on WD_EBACKEND. */
int wd_redis__user_from_reply(const redisReply *rep, struct wd_redis_user *out, char *err,
                              size_t errcap);

/* Wipes the stored hash, password and salt out of an HMGET reply (they held secrets)
 * before hiredis frees it. NULL is fine. */
void wd_redis__user_reply_wipe(redisReply *rep);

/* The reply to HGETALL as wd_redis_acl_get() describes it: WD_OK with the parsed entries,
 * or WD_EBACKEND (error reply or wrong shape, reason in err). */
int wd_redis__acl_from_reply(const redisReply *rep, struct wd_acl_entry **out, size_t *nout,
                             wd_redis_acl_skip_fn skip, void *ud, char *err, size_t errcap);

/* Copies a reply into *out (wd_redis_command's contract): WD_OK, WD_EBACKEND for an error
 * reply (its text in out->str and err), WD_ETOOBIG for a string over max_len (0: none). */
int wd_redis__raw_from_reply(const redisReply *rep, size_t max_len, struct wd_redis_raw *out,
                             char *err, size_t errcap);

/* A timeout in milliseconds as hiredis takes it (connect and command timeouts). */
static inline struct timeval wd_redis__ms_tv(unsigned ms)
{
    struct timeval tv = {(time_t)(ms / 1000), (suseconds_t)(ms % 1000) * 1000};
    return tv;
}

#endif
