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

/* ---- option table ---- */

enum opt_type {
    T_STRING,
    T_PATH, /* a file name: relative ones are relative to the configuration file's directory */
    T_INT,
    T_DURATION,
    T_SIZE,
    T_SIZE_AUTO, /* a size, or `auto` (stored as 0) */
    T_BOOL,
    T_NOMATCH,
    T_LOGLEVEL,
    T_HOOKS,
    T_TOPICS,
    T_SECRET,      /* a string never printed by --print-config */
    T_SECRET_FILE, /* NAME_file PATH: the secret NAME read from a file (path kept here) */
    T_WORD,        /* one of `choices`, stored as a string */
    T_CLAIM,       /* NAME TEMPLATE, repeatable: appended to jwt_verify_claims */
};

struct opt {
    const char *name;
    enum opt_type type;
    size_t off;
    long min, max;
    const char *const *choices; /* T_WORD: NULL-terminated */
};

static const char *const deny_next[] = {"deny", "next", NULL};
static const char *const hash_algos[] = {"plain",  "md5",    "sha",    "sha1",     "sha256",
                                         "sha512", "bcrypt", "pbkdf2", "argon2id", NULL};
static const char *const salt_positions[] = {"prefix", "suffix", "disable", NULL};
static const char *const pbkdf2_macs[] = {"sha",    "sha1",   "sha224", "sha256",
                                          "sha384", "sha512", NULL};
static const char *const token_fields[] = {"password", "username", NULL};
static const char *const transports[] = {"h2", NULL};
/* T_PATH with choices: these words are kept as they are, anything else is a file name */
static const char *const log_words[] = {"off", "stderr", NULL};
static const char *const log_events[] = {"deny", "all", NULL};
static const char *const session_stores[] = {"local", "redis", NULL};

#define OFF(f) offsetof(struct wd_config, f)
static const struct opt opts[] = {
    {"listen", T_STRING, OFF(listen), 0, 0, NULL},
    {"workers", T_INT, OFF(workers), 0, 256, NULL},
    {"hash_threads", T_INT, OFF(hash_threads), 1, 64, NULL},
    {"shutdown_grace", T_DURATION, OFF(shutdown_grace_ms), 0, 600000, NULL},
    {"max_message_size", T_SIZE_AUTO, OFF(max_message_size), 1024, 64 << 20, NULL},
    {"max_concurrent_streams", T_INT, OFF(max_concurrent_streams), 1, 100000, NULL},
    {"keepalive_time", T_DURATION, OFF(keepalive_time_ms), 1000, 86400000, NULL},
    {"keepalive_timeout", T_DURATION, OFF(keepalive_timeout_ms), 1000, 3600000, NULL},
    {"min_ping_interval", T_DURATION, OFF(min_ping_interval_ms), 0, 3600000, NULL},
    {"max_connection_idle", T_DURATION, OFF(max_connection_idle_ms), 0, 86400000, NULL},
    {"max_connection_age", T_DURATION, OFF(max_connection_age_ms), 0, 604800000, NULL},
    {"max_connection_age_grace", T_DURATION, OFF(max_connection_age_grace_ms), 0, 3600000, NULL},
    {"transport", T_WORD, OFF(transport), 0, 0, transports},
    {"max_connections", T_INT, OFF(max_connections), 1, 1000000, NULL},
    {"max_connections_per_peer", T_INT, OFF(max_connections_per_peer), 1, 1000000, NULL},
    {"handshake_timeout", T_DURATION, OFF(handshake_timeout_ms), 100, 600000, NULL},
    {"header_timeout", T_DURATION, OFF(header_timeout_ms), 100, 600000, NULL},
    {"request_buffer_memory", T_SIZE, OFF(request_buffer_memory), 1 << 20, 1 << 30, NULL},
    {"tls_cert", T_PATH, OFF(tls_cert), 0, 0, NULL},
    {"tls_key", T_PATH, OFF(tls_key), 0, 0, NULL},
    {"tls_client_ca", T_PATH, OFF(tls_client_ca), 0, 0, NULL},
    {"hooks", T_HOOKS, OFF(hooks), 0, 0, NULL},
    {"message_topics", T_TOPICS, OFF(message_topics), 0, 0, NULL},
    {"nomatch_reply", T_NOMATCH, OFF(nomatch_reply), 0, 0, NULL},
    {"policy", T_PATH, OFF(policy), 0, 0, NULL},
    {"policy_watch", T_BOOL, OFF(policy_watch), 0, 0, NULL},
    {"log_level", T_LOGLEVEL, OFF(log_level), 0, 0, NULL},
    {"redis_host", T_STRING, OFF(redis_host), 0, 0, NULL},
    {"redis_port", T_INT, OFF(redis_port), 1, 65535, NULL},
    {"redis_socket", T_PATH, OFF(redis_socket), 0, 0, NULL},
    {"redis_username", T_STRING, OFF(redis_username), 0, 0, NULL},
    {"redis_password", T_SECRET, OFF(redis_password), 0, 0, NULL},
    {"redis_password_file", T_SECRET_FILE, OFF(redis_password_file), 0, 0, NULL},
    {"redis_database", T_INT, OFF(redis_database), 0, 1 << 20, NULL},
    {"redis_connect_timeout", T_DURATION, OFF(redis_connect_timeout_ms), 1, 60000, NULL},
    {"redis_timeout", T_DURATION, OFF(redis_timeout_ms), 1, 60000, NULL},
    {"redis_authn_key", T_STRING, OFF(redis_authn_key), 0, 0, NULL},
    {"redis_acl_key", T_STRING, OFF(redis_acl_key), 0, 0, NULL},
    {"redis_password_hash", T_WORD, OFF(redis_password_hash), 0, 0, hash_algos},
    {"redis_salt_position", T_WORD, OFF(redis_salt_position), 0, 0, salt_positions},
    {"redis_pbkdf2_mac", T_WORD, OFF(redis_pbkdf2_mac), 0, 0, pbkdf2_macs},
    {"redis_pbkdf2_iterations", T_INT, OFF(redis_pbkdf2_iterations), 1, 10000000, NULL},
    {"redis_pbkdf2_dk_length", T_INT, OFF(redis_pbkdf2_dk_length), 0, 1024, NULL},
    {"redis_on_error", T_WORD, OFF(redis_on_error), 0, 0, deny_next},
    {"jwt_secret", T_SECRET, OFF(jwt_secret), 0, 0, NULL},
    {"jwt_secret_file", T_SECRET_FILE, OFF(jwt_secret_file), 0, 0, NULL},
    {"jwt_secret_base64", T_BOOL, OFF(jwt_secret_base64), 0, 0, NULL},
    {"jwt_public_key", T_PATH, OFF(jwt_public_key), 0, 0, NULL},
    {"jwt_jwks_file", T_PATH, OFF(jwt_jwks_file), 0, 0, NULL},
    {"jwt_jwks_url", T_STRING, OFF(jwt_jwks_url), 0, 0, NULL},
    {"jwt_jwks_ca", T_PATH, OFF(jwt_jwks_ca), 0, 0, NULL},
    {"jwt_jwks_refresh", T_DURATION, OFF(jwt_jwks_refresh_ms), 10000, 86400000, NULL},
    {"jwt_from", T_WORD, OFF(jwt_from), 0, 0, token_fields},
    {"jwt_leeway", T_DURATION, OFF(jwt_leeway_ms), 0, 3600000, NULL},
    {"jwt_check_iat", T_BOOL, OFF(jwt_check_iat), 0, 0, NULL},
    {"jwt_iss", T_STRING, OFF(jwt_iss), 0, 0, NULL},
    {"jwt_aud", T_STRING, OFF(jwt_aud), 0, 0, NULL},
    {"jwt_verify_claim", T_CLAIM, OFF(jwt_verify_claims), 0, 0, NULL},
    {"jwt_acl_claim", T_STRING, OFF(jwt_acl_claim), 0, 0, NULL},
    {"jwt_max_token_len", T_SIZE, OFF(jwt_max_token_len), 64, 1 << 20, NULL},
    {"jwt_on_invalid", T_WORD, OFF(jwt_on_invalid), 0, 0, deny_next},
    {"cache", T_BOOL, OFF(cache), 0, 0, NULL},
    {"cache_entries", T_INT, OFF(cache_entries), 16, 100000000, NULL},
    {"cache_memory", T_SIZE, OFF(cache_memory), 65536, 1 << 30, NULL},
    {"cache_ttl", T_DURATION, OFF(cache_ttl_ms), 1, 86400000, NULL},
    {"cache_negative_ttl", T_DURATION, OFF(cache_negative_ttl_ms), 1, 86400000, NULL},
    {"session_max", T_INT, OFF(session_max), 16, 100000000, NULL},
    {"session_memory", T_SIZE, OFF(session_memory), 65536, 1 << 30, NULL},
    {"session_ttl", T_DURATION, OFF(session_ttl_ms), 0, 604800000, NULL},
    {"session_store", T_WORD, OFF(session_store), 0, 0, session_stores},
    {"session_redis_prefix", T_STRING, OFF(session_redis_prefix), 0, 0, NULL},
    {"session_redis_ttl", T_DURATION, OFF(session_redis_ttl_ms), 1000, 604800000, NULL},
    {"admin_socket", T_PATH, OFF(admin_socket), 0, 0, NULL},
    {"allow_core_dumps", T_BOOL, OFF(allow_core_dumps), 0, 0, NULL},
    {"metrics_listen", T_STRING, OFF(metrics_listen), 0, 0, NULL},
    {"decision_log", T_PATH, OFF(decision_log), 0, 0, log_words},
    {"decision_log_events", T_WORD, OFF(decision_log_events), 0, 0, log_events},
    {"decision_log_queue", T_INT, OFF(decision_log_queue), 16, 1 << 20, NULL},
};
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

void wd_config_defaults(struct wd_config *cfg)
{
    memset(cfg, 0, sizeof *cfg);
    cfg->source = wd_strdup("<defaults>");
    cfg->listen = wd_strdup("127.0.0.1:9000");
    cfg->workers = 0;
    cfg->hash_threads = 2;
    cfg->shutdown_grace_ms = 5000;
    cfg->max_message_size = 0; /* auto */
    cfg->max_concurrent_streams = 1000;
    cfg->keepalive_time_ms = 60000;
    cfg->keepalive_timeout_ms = 20000;
    cfg->min_ping_interval_ms = 10000;
    cfg->max_connection_idle_ms = 0;
    cfg->max_connection_age_ms = 0;
    cfg->max_connection_age_grace_ms = 30000;
    cfg->transport = wd_strdup("h2");
    cfg->max_connections = 10000;
    cfg->max_connections_per_peer = 1000;
    cfg->handshake_timeout_ms = 10000;
    cfg->header_timeout_ms = 10000;
    cfg->request_buffer_memory = 64 << 20;
    cfg->hooks = wd_calloc(3, sizeof(char *));
    cfg->hooks[0] = wd_strdup("client.authenticate");
    cfg->hooks[1] = wd_strdup("client.authorize");
    cfg->hooks[2] = wd_strdup("client.disconnected"); /* drops the client's session */
    cfg->nhooks = 3;
    cfg->nomatch_reply = WD_NOMATCH_CONTINUE;
    cfg->policy_watch = true;
    cfg->log_level = WD_LOG_INFO;

    cfg->redis_port = 6379;
    cfg->redis_connect_timeout_ms = 1000;
    cfg->redis_timeout_ms = 500;
    cfg->redis_authn_key = wd_strdup("mqtt_user:${username}");
    cfg->redis_acl_key = wd_strdup("mqtt_acl:${username}");
    cfg->redis_password_hash = wd_strdup("sha256");
    cfg->redis_salt_position = wd_strdup("prefix");
    cfg->redis_pbkdf2_mac = wd_strdup("sha256");
    cfg->redis_pbkdf2_iterations = 4096;
    cfg->redis_pbkdf2_dk_length = 0;
    cfg->redis_on_error = wd_strdup("deny");

    cfg->jwt_jwks_refresh_ms = 300000;
    cfg->jwt_from = wd_strdup("password");
    cfg->jwt_acl_claim = wd_strdup("acl");
    cfg->jwt_max_token_len = 8192;
    cfg->jwt_on_invalid = wd_strdup("deny");

    cfg->cache = true;
    cfg->cache_entries = 65536;
    cfg->cache_memory = 64 << 20;
    cfg->cache_ttl_ms = 60000;
    cfg->cache_negative_ttl_ms = 5000;
    cfg->session_max = 1000000;
    cfg->session_memory = 256 << 20;
    cfg->session_ttl_ms = 0;
    cfg->session_store = NULL; /* redis when Redis is configured, else local */
    cfg->session_redis_prefix = wd_strdup("warden:session:");
    cfg->session_redis_ttl_ms = 86400000;

    cfg->decision_log_events = wd_strdup("deny");
    cfg->decision_log_queue = 4096;
}

void wd_config_cleanup(struct wd_config *cfg)
{
    if (!cfg)
        return;
    free(cfg->source);
    free(cfg->warnings);
    for (size_t i = 0; i < WD_ARRAY_LEN(opts); i++) {
        if (opts[i].type != T_STRING && opts[i].type != T_SECRET && opts[i].type != T_WORD &&
            opts[i].type != T_SECRET_FILE && opts[i].type != T_PATH)
            continue;
        char **sp = (char **)((char *)cfg + opts[i].off);
        if (opts[i].type == T_SECRET && *sp)
            explicit_bzero(*sp, strlen(*sp));
        free(*sp);
    }
    free_list(cfg->hooks, cfg->nhooks);
    free_list(cfg->message_topics, cfg->nmessage_topics);
    free_list(cfg->jwt_verify_claims, cfg->njwt_verify_claims);
    free(cfg->admin_socket_where);
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

/* A directive with its words. Returns the number of errors added. */
static int apply(struct wd_config *cfg, const char *where, const char *file, char **w, int nw,
                 struct errbuf *e, unsigned char *seen)
{
    int removed = apply_removed(cfg, where, w, nw, e);
    if (removed >= 0)
        return removed;
    const struct opt *o = NULL;
    size_t idx = 0;
    for (idx = 0; idx < WD_ARRAY_LEN(opts); idx++) {
        if (strcmp(opts[idx].name, w[0]) == 0) {
            o = &opts[idx];
            break;
        }
    }
    if (!o) {
        err_add(e, "%s: unknown directive '%s'", where, w[0]);
        return 1;
    }
    if (seen && seen[idx] && o->type != T_CLAIM) {
        err_add(e, "%s: '%s' is set more than once", where, o->name);
        return 1;
    }
    if (seen)
        seen[idx] = 1;
    char *field = (char *)cfg + o->off;
    int nargs = nw - 1;

    switch (o->type) {
    case T_HOOKS:
    case T_TOPICS: {
        if (o->type == T_HOOKS && nargs < 1) {
            err_add(e, "%s: 'hooks' needs at least one hook name", where);
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
            for (int j = 1; j < i && o->type == T_HOOKS; j++) {
                if (strcmp(w[i], w[j]) == 0) {
                    err_add(e, "%s: hook '%s' listed twice", where, w[i]);
                    bad++;
                }
            }
        }
        if (bad)
            return bad;
        char ***list = (char ***)field;
        size_t *count = o->type == T_HOOKS ? &cfg->nhooks : &cfg->nmessage_topics;
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
    case T_WORD: {
        size_t k = 0;
        while (o->choices[k] && strcmp(o->choices[k], v) != 0)
            k++;
        if (!o->choices[k]) {
            struct wd_buf b = {0};
            for (size_t j = 0; o->choices[j]; j++)
                wd_buf_printf(&b, "%s%s", j ? ", " : "", o->choices[j]);
            err_add(e, "%s: '%s' must be one of %s; got '%s'", where, o->name, b.s, v);
            wd_buf_free(&b);
            return 1;
        }
        char **sp = (char **)field;
        free(*sp);
        *sp = wd_strdup(v);
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
        if (strcmp(o->name, "listen") == 0 && !listen_form_ok(v)) {
            err_add(e,
                    "%s: 'listen' expects HOST:PORT (e.g. 127.0.0.1:9000 or [::]:9000), got '%s'",
                    where, v);
            return 1;
        }
        char **sp = (char **)field;
        free(*sp);
        bool word = false;
        for (const char *const *c = o->choices; o->type == T_PATH && c && *c; c++)
            word = word || strcmp(*c, v) == 0;
        *sp = o->type == T_PATH && !word ? resolve_path(file, v) : wd_strdup(v);
        if (sp == &cfg->admin_socket) {
            free(cfg->admin_socket_where);
            cfg->admin_socket_where = wd_strdup(where);
        }
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
    case T_NOMATCH:
        if (strcmp(v, "continue") == 0)
            *(enum wd_nomatch_reply *)field = WD_NOMATCH_CONTINUE;
        else if (strcmp(v, "ignore") == 0)
            *(enum wd_nomatch_reply *)field = WD_NOMATCH_IGNORE;
        else {
            err_add(e, "%s: 'nomatch_reply' must be continue or ignore, got '%s'", where, v);
            return 1;
        }
        return 0;
    case T_LOGLEVEL:
        if (wd_log_level_parse(v, (enum wd_log_level *)field) != WD_OK) {
            err_add(e, "%s: 'log_level' must be error, warn, info or debug, got '%s'", where, v);
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
    if (e.count) {
        *errors = e.b.s;
        return WD_ESYNTAX;
    }
    free(cfg->source);
    cfg->source = wd_strdup(name);
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
    const char *at = cfg->admin_socket_where ? cfg->admin_socket_where : cfg->source;
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

int wd_config_validate(const struct wd_config *cfg, char **errors)
{
    struct errbuf e = {0};
    *errors = NULL;
    if (cfg->tls_key && !cfg->tls_cert)
        err_add(&e, "%s: tls_key is set but tls_cert is not", cfg->source);
    if (cfg->tls_cert && !cfg->tls_key)
        err_add(&e, "%s: tls_cert is set but tls_key is not", cfg->source);
    if (cfg->tls_client_ca && !cfg->tls_cert)
        err_add(&e, "%s: tls_client_ca (mutual TLS) needs tls_cert and tls_key", cfg->source);
    if (cfg->keepalive_timeout_ms >= cfg->keepalive_time_ms)
        err_add(&e, "%s: keepalive_timeout must be shorter than keepalive_time", cfg->source);
    if (cfg->min_ping_interval_ms > 60000)
        err_add(&e, "%s: min_ping_interval above 60s would penalize EMQX, which pings every 60s",
                cfg->source);
    /* The embedded policy lets demo/demo in: only a client on this host may reach it. */
    if (!cfg->policy && !wd_config_listen_is_loopback(cfg->listen))
        err_add(&e,
                "%s: no `policy` is set: the embedded demo policy (user demo, password demo) is "
                "served only on a loopback address, and listen is '%s'; set `policy FILE` "
                "(docs/policy.md), or listen on 127.0.0.1",
                cfg->source, cfg->listen);
    if (cfg->admin_socket)
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
        case T_WORD:
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
        case T_NOMATCH:
            snprintf(v, sizeof v, "%s",
                     *(const enum wd_nomatch_reply *)field == WD_NOMATCH_IGNORE ? "ignore"
                                                                                : "continue");
            break;
        case T_LOGLEVEL:
            snprintf(v, sizeof v, "%s", wd_log_level_str(*(const enum wd_log_level *)field));
            break;
        case T_HOOKS:
        case T_TOPICS: {
            char *const *list = *(char **const *)field;
            size_t n = o->type == T_HOOKS ? cfg->nhooks : cfg->nmessage_topics;
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
