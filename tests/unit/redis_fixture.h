/* SPDX-License-Identifier: Apache-2.0 */
/*
 * redis_fixture.h: a real redis-server as a child process, for unit tests that need one
 * (test_redis.c, test_backends.c). Each caller starts its own server on a free loopback
 * high port (21000..31999) in a temp dir, checks through INFO that the server answering is
 * its own child, and kills it by PID; PR_SET_PDEATHSIG and kill_all_at_exit() cover a
 * crashing test binary. Header-only (static functions) so each test binary has its own.
 */
#ifndef WD_TEST_REDIS_FIXTURE_H
#define WD_TEST_REDIS_FIXTURE_H

#include <fcntl.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <hiredis/hiredis.h>

/* ---- fixture: a redis-server child ---- */

struct srv {
    pid_t pid;
    int port;
    char dir[64];
    char sock[128];
    const char *requirepass;
    int replica_of;  /* a replica of the master on that port (0: a master) */
    int sentinel_of; /* a redis-sentinel monitoring master "m" on that port (quorum 1,
                      * no automatic failover: SENTINEL FAILOVER only) */
};

#define MAX_SRV 8
static pid_t live[MAX_SRV];

static inline void track(pid_t pid, bool add)
{
    for (int i = 0; i < MAX_SRV; i++) {
        if (add && live[i] == 0) {
            live[i] = pid;
            return;
        }
        if (!add && live[i] == pid) {
            live[i] = 0;
            return;
        }
    }
}

static inline void kill_all_at_exit(void)
{
    for (int i = 0; i < MAX_SRV; i++)
        if (live[i] > 0) {
            kill(live[i], SIGKILL);
            waitpid(live[i], NULL, 0);
            live[i] = 0;
        }
}

static inline uint64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static inline void sleep_ms(unsigned ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

/* an admin connection straight to the child (fixture only), AUTHed when needed */
static inline redisContext *admin(const struct srv *s)
{
    struct timeval tv = {1, 0};
    redisContext *c = redisConnectWithTimeout("127.0.0.1", s->port, tv);
    if (!c || c->err) {
        redisFree(c);
        return NULL;
    }
    redisSetTimeout(c, tv);
    if (s->requirepass) {
        redisReply *r = redisCommand(c, "AUTH %s", s->requirepass);
        bool ok = r && r->type == REDIS_REPLY_STATUS;
        freeReplyObject(r);
        if (!ok) {
            redisFree(c);
            return NULL;
        }
    }
    return c;
}

/* true when the server on s->port is our child and answers */
static inline bool srv_answers(const struct srv *s)
{
    redisContext *c = admin(s);
    redisReply *r;
    char want[48];
    bool ok = false;

    if (!c)
        return false;
    r = redisCommand(c, "INFO server");
    snprintf(want, sizeof want, "process_id:%d\r\n", (int)s->pid);
    ok = r && r->type == REDIS_REPLY_STRING && strstr(r->str, want);
    freeReplyObject(r);
    redisFree(c);
    return ok;
}

static inline bool srv_spawn(struct srv *s)
{
    char port[16], sock[100];
    const char *argv[24];
    int n = 0;
    uint64_t deadline;

    snprintf(port, sizeof port, "%d", s->port);
    snprintf(sock, sizeof sock, "%s/redis.sock", s->dir);
    snprintf(s->sock, sizeof s->sock, "%s", sock);
    argv[n++] = "redis-server";
    argv[n++] = "--port";
    argv[n++] = port;
    argv[n++] = "--bind";
    argv[n++] = "127.0.0.1";
    argv[n++] = "--save";
    argv[n++] = "";
    argv[n++] = "--appendonly";
    argv[n++] = "no";
    argv[n++] = "--dir";
    argv[n++] = s->dir;
    argv[n++] = "--daemonize";
    argv[n++] = "no";
    argv[n++] = "--unixsocket";
    argv[n++] = sock;
    argv[n++] = "--unixsocketperm";
    argv[n++] = "700";
    if (s->requirepass) {
        argv[n++] = "--requirepass";
        argv[n++] = s->requirepass;
    }
    char of[16], conf[128];
    if (s->replica_of) {
        snprintf(of, sizeof of, "%d", s->replica_of);
        argv[n++] = "--replicaof";
        argv[n++] = "127.0.0.1";
        argv[n++] = of;
    }
    if (s->sentinel_of) { /* redis-server CONF --sentinel --port P ... */
        snprintf(conf, sizeof conf, "%s/sentinel.conf", s->dir);
        FILE *cf = fopen(conf, "w");
        if (!cf)
            return false;
        fprintf(cf,
                "sentinel monitor m 127.0.0.1 %d 1\n"
                "sentinel down-after-milliseconds m 600000\n"
                "sentinel failover-timeout m 60000\n",
                s->sentinel_of);
        fclose(cf);
        n = 1;
        argv[n++] = conf;
        argv[n++] = "--sentinel";
        argv[n++] = "--port";
        argv[n++] = port;
        argv[n++] = "--bind";
        argv[n++] = "127.0.0.1";
        argv[n++] = "--dir";
        argv[n++] = s->dir;
        argv[n++] = "--daemonize";
        argv[n++] = "no";
    }
    argv[n] = NULL;

    pid_t pid = fork();
    if (pid < 0)
        return false;
    if (pid == 0) {
        int devnull = open("/dev/null", O_RDWR);
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        if (devnull >= 0) {
            dup2(devnull, 1);
            dup2(devnull, 2);
        }
        execvp("redis-server", (char *const *)argv);
        _exit(127);
    }
    s->pid = pid;
    track(pid, true);
    deadline = mono_ms() + 10000;
    while (mono_ms() < deadline) {
        int st;
        if (waitpid(pid, &st, WNOHANG) == pid) { /* exited: port taken, most likely */
            track(pid, false);
            s->pid = 0;
            return false;
        }
        if (srv_answers(s))
            return true;
        sleep_ms(20);
    }
    kill(pid, SIGKILL);
    waitpid(pid, NULL, 0);
    track(pid, false);
    s->pid = 0;
    return false;
}

static inline void srv_kill(struct srv *s)
{
    if (s->pid > 0) {
        kill(s->pid, SIGKILL); /* also works on a SIGSTOPped child */
        waitpid(s->pid, NULL, 0);
        track(s->pid, false);
        s->pid = 0;
    }
}

static inline struct srv *srv_start_as(const char *requirepass, int replica_of, int sentinel_of)
{
    struct srv *s = calloc(1, sizeof *s);
    s->replica_of = replica_of;
    s->sentinel_of = sentinel_of;
    /* 21000..31999: below Linux's ephemeral range (32768+), so no client socket holds
     * the port and a reconnect to a stopped server cannot TCP-self-connect to it */
    int base = (int)(getpid() % 1000) * 7;

    snprintf(s->dir, sizeof s->dir, "/tmp/wd_test_redis_XXXXXX");
    if (!mkdtemp(s->dir)) {
        free(s);
        return NULL;
    }
    s->requirepass = requirepass;
    for (int i = 0; i < 12; i++) {
        s->port = 21000 + (base + i * 1009) % 11000;
        if (srv_spawn(s))
            return s;
    }
    rmdir(s->dir);
    free(s);
    return NULL;
}

static inline struct srv *srv_start(const char *requirepass)
{
    return srv_start_as(requirepass, 0, 0);
}

static inline void srv_stop(struct srv *s)
{
    if (!s)
        return;
    srv_kill(s);
    unlink(s->sock);
    char f[160];
    snprintf(f, sizeof f, "%s/sentinel.conf", s->dir);
    unlink(f);
    snprintf(f, sizeof f, "%s/dump.rdb", s->dir);
    unlink(f);
    rmdir(s->dir);
    free(s);
}

#endif
