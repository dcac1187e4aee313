/* SPDX-License-Identifier: Apache-2.0 */
/*
 * fuzz_h2: raw HTTP/2 bytes into one connection's session (src/server/h2.c: nghttp2, gRPC
 * framing, the budgets), calls dispatched to the hook handlers with an engine on the
 * embedded demo policy (as fuzz_hook), with no socket and no server.
 *
 * Input: the bytes a client sends after the connection preface (the target sends the
 * preface itself), fed to wd_h2_recv in three pieces (split at a third and two thirds, so
 * frames also arrive cut), each followed by draining wd_h2_send into a sink, as the
 * connection does. Feeding stops at the first WD_EIO (the connection would close).
 * Invariants besides no crash and no leak: the process-wide count of buffered request
 * bytes stays within the connection's budget while the session lives (it is the only
 * session) and returns to 0 when it is freed; the in-flight streams stay within the
 * budget plus one (a stream over it is answered at once); wd_h2_send never fails before
 * the session said it must end.
 */
#include <stdatomic.h>
#include <stdbool.h>

#include "core/config.h"
#include "core/log.h"
#include "core/wd.h"
#include "engine/engine.h"
#include "fuzz.h"
#include "server/h2.h"
#include "server/hook.h"
#include "server/loop.h"

static const char preface[] = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

static struct wd_config cfg;
static struct wd_engine *engine;
static struct wd_hook_worker *worker;
static struct wd_loop *loop;
static struct wd_h2_env env;
static atomic_bool stopping, cancelled;
static uint64_t now_ms = 1000000;

static uint64_t clock_fn(void *ctx)
{
    return now_ms;
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    wd_log_set_level(WD_LOG_ERROR);
    char *errors = NULL;
    wd_config_defaults(&cfg);
    engine = wd_engine_new(&cfg, &errors); /* the embedded policy */
    free(errors);
    if (!engine)
        abort();
    struct wd_hook_env henv = {&cfg, engine};
    worker = wd_hook_worker_new(&henv);
    loop = wd_loop_new(clock_fn, NULL);
    if (!loop)
        abort();
    env = (struct wd_h2_env){.hook = worker,
                             .loop = loop,
                             .request_limit = (size_t)wd_config_request_limit(&cfg),
                             .inflight_budget = 8,
                             .conn_buffer_limit = 1u << 20,
                             .process_buffer_limit = 2u << 20,
                             .handshake_ms = 10000,
                             .header_ms = 10000,
                             .stopping = &stopping,
                             .cancelled = &cancelled};
    return 0;
}

static void sink(void *ctx, const void *p, size_t n)
{
    size_t *total = ctx;
    if (n)
        (void)((volatile const char *)p)[n - 1]; /* the whole output is readable */
    *total += n;
}

static bool feed(struct wd_h2 *h, const uint8_t *p, size_t n)
{
    int rc = wd_h2_recv(h, p, n);
    FUZZ_CHECK(wd_h2_buffered_bytes() <= env.conn_buffer_limit, "%zu bytes buffered",
               wd_h2_buffered_bytes());
    FUZZ_CHECK(wd_h2_open_streams(h) <= env.inflight_budget + 1, "%zu streams open",
               wd_h2_open_streams(h));
    size_t total = 0;
    for (int i = 0; i < 64 && wd_h2_want_write(h); i++) {
        int src = wd_h2_send(h, 1 << 16, sink, &total);
        if (src != WD_OK)
            FUZZ_CHECK(rc != WD_OK || wd_h2_finished(h), "send failed on a healthy session");
        if (src != WD_OK)
            break;
    }
    return rc == WD_OK && !wd_h2_finished(h);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > 1 << 20)
        return 0;
    now_ms += 1;
    (void)wd_loop_update_now(loop);
    struct wd_h2 *h = wd_h2_new(&env, NULL, NULL);
    FUZZ_CHECK(h != NULL, "no session");
    bool alive = feed(h, (const uint8_t *)preface, sizeof preface - 1);
    size_t cut[4] = {0, size / 3, 2 * size / 3, size};
    for (int i = 0; i < 3 && alive; i++)
        if (cut[i + 1] > cut[i])
            alive = feed(h, data + cut[i], cut[i + 1] - cut[i]);
    (void)wd_h2_deadline(h);
    (void)wd_h2_handshaken(h);
    if (alive) {
        wd_h2_shutdown_notice(h);
        wd_h2_goaway(h);
        size_t total = 0;
        while (wd_h2_want_write(h) && wd_h2_send(h, 1 << 16, sink, &total) == WD_OK)
            ;
    }
    wd_h2_free(h);
    FUZZ_CHECK(wd_h2_buffered_bytes() == 0, "%zu bytes still counted after free",
               wd_h2_buffered_bytes());
    return 0;
}
