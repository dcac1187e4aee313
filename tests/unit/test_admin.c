/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Unit tests for src/server/admin.c, over real Unix sockets in a mkdtemp directory: each
 * command's round trip through wd_admin_request with callbacks that record what they were
 * given (user names with spaces, LF, 0xff and NUL arrive intact, with their length), usage
 * errors, raw garbage, malformed and overlong lines (answered ERR, and the server keeps
 * serving), a silent client (answered `ERR timed out`, the next client served after it),
 * what wd_admin_start does with a stale socket, a live one, a regular file, a symlink and a
 * path too long, what stop unlinks, the peer uid check (as root), and the info log lines.
 *
 * Nothing depends on timing luck: a test waits for a reply, for the server's own timeout, or
 * polls for a condition it can observe (the server has read what was sent).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <linux/sockios.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "core/buf.h"
#include "core/log.h"
#include "core/wd.h"
#include "server/admin.h"

/* ---- fixture: a temp dir, a server on dir/admin.sock, callbacks that record ---- */

struct rec {
    int flush_all, flush_user, stats;
    char user[8192];
    size_t user_len;
    int rc;            /* what the callbacks return */
    const char *text;  /* what they write */
    size_t stats_fill; /* stats writes this many 'x' when non-zero */
};

struct fx {
    char dir[64];
    char path[100]; /* fits in sun_path */
    char logpath[128];
    int logfd;
    struct rec rec;
    struct wd_admin_ops ops;
    struct wd_admin *a;
};

static int cb_flush_all(void *ctx, struct wd_buf *out)
{
    struct rec *r = ctx;
    r->flush_all++;
    if (r->text)
        wd_buf_puts(out, r->text);
    return r->rc;
}

static int cb_flush_user(void *ctx, const char *user, size_t len, struct wd_buf *out)
{
    struct rec *r = ctx;
    r->flush_user++;
    assert_true(len <= sizeof r->user);
    memcpy(r->user, user, len);
    r->user_len = len;
    if (r->text)
        wd_buf_puts(out, r->text);
    return r->rc;
}

static int cb_stats(void *ctx, struct wd_buf *out)
{
    struct rec *r = ctx;
    r->stats++;
    if (r->text)
        wd_buf_puts(out, r->text);
    for (size_t i = 0; i < r->stats_fill; i++)
        wd_buf_putc(out, 'x');
    return r->rc;
}

static int setup(void **state)
{
    struct fx *f = calloc(1, sizeof *f);
    assert_non_null(f);
    snprintf(f->dir, sizeof f->dir, "/tmp/wd-admin-XXXXXX");
    assert_non_null(mkdtemp(f->dir));
    snprintf(f->path, sizeof f->path, "%s/admin.sock", f->dir);
    snprintf(f->logpath, sizeof f->logpath, "%s/log", f->dir);
    f->logfd = open(f->logpath, O_RDWR | O_CREAT | O_TRUNC | O_APPEND | O_CLOEXEC, 0600);
    assert_true(f->logfd >= 0);
    wd_log_set_fd(f->logfd);
    wd_log_set_level(WD_LOG_INFO);
    f->ops = (struct wd_admin_ops){
        .flush_all = cb_flush_all,
        .flush_user = cb_flush_user,
        .stats = cb_stats,
        .ctx = &f->rec,
    };
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fx *f = *state;
    wd_admin_stop(f->a);
    wd_log_set_fd(2);
    close(f->logfd);
    char cmd[256];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", f->dir);
    assert_int_equal(system(cmd), 0);
    free(f);
    return 0;
}

static void start(struct fx *f)
{
    char err[256];
    assert_int_equal(wd_admin_start(f->path, &f->ops, &f->a, err, sizeof err), WD_OK);
    assert_non_null(f->a);
}

/* Reads a whole file into a NUL-terminated buffer (callers free). */
static char *slurp_fd(int fd, size_t *len)
{
    struct wd_buf b = {0};
    char chunk[4096];
    ssize_t r;
    assert_int_equal(lseek(fd, 0, SEEK_SET), 0);
    while ((r = read(fd, chunk, sizeof chunk)) > 0)
        wd_buf_put(&b, chunk, (size_t)r);
    wd_buf_putc(&b, '\0');
    if (len)
        *len = b.len - 1;
    return b.s;
}

/* Runs wd_admin_request with stdout and stderr captured into files in the fixture dir. */
struct result {
    int status;
    char *out;
    size_t out_len;
    char *err;
};

static struct result request(struct fx *f, const char *path, int argc, char **argv)
{
    char p[160];
    snprintf(p, sizeof p, "%s/out", f->dir);
    int ofd = open(p, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    snprintf(p, sizeof p, "%s/err", f->dir);
    int efd = open(p, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    assert_true(ofd >= 0 && efd >= 0);
    int saved = dup(2);
    assert_true(saved >= 0);
    assert_int_equal(dup2(efd, 2), 2);
    struct result res;
    res.status = wd_admin_request(path, argc, argv, ofd);
    assert_int_equal(dup2(saved, 2), 2);
    close(saved);
    res.out = slurp_fd(ofd, &res.out_len);
    res.err = slurp_fd(efd, NULL);
    close(ofd);
    close(efd);
    return res;
}

static void result_free(struct result *r)
{
    free(r->out);
    free(r->err);
}

static int connect_to(const char *path)
{
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    snprintf(sa.sun_path, sizeof sa.sun_path, "%s", path);
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    assert_true(fd >= 0);
    assert_int_equal(connect(fd, (struct sockaddr *)&sa, sizeof sa), 0);
    return fd;
}

/* Reads until the server closes (EOF, or a reset after it stopped reading our bytes). */
static char *read_reply(int fd)
{
    struct wd_buf b = {0};
    char chunk[4096];
    for (;;) {
        ssize_t r = recv(fd, chunk, sizeof chunk, 0);
        if (r > 0) {
            wd_buf_put(&b, chunk, (size_t)r);
            continue;
        }
        if (r < 0 && errno == EINTR)
            continue;
        assert_true(r == 0 || errno == ECONNRESET);
        break;
    }
    wd_buf_putc(&b, '\0');
    return b.s;
}

/* Sends raw bytes on a fresh connection, optionally half-closes, returns the reply. */
static char *raw(const char *path, const void *bytes, size_t n, bool half_close)
{
    int fd = connect_to(path);
    size_t off = 0;
    while (off < n) {
        ssize_t w = send(fd, (const char *)bytes + off, n - off, MSG_NOSIGNAL);
        if (w <= 0)
            break; /* the server may have answered and closed already */
        off += (size_t)w;
    }
    if (half_close)
        shutdown(fd, SHUT_WR);
    char *rep = read_reply(fd);
    close(fd);
    return rep;
}

/* The server is alive and serving: a stats round trip succeeds. */
static void assert_still_serving(struct fx *f)
{
    int before = f->rec.stats;
    char *argv[] = {"stats"};
    struct result r = request(f, f->path, 1, argv);
    assert_int_equal(r.status, 0);
    assert_int_equal(f->rec.stats, before + 1);
    result_free(&r);
}

static char *log_text(struct fx *f)
{
    return slurp_fd(f->logfd, NULL);
}

/* ---- round trips ---- */

static void flush_round_trip_calls_flush_all_and_prints_ok_and_its_lines(void **state)
{
    struct fx *f = *state;
    start(f);
    f->rec.text = "flushed 3 entries\n";
    char *argv[] = {"flush"};
    struct result r = request(f, f->path, 1, argv);
    assert_int_equal(r.status, 0);
    assert_string_equal(r.out, "OK\nflushed 3 entries\n");
    assert_string_equal(r.err, "");
    assert_int_equal(f->rec.flush_all, 1);
    assert_int_equal(f->rec.flush_user, 0);
    assert_int_equal(f->rec.stats, 0);
    result_free(&r);
}

static void stats_round_trip_adds_the_missing_final_newline(void **state)
{
    struct fx *f = *state;
    start(f);
    f->rec.text = "entries 5\nhits 7";
    char *argv[] = {"stats"};
    struct result r = request(f, f->path, 1, argv);
    assert_int_equal(r.status, 0);
    assert_string_equal(r.out, "OK\nentries 5\nhits 7\n");
    assert_int_equal(f->rec.stats, 1);
    result_free(&r);
}

static void flush_user_passes_spaces_newline_and_0xff_intact_with_their_length(void **state)
{
    struct fx *f = *state;
    start(f);
    f->rec.text = "flushed 2 entries\n";
    char name[] = "a b\nc\xff\r d";
    char *argv[] = {"flush", "--user", name};
    struct result r = request(f, f->path, 3, argv);
    assert_int_equal(r.status, 0);
    assert_string_equal(r.out, "OK\nflushed 2 entries\n");
    assert_int_equal(f->rec.flush_user, 1);
    assert_int_equal(f->rec.flush_all, 0);
    assert_int_equal(f->rec.user_len, sizeof name - 1);
    assert_memory_equal(f->rec.user, name, sizeof name - 1);
    result_free(&r);
}

static void flush_user_protocol_carries_a_nul_byte_and_uppercase_hex(void **state)
{
    struct fx *f = *state;
    start(f);
    /* argv cannot hold a NUL; the protocol can */
    static const char req[] = "flush-user 6100FF0a20\n";
    char *rep = raw(f->path, req, sizeof req - 1, false);
    assert_string_equal(rep, "OK\n");
    assert_int_equal(f->rec.flush_user, 1);
    assert_int_equal(f->rec.user_len, 5);
    assert_memory_equal(f->rec.user, "a\0\xff\n ", 5);
    free(rep);
}

static void flush_user_with_the_empty_name_reaches_the_callback_with_length_zero(void **state)
{
    struct fx *f = *state;
    start(f);
    f->rec.user_len = 99;
    char *argv[] = {"flush", "--user", ""};
    struct result r = request(f, f->path, 3, argv);
    assert_int_equal(r.status, 0);
    assert_int_equal(f->rec.flush_user, 1);
    assert_int_equal(f->rec.user_len, 0);
    result_free(&r);
}

static void flush_user_of_the_longest_name_fills_the_line_exactly(void **state)
{
    struct fx *f = *state;
    start(f);
    /* "flush-user " + 2 hex digits per byte + "\n" == WD_ADMIN_LINE_MAX, at most */
    assert_true(11 + 2 * WD_ADMIN_USER_MAX + 1 <= WD_ADMIN_LINE_MAX);
    assert_true(11 + 2 * (WD_ADMIN_USER_MAX + 1) + 1 > WD_ADMIN_LINE_MAX);
    char *name = malloc(WD_ADMIN_USER_MAX + 2);
    memset(name, 'u', WD_ADMIN_USER_MAX);
    name[WD_ADMIN_USER_MAX] = '\0';
    char *argv[] = {"flush", "--user", name};
    struct result r = request(f, f->path, 3, argv);
    assert_int_equal(r.status, 0);
    assert_int_equal(f->rec.user_len, WD_ADMIN_USER_MAX);
    assert_memory_equal(f->rec.user, name, WD_ADMIN_USER_MAX);
    result_free(&r);

    /* one byte more does not fit: refused by the client as usage, nothing sent */
    name[WD_ADMIN_USER_MAX] = 'u';
    name[WD_ADMIN_USER_MAX + 1] = '\0';
    r = request(f, f->path, 3, argv);
    assert_int_equal(r.status, 2);
    assert_non_null(strstr(r.err, "longer than"));
    assert_int_equal(f->rec.flush_user, 1);
    result_free(&r);
    free(name);
}

static void callback_error_is_err_with_its_reason_then_its_lines_and_exit_1(void **state)
{
    struct fx *f = *state;
    start(f);
    f->rec.rc = WD_ENOENT;
    f->rec.text = "no cached entries for that user\n";
    char *argv[] = {"flush", "--user", "ghost"};
    struct result r = request(f, f->path, 3, argv);
    assert_int_equal(r.status, 1);
    assert_string_equal(r.out, "ERR not found\nno cached entries for that user\n");
    result_free(&r);
}

static void missing_callback_answers_not_supported(void **state)
{
    struct fx *f = *state;
    f->ops.stats = NULL;
    start(f);
    char *argv[] = {"stats"};
    struct result r = request(f, f->path, 1, argv);
    assert_int_equal(r.status, 1);
    assert_string_equal(r.out, "ERR not supported\n");
    result_free(&r);
}

static void a_reply_over_the_limit_is_cut_and_says_so(void **state)
{
    struct fx *f = *state;
    start(f);
    f->rec.stats_fill = WD_ADMIN_REPLY_MAX + 10;
    char *argv[] = {"stats"};
    struct result r = request(f, f->path, 1, argv);
    assert_int_equal(r.status, 0);
    static const char tail[] = "... (reply truncated)\n";
    assert_true(r.out_len > sizeof tail);
    assert_true(r.out_len < WD_ADMIN_REPLY_MAX + 64);
    assert_string_equal(r.out + r.out_len - (sizeof tail - 1), tail);
    result_free(&r);
}

/* ---- client usage ---- */

static void bad_usage_returns_2_prints_usage_and_sends_nothing(void **state)
{
    struct fx *f = *state;
    start(f);
    char *a0[] = {NULL};
    char *a1[] = {"bogus"};
    char *a2[] = {"flush", "--user"};
    char *a3[] = {"stats", "extra"};
    char *a4[] = {"flush", "--bogus", "x"};
    char *a5[] = {"flush", "--user", "a", "b"};
    char *a6[] = {"flush-user"};
    struct {
        int argc;
        char **argv;
    } cases[] = {{0, a0}, {1, a1}, {2, a2}, {2, a3}, {3, a4}, {4, a5}, {1, a6}};
    for (size_t i = 0; i < WD_ARRAY_LEN(cases); i++) {
        struct result r = request(f, f->path, cases[i].argc, cases[i].argv);
        assert_int_equal(r.status, 2);
        assert_non_null(strstr(r.err, "usage: warden admin"));
        assert_string_equal(r.out, "");
        result_free(&r);
    }
    assert_int_equal(f->rec.flush_all + f->rec.flush_user + f->rec.stats, 0);
}

static void request_to_a_missing_socket_returns_3(void **state)
{
    struct fx *f = *state;
    char missing[160];
    snprintf(missing, sizeof missing, "%s/nobody-here.sock", f->dir);
    char *argv[] = {"stats"};
    struct result r = request(f, missing, 1, argv);
    assert_int_equal(r.status, 3);
    assert_non_null(strstr(r.err, "cannot connect"));
    result_free(&r);
}

/* ---- what the server does with bad input ---- */

static void unknown_command_is_answered_err_unknown_command(void **state)
{
    struct fx *f = *state;
    start(f);
    static const char req[] = "reboot\n";
    char *rep = raw(f->path, req, sizeof req - 1, false);
    assert_string_equal(rep, "ERR unknown command\n");
    free(rep);
    assert_int_equal(f->rec.flush_all + f->rec.flush_user + f->rec.stats, 0);
    assert_still_serving(f);
}

static void garbage_gets_err_and_the_server_keeps_serving(void **state)
{
    struct fx *f = *state;
    start(f);
    static const struct {
        const char *bytes;
        size_t n;
        const char *reply;
    } cases[] = {
        {"\x00\xff\x01garbage\n", 11, "ERR unknown command\n"},
        {"flush\r\n", 7, "ERR unknown command\n"}, /* LF only */
        {"flush\0\n", 7, "ERR unknown command\n"}, /* NUL is part of the word */
        {"stats \n", 7, "ERR unknown command\n"},  /* no arguments */
        {"flush-user\n", 11, "ERR unknown command\n"},
        {"\n", 1, "ERR unknown command\n"},
        {"flush-user abc\n", 15, "ERR malformed user name\n"}, /* odd digit count */
        {"flush-user zz\n", 14, "ERR malformed user name\n"},
        {"flush-user 61 62\n", 17, "ERR malformed user name\n"},
        {"flush-user 6\x00\n", 14, "ERR malformed user name\n"},
    };
    for (size_t i = 0; i < WD_ARRAY_LEN(cases); i++) {
        char *rep = raw(f->path, cases[i].bytes, cases[i].n, false);
        assert_string_equal(rep, cases[i].reply);
        free(rep);
    }
    /* no newline before the client half-closes */
    char *rep = raw(f->path, "stats", 5, true);
    assert_string_equal(rep, "ERR malformed request\n");
    free(rep);
    assert_int_equal(f->rec.flush_all + f->rec.flush_user + f->rec.stats, 0);
    assert_still_serving(f);
}

static void an_overlong_line_gets_err_line_too_long_and_the_server_keeps_serving(void **state)
{
    struct fx *f = *state;
    start(f);
    char big[3 * WD_ADMIN_LINE_MAX];
    memset(big, 'a', sizeof big);
    big[sizeof big - 1] = '\n';
    char *rep = raw(f->path, big, sizeof big, false);
    assert_string_equal(rep, "ERR line too long\n");
    free(rep);

    /* exactly one byte over: WD_ADMIN_LINE_MAX bytes and no newline among them */
    memcpy(big, "stats", 5);
    big[WD_ADMIN_LINE_MAX] = '\n';
    rep = raw(f->path, big, WD_ADMIN_LINE_MAX + 1, false);
    assert_string_equal(rep, "ERR line too long\n");
    free(rep);
    assert_int_equal(f->rec.stats, 0);
    assert_still_serving(f);
}

static void bytes_after_the_request_line_are_ignored(void **state)
{
    struct fx *f = *state;
    start(f);
    static const char req[] = "stats\nflush\n";
    char *rep = raw(f->path, req, sizeof req - 1, false);
    assert_string_equal(rep, "OK\n");
    free(rep);
    assert_int_equal(f->rec.stats, 1);
    assert_int_equal(f->rec.flush_all, 0);
}

static void a_silent_client_times_out_and_the_next_client_is_served(void **state)
{
    struct fx *f = *state;
    start(f);
    int silent = connect_to(f->path); /* queued first: the server takes it first */
    char *argv[] = {"stats"};
    struct result r = request(f, f->path, 1, argv);
    assert_int_equal(r.status, 0);
    assert_int_equal(f->rec.stats, 1);
    result_free(&r);
    char *rep = read_reply(silent);
    assert_string_equal(rep, "ERR timed out\n");
    free(rep);
    close(silent);
    char *log = log_text(f);
    assert_non_null(strstr(log, "sent no request within"));
    free(log);
}

static void a_connection_that_sends_nothing_and_closes_is_not_logged(void **state)
{
    struct fx *f = *state;
    start(f);
    close(connect_to(f->path));
    assert_still_serving(f); /* served after the probe, so the probe is done */
    char *log = log_text(f);
    assert_null(strstr(log, "WARN"));
    free(log);
}

/* ---- access ---- */

static void the_socket_file_has_mode_0600(void **state)
{
    struct fx *f = *state;
    start(f);
    struct stat st;
    assert_int_equal(lstat(f->path, &st), 0);
    assert_true(S_ISSOCK(st.st_mode));
    assert_int_equal(st.st_mode & 0777, 0600);
}

static void a_peer_with_another_uid_is_refused_permission_denied(void **state)
{
    struct fx *f = *state;
    if (geteuid() != 0)
        skip(); /* needs root to connect as another uid */
    start(f);
    /* open the file system path so that only SO_PEERCRED stands in the way */
    assert_int_equal(chmod(f->dir, 0711), 0);
    assert_int_equal(chmod(f->path, 0666), 0);
    char outpath[160];
    snprintf(outpath, sizeof outpath, "%s/out", f->dir);
    int ofd = open(outpath, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    assert_true(ofd >= 0);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        /* child: no cmocka; the real client, as uid 65534. The server refuses before
         * reading, so the client's send may meet EPIPE: it must still show the reply. */
        if (setgroups(0, NULL) != 0 || setresgid(65534, 65534, 65534) != 0 ||
            setresuid(65534, 65534, 65534) != 0)
            _exit(10);
        char *argv[] = {"stats"};
        _exit(wd_admin_request(f->path, 1, argv, ofd));
    }
    int ws;
    assert_int_equal(waitpid(pid, &ws, 0), pid);
    assert_true(WIFEXITED(ws));
    assert_int_equal(WEXITSTATUS(ws), 1);
    char *out = slurp_fd(ofd, NULL);
    close(ofd);
    assert_string_equal(out, "ERR permission denied\n");
    free(out);
    assert_int_equal(f->rec.stats, 0);
    char *log = log_text(f);
    assert_non_null(strstr(log, "refused a connection from uid 65534"));
    free(log);
    assert_still_serving(f); /* root is let in */
}

/* ---- logging ---- */

static void each_command_is_logged_at_info_with_the_user_name_escaped(void **state)
{
    struct fx *f = *state;
    start(f);
    char *a1[] = {"flush"};
    char *a2[] = {"flush", "--user", "evil\nINFO  admin: forged \"x\""};
    char *a3[] = {"stats"};
    struct result r = request(f, f->path, 1, a1);
    result_free(&r);
    r = request(f, f->path, 3, a2);
    result_free(&r);
    r = request(f, f->path, 1, a3);
    result_free(&r);
    char *log = log_text(f);
    assert_non_null(strstr(log, "INFO  admin: flush by uid "));
    assert_non_null(
        strstr(log, "INFO  admin: flush-user \"evil\\x0aINFO  admin: forged \\\"x\\\"\" by uid "));
    assert_non_null(strstr(log, "INFO  admin: stats by uid "));
    assert_null(strstr(log, "\nINFO  admin: forged"));
    free(log);
}

/* ---- start and stop ---- */

static void a_stale_socket_file_is_replaced(void **state)
{
    struct fx *f = *state;
    /* a socket bound and closed without unlink: what a killed daemon leaves behind */
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    snprintf(sa.sun_path, sizeof sa.sun_path, "%s", f->path);
    int fd = socket(AF_UNIX, SOCK_STREAM, 0);
    assert_int_equal(bind(fd, (struct sockaddr *)&sa, sizeof sa), 0);
    close(fd);
    struct stat st;
    assert_int_equal(lstat(f->path, &st), 0);
    assert_true(S_ISSOCK(st.st_mode));
    start(f);
    assert_still_serving(f);
}

static void a_live_socket_refuses_a_second_start_with_already_in_use(void **state)
{
    struct fx *f = *state;
    start(f);
    struct stat before, after;
    assert_int_equal(lstat(f->path, &before), 0);
    struct wd_admin *second = (struct wd_admin *)1;
    char err[256];
    assert_int_equal(wd_admin_start(f->path, &f->ops, &second, err, sizeof err), WD_EBIND);
    assert_null(second);
    assert_non_null(strstr(err, "already in use"));
    assert_int_equal(lstat(f->path, &after), 0);
    assert_int_equal(before.st_ino, after.st_ino);
    assert_still_serving(f);
}

static void a_regular_file_at_the_path_is_refused_and_left_in_place(void **state)
{
    struct fx *f = *state;
    int fd = open(f->path, O_WRONLY | O_CREAT | O_EXCL, 0600);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, "keep me", 7), 7);
    close(fd);
    struct wd_admin *a = (struct wd_admin *)1;
    char err[256];
    assert_int_equal(wd_admin_start(f->path, &f->ops, &a, err, sizeof err), WD_EBIND);
    assert_null(a);
    assert_non_null(strstr(err, "not a socket"));
    fd = open(f->path, O_RDONLY);
    assert_true(fd >= 0);
    char *content = slurp_fd(fd, NULL);
    close(fd);
    assert_string_equal(content, "keep me");
    free(content);
}

static void a_symlink_at_the_path_is_refused_and_left_in_place(void **state)
{
    struct fx *f = *state;
    assert_int_equal(symlink("elsewhere.sock", f->path), 0);
    struct wd_admin *a = (struct wd_admin *)1;
    char err[256];
    assert_int_equal(wd_admin_start(f->path, &f->ops, &a, err, sizeof err), WD_EBIND);
    assert_null(a);
    struct stat st;
    assert_int_equal(lstat(f->path, &st), 0);
    assert_true(S_ISLNK(st.st_mode));
}

static void a_path_too_long_or_empty_is_refused(void **state)
{
    struct fx *f = *state;
    struct sockaddr_un sa;
    char longpath[sizeof sa.sun_path + 16];
    int n = snprintf(longpath, sizeof longpath, "%s/", f->dir);
    memset(longpath + n, 'p', sizeof longpath - (size_t)n - 1);
    longpath[sizeof longpath - 1] = '\0';
    struct wd_admin *a = (struct wd_admin *)1;
    char err[512];
    assert_int_equal(wd_admin_start(longpath, &f->ops, &a, err, sizeof err), WD_EINVAL);
    assert_null(a);
    assert_non_null(strstr(err, "too long"));
    struct stat st;
    assert_int_not_equal(lstat(longpath, &st), 0);

    /* exactly sizeof sun_path bytes: no room for the NUL */
    longpath[sizeof sa.sun_path] = '\0';
    assert_int_equal(wd_admin_start(longpath, &f->ops, &a, err, sizeof err), WD_EINVAL);
    assert_int_equal(wd_admin_start("", &f->ops, &a, err, sizeof err), WD_EINVAL);
    assert_null(a);

    char *argv[] = {"stats"};
    struct result r = request(f, longpath, 1, argv);
    assert_int_equal(r.status, 3);
    result_free(&r);
}

static void stop_unlinks_the_socket_and_is_null_safe(void **state)
{
    struct fx *f = *state;
    start(f);
    wd_admin_stop(f->a);
    f->a = NULL;
    struct stat st;
    assert_int_not_equal(lstat(f->path, &st), 0);
    assert_int_equal(errno, ENOENT);
    wd_admin_stop(NULL);
}

static void stop_leaves_a_socket_put_in_place_of_its_own(void **state)
{
    struct fx *f = *state;
    start(f);
    /* someone replaced our socket file with theirs */
    assert_int_equal(unlink(f->path), 0);
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    memcpy(sa.sun_path, f->path, strlen(f->path) + 1);
    int other = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    assert_int_equal(bind(other, (struct sockaddr *)&sa, sizeof sa), 0);
    struct stat before, after;
    assert_int_equal(lstat(f->path, &before), 0);
    wd_admin_stop(f->a);
    f->a = NULL;
    assert_int_equal(lstat(f->path, &after), 0);
    assert_true(S_ISSOCK(after.st_mode));
    assert_int_equal(before.st_ino, after.st_ino);
    close(other);
}

/* Waits until the server has read everything sent on fd (the bytes stay charged to the
 * sender until the receiver consumes them): then it is inside this connection. */
static void wait_until_consumed(int fd)
{
    for (int i = 0; i < 10000; i++) {
        int outq = -1;
        assert_int_equal(ioctl(fd, SIOCOUTQ, &outq), 0);
        if (outq == 0)
            return;
        struct timespec ts = {0, 1000000};
        nanosleep(&ts, NULL);
    }
    fail_msg("the server never read the bytes sent");
}

static void stop_does_not_wait_for_a_silent_client(void **state)
{
    struct fx *f = *state;
    start(f);
    int silent = connect_to(f->path);
    assert_int_equal(send(silent, "sta", 3, MSG_NOSIGNAL), 3);
    wait_until_consumed(silent); /* the server now waits for the rest of the line */
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    wd_admin_stop(f->a);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    f->a = NULL;
    int64_t ms = (t1.tv_sec - t0.tv_sec) * 1000 + (t1.tv_nsec - t0.tv_nsec) / 1000000;
    assert_true(ms < WD_ADMIN_TIMEOUT_MS);
    char *rep = read_reply(silent); /* closed without a reply, not timed out */
    assert_string_equal(rep, "");
    free(rep);
    close(silent);
}

static void a_server_can_start_again_on_the_path_after_stop(void **state)
{
    struct fx *f = *state;
    start(f);
    wd_admin_stop(f->a);
    f->a = NULL;
    start(f);
    assert_still_serving(f);
}

#define T(name) cmocka_unit_test_setup_teardown(name, setup, teardown)

int main(void)
{
    const struct CMUnitTest tests[] = {
        T(flush_round_trip_calls_flush_all_and_prints_ok_and_its_lines),
        T(stats_round_trip_adds_the_missing_final_newline),
        T(flush_user_passes_spaces_newline_and_0xff_intact_with_their_length),
        T(flush_user_protocol_carries_a_nul_byte_and_uppercase_hex),
        T(flush_user_with_the_empty_name_reaches_the_callback_with_length_zero),
        T(flush_user_of_the_longest_name_fills_the_line_exactly),
        T(callback_error_is_err_with_its_reason_then_its_lines_and_exit_1),
        T(missing_callback_answers_not_supported),
        T(a_reply_over_the_limit_is_cut_and_says_so),
        T(bad_usage_returns_2_prints_usage_and_sends_nothing),
        T(request_to_a_missing_socket_returns_3),
        T(unknown_command_is_answered_err_unknown_command),
        T(garbage_gets_err_and_the_server_keeps_serving),
        T(an_overlong_line_gets_err_line_too_long_and_the_server_keeps_serving),
        T(bytes_after_the_request_line_are_ignored),
        T(a_silent_client_times_out_and_the_next_client_is_served),
        T(a_connection_that_sends_nothing_and_closes_is_not_logged),
        T(the_socket_file_has_mode_0600),
        T(a_peer_with_another_uid_is_refused_permission_denied),
        T(each_command_is_logged_at_info_with_the_user_name_escaped),
        T(a_stale_socket_file_is_replaced),
        T(a_live_socket_refuses_a_second_start_with_already_in_use),
        T(a_regular_file_at_the_path_is_refused_and_left_in_place),
        T(a_symlink_at_the_path_is_refused_and_left_in_place),
        T(a_path_too_long_or_empty_is_refused),
        T(stop_unlinks_the_socket_and_is_null_safe),
        T(stop_leaves_a_socket_put_in_place_of_its_own),
        T(stop_does_not_wait_for_a_silent_client),
        T(a_server_can_start_again_on_the_path_after_stop),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
