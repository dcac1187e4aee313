/* SPDX-License-Identifier: Apache-2.0 */
/*
 * fuzz_hook: raw gRPC message bytes for each ExHook method, to a decision (src/server/hook.c
 * -> src/engine -> src/policy), with an engine on the embedded demo policy (user demo/demo,
 * `allow all "users/${username}/#"`), set up as tests/unit/test_hook.c does, without a
 * server.
 *
 * Input: the first byte chooses the method (modulo the 21 HookProvider methods; 0xff is the
 * health check) and, by its top bit, the service path (v2 or v3); the rest is the protobuf
 * request as it would arrive in a gRPC message. Invariants besides no crash and no leak: a
 * status is one of the four; WD_HOOK_OK comes with a reply (pointer and length set) and
 * anything else with a static detail text for grpc-message.
 */
#include <stdbool.h>

#include "core/config.h"
#include "core/log.h"
#include "core/wd.h"
#include "engine/engine.h"
#include "fuzz.h"
#include "server/hook.h"

static struct wd_config cfg;
static struct wd_engine *engine;
static struct wd_hook_worker *worker;

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    wd_log_set_level(WD_LOG_ERROR);
    char *errors = NULL;
    wd_config_defaults(&cfg);
    /* every hook, so every handler runs, and the publish hook reads message topics */
    static const char text[] =
        "hooks client.connect client.connack client.connected client.disconnected "
        "client.authenticate client.authorize client.subscribe client.unsubscribe "
        "session.created session.subscribed session.unsubscribed session.resumed "
        "session.discarded session.takenover session.terminated message.publish "
        "message.delivered message.dropped message.acked\n"
        "message_topics \"#\"\n";
    if (wd_config_parse(&cfg, "fuzz.conf", text, strlen(text), &errors) != WD_OK) {
        fprintf(stderr, "%s\n", errors ? errors : "");
        abort();
    }
    engine = wd_engine_new(&cfg, &errors); /* cfg.policy NULL: the embedded policy */
    free(errors);
    if (!engine)
        abort();
    struct wd_hook_env env = {&cfg, engine};
    worker = wd_hook_worker_new(&env);
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    const uint8_t *out = NULL;
    size_t outlen = (size_t)-1;
    const char *detail = NULL;
    enum wd_hook_status st;
    if (data[0] == 0xff)
        st = wd_hook_health(worker, true, data + 1, size - 1, &out, &outlen, &detail);
    else
        st = wd_hook_handle(worker, data[0] >> 7, (data[0] & 0x7f) % wd_hook_nmethods(), data + 1,
                            size - 1, &out, &outlen, &detail);
    FUZZ_CHECK(st == WD_HOOK_OK || st == WD_HOOK_INVALID_ARGUMENT || st == WD_HOOK_NOT_FOUND ||
                   st == WD_HOOK_INTERNAL,
               "status %d", (int)st);
    if (st == WD_HOOK_OK) {
        FUZZ_CHECK(outlen != (size_t)-1 && (out != NULL || outlen == 0), "reply %p %zu",
                   (const void *)out, outlen);
        if (outlen)
            (void)((volatile const uint8_t *)out)[outlen - 1]; /* the whole reply is readable */
    } else {
        FUZZ_CHECK(detail != NULL, "status %d without a detail", (int)st);
    }
    return 0;
}
