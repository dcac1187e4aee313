/* SPDX-License-Identifier: Apache-2.0
 *
 * bare_server: the benchmark baseline for warden.
 *
 * A gRPC C-core server with warden's serving shape and none of its work. It answers
 *
 *   /emqx.exhook.v2.HookProvider/OnClientAuthenticate   /emqx.exhook.v3.HookProvider/...
 *   /emqx.exhook.v2.HookProvider/OnClientAuthorize      /emqx.exhook.v3.HookProvider/...
 *
 * with one fixed, pre-packed ValuedResponse{type=STOP_AND_RETURN, bool_result=true}. It
 * never decodes the request and runs no logic, so "warden calls/s / bare_server calls/s"
 * is the share of the gRPC transport's ceiling that warden keeps. Any other method gets
 * UNIMPLEMENTED.
 *
 * Serving shape (the same as warden):
 *   - N worker threads (-t, default: one per online CPU), each owning one GRPC_CQ_NEXT
 *     completion queue that is both the notification and the call-bound queue;
 *   - every method is registered with GRPC_SRM_PAYLOAD_READ_INITIAL_BYTE_BUFFER, and each
 *     worker keeps -p requests pre-posted per method on its own queue;
 *   - one reply batch per call: SEND_INITIAL_METADATA + SEND_MESSAGE +
 *     SEND_STATUS_FROM_SERVER + RECV_CLOSE_ON_SERVER;
 *   - GRPC_ARG_ALLOW_REUSEPORT = 0, so a clash with a stale server fails the bind instead
 *     of silently sharing the port.
 *
 * SIGTERM/SIGINT: graceful shutdown (shutdown_and_notify, 2 s grace, then
 * cancel_all_calls), and one line on stderr with the calls served per method, the CPU
 * time per call and maxrss.
 *
 * Usage: bare_server [-a addr] [-t threads] [-p prepost]
 *   -a  listen address (default 127.0.0.1:9100)
 *   -t  worker threads = completion queues (default: online CPUs)
 *   -p  requests pre-posted per method per completion queue (default 64)
 */
#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include <grpc/byte_buffer.h>
#include <grpc/grpc.h>
#include <grpc/grpc_security.h>
#include <grpc/slice.h>
#include <grpc/support/time.h>

#include "exhook.pb-c.h"

enum { GRACE_MS = 2000, GENERIC_PREPOST = 2 };

static const char *const k_paths[] = {
    "/emqx.exhook.v2.HookProvider/OnClientAuthenticate",
    "/emqx.exhook.v2.HookProvider/OnClientAuthorize",
    "/emqx.exhook.v3.HookProvider/OnClientAuthenticate",
    "/emqx.exhook.v3.HookProvider/OnClientAuthorize",
};
#define NMETHODS ((int)(sizeof k_paths / sizeof k_paths[0]))

/* What a tag on a worker's completion queue stands for. */
typedef enum {
    TAG_REQUESTED,         /* registered-method request posted, waiting for a call */
    TAG_GENERIC_REQUESTED, /* grpc_server_request_call posted (unknown methods) */
    TAG_REPLYING,          /* reply batch in flight */
} tag_kind;

struct worker;

typedef struct call {
    tag_kind kind;
    int method; /* index into k_paths, -1 for the generic (UNIMPLEMENTED) path */
    struct worker *w;
    grpc_call *call;
    gpr_timespec deadline;
    grpc_metadata_array req_md;
    grpc_byte_buffer *req_bb; /* owned by us once the request completes */
    grpc_byte_buffer *resp_bb;
    grpc_call_details details; /* generic requests only */
    grpc_slice status_details;
    int cancelled;
    struct call *next_free;
} call;

typedef struct worker {
    int idx;
    pthread_t th;
    grpc_completion_queue *cq;
    call *free_list; /* touched by this worker's thread only */
    long served[NMETHODS];
    long unimplemented;
} worker;

static grpc_server *g_server;
static void *g_method_handle[NMETHODS];
static int g_prepost = 64;
static atomic_int g_stopping;

/* The one reply every call gets, packed once at start-up. */
static uint8_t g_reply_buf[16];
static grpc_slice g_reply_slice;

/* ---------------------------------------------------------------------------------- */

static call *call_new(worker *w, tag_kind kind, int method) {
    call *c = w->free_list;
    if (c)
        w->free_list = c->next_free;
    else if (!(c = malloc(sizeof *c))) {
        fprintf(stderr, "bare_server: out of memory\n");
        abort();
    }
    memset(c, 0, sizeof *c);
    c->w = w;
    c->kind = kind;
    c->method = method;
    grpc_metadata_array_init(&c->req_md);
    return c;
}

/* Releases everything a call holds and recycles its context. */
static void call_free(call *c) {
    worker *w = c->w;
    if (c->req_bb) grpc_byte_buffer_destroy(c->req_bb);
    if (c->resp_bb) grpc_byte_buffer_destroy(c->resp_bb);
    if (c->method < 0) grpc_call_details_destroy(&c->details);
    grpc_metadata_array_destroy(&c->req_md);
    grpc_slice_unref(c->status_details);
    if (c->call) grpc_call_unref(c->call);
    c->next_free = w->free_list;
    w->free_list = c;
}

static void post_request(worker *w, int method) {
    call *c = call_new(w, TAG_REQUESTED, method);
    grpc_call_error e = grpc_server_request_registered_call(
        g_server, g_method_handle[method], &c->call, &c->deadline, &c->req_md, &c->req_bb,
        w->cq, w->cq, c);
    if (e != GRPC_CALL_OK) {
        if (!atomic_load(&g_stopping))
            fprintf(stderr, "bare_server: request_registered_call: %s\n",
                    grpc_call_error_to_string(e));
        call_free(c);
    }
}

static void post_generic_request(worker *w) {
    call *c = call_new(w, TAG_GENERIC_REQUESTED, -1);
    grpc_call_details_init(&c->details);
    if (grpc_server_request_call(g_server, &c->call, &c->details, &c->req_md, w->cq, w->cq,
                                 c) != GRPC_CALL_OK)
        call_free(c);
}

/* Starts the single reply batch: initial metadata, optional message, status, and
 * RECV_CLOSE_ON_SERVER. Its completion (TAG_REPLYING) frees the call. */
static void send_reply(call *c, grpc_status_code status, const char *msg) {
    grpc_op ops[4];
    size_t n = 0;
    memset(ops, 0, sizeof ops);
    ops[n++].op = GRPC_OP_SEND_INITIAL_METADATA;
    if (status == GRPC_STATUS_OK) {
        /* refs the static slice: no copy, no allocation for the payload */
        c->resp_bb = grpc_raw_byte_buffer_create(&g_reply_slice, 1);
        ops[n].op = GRPC_OP_SEND_MESSAGE;
        ops[n++].data.send_message.send_message = c->resp_bb;
    }
    ops[n].op = GRPC_OP_SEND_STATUS_FROM_SERVER;
    ops[n].data.send_status_from_server.status = status;
    if (msg) {
        c->status_details = grpc_slice_from_static_string(msg);
        ops[n].data.send_status_from_server.status_details = &c->status_details;
    }
    n++;
    ops[n].op = GRPC_OP_RECV_CLOSE_ON_SERVER;
    ops[n++].data.recv_close_on_server.cancelled = &c->cancelled;
    c->kind = TAG_REPLYING;
    grpc_call_error e = grpc_call_start_batch(c->call, ops, n, c, NULL);
    if (e != GRPC_CALL_OK) {
        fprintf(stderr, "bare_server: start_batch: %s\n", grpc_call_error_to_string(e));
        call_free(c); /* a refused batch posts no completion */
    }
}

static void on_event(worker *w, call *c, int success) {
    switch (c->kind) {
    case TAG_REQUESTED:
        if (!success) { /* server shutting down: no call was created */
            call_free(c);
            return;
        }
        /* refill the pre-posted pool first, then answer without looking at the request */
        if (!atomic_load(&g_stopping)) post_request(w, c->method);
        send_reply(c, GRPC_STATUS_OK, NULL);
        return;
    case TAG_GENERIC_REQUESTED:
        if (!success) {
            call_free(c);
            return;
        }
        if (!atomic_load(&g_stopping)) post_generic_request(w);
        w->unimplemented++;
        send_reply(c, GRPC_STATUS_UNIMPLEMENTED, "method not implemented by bare_server");
        return;
    case TAG_REPLYING:
        if (c->method >= 0 && success) w->served[c->method]++;
        call_free(c);
        return;
    }
}

static void *worker_main(void *arg) {
    worker *w = arg;
    for (int m = 0; m < NMETHODS; m++)
        for (int i = 0; i < g_prepost; i++) post_request(w, m);
    for (int i = 0; i < GENERIC_PREPOST; i++) post_generic_request(w);

    for (;;) {
        grpc_event ev =
            grpc_completion_queue_next(w->cq, gpr_inf_future(GPR_CLOCK_MONOTONIC), NULL);
        if (ev.type == GRPC_QUEUE_SHUTDOWN) break;
        if (ev.type == GRPC_OP_COMPLETE) on_event(w, ev.tag, ev.success);
    }
    while (w->free_list) {
        call *c = w->free_list;
        w->free_list = c->next_free;
        free(c);
    }
    return NULL;
}

/* ---------------------------------------------------------------------------------- */

static int parse_int(const char *flag, const char *s, int lo, int hi) {
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || end == s || *end || v < lo || v > hi) {
        fprintf(stderr, "bare_server: %s wants an integer in [%d, %d], got '%s'\n", flag, lo,
                hi, s);
        exit(2);
    }
    return (int)v;
}

static void usage(void) {
    fprintf(stderr, "usage: bare_server [-a addr] [-t threads] [-p prepost]\n"
                    "  -a  listen address (default 127.0.0.1:9100)\n"
                    "  -t  worker threads / completion queues (default: online CPUs)\n"
                    "  -p  requests pre-posted per method per queue (default 64)\n");
    exit(2);
}

static void pack_reply(void) {
    Emqx__Exhook__V3__ValuedResponse r = EMQX__EXHOOK__V3__VALUED_RESPONSE__INIT;
    r.type = EMQX__EXHOOK__V3__VALUED_RESPONSE__RESPONSED_TYPE__STOP_AND_RETURN;
    r.value_case = EMQX__EXHOOK__V3__VALUED_RESPONSE__VALUE_BOOL_RESULT;
    r.bool_result = 1;
    size_t len = emqx__exhook__v3__valued_response__get_packed_size(&r);
    if (len > sizeof g_reply_buf) abort();
    emqx__exhook__v3__valued_response__pack(&r, g_reply_buf);
    g_reply_slice = grpc_slice_from_static_buffer(g_reply_buf, len);
}

int main(int argc, char **argv) {
    const char *addr = "127.0.0.1:9100";
    long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
    int nthreads = ncpu > 0 ? (int)ncpu : 1;
    int opt;
    while ((opt = getopt(argc, argv, "a:t:p:h")) != -1) {
        switch (opt) {
        case 'a': addr = optarg; break;
        case 't': nthreads = parse_int("-t", optarg, 1, 256); break;
        case 'p': g_prepost = parse_int("-p", optarg, 1, 100000); break;
        default: usage();
        }
    }
    if (optind != argc) usage();

    /* SIGTERM/SIGINT are taken by sigwait() in main; every thread (gRPC's too) inherits
     * the blocked mask. */
    sigset_t sigs;
    sigemptyset(&sigs);
    sigaddset(&sigs, SIGINT);
    sigaddset(&sigs, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &sigs, NULL);
    signal(SIGPIPE, SIG_IGN);

    pack_reply();
    grpc_init();

    grpc_arg args[] = {
        {GRPC_ARG_INTEGER, GRPC_ARG_ALLOW_REUSEPORT, {.integer = 0}},
    };
    grpc_channel_args chargs = {sizeof args / sizeof args[0], args};
    g_server = grpc_server_create(&chargs, NULL);

    for (int m = 0; m < NMETHODS; m++) {
        g_method_handle[m] = grpc_server_register_method(
            g_server, k_paths[m], NULL, GRPC_SRM_PAYLOAD_READ_INITIAL_BYTE_BUFFER, 0);
        if (!g_method_handle[m]) {
            fprintf(stderr, "bare_server: cannot register %s\n", k_paths[m]);
            return 1;
        }
    }

    worker *workers = calloc((size_t)nthreads, sizeof *workers);
    if (!workers) return 1;
    for (int i = 0; i < nthreads; i++) {
        workers[i].idx = i;
        workers[i].cq = grpc_completion_queue_create_for_next(NULL);
        grpc_server_register_completion_queue(g_server, workers[i].cq, NULL);
    }

    grpc_server_credentials *creds = grpc_insecure_server_credentials_create();
    int port = grpc_server_add_http2_port(g_server, addr, creds);
    grpc_server_credentials_release(creds);
    if (port == 0) {
        fprintf(stderr, "bare_server: cannot listen on %s (port busy?)\n", addr);
        return 1;
    }
    grpc_server_start(g_server);
    for (int i = 0; i < nthreads; i++)
        pthread_create(&workers[i].th, NULL, worker_main, &workers[i]);
    fprintf(stderr, "bare_server: listening on %s, %d worker threads, prepost %d per method\n",
            addr, nthreads, g_prepost);

    int sig = 0;
    sigwait(&sigs, &sig);
    atomic_store(&g_stopping, 1);

    grpc_completion_queue *scq = grpc_completion_queue_create_for_pluck(NULL);
    static int shutdown_tag;
    grpc_server_shutdown_and_notify(g_server, scq, &shutdown_tag);
    gpr_timespec grace = gpr_time_add(gpr_now(GPR_CLOCK_MONOTONIC),
                                      gpr_time_from_millis(GRACE_MS, GPR_TIMESPAN));
    grpc_event ev = grpc_completion_queue_pluck(scq, &shutdown_tag, grace, NULL);
    if (ev.type == GRPC_QUEUE_TIMEOUT) {
        grpc_server_cancel_all_calls(g_server);
        grpc_completion_queue_pluck(scq, &shutdown_tag, gpr_inf_future(GPR_CLOCK_MONOTONIC),
                                    NULL);
    }
    for (int i = 0; i < nthreads; i++) grpc_completion_queue_shutdown(workers[i].cq);

    long per_method[NMETHODS] = {0}, total = 0, unimpl = 0;
    for (int i = 0; i < nthreads; i++) {
        pthread_join(workers[i].th, NULL);
        for (int m = 0; m < NMETHODS; m++) per_method[m] += workers[i].served[m];
        unimpl += workers[i].unimplemented;
    }
    for (int m = 0; m < NMETHODS; m++) total += per_method[m];

    grpc_server_destroy(g_server);
    for (int i = 0; i < nthreads; i++) grpc_completion_queue_destroy(workers[i].cq);
    grpc_completion_queue_shutdown(scq);
    grpc_completion_queue_destroy(scq);
    free(workers);
    grpc_shutdown();

    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    double cpu = (double)(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) +
                 (double)(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6;
    fprintf(stderr,
            "bare_server: signal %d, served %ld calls (v2 authn %ld, v2 authz %ld, v3 authn %ld, "
            "v3 authz %ld, unimplemented %ld), cpu %.2f s (%.2f us/call), maxrss %ld KiB\n",
            sig, total, per_method[0], per_method[1], per_method[2], per_method[3], unimpl, cpu,
            total ? cpu * 1e6 / (double)total : 0.0, ru.ru_maxrss);
    return 0;
}
