/* SPDX-License-Identifier: Apache-2.0 */
/*
 * redis.h: warden's Redis client (the only hiredis user), reading EMQX's layouts:
 * `HMGET mqtt_user:<u> password_hash password salt is_superuser` for authentication and
 * `HGETALL mqtt_acl:<u>` for authorization (emqx-auth-formats.md 2.1, 2.3;
 * docs/internals/redis.md).
 *
 * Threading: a struct wd_redis is one blocking connection and is NOT thread-safe. Create
 * one per worker thread; calls on different objects are independent. The process must
 * ignore SIGPIPE (main.c does): hiredis writes with write(2).
 *
 * Failure behaviour: every command is bounded by the command timeout (and connecting by
 * the connect timeout). A failure (refused, reset, timeout, AUTH/SELECT refused) drops the
 * connection and starts an exponential backoff (initial, doubling, capped, with jitter);
 * while it runs, calls fail at once with WD_EBACKEND instead of blocking. The next call
 * after the backoff reconnects by itself. A connection the server closed (EOF: restart,
 * idle timeout) is retried once at once, since every command here is a read.
 *
 * Commands are always sent as argv (redisCommandArgv): a key with spaces, '*', CR/LF, NUL
 * or 64 KiB of bytes is one key. No redisReply leaves redis.c: results are plain structs.
 */
#ifndef WD_STORE_REDIS_H
#define WD_STORE_REDIS_H

#include <stdbool.h>
#include <stddef.h>

#include "core/request.h"
#include "store/passwd.h"
#include "store/redis_acl.h"

#define WD_REDIS_KEY_MAX (1024 * 1024) /* bytes of a rendered key */

struct wd_redis_sentinel; /* redis_sentinel.h */

/* Connection settings. Strings are copied by wd_redis_new(). Zero values take the
 * defaults given. */
struct wd_redis_opts {
    const char *host;            /* default "127.0.0.1"; ignored when unix_path is set */
    int port;                    /* default 6379 */
    const char *unix_path;       /* Unix socket path, or NULL for TCP */
    const char *username;        /* Redis 6 ACL user for AUTH; NULL: AUTH <password> */
    const char *password;        /* NULL: no AUTH. Wiped from memory on free */
    int database;                /* SELECT when > 0 */
    unsigned connect_timeout_ms; /* default 1000 */
    unsigned command_timeout_ms; /* default 500: each command's send + reply */
    unsigned backoff_initial_ms; /* default 100 */
    unsigned backoff_max_ms;     /* default 5000 (cap of the doubling) */
    /* Sentinel (redis_sentinel.h; borrowed, must outlive the client): when set, host, port
     * and unix_path are ignored; each connect goes to the master it publishes (none known: the
     * connect fails), checks ROLE, and a connection made under an older generation is
     * replaced before the next command. A failed connect, a lost connection or a READONLY
     * reply is reported to it (wd_redis_sentinel_suspect). */
    struct wd_redis_sentinel *sentinel;
};

struct wd_redis;

/* Creates a connection object; it does not connect (the first command does, or
 * wd_redis_connect()). Returns WD_OK or WD_EINVAL (port out of range, negative database,
 * NULL out); *out is NULL on error. */
int wd_redis_new(const struct wd_redis_opts *opts, struct wd_redis **out);

/* Closes the connection, wipes the password, frees. NULL is fine. */
void wd_redis_free(struct wd_redis *r);

/* Connects now if not connected (AUTH, SELECT included). WD_OK, or WD_EBACKEND (also when
 * still backing off from an earlier failure). For a startup check; commands do it too. */
int wd_redis_connect(struct wd_redis *r);

/* PING: WD_OK if Redis answers now (connecting first if needed), WD_EBACKEND otherwise
 * (also while backing off). For the readiness probe; bounded by the timeouts. */
int wd_redis_ping(struct wd_redis *r);

/* true while a connection is established (no I/O is done). */
bool wd_redis_is_connected(const struct wd_redis *r);

/* Text of the last failure ("connection refused", "WRONGTYPE ...", "backing off"), for
 * logs; never contains a password or a key. "" when none. Valid until the next call. */
const char *wd_redis_last_error(const struct wd_redis *r);

/* ---- key templates ---- */

/*
 * A compiled key template such as `mqtt_user:${username}`. Placeholders (EMQX's list for
 * Redis keys, emqx-auth-formats.md 1.3): ${username}, ${clientid}, ${cn} (alias
 * ${cert_common_name}), ${cert_subject} (the client certificate's subject DN, ClientInfo.dn;
 * alias ${dn}), ${peerhost} (the client's address as EMQX prints it: 127.0.0.1, ::1);
 * `${$}` is a literal '$' (EMQX 5.4+). Any other `${...}`, or an unterminated `${`, is a
 * configuration error (EMQX would keep it as literal text with a warning; a key that never
 * matches is not what anyone meant).
 *
 * Values are inserted as raw bytes (spaces, CR/LF, '*', '{}' included: the key is one argv
 * element). An empty ${username} or ${clientid} renders as empty, as EMQX's query
 * rendering does (section 1.3), so `mqtt_user:${username}` becomes `mqtt_user:` for a
 * client without a username. An empty ${cn}, ${cert_subject} or ${peerhost} (a client
 * without a certificate) FAILS CLOSED instead: there is no key and no lookup
 * (WD_ENOENT), where EMQX would read `mqtt_user:`, one key shared by every client without
 * a certificate.
 */
struct wd_redis_tmpl;

/* Compiles text (NUL-terminated). WD_OK; WD_EINVAL with a message in err (errcap may be
 * 0) and *out NULL. */
int wd_redis_tmpl_compile(const char *text, struct wd_redis_tmpl **out, char *err, size_t errcap);
void wd_redis_tmpl_free(struct wd_redis_tmpl *t);

/* The length of text's fixed head: the bytes before its first placeholder (all of it
 * without one). Every key the template renders starts with them. */
size_t wd_redis_tmpl_head(const char *text);

/* Renders for client c into *key (heap, NUL-terminated for convenience, *keylen bytes;
 * free()). WD_OK; WD_ETOOBIG above WD_REDIS_KEY_MAX; WD_ENOENT when a ${cn},
 * ${cert_subject} or ${peerhost} in the template has no value (no lookup: treat as not
 * found). *key is NULL on every error. */
int wd_redis_tmpl_render(const struct wd_redis_tmpl *t, const struct wd_client *c, char **key,
                         size_t *keylen);

/* ---- authentication: HMGET key password_hash password salt is_superuser ---- */

struct wd_redis_user {
    char *hash; /* password_hash, else password (heap, NUL-terminated, hash_len bytes) */
    size_t hash_len;
    char *salt; /* "" when absent */
    size_t salt_len;
    bool is_superuser; /* EMQX to_bool: "true", or an integer string >= 1 ("1", "+2", "007") */
    bool has_fields;   /* some field was present (the key exists as a hash) */
};

/*
 * One HMGET of `key` (keylen bytes, any bytes). *out is zeroed on entry. Returns:
 *   WD_OK       the user has password_hash or password (password_hash wins when both);
 *   WD_ENOENT   no password field. out->has_fields tells the two EMQX cases apart: false =
 *               no such user (EMQX: ignore, the chain goes on); true = salt or is_superuser
 *               present but no password (EMQX: not_authorized, i.e. deny);
 *   WD_EBACKEND Redis unreachable, backing off, timed out, an error reply (WRONGTYPE when
 *               the key is not a hash, NOAUTH, ...) or an unexpected reply;
 *   WD_EINVAL   NULL arguments.
 * Release with wd_redis_user_cleanup() whatever the return code.
 */
int wd_redis_user_get(struct wd_redis *r, const char *key, size_t keylen,
                      struct wd_redis_user *out);

/* Wipes the hash and salt, frees them and zeroes *u. NULL is fine. */
void wd_redis_user_cleanup(struct wd_redis_user *u);

/* Points spec->salt and spec->hash at u's buffers (borrowed: valid while u is). The
 * algorithm and salt position come from configuration and are left as they are. */
void wd_redis_user_spec(const struct wd_redis_user *u, struct wd_passwd_spec *spec);

/* ---- authorization: HGETALL key ---- */

/*
 * One HGETALL of `key`; the pairs go through wd_redis_acl_parse() (redis_acl.h), skipped
 * entries to skip(ud, ...) (may be NULL). *out and *nout are set to NULL/0 on entry.
 * Returns WD_OK (a missing key is an empty hash: WD_OK with 0 entries, EMQX's nomatch),
 * WD_EBACKEND as wd_redis_user_get(), WD_EINVAL for NULL arguments. Free *out with
 * wd_acl_entries_free(*out, *nout).
 */
int wd_redis_acl_get(struct wd_redis *r, const char *key, size_t keylen, struct wd_acl_entry **out,
                     size_t *nout, wd_redis_acl_skip_fn skip, void *ud);

/* ---- any command, with its reply as plain data ---- */

/* A reply as data (no redisReply leaves the wrappers). Arrays are not kept: a command
 * that answers one gets WD_REDIS_RAW_OTHER. */
enum wd_redis_raw_type {
    WD_REDIS_RAW_NIL = 0,
    WD_REDIS_RAW_STRING, /* bulk string: str/len */
    WD_REDIS_RAW_STATUS, /* +OK and friends: str/len */
    WD_REDIS_RAW_INTEGER,
    WD_REDIS_RAW_ERROR, /* -ERR ...: str/len (the error text, never a key) */
    WD_REDIS_RAW_OTHER, /* array, double, ...: not kept */
};

struct wd_redis_raw {
    enum wd_redis_raw_type type;
    long long integer;
    char *str; /* heap, NUL-terminated, len bytes; NULL unless STRING/STATUS/ERROR */
    size_t len;
};

void wd_redis_raw_cleanup(struct wd_redis_raw *r); /* NULL-safe; zeroes */

/*
 * Sends argv (argc elements, any bytes) and returns the reply in *out (zeroed on entry;
 * release with wd_redis_raw_cleanup whatever the return). A string reply longer than
 * max_len (0: no limit) is not copied. Returns WD_OK for every reply that is not an error
 * (nil included), WD_EBACKEND for an error reply (out->type ERROR, its text in out->str)
 * or a failure (out->type NIL), WD_ETOOBIG for a string over max_len, WD_EINVAL for bad
 * arguments. Like the lookups, a command on a connection the server had closed is sent
 * once more on a fresh one: send only commands that may run twice (GET, SET, a script
 * that compares before it deletes).
 */
int wd_redis_command(struct wd_redis *r, int argc, const char **argv, const size_t *lens,
                     size_t max_len, struct wd_redis_raw *out);

/* ---- module-internal, for tests and tools ---- */

/* Sends one command as argv on the same path as the lookups and discards the reply.
 * WD_OK for any non-error reply; WD_EBACKEND for an error reply or a failure. If intval
 * is not NULL and the reply is an integer, it is stored there. */
int wd_redis__exec(struct wd_redis *r, int argc, const char **argv, const size_t *argvlen,
                   long long *intval);

#endif
