/* SPDX-License-Identifier: Apache-2.0
 *
 * wd_load: closed-loop ExHook load generator on the gRPC C-core client API.
 *
 * Sends OnClientAuthorize (default) or OnClientAuthenticate calls to warden, or to
 * bare_server, and keeps exactly -n calls in flight: every completion starts the next
 * call at once. Requests look like what EMQX sends (ClientInfo, RequestMeta, ...), are
 * packed with protobuf-c once at start-up into a pool of -k distinct requests (one per
 * client id dev-0000 .. dev-<k-1>), and are sent round-robin from that pool, or with -z
 * drawn from it by a Zipf distribution (a few hot clients, a long tail).
 *
 * Every reply is decoded as a ValuedResponse. A call counts as ok only when its status
 * is OK and the reply decodes with the `value` oneof set to bool_result (true or false;
 * -q also reports how many were false as deny=); a non-OK status (or a failed batch)
 * counts as err, an OK status with a missing/undecodable reply or another oneof counts as
 * mismatch. Latency (ok calls only) goes into a histogram with exact 1 us buckets below
 * 4.096 ms and 512 log-linear buckets per octave above (0.2% wide); max is exact.
 *
 * Layout: -t threads, each with its own completion queue, its share of the -c channels
 * (each channel its own TCP connection: GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL=1) and its
 * share of the -n calls in flight, spread round-robin over its channels.
 *
 * Usage: wd_load [-a addr] [-t threads] [-c channels] [-n inflight] [-d seconds]
 *                [-w warmup_seconds] [-N calls] [-m authorize|authenticate] [-P v2|v3]
 *                [-k pool] [-T deadline_ms] [-i every] [-q] [-S server_pid] [-B file]
 *                [-U] [-u user_prefix] [-z zipf_exponent]
 *   -d/-w  measure for -d seconds after -w seconds of warm-up (defaults 10 and 2)
 *   -N   run exactly N calls instead of -d seconds (no warm-up; every call is measured)
 *   -P   path prefix: /emqx.exhook.v2.HookProvider/ (default) or v3
 *   -k   request pool size = distinct client ids (default 1000)
 *   -T   per-call deadline in ms (default none)
 *   -i   print "progress calls=X elapsed=Ys" on stdout every X calls (for RSS sampling)
 *   -q   print one machine-readable key=value line instead of the human summary
 *   -S   pid of the server: report its CPU time per call (all threads, from
 *        /proc/PID/task/TID/schedstat) over the measurement window, and how many cores
 *        neither client nor server used meanwhile (other_cores: a noisy-machine warning)
 *   -B   write one gRPC-framed request (flag byte, 4-byte BE length, protobuf) to file
 *        and exit: a body for h2load -d
 *   -U   authenticate as per-client users: username user-NNNN, password pw-NNNN (NNNN =
 *        the pool index, as in the client id dev-NNNN) instead of demo/demo
 *   -J   with -U: the password is an HS256 JWT signed with SECRET instead of pw-NNNN:
 *        {"exp": now + 1 h, "sub": "user-NNNN", "acl": {"pub": ["devices/${clientid}/#"]}}
 *   -u   username prefix (default "user"): usernames are PREFIX-NNNN, for authorize and
 *        for -U authenticate
 *   -z   pick each request's pool index from a Zipf distribution with exponent S (index
 *        i with probability ~ 1/(i+1)^S; 0 = uniform) instead of round-robin: a
 *        precomputed CDF, binary search, one xorshift64* generator per thread with a fixed
 *        seed (the same sequence on every run)
 *
 * Output (stdout): calls/s=.. ok=.. err=.. mismatch=.. p50=..ms p90=..ms p99=..ms
 * p99.9=..ms max=..ms, where calls/s = ok calls / measured seconds. With -q: rps= ok= err=
 * mismatch= deny= elapsed= p50_us= p90_us= p99_us= p999_us= max_us= cli_us_per_call=
 * srv_us_per_call= other_cores= irq_cores= steal_cores= (-1 where not measured).
 * Exit status 0 when every call was ok, 1 otherwise, 2 on usage or connection errors.
 */
#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include <grpc/byte_buffer.h>
#include <grpc/byte_buffer_reader.h>
#include <grpc/grpc.h>
#include <grpc/grpc_security.h>
#include <grpc/slice.h>
#include <grpc/support/alloc.h>
#include <grpc/support/time.h>

#include <openssl/hmac.h>

#include "exhook.pb-c.h"

/* ---- latency histogram --------------------------------------------------------------
 * Bucket b < LIN holds exactly b microseconds. Above, each octave [2^e, 2^(e+1)) us,
 * e = LIN_BITS .. MAX_EXP, is cut into SUB log-linear buckets (0.2% wide); anything
 * longer lands in the last bucket (max is tracked exactly anyway). */
#define LIN_BITS 12
#define LIN (1 << LIN_BITS) /* 4096 us */
#define SUB_BITS 9
#define SUB (1 << SUB_BITS)
#define MAX_EXP 26 /* 2^27 us ~ 134 s */
#define NBUCKETS (LIN + (MAX_EXP - LIN_BITS + 1) * SUB)

static int bucket_of(uint64_t us) {
    if (us < LIN) return (int)us;
    int e = 63 - __builtin_clzll(us);
    if (e > MAX_EXP) return NBUCKETS - 1;
    int sub = (int)((us >> (e - SUB_BITS)) & (SUB - 1));
    return LIN + (e - LIN_BITS) * SUB + sub;
}

/* The largest latency (us) that falls into bucket b. */
static uint64_t bucket_top(int b) {
    if (b < LIN) return (uint64_t)b;
    int e = LIN_BITS + (b - LIN) / SUB, sub = (b - LIN) % SUB;
    uint64_t width = 1ull << (e - SUB_BITS);
    return (1ull << e) + (uint64_t)sub * width + width - 1;
}

/* ---- configuration ------------------------------------------------------------------ */

typedef enum { M_AUTHORIZE, M_AUTHENTICATE } method_kind;

static const char *g_addr = "127.0.0.1:9100";
static int g_threads = 1, g_channels = 1, g_inflight = 64, g_pool = 1000;
static double g_dur = 10, g_warm = 2;
static long g_limit;        /* -N: total calls, 0 = run for -d seconds */
static long g_progress;     /* -i */
static int g_deadline_ms;   /* -T, 0 = no deadline */
static int g_quiet;         /* -q */
static method_kind g_method = M_AUTHORIZE;
static const char *g_version = "v2";
static const char *g_body_file; /* -B */
static long g_srv_pid;          /* -S: server whose CPU time to measure over the window */
static int g_per_user;          /* -U: authenticate as user-NNNN / pw-NNNN */
static const char *g_jwt_secret; /* -J: the password is an HS256 token */
static const char *g_user_prefix = "user"; /* -u */
static int g_zipf_on;           /* -z given */
static double g_zipf_s;         /* -z exponent */
static double *g_zipf_cdf;      /* g_pool entries, increasing, last = 1 */
static char g_path[128];

/* ---- run state shared with the workers ---------------------------------------------- */

enum { PH_WARM, PH_MEASURE, PH_STOP };
static atomic_int g_phase;
static atomic_long g_issued; /* -N mode: calls started so far */
static _Atomic double g_stop_at; /* monotonic time PH_STOP was entered */
enum { DRAIN_CANCEL_S = 5 };     /* cancel calls still in flight this long after stop */

static uint8_t **g_req_buf; /* the request pool, packed once */
static size_t *g_req_len;
static grpc_slice *g_req_slice; /* static slices over g_req_buf: no refcounting */

typedef struct worker worker;

typedef struct slot {
    worker *w;
    int ch;
    grpc_call *call;
    struct timespec t0;
    grpc_metadata_array init_md, trail_md;
    grpc_byte_buffer *send_bb, *recv_bb;
    grpc_status_code status;
    grpc_slice details;
} slot;

struct worker {
    int idx;
    pthread_t th;
    grpc_completion_queue *cq;
    int nch;
    grpc_channel **ch;
    void **reg;
    int nslots;
    slot *slots;
    int inflight;
    unsigned next_req;
    uint64_t rng; /* -z: xorshift64* state, never 0 */
    /* results: written by this thread, read by main after join (done: any time) */
    atomic_long done; /* completions counted in the measurement */
    long ok, err, mismatch, deny; /* deny: the ok calls whose bool_result was false */
    uint64_t max_us;
    struct timespec last;
    grpc_status_code first_status;
    char first_err[160];
    uint64_t *hist;
};

static double ts_sec(const struct timespec *t) { return (double)t->tv_sec + (double)t->tv_nsec * 1e-9; }

static double now_sec(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return ts_sec(&t);
}

static void die(const char *msg) {
    fprintf(stderr, "wd_load: %s\n", msg);
    exit(2);
}

/* ---- requests --------------------------------------------------------------------- */

static void b64url(char *out, const unsigned char *p, size_t n) {
    static const char t[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    size_t o = 0;
    for (size_t i = 0; i < n; i += 3) {
        unsigned long v = (unsigned long)p[i] << 16;
        if (i + 1 < n) v |= (unsigned long)p[i + 1] << 8;
        if (i + 2 < n) v |= p[i + 2];
        out[o++] = t[v >> 18];
        out[o++] = t[(v >> 12) & 63];
        if (i + 1 < n) out[o++] = t[(v >> 6) & 63];
        if (i + 2 < n) out[o++] = t[v & 63];
    }
    out[o] = '\0';
}

/* An HS256 token for user `user` (-J): header.payload.signature, base64url. */
static void mint_jwt(char *out, size_t cap, const char *user) {
    char hdr[64], pay[256], claims[200];
    unsigned char mac[32];
    unsigned maclen = 0;
    const char *h = "{\"alg\":\"HS256\",\"typ\":\"JWT\"}";
    snprintf(claims, sizeof claims,
             "{\"exp\":%ld,\"sub\":\"%s\",\"acl\":{\"pub\":[\"devices/${clientid}/#\"]}}",
             (long)time(NULL) + 3600, user);
    b64url(hdr, (const unsigned char *)h, strlen(h));
    b64url(pay, (const unsigned char *)claims, strlen(claims));
    char si[400];
    snprintf(si, sizeof si, "%s.%s", hdr, pay);
    HMAC(EVP_sha256(), g_jwt_secret, (int)strlen(g_jwt_secret), (const unsigned char *)si,
         strlen(si), mac, &maclen);
    char sig[64];
    b64url(sig, mac, maclen);
    snprintf(out, cap, "%s.%s", si, sig);
}

static void pack_request(int i, uint8_t **buf, size_t *len) {
    char clientid[32], username[96], password[512], topic[64];
    snprintf(clientid, sizeof clientid, "dev-%04d", i);
    snprintf(username, sizeof username, "%s-%04d", g_user_prefix, i);
    if (g_jwt_secret)
        mint_jwt(password, sizeof password, username);
    else
        snprintf(password, sizeof password, "pw-%04d", i);
    snprintf(topic, sizeof topic, "devices/%s/telemetry", clientid);

    Emqx__Exhook__V3__ClientInfo ci = EMQX__EXHOOK__V3__CLIENT_INFO__INIT;
    ci.node = "emqx@127.0.0.1";
    ci.clientid = clientid;
    ci.peerhost = "127.0.0.1";
    ci.sockport = 1883;
    ci.protocol = "mqtt";
    ci.peerport = 40000 + (uint32_t)(i % 20000);
    Emqx__Exhook__V3__RequestMeta meta = EMQX__EXHOOK__V3__REQUEST_META__INIT;
    meta.node = "emqx@127.0.0.1";
    meta.version = "5.8.9";
    meta.sysdescr = "EMQX";
    meta.cluster_name = "emqxcl";

    ProtobufCMessage *msg;
    Emqx__Exhook__V3__ClientAuthorizeRequest az = EMQX__EXHOOK__V3__CLIENT_AUTHORIZE_REQUEST__INIT;
    Emqx__Exhook__V3__ClientAuthenticateRequest an =
        EMQX__EXHOOK__V3__CLIENT_AUTHENTICATE_REQUEST__INIT;
    if (g_method == M_AUTHORIZE) {
        ci.username = username;
        az.clientinfo = &ci;
        az.type = EMQX__EXHOOK__V3__CLIENT_AUTHORIZE_REQUEST__AUTHORIZE_REQ_TYPE__PUBLISH;
        az.topic = topic;
        az.result = 1;
        az.meta = &meta;
        msg = &az.base;
    } else {
        ci.username = g_per_user ? username : "demo";
        ci.password = g_per_user ? password : "demo";
        an.clientinfo = &ci;
        an.result = 0;
        an.meta = &meta;
        msg = &an.base;
    }
    *len = protobuf_c_message_get_packed_size(msg);
    *buf = malloc(*len ? *len : 1);
    if (!*buf) die("out of memory");
    protobuf_c_message_pack(msg, *buf);
}

static void build_pool(void) {
    g_req_buf = calloc((size_t)g_pool, sizeof *g_req_buf);
    g_req_len = calloc((size_t)g_pool, sizeof *g_req_len);
    g_req_slice = calloc((size_t)g_pool, sizeof *g_req_slice);
    if (!g_req_buf || !g_req_len || !g_req_slice) die("out of memory");
    for (int i = 0; i < g_pool; i++) {
        pack_request(i, &g_req_buf[i], &g_req_len[i]);
        g_req_slice[i] = grpc_slice_from_static_buffer(g_req_buf[i], g_req_len[i]);
    }
    if (g_zipf_on) {
        /* P(i) = (i+1)^-s / H(k, s); cdf[i] = P(0) + .. + P(i) */
        g_zipf_cdf = malloc((size_t)g_pool * sizeof *g_zipf_cdf);
        if (!g_zipf_cdf) die("out of memory");
        double sum = 0;
        for (int i = 0; i < g_pool; i++) {
            sum += pow((double)(i + 1), -g_zipf_s);
            g_zipf_cdf[i] = sum;
        }
        for (int i = 0; i < g_pool; i++) g_zipf_cdf[i] /= sum;
        g_zipf_cdf[g_pool - 1] = 1.0;
    }
}

/* xorshift64* (Vigna): a fast generator, good enough to draw request indexes */
static uint64_t rng_next(uint64_t *s) {
    uint64_t x = *s;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    *s = x;
    return x * 0x2545F4914F6CDD1Dull;
}

/* The seed of thread t: splitmix64 of a fixed constant, so runs repeat and threads differ. */
static uint64_t rng_seed(int t) {
    uint64_t z = 0x5EED5EED5EEDull + (uint64_t)(t + 1) * 0x9E3779B97F4A7C15ull;
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    z ^= z >> 31;
    return z ? z : 1;
}

/* The next request index: round-robin, or a Zipf draw (first index whose CDF exceeds a
 * uniform u in [0, 1)). */
static unsigned next_index(worker *w) {
    if (!g_zipf_on) {
        unsigned i = w->next_req;
        w->next_req = (w->next_req + 1) % (unsigned)g_pool;
        return i;
    }
    double u = (double)(rng_next(&w->rng) >> 11) * 0x1.0p-53;
    int lo = 0, hi = g_pool - 1;
    while (lo < hi) {
        int mid = lo + (hi - lo) / 2;
        if (g_zipf_cdf[mid] > u) hi = mid;
        else lo = mid + 1;
    }
    return (unsigned)lo;
}

static int write_body(const char *file) {
    FILE *f = fopen(file, "wb");
    if (!f) {
        perror(file);
        return 2;
    }
    uint32_t n = (uint32_t)g_req_len[0];
    uint8_t hdr[5] = {0, (uint8_t)(n >> 24), (uint8_t)(n >> 16), (uint8_t)(n >> 8), (uint8_t)n};
    int bad = fwrite(hdr, 1, 5, f) != 5 || fwrite(g_req_buf[0], 1, n, f) != n;
    bad |= fclose(f) != 0;
    if (bad) {
        perror(file);
        return 2;
    }
    fprintf(stderr, "wd_load: wrote %s (%u-byte request, %s)\n", file, n, g_path);
    return 0;
}

/* ---- calls ------------------------------------------------------------------------ */

static int start_call(slot *s) {
    worker *w = s->w;
    if (atomic_load_explicit(&g_phase, memory_order_relaxed) == PH_STOP) return 0;
    if (g_limit && atomic_fetch_add_explicit(&g_issued, 1, memory_order_relaxed) >= g_limit)
        return 0;

    gpr_timespec deadline =
        g_deadline_ms ? gpr_time_add(gpr_now(GPR_CLOCK_MONOTONIC),
                                     gpr_time_from_millis(g_deadline_ms, GPR_TIMESPAN))
                      : gpr_inf_future(GPR_CLOCK_MONOTONIC);
    s->call = grpc_channel_create_registered_call(w->ch[s->ch], NULL, GRPC_PROPAGATE_DEFAULTS,
                                                  w->cq, w->reg[s->ch], deadline, NULL);
    grpc_metadata_array_init(&s->init_md);
    grpc_metadata_array_init(&s->trail_md);
    s->send_bb = grpc_raw_byte_buffer_create(&g_req_slice[next_index(w)], 1);
    s->recv_bb = NULL;
    s->details = grpc_empty_slice();

    grpc_op ops[6];
    memset(ops, 0, sizeof ops);
    ops[0].op = GRPC_OP_SEND_INITIAL_METADATA;
    ops[1].op = GRPC_OP_SEND_MESSAGE;
    ops[1].data.send_message.send_message = s->send_bb;
    ops[2].op = GRPC_OP_SEND_CLOSE_FROM_CLIENT;
    ops[3].op = GRPC_OP_RECV_INITIAL_METADATA;
    ops[3].data.recv_initial_metadata.recv_initial_metadata = &s->init_md;
    ops[4].op = GRPC_OP_RECV_MESSAGE;
    ops[4].data.recv_message.recv_message = &s->recv_bb;
    ops[5].op = GRPC_OP_RECV_STATUS_ON_CLIENT;
    ops[5].data.recv_status_on_client.trailing_metadata = &s->trail_md;
    ops[5].data.recv_status_on_client.status = &s->status;
    ops[5].data.recv_status_on_client.status_details = &s->details;
    clock_gettime(CLOCK_MONOTONIC, &s->t0);
    grpc_call_error e = grpc_call_start_batch(s->call, ops, 6, s, NULL);
    if (e != GRPC_CALL_OK) {
        fprintf(stderr, "wd_load: start_batch: %s\n", grpc_call_error_to_string(e));
        exit(2);
    }
    w->inflight++;
    return 1;
}

typedef enum { RES_OK, RES_DENY, RES_ERR, RES_MISMATCH } result;

static result check_reply(slot *s, int success) {
    if (!success || s->status != GRPC_STATUS_OK) return RES_ERR;
    if (!s->recv_bb) return RES_MISMATCH;
    grpc_byte_buffer_reader r;
    if (!grpc_byte_buffer_reader_init(&r, s->recv_bb)) return RES_MISMATCH;
    grpc_slice all = grpc_byte_buffer_reader_readall(&r);
    grpc_byte_buffer_reader_destroy(&r);
    Emqx__Exhook__V3__ValuedResponse *v = emqx__exhook__v3__valued_response__unpack(
        NULL, GRPC_SLICE_LENGTH(all), GRPC_SLICE_START_PTR(all));
    grpc_slice_unref(all);
    if (!v) return RES_MISMATCH;
    result res = RES_MISMATCH;
    if (v->value_case == EMQX__EXHOOK__V3__VALUED_RESPONSE__VALUE_BOOL_RESULT)
        res = v->bool_result ? RES_OK : RES_DENY;
    emqx__exhook__v3__valued_response__free_unpacked(v, NULL);
    return res;
}

static void finish_call(slot *s, int success) {
    worker *w = s->w;
    struct timespec t1;
    clock_gettime(CLOCK_MONOTONIC, &t1);
    result res = check_reply(s, success);

    if (atomic_load_explicit(&g_phase, memory_order_relaxed) == PH_MEASURE) {
        int64_t ns = (int64_t)(t1.tv_sec - s->t0.tv_sec) * 1000000000 + (t1.tv_nsec - s->t0.tv_nsec);
        uint64_t us = ns > 0 ? (uint64_t)ns / 1000 : 0;
        switch (res) {
        case RES_DENY:
        case RES_OK:
            w->ok++;
            w->deny += res == RES_DENY; /* bool_result=false is still an ok reply */
            w->hist[bucket_of(us)]++;
            if (us > w->max_us) w->max_us = us;
            break;
        case RES_ERR:
            if (!w->err++) {
                w->first_status = s->status;
                char *d = grpc_slice_to_c_string(s->details);
                snprintf(w->first_err, sizeof w->first_err, "%s", d);
                gpr_free(d);
            }
            break;
        case RES_MISMATCH: w->mismatch++; break;
        }
        w->last = t1;
        atomic_fetch_add_explicit(&w->done, 1, memory_order_relaxed);
    }
    grpc_byte_buffer_destroy(s->send_bb);
    if (s->recv_bb) grpc_byte_buffer_destroy(s->recv_bb);
    grpc_metadata_array_destroy(&s->init_md);
    grpc_metadata_array_destroy(&s->trail_md);
    grpc_slice_unref(s->details);
    grpc_call_unref(s->call);
    s->call = NULL;
    w->inflight--;
}

static void *worker_main(void *arg) {
    worker *w = arg;
    int cancelled = 0;
    for (int i = 0; i < w->nslots; i++) start_call(&w->slots[i]);
    while (w->inflight > 0) {
        gpr_timespec tick = gpr_time_add(gpr_now(GPR_CLOCK_MONOTONIC),
                                         gpr_time_from_millis(200, GPR_TIMESPAN));
        grpc_event ev = grpc_completion_queue_next(w->cq, tick, NULL);
        if (ev.type == GRPC_QUEUE_TIMEOUT && !cancelled &&
            atomic_load(&g_phase) == PH_STOP && now_sec() > atomic_load(&g_stop_at) + DRAIN_CANCEL_S) {
            /* a server that stopped answering: do not hang the report */
            for (int i = 0; i < w->nslots; i++)
                if (w->slots[i].call) grpc_call_cancel(w->slots[i].call, NULL);
            cancelled = 1;
        }
        if (ev.type != GRPC_OP_COMPLETE) continue;
        slot *s = ev.tag;
        finish_call(s, ev.success);
        start_call(s);
    }
    return NULL;
}

/* Connects every channel (up to 5 s) so that the run does not start on a dead address. */
static int connect_all(worker *ws) {
    grpc_completion_queue *cq = grpc_completion_queue_create_for_next(NULL);
    gpr_timespec until = gpr_time_add(gpr_now(GPR_CLOCK_MONOTONIC),
                                      gpr_time_from_millis(5000, GPR_TIMESPAN));
    int ok = 1;
    for (int t = 0; t < g_threads && ok; t++) {
        for (int j = 0; j < ws[t].nch && ok; j++) {
            grpc_channel *ch = ws[t].ch[j];
            grpc_connectivity_state st;
            while ((st = grpc_channel_check_connectivity_state(ch, 1)) != GRPC_CHANNEL_READY) {
                grpc_channel_watch_connectivity_state(ch, st, until, cq, NULL);
                grpc_event ev = grpc_completion_queue_next(cq, gpr_inf_future(GPR_CLOCK_MONOTONIC), NULL);
                if (!ev.success) { /* deadline passed */
                    ok = 0;
                    break;
                }
            }
        }
    }
    grpc_completion_queue_shutdown(cq);
    while (grpc_completion_queue_next(cq, gpr_inf_future(GPR_CLOCK_MONOTONIC), NULL).type !=
           GRPC_QUEUE_SHUTDOWN) {
    }
    grpc_completion_queue_destroy(cq);
    return ok;
}

/* CPU time (s) used so far by all live threads of process pid, -1 if unreadable. */
static double proc_cpu(long pid) {
    char path[64];
    snprintf(path, sizeof path, "/proc/%ld/task", pid);
    DIR *d = opendir(path);
    if (!d) return -1;
    double ns = 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        if (e->d_name[0] == '.') continue;
        char f[320];
        snprintf(f, sizeof f, "/proc/%ld/task/%s/schedstat", pid, e->d_name);
        FILE *fp = fopen(f, "r");
        if (!fp) continue;
        unsigned long long run;
        if (fscanf(fp, "%llu", &run) == 1) ns += (double)run;
        fclose(fp);
    }
    closedir(d);
    return ns / 1e9;
}

/* Whole-machine CPU seconds from /proc/stat: task time (user+nice+system), irq +
 * softirq (loopback TCP receive work mostly), and steal. */
static void box_cpu(double *busy, double *irq, double *steal) {
    unsigned long long v[8] = {0};
    *busy = *irq = *steal = 0;
    FILE *f = fopen("/proc/stat", "r");
    if (!f) return;
    if (fscanf(f, "cpu %llu %llu %llu %llu %llu %llu %llu %llu", &v[0], &v[1], &v[2], &v[3],
               &v[4], &v[5], &v[6], &v[7]) == 8) {
        double hz = (double)sysconf(_SC_CLK_TCK);
        *busy = (double)(v[0] + v[1] + v[2]) / hz;
        *irq = (double)(v[5] + v[6]) / hz;
        *steal = (double)v[7] / hz;
    }
    fclose(f);
}

/* ---- command line ------------------------------------------------------------------ */

static long parse_long(const char *flag, const char *s, long lo, long hi) {
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || end == s || *end || v < lo || v > hi) {
        fprintf(stderr, "wd_load: %s wants an integer in [%ld, %ld], got '%s'\n", flag, lo, hi, s);
        exit(2);
    }
    return v;
}

static double parse_secs(const char *flag, const char *s) {
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (errno || end == s || *end || v < 0 || v > 86400) {
        fprintf(stderr, "wd_load: %s wants seconds in [0, 86400], got '%s'\n", flag, s);
        exit(2);
    }
    return v;
}

static void usage(void) {
    fprintf(stderr,
            "usage: wd_load [-a addr] [-t threads] [-c channels] [-n inflight] [-d secs]\n"
            "               [-w warmup_secs] [-N calls] [-m authorize|authenticate] [-P v2|v3]\n"
            "               [-k pool] [-T deadline_ms] [-i every] [-q] [-S server_pid]\n"
            "               [-B body_file] [-U] [-J secret] [-u user_prefix] [-z zipf_exponent]\n"
            "defaults: -a 127.0.0.1:9100 -t 1 -c 1 -n 64 -d 10 -w 2 -m authorize -P v2 -k 1000\n"
            "          -u user, round-robin over the pool (-z: Zipf), authenticate as demo/demo\n"
            "          (-U: as PREFIX-NNNN with password pw-NNNN; -J SECRET: an HS256 JWT instead)\n");
    exit(2);
}

static void parse_args(int argc, char **argv) {
    int opt;
    while ((opt = getopt(argc, argv, "a:t:c:n:d:w:N:m:P:k:T:i:qS:B:Uu:z:J:h")) != -1) {
        switch (opt) {
        case 'a': g_addr = optarg; break;
        case 't': g_threads = (int)parse_long("-t", optarg, 1, 64); break;
        case 'c': g_channels = (int)parse_long("-c", optarg, 1, 4096); break;
        case 'n': g_inflight = (int)parse_long("-n", optarg, 1, 1000000); break;
        case 'd': g_dur = parse_secs("-d", optarg); break;
        case 'w': g_warm = parse_secs("-w", optarg); break;
        case 'N': g_limit = parse_long("-N", optarg, 1, LONG_MAX); break;
        case 'k': g_pool = (int)parse_long("-k", optarg, 1, 1000000); break;
        case 'T': g_deadline_ms = (int)parse_long("-T", optarg, 0, 3600000); break;
        case 'i': g_progress = parse_long("-i", optarg, 1, LONG_MAX); break;
        case 'q': g_quiet = 1; break;
        case 'B': g_body_file = optarg; break;
        case 'S': g_srv_pid = parse_long("-S", optarg, 1, INT_MAX); break;
        case 'U': g_per_user = 1; break;
        case 'J': g_jwt_secret = optarg; break;
        case 'u':
            if (!*optarg || strlen(optarg) > 64) die("-u wants a prefix of 1 to 64 bytes");
            g_user_prefix = optarg;
            break;
        case 'z': {
            char *end;
            errno = 0;
            g_zipf_s = strtod(optarg, &end);
            if (errno || end == optarg || *end || !(g_zipf_s >= 0 && g_zipf_s <= 10))
                die("-z wants an exponent in [0, 10]");
            g_zipf_on = 1;
            break;
        }
        case 'm':
            if (!strcmp(optarg, "authorize")) g_method = M_AUTHORIZE;
            else if (!strcmp(optarg, "authenticate")) g_method = M_AUTHENTICATE;
            else die("-m wants authorize or authenticate");
            break;
        case 'P':
            if (strcmp(optarg, "v2") && strcmp(optarg, "v3")) die("-P wants v2 or v3");
            g_version = optarg;
            break;
        default: usage();
        }
    }
    if (optind != argc) usage();
    if (g_channels < g_threads) g_channels = g_threads;
    if (g_inflight < g_threads) g_inflight = g_threads;
    if (g_dur <= 0 && !g_limit) die("-d must be > 0");
    snprintf(g_path, sizeof g_path, "/emqx.exhook.%s.HookProvider/%s", g_version,
             g_method == M_AUTHORIZE ? "OnClientAuthorize" : "OnClientAuthenticate");
}

/* ---- main -------------------------------------------------------------------------- */

/* Closes the channels and queues, frees everything; ends gRPC. */
static void teardown(worker *ws) {
    for (int t = 0; t < g_threads; t++) {
        worker *w = &ws[t];
        for (int j = 0; j < w->nch; j++) grpc_channel_destroy(w->ch[j]);
        grpc_completion_queue_shutdown(w->cq);
        while (grpc_completion_queue_next(w->cq, gpr_inf_future(GPR_CLOCK_MONOTONIC), NULL).type !=
               GRPC_QUEUE_SHUTDOWN) {
        }
        grpc_completion_queue_destroy(w->cq);
        free(w->ch);
        free(w->reg);
        free(w->slots);
        free(w->hist);
    }
    free(ws);
    grpc_shutdown();
    for (int i = 0; i < g_pool; i++) free(g_req_buf[i]);
    free(g_req_buf);
    free(g_req_len);
    free(g_req_slice);
    free(g_zipf_cdf);
}

static long sum_done(worker *ws) {
    long n = 0;
    for (int t = 0; t < g_threads; t++) n += atomic_load_explicit(&ws[t].done, memory_order_relaxed);
    return n;
}

/* Sleeps until `until` (monotonic seconds) or, in -N mode, until every call is done,
 * printing progress lines on the way. */
static void wait_phase(worker *ws, double until, long *next_report, double t0) {
    for (;;) {
        long done = sum_done(ws);
        while (g_progress && done >= *next_report) {
            printf("progress calls=%ld elapsed=%.2fs\n", *next_report, now_sec() - t0);
            fflush(stdout);
            *next_report += g_progress;
        }
        if (g_limit ? done >= g_limit : now_sec() >= until) return;
        struct timespec nap = {0, 5 * 1000 * 1000};
        nanosleep(&nap, NULL);
    }
}

int main(int argc, char **argv) {
    parse_args(argc, argv);
    build_pool();
    if (g_body_file) return write_body(g_body_file);

    grpc_init();
    grpc_arg a[] = {{GRPC_ARG_INTEGER, GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, {.integer = 1}}};
    grpc_channel_args chargs = {1, a};
    grpc_channel_credentials *creds = grpc_insecure_credentials_create();

    worker *ws = calloc((size_t)g_threads, sizeof *ws);
    if (!ws) die("out of memory");
    for (int t = 0; t < g_threads; t++) {
        worker *w = &ws[t];
        w->idx = t;
        w->cq = grpc_completion_queue_create_for_next(NULL);
        w->nch = g_channels / g_threads + (t < g_channels % g_threads);
        w->nslots = g_inflight / g_threads + (t < g_inflight % g_threads);
        w->ch = calloc((size_t)w->nch, sizeof *w->ch);
        w->reg = calloc((size_t)w->nch, sizeof *w->reg);
        w->slots = calloc((size_t)w->nslots, sizeof *w->slots);
        w->hist = calloc(NBUCKETS, sizeof *w->hist);
        if (!w->ch || !w->reg || !w->slots || !w->hist) die("out of memory");
        w->next_req = (unsigned)(t * g_pool / g_threads);
        w->rng = rng_seed(t);
        for (int j = 0; j < w->nch; j++) {
            w->ch[j] = grpc_channel_create(g_addr, creds, &chargs);
            w->reg[j] = grpc_channel_register_call(w->ch[j], g_path, NULL, NULL);
        }
        for (int i = 0; i < w->nslots; i++) {
            w->slots[i].w = w;
            w->slots[i].ch = i % w->nch;
        }
    }
    grpc_channel_credentials_release(creds);
    if (!connect_all(ws)) {
        fprintf(stderr, "wd_load: cannot connect to %s within 5 s\n", g_addr);
        teardown(ws);
        return 2;
    }
    if (!g_quiet)
        fprintf(stderr, "wd_load: %s%s threads=%d channels=%d inflight=%d pool=%d\n", g_addr,
                g_path, g_threads, g_channels, g_inflight, g_pool);

    /* CPU accounting of the measurement window: this process (rusage), the -S server
     * (schedstat), the whole machine (/proc/stat). -N: the window is the whole run. */
    struct rusage ru0, ru1;
    double srv0 = 0, srv1 = 0, busy0, busy1, irq0, irq1, steal0, steal1, tb0, tb1;
    long next_report = g_progress;
    getrusage(RUSAGE_SELF, &ru0);
    if (g_srv_pid) srv0 = proc_cpu(g_srv_pid);
    box_cpu(&busy0, &irq0, &steal0);
    double start = tb0 = now_sec();
    atomic_store(&g_phase, g_limit ? PH_MEASURE : PH_WARM);
    for (int t = 0; t < g_threads; t++) pthread_create(&ws[t].th, NULL, worker_main, &ws[t]);

    double t0 = start, t1;
    if (g_limit) {
        wait_phase(ws, 0, &next_report, t0);
        t1 = 0; /* from the last completion, below */
    } else {
        if (g_warm > 0) {
            struct timespec nap = {(time_t)g_warm, (long)((g_warm - (double)(time_t)g_warm) * 1e9)};
            nanosleep(&nap, NULL);
        }
        if (g_srv_pid) srv0 = proc_cpu(g_srv_pid);
        getrusage(RUSAGE_SELF, &ru0);
        box_cpu(&busy0, &irq0, &steal0);
        t0 = tb0 = now_sec();
        atomic_store(&g_phase, PH_MEASURE);
        wait_phase(ws, t0 + g_dur, &next_report, t0);
        t1 = now_sec();
    }
    if (g_srv_pid) srv1 = proc_cpu(g_srv_pid);
    getrusage(RUSAGE_SELF, &ru1);
    box_cpu(&busy1, &irq1, &steal1);
    tb1 = now_sec();
    atomic_store(&g_stop_at, now_sec());
    atomic_store(&g_phase, PH_STOP);
    for (int t = 0; t < g_threads; t++) pthread_join(ws[t].th, NULL);

    /* merge */
    long ok = 0, err = 0, mismatch = 0, deny = 0;
    int reported = 0;
    uint64_t max_us = 0;
    static uint64_t hist[NBUCKETS];
    for (int t = 0; t < g_threads; t++) {
        worker *w = &ws[t];
        ok += w->ok;
        err += w->err;
        mismatch += w->mismatch;
        deny += w->deny;
        if (w->max_us > max_us) max_us = w->max_us;
        if (g_limit && ts_sec(&w->last) > t1) t1 = ts_sec(&w->last);
        for (int b = 0; b < NBUCKETS; b++) hist[b] += w->hist[b];
        if (w->err && !reported++)
            fprintf(stderr, "wd_load: first error: status %d '%s'\n", (int)w->first_status,
                    w->first_err);
    }
    double elapsed = t1 - t0;
    if (elapsed <= 0) elapsed = 1e-9;
    long replied = ok; /* the latency population */
    const double pcts[] = {0.50, 0.90, 0.99, 0.999};
    double pms[4];
    for (int p = 0; p < 4; p++) {
        uint64_t rank = (uint64_t)(pcts[p] * (double)replied + 0.999999), acc = 0;
        if (rank < 1) rank = 1;
        int b = 0;
        for (; b < NBUCKETS - 1; b++) {
            acc += hist[b];
            if (acc >= rank) break;
        }
        pms[p] = replied ? (double)bucket_top(b) / 1000.0 : 0;
    }
    double cpu = (double)(ru1.ru_utime.tv_sec - ru0.ru_utime.tv_sec) +
                 (double)(ru1.ru_stime.tv_sec - ru0.ru_stime.tv_sec) +
                 (double)(ru1.ru_utime.tv_usec - ru0.ru_utime.tv_usec) / 1e6 +
                 (double)(ru1.ru_stime.tv_usec - ru0.ru_stime.tv_usec) / 1e6;

    long calls = ok + err + mismatch;
    /* CPU (in cores) that neither this client nor the -S server used during the window:
     * other processes and kernel threads. Approximate (tick-sampled /proc/stat against
     * exact schedstat; softirq work is charged to whichever task it interrupted), about
     * +-0.2 cores. irq_cores (part of it) and the hypervisor's steal are shown apart. */
    double wall = tb1 > tb0 ? tb1 - tb0 : 1e-9;
    double other = g_srv_pid ? (busy1 - busy0 + irq1 - irq0 - cpu - (srv1 - srv0)) / wall : -1;
    double steal = (steal1 - steal0) / wall, irq = (irq1 - irq0) / wall;
    double srv_us = (g_srv_pid && srv0 >= 0 && srv1 >= 0 && calls) ? (srv1 - srv0) * 1e6 / (double)calls : -1;
    if (g_quiet)
        printf("rps=%.0f ok=%ld err=%ld mismatch=%ld deny=%ld elapsed=%.3f p50_us=%.0f "
               "p90_us=%.0f p99_us=%.0f p999_us=%.0f max_us=%llu cli_us_per_call=%.2f "
               "srv_us_per_call=%.2f other_cores=%.2f irq_cores=%.2f steal_cores=%.2f\n",
               (double)ok / elapsed, ok, err, mismatch, deny, elapsed, pms[0] * 1000,
               pms[1] * 1000, pms[2] * 1000, pms[3] * 1000, (unsigned long long)max_us,
               calls ? cpu * 1e6 / (double)calls : -1, srv_us, other, irq, steal);
    else
        printf("calls/s=%.0f ok=%ld err=%ld mismatch=%ld p50=%.3fms p90=%.3fms p99=%.3fms "
               "p99.9=%.3fms max=%.3fms\n",
               (double)ok / elapsed, ok, err, mismatch, pms[0], pms[1], pms[2], pms[3],
               (double)max_us / 1000.0);
    if (srv_us >= 0 && !g_quiet)
        fprintf(stderr,
                "wd_load: server pid %ld: %.2f us CPU per call; client %.2f us per call; "
                "other tasks %.2f cores, irq+softirq %.2f cores, steal %.2f cores\n",
                g_srv_pid, srv_us, calls ? cpu * 1e6 / (double)calls : -1, other, irq, steal);
    if (deny && !g_quiet)
        fprintf(stderr, "wd_load: %ld of the ok replies had bool_result=false\n", deny);

    teardown(ws);
    return (err || mismatch || ok == 0) ? 1 : 0;
}
