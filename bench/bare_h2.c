/* SPDX-License-Identifier: Apache-2.0
 *
 * bare_h2: the benchmark ceiling of warden's own transport (`transport h2`).
 *
 * bare_server.c is a gRPC C-core server with warden's shape and none of its work; this is
 * the same thing on warden's own serving layer: the acceptor, the per-worker epoll loops
 * and connections (src/server/h2server.c, loop.c) and the HTTP/2 + gRPC framing on
 * libnghttp2 (src/server/h2.c), exactly as warden runs them. Only the handlers differ: it
 * answers
 *
 *   /emqx.exhook.v2.HookProvider/OnClientAuthenticate   /emqx.exhook.v3.HookProvider/...
 *   /emqx.exhook.v2.HookProvider/OnClientAuthorize      /emqx.exhook.v3.HookProvider/...
 *
 * with one fixed, pre-packed ValuedResponse{type=STOP_AND_RETURN, bool_result=true}, the
 * same bytes bare_server sends, without decoding the request. Any other HookProvider path
 * gets UNIMPLEMENTED from h2.c's router, as from bare_server. So "warden on h2 calls/s /
 * bare_h2 calls/s" is the share of its own transport's ceiling that warden keeps, and
 * "bare_h2 / bare_server" is what the transport change is worth by itself.
 *
 * How the handlers are swapped without touching src/server: h2server.c and h2.c reach the
 * handlers only through the contract in server/hook.h (wd_hook_worker_new_on/free/waiting,
 * wd_hook_handle_w, wd_hook_health, wd_hook_nmethods, wd_hook_method_name,
 * wd_hook_services) and engine.h's wd_engine_waiter_end (a no-op here: nothing waits). This file
 * implements that contract, and the Makefile links it before libwd_server.a: the archive's hook.o
 * is then never pulled in (every symbol it would provide is already defined), and neither is the
 * engine. If the server layer ever needs a hook.c symbol this file does not define, the link fails
 * with duplicate definitions instead of measuring the wrong thing. The engine pointer given to the
 * server is NULL: nothing here looks at it.
 *
 * Configuration: warden's defaults (wd_config_defaults) with `listen`, `workers` and
 * `transport h2` set, so the limits (in-flight budget, request size, max_connections) are
 * the ones warden runs with.
 *
 * SIGTERM/SIGINT: graceful stop (wd_h2server_stop, 2 s grace), then one line on stderr with
 * the calls served, the CPU time per call and maxrss, in bare_server's format.
 *
 * Usage: bare_h2 [-a addr] [-t threads]
 *   -a  listen address (default 127.0.0.1:9102)
 *   -t  worker threads = event loops (default: online CPUs)
 */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include "core/config.h"
#include "core/log.h"
#include "core/wd.h"
#include "server/h2server.h"
#include "server/hook.h"

#include "exhook.pb-c.h"

enum { GRACE_MS = 2000 };

/* ---- the hook.h contract, answered without work ---------------------------------- */

const char *const wd_hook_services[WD_HOOK_NSERVICES] = {
    "emqx.exhook.v2.HookProvider",
    "emqx.exhook.v3.HookProvider",
};

static const char *const k_methods[] = {"OnClientAuthenticate", "OnClientAuthorize"};
#define NMETHODS (sizeof k_methods / sizeof k_methods[0])

size_t wd_hook_nmethods(void)
{
    return NMETHODS;
}

const char *wd_hook_method_name(size_t method)
{
    return method < NMETHODS ? k_methods[method] : NULL;
}

/* The one reply every call gets, packed once at start-up (as in bare_server.c). */
static uint8_t g_reply[16];
static size_t g_reply_len;
/* grpc.health.v1.HealthCheckResponse{status = SERVING}: field 1, varint 1. */
static const uint8_t k_health_serving[] = {0x08, 0x01};

struct wd_hook_worker {
    struct wd_hook_worker *next; /* every worker, for the totals at exit */
    unsigned long served[WD_HOOK_NSERVICES][NMETHODS];
};

static pthread_mutex_t g_workers_mu = PTHREAD_MUTEX_INITIALIZER;
static struct wd_hook_worker *g_workers;

struct wd_hook_worker *wd_hook_worker_new(const struct wd_hook_env *env)
{
    (void)env;
    struct wd_hook_worker *w = wd_calloc(1, sizeof *w);
    pthread_mutex_lock(&g_workers_mu);
    w->next = g_workers;
    g_workers = w;
    pthread_mutex_unlock(&g_workers_mu);
    return w;
}

struct wd_hook_worker *wd_hook_worker_new_on(const struct wd_hook_env *env,
                                             const struct wd_evops *ev)
{
    (void)ev;
    return wd_hook_worker_new(env);
}

unsigned wd_hook_worker_waiting(const struct wd_hook_worker *w)
{
    (void)w;
    return 0; /* never waits */
}

void wd_engine_waiter_end(struct wd_waiter *w)
{
    (void)w; /* no call ever waits here */
}

void wd_hook_worker_free(struct wd_hook_worker *w)
{
    /* kept on the list for the totals; main frees them all after the server is gone */
    (void)w;
}

enum wd_hook_status wd_hook_handle_w(struct wd_hook_worker *w, int service, size_t method,
                                     const uint8_t *in, size_t inlen, struct wd_waiter *waiter,
                                     const uint8_t **out, size_t *outlen, const char **detail)
{
    (void)waiter;
    (void)in;
    (void)inlen;
    *detail = NULL;
    if (service >= 0 && service < WD_HOOK_NSERVICES && method < NMETHODS)
        w->served[service][method]++;
    *out = g_reply;
    *outlen = g_reply_len;
    return WD_HOOK_OK;
}

enum wd_hook_status wd_hook_health(struct wd_hook_worker *w, bool serving, const uint8_t *in,
                                   size_t inlen, const uint8_t **out, size_t *outlen,
                                   const char **detail)
{
    (void)w;
    (void)serving;
    (void)in;
    (void)inlen;
    *detail = NULL;
    *out = k_health_serving;
    *outlen = sizeof k_health_serving;
    return WD_HOOK_OK;
}

/* ---- main -------------------------------------------------------------------------- */

static int parse_int(const char *flag, const char *s, int lo, int hi)
{
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || end == s || *end || v < lo || v > hi) {
        fprintf(stderr, "bare_h2: %s wants an integer in [%d, %d], got '%s'\n", flag, lo, hi, s);
        exit(2);
    }
    return (int)v;
}

static void usage(void)
{
    fprintf(stderr, "usage: bare_h2 [-a addr] [-t threads]\n"
                    "  -a  listen address (default 127.0.0.1:9102)\n"
                    "  -t  worker threads / event loops (default: online CPUs)\n");
    exit(2);
}

static void pack_reply(void)
{
    Emqx__Exhook__V3__ValuedResponse r = EMQX__EXHOOK__V3__VALUED_RESPONSE__INIT;
    r.type = EMQX__EXHOOK__V3__VALUED_RESPONSE__RESPONSED_TYPE__STOP_AND_RETURN;
    r.value_case = EMQX__EXHOOK__V3__VALUED_RESPONSE__VALUE_BOOL_RESULT;
    r.bool_result = 1;
    g_reply_len = emqx__exhook__v3__valued_response__get_packed_size(&r);
    if (g_reply_len > sizeof g_reply)
        abort();
    emqx__exhook__v3__valued_response__pack(&r, g_reply);
}

static void set_or_die(struct wd_config *cfg, const char *key, const char *value)
{
    char *errors = NULL;
    if (wd_config_set(cfg, key, value, &errors) != WD_OK) {
        fprintf(stderr, "bare_h2: %s %s: %s\n", key, value, errors ? errors : "invalid");
        exit(2);
    }
    free(errors);
}

int main(int argc, char **argv)
{
    const char *addr = "127.0.0.1:9102";
    long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
    int nthreads = ncpu > 0 ? (int)ncpu : 1;
    int opt;
    while ((opt = getopt(argc, argv, "a:t:h")) != -1) {
        switch (opt) {
        case 'a':
            addr = optarg;
            break;
        case 't':
            nthreads = parse_int("-t", optarg, 1, 256);
            break;
        default:
            usage();
        }
    }
    if (optind != argc)
        usage();

    /* SIGTERM/SIGINT are taken by sigwait() in main; the server's threads inherit the
     * blocked mask. */
    sigset_t sigs;
    sigemptyset(&sigs);
    sigaddset(&sigs, SIGINT);
    sigaddset(&sigs, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &sigs, NULL);
    signal(SIGPIPE, SIG_IGN);
    wd_log_set_level(WD_LOG_WARN);
    pack_reply();

    struct wd_config cfg;
    wd_config_defaults(&cfg);
    char workers[16];
    snprintf(workers, sizeof workers, "%d", nthreads);
    set_or_die(&cfg, "listen", addr);
    set_or_die(&cfg, "workers", workers);
    set_or_die(&cfg, "transport", "h2");

    struct wd_h2server *srv = NULL;
    char err[512] = "";
    if (wd_h2server_start(&cfg, NULL, &srv, err, sizeof err) != WD_OK) {
        fprintf(stderr, "bare_h2: %s\n", err);
        wd_config_cleanup(&cfg);
        return 1;
    }
    fprintf(stderr,
            "bare_h2: listening on %s (port %d), %d worker threads, warden's h2 transport\n", addr,
            wd_h2server_port(srv), nthreads);

    int sig = 0;
    sigwait(&sigs, &sig);
    wd_h2server_stop(srv, GRACE_MS);
    wd_h2server_free(srv);
    wd_config_cleanup(&cfg);

    unsigned long per[WD_HOOK_NSERVICES][NMETHODS] = {{0}}, total = 0;
    while (g_workers) {
        struct wd_hook_worker *w = g_workers;
        g_workers = w->next;
        for (int s = 0; s < WD_HOOK_NSERVICES; s++)
            for (size_t m = 0; m < NMETHODS; m++) {
                per[s][m] += w->served[s][m];
                total += w->served[s][m];
            }
        free(w);
    }
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    double cpu = (double)(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) +
                 (double)(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6;
    fprintf(stderr,
            "bare_h2: signal %d, served %lu calls (v2 authn %lu, v2 authz %lu, v3 authn %lu, "
            "v3 authz %lu), cpu %.2f s (%.2f us/call), maxrss %ld KiB\n",
            sig, total, per[0][0], per[0][1], per[1][0], per[1][1], cpu,
            total ? cpu * 1e6 / (double)total : 0.0, ru.ru_maxrss);
    return 0;
}
