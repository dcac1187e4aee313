/* SPDX-License-Identifier: Apache-2.0 */
/*
 * main.c: command line, start-up order and signals.
 *
 * Start-up: defaults -> config file (or the embedded default) -> command-line flags ->
 * cross-option validation -> engine -> the server (server/transport.h). Anything wrong before
 * the server starts is reported with its file:line and warden exits without serving.
 *
 * Signals are blocked in every thread (the server's included, they inherit the mask) and
 * taken by the main thread with sigwait(): SIGTERM/SIGINT stop gracefully, SIGHUP reloads
 * the policy, SIGUSR1 reopens the decision log (rotation).
 *
 * Stop order: the metrics endpoint's /readyz turns 503 first, then the transport drains,
 * then the decision log writes what is queued (no worker emits any more), then the
 * endpoint stops.
 *
 * Exit codes (docs/operations.md): 0 clean stop, 1 runtime or start-up failure,
 * 2 bad command line, 3 bad configuration.
 *
 * Core dumps: the process holds jwt_secret, redis_password and cached credentials, so it
 * makes itself non-dumpable (PR_SET_DUMPABLE 0: no core file, no ptrace or /proc/PID/mem
 * access by other processes of its user) and sets its soft RLIMIT_CORE to 0 first thing,
 * before it reads any configuration; once the configuration is read, the hard limit drops to
 * 0 too, or `allow_core_dumps on` restores both.
 */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <unistd.h>

#include "core/config.h"
#include "core/log.h"
#include "core/metrics.h"
#include "core/wd.h"
#include "engine/engine.h"
#include "engine/watch.h"
#include "server/admin.h"
#include "server/declog.h"
#include "server/metrics_http.h"
#include "server/transport.h"
#include "server/tls.h"
#include "tools.h"

#ifndef WD_VERSION
#define WD_VERSION "0.0.0"
#endif

enum {
    EXIT_OK = 0,
    EXIT_RUNTIME = 1,
    EXIT_USAGE = 2,
    EXIT_CONFIG = 3,
};

static const char usage_text[] =
    "usage: warden [options]                 serve (see below)\n"
    "       warden check FILE...             compile policies, print their diagnostics\n"
    "       warden explain FILE... --action A --topic T [--username U ...]\n"
    "                                        show the decision for one request, and why\n"
    "       warden test FILE.tests...        run policies' test cases\n"
    "       warden import-acl acl.conf       translate an EMQX acl.conf into a policy\n"
    "       warden passwd [--scheme S] [--user NAME]   hash a password for a policy\n"
    "       warden admin [--socket PATH | --config FILE] flush [--user NAME] | stats\n"
    "\n"
    "warden is an authentication and authorization engine for EMQX, served over\n"
    "gRPC through EMQX's ExHook (emqx.exhook.v2 and v3 HookProvider).\n"
    "\n"
    "options:\n"
    "  -c, --config FILE        read the configuration from FILE (default: the embedded\n"
    "                           configuration; see --print-config)\n"
    "  -l, --listen HOST:PORT   address to serve on (default 127.0.0.1:9000)\n"
    "  -w, --workers N          server threads, 0 = one per CPU (default 0)\n"
    "      --log-level LEVEL    error, warn, info or debug (default info)\n"
    "      --tls-cert FILE      serve TLS with this certificate chain (PEM)\n"
    "      --tls-key FILE       and this private key (PEM)\n"
    "      --tls-client-ca FILE require client certificates signed by this CA (mutual TLS)\n"
    "      --hooks \"NAME ...\"   hooks to register with EMQX (default: \"client.authenticate\n"
    "                           client.authorize client.disconnected\")\n"
    "  -s, --set KEY=VALUE      set any configuration directive (repeatable)\n"
    "      --check-config       check the configuration (and the TLS files it names),\n"
    "                           print the result and exit\n"
    "      --print-config       print the effective configuration and exit\n"
    "  -h, --help               show this help and exit\n"
    "  -V, --version            show the version and exit\n"
    "\n"
    "Every subcommand takes --help (its usage) and --version.\n"
    "\n"
    "Flags override the configuration file. Every directive is documented in\n"
    "docs/configuration.md.\n"
    "\n"
    "exit status: 0 clean stop, 1 runtime or start-up failure, 2 bad command line,\n"
    "3 bad configuration.\n"
    "\n"
    "signals: SIGTERM or SIGINT stop gracefully (in-flight calls finish within\n"
    "shutdown_grace); SIGHUP reloads the policy file (a file that does not compile\n"
    "leaves the running policy in place); SIGUSR1 reopens the decision log.\n";

static void print_errors(const char *errors)
{
    /* errors are "file:line: message" lines; prefix each with the program name */
    const char *p = errors;
    while (p && *p) {
        const char *nl = strchr(p, '\n');
        size_t n = nl ? (size_t)(nl - p) : strlen(p);
        fprintf(stderr, "warden: %.*s\n", (int)n, p);
        p = nl ? nl + 1 : NULL;
    }
}

/* Logs each line of a rendered report (policy diagnostics, configuration warnings). */
static void log_report(enum wd_log_level level, const char *module, const char *report)
{
    const char *p = report;
    while (p && *p) {
        const char *nl = strchr(p, '\n');
        size_t n = nl ? (size_t)(nl - p) : strlen(p);
        wd_log(level, module, "%.*s", (int)n, p);
        p = nl ? nl + 1 : NULL;
    }
}

static void reload(struct wd_engine *e, const char *why)
{
    char *report = NULL;
    unsigned long before = wd_engine_generation(e);
    int rc = wd_engine_reload(e, &report);
    wd_metrics_inc(rc == WD_OK ? WD_M_POLICY_RELOAD_OK : WD_M_POLICY_RELOAD_FAILED);
    if (rc == WD_OK) {
        wd_log_info("main", "%s: policy %s reloaded (generation %lu)", why,
                    wd_engine_policy_path(e) ? wd_engine_policy_path(e) : "<embedded>",
                    wd_engine_generation(e));
        log_report(WD_LOG_WARN, "policy", report);
    } else {
        wd_log_error("main", "%s: policy reload failed (%s); still serving generation %lu", why,
                     wd_rc_str(rc), before);
        log_report(WD_LOG_ERROR, "policy", report);
    }
    free(report);
}

static void on_policy_change(void *ctx)
{
    reload(ctx, "policy file changed");
}

struct flag {
    const char *lng;
    char shrt;
    const char *key; /* config directive, or NULL for a special flag */
};

static const struct flag flags[] = {
    {"config", 'c', NULL},
    {"listen", 'l', "listen"},
    {"workers", 'w', "workers"},
    {"log-level", 0, "log_level"},
    {"tls-cert", 0, "tls_cert"},
    {"tls-key", 0, "tls_key"},
    {"tls-client-ca", 0, "tls_client_ca"},
    {"hooks", 0, "hooks"},
    {"set", 's', NULL},
};

struct opts {
    const char *config;
    bool check, print;
    /* flag assignments, applied after the file in command-line order */
    const char *keys[128];
    const char *vals[128];
    const char *flag[128]; /* the long flag that set it (messages), NULL for --set */
    char *owned[128];
    size_t n;
};

/* Returns -1 to continue, or an exit code. */
static int parse_args(int argc, char **argv, struct opts *o)
{
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
            fputs(usage_text, stdout);
            return EXIT_OK;
        }
        if (strcmp(a, "-V") == 0 || strcmp(a, "--version") == 0) {
            printf("warden %s\n", WD_VERSION);
            return EXIT_OK;
        }
        if (strcmp(a, "--check-config") == 0) {
            o->check = true;
            continue;
        }
        if (strcmp(a, "--print-config") == 0) {
            o->print = true;
            continue;
        }
        const struct flag *f = NULL;
        const char *val = NULL;
        if (a[0] == '-' && a[1] == '-' && a[2]) {
            const char *name = a + 2;
            const char *eq = strchr(name, '=');
            size_t nl = eq ? (size_t)(eq - name) : strlen(name);
            for (size_t k = 0; k < WD_ARRAY_LEN(flags); k++)
                if (strlen(flags[k].lng) == nl && strncmp(flags[k].lng, name, nl) == 0)
                    f = &flags[k];
            if (f && eq)
                val = eq + 1;
        } else if (a[0] == '-' && a[1] && !a[2]) {
            for (size_t k = 0; k < WD_ARRAY_LEN(flags); k++)
                if (flags[k].shrt == a[1])
                    f = &flags[k];
        }
        if (!f) {
            fprintf(stderr, "warden: unknown option '%s' (see warden --help)\n", a);
            return EXIT_USAGE;
        }
        if (!val) {
            if (i + 1 >= argc) {
                fprintf(stderr, "warden: option '%s' needs a value\n", a);
                return EXIT_USAGE;
            }
            val = argv[++i];
        }
        if (strcmp(f->lng, "config") == 0) {
            o->config = val;
            continue;
        }
        if (o->n == WD_ARRAY_LEN(o->keys)) {
            fprintf(stderr, "warden: too many options\n");
            return EXIT_USAGE;
        }
        if (f->key) {
            o->keys[o->n] = f->key;
            o->vals[o->n] = val;
            o->flag[o->n] = f->lng;
        } else { /* --set KEY=VALUE */
            const char *eq = strchr(val, '=');
            if (!eq || eq == val) {
                fprintf(stderr, "warden: --set needs KEY=VALUE, got '%s'\n", val);
                return EXIT_USAGE;
            }
            o->owned[o->n] = wd_strndup(val, (size_t)(eq - val));
            o->keys[o->n] = o->owned[o->n];
            o->vals[o->n] = eq + 1;
        }
        o->n++;
    }
    return -1;
}

/* Appends a list of errors (newline-separated) to all. */
static void errors_take(struct wd_buf *all, char *errors)
{
    if (!errors)
        return;
    if (all->len)
        wd_buf_putc(all, '\n');
    wd_buf_puts(all, errors);
    free(errors);
}

/* Builds the configuration. Returns -1 on success or an exit code. Every error is reported
 * in one pass: the file's line errors, the flags' errors and the rules that involve several
 * directives (each naming the file:line or flag of the directives involved), so that one
 * run shows everything to fix. Exit status 3 when the file has errors, else 2 when a flag is
 * wrong (a command-line error), else 3 when a rule fails. An unreadable file stops at once. */
static int load_config(const struct opts *o, struct wd_config *cfg)
{
    char *errors = NULL;
    struct wd_buf all = {0};
    bool file_bad = false, flags_bad = false;
    int rc;
    wd_config_defaults(cfg);
    if (o->config)
        rc = wd_config_load_file(cfg, o->config, &errors);
    else
        rc = wd_config_parse(cfg, "<embedded>", wd_config_embedded, strlen(wd_config_embedded),
                             &errors);
    if (rc == WD_EIO) {
        print_errors(errors);
        free(errors);
        return EXIT_CONFIG;
    }
    file_bad = rc != WD_OK;
    errors_take(&all, errors);
    for (size_t i = 0; i < o->n; i++) {
        char origin[64] = "";
        if (o->flag[i])
            snprintf(origin, sizeof origin, "--%s", o->flag[i]);
        if (wd_config_set_from(cfg, o->flag[i] ? origin : NULL, o->keys[i], o->vals[i], &errors) !=
            WD_OK) {
            flags_bad = true;
            errors_take(&all, errors);
        }
    }
    bool rules_bad = wd_config_validate(cfg, &errors) != WD_OK;
    errors_take(&all, errors);
    if (file_bad || flags_bad || rules_bad) {
        print_errors(all.s);
        wd_buf_free(&all);
        return flags_bad && !file_bad ? EXIT_USAGE : EXIT_CONFIG;
    }
    wd_buf_free(&all);
    return -1;
}

/* ---- core dumps ---- */

static struct rlimit core_limit_at_start;
static bool core_limit_saved;

/* Makes the process non-dumpable with a core size limit of 0: called before any secret is
 * read. Only the soft limit drops here, so that allow_core_dumps can still restore it. */
static void core_dumps_forbid(void)
{
    if (prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) != 0)
        fprintf(stderr, "warden: cannot make the process non-dumpable: %s\n", strerror(errno));
    if (getrlimit(RLIMIT_CORE, &core_limit_at_start) == 0 && core_limit_at_start.rlim_cur != 0) {
        core_limit_saved = true;
        struct rlimit r = {0, core_limit_at_start.rlim_max};
        if (setrlimit(RLIMIT_CORE, &r) != 0)
            fprintf(stderr, "warden: cannot set RLIMIT_CORE to 0: %s\n", strerror(errno));
    }
}

/* allow_core_dumps off (the configuration is read): the hard limit drops to 0 as well. */
static void core_dumps_forbid_for_good(void)
{
    struct rlimit cur, zero = {0, 0};
    if (getrlimit(RLIMIT_CORE, &cur) == 0 && cur.rlim_max == 0)
        return; /* already (systemd's LimitCORE=0) */
    if (setrlimit(RLIMIT_CORE, &zero) != 0)
        wd_log_warn("main", "cannot set RLIMIT_CORE to 0: %s", strerror(errno));
}

/* `allow_core_dumps on`: back to the core size limit the process started with, and dumpable. */
static void core_dumps_allow(void)
{
    if (core_limit_saved && setrlimit(RLIMIT_CORE, &core_limit_at_start) != 0)
        wd_log_warn("main", "allow_core_dumps: cannot restore RLIMIT_CORE: %s", strerror(errno));
    if (prctl(PR_SET_DUMPABLE, 1, 0, 0, 0) != 0)
        wd_log_warn("main", "allow_core_dumps: cannot make the process dumpable: %s",
                    strerror(errno));
    else
        wd_log_warn("main", "allow_core_dumps is on: a core dump would hold secrets "
                            "(jwt_secret, redis_password, cached credentials)");
}

/* ---- the admin socket's operations (run on the admin thread) ---- */

static int admin_flush_all(void *ctx, struct wd_buf *out)
{
    size_t n = wd_engine_flush(ctx, NULL, 0);
    wd_buf_printf(out, "flushed %zu entries\n", n);
    return WD_OK;
}

static int admin_flush_user(void *ctx, const char *user, size_t len, struct wd_buf *out)
{
    size_t n = wd_engine_flush(ctx, user, len);
    wd_buf_printf(out, "flushed %zu entries\n", n);
    return WD_OK;
}

static int admin_stats(void *ctx, struct wd_buf *out)
{
    wd_engine_stats(ctx, out);
    for (int m = 0; m < WD_M__COUNT; m++)
        wd_buf_printf(out, "%s %llu\n", wd_metrics_name(m), (unsigned long long)wd_metrics_get(m));
    return WD_OK;
}

static const char admin_usage[] =
    "usage: warden admin [--socket PATH | --config FILE] COMMAND\n"
    "commands:\n"
    "  flush               drop every cached credential, ACL, token and session\n"
    "  flush --user NAME   the same for one user\n"
    "  stats               caches, sessions, backends and counters\n"
    "The socket is the configuration's admin_socket (docs/operations.md).\n";

/* `warden admin [--socket PATH | --config FILE] COMMAND...` */
static int tool_admin(int argc, char **argv)
{
    const char *sock = NULL, *conf = NULL;
    int i = 1;
    for (; i < argc; i++) {
        if (strcmp(argv[i], "--socket") == 0 && i + 1 < argc)
            sock = argv[++i];
        else if (strcmp(argv[i], "--config") == 0 && i + 1 < argc)
            conf = argv[++i];
        else if (wd_tool_std_flag(argv[i], admin_usage) == 0)
            return EXIT_OK;
        else
            break;
    }
    struct wd_config cfg;
    memset(&cfg, 0, sizeof cfg);
    if (!sock && conf) {
        char *errors = NULL;
        wd_config_defaults(&cfg);
        if (wd_config_load_file(&cfg, conf, &errors) != WD_OK) {
            fprintf(stderr, "warden admin: %s\n", errors ? errors : conf);
            free(errors);
            wd_config_cleanup(&cfg);
            return EXIT_CONFIG;
        }
        sock = cfg.admin_socket;
    }
    if (!sock || i >= argc) {
        fprintf(stderr, "%s%s", admin_usage,
                sock ? ""
                     : "warden admin: no socket: give --socket, or --config with "
                       "admin_socket set\n");
        wd_config_cleanup(&cfg);
        return EXIT_USAGE;
    }
    int rc = wd_admin_request(sock, argc - i, argv + i, 1);
    wd_config_cleanup(&cfg);
    return rc;
}

/* ---- the metrics endpoint's view of the engine (run on its thread) ---- */

static size_t metrics_collect(void *ctx, struct wd_metrics_sample *s, size_t cap)
{
    return wd_engine_metrics(ctx, s, cap);
}

static bool metrics_ready(void *ctx, struct wd_buf *out)
{
    return wd_engine_ready(ctx, out);
}

static int serve(struct wd_config *cfg, struct wd_engine *engine)
{
    sigset_t sigs;
    sigemptyset(&sigs);
    sigaddset(&sigs, SIGINT);
    sigaddset(&sigs, SIGTERM);
    sigaddset(&sigs, SIGHUP);
    sigaddset(&sigs, SIGUSR1);
    pthread_sigmask(SIG_BLOCK, &sigs, NULL);
    signal(SIGPIPE, SIG_IGN);

    char err[512];
    /* the decision log first: the first call may decide before anything else starts */
    if (wd_declog_start(cfg, wd_engine_policy_path(engine), err, sizeof err) != WD_OK) {
        wd_log_error("main", "%s", err);
        return EXIT_RUNTIME;
    }
    struct wd_metrics_http *mh = NULL;
    if (cfg->metrics_listen) {
        struct wd_metrics_http_ops mops = {
            .collect = metrics_collect, .ready = metrics_ready, .ctx = engine};
        if (wd_metrics_http_start(cfg->metrics_listen, &mops, &mh, err, sizeof err) != WD_OK) {
            wd_log_error("main", "%s", err);
            wd_declog_stop();
            return EXIT_RUNTIME;
        }
        wd_log_info("main", "metrics endpoint on http://%s/metrics (/healthz, /readyz)",
                    cfg->metrics_listen);
    }
    struct wd_transport *srv = NULL;
    int rc = wd_transport_start(cfg, engine, &srv, err, sizeof err);
    if (rc != WD_OK) {
        wd_log_error("main", "%s", err);
        wd_metrics_http_stop(mh);
        wd_declog_stop();
        return EXIT_RUNTIME;
    }
    struct wd_admin *admin = NULL;
    if (cfg->admin_socket) {
        static struct wd_admin_ops ops = {
            .flush_all = admin_flush_all, .flush_user = admin_flush_user, .stats = admin_stats};
        ops.ctx = engine;
        if (wd_admin_start(cfg->admin_socket, &ops, &admin, err, sizeof err) != WD_OK) {
            wd_log_error("main", "admin_socket: %s", err);
            wd_transport_stop(srv, 0);
            wd_transport_free(srv);
            wd_metrics_http_stop(mh);
            wd_declog_stop();
            return EXIT_RUNTIME;
        }
        wd_log_info("main", "admin socket at %s", cfg->admin_socket);
    }
    struct wd_watch *watch = NULL;
    if (cfg->policy && cfg->policy_watch) {
        watch = wd_watch_start(cfg->policy, 200, on_policy_change, engine, err, sizeof err);
        if (!watch)
            wd_log_warn("main", "%s: reload on change disabled (SIGHUP still works)", err);
    }
    for (;;) {
        int sig = 0;
        if (sigwait(&sigs, &sig) != 0)
            continue;
        if (sig == SIGHUP) {
            reload(engine, "SIGHUP");
            continue;
        }
        if (sig == SIGUSR1) {
            wd_declog_reopen();
            continue;
        }
        wd_log_info("main", "%s received: stopping (grace %d ms)",
                    sig == SIGTERM ? "SIGTERM" : "SIGINT", cfg->shutdown_grace_ms);
        break;
    }
    wd_metrics_http_stopping(mh);
    wd_watch_stop(watch);
    wd_admin_stop(admin);
    wd_transport_stop(srv, cfg->shutdown_grace_ms);
    wd_transport_free(srv);
    wd_declog_stop();
    wd_metrics_http_stop(mh);
    wd_log_info("main", "bye");
    return EXIT_OK;
}

int main(int argc, char **argv)
{
    static const struct {
        const char *name;
        int (*fn)(int, char **);
    } tools[] = {
        {"check", wd_tool_check},           {"explain", wd_tool_explain}, {"test", wd_tool_test},
        {"import-acl", wd_tool_import_acl}, {"passwd", wd_tool_passwd},   {"admin", tool_admin},
    };
    core_dumps_forbid(); /* before anything reads a secret, subcommands included */
    if (argc > 1 && argv[1][0] != '-') {
        for (size_t i = 0; i < WD_ARRAY_LEN(tools); i++)
            if (strcmp(argv[1], tools[i].name) == 0)
                return tools[i].fn(argc - 1, argv + 1);
        fprintf(stderr, "warden: unknown command '%s' (see warden --help)\n", argv[1]);
        return EXIT_USAGE;
    }
    struct opts o;
    memset(&o, 0, sizeof o);
    int ex = parse_args(argc, argv, &o);
    struct wd_config cfg;
    memset(&cfg, 0, sizeof cfg);
    struct wd_engine *engine = NULL;
    if (ex >= 0)
        goto out;

    ex = load_config(&o, &cfg);
    if (ex >= 0)
        goto out;
    wd_log_set_level(cfg.log_level);
    log_report(WD_LOG_WARN, "config", cfg.warnings);
    if (cfg.allow_core_dumps)
        core_dumps_allow();
    else
        core_dumps_forbid_for_good();

    char *report = NULL;
    engine = wd_engine_new(&cfg, &report);
    if (!engine) {
        if (report)
            fputs(report, stderr);
        free(report);
        ex = EXIT_CONFIG;
        goto out;
    }
    if (report && !o.print)
        log_report(WD_LOG_WARN, "policy", report);
    free(report);
    if (o.print) {
        wd_config_print(&cfg, 1);
        ex = EXIT_OK;
        goto out;
    }
    if (o.check) {
        if (cfg.tls_cert) {
            /* the same checks the server makes at start: readable, parsable, matching */
            struct wd_tls_material m;
            char err[512];
            if (wd_tls_load(&cfg, &m, err, sizeof err) != WD_OK) {
                fprintf(stderr, "warden: %s\n", err);
                ex = EXIT_CONFIG;
                goto out;
            }
            wd_tls_cleanup(&m);
        }
        /* every sentinel, not only the first that answers: warnings, never a failure */
        wd_engine_probe_sentinels(engine);
        printf("%s: configuration ok\n", cfg.source);
        ex = EXIT_OK;
        goto out;
    }
    wd_log_info("main", "warden %s starting (configuration: %s)", WD_VERSION, cfg.source);
    if (!cfg.policy)
        wd_log_warn("main", "serving the embedded default policy: demo user 'demo' is active; "
                            "set `policy FILE` in the configuration for anything but a trial");
    ex = serve(&cfg, engine);
out:
    wd_engine_free(engine);
    wd_config_cleanup(&cfg);
    for (size_t i = 0; i < o.n; i++)
        free(o.owned[i]);
    return ex;
}
