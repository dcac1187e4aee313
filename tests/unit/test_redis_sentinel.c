/* SPDX-License-Identifier: Apache-2.0 */
/* Unit tests for src/store/redis_sentinel.c: the pure parts (the +switch-master message and
 * address parsers, the re-check decision, the options refused before connecting), and what
 * a misbehaving sentinel can make the thread do. The discovery and the failovers with real
 * sentinels run in tests/integration/redis_ha.py; here a FAKE sentinel (a thread of this test
 * speaking RESP on a loopback port) sends what a real redis-sentinel never does: replies that
 * trickle a byte at a time, oversized or malformed ones, an address with a NUL inside, a
 * flood of +switch-master, an answer that changes without a message. The masters it names
 * are real redis-server children (redis_fixture.h). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <sys/socket.h>

#include "core/wd.h"
#include "redis_fixture.h"
#include "store/redis_sentinel.h"

/* ---- the fake sentinel ---- */

enum fake_mode {
    F_TRICKLE,    /* the reply to get-master-addr-by-name, one byte every 20 ms, for 10 s */
    F_HUGE,       /* a bulk string announced at 2 GB, then bytes as fast as they go */
    F_CANNED,     /* reply: the bytes in canned (whatever they are) */
    F_SUBTRICKLE, /* as F_ADDR, but after SUBSCRIBE a message that never ends: a byte
                   * every 100 ms, for 60 s */
    F_SUBCLOSE,   /* as F_ADDR, but each subscription is closed once confirmed */
    F_ADDR,       /* a well-formed answer: 127.0.0.1 and the port in addr_port; subscriptions
                   * answer PING; flood: after SUBSCRIBE, nflood +switch-master messages
                   * alternating between addr_port and flood_port */
};

struct fake {
    int lfd, port;
    pthread_t th;
    atomic_int mode;
    atomic_int addr_port, flood_port, nflood;
    _Atomic(const char *) canned; /* set by the test, read by the connection threads */
    atomic_size_t canned_len;
    atomic_bool stop;
    atomic_int live;          /* connection threads still running */
    atomic_int hung_up_early; /* the client closed while the script still had bytes to send */
    atomic_int finished;      /* a script ran to its end with the client still there */
    atomic_int subscribes;
};

struct conn {
    struct fake *f;
    int fd;
};

static bool send_all(int fd, const char *p, size_t n)
{
    while (n) {
        ssize_t w = send(fd, p, n, MSG_NOSIGNAL);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return false;
        p += w;
        n -= (size_t)w;
    }
    return true;
}

static bool sendf(int fd, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static bool sendf(int fd, const char *fmt, ...)
{
    char buf[512];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    return send_all(fd, buf, (size_t)n);
}

/* whether the peer closed (a read of 0 or an error), waiting at most ms */
static bool peer_gone(int fd, int ms)
{
    struct pollfd pf = {.fd = fd, .events = POLLIN};
    char b[256];
    if (poll(&pf, 1, ms) <= 0)
        return false;
    ssize_t n = recv(fd, b, sizeof b, MSG_DONTWAIT);
    return n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR);
}

static void answer(struct fake *f, int fd, const char *cmd)
{
    int mode = atomic_load(&f->mode);
    if (strstr(cmd, "get-master-addr-by-name")) {
        if (mode == F_TRICKLE) {
            static const char rep[] = "*2\r\n$9\r\n127.0.0.1\r\n$60000\r\n";
            send_all(fd, rep, sizeof rep - 1);
            for (int i = 0; i < 500 && !atomic_load(&f->stop); i++) {
                if (!send_all(fd, "1", 1) || peer_gone(fd, 20)) {
                    atomic_fetch_add(&f->hung_up_early, 1);
                    return;
                }
            }
            atomic_fetch_add(&f->finished, 1);
        } else if (mode == F_HUGE) {
            static char junk[65536];
            memset(junk, 'a', sizeof junk);
            sendf(fd, "*2\r\n$2000000000\r\n");
            for (int i = 0; i < 1024 && !atomic_load(&f->stop); i++) /* 64 MiB at most */
                if (!send_all(fd, junk, sizeof junk)) {
                    atomic_fetch_add(&f->hung_up_early, 1);
                    return;
                }
            atomic_fetch_add(&f->finished, 1);
        } else if (mode == F_CANNED) {
            send_all(fd, atomic_load(&f->canned), atomic_load(&f->canned_len));
        } else {
            sendf(fd, "*2\r\n$9\r\n127.0.0.1\r\n$%d\r\n%d\r\n",
                  atomic_load(&f->addr_port) >= 10000 ? 5 : 4, atomic_load(&f->addr_port));
        }
    } else if (strstr(cmd, "SUBSCRIBE")) {
        atomic_fetch_add(&f->subscribes, 1);
        sendf(fd, "*3\r\n$9\r\nsubscribe\r\n$14\r\n+switch-master\r\n:1\r\n");
        if (mode == F_SUBCLOSE) {
            shutdown(fd, SHUT_RDWR); /* conn_run's next recv sees the end and closes */
            return;
        }
        if (mode == F_SUBTRICKLE) {
            sendf(fd, "*3\r\n$7\r\nmessage\r\n$14\r\n+switch-master\r\n$60000\r\n");
            for (int i = 0; i < 600 && !atomic_load(&f->stop); i++)
                if (!send_all(fd, "x", 1) || peer_gone(fd, 100))
                    return;
            return;
        }
        int n = atomic_load(&f->nflood);
        for (int i = 0; i < n; i++) {
            char msg[128];
            int to = i % 2 ? atomic_load(&f->addr_port) : atomic_load(&f->flood_port);
            int len = snprintf(msg, sizeof msg, "m 127.0.0.1 1 127.0.0.1 %d", to);
            if (!sendf(fd, "*3\r\n$7\r\nmessage\r\n$14\r\n+switch-master\r\n$%d\r\n%s\r\n", len,
                       msg))
                return;
        }
    } else if (strstr(cmd, "PING")) {
        sendf(fd, "*2\r\n$4\r\npong\r\n$0\r\n\r\n");
    } else {
        sendf(fd, "-ERR unknown command\r\n");
    }
}

static void *conn_run(void *arg)
{
    struct conn *c = arg;
    struct fake *f = c->f;
    char buf[4096];
    while (!atomic_load(&f->stop)) {
        struct pollfd pf = {.fd = c->fd, .events = POLLIN};
        if (poll(&pf, 1, 50) <= 0)
            continue;
        ssize_t n = recv(c->fd, buf, sizeof buf - 1, 0);
        if (n <= 0)
            break;
        buf[n] = '\0';
        answer(f, c->fd, buf);
    }
    close(c->fd);
    atomic_fetch_sub(&f->live, 1);
    free(c);
    return NULL;
}

static void *accept_run(void *arg)
{
    struct fake *f = arg;
    while (!atomic_load(&f->stop)) {
        struct pollfd pf = {.fd = f->lfd, .events = POLLIN};
        if (poll(&pf, 1, 50) <= 0)
            continue;
        int fd = accept(f->lfd, NULL, NULL);
        if (fd < 0)
            continue;
        struct conn *c = calloc(1, sizeof *c);
        c->f = f;
        c->fd = fd;
        pthread_t t;
        atomic_fetch_add(&f->live, 1);
        if (pthread_create(&t, NULL, conn_run, c) != 0) {
            atomic_fetch_sub(&f->live, 1);
            close(fd);
            free(c);
            continue;
        }
        pthread_detach(t);
    }
    return NULL;
}

static struct fake *fake_start(enum fake_mode mode)
{
    struct fake *f = calloc(1, sizeof *f);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t al = sizeof a;
    atomic_store(&f->mode, mode);
    f->lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    assert_true(f->lfd >= 0);
    assert_int_equal(bind(f->lfd, (struct sockaddr *)&a, sizeof a), 0);
    assert_int_equal(listen(f->lfd, 16), 0);
    assert_int_equal(getsockname(f->lfd, (struct sockaddr *)&a, &al), 0);
    f->port = ntohs(a.sin_port);
    assert_int_equal(pthread_create(&f->th, NULL, accept_run, f), 0);
    return f;
}

static void fake_stop(struct fake *f)
{
    atomic_store(&f->stop, true);
    pthread_join(f->th, NULL);
    close(f->lfd);
    while (atomic_load(&f->live) > 0)
        sleep_ms(10);
    free(f);
}

/* wd_redis_sentinel_start against the fake alone (master "m"); timeouts generous enough for a
 * loaded machine (a reply that is whole in time is never read as a timeout), except where
 * the timeout is what is tested */
static unsigned fake_timeout_ms = 5000;

static int start_on(struct fake *f, struct wd_redis_sentinel **s, char *err, size_t cap)
{
    char addr[32];
    snprintf(addr, sizeof addr, "127.0.0.1:%d", f->port);
    const char *addrs[] = {addr};
    struct wd_redis_sentinel_opts o = {
        .addrs = addrs,
        .naddrs = 1,
        .master_name = "m",
        .data = {.connect_timeout_ms = fake_timeout_ms, .command_timeout_ms = fake_timeout_ms}};
    return wd_redis_sentinel_start(&o, s, err, cap);
}

static void status_has(struct wd_redis_sentinel *s, const char *want)
{
    char st[256];
    wd_redis_sentinel_status(s, st, sizeof st);
    if (!strstr(st, want))
        fail_msg("status '%s' does not say '%s'", st, want);
}

static bool parse(const char *msg, const char *name, char *host, size_t cap, int *port)
{
    return wd_redis_sentinel__switch_parse(msg, strlen(msg), name, host, cap, port);
}

static void switch_master_gives_the_new_address_of_our_master(void **state)
{
    (void)state;
    char h[64];
    int port;
    assert_true(parse("mymaster 10.0.0.1 6379 10.0.0.2 6380", "mymaster", h, sizeof h, &port));
    assert_string_equal(h, "10.0.0.2");
    assert_int_equal(port, 6380);
    assert_true(parse("m ::1 6379 fd00::2 1", "m", h, sizeof h, &port));
    assert_string_equal(h, "fd00::2");
    assert_int_equal(port, 1);
}

static void switch_master_of_another_master_or_malformed_is_ignored(void **state)
{
    (void)state;
    char h[64];
    int port = 7;
    static const char *const bad[] = {
        "other 10.0.0.1 6379 10.0.0.2 6380",   /* another master */
        "mymaster2 10.0.0.1 6379 10.0.0.2 1",  /* a longer name */
        "mymaste 10.0.0.1 6379 10.0.0.2 1",    /* a shorter one */
        "mymaster 10.0.0.1 6379 10.0.0.2",     /* four fields */
        "mymaster 10.0.0.1 6379 10.0.0.2 1 x", /* six */
        "mymaster 10.0.0.1 6379 10.0.0.2 0",   /* port out of range */
        "mymaster 10.0.0.1 6379 10.0.0.2 65536",
        "mymaster 10.0.0.1 6379 10.0.0.2 +1",
        "mymaster 10.0.0.1 6379 10.0.0.2 123456",
        "mymaster  10.0.0.1 6379 10.0.0.2 1", /* empty field */
        "mymaster 10.0.0.1 6379 10.0.0.2 1 ",
        "",
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        if (parse(bad[i], "mymaster", h, sizeof h, &port))
            fail_msg("accepted '%s'", bad[i]);
        assert_int_equal(port, 0);
    }
    /* a new host that does not fit */
    assert_false(parse("m a 1 a-very-long-host-name 1", "m", h, 8, &port));
    /* a control character in the host */
    const char msg[] = "m a 1 h\x01x 1";
    assert_false(wd_redis_sentinel__switch_parse(msg, sizeof msg - 1, "m", h, sizeof h, &port));
}

static void start_refuses_bad_options_without_connecting(void **state)
{
    (void)state;
    struct wd_redis_sentinel *s = (void *)1;
    char err[128];
    const char *bad_addr[] = {"10.0.0.5"};
    struct wd_redis_sentinel_opts o = {.addrs = bad_addr, .naddrs = 1, .master_name = "m"};
    assert_int_equal(wd_redis_sentinel_start(&o, &s, err, sizeof err), WD_EINVAL);
    assert_null(s);
    assert_non_null(strstr(err, "'10.0.0.5' is not HOST:PORT"));
    const char *good[] = {"127.0.0.1:1"};
    o = (struct wd_redis_sentinel_opts){.addrs = good, .naddrs = 0, .master_name = "m"};
    assert_int_equal(wd_redis_sentinel_start(&o, &s, err, sizeof err), WD_EINVAL);
    o = (struct wd_redis_sentinel_opts){.addrs = good, .naddrs = 1, .master_name = ""};
    assert_int_equal(wd_redis_sentinel_start(&o, &s, err, sizeof err), WD_EINVAL);
    o = (struct wd_redis_sentinel_opts){
        .addrs = good, .naddrs = 1, .master_name = "m", .username = "u"};
    assert_int_equal(wd_redis_sentinel_start(&o, &s, err, sizeof err), WD_EINVAL);
}

static void addr_parse_refuses_what_is_not_an_address(void **state)
{
    (void)state;
    char h[64];
    int port = 7;
    static const struct {
        const char *h, *p;
        size_t hl; /* 0: strlen */
    } bad[] = {
        {"127.0.0.1", "0", 0},
        {"127.0.0.1", "65536", 0},
        {"127.0.0.1", "-1", 0},
        {"127.0.0.1", "+1", 0},
        {"127.0.0.1", "abc", 0},
        {"127.0.0.1", "", 0},
        {"127.0.0.1", "123456", 0},
        {"127.0.0.1", "6379 ", 0},
        {"", "6379", 0},
        {"127.0.0.1\0evil", "6379", 14}, /* a NUL would cut the name short */
        {"a b", "6379", 0},
        {"h\nx", "6379", 0},
        {"h\x80", "6379", 0},
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        size_t hl = bad[i].hl ? bad[i].hl : strlen(bad[i].h);
        if (wd_redis_sentinel__addr_parse(bad[i].h, hl, bad[i].p, strlen(bad[i].p), h, sizeof h,
                                          &port))
            fail_msg("accepted '%s' '%s'", bad[i].h, bad[i].p);
        assert_int_equal(port, 0);
    }
    assert_true(wd_redis_sentinel__addr_parse("::1", 3, "06379", 5, h, sizeof h, &port));
    assert_string_equal(h, "::1");
    assert_int_equal(port, 6379);
    assert_true(
        wd_redis_sentinel__addr_parse("redis-0.example", 15, "65535", 5, h, sizeof h, &port));
    assert_false(wd_redis_sentinel__addr_parse("redis-0.example", 15, "1", 1, h, 15, &port));
}

static void recheck_is_due_five_seconds_after_the_last_round(void **state)
{
    (void)state;
    assert_false(wd_redis_sentinel__recheck_due(1000, 1000, false));
    assert_false(wd_redis_sentinel__recheck_due(5999, 1000, false));
    assert_true(wd_redis_sentinel__recheck_due(6000, 1000, false));
    assert_true(wd_redis_sentinel__recheck_due(60000, 1000, false));
    /* a discovery is wanted anyway (retrying with its backoff): no re-check on top */
    assert_false(wd_redis_sentinel__recheck_due(60000, 1000, true));
}

/* A sentinel that accepts and answers one byte at a time: the start returns (no master
 * known) while the sentinel still has bytes to send. Before: each read had its own timeout
 * (SO_RCVTIMEO), and the start waited for the whole 10 s script. */
static void a_sentinel_that_trickles_is_cut_at_the_command_timeout(void **state)
{
    (void)state;
    struct fake *f = fake_start(F_TRICKLE);
    struct wd_redis_sentinel *s = NULL;
    char err[256];
    fake_timeout_ms = 1000; /* the script lasts 10 s at least */
    assert_int_equal(start_on(f, &s, err, sizeof err), WD_OK);
    fake_timeout_ms = 5000;
    status_has(s, "no whole reply within 1000 ms");
    wd_redis_sentinel_stop(s); /* the thread keeps trying: stopped while trickled to */
    uint64_t end = mono_ms() + 30000;
    while (atomic_load(&f->hung_up_early) == 0 && atomic_load(&f->finished) == 0 && mono_ms() < end)
        sleep_ms(10);
    assert_int_equal(atomic_load(&f->finished), 0);
    assert_true(atomic_load(&f->hung_up_early) >= 1);
    fake_stop(f);
}

/* A reply announced at 2 GB: refused at 64 KiB read. Before: buffered as it came (here until
 * the sender paused), then a read timeout. */
static void an_oversized_reply_is_refused_at_64_kib(void **state)
{
    (void)state;
    struct fake *f = fake_start(F_HUGE);
    struct wd_redis_sentinel *s = NULL;
    char err[256];
    assert_int_equal(start_on(f, &s, err, sizeof err), WD_OK);
    status_has(s, "reply over 65536 bytes");
    wd_redis_sentinel_stop(s);
    fake_stop(f);
}

/* Replies of the wrong shape: no master is published, nothing crashes, the status says why. */
static void malformed_replies_publish_nothing(void **state)
{
    (void)state;
    struct srv *m = srv_start(NULL); /* a real master, for the replies that name it */
    assert_non_null(m);
    char nul[128];
    int nl = snprintf(nul, sizeof nul, "*2\r\n$14\r\n127.0.0.1%cevil\r\n$%d\r\n%d\r\n", 0,
                      m->port >= 10000 ? 5 : 4, m->port);
    static const struct {
        const char *rep;
        const char *why;
    } cases[] = {
        {":1\r\n", "unexpected reply"},
        {"+OK\r\n", "unexpected reply"},
        {"*3\r\n$1\r\na\r\n$1\r\nb\r\n$1\r\nc\r\n", "unexpected reply"},
        {"*2\r\n:1\r\n:2\r\n", "unexpected reply"},
        {"*2\r\n*1\r\n:1\r\n$4\r\n6379\r\n", "unexpected reply"},
        {"*2\r\n$9\r\n127.0.0.1\r\n$1\r\n0\r\n", "not an address"},
        {"*2\r\n$9\r\n127.0.0.1\r\n$5\r\n65536\r\n", "not an address"},
        {"*2\r\n$9\r\n127.0.0.1\r\n$4\r\nabcd\r\n", "not an address"},
        {"*2\r\n$5\r\n[::1]\r\n$4\r\n6379\r\n", "does not resolve"},
        {"*2147483647\r\n", "Out of memory"}, /* refused before anything is allocated */
        {"-ERR whatever\r\n", "ERR whatever"},
        /* a sentinel with requirepass: the hint names the directive (before: none) */
        {"-NOAUTH Authentication required.\r\n",
         "NOAUTH Authentication required. (set redis_sentinel_password)"},
        {"-WRONGPASS invalid username-password pair or user is disabled.\r\n",
         "disabled. (check redis_sentinel_password and redis_sentinel_username)"},
    };
    struct fake *f = fake_start(F_CANNED);
    /* the address with a NUL first: it names the real master once cut at the NUL */
    for (size_t k = 0; k <= sizeof cases / sizeof *cases; k++) {
        bool last = k == 0;
        size_t i = k - 1;
        atomic_store(&f->canned, last ? nul : cases[i].rep);
        atomic_store(&f->canned_len, last ? (size_t)nl : strlen(cases[i].rep));
        struct wd_redis_sentinel *s = NULL;
        char err[256];
        assert_int_equal(start_on(f, &s, err, sizeof err), WD_OK);
        char addr[64];
        int port;
        if (wd_redis_sentinel_master(s, addr, sizeof addr, &port, NULL))
            fail_msg("case %zu: published %s:%d", k, addr, port);
        status_has(s, last ? "not an address" : cases[i].why);
        wd_redis_sentinel_stop(s);
    }
    fake_stop(f);
    srv_stop(m);
}

/* Thousands of +switch-master messages for our master, flip-flopping between two real
 * masters: each verified would be a ROLE connection and a failover of every client. They
 * are coalesced: the last one wins, verified at most every 100 ms. */
static void a_switch_master_flood_costs_a_few_verifications(void **state)
{
    (void)state;
    struct srv *a = srv_start(NULL), *b = srv_start(NULL);
    assert_non_null(a);
    assert_non_null(b);
    struct fake *f = fake_start(F_ADDR);
    atomic_store(&f->addr_port, a->port);
    atomic_store(&f->flood_port, b->port);
    atomic_store(&f->nflood, 4000);
    struct wd_redis_sentinel *s = NULL;
    char err[256];
    assert_int_equal(start_on(f, &s, err, sizeof err), WD_OK);
    struct wd_redis_sentinel_stats st;
    uint64_t end = mono_ms() + 60000;
    do {
        sleep_ms(20);
        wd_redis_sentinel_stats(s, &st);
    } while (st.switch_msgs < 4000 && mono_ms() < end);
    assert_int_equal(st.switch_msgs, 4000);
    /* the last message names a: whatever was verified in between, a is where it ends */
    end = mono_ms() + 30000;
    char addr[64];
    int port = 0;
    while (mono_ms() < end &&
           !(wd_redis_sentinel_master(s, addr, sizeof addr, &port, NULL) && port == a->port))
        sleep_ms(20);
    assert_int_equal(port, a->port);
    wd_redis_sentinel_stats(s, &st);
    print_message("%llu failovers followed for 4000 messages\n", (unsigned long long)st.failovers);
    if (st.failovers > 100)
        fail_msg("%llu failovers followed for 4000 messages", (unsigned long long)st.failovers);
    wd_redis_sentinel_stop(s);
    fake_stop(f);
    srv_stop(a);
    srv_stop(b);
}

/* A subscription that sends a byte at a time, never a whole message: it answers nothing
 * (the keepalive PING gets no whole pong), so it is dropped and another one is made. Before:
 * each byte counted as a sign of life, and the subscription was kept forever. */
static void a_subscription_that_trickles_is_dropped(void **state)
{
    (void)state;
    struct srv *a = srv_start(NULL);
    assert_non_null(a);
    struct fake *f = fake_start(F_SUBTRICKLE);
    atomic_store(&f->addr_port, a->port);
    struct wd_redis_sentinel *s = NULL;
    char err[256];
    assert_int_equal(start_on(f, &s, err, sizeof err), WD_OK);
    uint64_t end = mono_ms() + 40000;
    while (atomic_load(&f->subscribes) < 2 && mono_ms() < end)
        sleep_ms(20);
    assert_true(atomic_load(&f->subscribes) >= 2);
    wd_redis_sentinel_stop(s);
    fake_stop(f);
    srv_stop(a);
}

/* One sentinel names a replica (stale: it missed a failover), the next one the master in use:
 * the master stays published, nothing moves. Before: the replica's answer dropped the master
 * and the next answer published it again, two generations: every connection of every
 * worker dropped for nothing. (A real sentinel gives that answer when partitioned; faked
 * here to choose which one is asked first.) */
static void a_stale_sentinel_naming_a_replica_moves_nothing(void **state)
{
    (void)state;
    struct srv *a = srv_start(NULL);
    assert_non_null(a);
    struct srv *b = srv_start_as(NULL, a->port, 0);
    assert_non_null(b);
    struct fake *f1 = fake_start(F_ADDR), *f2 = fake_start(F_ADDR);
    atomic_store(&f1->addr_port, a->port);
    atomic_store(&f2->addr_port, a->port);
    char a1[32], a2[32];
    snprintf(a1, sizeof a1, "127.0.0.1:%d", f1->port);
    snprintf(a2, sizeof a2, "127.0.0.1:%d", f2->port);
    const char *addrs[] = {a1, a2};
    struct wd_redis_sentinel_opts o = {
        .addrs = addrs,
        .naddrs = 2,
        .master_name = "m",
        .data = {.connect_timeout_ms = 1000, .command_timeout_ms = 1000}};
    struct wd_redis_sentinel *s = NULL;
    char err[256];
    assert_int_equal(wd_redis_sentinel_start(&o, &s, err, sizeof err), WD_OK);
    struct wd_redis_sentinel_stats st;
    uint64_t end = mono_ms() + 60000;
    do { /* the round after the first subscription */
        sleep_ms(20);
        wd_redis_sentinel_stats(s, &st);
    } while (st.discoveries < 2 && mono_ms() < end);
    uint64_t g0 = wd_redis_sentinel_generation(s);
    atomic_store(&f1->addr_port, b->port); /* f1, asked first, now names the replica */
    uint64_t d0 = st.discoveries;
    wd_redis_sentinel_suspect(s);
    do {
        sleep_ms(20);
        wd_redis_sentinel_stats(s, &st);
    } while (st.discoveries < d0 + 2 && mono_ms() < end);
    /* d0 + 2: the round asked for is over (the next one is the 5 s re-check) */
    assert_true(st.discoveries >= d0 + 2);
    char addr[64];
    int port = 0;
    assert_true(wd_redis_sentinel_master(s, addr, sizeof addr, &port, NULL));
    assert_int_equal(port, a->port);
    assert_int_equal(wd_redis_sentinel_generation(s), g0);
    wd_redis_sentinel_stop(s);
    fake_stop(f1);
    fake_stop(f2);
    srv_stop(b);
    srv_stop(a);
}

/* A sentinel that closes every subscription as soon as it is confirmed: warden subscribes
 * again at most every 100 ms (and logs each loss), not in a tight loop. The bound checked
 * is an upper one: a slow machine only makes fewer. Before: as fast as connects go. */
static void a_sentinel_closing_each_subscription_costs_ten_a_second(void **state)
{
    (void)state;
    struct srv *a = srv_start(NULL);
    assert_non_null(a);
    struct fake *f = fake_start(F_SUBCLOSE);
    atomic_store(&f->addr_port, a->port);
    struct wd_redis_sentinel *s = NULL;
    char err[256];
    uint64_t t0 = mono_ms();
    assert_int_equal(start_on(f, &s, err, sizeof err), WD_OK);
    uint64_t end = t0 + 60000;
    while (atomic_load(&f->subscribes) < 10 && mono_ms() < end)
        sleep_ms(20);
    wd_redis_sentinel_stop(s);
    uint64_t ms = mono_ms() - t0;
    int n = atomic_load(&f->subscribes);
    print_message("%d subscriptions in %llu ms\n", n, (unsigned long long)ms);
    assert_true(n >= 10);
    assert_true((uint64_t)n <= ms / 100 + 2);
    fake_stop(f);
    srv_stop(a);
}

static long long connections_received(const struct srv *m)
{
    redisContext *c = admin(m);
    assert_non_null(c);
    redisReply *r = redisCommand(c, "INFO stats");
    assert_non_null(r);
    const char *p = strstr(r->str, "total_connections_received:");
    long long n = p ? atoll(p + 27) : -1;
    freeReplyObject(r);
    redisFree(c);
    return n;
}

/* The sentinel's answer changes without a +switch-master reaching us (a message lost while the
 * subscription looked alive): the periodic re-check finds it. An unchanged answer is not
 * verified again: no connection to the master. Before: the old master stayed published. */
static void the_periodic_recheck_finds_a_master_moved_silently(void **state)
{
    (void)state;
    struct srv *a = srv_start(NULL), *b = srv_start(NULL);
    assert_non_null(a);
    assert_non_null(b);
    struct fake *f = fake_start(F_ADDR);
    atomic_store(&f->addr_port, a->port);
    struct wd_redis_sentinel *s = NULL;
    char err[256];
    assert_int_equal(start_on(f, &s, err, sizeof err), WD_OK);
    char addr[64];
    int port = 0;
    assert_true(wd_redis_sentinel_master(s, addr, sizeof addr, &port, NULL));
    assert_int_equal(port, a->port);
    /* the first subscription makes the thread look again (verified); then quiet re-checks */
    struct wd_redis_sentinel_stats st;
    uint64_t end = mono_ms() + 60000;
    do {
        sleep_ms(20);
        wd_redis_sentinel_stats(s, &st);
    } while (st.discoveries < 3 && mono_ms() < end);
    long long conns = connections_received(a);
    uint64_t d0 = st.discoveries;
    do {
        sleep_ms(20);
        wd_redis_sentinel_stats(s, &st);
    } while (st.discoveries < d0 + 1 && mono_ms() < end);
    assert_true(st.discoveries >= d0 + 1);
    /* the admin connection above is the only new one */
    assert_int_equal(connections_received(a), conns + 1);
    assert_int_equal(st.failovers, 0);

    atomic_store(&f->addr_port, b->port);
    end = mono_ms() + 60000;
    while (mono_ms() < end &&
           !(wd_redis_sentinel_master(s, addr, sizeof addr, &port, NULL) && port == b->port))
        sleep_ms(20);
    assert_int_equal(port, b->port);
    wd_redis_sentinel_stop(s);
    fake_stop(f);
    srv_stop(a);
    srv_stop(b);
}

/* After a failover the sentinel announces a node that refuses the data credentials (the
 * Redis ACL user was created on the old master only): the old master is no longer published
 * (known false: no usable master), the status names the announced address and the reply
 * (WRONGPASS), and the failed check counts as a Sentinel error. Before: the old master stayed
 * published (known 1, the status named it), errors unchanged. */
static void an_announced_master_refusing_auth_is_not_published(void **state)
{
    (void)state;
    struct srv *a = srv_start("pw"), *b = srv_start("not-the-same");
    assert_non_null(a);
    assert_non_null(b);
    struct fake *f = fake_start(F_ADDR);
    atomic_store(&f->addr_port, a->port);
    char addr[32];
    snprintf(addr, sizeof addr, "127.0.0.1:%d", f->port);
    const char *addrs[] = {addr};
    struct wd_redis_sentinel_opts o = {
        .addrs = addrs,
        .naddrs = 1,
        .master_name = "m",
        .data = {.password = "pw", .connect_timeout_ms = 5000, .command_timeout_ms = 5000}};
    struct wd_redis_sentinel *s = NULL;
    char err[256];
    assert_int_equal(wd_redis_sentinel_start(&o, &s, err, sizeof err), WD_OK);
    char maddr[64];
    int port = 0;
    assert_true(wd_redis_sentinel_master(s, maddr, sizeof maddr, &port, NULL));
    assert_int_equal(port, a->port);
    struct wd_redis_sentinel_stats st;
    wd_redis_sentinel_stats(s, &st);
    uint64_t e0 = st.errors;

    atomic_store(&f->addr_port, b->port);
    wd_redis_sentinel_suspect(s);
    uint64_t end = mono_ms() + 30000;
    while (mono_ms() < end && wd_redis_sentinel_master(s, maddr, sizeof maddr, &port, NULL))
        sleep_ms(20);
    if (wd_redis_sentinel_master(s, maddr, sizeof maddr, &port, NULL))
        fail_msg("%s:%d still published", maddr, port);
    wd_redis_sentinel_stats(s, &st);
    assert_false(st.known);
    assert_true(st.errors > e0);
    char want[96];
    snprintf(want, sizeof want, "announced master 127.0.0.1:%d refused: AUTH: WRONGPASS", b->port);
    status_has(s, want);
    status_has(s, "must work on every node");
    wd_redis_sentinel_stop(s);
    fake_stop(f);
    srv_stop(a);
    srv_stop(b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(switch_master_gives_the_new_address_of_our_master),
        cmocka_unit_test(switch_master_of_another_master_or_malformed_is_ignored),
        cmocka_unit_test(start_refuses_bad_options_without_connecting),
        cmocka_unit_test(addr_parse_refuses_what_is_not_an_address),
        cmocka_unit_test(recheck_is_due_five_seconds_after_the_last_round),
        cmocka_unit_test(a_sentinel_that_trickles_is_cut_at_the_command_timeout),
        cmocka_unit_test(an_oversized_reply_is_refused_at_64_kib),
        cmocka_unit_test(malformed_replies_publish_nothing),
        cmocka_unit_test(a_switch_master_flood_costs_a_few_verifications),
        cmocka_unit_test(the_periodic_recheck_finds_a_master_moved_silently),
        cmocka_unit_test(a_subscription_that_trickles_is_dropped),
        cmocka_unit_test(a_stale_sentinel_naming_a_replica_moves_nothing),
        cmocka_unit_test(a_sentinel_closing_each_subscription_costs_ten_a_second),
        cmocka_unit_test(an_announced_master_refusing_auth_is_not_published),
    };
    atexit(kill_all_at_exit);
    return cmocka_run_group_tests(tests, NULL, NULL);
}
