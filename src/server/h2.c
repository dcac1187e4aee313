/* SPDX-License-Identifier: Apache-2.0 */
/*
 * h2.c: unary gRPC over an nghttp2 server session (see h2.h). The only file that includes
 * <nghttp2/nghttp2.h>.
 *
 * Life of a stream:
 *
 *   HEADERS (request) -> checks -> [error: trailers-only answer (+ RST_STREAM NO_ERROR if the
 *   peer is still sending)] -> DATA: the 5-byte prefix, then exactly the announced length
 *   -> END_STREAM -> one message? dispatch to hook.c -> HEADERS + DATA + trailers
 *   -> on_stream_close frees it.
 *
 * Rules from nghttp2's documentation that shape the code:
 * - callbacks only call nghttp2_submit_*; mem_recv/mem_send run from wd_h2_recv/wd_h2_send;
 * - nghttp2_submit_response twice on a stream may crash: every answer goes through answer_*
 *   which checks and sets the stream's `answered` flag;
 * - the success trailers are submitted inside the data provider's read callback at EOF,
 *   never before (an early trailer overtakes the DATA);
 * - on_stream_close returns 0 whatever happens; nghttp2_session_del calls no
 *   on_stream_close, so wd_h2_free frees our own list of streams;
 * - after a negative mem_recv (flood, bad preface, too many CONTINUATIONs) nothing more is
 *   fed to the session (CVE-2026-27135 class).
 *
 * gRPC details (PROTOCOL-HTTP2, compression.md): `te: trailers` is required (nghttp2 itself
 * refuses any other te value); content-type must start with application/grpc (else HTTP
 * 415); grpc-encoding other than identity is answered UNIMPLEMENTED with
 * grpc-accept-encoding: identity and nothing is ever inflated; the compressed flag without
 * an encoding is INTERNAL; no message, two messages or a truncated one is INTERNAL (as
 * grpc-java's ServerCalls); a message over the limit is RESOURCE_EXHAUSTED, decided from
 * the 5-byte prefix before any allocation.
 */
#include "server/h2.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <nghttp2/nghttp2.h>

#include "core/log.h"
#include "core/metrics.h"
#include "core/wd.h"
#include "server/conntimer.h"

/* gRPC status codes used here */
enum {
    GS_OK = 0,
    GS_CANCELLED = 1,
    GS_INVALID_ARGUMENT = 3,
    GS_DEADLINE_EXCEEDED = 4,
    GS_NOT_FOUND = 5,
    GS_RESOURCE_EXHAUSTED = 8,
    GS_UNIMPLEMENTED = 12,
    GS_INTERNAL = 13,
    GS_UNAVAILABLE = 14,
};

#define HEADER_LIST_LIMIT (16u << 10) /* bytes: name + value + 32 per field */
#define HEADER_FIELDS_LIMIT 100
#define ADVERTISED_STREAMS 100000u /* beyond any client's burst; the budget is enforced */
#define STREAM_WINDOW (1u << 20)
#define CONN_WINDOW (16 << 20)
#define DEADLINE_CAP_MS 120000u /* calls without grpc-timeout, or a longer one */
#define GLITCH_BURST 200.0      /* peer-provoked stream errors before GOAWAY ENHANCE_YOUR_CALM */
#define GLITCH_RATE 20.0        /* per second, refilled */
#define LINGER_MS 1000u
#define LINGER_MAX 64
#define HEALTH_PATH "/grpc.health.v1.Health/Check"

enum route {
    ROUTE_NONE = 0,
    ROUTE_HOOK,
    ROUTE_HEALTH,
    ROUTE_UNKNOWN,
};

struct stream {
    int32_t id;
    struct wd_h2 *h;
    struct stream *prev, *next;

    /* request headers */
    enum route route;
    int service;
    size_t method;
    size_t hdr_bytes;
    unsigned hdr_fields;
    bool is_post, ct_grpc, te_trailers, bad_encoding, bad_timeout;
    bool has_timeout;
    uint64_t timeout_ms;
    char path_q[96]; /* quoted :path, for debug logs of unknown methods */

    /* request message */
    uint8_t prefix[5];
    size_t prefix_have;
    uint8_t *msg;
    size_t msg_len, msg_have;
    size_t accounted; /* bytes counted against the connection and process budgets */
    unsigned nmsgs;   /* complete messages */

    /* reply */
    bool answered;
    bool peer_ended; /* END_STREAM seen (the stream is half-closed by the peer) */
    bool lingering;  /* answered early; reset at its timer unless the peer ends it */
    bool counted_inflight;
    bool waiting; /* the call waits for a back end (Redis, a hash): resumed by the engine */
    struct wd_waiter waiter;
    uint64_t t0_ns; /* first dispatch (the request complete): the latency histogram's start */
    uint8_t *resp;
    size_t resp_len, resp_off;

    /* the common request and reply fit here: no allocation per call for them */
    uint8_t msg_inline[320];
    uint8_t resp_inline[48];

    struct wd_loop_timer deadline;
};

struct wd_h2 {
    const struct wd_h2_env *env;
    nghttp2_session *session;
    void (*kick)(void *ctx);
    void *kick_ctx;
    struct stream *streams;
    size_t nstreams;
    size_t inflight;  /* streams not yet answered */
    size_t lingering; /* streams answered early, waiting for the peer's END_STREAM */
    size_t buffered;  /* request bytes held by this connection */
    bool broken;      /* mem_recv failed: feed nothing more */
    bool in_recv;

    /* frame boundaries as received, for the slow-peer deadlines (nghttp2 has no timers) */
    size_t trk_preface; /* client preface bytes seen (24 when complete) */
    uint8_t trk_hdr[9]; /* the frame header being received */
    size_t trk_hdr_have;
    size_t trk_left;     /* payload bytes of the current frame still to come */
    bool trk_in_block;   /* inside a header block (HEADERS without END_HEADERS) */
    bool handshaken;     /* the preface and the first SETTINGS frame arrived */
    uint64_t started;    /* session start (loop time) */
    uint64_t unit_since; /* first byte of the incomplete frame or header block; 0: none */
    double glitch_tokens;
    uint64_t glitch_at;
    struct wd_pingstrikes strikes; /* the peer's PINGs without a request in between */
    bool ping_flood;               /* one strike too many: GOAWAY after this input */
};

static _Atomic size_t process_buffered;

size_t wd_h2_buffered_bytes(void)
{
    return atomic_load_explicit(&process_buffered, memory_order_relaxed);
}

/* ---- small helpers (exported for tests) ---- */

int wd_h2_parse_timeout(const char *s, size_t len, uint64_t *ms)
{
    *ms = 0;
    if (len < 2 || len > 9)
        return WD_EINVAL;
    uint64_t v = 0;
    for (size_t i = 0; i + 1 < len; i++) {
        if (s[i] < '0' || s[i] > '9')
            return WD_EINVAL;
        v = v * 10 + (uint64_t)(s[i] - '0');
    }
    /* v < 10^8: every product below fits in 64 bits */
    switch (s[len - 1]) {
    case 'H':
        *ms = v * 3600000u;
        break;
    case 'M':
        *ms = v * 60000u;
        break;
    case 'S':
        *ms = v * 1000u;
        break;
    case 'm':
        *ms = v;
        break;
    case 'u':
        *ms = (v + 999u) / 1000u;
        break;
    case 'n':
        *ms = (v + 999999u) / 1000000u;
        break;
    default:
        return WD_EINVAL;
    }
    return WD_OK;
}

const char *wd_h2_percent_encode(char *out, size_t cap, const char *s)
{
    static const char hex[] = "0123456789ABCDEF";
    size_t o = 0;
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        if (*p >= 0x20 && *p <= 0x7e && *p != '%') {
            if (o + 1 >= cap)
                break;
            out[o++] = (char)*p;
        } else {
            if (o + 3 >= cap)
                break;
            out[o++] = '%';
            out[o++] = hex[*p >> 4];
            out[o++] = hex[*p & 15];
        }
    }
    if (cap)
        out[o < cap ? o : cap - 1] = '\0';
    return out;
}

static bool eq(const uint8_t *a, size_t alen, const char *lit)
{
    size_t n = strlen(lit);
    return alen == n && memcmp(a, lit, n) == 0;
}

/* The hook paths' parts with their lengths, computed once (the names are constant). */
struct route_names {
    size_t svc_len[WD_HOOK_NSERVICES];
    size_t nmethods;
    const char *method[64];
    size_t method_len[64];
};

static struct route_names g_routes;
static pthread_once_t g_routes_once = PTHREAD_ONCE_INIT;

static void routes_init(void)
{
    for (int sv = 0; sv < WD_HOOK_NSERVICES; sv++)
        g_routes.svc_len[sv] = strlen(wd_hook_services[sv]);
    g_routes.nmethods = wd_hook_nmethods();
    if (g_routes.nmethods > WD_ARRAY_LEN(g_routes.method))
        g_routes.nmethods = WD_ARRAY_LEN(g_routes.method);
    for (size_t i = 0; i < g_routes.nmethods; i++) {
        g_routes.method[i] = wd_hook_method_name(i);
        g_routes.method_len[i] = strlen(g_routes.method[i]);
    }
}

static void route_path(struct stream *st, const uint8_t *p, size_t n)
{
    pthread_once(&g_routes_once, routes_init);
    st->route = ROUTE_UNKNOWN;
    if (eq(p, n, HEALTH_PATH)) {
        st->route = ROUTE_HEALTH;
        return;
    }
    for (int sv = 0; sv < WD_HOOK_NSERVICES; sv++) {
        size_t sl = g_routes.svc_len[sv];
        if (n < sl + 2 || p[0] != '/' || memcmp(p + 1, wd_hook_services[sv], sl) != 0 ||
            p[1 + sl] != '/')
            continue;
        const uint8_t *m = p + sl + 2;
        size_t ml = n - sl - 2;
        for (size_t i = 0; i < g_routes.nmethods; i++) {
            if (g_routes.method_len[i] == ml && memcmp(m, g_routes.method[i], ml) == 0) {
                st->route = ROUTE_HOOK;
                st->service = sv;
                st->method = i;
                return;
            }
        }
    }
    /* only an unknown path is ever logged: quote it then, not on every call */
    wd_log_quote(st->path_q, sizeof st->path_q, (const char *)p, n);
}

/* ---- budgets ---- */

static void release_buffer(struct stream *st)
{
    if (st->accounted) {
        st->h->buffered -= st->accounted;
        atomic_fetch_sub_explicit(&process_buffered, st->accounted, memory_order_relaxed);
        st->accounted = 0;
    }
    if (st->msg != st->msg_inline)
        free(st->msg);
    st->msg = NULL;
}

/* A peer-provoked stream error (bad request, over a limit): a token bucket per connection;
 * empty -> GOAWAY ENHANCE_YOUR_CALM (the "glitch" limit nghttp2 1.52 lacks). */
static void glitch(struct wd_h2 *h)
{
    uint64_t now = wd_loop_now(h->env->loop);
    h->glitch_tokens += (double)(now - h->glitch_at) * GLITCH_RATE / 1000.0;
    if (h->glitch_tokens > GLITCH_BURST)
        h->glitch_tokens = GLITCH_BURST;
    h->glitch_at = now;
    h->glitch_tokens -= 1.0;
    if (h->glitch_tokens < 0) {
        wd_log_warn("h2", "too many bad requests on one connection: GOAWAY");
        nghttp2_session_terminate_session(h->session, NGHTTP2_ENHANCE_YOUR_CALM);
    }
}

/* ---- answers ---- */

#define NV(n, v)                                                                                   \
    {                                                                                              \
        (uint8_t *)(n), (uint8_t *)(v), sizeof(n) - 1, strlen(v), NGHTTP2_NV_FLAG_NO_COPY_NAME     \
    }

/* method index -> its latency histogram, resolved once */
static unsigned char hist_of[64];
static void resolve_hists(void)
{
    static const struct {
        const char *name;
        enum wd_histogram h;
    } map[] = {
        {"OnClientAuthenticate", WD_H_CALL_AUTHN},
        {"OnClientAuthorize", WD_H_CALL_AUTHZ},
        {"OnMessagePublish", WD_H_CALL_PUBLISH},
        {"OnClientDisconnected", WD_H_CALL_DISCONNECTED},
    };
    for (size_t i = 0; i < WD_ARRAY_LEN(hist_of); i++) {
        const char *n = wd_hook_method_name(i);
        hist_of[i] = WD_H_CALL_OTHER;
        for (size_t j = 0; n && j < WD_ARRAY_LEN(map); j++)
            if (strcmp(n, map[j].name) == 0)
                hist_of[i] = (unsigned char)map[j].h;
    }
}

static void observe_call(const struct stream *st)
{
    static pthread_once_t once = PTHREAD_ONCE_INIT;
    if (st->route != ROUTE_HOOK || !st->t0_ns)
        return;
    pthread_once(&once, resolve_hists);
    enum wd_histogram h = st->method < WD_ARRAY_LEN(hist_of)
                              ? (enum wd_histogram)hist_of[st->method]
                              : WD_H_CALL_OTHER;
    wd_metrics_observe(h, wd_metrics_now_ns() - st->t0_ns);
}

static void mark_answered(struct stream *st)
{
    observe_call(st);
    st->answered = true;
    st->waiting = false;
    wd_engine_waiter_end(&st->waiter); /* a call that waited: the engine forgets it */
    if (st->counted_inflight) {
        st->counted_inflight = false;
        st->h->inflight--;
    }
    wd_loop_timer_stop(st->h->env->loop, &st->deadline);
    release_buffer(st);
    wd_metrics_inc(WD_M_RPC_CALLS);
}

/* Trailers-only: one HEADERS frame with END_STREAM. `http_status` is 200 except for the
 * content-type refusal (415). */
static void answer_error(struct stream *st, int http_status, int status, const char *msg,
                         bool cancel)
{
    if (st->answered)
        return;
    mark_answered(st);
    wd_metrics_inc(WD_M_RPC_FAILED);
    struct wd_h2 *h = st->h;
    char code[12], hs[8], enc[256];
    snprintf(code, sizeof code, "%d", status);
    snprintf(hs, sizeof hs, "%d", http_status);
    nghttp2_nv nva[6] = {
        NV(":status", hs),
        NV("content-type", "application/grpc"),
        NV("grpc-status", code),
    };
    size_t n = 3;
    if (msg && *msg) {
        nghttp2_nv m = NV("grpc-message", wd_h2_percent_encode(enc, sizeof enc, msg));
        nva[n++] = m;
    }
    if (status == GS_UNIMPLEMENTED) {
        nghttp2_nv a = NV("grpc-accept-encoding", "identity");
        nva[n++] = a;
    }
    /* nva is copied by nghttp2 (no NO_COPY_VALUE flag): the buffers may die here */
    int rv = nghttp2_submit_response(h->session, st->id, nva, n, NULL);
    if (rv != 0) {
        wd_log_debug("h2", "stream %d: cannot submit an answer: %s", (int)st->id,
                     nghttp2_strerror(rv));
        return;
    }
    if (st->peer_ended || nghttp2_session_get_stream_remote_close(h->session, st->id))
        return;
    /* The peer is still sending. RST_STREAM at once would end the call cleanly for EMQX's
     * gun, but gRPC core clients (grpcio) report an RST that follows a trailers-only answer
     * before they half-closed as INTERNAL. So the stream lingers for LINGER_MS, its DATA
     * dropped, and is reset then (or at once past LINGER_MAX lingering streams, so that
     * answered-but-open streams cannot pile up). A deadline is a cancellation: reset now. */
    if (cancel || h->lingering >= LINGER_MAX) {
        nghttp2_submit_rst_stream(h->session, NGHTTP2_FLAG_NONE, st->id,
                                  cancel ? NGHTTP2_CANCEL : NGHTTP2_NO_ERROR);
        return;
    }
    st->lingering = true;
    h->lingering++;
    wd_loop_timer_start(h->env->loop, &st->deadline, wd_loop_now(h->env->loop) + LINGER_MS);
}

static ssize_t read_reply(nghttp2_session *session, int32_t stream_id, uint8_t *buf, size_t length,
                          uint32_t *data_flags, nghttp2_data_source *source, void *user_data)
{
    struct stream *st = source->ptr;
    size_t n = st->resp_len - st->resp_off;
    if (n > length)
        n = length;
    memcpy(buf, st->resp + st->resp_off, n);
    st->resp_off += n;
    if (st->resp_off == st->resp_len) {
        *data_flags |= NGHTTP2_DATA_FLAG_EOF | NGHTTP2_DATA_FLAG_NO_END_STREAM;
        nghttp2_nv tr[] = {NV("grpc-status", "0")};
        if (nghttp2_submit_trailer(session, stream_id, tr, 1) != 0)
            return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
    }
    return (ssize_t)n;
}

static void answer_ok(struct stream *st, const uint8_t *out, size_t outlen)
{
    if (st->answered)
        return;
    mark_answered(st);
    st->resp_len = outlen + 5;
    st->resp = st->resp_len <= sizeof st->resp_inline ? st->resp_inline : wd_malloc(st->resp_len);
    st->resp[0] = 0; /* never compressed: EMQX cannot take it */
    st->resp[1] = (uint8_t)(outlen >> 24);
    st->resp[2] = (uint8_t)(outlen >> 16);
    st->resp[3] = (uint8_t)(outlen >> 8);
    st->resp[4] = (uint8_t)outlen;
    if (outlen)
        memcpy(st->resp + 5, out, outlen);
    nghttp2_nv nva[] = {NV(":status", "200"), NV("content-type", "application/grpc")};
    nghttp2_data_provider dp = {.source.ptr = st, .read_callback = read_reply};
    int rv = nghttp2_submit_response(st->h->session, st->id, nva, 2, &dp);
    if (rv != 0)
        wd_log_debug("h2", "stream %d: cannot submit a reply: %s", (int)st->id,
                     nghttp2_strerror(rv));
}

static int to_grpc_status(enum wd_hook_status s)
{
    switch (s) {
    case WD_HOOK_OK:
        return GS_OK;
    case WD_HOOK_INVALID_ARGUMENT:
        return GS_INVALID_ARGUMENT;
    case WD_HOOK_NOT_FOUND:
        return GS_NOT_FOUND;
    case WD_HOOK_INTERNAL:
    case WD_HOOK_PENDING:
        break;
    }
    return GS_INTERNAL;
}

/* The request is complete (END_STREAM): run the call. */
static void dispatch(struct stream *st)
{
    struct wd_h2 *h = st->h;
    if (st->prefix_have || st->msg_have < st->msg_len) {
        wd_metrics_inc(WD_M_RPC_BAD_REQUEST);
        answer_error(st, 200, GS_INTERNAL, "truncated request message", false);
        glitch(h);
        return;
    }
    if (st->nmsgs == 0) {
        wd_metrics_inc(WD_M_RPC_BAD_REQUEST);
        answer_error(st, 200, GS_INTERNAL, "Half-closed without a request", false);
        glitch(h);
        return;
    }
    if (!st->t0_ns)
        st->t0_ns = wd_metrics_now_ns();
    const uint8_t *out = NULL;
    size_t outlen = 0;
    const char *detail = NULL;
    enum wd_hook_status hs;
    const uint8_t *in = st->msg ? st->msg : (const uint8_t *)"";
    if (st->route == ROUTE_HEALTH)
        hs = wd_hook_health(h->env->hook, !atomic_load(h->env->stopping), in, st->msg_len, &out,
                            &outlen, &detail);
    else
        hs = wd_hook_handle_w(h->env->hook, st->service, st->method, in, st->msg_len, &st->waiter,
                              &out, &outlen, &detail);
    if (hs == WD_HOOK_PENDING) {
        /* suspended: the request stays buffered, the deadline timer armed; stream_resume
         * runs this again when the back end answers */
        st->waiting = true;
        return;
    }
    /* the shutdown grace expired while the handler ran: the call is cancelled, as gRPC
     * core cancels what remains */
    if (atomic_load(h->env->cancelled)) {
        answer_error(st, 200, GS_CANCELLED, "server shutting down", true);
        return;
    }
    /* the handler may have waited on a back end: is the caller still waiting? */
    if (wd_loop_timer_armed(&st->deadline) && wd_loop_update_now(h->env->loop) >= st->deadline.at) {
        answer_error(st, 200, GS_DEADLINE_EXCEEDED, "deadline exceeded", false);
        return;
    }
    if (hs != WD_HOOK_OK) {
        wd_log_debug("h2", "stream %d: %s", (int)st->id, detail ? detail : "error");
        answer_error(st, 200, to_grpc_status(hs), detail, false);
        return;
    }
    answer_ok(st, out, outlen);
}

/* The engine's completion for a waiting call (on the loop, never inside wd_h2_recv). */
static void stream_resume(void *ctx)
{
    struct stream *st = ctx;
    struct wd_h2 *h = st->h;
    if (!st->waiting || st->answered)
        return;
    st->waiting = false;
    dispatch(st);
    if (!h->in_recv && h->kick)
        h->kick(h->kick_ctx); /* last: it may close the connection and free st */
}

static void on_deadline(struct wd_loop_timer *t)
{
    struct stream *st = t->data;
    struct wd_h2 *h = st->h;
    if (st->lingering) {
        st->lingering = false;
        h->lingering--;
        nghttp2_submit_rst_stream(h->session, NGHTTP2_FLAG_NONE, st->id, NGHTTP2_NO_ERROR);
        if (!h->in_recv && h->kick)
            h->kick(h->kick_ctx);
        return;
    }
    if (st->answered)
        return;
    wd_log_debug("h2", "stream %d: deadline exceeded before the request was complete", (int)st->id);
    answer_error(st, 200, GS_DEADLINE_EXCEEDED, "deadline exceeded", true);
    if (!h->in_recv && h->kick)
        h->kick(h->kick_ctx);
}

/* ---- nghttp2 callbacks ---- */

static struct stream *stream_of(struct wd_h2 *h, int32_t id)
{
    return nghttp2_session_get_stream_user_data(h->session, id);
}

static int on_begin_headers(nghttp2_session *session, const nghttp2_frame *frame, void *ud)
{
    struct wd_h2 *h = ud;
    if (frame->hd.type != NGHTTP2_HEADERS || frame->headers.cat != NGHTTP2_HCAT_REQUEST)
        return 0;
    struct stream *st = wd_calloc(1, sizeof *st);
    st->id = frame->hd.stream_id;
    st->h = h;
    st->deadline.cb = on_deadline;
    st->deadline.data = st;
    st->waiter.resume = stream_resume;
    st->waiter.ctx = st;
    st->next = h->streams;
    if (h->streams)
        h->streams->prev = st;
    h->streams = st;
    h->nstreams++;
    st->counted_inflight = true;
    h->inflight++;
    nghttp2_session_set_stream_user_data(session, st->id, st);
    return 0;
}

static int on_header(nghttp2_session *session, const nghttp2_frame *frame, const uint8_t *name,
                     size_t namelen, const uint8_t *value, size_t valuelen, uint8_t flags, void *ud)
{
    struct wd_h2 *h = ud;
    struct stream *st = stream_of(h, frame->hd.stream_id);
    if (!st)
        return 0;
    /* the application's job in 1.52: bound the header list (request and trailers alike) */
    st->hdr_bytes += namelen + valuelen + 32;
    st->hdr_fields++;
    if (st->hdr_bytes > HEADER_LIST_LIMIT || st->hdr_fields > HEADER_FIELDS_LIMIT) {
        glitch(h);
        return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE; /* RST_STREAM INTERNAL_ERROR */
    }
    if (frame->headers.cat != NGHTTP2_HCAT_REQUEST)
        return 0;
    if (eq(name, namelen, ":path"))
        route_path(st, value, valuelen);
    else if (eq(name, namelen, ":method"))
        st->is_post = eq(value, valuelen, "POST");
    else if (eq(name, namelen, "content-type"))
        st->ct_grpc = valuelen >= 16 && memcmp(value, "application/grpc", 16) == 0 &&
                      (valuelen == 16 || value[16] == '+' || value[16] == ';');
    else if (eq(name, namelen, "te"))
        st->te_trailers = eq(value, valuelen, "trailers");
    else if (eq(name, namelen, "grpc-encoding"))
        st->bad_encoding = !eq(value, valuelen, "identity");
    else if (eq(name, namelen, "grpc-timeout")) {
        st->has_timeout = true;
        st->bad_timeout =
            wd_h2_parse_timeout((const char *)value, valuelen, &st->timeout_ms) != WD_OK;
    }
    return 0;
}

/* The request HEADERS are complete: refuse now what can be refused. */
static void on_request_headers(struct wd_h2 *h, struct stream *st)
{
    if (!st->ct_grpc) {
        wd_metrics_inc(WD_M_RPC_BAD_REQUEST);
        answer_error(st, 415, GS_INTERNAL, "content-type must be application/grpc", false);
        glitch(h);
        return;
    }
    if (!st->is_post) {
        wd_metrics_inc(WD_M_RPC_BAD_REQUEST);
        answer_error(st, 405, GS_INTERNAL, "method must be POST", false);
        glitch(h);
        return;
    }
    if (!st->te_trailers) {
        wd_metrics_inc(WD_M_RPC_BAD_REQUEST);
        answer_error(st, 200, GS_INTERNAL, "missing te: trailers", false);
        glitch(h);
        return;
    }
    if (st->bad_timeout) {
        wd_metrics_inc(WD_M_RPC_BAD_REQUEST);
        answer_error(st, 200, GS_INTERNAL, "malformed grpc-timeout", false);
        glitch(h);
        return;
    }
    if (st->route != ROUTE_HOOK && st->route != ROUTE_HEALTH) {
        wd_metrics_inc(WD_M_RPC_UNIMPLEMENTED);
        wd_log_debug("h2", "unknown method %s: UNIMPLEMENTED", st->path_q);
        answer_error(st, 200, GS_UNIMPLEMENTED, "method not implemented", false);
        return;
    }
    if (st->bad_encoding) {
        wd_metrics_inc(WD_M_RPC_BAD_REQUEST);
        answer_error(st, 200, GS_UNIMPLEMENTED,
                     "compression is not accepted: send requests uncompressed "
                     "(grpc-encoding identity)",
                     false);
        return;
    }
    if (h->inflight > h->env->inflight_budget) {
        answer_error(st, 200, GS_RESOURCE_EXHAUSTED, "too many calls in flight", false);
        return;
    }
    uint64_t ms =
        st->has_timeout && st->timeout_ms < DEADLINE_CAP_MS ? st->timeout_ms : DEADLINE_CAP_MS;
    wd_loop_timer_start(h->env->loop, &st->deadline, wd_loop_now(h->env->loop) + ms);
}

static int on_frame_recv(nghttp2_session *session, const nghttp2_frame *frame, void *ud)
{
    struct wd_h2 *h = ud;
    if (frame->hd.type != NGHTTP2_HEADERS && frame->hd.type != NGHTTP2_DATA)
        return 0;
    /* may run after on_stream_close: look the stream up again */
    struct stream *st = stream_of(h, frame->hd.stream_id);
    if (!st)
        return 0;
    if (frame->hd.type == NGHTTP2_HEADERS && frame->headers.cat == NGHTTP2_HCAT_REQUEST)
        on_request_headers(h, st);
    if (frame->hd.flags & NGHTTP2_FLAG_END_STREAM) {
        st->peer_ended = true;
        if (!st->answered)
            dispatch(st);
    }
    return 0;
}

static void frame_error(struct stream *st, int status, const char *msg)
{
    wd_metrics_inc(WD_M_RPC_BAD_REQUEST);
    answer_error(st, 200, status, msg, false);
    glitch(st->h);
}

static int on_data_chunk(nghttp2_session *session, uint8_t flags, int32_t stream_id,
                         const uint8_t *data, size_t len, void *ud)
{
    struct wd_h2 *h = ud;
    struct stream *st = stream_of(h, stream_id);
    if (!st || st->answered)
        return 0; /* dropped: the answer is out (nghttp2 still credits the window) */
    while (len && !st->answered) {
        if (st->msg_have < st->msg_len) { /* inside a message body */
            size_t n = st->msg_len - st->msg_have;
            if (n > len)
                n = len;
            memcpy(st->msg + st->msg_have, data, n);
            st->msg_have += n;
            data += n;
            len -= n;
            if (st->msg_have == st->msg_len)
                st->nmsgs++;
            continue;
        }
        /* a prefix, byte by byte (DATA frame boundaries are not message boundaries) */
        st->prefix[st->prefix_have++] = *data++;
        len--;
        if (st->prefix_have < 5)
            continue;
        st->prefix_have = 0;
        if (st->nmsgs >= 1) {
            frame_error(st, GS_INTERNAL, "Too many requests");
            break;
        }
        if (st->prefix[0] == 1) {
            frame_error(st, GS_INTERNAL, "compressed flag set without grpc-encoding");
            break;
        }
        if (st->prefix[0] != 0) {
            frame_error(st, GS_INTERNAL, "invalid message flags");
            break;
        }
        size_t mlen = (size_t)st->prefix[1] << 24 | (size_t)st->prefix[2] << 16 |
                      (size_t)st->prefix[3] << 8 | st->prefix[4];
        if (mlen > h->env->request_limit) {
            char m[96];
            snprintf(m, sizeof m, "request message larger than max (%zu vs. %zu)", mlen,
                     h->env->request_limit);
            frame_error(st, GS_RESOURCE_EXHAUSTED, m);
            break;
        }
        if (h->buffered + mlen > h->env->conn_buffer_limit ||
            (h->buffered + mlen > WD_H2_CONN_GUARANTEE &&
             wd_h2_buffered_bytes() + mlen > h->env->process_buffer_limit)) {
            answer_error(st, 200, GS_RESOURCE_EXHAUSTED, "request buffers full, retry later",
                         false);
            break;
        }
        st->msg_len = mlen;
        st->msg_have = 0;
        if (mlen == 0) {
            st->nmsgs++;
            continue;
        }
        st->msg = mlen <= sizeof st->msg_inline ? st->msg_inline : wd_malloc(mlen);
        st->accounted = mlen;
        h->buffered += mlen;
        atomic_fetch_add_explicit(&process_buffered, mlen, memory_order_relaxed);
    }
    return 0;
}

static void stream_free(struct wd_h2 *h, struct stream *st)
{
    wd_engine_waiter_end(&st->waiter); /* reset or closed while waiting: never resumed */
    if (st->counted_inflight)
        h->inflight--;
    if (st->lingering)
        h->lingering--;
    wd_loop_timer_stop(h->env->loop, &st->deadline);
    release_buffer(st);
    if (st->resp != st->resp_inline)
        free(st->resp);
    if (st->prev)
        st->prev->next = st->next;
    else
        h->streams = st->next;
    if (st->next)
        st->next->prev = st->prev;
    h->nstreams--;
    free(st);
}

static int on_stream_close(nghttp2_session *session, int32_t stream_id, uint32_t error_code,
                           void *ud)
{
    struct wd_h2 *h = ud;
    struct stream *st = stream_of(h, stream_id);
    if (st) {
        nghttp2_session_set_stream_user_data(session, stream_id, NULL);
        stream_free(h, st);
    }
    return 0; /* never fail here (CVE-2023-35945 is not fixed in 1.52) */
}

static int on_invalid_frame(nghttp2_session *session, const nghttp2_frame *frame,
                            int lib_error_code, void *ud)
{
    glitch(ud);
    return 0;
}

/* ---- session ---- */

struct wd_h2 *wd_h2_new(const struct wd_h2_env *env, void (*kick)(void *ctx), void *ctx)
{
    struct wd_h2 *h = wd_calloc(1, sizeof *h);
    h->env = env;
    h->kick = kick;
    h->kick_ctx = ctx;
    h->glitch_tokens = GLITCH_BURST;
    h->glitch_at = wd_loop_now(env->loop);
    h->started = h->glitch_at;
    wd_pingstrikes_init(&h->strikes, env->min_ping_interval_ms, WD_PINGSTRIKES_MAX);

    nghttp2_session_callbacks *cb;
    nghttp2_option *opt;
    if (nghttp2_session_callbacks_new(&cb) != 0 || nghttp2_option_new(&opt) != 0)
        abort(); /* OOM */
    nghttp2_session_callbacks_set_on_begin_headers_callback(cb, on_begin_headers);
    nghttp2_session_callbacks_set_on_header_callback(cb, on_header);
    nghttp2_session_callbacks_set_on_frame_recv_callback(cb, on_frame_recv);
    nghttp2_session_callbacks_set_on_data_chunk_recv_callback(cb, on_data_chunk);
    nghttp2_session_callbacks_set_on_stream_close_callback(cb, on_stream_close);
    nghttp2_session_callbacks_set_on_invalid_frame_recv_callback(cb, on_invalid_frame);
    nghttp2_option_set_no_closed_streams(opt, 1);
    nghttp2_option_set_max_continuations(opt, 8);
    nghttp2_option_set_stream_reset_rate_limit(opt, 1000, 33);
    nghttp2_option_set_max_settings(opt, 32);
    nghttp2_option_set_max_outbound_ack(opt, 1000);
    int rv = nghttp2_session_server_new2(&h->session, cb, h, opt);
    nghttp2_session_callbacks_del(cb);
    nghttp2_option_del(opt);
    if (rv != 0)
        abort(); /* only NOMEM */
    nghttp2_settings_entry iv[] = {
        {NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS, ADVERTISED_STREAMS},
        {NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE, STREAM_WINDOW},
        {NGHTTP2_SETTINGS_MAX_HEADER_LIST_SIZE, HEADER_LIST_LIMIT},
        {NGHTTP2_SETTINGS_NO_RFC7540_PRIORITIES, 1},
    };
    nghttp2_submit_settings(h->session, NGHTTP2_FLAG_NONE, iv, WD_ARRAY_LEN(iv));
    nghttp2_session_set_local_window_size(h->session, NGHTTP2_FLAG_NONE, 0, CONN_WINDOW);
    return h;
}

void wd_h2_free(struct wd_h2 *h)
{
    if (!h)
        return;
    while (h->streams)
        stream_free(h, h->streams);
    nghttp2_session_del(h->session);
    free(h);
}

/* Follows the frame boundaries of the input (the preface, then 9-byte headers and their
 * payloads) to know whether a frame or a header block is incomplete, and since when. It
 * never judges the bytes: nghttp2 does. */
static void track_frames(struct wd_h2 *h, const uint8_t *p, size_t n)
{
    uint64_t now = wd_loop_now(h->env->loop);
    while (n) {
        if (h->trk_preface < NGHTTP2_CLIENT_MAGIC_LEN) {
            size_t take = NGHTTP2_CLIENT_MAGIC_LEN - h->trk_preface;
            take = take < n ? take : n;
            h->trk_preface += take;
            p += take;
            n -= take;
            continue;
        }
        if (h->trk_hdr_have < 9) {
            if (h->trk_hdr_have == 0 && !h->unit_since)
                h->unit_since = now ? now : 1;
            h->trk_hdr[h->trk_hdr_have++] = *p++;
            n--;
            if (h->trk_hdr_have < 9)
                continue;
            h->trk_left = (size_t)h->trk_hdr[0] << 16 | (size_t)h->trk_hdr[1] << 8 | h->trk_hdr[2];
        } else {
            size_t take = h->trk_left < n ? h->trk_left : n;
            h->trk_left -= take;
            p += take;
            n -= take;
        }
        if (h->trk_left)
            continue;
        /* a whole frame */
        uint8_t type = h->trk_hdr[3], flags = h->trk_hdr[4];
        h->trk_hdr_have = 0;
        if (type == NGHTTP2_HEADERS)
            wd_pingstrikes_request(&h->strikes);
        if (type == NGHTTP2_PING && !(flags & NGHTTP2_FLAG_ACK) &&
            wd_pingstrikes_ping(&h->strikes, now))
            h->ping_flood = true;
        if (type == NGHTTP2_HEADERS || type == NGHTTP2_PUSH_PROMISE)
            h->trk_in_block = !(flags & NGHTTP2_FLAG_END_HEADERS);
        else if (type == NGHTTP2_CONTINUATION && (flags & NGHTTP2_FLAG_END_HEADERS))
            h->trk_in_block = false;
        else if (type == NGHTTP2_SETTINGS && !(flags & NGHTTP2_FLAG_ACK))
            h->handshaken = true;
        if (!h->trk_in_block)
            h->unit_since = 0;
    }
}

uint64_t wd_h2_deadline(const struct wd_h2 *h)
{
    if (!h->handshaken)
        return h->started + h->env->handshake_ms;
    return h->unit_since ? h->unit_since + h->env->header_ms : 0;
}

bool wd_h2_handshaken(const struct wd_h2 *h)
{
    return h->handshaken;
}

static _Atomic uint64_t ping_floods, ping_flood_logged;

/* The peer pinged too often without a request (wd_pingstrikes): GOAWAY ENHANCE_YOUR_CALM with
 * gRPC core's debug data (gRPC clients read it and ping less), then the connection ends once
 * the GOAWAY is out (broken: nothing more is read). Logged at most once a second. */
static void too_many_pings(struct wd_h2 *h)
{
    static const char dbg[] = "too_many_pings";
    nghttp2_submit_goaway(h->session, NGHTTP2_FLAG_NONE,
                          nghttp2_session_get_last_proc_stream_id(h->session),
                          NGHTTP2_ENHANCE_YOUR_CALM, (const uint8_t *)dbg, sizeof dbg - 1);
    h->broken = true;
    uint64_t n = atomic_fetch_add_explicit(&ping_floods, 1, memory_order_relaxed) + 1;
    uint64_t now = wd_loop_now(h->env->loop);
    uint64_t last = atomic_load_explicit(&ping_flood_logged, memory_order_relaxed);
    if (now - last >= 1000 && atomic_compare_exchange_strong(&ping_flood_logged, &last, now))
        wd_log_warn("h2",
                    "a peer sent PINGs more often than min_ping_interval (%llu ms) without a "
                    "request: GOAWAY ENHANCE_YOUR_CALM too_many_pings (%llu connections so far)",
                    (unsigned long long)h->env->min_ping_interval_ms, (unsigned long long)n);
}

int wd_h2_recv(struct wd_h2 *h, const uint8_t *in, size_t len)
{
    if (h->broken)
        return WD_EIO;
    track_frames(h, in, len);
    h->in_recv = true;
    ssize_t n = nghttp2_session_mem_recv(h->session, in, len);
    h->in_recv = false;
    if (n < 0) {
        wd_log_debug("h2", "session error: %s", nghttp2_strerror((int)n));
        h->broken = true;
        return WD_EIO;
    }
    if (h->ping_flood) {
        too_many_pings(h);
        return WD_EIO;
    }
    return WD_OK;
}

int wd_h2_send(struct wd_h2 *h, size_t room, void (*append)(void *ctx, const void *p, size_t n),
               void *ctx)
{
    size_t given = 0;
    while (given < room) {
        const uint8_t *p;
        ssize_t n = nghttp2_session_mem_send(h->session, &p);
        if (n < 0) {
            wd_log_debug("h2", "session send error: %s", nghttp2_strerror((int)n));
            h->broken = true;
            return WD_EIO;
        }
        if (n == 0)
            break;
        append(ctx, p, (size_t)n);
        given += (size_t)n;
    }
    return WD_OK;
}

bool wd_h2_finished(const struct wd_h2 *h)
{
    if (h->broken)
        return !nghttp2_session_want_write(h->session);
    return !nghttp2_session_want_read(h->session) && !nghttp2_session_want_write(h->session);
}

bool wd_h2_want_write(const struct wd_h2 *h)
{
    return nghttp2_session_want_write(h->session) != 0;
}

void wd_h2_shutdown_notice(struct wd_h2 *h)
{
    nghttp2_submit_shutdown_notice(h->session);
}

void wd_h2_goaway(struct wd_h2 *h)
{
    nghttp2_submit_goaway(h->session, NGHTTP2_FLAG_NONE,
                          nghttp2_session_get_last_proc_stream_id(h->session), NGHTTP2_NO_ERROR,
                          NULL, 0);
}

void wd_h2_ping(struct wd_h2 *h)
{
    if (!h->broken)
        nghttp2_submit_ping(h->session, NGHTTP2_FLAG_NONE, NULL); /* fails only on OOM */
}

size_t wd_h2_open_streams(const struct wd_h2 *h)
{
    return h->nstreams;
}
