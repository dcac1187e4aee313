/* SPDX-License-Identifier: Apache-2.0 */
/*
 * redis_sentinel.h: the current Redis master, as Redis Sentinel announces it
 * (`redis_sentinel` + `redis_sentinel_master`, docs/redis.md "High availability").
 *
 * One object per process, shared by every Redis client of warden (the blocking clients of
 * redis.h, each worker's redis_async.h connection, the invalidation stream of
 * redis_inval.h): a client given one (wd_redis_opts.sentinel) takes the master's address from
 * it each time it connects, instead of redis_host/redis_port, and reconnects when the
 * generation (wd_redis_sentinel_master) moves. The address published is always numeric
 * (resolved here, off the loops) and always one that answered ROLE with "master" when it was
 * published: the Redis documentation's "Guidelines for Redis clients with support for Redis
 * Sentinel", in short:
 *
 * - discovery: the sentinels are asked in turn (`SENTINEL get-master-addr-by-name NAME`),
 *   each connect bounded by the connect timeout and each command (its whole reply, not each
 *   read) by the command timeout, each reply by 64 KiB and 1024 elements per array; the
 *   first that answers with an address (printable ASCII, port 1..65535) moves to the head
 *   of the list; the address is then checked with
 *   ROLE on a connection of its own (AUTH with the data credentials first). A "slave" answer
 *   (the failover is not over, or a stale sentinel) lets the next sentinel answer; only a
 *   round that ends without a master drops the published address (discovery retries);
 * - following failovers: one connection to a sentinel is subscribed to `+switch-master`; a
 *   message for this master is verified (ROLE) and published; a burst of them is coalesced
 *   (the last one wins, one verification per 100 ms at most, none for the address already
 *   published). If that connection fails (refused, closed, no whole reply to a keepalive
 *   PING within 2 s, a message over 64 KiB), another sentinel is subscribed and discovery
 *   runs again (a switch may have been missed meanwhile);
 * - a periodic re-check: 5 s after the last round that found the master, the sentinels are
 *   asked again (a +switch-master lost while the subscription looked alive); an unchanged
 *   answer is taken as it is (no connection to the master, nothing published);
 * - clients say what they see: wd_redis_sentinel_suspect() (a connection to the master
 *   failed, a reply said READONLY, ROLE said slave) makes the thread rediscover at once
 *   (at most every 100 ms).
 *
 * A thread of its own runs all of this with hiredis' blocking API (like the invalidation
 * stream): no worker loop ever waits for a sentinel. Clients only read the published state
 * (a mutex held for a copy, and an atomic generation) and set a flag.
 *
 * While no master is known (no sentinel answers, none knows NAME, the announced address is a
 * replica or refuses AUTH / ROLE with the data credentials: the master published before is
 * dropped then, it is no longer the master), clients refuse to connect and requests get
 * redis_on_error's decision.
 */
#ifndef WD_STORE_REDIS_SENTINEL_H
#define WD_STORE_REDIS_SENTINEL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "store/redis.h"

struct wd_redis_sentinel;

struct wd_redis_sentinel_opts {
    const char *const *addrs; /* "HOST:PORT", IPv6 in brackets (wd_config_sentinel_split) */
    size_t naddrs;            /* 1 .. WD_REDIS_SENTINEL_MAX */
    const char *master_name;  /* the name of `sentinel monitor NAME ...` */
    const char *username;     /* AUTH to the sentinels: NULL for none; username needs password */
    const char *password;
    /* the master's own credentials and the timeouts (username, password, connect_timeout_ms,
     * command_timeout_ms, backoff_*): ROLE is asked with them. host/port/unix_path ignored. */
    struct wd_redis_opts data;
    /* Called on the sentinel thread (or in start) just BEFORE the published master changes or
     * is dropped: whatever was learned from the old one is to be forgotten (the cache entries
     * the invalidation stream protected). NULL: none. */
    void (*changed)(void *ctx);
    void *ctx;
};

#define WD_REDIS_SENTINEL_MAX 16

/*
 * Parses the options (strings copied), runs a first discovery in the calling thread (bounded:
 * every sentinel's connect and command timeouts), then starts the thread. Returns:
 *   WD_OK       running; a master may or may not be known yet (wd_redis_sentinel_status);
 *   WD_ENOENT   every sentinel answered and none knows master_name: a wrong name, refused
 *               at start (message in err); nothing is started;
 *   WD_EINVAL   bad options (an address that does not parse, none, too many), message in err;
 *   WD_ENOMEM   no thread.
 */
int wd_redis_sentinel_start(const struct wd_redis_sentinel_opts *opts,
                            struct wd_redis_sentinel **out, char *err, size_t errcap);

/* For --check-config: asks EVERY sentinel (discovery stops at the first that answers, so a
 * typo in a later address would go unnoticed until a failover needs it) and logs a warning
 * for each that does not answer or does not know the master. Returns how many. Blocking
 * (each sentinel's connect and command timeouts); NULL: 0. Thread-safe. */
size_t wd_redis_sentinel_probe(struct wd_redis_sentinel *s);

/* Stops the thread (no callback after it returns), frees, wipes the passwords. NULL is fine. */
void wd_redis_sentinel_stop(struct wd_redis_sentinel *s);

/* The master now: true with its numeric address (cap >= 64) and port, false when none is
 * known. *gen (may be NULL) is the generation of this answer: it changes every time the
 * answer does, so a client connected under another generation reconnects. Thread-safe. */
bool wd_redis_sentinel_master(struct wd_redis_sentinel *s, char *addr, size_t cap, int *port,
                              uint64_t *gen);

/* The generation alone (an atomic load): for a cheap check before each request. */
uint64_t wd_redis_sentinel_generation(struct wd_redis_sentinel *s);

/* A client's connection to the published master failed, or it answered as a replica
 * (READONLY, ROLE): rediscover soon. Thread-safe, never blocks (a flag and a pipe write). */
void wd_redis_sentinel_suspect(struct wd_redis_sentinel *s);

struct wd_redis_sentinel_stats {
    bool known;           /* a master is published now */
    uint64_t failovers;   /* master changes followed (a new address published over another) */
    uint64_t errors;      /* sentinel failures: refused, timed out, error replies, lost; and
                           * an announced master failing its check (AUTH/ROLE refused, no
                           * answer, no address) */
    uint64_t discoveries; /* discovery rounds run */
    uint64_t switch_msgs; /* +switch-master messages for this master received */
};
void wd_redis_sentinel_stats(struct wd_redis_sentinel *s, struct wd_redis_sentinel_stats *out);

/* "10.0.0.5:6379 (master mymaster)" or why none is known ("no sentinel knows master
 * 'mymaster'", "announced master 10.0.0.5:6379 answers ROLE as a replica", "announced master
 * 10.0.0.6:6379 refused: AUTH: WRONGPASS ...", a sentinel's NOAUTH with "(set
 * redis_sentinel_password)"), for readiness and logs; never a password. */
void wd_redis_sentinel_status(struct wd_redis_sentinel *s, char *buf, size_t cap);

/* ---- pure parts, for tests ---- */

/* A `+switch-master` message payload "NAME OLDIP OLDPORT NEWIP NEWPORT": true when it is
 * about `name`, with the new address in host (cap bytes) and *port (1..65535). */
bool wd_redis_sentinel__switch_parse(const char *msg, size_t len, const char *name, char *host,
                                     size_t cap, int *port);

/* Whether the thread asks the sentinels again at now (ms, monotonic) while nothing else asks
 * it to: RECHECK_MS (5 s) after the last round that found the master, unless a discovery is
 * wanted anyway. Unchanged answers are not verified again (no connection to the master). */
bool wd_redis_sentinel__recheck_due(int64_t now, int64_t last_round, bool want);

/* A sentinel's address for the master (the two strings of get-master-addr-by-name, or the
 * last two fields of +switch-master): host printable ASCII without spaces, shorter than cap;
 * port 1..65535 in at most 5 digits. */
bool wd_redis_sentinel__addr_parse(const char *h, size_t hl, const char *p, size_t pl, char *host,
                                   size_t cap, int *port);

#endif
