/* SPDX-License-Identifier: Apache-2.0 */
/*
 * config.c: the configuration file parser and option table (see config.h).
 *
 * Syntax, one directive per line:
 *
 *     # comment
 *     listen 127.0.0.1:9000
 *     hooks client.authenticate client.authorize
 *     user alice "sha256:salt:9f86d0..."
 *
 * Words are separated by blanks; a word may be double-quoted ("a b", with \" and \\
 * escapes); a '#' at the start of a word starts a comment ('#' inside a word, as in the
 * MQTT filter a/#, is data; a lone "#" filter must be quoted). The option table below drives
 * parsing, defaults, --print-config and the documentation check in the tests, so an option cannot
 * exist in one place and not the others.
 */
#include "core/config.h"

#include "core/buf.h"
#include "core/file.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#define MAX_CONFIG_BYTES (1 << 20)
#define MAX_WORDS 64
#define MAX_WORD 4096

const char *const wd_config_hook_names[] = {
    "client.connect",      "client.connack",     "client.connected",     "client.disconnected",
    "client.authenticate", "client.authorize",   "client.subscribe",     "client.unsubscribe",
    "session.created",     "session.subscribed", "session.unsubscribed", "session.resumed",
    "session.discarded",   "session.takenover",  "session.terminated",   "message.publish",
    "message.delivered",   "message.acked",      "message.dropped",
};
const size_t wd_config_nhook_names = WD_ARRAY_LEN(wd_config_hook_names);

/* The embedded default: what `make run` serves. No `policy` line: the engine's embedded
 * policy (a demo user) answers. Listening on loopback only, so the demo credential is not
 * reachable from other hosts. Production deployments pass --config. */
const char wd_config_embedded[] =
    "# warden embedded default configuration (used when no --config is given)\n"
    "listen 127.0.0.1:9000\n"
    "hooks client.authenticate client.authorize client.disconnected\n"
    "nomatch_reply continue\n";

bool wd_config_hook_name_valid(const char *name)
{
    for (size_t i = 0; i < wd_config_nhook_names; i++)
        if (strcmp(name, wd_config_hook_names[i]) == 0)
            return true;
    return false;
}

/* ---- option table ----
 *
 * Each directive is declared once, here, the way Redis's src/config.c declares its
 * standardConfig entries: its name, its type, where it lives in struct wd_config, its range,
 * its default and, for a choice, the words it accepts with the enum value each stands for.
 * Everything else reads this table: the parser (apply), the defaults (wd_config_defaults
 * parses each default as if it were a line of a file, so a default is checked like any
 * value), --print-config, and the test that compares it with docs/configuration.md. */

enum opt_type {
    T_STRING,
    T_PATH, /* a file name: relative ones are relative to the configuration file's directory */
    T_INT,
    T_DURATION,
    T_SIZE,
    T_SIZE_AUTO, /* a size, or `auto` (stored as 0) */
    T_BOOL,
    T_ENUM, /* one of `choices`, stored as its enum value (an int-sized enum field) */
    T_DEST, /* one of `choices` (off, stderr), or else a file name: struct wd_config_dest */
    T_HOOKS,
    T_TOPICS,
    T_SECRET,      /* a string never printed by --print-config */
    T_SECRET_FILE, /* NAME_file PATH: the secret NAME read from a file (path kept here) */
    T_CLAIM,       /* NAME TEMPLATE, repeatable: appended to jwt_verify_claims */
    T_ADDRS,       /* HOST:PORT words, one or more (redis_sentinel) */
};

/* A choice's word and the enum value it stands for; a list ends with {NULL, 0}. Several
 * words may stand for one value (aliases): the first is the one printed. */
struct choice {
    const char *word;
    int value;
};

struct opt {
    const char *name;
    enum opt_type type;
    size_t off;
    long min, max;
    const char *def;              /* default, in configuration syntax; NULL: unset / none */
    const struct choice *choices; /* T_ENUM, T_DEST */
};

static const struct choice nomatch_replies[] = {
    {"continue", WD_NOMATCH_CONTINUE}, {"ignore", WD_NOMATCH_IGNORE}, {NULL, 0}};
static const struct choice log_levels[] = {{"error", WD_LOG_ERROR},
                                           {"warn", WD_LOG_WARN},
                                           {"info", WD_LOG_INFO},
                                           {"debug", WD_LOG_DEBUG},
                                           {NULL, 0}};
static const struct choice transports[] = {{"h2", WD_CONFIG_TRANSPORT_H2}, {NULL, 0}};
static const struct choice deny_next[] = {
    {"deny", WD_CONFIG_FAIL_DENY}, {"next", WD_CONFIG_FAIL_NEXT}, {NULL, 0}};
static const struct choice hash_algos[] = {
    {"plain", WD_CONFIG_HASH_PLAIN},       {"md5", WD_CONFIG_HASH_MD5},
    {"sha", WD_CONFIG_HASH_SHA1},          {"sha1", WD_CONFIG_HASH_SHA1},
    {"sha256", WD_CONFIG_HASH_SHA256},     {"sha512", WD_CONFIG_HASH_SHA512},
    {"bcrypt", WD_CONFIG_HASH_BCRYPT},     {"pbkdf2", WD_CONFIG_HASH_PBKDF2},
    {"argon2id", WD_CONFIG_HASH_ARGON2ID}, {NULL, 0}};
static const struct choice salt_positions[] = {{"prefix", WD_CONFIG_SALT_PREFIX},
                                               {"suffix", WD_CONFIG_SALT_SUFFIX},
                                               {"disable", WD_CONFIG_SALT_DISABLE},
                                               {NULL, 0}};
static const struct choice pbkdf2_macs[] = {{"sha", WD_CONFIG_MAC_SHA1},
                                            {"sha1", WD_CONFIG_MAC_SHA1},
                                            {"sha224", WD_CONFIG_MAC_SHA224},
                                            {"sha256", WD_CONFIG_MAC_SHA256},
                                            {"sha384", WD_CONFIG_MAC_SHA384},
                                            {"sha512", WD_CONFIG_MAC_SHA512},
                                            {NULL, 0}};
static const struct choice token_fields[] = {
    {"password", WD_CONFIG_TOKEN_PASSWORD}, {"username", WD_CONFIG_TOKEN_USERNAME}, {NULL, 0}};
static const struct choice log_outputs[] = {
    {"off", WD_CONFIG_OUTPUT_OFF}, {"stderr", WD_CONFIG_OUTPUT_STDERR}, {NULL, 0}};
static const struct choice log_events[] = {
    {"deny", WD_CONFIG_EVENTS_DENY}, {"all", WD_CONFIG_EVENTS_ALL}, {NULL, 0}};
/* no word for WD_CONFIG_SESSION_STORE_AUTO, the default: chosen at start from the Redis
 * directives (printed as `# session_store (unset)`) */
static const struct choice session_stores[] = {
    {"local", WD_CONFIG_SESSION_STORE_LOCAL}, {"redis", WD_CONFIG_SESSION_STORE_REDIS}, {NULL, 0}};
/* no word for WD_CONFIG_CACHE_INVAL_AUTO, the default: tracking when Redis is configured and
 * the cache is on */
static const struct choice cache_invals[] = {
    {"off", WD_CONFIG_CACHE_INVAL_OFF}, {"tracking", WD_CONFIG_CACHE_INVAL_TRACKING}, {NULL, 0}};

/* An enum field is written and read as an int: the enums above are int-sized. */
_Static_assert(sizeof(enum wd_config_hash) == sizeof(int), "enum fields are ints");
_Static_assert(sizeof(enum wd_log_level) == sizeof(int), "enum fields are ints");

#define OFF(f) offsetof(struct wd_config, f)
#define HOOKS_DEFAULT "client.authenticate client.authorize client.disconnected"
static const struct opt opts[] = {
    /* name, type, field, min, max, default, choices */
    {"listen", T_STRING, OFF(listen), 0, 0, "127.0.0.1:9000", NULL},
    {"workers", T_INT, OFF(workers), 0, 256, "0", NULL},
    {"hash_threads", T_INT, OFF(hash_threads), 1, 64, "2", NULL},
    {"shutdown_grace", T_DURATION, OFF(shutdown_grace_ms), 0, 600000, "5s", NULL},
    {"max_message_size", T_SIZE_AUTO, OFF(max_message_size), 1024, 64 << 20, "auto", NULL},
    {"max_concurrent_streams", T_INT, OFF(max_concurrent_streams), 1, 100000, "1000", NULL},
    {"keepalive_time", T_DURATION, OFF(keepalive_time_ms), 1000, 86400000, "60s", NULL},
    {"keepalive_timeout", T_DURATION, OFF(keepalive_timeout_ms), 1000, 3600000, "20s", NULL},
    {"min_ping_interval", T_DURATION, OFF(min_ping_interval_ms), 0, 3600000, "10s", NULL},
    {"max_connection_idle", T_DURATION, OFF(max_connection_idle_ms), 0, 86400000, "0", NULL},
    {"max_connection_age", T_DURATION, OFF(max_connection_age_ms), 0, 604800000, "0", NULL},
    {"max_connection_age_grace", T_DURATION, OFF(max_connection_age_grace_ms), 0, 3600000, "30s",
     NULL},
    {"transport", T_ENUM, OFF(transport), 0, 0, "h2", transports},
    {"max_connections", T_INT, OFF(max_connections), 1, 1000000, "10000", NULL},
    {"max_connections_per_peer", T_INT, OFF(max_connections_per_peer), 1, 1000000, "1000", NULL},
    {"handshake_timeout", T_DURATION, OFF(handshake_timeout_ms), 100, 600000, "10s", NULL},
    {"header_timeout", T_DURATION, OFF(header_timeout_ms), 100, 600000, "10s", NULL},
    {"request_buffer_memory", T_SIZE, OFF(request_buffer_memory), 1 << 20, 1 << 30, "64MiB", NULL},
    {"tls_cert", T_PATH, OFF(tls_cert), 0, 0, NULL, NULL},
    {"tls_key", T_PATH, OFF(tls_key), 0, 0, NULL, NULL},
    {"tls_client_ca", T_PATH, OFF(tls_client_ca), 0, 0, NULL, NULL},
    {"hooks", T_HOOKS, OFF(hooks), 0, 0, HOOKS_DEFAULT, NULL},
    {"message_topics", T_TOPICS, OFF(message_topics), 0, 0, NULL, NULL},
    {"nomatch_reply", T_ENUM, OFF(nomatch_reply), 0, 0, "continue", nomatch_replies},
    {"policy", T_PATH, OFF(policy), 0, 0, NULL, NULL},
    {"policy_watch", T_BOOL, OFF(policy_watch), 0, 0, "on", NULL},
    {"log_level", T_ENUM, OFF(log_level), 0, 0, "info", log_levels},
    {"redis_host", T_STRING, OFF(redis_host), 0, 0, NULL, NULL},
    {"redis_port", T_INT, OFF(redis_port), 1, 65535, "6379", NULL},
    {"redis_socket", T_PATH, OFF(redis_socket), 0, 0, NULL, NULL},
    {"redis_username", T_STRING, OFF(redis_username), 0, 0, NULL, NULL},
    {"redis_password", T_SECRET, OFF(redis_password), 0, 0, NULL, NULL},
    {"redis_password_file", T_SECRET_FILE, OFF(redis_password_file), 0, 0, NULL, NULL},
    {"redis_database", T_INT, OFF(redis_database), 0, 1 << 20, "0", NULL},
    {"redis_connect_timeout", T_DURATION, OFF(redis_connect_timeout_ms), 1, 60000, "1s", NULL},
    {"redis_timeout", T_DURATION, OFF(redis_timeout_ms), 1, 60000, "500ms", NULL},
    {"redis_authn_key", T_STRING, OFF(redis_authn_key), 0, 0, "mqtt_user:${username}", NULL},
    {"redis_acl_key", T_STRING, OFF(redis_acl_key), 0, 0, "mqtt_acl:${username}", NULL},
    {"redis_password_hash", T_ENUM, OFF(redis_password_hash), 0, 0, "sha256", hash_algos},
    {"redis_salt_position", T_ENUM, OFF(redis_salt_position), 0, 0, "prefix", salt_positions},
    {"redis_pbkdf2_mac", T_ENUM, OFF(redis_pbkdf2_mac), 0, 0, "sha256", pbkdf2_macs},
    {"redis_pbkdf2_iterations", T_INT, OFF(redis_pbkdf2_iterations), 1, 10000000, "4096", NULL},
    {"redis_pbkdf2_dk_length", T_INT, OFF(redis_pbkdf2_dk_length), 0, 1024, "0", NULL},
    {"redis_on_error", T_ENUM, OFF(redis_on_error), 0, 0, "deny", deny_next},
    {"redis_sentinel", T_ADDRS, OFF(redis_sentinels), 0, 0, NULL, NULL},
    {"redis_sentinel_master", T_STRING, OFF(redis_sentinel_master), 0, 0, NULL, NULL},
    {"redis_sentinel_username", T_STRING, OFF(redis_sentinel_username), 0, 0, NULL, NULL},
    {"redis_sentinel_password", T_SECRET, OFF(redis_sentinel_password), 0, 0, NULL, NULL},
    {"redis_sentinel_password_file", T_SECRET_FILE, OFF(redis_sentinel_password_file), 0, 0, NULL,
     NULL},
    {"jwt_secret", T_SECRET, OFF(jwt_secret), 0, 0, NULL, NULL},
    {"jwt_secret_file", T_SECRET_FILE, OFF(jwt_secret_file), 0, 0, NULL, NULL},
    {"jwt_secret_base64", T_BOOL, OFF(jwt_secret_base64), 0, 0, "off", NULL},
    {"jwt_public_key", T_PATH, OFF(jwt_public_key), 0, 0, NULL, NULL},
    {"jwt_jwks_file", T_PATH, OFF(jwt_jwks_file), 0, 0, NULL, NULL},
    {"jwt_jwks_url", T_STRING, OFF(jwt_jwks_url), 0, 0, NULL, NULL},
    {"jwt_jwks_ca", T_PATH, OFF(jwt_jwks_ca), 0, 0, NULL, NULL},
    {"jwt_jwks_refresh", T_DURATION, OFF(jwt_jwks_refresh_ms), 10000, 86400000, "5m", NULL},
    {"jwt_from", T_ENUM, OFF(jwt_from), 0, 0, "password", token_fields},
    {"jwt_leeway", T_DURATION, OFF(jwt_leeway_ms), 0, 3600000, "0", NULL},
    {"jwt_check_iat", T_BOOL, OFF(jwt_check_iat), 0, 0, "off", NULL},
    {"jwt_iss", T_STRING, OFF(jwt_iss), 0, 0, NULL, NULL},
    {"jwt_aud", T_STRING, OFF(jwt_aud), 0, 0, NULL, NULL},
    {"jwt_verify_claim", T_CLAIM, OFF(jwt_verify_claims), 0, 0, NULL, NULL},
    {"jwt_acl_claim", T_STRING, OFF(jwt_acl_claim), 0, 0, "acl", NULL},
    {"jwt_max_token_len", T_SIZE, OFF(jwt_max_token_len), 64, 1 << 20, "8192", NULL},
    {"jwt_on_invalid", T_ENUM, OFF(jwt_on_invalid), 0, 0, "deny", deny_next},
    {"cache", T_BOOL, OFF(cache), 0, 0, "on", NULL},
    {"cache_entries", T_INT, OFF(cache_entries), 16, 100000000, "65536", NULL},
    {"cache_memory", T_SIZE, OFF(cache_memory), 65536, 1 << 30, "64MiB", NULL},
    {"cache_ttl", T_DURATION, OFF(cache_ttl_ms), 1, 86400000, "1m", NULL},
    {"cache_negative_ttl", T_DURATION, OFF(cache_negative_ttl_ms), 1, 86400000, "5s", NULL},
    {"cache_invalidation", T_ENUM, OFF(cache_invalidation), 0, 0, NULL, cache_invals},
    {"session_max", T_INT, OFF(session_max), 16, 100000000, "1000000", NULL},
    {"session_memory", T_SIZE, OFF(session_memory), 65536, 1 << 30, "256MiB", NULL},
    {"session_ttl", T_DURATION, OFF(session_ttl_ms), 0, 604800000, "0", NULL},
    {"session_store", T_ENUM, OFF(session_store), 0, 0, NULL, session_stores},
    {"session_redis_prefix", T_STRING, OFF(session_redis_prefix), 0, 0, "warden:session:", NULL},
    {"session_redis_ttl", T_DURATION, OFF(session_redis_ttl_ms), 1000, 604800000, "24h", NULL},
    {"admin_socket", T_PATH, OFF(admin_socket), 0, 0, NULL, NULL},
    {"allow_core_dumps", T_BOOL, OFF(allow_core_dumps), 0, 0, "off", NULL},
    {"metrics_listen", T_STRING, OFF(metrics_listen), 0, 0, NULL, NULL},
    {"decision_log", T_DEST, OFF(decision_log), 0, 0, "off", log_outputs},
    {"decision_log_events", T_ENUM, OFF(decision_log_events), 0, 0, "deny", log_events},
    {"decision_log_queue", T_INT, OFF(decision_log_queue), 16, 1 << 20, "4096", NULL},
};
#undef HOOKS_DEFAULT
#undef OFF

/* ---- error list: newline-separated messages ---- */

struct errbuf {
    struct wd_buf b;
    int count;
};

__attribute__((format(printf, 2, 3))) static void err_add(struct errbuf *e, const char *fmt, ...)
{
    char line[1024];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    if (n < 0)
        return;
    if (e->count)
        wd_buf_putc(&e->b, '\n');
    wd_buf_puts(&e->b, line);
    e->count++;
}

/* ---- values ---- */

static void free_list(char **list, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free(list[i]);
    free(list);
}

void wd_config_cleanup(struct wd_config *cfg)
{
    if (!cfg)
        return;
    free(cfg->source);
    free(cfg->warnings);
    for (size_t i = 0; i < WD_ARRAY_LEN(opts); i++) {
        char *field = (char *)cfg + opts[i].off;
        if (opts[i].type == T_DEST) {
            free(((struct wd_config_dest *)field)->file);
            continue;
        }
        if (opts[i].type != T_STRING && opts[i].type != T_SECRET && opts[i].type != T_SECRET_FILE &&
            opts[i].type != T_PATH)
            continue;
        char **sp = (char **)field;
        if (opts[i].type == T_SECRET && *sp)
            explicit_bzero(*sp, strlen(*sp));
        free(*sp);
    }
    free_list(cfg->hooks, cfg->nhooks);
    free_list(cfg->message_topics, cfg->nmessage_topics);
    free_list(cfg->jwt_verify_claims, cfg->njwt_verify_claims);
    free_list(cfg->redis_sentinels, cfg->nredis_sentinels);
    if (cfg->set_at)
        free_list(cfg->set_at, WD_ARRAY_LEN(opts));
    free(cfg->rejected);
    memset(cfg, 0, sizeof *cfg);
}

int wd_config_parse_duration(const char *s, int *ms_out)
{
    *ms_out = 0;
    char *end;
    errno = 0;
    if (*s < '0' || *s > '9')
        return WD_EINVAL;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno || end == s)
        return WD_EINVAL;
    unsigned long long mul;
    if (v == 0 && *end == '\0')
        mul = 1; /* a bare 0 needs no unit */
    else if (strcmp(end, "ms") == 0)
        mul = 1;
    else if (strcmp(end, "s") == 0)
        mul = 1000;
    else if (strcmp(end, "m") == 0)
        mul = 60000;
    else if (strcmp(end, "h") == 0)
        mul = 3600000;
    else
        return WD_EINVAL;
    if (v > (unsigned long long)INT_MAX / mul)
        return WD_ERANGE;
    *ms_out = (int)(v * mul);
    return WD_OK;
}

int wd_config_parse_size(const char *s, int *bytes_out)
{
    *bytes_out = 0;
    char *end;
    errno = 0;
    if (*s < '0' || *s > '9')
        return WD_EINVAL;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno || end == s)
        return WD_EINVAL;
    unsigned long long mul;
    if (*end == '\0' || strcmp(end, "B") == 0)
        mul = 1;
    else if (strcmp(end, "K") == 0 || strcmp(end, "KiB") == 0)
        mul = 1ULL << 10;
    else if (strcmp(end, "M") == 0 || strcmp(end, "MiB") == 0)
        mul = 1ULL << 20;
    else if (strcmp(end, "G") == 0 || strcmp(end, "GiB") == 0)
        mul = 1ULL << 30;
    else
        return WD_EINVAL;
    if (v > (unsigned long long)INT_MAX / mul)
        return WD_ERANGE;
    *bytes_out = (int)(v * mul);
    return WD_OK;
}

static int parse_int(const char *s, long *out)
{
    char *end;
    errno = 0;
    if (!*s)
        return WD_EINVAL;
    long v = strtol(s, &end, 10);
    if (errno || *end)
        return WD_EINVAL;
    *out = v;
    return WD_OK;
}

/* Directives and values removed in 0.2.0 with gRPC core (docs/operations.md, "Upgrading from
 * 0.1.0"). `transport grpc-core` asked for another server, with other limits: serving with
 * this one instead would be a silent fallback, so it is an error. `prepost` only sized gRPC
 * core's pre-posted requests (a tuning knob, and in the example configuration): refusing to
 * start over it would turn an upgrade into an outage for nothing, so it loads with a warning
 * that names the line. Returns the number of errors added, or -1 when w is none of them. */
static int apply_removed(struct wd_config *cfg, const char *where, char **w, int nw,
                         struct errbuf *e)
{
    if (strcmp(w[0], "transport") == 0 && nw == 2 && strcmp(w[1], "grpc-core") == 0) {
        err_add(e,
                "%s: 'transport grpc-core': gRPC core was removed in 0.2.0; remove the line "
                "(warden's own HTTP/2 transport is the only one)",
                where);
        return 1;
    }
    if (strcmp(w[0], "prepost") == 0) {
        struct wd_buf b = {0};
        if (cfg->warnings)
            wd_buf_printf(&b, "%s\n", cfg->warnings);
        wd_buf_printf(&b,
                      "%s: 'prepost' has no effect: it sized gRPC core's pre-posted requests, and "
                      "gRPC core was removed in 0.2.0; remove the line",
                      where);
        free(cfg->warnings);
        cfg->warnings = b.s;
        return 0;
    }
    return -1;
}

/* HOST:PORT with a non-empty host and a port from 0 to 65535: checked where the value is
 * given (a file's line, or the flag that set it), not later. */
static bool listen_form_ok(const char *v)
{
    const char *colon = strrchr(v, ':');
    long port = 0;
    return colon && colon != v && parse_int(colon + 1, &port) == WD_OK && port >= 0 &&
           port <= 65535;
}

/* A name Sentinel can monitor and a SENTINEL command can carry as one word: printable ASCII
 * without blanks (sentinel.conf's `sentinel monitor NAME ...` splits on them). */
static bool sentinel_name_ok(const char *v)
{
    size_t n = strlen(v);
    if (n == 0 || n > 200)
        return false;
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)v[i] <= ' ' || (unsigned char)v[i] >= 0x7f)
            return false;
    return true;
}

/* path as given, or, when it is relative and came from a configuration file (file not
 * NULL), relative to that file's directory. A malloc'd string. */
static char *resolve_path(const char *file, const char *path)
{
    const char *slash = file ? strrchr(file, '/') : NULL;
    if (path[0] == '/' || !slash)
        return wd_strdup(path);
    size_t dl = (size_t)(slash - file) + 1;
    char *out = wd_malloc(dl + strlen(path) + 1);
    memcpy(out, file, dl);
    memcpy(out + dl, path, strlen(path) + 1);
    return out;
}

static const struct opt *opt_find(const char *name, size_t len)
{
    for (size_t i = 0; i < WD_ARRAY_LEN(opts); i++)
        if (strlen(opts[i].name) == len && strncmp(opts[i].name, name, len) == 0)
            return &opts[i];
    return NULL;
}

#define MAX_SECRET_FILE (64 << 10)

/* NAME_file PATH: reads the secret NAME from PATH into *secret. The file must not be
 * readable by every user (a world-readable configuration can then point at it); one
 * trailing newline (LF or CRLF) is dropped, and what is left must be one non-empty line. A
 * regular file only (never a device or FIFO, which could block the start). */
static int read_secret_file(const char *where, const char *name, const char *path, char **secret,
                            struct errbuf *e)
{
    struct stat st;
    if (stat(path, &st) != 0) {
        err_add(e, "%s: %s %s: %s", where, name, path, strerror(errno));
        return 1;
    }
    if (!S_ISREG(st.st_mode)) {
        err_add(e, "%s: %s %s: not a regular file", where, name, path);
        return 1;
    }
    if (st.st_mode & S_IROTH) {
        err_add(e,
                "%s: %s %s: readable by every user (mode %04o); make it 0600 or 0640 "
                "(Kubernetes: the Secret volume's defaultMode 0440)",
                where, name, path, (unsigned)(st.st_mode & 07777));
        return 1;
    }
    char *buf, msg[1024];
    size_t len;
    if (wd_file_read(path, MAX_SECRET_FILE, &buf, &len, msg, sizeof msg) != WD_OK) {
        err_add(e, "%s: %s: %s", where, name, msg);
        return 1;
    }
    if (len && buf[len - 1] == '\n')
        len--;
    if (len && buf[len - 1] == '\r')
        len--;
    const char *bad = len == 0                 ? "is empty"
                      : memchr(buf, '\0', len) ? "holds a NUL byte"
                      : memchr(buf, '\n', len) ? "holds more than one line"
                                               : NULL;
    if (bad) {
        err_add(e, "%s: %s %s: %s", where, name, path, bad);
        explicit_bzero(buf, len);
        free(buf);
        return 1;
    }
    buf[len] = '\0';
    if (*secret) {
        explicit_bzero(*secret, strlen(*secret));
        free(*secret);
    }
    *secret = buf;
    return 0;
}

/* "'NAME' must be one of a, b, c; got 'v'" */
static void err_choices(struct errbuf *e, const char *where, const struct opt *o, const char *v)
{
    struct wd_buf b = {0};
    for (size_t j = 0; o->choices[j].word; j++)
        wd_buf_printf(&b, "%s%s", j ? ", " : "", o->choices[j].word);
    err_add(e, "%s: '%s' must be one of %s; got '%s'", where, o->name, b.s, v);
    wd_buf_free(&b);
}

/* Whether v is one of o's words; the value it stands for in *value. */
static bool choice_find(const struct opt *o, const char *v, int *value)
{
    for (size_t k = 0; o->choices[k].word; k++) {
        if (strcmp(o->choices[k].word, v) == 0) {
            *value = o->choices[k].value;
            return true;
        }
    }
    return false;
}

static int apply_value(struct wd_config *cfg, const struct opt *o, const char *where,
                       const char *file, char **w, int nw, struct errbuf *e);

/* A directive with its words. `origin` is the file:line or flag it came from, NULL for the
 * table's default. Returns the number of errors added. Records where each directive's value
 * came from (cfg->set_at), and which directives had a value refused (cfg->rejected), so that
 * wd_config_validate can name the lines and stay quiet about rules whose inputs were already
 * reported. */
static int apply(struct wd_config *cfg, const char *origin, const char *file, char **w, int nw,
                 struct errbuf *e, unsigned char *seen)
{
    const char *where = origin ? origin : "<default>";
    int removed = apply_removed(cfg, where, w, nw, e);
    if (removed >= 0)
        return removed;
    const struct opt *o = opt_find(w[0], strlen(w[0]));
    if (!o) {
        err_add(e, "%s: unknown directive '%s'", where, w[0]);
        return 1;
    }
    size_t idx = (size_t)(o - opts);
    if (seen && seen[idx] && o->type != T_CLAIM) {
        err_add(e, "%s: '%s' is set more than once", where, o->name);
        return 1;
    }
    if (seen)
        seen[idx] = 1;
    int bad = apply_value(cfg, o, where, file, w, nw, e);
    if (origin && cfg->set_at) {
        if (bad) {
            cfg->rejected[idx] = 1;
        } else {
            cfg->rejected[idx] = 0;
            free(cfg->set_at[idx]);
            cfg->set_at[idx] = wd_strdup(origin);
        }
    }
    return bad;
}

/* apply(), for the directive o: checks the words and stores the value. */
static int apply_value(struct wd_config *cfg, const struct opt *o, const char *where,
                       const char *file, char **w, int nw, struct errbuf *e)
{
    char *field = (char *)cfg + o->off;
    int nargs = nw - 1;

    switch (o->type) {
    case T_HOOKS:
    case T_TOPICS:
    case T_ADDRS: {
        if (o->type != T_TOPICS && nargs < 1) {
            err_add(e, "%s: '%s' needs at least one %s", where, o->name,
                    o->type == T_HOOKS ? "hook name" : "HOST:PORT");
            return 1;
        }
        if (o->type == T_ADDRS && nargs > WD_CONFIG_SENTINELS_MAX) {
            err_add(e, "%s: '%s' takes at most %d addresses, got %d", where, o->name,
                    WD_CONFIG_SENTINELS_MAX, nargs);
            return 1;
        }
        int bad = 0;
        for (int i = 1; i < nw; i++) {
            if (o->type == T_HOOKS && !wd_config_hook_name_valid(w[i])) {
                err_add(e, "%s: unknown hook '%s' (EMQX would refuse to load warden)", where, w[i]);
                bad++;
            }
            if (o->type == T_TOPICS && (w[i][0] == '\0' || strlen(w[i]) > 65535)) {
                err_add(e, "%s: empty or oversized topic filter", where);
                bad++;
            }
            char host[256];
            int port;
            if (o->type == T_ADDRS && !wd_config_sentinel_split(w[i], host, sizeof host, &port)) {
                err_add(e,
                        "%s: '%s' expects HOST:PORT addresses (e.g. 10.0.0.5:26379 or "
                        "[fd00::5]:26379), got '%s'",
                        where, o->name, w[i]);
                bad++;
            }
            for (int j = 1; j < i && o->type != T_TOPICS; j++) {
                if (strcmp(w[i], w[j]) == 0) {
                    err_add(e, "%s: %s '%s' listed twice", where,
                            o->type == T_HOOKS ? "hook" : "address", w[i]);
                    bad++;
                }
            }
        }
        if (bad)
            return bad;
        char ***list = (char ***)field;
        size_t *count = o->type == T_HOOKS    ? &cfg->nhooks
                        : o->type == T_TOPICS ? &cfg->nmessage_topics
                                              : &cfg->nredis_sentinels;
        free_list(*list, *count);
        *list = wd_calloc((size_t)nargs, sizeof(char *));
        for (int i = 0; i < nargs; i++)
            (*list)[i] = wd_strdup(w[i + 1]);
        *count = (size_t)nargs;
        return 0;
    }
    case T_CLAIM: {
        if (nargs != 2 || w[1][0] == '\0') {
            err_add(e, "%s: '%s' takes a claim name and a value template", where, o->name);
            return 1;
        }
        for (size_t i = 0; i < cfg->njwt_verify_claims; i += 2) {
            if (strcmp(cfg->jwt_verify_claims[i], w[1]) == 0) {
                err_add(e, "%s: claim '%s' is already checked", where, w[1]);
                return 1;
            }
        }
        cfg->jwt_verify_claims =
            wd_realloc(cfg->jwt_verify_claims, (cfg->njwt_verify_claims + 2) * sizeof(char *));
        cfg->jwt_verify_claims[cfg->njwt_verify_claims++] = wd_strdup(w[1]);
        cfg->jwt_verify_claims[cfg->njwt_verify_claims++] = wd_strdup(w[2]);
        return 0;
    }
    default:
        break;
    }

    if (nargs != 1) {
        err_add(e, "%s: '%s' takes exactly one value, got %d", where, o->name, nargs);
        return 1;
    }
    const char *v = w[1];
    switch (o->type) {
    case T_ENUM: {
        int value;
        if (!choice_find(o, v, &value)) {
            err_choices(e, where, o, v);
            return 1;
        }
        *(int *)field = value;
        return 0;
    }
    case T_DEST: {
        struct wd_config_dest *d = (struct wd_config_dest *)field;
        int value;
        if (v[0] == '\0') {
            err_add(e, "%s: '%s' must not be empty", where, o->name);
            return 1;
        }
        free(d->file);
        d->file = NULL;
        if (choice_find(o, v, &value)) {
            d->to = (enum wd_config_output)value;
        } else {
            d->to = WD_CONFIG_OUTPUT_FILE;
            d->file = resolve_path(file, v);
        }
        return 0;
    }
    case T_SECRET_FILE: {
        /* the secret: this directive's name without "_file" */
        const struct opt *so = opt_find(o->name, strlen(o->name) - 5);
        char **secret = (char **)((char *)cfg + so->off), **path = (char **)field;
        if (*secret && !*path) {
            err_add(e, "%s: '%s' and '%s' are both set; keep one", where, o->name, so->name);
            return 1;
        }
        if (v[0] == '\0') {
            err_add(e, "%s: '%s' must not be empty", where, o->name);
            return 1;
        }
        char *full = resolve_path(file, v);
        if (read_secret_file(where, o->name, full, secret, e) != 0) {
            free(full);
            return 1;
        }
        free(*path);
        *path = full;
        return 0;
    }
    case T_STRING:
    case T_PATH:
    case T_SECRET: {
        if (v[0] == '\0') {
            err_add(e, "%s: '%s' must not be empty", where, o->name);
            return 1;
        }
        if (o->type == T_SECRET) {
            char fname[64];
            snprintf(fname, sizeof fname, "%s_file", o->name);
            const struct opt *fo = opt_find(fname, strlen(fname));
            if (fo && *(char **)((char *)cfg + fo->off)) {
                err_add(e, "%s: '%s' and '%s' are both set; keep one", where, o->name, fname);
                return 1;
            }
        }
        if (strcmp(o->name, "redis_sentinel_master") == 0 && !sentinel_name_ok(v)) {
            err_add(e,
                    "%s: 'redis_sentinel_master' must be a Sentinel master name: 1 to 200 "
                    "printable characters without blanks, got '%s'",
                    where, v);
            return 1;
        }
        if (strcmp(o->name, "listen") == 0 && !listen_form_ok(v)) {
            err_add(e,
                    "%s: 'listen' expects HOST:PORT (e.g. 127.0.0.1:9000 or [::]:9000), got '%s'",
                    where, v);
            return 1;
        }
        char **sp = (char **)field;
        free(*sp);
        *sp = o->type == T_PATH ? resolve_path(file, v) : wd_strdup(v);
        return 0;
    }
    case T_INT: {
        long n;
        if (parse_int(v, &n) != WD_OK || n < o->min || n > o->max) {
            err_add(e, "%s: '%s' must be an integer from %ld to %ld, got '%s'", where, o->name,
                    o->min, o->max, v);
            return 1;
        }
        *(int *)field = (int)n;
        return 0;
    }
    case T_DURATION: {
        int ms;
        if (wd_config_parse_duration(v, &ms) != WD_OK || ms < o->min || ms > o->max) {
            err_add(e,
                    "%s: '%s' must be a duration with a unit (ms, s, m, h) from %ldms to %ldms, "
                    "got '%s'",
                    where, o->name, o->min, o->max, v);
            return 1;
        }
        *(int *)field = ms;
        return 0;
    }
    case T_SIZE:
    case T_SIZE_AUTO: {
        int b;
        if (o->type == T_SIZE_AUTO && strcmp(v, "auto") == 0) {
            *(int *)field = 0;
            return 0;
        }
        if (wd_config_parse_size(v, &b) != WD_OK || b < o->min || b > o->max) {
            err_add(e,
                    "%s: '%s' must be %sa size (bytes, or with KiB/MiB/GiB) from %ld to %ld "
                    "bytes, got '%s'",
                    where, o->name, o->type == T_SIZE_AUTO ? "auto or " : "", o->min, o->max, v);
            return 1;
        }
        *(int *)field = b;
        return 0;
    }
    case T_BOOL:
        if (strcmp(v, "on") == 0 || strcmp(v, "true") == 0 || strcmp(v, "yes") == 0)
            *(bool *)field = true;
        else if (strcmp(v, "off") == 0 || strcmp(v, "false") == 0 || strcmp(v, "no") == 0)
            *(bool *)field = false;
        else {
            err_add(e, "%s: '%s' must be on or off, got '%s'", where, o->name, v);
            return 1;
        }
        return 0;
    default:
        return 0;
    }
}

/* Splits one line into words. Returns the word count, or -1 with *why set. Words are
 * written into `store` (NUL-separated) and pointed to by w[]. */
static int split_line(const char *line, size_t len, char *store, size_t storecap, char **w,
                      const char **why)
{
    size_t i = 0, o = 0;
    int nw = 0;
    while (i < len) {
        while (i < len && (line[i] == ' ' || line[i] == '\t' || line[i] == '\r'))
            i++;
        if (i >= len || line[i] == '#')
            break;
        if (nw == MAX_WORDS) {
            *why = "too many words on one line";
            return -1;
        }
        w[nw++] = store + o;
        size_t start_o = o;
        if (line[i] == '"') {
            i++;
            bool closed = false;
            while (i < len) {
                char c = line[i++];
                if (c == '"') {
                    closed = true;
                    break;
                }
                if (c == '\\' && i < len && (line[i] == '"' || line[i] == '\\'))
                    c = line[i++];
                if (o + 1 >= storecap || o - start_o >= MAX_WORD) {
                    *why = "word too long";
                    return -1;
                }
                store[o++] = c;
            }
            if (!closed) {
                *why = "unterminated quoted string";
                return -1;
            }
            if (i < len && line[i] != ' ' && line[i] != '\t' && line[i] != '\r' && line[i] != '#') {
                *why = "a quoted string must be followed by a blank";
                return -1;
            }
        } else {
            /* '#' inside a word is data (MQTT filters like a/#); only a word that
             * starts with '#' starts a comment */
            while (i < len && line[i] != ' ' && line[i] != '\t' && line[i] != '\r') {
                if (line[i] == '"') {
                    *why = "unexpected '\"' inside a word";
                    return -1;
                }
                if (o + 1 >= storecap || o - start_o >= MAX_WORD) {
                    *why = "word too long";
                    return -1;
                }
                store[o++] = line[i++];
            }
        }
        store[o++] = '\0';
    }
    return nw;
}

int wd_config_parse(struct wd_config *cfg, const char *name, const char *text, size_t len,
                    char **errors)
{
    *errors = NULL;
    struct errbuf e = {0};
    unsigned char seen[WD_ARRAY_LEN(opts)] = {0};
    size_t storecap = 65536;
    char *store = wd_malloc(storecap);
    char *w[MAX_WORDS];
    unsigned lineno = 0;
    size_t pos = 0;

    if (memchr(text, '\0', len))
        err_add(&e, "%s: contains a NUL byte (not a text file?)", name);
    while (pos < len && e.count < 100) {
        const char *line = text + pos;
        const char *nl = memchr(line, '\n', len - pos);
        size_t ll = nl ? (size_t)(nl - line) : len - pos;
        pos += ll + (nl ? 1 : 0);
        lineno++;
        if (ll >= storecap) {
            err_add(&e, "%s:%u: line too long", name, lineno);
            continue;
        }
        const char *why = NULL;
        int nw = split_line(line, ll, store, storecap, w, &why);
        char where[512];
        snprintf(where, sizeof where, "%s:%u", name, lineno);
        if (nw < 0) {
            err_add(&e, "%s: %s", where, why);
            continue;
        }
        if (nw == 0)
            continue;
        apply(cfg, where, name, w, nw, &e, seen);
    }
    free(store);
    /* named even when it has errors: wd_config_validate's messages may fall back to it */
    free(cfg->source);
    cfg->source = wd_strdup(name);
    if (e.count) {
        *errors = e.b.s;
        return WD_ESYNTAX;
    }
    return WD_OK;
}

int wd_config_load_file(struct wd_config *cfg, const char *path, char **errors)
{
    *errors = NULL;
    char *buf, msg[1024];
    size_t len;
    int rc = wd_file_read(path, MAX_CONFIG_BYTES, &buf, &len, msg, sizeof msg);
    if (rc != WD_OK) {
        *errors = wd_strdup(msg);
        return rc;
    }
    rc = wd_config_parse(cfg, path, buf, len, errors);
    free(buf);
    return rc;
}

int wd_config_set(struct wd_config *cfg, const char *key, const char *value, char **errors)
{
    return wd_config_set_from(cfg, NULL, key, value, errors);
}

int wd_config_set_from(struct wd_config *cfg, const char *origin, const char *key,
                       const char *value, char **errors)
{
    *errors = NULL;
    struct errbuf e = {0};
    size_t storecap = strlen(value) + 1 + 1;
    if (storecap < 256)
        storecap = 256;
    char *store = wd_malloc(storecap);
    char *w[MAX_WORDS + 1];
    const char *why = NULL;
    w[0] = (char *)key;
    char where[512];
    if (origin)
        snprintf(where, sizeof where, "command line: %s", origin);
    else
        snprintf(where, sizeof where, "command line: --set %s", key);
    int nw = split_line(value, strlen(value), store, storecap, w + 1, &why);
    if (nw < 0)
        err_add(&e, "%s: %s", where, why);
    else
        apply(cfg, where, NULL, w, nw + 1, &e, NULL);
    free(store);
    if (e.count) {
        *errors = e.b.s;
        return WD_EINVAL;
    }
    return WD_OK;
}

/* Every default is parsed as a line of a file would be: a default the parser would refuse
 * is a bug in the table, found by the first test that builds a configuration. */
void wd_config_defaults(struct wd_config *cfg)
{
    memset(cfg, 0, sizeof *cfg);
    cfg->source = wd_strdup("<defaults>");
    cfg->set_at = wd_calloc(WD_ARRAY_LEN(opts), sizeof(char *));
    cfg->rejected = wd_calloc(WD_ARRAY_LEN(opts), 1);
    char store[1024], *w[MAX_WORDS + 1];
    for (size_t i = 0; i < WD_ARRAY_LEN(opts); i++) {
        const struct opt *o = &opts[i];
        if (!o->def)
            continue;
        struct errbuf e = {0};
        const char *why = NULL;
        w[0] = (char *)o->name;
        int nw = split_line(o->def, strlen(o->def), store, sizeof store, w + 1, &why);
        if (nw < 0 || apply(cfg, NULL, NULL, w, nw + 1, &e, NULL) != 0) {
            fprintf(stderr, "warden: the default of '%s' (%s) does not parse: %s\n", o->name,
                    o->def, e.b.s ? e.b.s : why);
            abort();
        }
    }
}

const char *wd_config_where(const struct wd_config *cfg, const char *directive)
{
    const struct opt *o = opt_find(directive, strlen(directive));
    return o && cfg->set_at ? cfg->set_at[o - opts] : NULL;
}

size_t wd_config_directive_count(void)
{
    return WD_ARRAY_LEN(opts);
}

void wd_config_directive(size_t i, const char **name, const char **def)
{
    *name = i < WD_ARRAY_LEN(opts) ? opts[i].name : NULL;
    *def = i < WD_ARRAY_LEN(opts) ? opts[i].def : NULL;
}

static const char *choice_word(const struct choice *c, int value)
{
    for (; c && c->word; c++)
        if (c->value == value)
            return c->word;
    return NULL;
}

const char *wd_config_choice_name(const char *directive, int value)
{
    const struct opt *o = opt_find(directive, strlen(directive));
    const char *w = o ? choice_word(o->choices, value) : NULL;
    return w ? w : "?";
}

/* ---- policies derived from several options ---- */

bool wd_config_hook_carries_packet(const char *name)
{
    /* message.*: the payload; client.subscribe/unsubscribe: every filter of the packet;
     * client.connect/connack: the packet's (user) properties. The others carry a client's
     * identity and at most one topic. */
    return strncmp(name, "message.", 8) == 0 || strcmp(name, "client.subscribe") == 0 ||
           strcmp(name, "client.unsubscribe") == 0 || strcmp(name, "client.connect") == 0 ||
           strcmp(name, "client.connack") == 0;
}

int wd_config_request_limit(const struct wd_config *cfg)
{
    if (cfg->max_message_size > 0)
        return cfg->max_message_size;
    for (size_t i = 0; i < cfg->nhooks; i++)
        if (wd_config_hook_carries_packet(cfg->hooks[i]))
            return WD_CONFIG_REQUEST_PACKET;
    return WD_CONFIG_REQUEST_SMALL;
}

bool wd_config_listen_split(const char *listen, char *host, size_t cap, const char **port)
{
    const char *colon = strrchr(listen, ':');
    if (!colon)
        return false;
    const char *h = listen;
    size_t hl = (size_t)(colon - listen);
    if (hl >= 2 && h[0] == '[' && h[hl - 1] == ']') {
        h++;
        hl -= 2;
    }
    if (hl >= cap)
        return false;
    memcpy(host, h, hl);
    host[hl] = '\0';
    *port = colon + 1;
    return true;
}

bool wd_config_sentinel_split(const char *addr, char *host, size_t cap, int *port)
{
    const char *p;
    long n = 0;
    *port = 0;
    if (!addr || !wd_config_listen_split(addr, host, cap, &p) || host[0] == '\0')
        return false;
    if (*p < '0' || *p > '9' || parse_int(p, &n) != WD_OK || n < 1 || n > 65535)
        return false;
    bool bracketed = addr[0] == '[';
    if (bracketed != (strchr(host, ':') != NULL))
        return false; /* an IPv6 address needs brackets, and only it may have them */
    for (const char *c = host; *c; c++)
        if ((unsigned char)*c <= ' ' || (unsigned char)*c >= 0x7f || *c == '[' || *c == ']')
            return false;
    *port = (int)n;
    return true;
}

bool wd_config_listen_is_loopback(const char *listen)
{
    char h[256];
    const char *port;
    if (!wd_config_listen_split(listen, h, sizeof h, &port))
        return false;
    if (strchr(h, ':') && listen[0] != '[')
        return false; /* an IPv6 address needs brackets, or HOST:PORT is ambiguous */
    /* only literal names: a host name that resolves to a loopback address today need not
     * tomorrow; "localhost" is the exception, as /etc/hosts maps it (the server binds the
     * first address getaddrinfo gives for it: 127.0.0.1 or ::1) */
    if (strcasecmp(h, "localhost") == 0)
        return true;
    unsigned char a[16];
    if (inet_pton(AF_INET, h, a) == 1)
        return a[0] == 127;
    if (inet_pton(AF_INET6, h, a) == 1) {
        static const unsigned char lo[16] = {[15] = 1};
        static const unsigned char mapped[12] = {[10] = 0xff, [11] = 0xff};
        return memcmp(a, lo, 16) == 0 || (memcmp(a, mapped, 12) == 0 && a[12] == 127);
    }
    return false;
}

/* What bind(2) will need for the admin socket, checked before warden listens: a path that
 * fits in sun_path, a directory that exists and that this process (its effective ids) may
 * create files in, and no other kind of file at the path (admin.c never removes one). */
static void check_admin_socket(const struct wd_config *cfg, struct errbuf *e)
{
    const char *path = cfg->admin_socket;
    const char *at = wd_config_where(cfg, "admin_socket");
    if (!at)
        at = cfg->source;
    struct sockaddr_un sa;
    if (strlen(path) >= sizeof sa.sun_path) {
        err_add(e, "%s: admin_socket %s: too long for a Unix socket (at most %zu bytes)", at, path,
                sizeof sa.sun_path - 1);
        return;
    }
    const char *slash = strrchr(path, '/');
    char dir[sizeof sa.sun_path];
    if (!slash)
        snprintf(dir, sizeof dir, ".");
    else if (slash == path)
        snprintf(dir, sizeof dir, "/");
    else
        snprintf(dir, sizeof dir, "%.*s", (int)(slash - path), path);
    struct stat st;
    if (stat(dir, &st) != 0) {
        err_add(e,
                "%s: admin_socket %s: directory %s: %s (create it; under systemd, "
                "RuntimeDirectory=warden creates /run/warden)",
                at, path, dir, strerror(errno));
        return;
    }
    if (!S_ISDIR(st.st_mode)) {
        err_add(e, "%s: admin_socket %s: %s is not a directory", at, path, dir);
        return;
    }
    if (faccessat(AT_FDCWD, dir, W_OK | X_OK, AT_EACCESS) != 0) {
        err_add(e, "%s: admin_socket %s: cannot create files in %s (uid %u): %s", at, path, dir,
                (unsigned)geteuid(), strerror(errno));
        return;
    }
    if (lstat(path, &st) == 0 && !S_ISSOCK(st.st_mode))
        err_add(e, "%s: admin_socket %s: exists and is not a socket (warden does not remove it)",
                at, path);
}

static void fmt_duration(char *b, size_t cap, int ms);

/* ---- rules that involve several directives ----
 *
 * Each message starts with where the directive it is about was set (file:line, or the
 * flag), and names where the others involved were set, so that these errors can be
 * reported with the line errors in one pass. A rule whose directives include one whose
 * value was refused is not checked: that line is already reported, and the default the
 * directive kept would only make a second, misleading error. */

/* Where `name`'s value came from: its file:line or flag, else the configuration's name. */
static const char *at(const struct wd_config *cfg, const char *name)
{
    const char *w = wd_config_where(cfg, name);
    return w ? w : cfg->source;
}

/* "FILE:LINE" or "the default", for naming the other directive of a rule. */
static const char *at_or_default(const struct wd_config *cfg, const char *name)
{
    const char *w = wd_config_where(cfg, name);
    return w ? w : "the default";
}

/* Whether any of the directives had its value refused: REJECTED(cfg, "a", "b", ...). */
static bool any_rejected(const struct wd_config *cfg, const char *const *names)
{
    for (; *names; names++) {
        const struct opt *o = opt_find(*names, strlen(*names));
        if (o && cfg->rejected && cfg->rejected[o - opts])
            return true;
    }
    return false;
}
#define REJECTED(cfg, ...) any_rejected(cfg, (const char *const[]){__VA_ARGS__, NULL})

static void check_tls(const struct wd_config *cfg, struct errbuf *e)
{
    if (REJECTED(cfg, "tls_cert", "tls_key", "tls_client_ca"))
        return;
    if (cfg->tls_key && !cfg->tls_cert)
        err_add(e, "%s: tls_key is set but tls_cert is not", at(cfg, "tls_key"));
    if (cfg->tls_cert && !cfg->tls_key)
        err_add(e, "%s: tls_cert is set but tls_key is not", at(cfg, "tls_cert"));
    if (cfg->tls_client_ca && !cfg->tls_cert)
        err_add(e, "%s: tls_client_ca (mutual TLS) needs tls_cert and tls_key",
                at(cfg, "tls_client_ca"));
}

static void check_keepalive(const struct wd_config *cfg, struct errbuf *e)
{
    if (!REJECTED(cfg, "keepalive_time", "keepalive_timeout") &&
        cfg->keepalive_timeout_ms >= cfg->keepalive_time_ms) {
        char a[32], b[32];
        fmt_duration(a, sizeof a, cfg->keepalive_timeout_ms);
        fmt_duration(b, sizeof b, cfg->keepalive_time_ms);
        /* blamed on keepalive_timeout unless only keepalive_time was set */
        bool timeout_set = wd_config_where(cfg, "keepalive_timeout") != NULL;
        if (timeout_set)
            err_add(e, "%s: keepalive_timeout (%s) must be shorter than keepalive_time (%s, %s)",
                    at(cfg, "keepalive_timeout"), a, b, at_or_default(cfg, "keepalive_time"));
        else
            err_add(e, "%s: keepalive_time (%s) must be longer than keepalive_timeout (%s, %s)",
                    at(cfg, "keepalive_time"), b, a, at_or_default(cfg, "keepalive_timeout"));
    }
    if (!REJECTED(cfg, "min_ping_interval") && cfg->min_ping_interval_ms > 60000)
        err_add(e, "%s: min_ping_interval above 60s would penalize EMQX, which pings every 60s",
                at(cfg, "min_ping_interval"));
}

/* redis_sentinel: with its master name, instead of a server address, and its own credentials
 * only with it. */
static void check_sentinel(const struct wd_config *cfg, struct errbuf *e)
{
    if (REJECTED(cfg, "redis_sentinel", "redis_sentinel_master", "redis_sentinel_username",
                 "redis_sentinel_password", "redis_sentinel_password_file", "redis_host",
                 "redis_socket", "redis_port"))
        return;
    bool on = cfg->nredis_sentinels > 0;
    if (on && !cfg->redis_sentinel_master)
        err_add(e, "%s: redis_sentinel is set but redis_sentinel_master (the master's name) is not",
                at(cfg, "redis_sentinel"));
    if (!on && cfg->redis_sentinel_master)
        err_add(e,
                "%s: redis_sentinel_master is set but redis_sentinel (the Sentinel addresses) is "
                "not",
                at(cfg, "redis_sentinel_master"));
    static const char *const direct[] = {"redis_host", "redis_socket", "redis_port"};
    for (size_t i = 0; on && i < WD_ARRAY_LEN(direct); i++)
        if (wd_config_where(cfg, direct[i]))
            err_add(e,
                    "%s: %s and redis_sentinel are both set (redis_sentinel: %s): with Sentinel "
                    "the master's address comes from the sentinels; remove %s",
                    at(cfg, direct[i]), direct[i], at(cfg, "redis_sentinel"), direct[i]);
    const char *pw = cfg->redis_sentinel_password_file ? "redis_sentinel_password_file"
                                                       : "redis_sentinel_password";
    if (!on && cfg->redis_sentinel_password)
        err_add(e, "%s: %s is set but redis_sentinel is not", at(cfg, pw), pw);
    if (!on && cfg->redis_sentinel_username)
        err_add(e, "%s: redis_sentinel_username is set but redis_sentinel is not",
                at(cfg, "redis_sentinel_username"));
    if (cfg->redis_sentinel_username && !cfg->redis_sentinel_password)
        err_add(e,
                "%s: redis_sentinel_username needs redis_sentinel_password (or "
                "redis_sentinel_password_file): AUTH takes both",
                at(cfg, "redis_sentinel_username"));
}

static void check_stores(const struct wd_config *cfg, struct errbuf *e)
{
    if (!REJECTED(cfg, "redis_host", "redis_socket") && cfg->redis_host && cfg->redis_socket)
        err_add(e, "%s: redis_host and redis_socket are both set (redis_host: %s): choose one",
                at(cfg, "redis_socket"), at(cfg, "redis_host"));
    if (!REJECTED(cfg, "redis_host", "redis_socket", "redis_password", "redis_password_file",
                  "redis_sentinel") &&
        cfg->redis_password && !cfg->redis_host && !cfg->redis_socket && !cfg->nredis_sentinels) {
        const char *by = cfg->redis_password_file ? "redis_password_file" : "redis_password";
        err_add(e, "%s: %s is set but none of redis_host, redis_socket, redis_sentinel",
                at(cfg, by), by);
    }
    check_sentinel(cfg, e);
    /* JWT: one key source at most; the second one set is blamed, the first is named */
    static const char *const sources[] = {"jwt_secret", "jwt_public_key", "jwt_jwks_file",
                                          "jwt_jwks_url"};
    const char *const set[] = {cfg->jwt_secret, cfg->jwt_public_key, cfg->jwt_jwks_file,
                               cfg->jwt_jwks_url};
    if (REJECTED(cfg, "jwt_secret", "jwt_secret_file", "jwt_public_key", "jwt_jwks_file",
                 "jwt_jwks_url", "jwt_jwks_ca"))
        return;
    const char *first = NULL;
    for (size_t i = 0; i < WD_ARRAY_LEN(sources); i++) {
        if (!set[i])
            continue;
        const char *name = sources[i];
        if (i == 0 && cfg->jwt_secret_file)
            name = "jwt_secret_file";
        if (!first) {
            first = name;
            continue;
        }
        err_add(e,
                "%s: set exactly one JWT key source: jwt_secret, jwt_public_key, jwt_jwks_file "
                "or jwt_jwks_url (%s: %s)",
                at(cfg, name), first, at(cfg, first));
    }
    if (cfg->jwt_jwks_ca && !cfg->jwt_jwks_url)
        err_add(e, "%s: jwt_jwks_ca is set but jwt_jwks_url is not", at(cfg, "jwt_jwks_ca"));
}

int wd_config_validate(const struct wd_config *cfg, char **errors)
{
    struct errbuf e = {0};
    *errors = NULL;
    check_tls(cfg, &e);
    check_keepalive(cfg, &e);
    check_stores(cfg, &e);
    /* The embedded policy lets demo/demo in: only a client on this host may reach it. */
    if (!REJECTED(cfg, "policy", "listen") && !cfg->policy &&
        !wd_config_listen_is_loopback(cfg->listen))
        err_add(&e,
                "%s: no `policy` is set: the embedded demo policy (user demo, password demo) is "
                "served only on a loopback address, and listen is '%s'; set `policy FILE` "
                "(docs/policy.md), or listen on 127.0.0.1",
                at(cfg, "listen"), cfg->listen);
    if (cfg->admin_socket && !REJECTED(cfg, "admin_socket"))
        check_admin_socket(cfg, &e);
    if (e.count) {
        *errors = e.b.s;
        return WD_EINVAL;
    }
    return WD_OK;
}

/* ---- printing ---- */

static void put(int fd, const char *s)
{
    size_t len = strlen(s);
    while (len) {
        ssize_t w = write(fd, s, len);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return;
        s += w;
        len -= (size_t)w;
    }
}

static void fmt_duration(char *b, size_t cap, int ms)
{
    if (ms == 0)
        snprintf(b, cap, "0");
    else if (ms % 3600000 == 0 && ms)
        snprintf(b, cap, "%dh", ms / 3600000);
    else if (ms % 60000 == 0 && ms)
        snprintf(b, cap, "%dm", ms / 60000);
    else if (ms % 1000 == 0 && ms)
        snprintf(b, cap, "%ds", ms / 1000);
    else
        snprintf(b, cap, "%dms", ms);
}

static void fmt_size(char *b, size_t cap, int n)
{
    if (n % (1 << 20) == 0 && n)
        snprintf(b, cap, "%dMiB", n >> 20);
    else if (n % 1024 == 0 && n)
        snprintf(b, cap, "%dKiB", n >> 10);
    else
        snprintf(b, cap, "%d", n);
}

/* Appends s to b[*off..cap) as one word the parser reads back as s: bare when it can be,
 * else double-quoted with \" and \\ escaped (an empty value, blanks, a quote or backslash,
 * or a leading '#', which would start a comment: a lone "#" filter), or always quoted. */
static void fmt_word(char *b, size_t cap, size_t *off, const char *s, bool quote)
{
    bool bare = !quote && s[0] != '\0' && s[0] != '#' && strpbrk(s, " \t\r\"\\") == NULL;
    size_t o = *off;
    if (o + 1 >= cap)
        return;
    if (bare) {
        o += (size_t)snprintf(b + o, cap - o, "%s", s);
    } else {
        b[o++] = '"';
        for (; *s && o + 3 < cap; s++) {
            if (*s == '"' || *s == '\\')
                b[o++] = '\\';
            b[o++] = *s;
        }
        b[o++] = '"';
        b[o] = '\0';
    }
    *off = o < cap ? o : cap - 1;
}

void wd_config_print(const struct wd_config *cfg, int fd)
{
    char line[8192], v[4096];
    snprintf(line, sizeof line, "# effective configuration (from %s)\n", cfg->source);
    put(fd, line);
    for (size_t i = 0; i < WD_ARRAY_LEN(opts); i++) {
        const struct opt *o = &opts[i];
        const char *field = (const char *)cfg + o->off;
        v[0] = '\0';
        switch (o->type) {
        case T_SECRET: {
            char fname[64];
            snprintf(fname, sizeof fname, "%s_file", o->name);
            const struct opt *fo = opt_find(fname, strlen(fname));
            bool from_file = fo && *(char *const *)((const char *)cfg + fo->off);
            snprintf(line, sizeof line,
                     !*(char *const *)field ? "# %s (unset)\n"
                     : from_file            ? "# %s <redacted> (from %s_file)\n"
                                            : "%s <redacted>\n",
                     o->name, o->name);
            put(fd, line);
            continue;
        }
        case T_CLAIM:
            for (size_t k = 0; k + 1 < cfg->njwt_verify_claims; k += 2) {
                size_t off = (size_t)snprintf(line, sizeof line, "%s ", o->name);
                fmt_word(line, sizeof line - 1, &off, cfg->jwt_verify_claims[k], true);
                line[off++] = ' ';
                fmt_word(line, sizeof line - 1, &off, cfg->jwt_verify_claims[k + 1], true);
                line[off++] = '\n';
                line[off] = '\0';
                put(fd, line);
            }
            if (cfg->njwt_verify_claims == 0) {
                snprintf(line, sizeof line, "# %s (none)\n", o->name);
                put(fd, line);
            }
            continue;
        case T_ENUM: {
            const char *word = choice_word(o->choices, *(const int *)field);
            if (!word) { /* a value no word stands for: unset (chosen at start) */
                snprintf(line, sizeof line, "# %s (unset)\n", o->name);
                put(fd, line);
                continue;
            }
            snprintf(v, sizeof v, "%s", word);
            break;
        }
        case T_DEST: {
            const struct wd_config_dest *d = (const struct wd_config_dest *)field;
            if (d->to == WD_CONFIG_OUTPUT_FILE) {
                size_t off = 0;
                fmt_word(v, sizeof v, &off, d->file, false);
            } else if (d->to == WD_CONFIG_OUTPUT_OFF && !(cfg->set_at && cfg->set_at[i])) {
                snprintf(line, sizeof line, "# %s (unset)\n", o->name);
                put(fd, line);
                continue;
            } else {
                snprintf(v, sizeof v, "%s", choice_word(o->choices, (int)d->to));
            }
            break;
        }
        case T_SECRET_FILE: /* the path; the secret is printed as <redacted> */
        case T_PATH:
        case T_STRING: {
            const char *s = *(char *const *)field;
            if (!s) {
                snprintf(line, sizeof line, "# %s (unset)\n", o->name);
                put(fd, line);
                continue;
            }
            size_t off = 0;
            fmt_word(v, sizeof v, &off, s, false);
            break;
        }
        case T_INT:
            snprintf(v, sizeof v, "%d", *(const int *)field);
            break;
        case T_DURATION:
            fmt_duration(v, sizeof v, *(const int *)field);
            break;
        case T_SIZE:
            fmt_size(v, sizeof v, *(const int *)field);
            break;
        case T_SIZE_AUTO:
            if (*(const int *)field == 0) {
                char lim[32];
                fmt_size(lim, sizeof lim, wd_config_request_limit(cfg));
                snprintf(v, sizeof v, "auto   # %s with these hooks", lim);
            } else {
                fmt_size(v, sizeof v, *(const int *)field);
            }
            break;
        case T_BOOL:
            snprintf(v, sizeof v, "%s", *(const bool *)field ? "on" : "off");
            break;
        case T_HOOKS:
        case T_TOPICS:
        case T_ADDRS: {
            char *const *list = *(char **const *)field;
            size_t n = o->type == T_HOOKS    ? cfg->nhooks
                       : o->type == T_TOPICS ? cfg->nmessage_topics
                                             : cfg->nredis_sentinels;
            size_t off = 0;
            for (size_t k = 0; k < n && off + 1 < sizeof v - 1; k++) {
                if (k)
                    v[off++] = ' ';
                fmt_word(v, sizeof v, &off, list[k], false);
            }
            if (n == 0) {
                snprintf(line, sizeof line, "# %s (none)\n", o->name);
                put(fd, line);
                continue;
            }
            break;
        }
        }
        snprintf(line, sizeof line, "%s %s\n", o->name, v);
        put(fd, line);
    }
}
