/* SPDX-License-Identifier: Apache-2.0 */
/*
 * config.h: warden's configuration: one file in a redis.conf/nginx-like syntax
 * ("directive arg..." per line, '#' comments, double-quoted strings), overridable by
 * command-line flags. Every option, its default and its meaning is in
 * docs/configuration.md; the option table in config.c is the single source of truth: it
 * declares each directive once, with its type, range, default and (for a choice) the words
 * it accepts and the enum value each stands for, and drives parsing, wd_config_defaults,
 * `warden --print-config` and the test that checks the documentation against it.
 *
 * Unknown directives, bad values, missing arguments and repeated single-valued directives
 * are errors reported as "file:line: message"; all errors of a file are reported in one
 * pass. wd_config_validate() then checks the rules that involve several directives
 * (tls_key without tls_cert, ...), naming the file:line (or flag) that set each directive
 * involved; a caller reports both kinds together (main.c). A directive removed with gRPC core in
 * 0.2.0 is an error when it asked for gRPC core (`transport grpc-core`), and loads with a
 * warning in cfg->warnings when it only tuned it (`prepost`).
 *
 * Ownership: a struct wd_config owns every string it points to; wd_config_cleanup frees
 * them. It is built once at startup (and, later, on reload into a fresh struct) and is
 * read-only while warden serves.
 */
#ifndef WD_CONFIG_H
#define WD_CONFIG_H

#include <stdbool.h>
#include <stddef.h>

#include "core/log.h"
#include "core/wd.h"

/* The choices: each directive that takes one of a few words is read into an enum; the words
 * are declared once, in config.c's option table (docs/configuration.md says what each means). */

/* nomatch_reply: what a NOMATCH decision is answered with on the wire. */
enum wd_nomatch_reply {
    WD_NOMATCH_CONTINUE = 0, /* CONTINUE + bool_result = the request's own `result` */
    WD_NOMATCH_IGNORE,       /* IGNORE (EMQX <= 5.8 rejects an authenticate on IGNORE) */
};

/* transport: warden's own HTTP/2 transport is the only one since 0.2.0. */
enum wd_config_transport {
    WD_CONFIG_TRANSPORT_H2 = 0,
};

/* redis_on_error, jwt_on_invalid: what a failed store or an invalid token leads to. */
enum wd_config_fail {
    WD_CONFIG_FAIL_DENY = 0, /* fail closed */
    WD_CONFIG_FAIL_NEXT,     /* the chain or the rules go on */
};

/* redis_password_hash (EMQX's names; "sha" and "sha1" are the same). */
enum wd_config_hash {
    WD_CONFIG_HASH_PLAIN = 0,
    WD_CONFIG_HASH_MD5,
    WD_CONFIG_HASH_SHA1,
    WD_CONFIG_HASH_SHA256,
    WD_CONFIG_HASH_SHA512,
    WD_CONFIG_HASH_BCRYPT,
    WD_CONFIG_HASH_PBKDF2,
    WD_CONFIG_HASH_ARGON2ID,
};

/* redis_salt_position */
enum wd_config_salt {
    WD_CONFIG_SALT_PREFIX = 0,
    WD_CONFIG_SALT_SUFFIX,
    WD_CONFIG_SALT_DISABLE,
};

/* redis_pbkdf2_mac ("sha" and "sha1" are the same) */
enum wd_config_mac {
    WD_CONFIG_MAC_SHA1 = 0,
    WD_CONFIG_MAC_SHA224,
    WD_CONFIG_MAC_SHA256,
    WD_CONFIG_MAC_SHA384,
    WD_CONFIG_MAC_SHA512,
};

/* jwt_from: the CONNECT field that carries the token. */
enum wd_config_token_from {
    WD_CONFIG_TOKEN_PASSWORD = 0,
    WD_CONFIG_TOKEN_USERNAME,
};

/* cache_invalidation: AUTO (the default, no word) is tracking when Redis is configured and the
 * cache is on, else off. */
enum wd_config_cache_inval {
    WD_CONFIG_CACHE_INVAL_AUTO = 0,
    WD_CONFIG_CACHE_INVAL_OFF,
    WD_CONFIG_CACHE_INVAL_TRACKING,
};

/* session_store: AUTO (the default, no word) is redis when Redis is configured, else local. */
enum wd_config_session_store {
    WD_CONFIG_SESSION_STORE_AUTO = 0,
    WD_CONFIG_SESSION_STORE_LOCAL,
    WD_CONFIG_SESSION_STORE_REDIS,
};

/* decision_log_events */
enum wd_config_events {
    WD_CONFIG_EVENTS_DENY = 0, /* denials only */
    WD_CONFIG_EVENTS_ALL,
};

/* decision_log: off, stderr, or a file (any other word). */
enum wd_config_output {
    WD_CONFIG_OUTPUT_OFF = 0,
    WD_CONFIG_OUTPUT_STDERR,
    WD_CONFIG_OUTPUT_FILE,
};
struct wd_config_dest {
    enum wd_config_output to;
    char *file; /* WD_CONFIG_OUTPUT_FILE: the file (resolved); else NULL */
};

struct wd_config {
    char *source;   /* config file path, or "<embedded>" */
    char *warnings; /* "file:line: message" lines (newline-separated) for directives that load
                     * but have no effect (`prepost`); NULL when none. main.c logs them. */
    char **set_at;  /* per directive, in table order: "file:line" or "command line: FLAG" of
                     * the value in effect, NULL for a default; read with wd_config_where() */
    unsigned char *rejected; /* per directive: 1 when the last value given for it was refused */

    /* serving */
    char *listen;
    int workers;      /* 0: one per online CPU */
    int hash_threads; /* threads for bcrypt / argon2id / pbkdf2 checks (h2 transport) */
    int shutdown_grace_ms;
    int max_message_size; /* 0 (auto): derived from the hooks, see wd_config_request_limit */
    int max_concurrent_streams;
    int keepalive_time_ms;
    int keepalive_timeout_ms;
    int min_ping_interval_ms;
    int max_connection_idle_ms; /* 0: never close idle connections */
    int max_connection_age_ms;  /* 0: connections live forever */
    int max_connection_age_grace_ms;
    enum wd_config_transport transport; /* h2, the only one (warden's own HTTP/2 transport) */
    int max_connections;                /* connections served at once; more are closed */
    int max_connections_per_peer;       /* the same, per peer address */
    int handshake_timeout_ms;           /* accept -> client preface + SETTINGS */
    int header_timeout_ms;              /* first byte of a frame/header block -> end */
    int request_buffer_memory;          /* request bytes buffered, whole process */

    /* TLS: h2c when tls_cert is unset; mutual TLS when tls_client_ca is set */
    char *tls_cert;
    char *tls_key;
    char *tls_client_ca;

    /* ExHook registration */
    char **hooks;
    size_t nhooks;
    char **message_topics;
    size_t nmessage_topics;
    enum wd_nomatch_reply nomatch_reply;

    /* decisions: the policy file (NULL: the embedded default policy) */
    char *policy;
    bool policy_watch;

    enum wd_log_level log_level;

    /* Redis (docs/redis.md): used by `authn redis` / `rules redis`; configured when
     * redis_host, redis_socket or redis_sentinel is set (one of the three) */
    char *redis_host;
    int redis_port;
    char *redis_socket;
    char *redis_username;
    char *redis_password;      /* secret: never printed */
    char *redis_password_file; /* where redis_password was read from, or NULL */
    int redis_database;
    int redis_connect_timeout_ms;
    int redis_timeout_ms;
    char *redis_authn_key;
    char *redis_acl_key;
    enum wd_config_hash redis_password_hash;
    enum wd_config_salt redis_salt_position;
    enum wd_config_mac redis_pbkdf2_mac;
    int redis_pbkdf2_iterations; /* >= 1 */
    int redis_pbkdf2_dk_length;  /* bytes; 0: the digest size */
    enum wd_config_fail redis_on_error;
    /* Redis Sentinel (docs/redis.md "High availability"): the master named
     * redis_sentinel_master, as the sentinels announce it; instead of redis_host/redis_socket */
    char **redis_sentinels; /* "HOST:PORT" words, IPv6 in brackets, as given */
    size_t nredis_sentinels;
    char *redis_sentinel_master;
    char *redis_sentinel_username;
    char *redis_sentinel_password;      /* secret: never printed */
    char *redis_sentinel_password_file; /* where redis_sentinel_password was read from */

    /* JWT (docs/jwt.md): used by `authn jwt` / `rules jwt`; configured when one key
     * source is set */
    char *jwt_secret;      /* secret: never printed */
    char *jwt_secret_file; /* where jwt_secret was read from, or NULL */
    bool jwt_secret_base64;
    char *jwt_public_key; /* PEM file */
    char *jwt_jwks_file;
    char *jwt_jwks_url;
    char *jwt_jwks_ca;
    int jwt_jwks_refresh_ms;
    enum wd_config_token_from jwt_from;
    int jwt_leeway_ms;
    bool jwt_check_iat;
    char *jwt_iss;
    char *jwt_aud;
    char **jwt_verify_claims;  /* name, template, name, template, ... */
    size_t njwt_verify_claims; /* strings in the list (twice the number of claims) */
    char *jwt_acl_claim;
    int jwt_max_token_len;
    enum wd_config_fail jwt_on_invalid;

    /* cache (docs/cache.md) and sessions (docs/sessions.md) */
    bool cache;
    int cache_entries;
    int cache_memory;
    int cache_ttl_ms;
    int cache_negative_ttl_ms;
    int session_max;
    int session_memory;
    int session_ttl_ms; /* 0: sessions expire only with their token, or when evicted */
    enum wd_config_session_store session_store;
    enum wd_config_cache_inval cache_invalidation;
    char *session_redis_prefix; /* key of a shared session: prefix + clientid */
    int session_redis_ttl_ms;   /* longest life in Redis of a session without exp/session_ttl */

    /* operations */
    char *admin_socket;    /* NULL: no admin socket */
    bool allow_core_dumps; /* off: the process is not dumpable and RLIMIT_CORE is 0 */

    /* observability (docs/operations.md "Monitoring") */
    char *metrics_listen; /* HOST:PORT of the Prometheus endpoint; NULL: off */
    struct wd_config_dest decision_log;
    enum wd_config_events decision_log_events;
    int decision_log_queue; /* lines waiting for the writer; more are dropped (counted) */
};

/* The ExHook hook names EMQX accepts in a LoadedResponse (exhook-client-behavior.md §3). */
extern const char *const wd_config_hook_names[];
extern const size_t wd_config_nhook_names;
bool wd_config_hook_name_valid(const char *name);

/* Receive limits for `max_message_size auto`. SMALL holds any request whose strings are MQTT
 * strings (at most 65535 bytes each: clientid, username, password, topic, ...); PACKET holds
 * a request that carries a whole MQTT packet (a message's payload, a SUBSCRIBE's filters, a
 * CONNECT's properties) at EMQX's default max_packet_size (1 MB) plus such strings. */
#define WD_CONFIG_REQUEST_SMALL (256 << 10)
#define WD_CONFIG_REQUEST_PACKET ((1 << 20) + (256 << 10))

/* Whether the requests of hook `name` can carry an MQTT packet's worth of data. */
bool wd_config_hook_carries_packet(const char *name);

/* The largest request warden accepts: max_message_size when set, else WD_CONFIG_REQUEST_PACKET
 * when a registered hook carries packets, else WD_CONFIG_REQUEST_SMALL. The policy lives here,
 * not in the transport, so every transport enforces the same limit. */
int wd_config_request_limit(const struct wd_config *cfg);

/* Splits `listen` (HOST:PORT, [V6]:PORT) at its last colon: the host, without brackets,
 * into host (cap bytes), and *port pointing at the port text inside listen. false when
 * there is no colon or the host does not fit. The one reader of a listen address. */
bool wd_config_listen_split(const char *listen, char *host, size_t cap, const char **port);

/* The most addresses one redis_sentinel line takes. */
#define WD_CONFIG_SENTINELS_MAX 16

/* Splits a Sentinel address (HOST:PORT; an IPv6 address in brackets, [::1]:26379) into host
 * (without brackets, cap bytes) and *port (1..65535). false for anything else: no port, a
 * port out of range or with junk, an empty host, an IPv6 address without brackets, a host
 * with blanks or control characters. The one reader of a redis_sentinel word. */
bool wd_config_sentinel_split(const char *addr, char *host, size_t cap, int *port);

/* Whether `listen` (HOST:PORT) names only loopback addresses: 127.0.0.0/8, ::1 (also
 * v4-mapped), or "localhost". Wildcards, other addresses and other names are not. */
bool wd_config_listen_is_loopback(const char *listen);

/* The configuration warden runs with when no --config is given. */
extern const char wd_config_embedded[];

/* Sets every option to its default, as the option table declares it. */
void wd_config_defaults(struct wd_config *cfg);

/* Where the value in effect of `directive` was set: "file:line", "command line: FLAG", or
 * NULL when it is the default (or the directive does not exist). */
const char *wd_config_where(const struct wd_config *cfg, const char *directive);

/* The option table, for the documentation test and tools: the number of directives, and
 * directive i's name and default in configuration syntax (*def NULL: unset by default). */
size_t wd_config_directive_count(void);
void wd_config_directive(size_t i, const char **name, const char **def);

/* The word a choice directive's enum value is written as (the first word the table declares
 * for it), e.g. ("redis_on_error", WD_CONFIG_FAIL_NEXT) -> "next"; "?" for no such value. */
const char *wd_config_choice_name(const char *directive, int value);

void wd_config_cleanup(struct wd_config *cfg);

/* Parses config text into cfg (which holds defaults or earlier values). `name` is used in
 * messages. On error returns WD_ESYNTAX and sets *errors to a malloc'd, newline-separated
 * list of "name:line: message" (caller frees); *errors is NULL on success. */
int wd_config_parse(struct wd_config *cfg, const char *name, const char *text, size_t len,
                    char **errors);

/* Reads and parses a file (at most 1 MiB). Same contract as wd_config_parse; an unreadable
 * file returns WD_EIO with the reason in *errors. */
int wd_config_load_file(struct wd_config *cfg, const char *path, char **errors);

/* Sets one directive from the command line ("key", "value words"): the value is split
 * like a config line. Returns WD_OK or WD_EINVAL with *errors set. */
int wd_config_set(struct wd_config *cfg, const char *key, const char *value, char **errors);

/* wd_config_set, with messages that name the flag the value came from: origin is what the
 * user typed ("--listen", "--set key=value"), NULL for "--set KEY". */
int wd_config_set_from(struct wd_config *cfg, const char *origin, const char *key,
                       const char *value, char **errors);

/* Cross-option checks. WD_OK, or WD_EINVAL with *errors set. Among them: without `policy`
 * (the embedded demo policy, user demo/demo) `listen` must be a loopback address; an
 * admin_socket must be creatable (its directory exists and this process may write there; a
 * file already at the path is a socket), checked here so that --check-config and the start
 * find it before warden listens. */
int wd_config_validate(const struct wd_config *cfg, char **errors);

/* Writes the effective configuration in config-file syntax (users' secrets redacted). */
void wd_config_print(const struct wd_config *cfg, int fd);

/* Parses a duration ("250ms", "5s", "1m", "2h") into milliseconds. */
int wd_config_parse_duration(const char *s, int *ms_out);
/* Parses a size ("4096", "64KiB", "4MiB", "1GiB"; K/M/G mean KiB/MiB/GiB) into bytes. */
int wd_config_parse_size(const char *s, int *bytes_out);

#endif
