/* SPDX-License-Identifier: Apache-2.0 */
/*
 * hook.c: see hook.h.
 *
 * Decoding uses a per-worker bump arena as the protobuf-c allocator: a request's many
 * small allocations (one per string and sub-message) cost a pointer bump and are all
 * released by one reset, and the arena caps how much memory one request may expand into
 * (protobuf-c turns a failed allocation into a failed unpack, which we answer with
 * INVALID_ARGUMENT).
 *
 * Before a request reaches a handler, a small wire walker checks every string field
 * against the message descriptors: proto3 requires UTF-8, EMQX only sends UTF-8, and MQTT
 * forbids U+0000. protobuf-c itself accepts any bytes and hands back C strings, so a
 * username "alice\0x" would otherwise silently become "alice". Such requests are refused.
 */
#include "server/hook.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/log.h"
#include "core/metrics.h"
#include "core/utf8.h"
#include "server/declog.h"
#include "exhook.pb-c.h"
#include "health.pb-c.h"

#define ARENA_CHUNK (64 * 1024)
#define ARENA_LIMIT (64u << 20) /* per request, after decoding at most max_message_size */
#define OUT_KEEP (1u << 20)     /* reply buffers above this are released after use */
#define MAX_NESTING 32

const char *const wd_hook_services[WD_HOOK_NSERVICES] = {
    "emqx.exhook.v2.HookProvider",
    "emqx.exhook.v3.HookProvider",
};

/* ---- arena ---- */

struct big {
    struct big *next;
    max_align_t data[];
};

struct arena {
    unsigned char *chunk;
    size_t used;
    size_t total;
    struct big *bigs;
};

static void *arena_alloc(void *data, size_t size)
{
    struct arena *a = data;
    size = (size + 15) & ~(size_t)15;
    if (a->total + size > ARENA_LIMIT)
        return NULL;
    a->total += size;
    if (size <= ARENA_CHUNK - a->used) {
        void *p = a->chunk + a->used;
        a->used += size;
        return p;
    }
    struct big *b = wd_malloc(sizeof *b + size);
    b->next = a->bigs;
    a->bigs = b;
    return b->data;
}

static void arena_free(void *data, void *p)
{
    (void)data;
    (void)p; /* released all at once by arena_reset */
}

static void arena_reset(struct arena *a)
{
    while (a->bigs) {
        struct big *n = a->bigs->next;
        free(a->bigs);
        a->bigs = n;
    }
    a->used = 0;
    a->total = 0;
}

/* ---- worker ---- */

typedef enum wd_hook_status (*handler_fn)(struct wd_hook_worker *w, int service,
                                          const ProtobufCMessage *req);

struct wd_hook_worker {
    struct wd_hook_env env;
    struct wd_engine_local *local;
    struct wd_waiter *waiter; /* the current call's, or NULL (it may not wait) */
    struct arena arena;
    ProtobufCAllocator alloc;
    uint8_t *out;
    size_t outcap, outlen;
};

static const ProtobufCServiceDescriptor *svc(void)
{
    return &emqx__exhook__v3__hook_provider__descriptor;
}

size_t wd_hook_nmethods(void)
{
    return svc()->n_methods;
}

const char *wd_hook_method_name(size_t method)
{
    return method < svc()->n_methods ? svc()->methods[method].name : NULL;
}

bool wd_hook_method_is_hot(size_t method)
{
    const char *n = wd_hook_method_name(method);
    return n && (strcmp(n, "OnClientAuthenticate") == 0 || strcmp(n, "OnClientAuthorize") == 0 ||
                 strcmp(n, "OnMessagePublish") == 0);
}

struct wd_hook_worker *wd_hook_worker_new(const struct wd_hook_env *env)
{
    return wd_hook_worker_new_on(env, NULL);
}

struct wd_hook_worker *wd_hook_worker_new_on(const struct wd_hook_env *env,
                                             const struct wd_evops *ev)
{
    struct wd_hook_worker *w = wd_calloc(1, sizeof *w);
    w->env = *env;
    w->local = wd_engine_local_new_on(env->engine, ev);
    w->arena.chunk = wd_malloc(ARENA_CHUNK);
    w->alloc.alloc = arena_alloc;
    w->alloc.free = arena_free;
    w->alloc.allocator_data = &w->arena;
    return w;
}

unsigned wd_hook_worker_waiting(const struct wd_hook_worker *w)
{
    return wd_engine_local_waiting(w->local);
}

void wd_hook_worker_free(struct wd_hook_worker *w)
{
    if (!w)
        return;
    arena_reset(&w->arena);
    wd_engine_local_free(w->local);
    free(w->arena.chunk);
    free(w->out);
    free(w);
}

/* Serializes msg into the worker's reply buffer. */
static enum wd_hook_status reply(struct wd_hook_worker *w, const ProtobufCMessage *msg)
{
    size_t n = protobuf_c_message_get_packed_size(msg);
    if (n > w->outcap) {
        free(w->out);
        w->outcap = n < 256 ? 256 : n;
        w->out = wd_malloc(w->outcap);
    }
    w->outlen = protobuf_c_message_pack(msg, w->out);
    return WD_HOOK_OK;
}

/* ---- input validation: every string field is UTF-8 without NUL ---- */

static bool read_varint(const uint8_t *p, size_t n, size_t *i, uint64_t *v)
{
    uint64_t r = 0;
    for (unsigned shift = 0; shift < 64; shift += 7) {
        if (*i >= n)
            return false;
        uint8_t b = p[(*i)++];
        r |= (uint64_t)(b & 0x7f) << shift;
        if (!(b & 0x80)) {
            *v = r;
            return true;
        }
    }
    return false;
}

static bool walk(const ProtobufCMessageDescriptor *d, const uint8_t *p, size_t n, int depth)
{
    if (depth > MAX_NESTING)
        return false;
    size_t i = 0;
    while (i < n) {
        uint64_t key, v;
        if (!read_varint(p, n, &i, &key))
            return false;
        switch (key & 7) {
        case 0:
            if (!read_varint(p, n, &i, &v))
                return false;
            break;
        case 1:
            if (n - i < 8)
                return false;
            i += 8;
            break;
        case 5:
            if (n - i < 4)
                return false;
            i += 4;
            break;
        case 2: {
            if (!read_varint(p, n, &i, &v) || v > n - i)
                return false;
            uint64_t tag = key >> 3;
            const ProtobufCFieldDescriptor *f =
                tag <= UINT32_MAX ? protobuf_c_message_descriptor_get_field(d, (unsigned)tag)
                                  : NULL;
            if (f && f->type == PROTOBUF_C_TYPE_STRING && !wd_utf8_valid_nonul(p + i, (size_t)v))
                return false;
            if (f && f->type == PROTOBUF_C_TYPE_MESSAGE &&
                !walk(f->descriptor, p + i, (size_t)v, depth + 1))
                return false;
            i += (size_t)v;
            break;
        }
        default:
            return false; /* groups: not used by this protocol */
        }
    }
    return true;
}

/* ---- request conversion ---- */

static const Emqx__Exhook__V3__ClientInfo empty_clientinfo = EMQX__EXHOOK__V3__CLIENT_INFO__INIT;

static void client_from(struct wd_client *c, const Emqx__Exhook__V3__ClientInfo *ci)
{
    if (!ci)
        ci = &empty_clientinfo;
    c->node = ci->node;
    c->clientid = ci->clientid;
    c->username = ci->username;
    c->peerhost = ci->peerhost;
    c->peerport = ci->peerport;
    c->sockport = ci->sockport;
    c->protocol = ci->protocol;
    c->mountpoint = ci->mountpoint;
    c->cn = ci->cn;
    c->dn = ci->dn;
    c->anonymous = ci->anonymous;
    c->is_superuser = ci->is_superuser;
    c->claim = NULL; /* the engine binds a session's claims */
    c->claim_ctx = NULL;
}

static enum wd_hook_status valued_reply(struct wd_hook_worker *w, enum wd_decision d,
                                        bool request_result)
{
    Emqx__Exhook__V3__ValuedResponse r = EMQX__EXHOOK__V3__VALUED_RESPONSE__INIT;
    switch (d) {
    case WD_DECISION_ALLOW:
    case WD_DECISION_DENY:
        r.type = EMQX__EXHOOK__V3__VALUED_RESPONSE__RESPONSED_TYPE__STOP_AND_RETURN;
        r.value_case = EMQX__EXHOOK__V3__VALUED_RESPONSE__VALUE_BOOL_RESULT;
        r.bool_result = d == WD_DECISION_ALLOW;
        break;
    case WD_DECISION_NOMATCH:
        if (w->env.cfg->nomatch_reply == WD_NOMATCH_IGNORE) {
            r.type = EMQX__EXHOOK__V3__VALUED_RESPONSE__RESPONSED_TYPE__IGNORE;
        } else {
            r.type = EMQX__EXHOOK__V3__VALUED_RESPONSE__RESPONSED_TYPE__CONTINUE;
            r.value_case = EMQX__EXHOOK__V3__VALUED_RESPONSE__VALUE_BOOL_RESULT;
            r.bool_result = request_result;
        }
        break;
    }
    return reply(w, &r.base);
}

static enum wd_hook_status empty_reply(struct wd_hook_worker *w)
{
    Emqx__Exhook__V3__EmptySuccess r = EMQX__EXHOOK__V3__EMPTY_SUCCESS__INIT;
    return reply(w, &r.base);
}

/* ---- handlers ---- */

static enum wd_hook_status h_provider_loaded(struct wd_hook_worker *w, int service,
                                             const ProtobufCMessage *m)
{
    const Emqx__Exhook__V3__ProviderLoadedRequest *req = (const void *)m;
    const struct wd_config *cfg = w->env.cfg;
    char node[160], ver[96];
    const Emqx__Exhook__V3__RequestMeta *meta = req->meta;
    const Emqx__Exhook__V3__BrokerInfo *b = req->broker;
    const char *nodes = meta ? meta->node : "";
    const char *vers = b ? b->version : "";
    wd_log_info("hook", "provider loaded by EMQX node %s version %s (%s), registering %zu hooks",
                wd_log_quote(node, sizeof node, nodes, strlen(nodes)),
                wd_log_quote(ver, sizeof ver, vers, strlen(vers)), wd_hook_services[service],
                cfg->nhooks);
    wd_metrics_inc(WD_M_PROVIDER_LOADED);

    Emqx__Exhook__V3__HookSpec *specs = wd_calloc(cfg->nhooks, sizeof *specs);
    Emqx__Exhook__V3__HookSpec **ptrs = wd_calloc(cfg->nhooks, sizeof *ptrs);
    for (size_t i = 0; i < cfg->nhooks; i++) {
        Emqx__Exhook__V3__HookSpec init = EMQX__EXHOOK__V3__HOOK_SPEC__INIT;
        specs[i] = init;
        specs[i].name = cfg->hooks[i];
        /* EMQX keeps topics only for message.* hooks */
        if (strncmp(cfg->hooks[i], "message.", 8) == 0) {
            specs[i].n_topics = cfg->nmessage_topics;
            specs[i].topics = cfg->message_topics;
        }
        ptrs[i] = &specs[i];
    }
    Emqx__Exhook__V3__LoadedResponse r = EMQX__EXHOOK__V3__LOADED_RESPONSE__INIT;
    r.n_hooks = cfg->nhooks;
    r.hooks = ptrs;
    enum wd_hook_status st = reply(w, &r.base);
    free(ptrs);
    free(specs);
    return st;
}

static enum wd_hook_status h_provider_unloaded(struct wd_hook_worker *w, int service,
                                               const ProtobufCMessage *m)
{
    const Emqx__Exhook__V3__ProviderUnloadedRequest *req = (const void *)m;
    char node[160];
    const char *nodes = req->meta ? req->meta->node : "";
    wd_log_info("hook", "provider unloaded by EMQX node %s (%s)",
                wd_log_quote(node, sizeof node, nodes, strlen(nodes)), wd_hook_services[service]);
    return empty_reply(w);
}

static void log_decision(const struct wd_hook_worker *w, const char *what,
                         const struct wd_client *c, const char *extra, const struct wd_verdict *v)
{
    if (!wd_log_enabled(WD_LOG_DEBUG))
        return;
    char cid[160], user[160];
    char peer[80];
    /* with `jwt_from username` the username is a bearer token: never log it */
    const struct wd_config *cfg = w->env.cfg;
    bool token = cfg->jwt_from == WD_CONFIG_TOKEN_USERNAME && c->username[0];
    wd_log_debug("hook", "%s clientid=%s username=%s peerhost=%s%s -> %s (%s, policy line %u)",
                 what, wd_log_quote(cid, sizeof cid, c->clientid, strlen(c->clientid)),
                 token ? "<token>"
                       : wd_log_quote(user, sizeof user, c->username, strlen(c->username)),
                 wd_log_quote(peer, sizeof peer, c->peerhost, strlen(c->peerhost)), extra,
                 wd_decision_str(v->decision), v->reason, v->line);
}

/* The decision log (server/declog.c formats and writes; a no-op unless configured). */
static void emit_decision(const struct wd_hook_worker *w, const char *hook,
                          const struct wd_client *c, const struct wd_authz_req *az,
                          const struct wd_verdict *v)
{
    if (!wd_declog_wants(v->decision))
        return;
    const struct wd_config *cfg = w->env.cfg;
    struct wd_declog_event ev = {
        .hook = hook,
        .client = c,
        .username_is_token = cfg->jwt_from == WD_CONFIG_TOKEN_USERNAME,
        .action = az ? (az->action == WD_ACTION_PUBLISH ? "publish" : "subscribe") : NULL,
        .topic = az ? az->topic : NULL,
        .topic_len = az ? az->topic_len : 0,
        .verdict = v,
    };
    wd_declog_emit(&ev);
}

static enum wd_hook_status h_authenticate(struct wd_hook_worker *w, int service,
                                          const ProtobufCMessage *m)
{
    const Emqx__Exhook__V3__ClientAuthenticateRequest *req = (const void *)m;
    struct wd_authn_req a;
    client_from(&a.client, req->clientinfo);
    a.password = req->clientinfo ? req->clientinfo->password : "";
    a.password_len = strlen(a.password);
    a.emqx_result = req->result;
    struct wd_verdict v;
    int rc = wd_engine_authenticate_w(w->local, &a, w->waiter, &v);
    if (rc == WD_EAGAIN)
        return WD_HOOK_PENDING;
    if (rc != WD_OK)
        wd_log_warn("hook", "authenticate: engine error: %s (denied)", wd_rc_str(rc));
    log_decision(w, "authenticate", &a.client, "", &v);
    emit_decision(w, "client.authenticate", &a.client, NULL, &v);
    return valued_reply(w, v.decision, req->result);
}

static enum wd_hook_status h_authorize(struct wd_hook_worker *w, int service,
                                       const ProtobufCMessage *m)
{
    const Emqx__Exhook__V3__ClientAuthorizeRequest *req = (const void *)m;
    struct wd_authz_req a;
    client_from(&a.client, req->clientinfo);
    switch (req->type) {
    case EMQX__EXHOOK__V3__CLIENT_AUTHORIZE_REQUEST__AUTHORIZE_REQ_TYPE__PUBLISH:
        a.action = WD_ACTION_PUBLISH;
        break;
    case EMQX__EXHOOK__V3__CLIENT_AUTHORIZE_REQUEST__AUTHORIZE_REQ_TYPE__SUBSCRIBE:
        a.action = WD_ACTION_SUBSCRIBE;
        break;
    default:
        return WD_HOOK_INVALID_ARGUMENT;
    }
    a.topic = req->topic;
    a.topic_len = strlen(req->topic);
    a.qos = -1;
    a.retain = -1;
    a.emqx_result = req->result;
    struct wd_verdict v;
    int rc = wd_engine_authorize_w(w->local, &a, w->waiter, &v);
    if (rc == WD_EAGAIN)
        return WD_HOOK_PENDING;
    if (rc != WD_OK)
        wd_log_warn("hook", "authorize: engine error: %s (denied)", wd_rc_str(rc));
    if (wd_log_enabled(WD_LOG_DEBUG)) {
        char extra[400], topic[300];
        snprintf(extra, sizeof extra, " %s topic=%s",
                 a.action == WD_ACTION_PUBLISH ? "publish" : "subscribe",
                 wd_log_quote(topic, sizeof topic, a.topic, a.topic_len));
        log_decision(w, "authorize", &a.client, extra, &v);
    }
    emit_decision(w, "client.authorize", &a.client, &a, &v);
    return valued_reply(w, v.decision, req->result);
}

static enum wd_hook_status h_message_publish(struct wd_hook_worker *w, int service,
                                             const ProtobufCMessage *m)
{
    const Emqx__Exhook__V3__MessagePublishRequest *req = (const void *)m;
    Emqx__Exhook__V3__ValuedResponse r = EMQX__EXHOOK__V3__VALUED_RESPONSE__INIT;
    if (req->message) {
        /* EMQX copies qos, topic and payload from the returned message: echo it whole,
         * unchanged, or a QoS 2 message would become QoS 0 (exhook-client-behavior §5.5) */
        r.type = EMQX__EXHOOK__V3__VALUED_RESPONSE__RESPONSED_TYPE__CONTINUE;
        r.value_case = EMQX__EXHOOK__V3__VALUED_RESPONSE__VALUE_MESSAGE;
        r.message = req->message;
    } else {
        r.type = EMQX__EXHOOK__V3__VALUED_RESPONSE__RESPONSED_TYPE__IGNORE;
    }
    return reply(w, &r.base);
}

/* client.disconnected: the client's session (what authenticate learned) goes with it. */
static enum wd_hook_status h_disconnected(struct wd_hook_worker *w, int service,
                                          const ProtobufCMessage *m)
{
    (void)service;
    const Emqx__Exhook__V3__ClientDisconnectedRequest *req = (const void *)m;
    struct wd_client c = {0};
    client_from(&c, req->clientinfo);
    wd_engine_client_disconnected(w->local, &c);
    return empty_reply(w);
}

/* Notification hooks: EMQX ignores the result, but it must be a real message. */
static enum wd_hook_status h_notify(struct wd_hook_worker *w, int service,
                                    const ProtobufCMessage *m)
{
    return empty_reply(w);
}

static handler_fn handler_for(const char *name)
{
    if (strcmp(name, "OnProviderLoaded") == 0)
        return h_provider_loaded;
    if (strcmp(name, "OnProviderUnloaded") == 0)
        return h_provider_unloaded;
    if (strcmp(name, "OnClientAuthenticate") == 0)
        return h_authenticate;
    if (strcmp(name, "OnClientAuthorize") == 0)
        return h_authorize;
    if (strcmp(name, "OnMessagePublish") == 0)
        return h_message_publish;
    if (strcmp(name, "OnClientDisconnected") == 0)
        return h_disconnected;
    return h_notify;
}

/* method index -> handler, resolved once (the table is constant after the first call) */
static handler_fn handlers[64];
static void resolve_handlers(void)
{
    for (size_t i = 0; i < svc()->n_methods && i < WD_ARRAY_LEN(handlers); i++)
        handlers[i] = handler_for(svc()->methods[i].name);
}

enum wd_hook_status wd_hook_handle(struct wd_hook_worker *w, int service, size_t method,
                                   const uint8_t *in, size_t inlen, const uint8_t **out,
                                   size_t *outlen, const char **detail)
{
    return wd_hook_handle_w(w, service, method, in, inlen, NULL, out, outlen, detail);
}

enum wd_hook_status wd_hook_handle_w(struct wd_hook_worker *w, int service, size_t method,
                                     const uint8_t *in, size_t inlen, struct wd_waiter *waiter,
                                     const uint8_t **out, size_t *outlen, const char **detail)
{
    static pthread_once_t once = PTHREAD_ONCE_INIT;
    pthread_once(&once, resolve_handlers);
    *out = NULL;
    *outlen = 0;
    *detail = NULL;
    if (w->outcap > OUT_KEEP) {
        /* a large message.publish echo: do not keep its buffer around */
        free(w->out);
        w->out = NULL;
        w->outcap = 0;
    }
    if (method >= svc()->n_methods || service < 0 || service >= WD_HOOK_NSERVICES) {
        *detail = "unknown method";
        return WD_HOOK_NOT_FOUND;
    }
    const ProtobufCMessageDescriptor *d = svc()->methods[method].input;
    if (!walk(d, in, inlen, 0)) {
        *detail = "malformed request: bad wire format, or a string that is not UTF-8 or holds NUL";
        wd_metrics_inc(WD_M_RPC_BAD_REQUEST);
        return WD_HOOK_INVALID_ARGUMENT;
    }
    ProtobufCMessage *req = protobuf_c_message_unpack(d, &w->alloc, inlen, in);
    enum wd_hook_status st;
    if (!req) {
        *detail = "cannot decode request";
        wd_metrics_inc(WD_M_RPC_BAD_REQUEST);
        st = WD_HOOK_INVALID_ARGUMENT;
    } else {
        w->waiter = waiter;
        st = handlers[method](w, service, req);
        w->waiter = NULL;
        if (st == WD_HOOK_INVALID_ARGUMENT) {
            *detail = "invalid request field value";
            wd_metrics_inc(WD_M_RPC_BAD_REQUEST);
        }
    }
    /* nothing decoded outlives the call: the reply is already serialized */
    arena_reset(&w->arena);
    if (st == WD_HOOK_OK) {
        *out = w->out;
        *outlen = w->outlen;
    }
    return st;
}

enum wd_hook_status wd_hook_health(struct wd_hook_worker *w, bool serving, const uint8_t *in,
                                   size_t inlen, const uint8_t **out, size_t *outlen,
                                   const char **detail)
{
    *out = NULL;
    *outlen = 0;
    *detail = NULL;
    wd_metrics_inc(WD_M_HEALTH_CHECKS);
    if (!walk(&grpc__health__v1__health_check_request__descriptor, in, inlen, 0)) {
        *detail = "malformed HealthCheckRequest";
        return WD_HOOK_INVALID_ARGUMENT;
    }
    Grpc__Health__V1__HealthCheckRequest *req =
        grpc__health__v1__health_check_request__unpack(&w->alloc, inlen, in);
    if (!req) {
        arena_reset(&w->arena);
        *detail = "cannot decode HealthCheckRequest";
        return WD_HOOK_INVALID_ARGUMENT;
    }
    bool known = req->service[0] == '\0';
    for (int i = 0; i < WD_HOOK_NSERVICES; i++)
        known = known || strcmp(req->service, wd_hook_services[i]) == 0;
    arena_reset(&w->arena);
    if (!known) {
        *detail = "unknown service";
        return WD_HOOK_NOT_FOUND;
    }
    Grpc__Health__V1__HealthCheckResponse r = GRPC__HEALTH__V1__HEALTH_CHECK_RESPONSE__INIT;
    r.status = serving ? GRPC__HEALTH__V1__HEALTH_CHECK_RESPONSE__SERVING_STATUS__SERVING
                       : GRPC__HEALTH__V1__HEALTH_CHECK_RESPONSE__SERVING_STATUS__NOT_SERVING;
    enum wd_hook_status st = reply(w, &r.base);
    *out = w->out;
    *outlen = w->outlen;
    return st;
}
