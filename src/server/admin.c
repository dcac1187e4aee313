/* SPDX-License-Identifier: Apache-2.0 */
/*
 * admin.c: see admin.h. One thread, poll(2) over the listening socket and a self-pipe that
 * stops it; connections are served one at a time, start to finish, on that thread.
 *
 * Every descriptor is non-blocking and every wait is a poll that also watches the stop
 * pipe, with a deadline: a client that connects and says nothing, or never reads its
 * reply, costs at most WD_ADMIN_TIMEOUT_MS each way, and wd_admin_stop never waits for it.
 * A connection that closes without sending a byte is a liveness probe (what a second
 * wd_admin_start does to find out whether the socket is in use) and is not logged.
 *
 * Requests are parsed by length, never as C strings: a NUL, a CR or any other byte in the
 * line just makes it an unknown command. The user name is decoded from hex into a buffer
 * whose length is passed on; it is logged only through wd_log_quote.
 */
#include "server/admin.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdarg.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "core/log.h"
#include "core/wd.h"

#define MOD "admin"
/* How long `warden admin` waits to connect and for the reply: longer than a few silent
 * connections ahead of it in the server's queue. */
#define CLIENT_TIMEOUT_S 10
/* The client takes at most this much reply (the server sends at most WD_ADMIN_REPLY_MAX of
 * callback text plus a status line and a truncation note). */
#define CLIENT_REPLY_MAX (WD_ADMIN_REPLY_MAX + 4096)

struct wd_admin {
    char *path;
    struct wd_admin_ops ops;
    int lfd;
    int stop[2];
    pthread_t th;
    uid_t euid;
    dev_t dev; /* the socket file we created, so that stop unlinks only that */
    ino_t ino;
    struct wd_log_ratelimit accept_warn; /* the admin thread's */
};

/* A failing accept (out of descriptors) is retried every 100 ms while a connection waits:
 * one log line a minute says so, not ten a second. */
#define ACCEPT_WARN_INTERVAL_MS 60000

/* ---- shared helpers ---- */

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int fill_sockaddr(const char *path, struct sockaddr_un *sa)
{
    size_t n = strlen(path);
    memset(sa, 0, sizeof *sa);
    sa->sun_family = AF_UNIX;
    if (n == 0 || n >= sizeof sa->sun_path)
        return WD_EINVAL;
    memcpy(sa->sun_path, path, n + 1);
    return WD_OK;
}

/* ---- server: one connection ---- */

enum wait_result { WAIT_READY, WAIT_TIMEOUT, WAIT_STOP, WAIT_ERROR };

/* Waits for events on fd until the absolute deadline, or until the stop pipe is readable. */
static enum wait_result wait_fd(struct wd_admin *a, int fd, short events, int64_t deadline)
{
    for (;;) {
        int64_t left = deadline - now_ms();
        if (left <= 0)
            return WAIT_TIMEOUT;
        struct pollfd pf[2] = {{fd, events, 0}, {a->stop[0], POLLIN, 0}};
        int r = poll(pf, 2, (int)left);
        if (r < 0) {
            if (errno == EINTR)
                continue;
            return WAIT_ERROR;
        }
        if (r == 0)
            return WAIT_TIMEOUT;
        if (pf[1].revents)
            return WAIT_STOP;
        if (pf[0].revents)
            return WAIT_READY; /* readable, writable, or hung up: the next call says which */
    }
}

/* Sends all of p within the deadline. Best effort: a client that went away is not an
 * error worth more than a debug line. */
static void send_all(struct wd_admin *a, int fd, const char *p, size_t n, int64_t deadline)
{
    while (n > 0) {
        ssize_t w = send(fd, p, n, MSG_NOSIGNAL);
        if (w > 0) {
            p += w;
            n -= (size_t)w;
            continue;
        }
        if (w < 0 && errno == EINTR)
            continue;
        if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK) &&
            wait_fd(a, fd, POLLOUT, deadline) == WAIT_READY)
            continue;
        wd_log_debug(MOD, "reply not delivered: %s", w < 0 ? strerror(errno) : "short write");
        return;
    }
}

static void reply_err(struct wd_admin *a, int fd, const char *reason)
{
    char line[128];
    int n = snprintf(line, sizeof line, "ERR %s\n", reason);
    send_all(a, fd, line, (size_t)n, now_ms() + WD_ADMIN_TIMEOUT_MS);
}

enum read_result { READ_LINE, READ_EMPTY, READ_EOF, READ_TOO_LONG, READ_TIMEOUT, READ_STOP };

/* Reads one request line into buf (WD_ADMIN_LINE_MAX bytes) within WD_ADMIN_TIMEOUT_MS of
 * the connection's start. On READ_LINE, *len is the line's length without its '\n'. Bytes
 * after the '\n' are ignored. */
static enum read_result read_line(struct wd_admin *a, int fd, char *buf, size_t *len)
{
    int64_t deadline = now_ms() + WD_ADMIN_TIMEOUT_MS;
    size_t n = 0;
    *len = 0;
    for (;;) {
        ssize_t r = recv(fd, buf + n, WD_ADMIN_LINE_MAX - n, 0);
        if (r > 0) {
            char *nl = memchr(buf + n, '\n', (size_t)r);
            n += (size_t)r;
            if (nl) {
                *len = (size_t)(nl - buf);
                return READ_LINE;
            }
            if (n == WD_ADMIN_LINE_MAX)
                return READ_TOO_LONG;
            continue;
        }
        if (r == 0)
            return n == 0 ? READ_EMPTY : READ_EOF;
        if (errno == EINTR)
            continue;
        if (errno != EAGAIN && errno != EWOULDBLOCK)
            return n == 0 ? READ_EMPTY : READ_EOF; /* reset by the peer: nothing to answer */
        switch (wait_fd(a, fd, POLLIN, deadline)) {
        case WAIT_READY:
            continue;
        case WAIT_STOP:
            return READ_STOP;
        case WAIT_TIMEOUT:
        case WAIT_ERROR:
            return READ_TIMEOUT;
        }
    }
}

static bool line_is(const char *line, size_t len, const char *word)
{
    size_t n = strlen(word);
    return len == n && memcmp(line, word, n) == 0;
}

/* Decodes n hex digits (either case) into out; false on an odd count or a non-hex byte. */
static bool unhex(const char *hex, size_t n, char *out, size_t *outlen)
{
    if (n % 2)
        return false;
    for (size_t i = 0; i < n; i += 2) {
        int hi = wd_hexval((unsigned char)hex[i]), lo = wd_hexval((unsigned char)hex[i + 1]);
        if (hi < 0 || lo < 0)
            return false;
        out[i / 2] = (char)(hi << 4 | lo);
    }
    *outlen = n / 2;
    return true;
}

/* Runs one command and sends its reply. The log line is written before the reply, so that
 * whoever reads the reply can rely on it being there. */
static void run_command(struct wd_admin *a, int fd, const char *line, size_t len,
                        const struct ucred *peer)
{
    static const char prefix[] = "flush-user ";
    const size_t plen = sizeof prefix - 1;
    char user[WD_ADMIN_LINE_MAX / 2];
    size_t ulen = 0;
    struct wd_buf out = {.limit = WD_ADMIN_REPLY_MAX};
    const char *what;
    int rc = WD_OK;
    bool supported = true, by_user = false;

    if (line_is(line, len, "flush")) {
        what = "flush";
        if ((supported = a->ops.flush_all != NULL))
            rc = a->ops.flush_all(a->ops.ctx, &out);
    } else if (line_is(line, len, "stats")) {
        what = "stats";
        if ((supported = a->ops.stats != NULL))
            rc = a->ops.stats(a->ops.ctx, &out);
    } else if (len >= plen && memcmp(line, prefix, plen) == 0) {
        what = "flush-user";
        by_user = true;
        if (!unhex(line + plen, len - plen, user, &ulen)) {
            wd_log_warn(MOD, "bad request from uid %u pid %d: malformed user name",
                        (unsigned)peer->uid, (int)peer->pid);
            reply_err(a, fd, "malformed user name");
            return;
        }
        if ((supported = a->ops.flush_user != NULL))
            rc = a->ops.flush_user(a->ops.ctx, user, ulen, &out);
    } else {
        wd_log_warn(MOD, "bad request from uid %u pid %d: unknown command", (unsigned)peer->uid,
                    (int)peer->pid);
        reply_err(a, fd, "unknown command");
        return;
    }

    const char *result = supported ? wd_rc_str(rc) : "not supported";
    if (by_user) {
        char q[512];
        wd_log_info(MOD, "flush-user %s by uid %u pid %d: %s",
                    wd_log_quote(q, sizeof q, user, ulen), (unsigned)peer->uid, (int)peer->pid,
                    result);
    } else {
        wd_log_info(MOD, "%s by uid %u pid %d: %s", what, (unsigned)peer->uid, (int)peer->pid,
                    result);
    }

    struct wd_buf reply = {0};
    if (supported && rc == WD_OK)
        wd_buf_puts(&reply, "OK\n");
    else
        wd_buf_printf(&reply, "ERR %s\n", result);
    if (out.len) {
        wd_buf_put(&reply, out.s, out.len);
        if (out.s[out.len - 1] != '\n')
            wd_buf_putc(&reply, '\n');
    }
    if (out.full)
        wd_buf_puts(&reply, "... (reply truncated)\n");
    send_all(a, fd, reply.s, reply.len, now_ms() + WD_ADMIN_TIMEOUT_MS);
    wd_buf_free(&reply);
    wd_buf_free(&out);
}

static void serve_conn(struct wd_admin *a, int fd)
{
    struct ucred peer;
    socklen_t plen = sizeof peer;
    if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &peer, &plen) != 0 || plen != sizeof peer) {
        wd_log_warn(MOD, "refused a connection: cannot read its credentials: %s", strerror(errno));
        reply_err(a, fd, "permission denied");
        return;
    }
    if (peer.uid != 0 && peer.uid != a->euid) {
        wd_log_warn(MOD, "refused a connection from uid %u pid %d: permission denied",
                    (unsigned)peer.uid, (int)peer.pid);
        reply_err(a, fd, "permission denied");
        return;
    }

    char line[WD_ADMIN_LINE_MAX];
    size_t len;
    switch (read_line(a, fd, line, &len)) {
    case READ_LINE:
        run_command(a, fd, line, len, &peer);
        return;
    case READ_EMPTY:
    case READ_STOP:
        return;
    case READ_EOF:
        wd_log_warn(MOD, "bad request from uid %u pid %d: no newline before end of input",
                    (unsigned)peer.uid, (int)peer.pid);
        reply_err(a, fd, "malformed request");
        return;
    case READ_TOO_LONG:
        wd_log_warn(MOD, "bad request from uid %u pid %d: line longer than %d bytes",
                    (unsigned)peer.uid, (int)peer.pid, WD_ADMIN_LINE_MAX);
        reply_err(a, fd, "line too long");
        return;
    case READ_TIMEOUT:
        wd_log_warn(MOD, "connection from uid %u pid %d sent no request within %d ms",
                    (unsigned)peer.uid, (int)peer.pid, WD_ADMIN_TIMEOUT_MS);
        reply_err(a, fd, "timed out");
        return;
    }
}

/* ---- server: the thread ---- */

static void *admin_main(void *arg)
{
    struct wd_admin *a = arg;
    for (;;) {
        struct pollfd pf[2] = {{a->lfd, POLLIN, 0}, {a->stop[0], POLLIN, 0}};
        if (poll(pf, 2, -1) < 0) {
            if (errno == EINTR)
                continue;
            wd_log_error(MOD, "poll: %s; admin socket no longer served", strerror(errno));
            return NULL;
        }
        if (pf[1].revents)
            return NULL;
        if (!pf[0].revents)
            continue;
        int fd = accept4(a->lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) {
            if (errno == EINTR || errno == EAGAIN || errno == EWOULDBLOCK || errno == ECONNABORTED)
                continue;
            /* out of descriptors or memory: back off instead of spinning on poll */
            int e = errno;
            unsigned long skipped;
            if (wd_log_ratelimit_allow(&a->accept_warn, now_ms(), ACCEPT_WARN_INTERVAL_MS,
                                       &skipped))
                wd_log_warn(MOD,
                            "accept: %s (retrying every 100 ms; %lu more failures since the "
                            "last such line, logged at most once a minute)",
                            strerror(e), skipped);
            struct pollfd ps = {a->stop[0], POLLIN, 0};
            if (poll(&ps, 1, 100) > 0)
                return NULL;
            continue;
        }
        serve_conn(a, fd);
        close(fd);
    }
}

/* Looks at what is at path before binding. Returns WD_OK when path is free (nothing there,
 * or a stale socket that has been unlinked), or an error with a message. */
static int clear_path(const char *path, const struct sockaddr_un *sa, char *err, size_t errcap)
{
    struct stat st;
    if (lstat(path, &st) != 0) {
        if (errno == ENOENT)
            return WD_OK;
        snprintf(err, errcap, "admin socket %s: %s", path, strerror(errno));
        return WD_EBIND;
    }
    if (!S_ISSOCK(st.st_mode)) {
        snprintf(err, errcap, "admin socket %s: exists and is not a socket; not removing it", path);
        return WD_EBIND;
    }
    /* Non-blocking, so that a live server with a full backlog answers EAGAIN at once
     * instead of holding us up. */
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (fd < 0) {
        snprintf(err, errcap, "admin socket %s: socket: %s", path, strerror(errno));
        return WD_EBIND;
    }
    int r = connect(fd, (const struct sockaddr *)sa, sizeof *sa);
    int e = errno;
    close(fd);
    if (r == 0 || e == EAGAIN || e == EINPROGRESS) {
        snprintf(err, errcap, "admin socket %s: already in use (another warden is serving it)",
                 path);
        return WD_EBIND;
    }
    if (e == ENOENT)
        return WD_OK; /* went away meanwhile */
    if (e != ECONNREFUSED) {
        snprintf(err, errcap, "admin socket %s: cannot tell whether it is in use: %s", path,
                 strerror(e));
        return WD_EBIND;
    }
    if (unlink(path) != 0 && errno != ENOENT) {
        snprintf(err, errcap, "admin socket %s: cannot remove the stale socket: %s", path,
                 strerror(errno));
        return WD_EBIND;
    }
    wd_log_info(MOD, "removed stale admin socket %s", path);
    return WD_OK;
}

int wd_admin_start(const char *path, const struct wd_admin_ops *ops, struct wd_admin **out,
                   char *err, size_t errcap)
{
    *out = NULL;
    if (errcap)
        err[0] = '\0';
    struct sockaddr_un sa;
    if (fill_sockaddr(path, &sa) != WD_OK) {
        snprintf(err, errcap, "admin socket path %s %s (at most %zu bytes)", *path ? path : "\"\"",
                 *path ? "is too long" : "is empty", sizeof sa.sun_path - 1);
        return WD_EINVAL;
    }
    int rc = clear_path(path, &sa, err, errcap);
    if (rc != WD_OK)
        return rc;

    struct wd_admin *a = wd_calloc(1, sizeof *a);
    a->path = wd_strdup(path);
    a->ops = *ops;
    a->euid = geteuid();
    a->stop[0] = a->stop[1] = -1;
    a->lfd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (a->lfd < 0) {
        snprintf(err, errcap, "admin socket %s: socket: %s", path, strerror(errno));
        goto fail;
    }
    /* 0600 from the first moment the file exists; umask is process-wide, hence "at
     * start-up" in the header. */
    mode_t old = umask(0177);
    int b = bind(a->lfd, (const struct sockaddr *)&sa, sizeof sa);
    int e = errno;
    umask(old);
    if (b != 0) {
        snprintf(err, errcap, "admin socket %s: %s", path,
                 e == EADDRINUSE ? "already in use" : strerror(e));
        goto fail;
    }
    struct stat st;
    if (lstat(path, &st) == 0) {
        a->dev = st.st_dev;
        a->ino = st.st_ino;
    }
    if (listen(a->lfd, 16) != 0 || pipe2(a->stop, O_CLOEXEC) != 0) {
        snprintf(err, errcap, "admin socket %s: %s", path, strerror(errno));
        goto fail_unlink;
    }
    if (pthread_create(&a->th, NULL, admin_main, a) != 0) {
        snprintf(err, errcap, "admin socket %s: cannot start the admin thread", path);
        goto fail_unlink;
    }
    wd_log_info(MOD, "admin socket listening on %s", path);
    *out = a;
    return WD_OK;

fail_unlink:
    unlink(path);
fail:
    if (a->lfd >= 0)
        close(a->lfd);
    if (a->stop[0] >= 0) {
        close(a->stop[0]);
        close(a->stop[1]);
    }
    free(a->path);
    free(a);
    return WD_EBIND;
}

void wd_admin_stop(struct wd_admin *a)
{
    if (!a)
        return;
    ssize_t w;
    do {
        w = write(a->stop[1], "x", 1);
    } while (w < 0 && errno == EINTR);
    pthread_join(a->th, NULL);
    close(a->lfd);
    close(a->stop[0]);
    close(a->stop[1]);
    /* only our own socket: never a file someone put in its place */
    struct stat st;
    if (lstat(a->path, &st) == 0 && S_ISSOCK(st.st_mode) && st.st_dev == a->dev &&
        st.st_ino == a->ino)
        unlink(a->path);
    free(a->path);
    free(a);
}

/* ---- client ---- */

static const char usage_text[] =
    "usage: warden admin flush                 drop every cached entry\n"
    "       warden admin flush --user NAME     drop one user's cached "
    "verdicts, ACLs and sessions\n"
    "       warden admin stats                 print statistics\n";

static void write_all(int fd, const char *p, size_t n)
{
    while (n > 0) {
        ssize_t w = write(fd, p, n);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return;
        p += w;
        n -= (size_t)w;
    }
}

static void complain(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static void complain(const char *fmt, ...)
{
    struct wd_buf b = {0};
    char tmp[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(tmp, sizeof tmp, fmt, ap);
    va_end(ap);
    wd_buf_printf(&b, "warden admin: %s\n", tmp);
    write_all(2, b.s, b.len);
    wd_buf_free(&b);
}

/* Builds the request line from argv. Returns false (usage printed) on bad usage. */
static bool build_request(int argc, char **argv, struct wd_buf *req)
{
    static const char hex[] = "0123456789abcdef";
    if (argc == 1 && strcmp(argv[0], "flush") == 0) {
        wd_buf_puts(req, "flush\n");
        return true;
    }
    if (argc == 1 && strcmp(argv[0], "stats") == 0) {
        wd_buf_puts(req, "stats\n");
        return true;
    }
    if (argc == 3 && strcmp(argv[0], "flush") == 0 && strcmp(argv[1], "--user") == 0) {
        const unsigned char *u = (const unsigned char *)argv[2];
        size_t n = strlen(argv[2]);
        if (n > WD_ADMIN_USER_MAX) {
            complain("user name of %zu bytes is longer than the %zu the admin protocol carries", n,
                     (size_t)WD_ADMIN_USER_MAX);
            return false;
        }
        wd_buf_puts(req, "flush-user ");
        for (size_t i = 0; i < n; i++) {
            wd_buf_putc(req, hex[u[i] >> 4]);
            wd_buf_putc(req, hex[u[i] & 15]);
        }
        wd_buf_putc(req, '\n');
        return true;
    }
    write_all(2, usage_text, sizeof usage_text - 1);
    return false;
}

int wd_admin_request(const char *path, int argc, char **argv, int out_fd)
{
    struct wd_buf req = {0}, rep = {.limit = CLIENT_REPLY_MAX};
    struct sockaddr_un sa;
    int fd = -1, status = 1;

    if (argc < 1 || !build_request(argc, argv, &req)) {
        if (argc < 1)
            write_all(2, usage_text, sizeof usage_text - 1);
        status = 2;
        goto out;
    }
    if (fill_sockaddr(path, &sa) != WD_OK) {
        complain("admin socket path %s is empty or too long", path);
        status = 3;
        goto out;
    }
    fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        complain("socket: %s", strerror(errno));
        status = 3;
        goto out;
    }
    /* bounds connect (a full backlog), send and every receive */
    struct timeval tv = {.tv_sec = CLIENT_TIMEOUT_S};
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    if (connect(fd, (const struct sockaddr *)&sa, sizeof sa) != 0) {
        complain("cannot connect to %s: %s (is warden running with its admin socket there?)", path,
                 strerror(errno));
        status = 3;
        goto out;
    }
    int send_errno = 0;
    for (size_t off = 0; off < req.len;) {
        ssize_t w = send(fd, req.s + off, req.len - off, MSG_NOSIGNAL);
        if (w < 0 && errno == EINTR)
            continue;
        if (w < 0 && (errno == EPIPE || errno == ECONNRESET)) {
            /* The server may refuse (permission denied) before reading: its reply is
             * already waiting to be read. */
            send_errno = errno;
            break;
        }
        if (w <= 0) {
            complain("sending to %s: %s", path, w < 0 ? strerror(errno) : "short write");
            goto out;
        }
        off += (size_t)w;
    }
    for (;;) {
        char chunk[4096];
        ssize_t r = recv(fd, chunk, sizeof chunk, 0);
        if (r > 0) {
            wd_buf_put(&rep, chunk, (size_t)r);
            if (rep.full) {
                complain("reply from %s is larger than %u bytes", path, CLIENT_REPLY_MAX);
                goto out;
            }
            continue;
        }
        if (r < 0 && errno == EINTR)
            continue;
        /* The server closes after its reply; if it stopped reading first (a refused
         * request), the close shows up as a reset after the data. */
        if (r == 0 || (errno == ECONNRESET && (rep.len > 0 || send_errno)))
            break;
        complain("no reply from %s: %s", path,
                 errno == EAGAIN || errno == EWOULDBLOCK ? "timed out" : strerror(errno));
        goto out;
    }
    if (rep.len == 0) {
        complain("no reply from %s (%s)", path,
                 send_errno ? strerror(send_errno) : "connection closed");
        goto out;
    }
    write_all(out_fd, rep.s, rep.len);
    if (rep.len >= 3 && memcmp(rep.s, "OK\n", 3) == 0)
        status = 0;
    else if (rep.len < 4 || memcmp(rep.s, "ERR ", 4) != 0 || !memchr(rep.s, '\n', rep.len))
        complain("malformed reply from %s", path);

out:
    if (fd >= 0)
        close(fd);
    wd_buf_free(&req);
    wd_buf_free(&rep);
    return status;
}
