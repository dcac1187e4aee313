/* SPDX-License-Identifier: Apache-2.0 */
/* Unit tests for src/server/hook.c: request validation, decision -> wire mapping, replies. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "core/config.h"
#include "engine/engine.h"
#include "exhook.pb-c.h"
#include "health.pb-c.h"
#include "core/log.h"
#include "server/hook.h"

struct fx {
    struct wd_config cfg;
    struct wd_engine *engine;
    struct wd_hook_worker *w;
};

/* A worker over configuration text and policy text (written to a temporary file). */
static struct fx *fx_new2(const char *text, const char *policy)
{
    struct fx *f = calloc(1, sizeof *f);
    char *errors = NULL;
    wd_config_defaults(&f->cfg);
    assert_int_equal(wd_config_parse(&f->cfg, "h.conf", text, strlen(text), &errors), WD_OK);
    char path[] = "/tmp/wd_test_hook_XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, policy, strlen(policy)), (ssize_t)strlen(policy));
    close(fd);
    f->cfg.policy = strdup(path);
    f->engine = wd_engine_new(&f->cfg, &errors);
    free(errors);
    unlink(path);
    assert_non_null(f->engine);
    struct wd_hook_env env = {&f->cfg, f->engine};
    f->w = wd_hook_worker_new(&env);
    return f;
}

static struct fx *fx_new(const char *policy)
{
    return fx_new2("", policy);
}

static void fx_free(struct fx *f)
{
    wd_hook_worker_free(f->w);
    wd_engine_free(f->engine);
    wd_config_cleanup(&f->cfg);
    free(f);
}

static size_t method(const char *name)
{
    for (size_t i = 0; i < wd_hook_nmethods(); i++)
        if (strcmp(wd_hook_method_name(i), name) == 0)
            return i;
    fail_msg("no method %s", name);
    return 0;
}

/* Packs msg, calls the handler on the v2 path, returns status; reply bytes in out/outlen. */
static enum wd_hook_status call(struct fx *f, const char *m, const ProtobufCMessage *msg,
                                const uint8_t **out, size_t *outlen)
{
    uint8_t buf[4096];
    size_t n = protobuf_c_message_pack(msg, buf);
    const char *detail;
    return wd_hook_handle(f->w, 0, method(m), buf, n, out, outlen, &detail);
}

static enum wd_hook_status call_raw(struct fx *f, const char *m, const void *bytes, size_t n)
{
    const uint8_t *out;
    size_t outlen;
    const char *detail;
    return wd_hook_handle(f->w, 1, method(m), bytes, n, &out, &outlen, &detail);
}

static enum wd_hook_status authn(struct fx *f, const char *user, const char *pw, bool result,
                                 const uint8_t **out, size_t *outlen)
{
    Emqx__Exhook__V3__ClientInfo ci = EMQX__EXHOOK__V3__CLIENT_INFO__INIT;
    ci.clientid = "c1";
    ci.username = (char *)user;
    ci.password = (char *)pw;
    Emqx__Exhook__V3__ClientAuthenticateRequest r =
        EMQX__EXHOOK__V3__CLIENT_AUTHENTICATE_REQUEST__INIT;
    r.clientinfo = &ci;
    r.result = result;
    return call(f, "OnClientAuthenticate", &r.base, out, outlen);
}

static void twenty_one_methods_in_proto_order(void **state)
{
    assert_int_equal(wd_hook_nmethods(), 21);
    assert_string_equal(wd_hook_method_name(0), "OnProviderLoaded");
    assert_string_equal(wd_hook_method_name(20), "OnMessageAcked");
    assert_true(wd_hook_method_is_hot(method("OnClientAuthorize")));
    assert_false(wd_hook_method_is_hot(method("OnSessionCreated")));
}

static void deny_is_stop_and_return_with_false_on_the_wire(void **state)
{
    struct fx *f = fx_new("user \"alice\" \"plain:pw\"\nauthn users\n");
    const uint8_t *out;
    size_t n;
    assert_int_equal(authn(f, "alice", "wrong", false, &out, &n), WD_HOOK_OK);
    const uint8_t want[] = {0x08, 0x02, 0x18, 0x00};
    assert_int_equal(n, sizeof want);
    assert_memory_equal(out, want, sizeof want);
    fx_free(f);
}

static void allow_is_stop_and_return_with_true(void **state)
{
    struct fx *f = fx_new("user \"alice\" \"plain:pw\"\nauthn users\n");
    const uint8_t *out;
    size_t n;
    assert_int_equal(authn(f, "alice", "pw", false, &out, &n), WD_HOOK_OK);
    const uint8_t want[] = {0x08, 0x02, 0x18, 0x01};
    assert_int_equal(n, sizeof want);
    assert_memory_equal(out, want, sizeof want);
    fx_free(f);
}

static void nomatch_continue_carries_the_request_result(void **state)
{
    struct fx *f = fx_new2("nomatch_reply continue\n", "authn default nomatch\n");
    const uint8_t *out;
    size_t n;
    assert_int_equal(authn(f, "nobody", "x", false, &out, &n), WD_HOOK_OK);
    const uint8_t want_false[] = {0x18, 0x00}; /* CONTINUE is 0: omitted; value present */
    assert_int_equal(n, 2);
    assert_memory_equal(out, want_false, 2);
    assert_int_equal(authn(f, "nobody", "x", true, &out, &n), WD_HOOK_OK);
    const uint8_t want_true[] = {0x18, 0x01};
    assert_int_equal(n, 2);
    assert_memory_equal(out, want_true, 2);
    fx_free(f);
}

static void nomatch_ignore_has_no_value(void **state)
{
    struct fx *f = fx_new2("nomatch_reply ignore\n", "authz default nomatch\n");
    Emqx__Exhook__V3__ClientAuthorizeRequest r = EMQX__EXHOOK__V3__CLIENT_AUTHORIZE_REQUEST__INIT;
    r.topic = "a/b";
    r.result = true;
    const uint8_t *out;
    size_t n;
    assert_int_equal(call(f, "OnClientAuthorize", &r.base, &out, &n), WD_HOOK_OK);
    const uint8_t want[] = {0x08, 0x01};
    assert_int_equal(n, 2);
    assert_memory_equal(out, want, 2);
    fx_free(f);
}

static void authorize_with_unknown_action_type_is_invalid(void **state)
{
    struct fx *f = fx_new("allow all \"#\"\n");
    /* field 2 (type) = 7, field 3 (topic) = "a" */
    const uint8_t req[] = {0x10, 0x07, 0x1a, 0x01, 'a'};
    assert_int_equal(call_raw(f, "OnClientAuthorize", req, sizeof req), WD_HOOK_INVALID_ARGUMENT);
    fx_free(f);
}

static void empty_request_is_a_valid_empty_message(void **state)
{
    struct fx *f = fx_new("authz default deny\n");
    const uint8_t *out;
    size_t n;
    const char *detail;
    assert_int_equal(wd_hook_handle(f->w, 0, method("OnClientAuthorize"), (const uint8_t *)"", 0,
                                    &out, &n, &detail),
                     WD_HOOK_OK);
    const uint8_t want[] = {0x08, 0x02, 0x18, 0x00};
    assert_memory_equal(out, want, 4);
    fx_free(f);
}

static void notification_hooks_reply_with_an_empty_message(void **state)
{
    struct fx *f = fx_new("");
    Emqx__Exhook__V3__SessionCreatedRequest r = EMQX__EXHOOK__V3__SESSION_CREATED_REQUEST__INIT;
    const uint8_t *out;
    size_t n = 99;
    assert_int_equal(call(f, "OnSessionCreated", &r.base, &out, &n), WD_HOOK_OK);
    assert_int_equal(n, 0);
    assert_non_null(out == NULL ? (void *)1 : (void *)out); /* OK status is what matters */
    fx_free(f);
}

/* Adversarial input: NUL bytes and invalid UTF-8 in strings, truncation, garbage. */

static void username_with_nul_byte_is_refused(void **state)
{
    struct fx *f = fx_new("user \"alice\" \"plain:pw\"\nauthn users\n");
    /* ClientAuthenticateRequest{clientinfo{username:"alice\0x", password:"pw"}} */
    const uint8_t req[] = {0x0a, 0x0d, 0x1a, 0x07, 'a', 'l', 'i', 'c', 'e', 0x00,
                           'x',  0x22, 0x02, 'p',  'w'};
    assert_int_equal(call_raw(f, "OnClientAuthenticate", req, sizeof req),
                     WD_HOOK_INVALID_ARGUMENT);
    fx_free(f);
}

static void invalid_utf8_in_strings_is_refused(void **state)
{
    struct fx *f = fx_new("allow all \"#\"\n");
    const uint8_t *cases[] = {
        (const uint8_t *)"\xff",             /* never valid */
        (const uint8_t *)"\xc0\xaf",         /* overlong '/' */
        (const uint8_t *)"\xe0\x80\xaf",     /* overlong '/' */
        (const uint8_t *)"\xed\xa0\x80",     /* UTF-16 surrogate */
        (const uint8_t *)"\xf4\x90\x80\x80", /* above U+10FFFF */
        (const uint8_t *)"\xe2\x82",         /* truncated sequence */
    };
    const size_t lens[] = {1, 2, 3, 3, 4, 2};
    for (size_t i = 0; i < 6; i++) {
        uint8_t req[16] = {0x1a, (uint8_t)lens[i]}; /* field 3: topic */
        memcpy(req + 2, cases[i], lens[i]);
        assert_int_equal(call_raw(f, "OnClientAuthorize", req, 2 + lens[i]),
                         WD_HOOK_INVALID_ARGUMENT);
    }
    /* valid multi-byte UTF-8 passes */
    const uint8_t ok[] = {0x1a, 0x06, 0xc3, 0xa9, 0xe2, 0x82, 0xac, '/'};
    assert_int_equal(call_raw(f, "OnClientAuthorize", ok, sizeof ok), WD_HOOK_OK);
    fx_free(f);
}

static void garbage_and_truncated_messages_are_refused(void **state)
{
    struct fx *f = fx_new("");
    const uint8_t garbage[] = {0xff, 0xff, 0xff};
    assert_int_equal(call_raw(f, "OnClientAuthorize", garbage, 3), WD_HOOK_INVALID_ARGUMENT);
    const uint8_t truncated[] = {0x0a, 0x10, 0x12, 0x01}; /* length 16, 2 bytes follow */
    assert_int_equal(call_raw(f, "OnClientConnected", truncated, 4), WD_HOOK_INVALID_ARGUMENT);
    const uint8_t huge_varint[] = {0x08, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01};
    assert_int_equal(call_raw(f, "OnClientAuthorize", huge_varint, sizeof huge_varint),
                     WD_HOOK_INVALID_ARGUMENT);
    const uint8_t group[] = {0x0b, 0x0c}; /* start/end group wire types */
    assert_int_equal(call_raw(f, "OnClientAuthorize", group, 2), WD_HOOK_INVALID_ARGUMENT);
    fx_free(f);
}

static void deeply_nested_input_is_bounded(void **state)
{
    /* unknown field 15 as length-delimited nests nothing (unknown fields are skipped), so
     * nest through a known message field repeatedly: Message.headers entries are messages
     * but do not recurse; instead feed random bytes: the walker must never crash. */
    struct fx *f = fx_new("");
    uint8_t buf[512];
    unsigned seed = 12345;
    for (int round = 0; round < 20000; round++) {
        size_t n = (size_t)(seed % sizeof buf);
        for (size_t i = 0; i < n; i++) {
            seed = seed * 1103515245u + 12345u;
            buf[i] = (uint8_t)(seed >> 16);
        }
        for (size_t m = 0; m < wd_hook_nmethods(); m += 5)
            (void)call_raw(f, wd_hook_method_name(m), buf, n);
    }
    fx_free(f);
}

static void provider_loaded_returns_configured_hooks_with_topics_for_message_hooks(void **state)
{
    struct fx *f = fx_new2("hooks client.authorize message.publish\nmessage_topics a/# b/+\n", "");
    Emqx__Exhook__V3__ProviderLoadedRequest r = EMQX__EXHOOK__V3__PROVIDER_LOADED_REQUEST__INIT;
    const uint8_t *out;
    size_t n;
    assert_int_equal(call(f, "OnProviderLoaded", &r.base, &out, &n), WD_HOOK_OK);
    Emqx__Exhook__V3__LoadedResponse *lr = emqx__exhook__v3__loaded_response__unpack(NULL, n, out);
    assert_non_null(lr);
    assert_int_equal(lr->n_hooks, 2);
    assert_string_equal(lr->hooks[0]->name, "client.authorize");
    assert_int_equal(lr->hooks[0]->n_topics, 0);
    assert_string_equal(lr->hooks[1]->name, "message.publish");
    assert_int_equal(lr->hooks[1]->n_topics, 2);
    assert_string_equal(lr->hooks[1]->topics[1], "b/+");
    emqx__exhook__v3__loaded_response__free_unpacked(lr, NULL);
    fx_free(f);
}

static void message_publish_is_echoed_unchanged(void **state)
{
    struct fx *f = fx_new2("hooks message.publish\n", "");
    Emqx__Exhook__V3__Message m = EMQX__EXHOOK__V3__MESSAGE__INIT;
    m.node = "emqx@127.0.0.1";
    m.id = "0005F1A2B3C4";
    m.qos = 2;
    m.from = "c1";
    m.topic = "t/1";
    uint8_t payload[256];
    for (int i = 0; i < 256; i++)
        payload[i] = (uint8_t)i;
    m.payload.data = payload;
    m.payload.len = sizeof payload;
    m.timestamp = 1700000000000ULL;
    Emqx__Exhook__V3__MessagePublishRequest r = EMQX__EXHOOK__V3__MESSAGE_PUBLISH_REQUEST__INIT;
    r.message = &m;
    const uint8_t *out;
    size_t n;
    assert_int_equal(call(f, "OnMessagePublish", &r.base, &out, &n), WD_HOOK_OK);
    Emqx__Exhook__V3__ValuedResponse *vr = emqx__exhook__v3__valued_response__unpack(NULL, n, out);
    assert_non_null(vr);
    assert_int_equal(vr->type, EMQX__EXHOOK__V3__VALUED_RESPONSE__RESPONSED_TYPE__CONTINUE);
    assert_int_equal(vr->value_case, EMQX__EXHOOK__V3__VALUED_RESPONSE__VALUE_MESSAGE);
    assert_int_equal(vr->message->qos, 2);
    assert_string_equal(vr->message->topic, "t/1");
    assert_int_equal(vr->message->payload.len, 256);
    assert_memory_equal(vr->message->payload.data, payload, 256);
    assert_int_equal(vr->message->timestamp, 1700000000000ULL);
    emqx__exhook__v3__valued_response__free_unpacked(vr, NULL);
    fx_free(f);
}

static void health_answers_serving_and_not_found(void **state)
{
    struct fx *f = fx_new("");
    const uint8_t *out;
    size_t n;
    const char *detail;
    assert_int_equal(wd_hook_health(f->w, true, (const uint8_t *)"", 0, &out, &n, &detail),
                     WD_HOOK_OK);
    const uint8_t serving[] = {0x08, 0x01};
    assert_int_equal(n, 2);
    assert_memory_equal(out, serving, 2);
    const uint8_t v3[] = {0x0a, 27, 'e', 'm', 'q', 'x', '.', 'e', 'x', 'h', 'o', 'o', 'k', '.', 'v',
                          '3',  '.', 'H', 'o', 'o', 'k', 'P', 'r', 'o', 'v', 'i', 'd', 'e', 'r'};
    assert_int_equal(wd_hook_health(f->w, true, v3, sizeof v3, &out, &n, &detail), WD_HOOK_OK);
    const uint8_t other[] = {0x0a, 0x03, 'f', 'o', 'o'};
    assert_int_equal(wd_hook_health(f->w, true, other, sizeof other, &out, &n, &detail),
                     WD_HOOK_NOT_FOUND);
    assert_int_equal(wd_hook_health(f->w, false, (const uint8_t *)"", 0, &out, &n, &detail),
                     WD_HOOK_OK);
    const uint8_t not_serving[] = {0x08, 0x02};
    assert_memory_equal(out, not_serving, 2);
    fx_free(f);
}

int main(void)
{
    wd_log_set_level(WD_LOG_ERROR);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(twenty_one_methods_in_proto_order),
        cmocka_unit_test(deny_is_stop_and_return_with_false_on_the_wire),
        cmocka_unit_test(allow_is_stop_and_return_with_true),
        cmocka_unit_test(nomatch_continue_carries_the_request_result),
        cmocka_unit_test(nomatch_ignore_has_no_value),
        cmocka_unit_test(authorize_with_unknown_action_type_is_invalid),
        cmocka_unit_test(empty_request_is_a_valid_empty_message),
        cmocka_unit_test(notification_hooks_reply_with_an_empty_message),
        cmocka_unit_test(username_with_nul_byte_is_refused),
        cmocka_unit_test(invalid_utf8_in_strings_is_refused),
        cmocka_unit_test(garbage_and_truncated_messages_are_refused),
        cmocka_unit_test(deeply_nested_input_is_bounded),
        cmocka_unit_test(provider_loaded_returns_configured_hooks_with_topics_for_message_hooks),
        cmocka_unit_test(message_publish_is_echoed_unchanged),
        cmocka_unit_test(health_answers_serving_and_not_found),
    };
    return cmocka_run_group_tests_name("hook", tests, NULL, NULL);
}
