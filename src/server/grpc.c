/* SPDX-License-Identifier: Apache-2.0 */
/*
 * grpc.c: the gRPC C-core server (see grpc.h). The only file that includes <grpc/...>.
 *
 * Life of a call (one struct call per call, recycled through a per-worker free list):
 *
 *   REQUESTED --new call (payload already read)--> handle --> REPLYING --> done, recycled
 *   GENERIC   --unknown method--> UNIMPLEMENTED status --> REPLYING --> done
 *
 * Notes from the reference server's pitfalls (shared/reference/grpc-core-echo):
 * - GRPC_ARG_ALLOW_REUSEPORT is 0: a second process on the same port must fail, not
 *   silently take half of the connections.
 * - Without a generic request, calls to unregistered methods would wait until their
 *   deadline; warden keeps generic requests posted and answers UNIMPLEMENTED.
 * - A failed grpc_call_start_batch posts no completion: the call is finished on the spot.
 *
 * Compressed requests are refused, never inflated (EMQX never compresses ExHook calls; a
 * 1 MB gzip request can inflate to 1 GiB). gRPC core 1.51 checks max_receive_message_length
 * only after inflating the whole message, so the limit alone bounds nothing. Two layers:
 * - the enabled-algorithms bitset holds only NONE: core answers a request whose
 *   grpc-encoding is gzip/deflate with UNIMPLEMENTED "Compression algorithm 'gzip' is
 *   disabled." when its metadata arrives, before any message is read (measured);
 * - per-message decompression is off, so core never inflates anything; a compressed message
 *   that got past the first layer reaches on_registered as a byte buffer marked with its
 *   algorithm and is refused there without being read (grpc_byte_buffer_reader_init would
 *   inflate it).
 * The receive limit itself is policy (wd_config_request_limit), not decided here.
 */
#include "server/grpc.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <grpc/byte_buffer.h>
#include <grpc/byte_buffer_reader.h>
#include <grpc/grpc.h>
#include <grpc/grpc_security.h>
#include <grpc/slice.h>
#include <grpc/support/alloc.h>
#include <grpc/support/log.h>
#include <grpc/support/time.h>

#include "core/log.h"
#include "core/metrics.h"
#include "server/hook.h"
#include "server/tls.h"

#define MAX_REGS 64
#define COLD_PREPOST 2
#define GENERIC_PREPOST 4
#define HEALTH_PATH "/grpc.health.v1.Health/Check"

enum call_state {
    CS_REQUESTED = 1, /* registered-method request outstanding */
    CS_GENERIC,       /* generic request outstanding (unknown methods) */
    CS_REPLYING,      /* reply batch in flight */
};

enum reg_kind {
    REG_HOOK,
    REG_HEALTH,
};

struct reg {
    void *handle;
    enum reg_kind kind;
    int service;
    size_t method;
    int prepost;
    char path[128];
};

struct worker;

struct call {
    enum call_state state;
    struct worker *w;
    const struct reg *reg;
    grpc_call *call;
    gpr_timespec deadline;
    grpc_metadata_array md;
    grpc_byte_buffer *req_bb;
    grpc_byte_buffer *resp_bb;
    grpc_slice details;
    grpc_call_details cd;
    int cancelled;
    struct call *next_free;
};

struct worker {
    int idx;
    pthread_t th;
    bool started;
    grpc_completion_queue *cq;
    struct call *free_list; /* touched only by this worker's thread */
    struct wd_hook_worker *hook;
    struct wd_server *srv;
    uint64_t served;
    /* Held while the worker handles one event (which may block on a back end for up to
     * its timeout). The stopping thread takes it before shutting the queue down, so no
     * operation is ever started on a queue that is shut down (gRPC aborts on that), even
     * when the grace period expired while a handler waited on Redis. */
    pthread_mutex_t busy;
    bool closed; /* the queue is shut down: start no operation (under busy) */
};

struct wd_server {
    grpc_server *server;
    struct reg regs[MAX_REGS];
    size_t nregs;
    struct worker *workers;
    int nworkers;
    int port;
    atomic_int stopping;
    struct wd_hook_env env;
};

/* ---- gRPC's own log lines go through ours ---- */

static void grpc_log_sink(gpr_log_func_args *a)
{
    enum wd_log_level lvl = a->severity == GPR_LOG_SEVERITY_ERROR  ? WD_LOG_ERROR
                            : a->severity == GPR_LOG_SEVERITY_INFO ? WD_LOG_INFO
                                                                   : WD_LOG_DEBUG;
    /* gRPC's INFO is chatty (per connection); keep it at our debug level */
    if (lvl == WD_LOG_INFO)
        lvl = WD_LOG_DEBUG;
    wd_log(lvl, "grpc", "%s (%s:%d)", a->message, a->file, a->line);
}

void wd_server_global_init(void)
{
    grpc_init();
    gpr_set_log_function(grpc_log_sink);
    gpr_set_log_verbosity(wd_log_enabled(WD_LOG_DEBUG) ? GPR_LOG_SEVERITY_INFO
                                                       : GPR_LOG_SEVERITY_ERROR);
}

void wd_server_global_cleanup(void)
{
    grpc_shutdown();
}

/* ---- call contexts ---- */

static struct call *call_get(struct worker *w)
{
    struct call *c = w->free_list;
    if (c)
        w->free_list = c->next_free;
    else
        c = wd_malloc(sizeof *c);
    memset(c, 0, sizeof *c);
    c->w = w;
    return c;
}

static void call_put(struct call *c)
{
    struct worker *w = c->w;
    c->next_free = w->free_list;
    w->free_list = c;
}

static void call_finish(struct call *c)
{
    if (c->resp_bb)
        grpc_byte_buffer_destroy(c->resp_bb);
    if (c->req_bb)
        grpc_byte_buffer_destroy(c->req_bb);
    grpc_slice_unref(c->details);
    grpc_metadata_array_destroy(&c->md);
    if (c->call)
        grpc_call_unref(c->call);
    call_put(c);
}

static void post_registered(struct worker *w, const struct reg *r)
{
    struct call *c = call_get(w);
    c->state = CS_REQUESTED;
    c->reg = r;
    c->details = grpc_empty_slice();
    grpc_metadata_array_init(&c->md);
    grpc_call_error e = grpc_server_request_registered_call(
        w->srv->server, r->handle, &c->call, &c->deadline, &c->md, &c->req_bb, w->cq, w->cq, c);
    if (e != GRPC_CALL_OK) {
        wd_log_error("server", "cannot post a request for %s: %s", r->path,
                     grpc_call_error_to_string(e));
        grpc_metadata_array_destroy(&c->md);
        call_put(c);
    }
}

static void post_generic(struct worker *w)
{
    struct call *c = call_get(w);
    c->state = CS_GENERIC;
    c->details = grpc_empty_slice();
    grpc_metadata_array_init(&c->md);
    grpc_call_details_init(&c->cd);
    grpc_call_error e =
        grpc_server_request_call(w->srv->server, &c->call, &c->cd, &c->md, w->cq, w->cq, c);
    if (e != GRPC_CALL_OK) {
        wd_log_error("server", "cannot post a generic request: %s", grpc_call_error_to_string(e));
        grpc_call_details_destroy(&c->cd);
        grpc_metadata_array_destroy(&c->md);
        call_put(c);
    }
}

/* Sends the reply batch: status OK with `out` as the one message, or an error status. */
static void send_reply(struct call *c, grpc_status_code status, const char *detail,
                       const uint8_t *out, size_t outlen)
{
    grpc_op ops[4];
    memset(ops, 0, sizeof ops);
    size_t n = 0;
    ops[n++].op = GRPC_OP_SEND_INITIAL_METADATA;
    if (status == GRPC_STATUS_OK) {
        grpc_slice s =
            outlen ? grpc_slice_from_copied_buffer((const char *)out, outlen) : grpc_empty_slice();
        c->resp_bb = grpc_raw_byte_buffer_create(&s, 1);
        grpc_slice_unref(s);
        ops[n].op = GRPC_OP_SEND_MESSAGE;
        ops[n].flags = GRPC_WRITE_NO_COMPRESS; /* EMQX cannot take compressed replies */
        ops[n].data.send_message.send_message = c->resp_bb;
        n++;
    } else {
        wd_metrics_inc(WD_M_RPC_FAILED);
    }
    grpc_slice_unref(c->details);
    c->details = detail ? grpc_slice_from_static_string(detail) : grpc_empty_slice();
    ops[n].op = GRPC_OP_SEND_STATUS_FROM_SERVER;
    ops[n].data.send_status_from_server.status = status;
    ops[n].data.send_status_from_server.status_details = detail ? &c->details : NULL;
    n++;
    ops[n].op = GRPC_OP_RECV_CLOSE_ON_SERVER;
    ops[n].data.recv_close_on_server.cancelled = &c->cancelled;
    n++;
    c->state = CS_REPLYING;
    if (c->w->closed) { /* cancelled at the end of the grace period: nobody to answer */
        call_finish(c);
        return;
    }
    grpc_call_error e = grpc_call_start_batch(c->call, ops, n, c, NULL);
    if (e != GRPC_CALL_OK) {
        wd_log_error("server", "reply batch refused: %s", grpc_call_error_to_string(e));
        call_finish(c);
    }
}

static grpc_status_code to_grpc_status(enum wd_hook_status st)
{
    switch (st) {
    case WD_HOOK_OK:
        return GRPC_STATUS_OK;
    case WD_HOOK_INVALID_ARGUMENT:
        return GRPC_STATUS_INVALID_ARGUMENT;
    case WD_HOOK_NOT_FOUND:
        return GRPC_STATUS_NOT_FOUND;
    case WD_HOOK_INTERNAL:
    case WD_HOOK_PENDING: /* never: wd_hook_handle does not wait */
        break;
    }
    return GRPC_STATUS_INTERNAL;
}

static void on_registered(struct call *c, int success)
{
    struct worker *w = c->w;
    const struct reg *r = c->reg;
    if (!success) {
        /* the server failed the request (shutdown): no call was created */
        grpc_metadata_array_destroy(&c->md);
        call_put(c);
        return;
    }
    /* keep the accept pipeline full before doing any work */
    if (!atomic_load_explicit(&w->srv->stopping, memory_order_relaxed))
        post_registered(w, r);
    wd_metrics_inc(WD_M_RPC_CALLS);

    if (!c->req_bb) {
        send_reply(c, GRPC_STATUS_INVALID_ARGUMENT, "missing request message", NULL, 0);
        wd_metrics_inc(WD_M_RPC_BAD_REQUEST);
        return;
    }
    grpc_slice in;
    grpc_byte_buffer *bb = c->req_bb;
    if (bb->type != GRPC_BB_RAW || bb->data.raw.compression != GRPC_COMPRESS_NONE) {
        /* still compressed (decompression is off): reading it would inflate it */
        send_reply(c, GRPC_STATUS_UNIMPLEMENTED,
                   "compressed requests are not accepted (send them uncompressed)", NULL, 0);
        wd_metrics_inc(WD_M_RPC_BAD_REQUEST);
        return;
    }
    /* the common case is one slice: read it in place */
    if (bb->data.raw.slice_buffer.count == 1) {
        in = grpc_slice_ref(bb->data.raw.slice_buffer.slices[0]);
    } else {
        grpc_byte_buffer_reader rd;
        if (!grpc_byte_buffer_reader_init(&rd, bb)) {
            send_reply(c, GRPC_STATUS_INVALID_ARGUMENT, "cannot read request message", NULL, 0);
            wd_metrics_inc(WD_M_RPC_BAD_REQUEST);
            return;
        }
        in = grpc_byte_buffer_reader_readall(&rd);
        grpc_byte_buffer_reader_destroy(&rd);
    }

    const uint8_t *out;
    size_t outlen;
    const char *detail;
    enum wd_hook_status st;
    if (r->kind == REG_HEALTH)
        st = wd_hook_health(w->hook, !atomic_load(&w->srv->stopping), GRPC_SLICE_START_PTR(in),
                            GRPC_SLICE_LENGTH(in), &out, &outlen, &detail);
    else
        st = wd_hook_handle(w->hook, r->service, r->method, GRPC_SLICE_START_PTR(in),
                            GRPC_SLICE_LENGTH(in), &out, &outlen, &detail);
    grpc_slice_unref(in);
    if (st != WD_HOOK_OK)
        wd_log_debug("server", "%s: %s", r->path, detail ? detail : "error");
    send_reply(c, to_grpc_status(st), detail, out, outlen);
}

static void on_generic(struct call *c, int success)
{
    struct worker *w = c->w;
    if (!success) {
        grpc_call_details_destroy(&c->cd);
        grpc_metadata_array_destroy(&c->md);
        call_put(c);
        return;
    }
    if (!atomic_load_explicit(&w->srv->stopping, memory_order_relaxed))
        post_generic(w);
    wd_metrics_inc(WD_M_RPC_CALLS);
    wd_metrics_inc(WD_M_RPC_UNIMPLEMENTED);
    if (wd_log_enabled(WD_LOG_DEBUG)) {
        char path[200];
        wd_log_debug("server", "unknown method %s: UNIMPLEMENTED",
                     wd_log_quote(path, sizeof path,
                                  (const char *)GRPC_SLICE_START_PTR(c->cd.method),
                                  GRPC_SLICE_LENGTH(c->cd.method)));
    }
    grpc_call_details_destroy(&c->cd);
    grpc_op ops[3];
    memset(ops, 0, sizeof ops);
    c->details = grpc_slice_from_static_string("method not implemented");
    ops[0].op = GRPC_OP_SEND_INITIAL_METADATA;
    ops[1].op = GRPC_OP_SEND_STATUS_FROM_SERVER;
    ops[1].data.send_status_from_server.status = GRPC_STATUS_UNIMPLEMENTED;
    ops[1].data.send_status_from_server.status_details = &c->details;
    ops[2].op = GRPC_OP_RECV_CLOSE_ON_SERVER;
    ops[2].data.recv_close_on_server.cancelled = &c->cancelled;
    c->state = CS_REPLYING;
    if (w->closed || grpc_call_start_batch(c->call, ops, 3, c, NULL) != GRPC_CALL_OK)
        call_finish(c);
}

static void *worker_main(void *arg)
{
    struct worker *w = arg;
    struct wd_server *s = w->srv;
    for (size_t i = 0; i < s->nregs; i++)
        for (int k = 0; k < s->regs[i].prepost; k++)
            post_registered(w, &s->regs[i]);
    for (int k = 0; k < GENERIC_PREPOST; k++)
        post_generic(w);

    for (;;) {
        grpc_event ev = grpc_completion_queue_next(w->cq, gpr_inf_future(GPR_CLOCK_REALTIME), NULL);
        if (ev.type == GRPC_QUEUE_SHUTDOWN)
            break;
        if (ev.type != GRPC_OP_COMPLETE)
            continue;
        struct call *c = ev.tag;
        pthread_mutex_lock(&w->busy);
        switch (c->state) {
        case CS_REQUESTED:
            on_registered(c, ev.success);
            break;
        case CS_GENERIC:
            on_generic(c, ev.success);
            break;
        case CS_REPLYING:
            w->served++;
            call_finish(c);
            break;
        }
        pthread_mutex_unlock(&w->busy);
    }
    while (w->free_list) {
        struct call *c = w->free_list;
        w->free_list = c->next_free;
        free(c);
    }
    return NULL;
}

/* ---- start / stop ---- */

static void add_reg(struct wd_server *s, enum reg_kind kind, int service, size_t method,
                    int prepost)
{
    struct reg *r = &s->regs[s->nregs++];
    r->kind = kind;
    r->service = service;
    r->method = method;
    r->prepost = prepost;
    if (kind == REG_HEALTH)
        snprintf(r->path, sizeof r->path, "%s", HEALTH_PATH);
    else
        snprintf(r->path, sizeof r->path, "/%s/%s", wd_hook_services[service],
                 wd_hook_method_name(method));
    r->handle = grpc_server_register_method(s->server, r->path, NULL,
                                            GRPC_SRM_PAYLOAD_READ_INITIAL_BYTE_BUFFER, 0);
}

/* gRPC does not say why a bind failed; find out ourselves for a useful message. */
static void explain_bind_failure(const char *listen, char *why, size_t cap)
{
    snprintf(why, cap, "invalid address, or the port is in use");
    char host[256];
    const char *colon = strrchr(listen, ':');
    if (!colon || (size_t)(colon - listen) >= sizeof host)
        return;
    memcpy(host, listen, (size_t)(colon - listen));
    host[colon - listen] = '\0';
    char *h = host;
    if (h[0] == '[' && h[strlen(h) - 1] == ']') {
        h[strlen(h) - 1] = '\0';
        h++;
    }
    struct addrinfo hints = {.ai_family = AF_UNSPEC,
                             .ai_socktype = SOCK_STREAM,
                             .ai_flags = AI_PASSIVE},
                    *res = NULL;
    int gai = getaddrinfo(h[0] ? h : NULL, colon + 1, &hints, &res);
    if (gai != 0) {
        snprintf(why, cap, "cannot resolve '%.64s': %s", h, gai_strerror(gai));
        return;
    }
    for (struct addrinfo *ai = res; ai; ai = ai->ai_next) {
        int fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC, 0);
        if (fd < 0)
            continue;
        int one = 1;
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
        if (bind(fd, ai->ai_addr, ai->ai_addrlen) != 0) {
            snprintf(why, cap, "%s", strerror(errno));
            close(fd);
            break;
        }
        close(fd);
    }
    freeaddrinfo(res);
}

int wd_server_start(const struct wd_config *cfg, struct wd_engine *engine, struct wd_server **out,
                    char *err, size_t errcap)
{
    *out = NULL;
    struct wd_server *s = wd_calloc(1, sizeof *s);
    s->env.cfg = cfg;
    s->env.engine = engine;
    s->port = -1;

    grpc_arg args[16];
    size_t na = 0;
#define ARG_INT(k, v)                                                                              \
    do {                                                                                           \
        args[na].type = GRPC_ARG_INTEGER;                                                          \
        args[na].key = (char *)(k);                                                                \
        args[na].value.integer = (v);                                                              \
        na++;                                                                                      \
    } while (0)
    int limit = wd_config_request_limit(cfg);
    ARG_INT(GRPC_ARG_MAX_RECEIVE_MESSAGE_LENGTH, limit);
    /* a message.publish echo is the request's message plus a few bytes */
    ARG_INT(GRPC_ARG_MAX_SEND_MESSAGE_LENGTH, limit + 64);
    /* compressed requests: refused at their metadata, and never inflated (see the top) */
    ARG_INT(GRPC_COMPRESSION_CHANNEL_ENABLED_ALGORITHMS_BITSET, 1 << GRPC_COMPRESS_NONE);
    ARG_INT(GRPC_ARG_ENABLE_PER_MESSAGE_DECOMPRESSION, 0);
    ARG_INT(GRPC_ARG_MAX_CONCURRENT_STREAMS, cfg->max_concurrent_streams);
    ARG_INT(GRPC_ARG_KEEPALIVE_TIME_MS, cfg->keepalive_time_ms);
    ARG_INT(GRPC_ARG_KEEPALIVE_TIMEOUT_MS, cfg->keepalive_timeout_ms);
    ARG_INT(GRPC_ARG_KEEPALIVE_PERMIT_WITHOUT_CALLS, 1);
    ARG_INT(GRPC_ARG_HTTP2_MIN_RECV_PING_INTERVAL_WITHOUT_DATA_MS, cfg->min_ping_interval_ms);
    ARG_INT(GRPC_ARG_ALLOW_REUSEPORT, 0);
    if (cfg->max_connection_idle_ms > 0)
        ARG_INT(GRPC_ARG_MAX_CONNECTION_IDLE_MS, cfg->max_connection_idle_ms);
    if (cfg->max_connection_age_ms > 0) {
        /* GOAWAY after this age: clients reconnect, so load spreads over new replicas */
        ARG_INT(GRPC_ARG_MAX_CONNECTION_AGE_MS, cfg->max_connection_age_ms);
        ARG_INT(GRPC_ARG_MAX_CONNECTION_AGE_GRACE_MS, cfg->max_connection_age_grace_ms);
    }
#undef ARG_INT
    grpc_channel_args chargs = {na, args};
    s->server = grpc_server_create(&chargs, NULL);

    for (int sv = 0; sv < WD_HOOK_NSERVICES; sv++)
        for (size_t m = 0; m < wd_hook_nmethods(); m++)
            add_reg(s, REG_HOOK, sv, m, wd_hook_method_is_hot(m) ? cfg->prepost : COLD_PREPOST);
    add_reg(s, REG_HEALTH, 0, 0, COLD_PREPOST);
    for (size_t i = 0; i < s->nregs; i++) {
        if (!s->regs[i].handle) {
            snprintf(err, errcap, "cannot register method %s", s->regs[i].path);
            grpc_server_destroy(s->server);
            free(s);
            return WD_EINVAL;
        }
    }

    s->nworkers = cfg->workers > 0 ? cfg->workers : (int)sysconf(_SC_NPROCESSORS_ONLN);
    if (s->nworkers < 1)
        s->nworkers = 1;
    s->workers = wd_calloc((size_t)s->nworkers, sizeof *s->workers);
    for (int i = 0; i < s->nworkers; i++) {
        struct worker *w = &s->workers[i];
        w->idx = i;
        w->srv = s;
        pthread_mutex_init(&w->busy, NULL);
        w->cq = grpc_completion_queue_create_for_next(NULL);
        w->hook = wd_hook_worker_new(&s->env);
        grpc_server_register_completion_queue(s->server, w->cq, NULL);
    }

    const char *mode = "h2c";
    grpc_server_credentials *creds;
    if (cfg->tls_cert) {
        struct wd_tls_material m;
        if (wd_tls_load(cfg, &m, err, errcap) != WD_OK) {
            wd_server_free(s);
            return WD_ETLS;
        }
        grpc_ssl_pem_key_cert_pair kp = {m.key_pem, m.cert_pem};
        creds = grpc_ssl_server_credentials_create_ex(
            m.ca_pem, &kp, 1,
            m.ca_pem ? GRPC_SSL_REQUEST_AND_REQUIRE_CLIENT_CERTIFICATE_AND_VERIFY
                     : GRPC_SSL_DONT_REQUEST_CLIENT_CERTIFICATE,
            NULL);
        mode = m.ca_pem ? "mtls" : "tls";
        wd_tls_cleanup(&m); /* the credentials keep their own copies */
    } else {
        creds = grpc_insecure_server_credentials_create();
    }
    s->port = grpc_server_add_http2_port(s->server, cfg->listen, creds);
    grpc_server_credentials_release(creds);
    if (s->port == 0) {
        char why[256];
        explain_bind_failure(cfg->listen, why, sizeof why);
        snprintf(err, errcap, "cannot listen on %s: %s", cfg->listen, why);
        wd_server_free(s);
        return WD_EBIND;
    }
    grpc_server_start(s->server);
    for (int i = 0; i < s->nworkers; i++) {
        if (pthread_create(&s->workers[i].th, NULL, worker_main, &s->workers[i]) != 0) {
            fprintf(stderr, "warden: cannot create worker thread, aborting\n");
            abort();
        }
        s->workers[i].started = true;
    }

    char host[256];
    const char *colon = strrchr(cfg->listen, ':');
    snprintf(host, sizeof host, "%.*s", (int)(colon - cfg->listen), cfg->listen);
    wd_log_info("server", "listening on %s:%d (%s), %d workers, %zu methods on %s and %s", host,
                s->port, mode, s->nworkers, wd_hook_nmethods(), wd_hook_services[0],
                wd_hook_services[1]);
    wd_log_info("server", "requests up to %d bytes (max_message_size %s), compressed ones refused",
                limit, cfg->max_message_size ? "set" : "auto, from the hooks");
    *out = s;
    return WD_OK;
}

int wd_server_port(const struct wd_server *s)
{
    return s->port;
}

int wd_server_stop(struct wd_server *s, int grace_ms)
{
    int cancelled = 0;
    atomic_store(&s->stopping, 1);
    grpc_completion_queue *cq = grpc_completion_queue_create_for_pluck(NULL);
    static int tag;
    /* stop listening, send GOAWAY, fail the requests still posted */
    grpc_server_shutdown_and_notify(s->server, cq, &tag);
    wd_log_info("server", "shutting down: no new calls, in-flight calls have %d ms to finish",
                grace_ms);
    gpr_timespec deadline =
        gpr_time_add(gpr_now(GPR_CLOCK_MONOTONIC), gpr_time_from_millis(grace_ms, GPR_TIMESPAN));
    grpc_event ev = grpc_completion_queue_pluck(cq, &tag, deadline, NULL);
    if (ev.type == GRPC_QUEUE_TIMEOUT) {
        wd_log_warn("server", "shutdown grace of %d ms expired, cancelling in-flight calls",
                    grace_ms);
        grpc_server_cancel_all_calls(s->server);
        cancelled = 1;
        ev = grpc_completion_queue_pluck(cq, &tag, gpr_inf_future(GPR_CLOCK_REALTIME), NULL);
    }
    grpc_completion_queue_shutdown(cq);
    grpc_completion_queue_destroy(cq);

    uint64_t total = 0;
    for (int i = 0; i < s->nworkers; i++) {
        struct worker *w = &s->workers[i];
        pthread_mutex_lock(&w->busy); /* waits for a handler still blocked on a back end */
        w->closed = true;
        grpc_completion_queue_shutdown(w->cq);
        pthread_mutex_unlock(&w->busy);
    }
    for (int i = 0; i < s->nworkers; i++) {
        if (s->workers[i].started)
            pthread_join(s->workers[i].th, NULL);
        total += s->workers[i].served;
    }
    wd_log_info("server", "stopped: %llu calls served", (unsigned long long)total);
    return cancelled;
}

void wd_server_free(struct wd_server *s)
{
    if (!s)
        return;
    if (s->server)
        grpc_server_destroy(s->server);
    for (int i = 0; s->workers && i < s->nworkers; i++) {
        struct worker *w = &s->workers[i];
        if (w->cq) {
            if (!w->started) {
                /* never started (bind failure): the queue must be shut down and drained */
                grpc_completion_queue_shutdown(w->cq);
                while (grpc_completion_queue_next(w->cq, gpr_inf_future(GPR_CLOCK_REALTIME), NULL)
                           .type != GRPC_QUEUE_SHUTDOWN) {
                }
            }
            grpc_completion_queue_destroy(w->cq);
        }
        wd_hook_worker_free(w->hook);
        pthread_mutex_destroy(&w->busy);
    }
    free(s->workers);
    free(s);
}
