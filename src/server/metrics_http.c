/* SPDX-License-Identifier: Apache-2.0 */
/*
 * metrics_http.c: see metrics_http.h. The only user of libmicrohttpd.
 *
 * Responses are built whole before they are queued (a scrape is a few tens of KiB) and
 * handed to MHD, which frees them. MHD's own error messages (a connection refused at the
 * limit, a timeout) go to the debug log: under a flood they would otherwise be one line per
 * refused connection.
 */
#include "server/metrics_http.h"

#include <dirent.h>
#include <errno.h>
#include <netdb.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <microhttpd.h>

#include "core/config.h"
#include "core/log.h"
#include "core/wd.h"

#ifndef WD_VERSION
#define WD_VERSION "0.0.0"
#endif

#define EXTRA_MAX 64

struct wd_metrics_http {
    struct MHD_Daemon *d;
    struct wd_metrics_http_ops ops;
    atomic_bool stopping;
    double start_time; /* Unix seconds */
};

static void mhd_log(void *cls, const char *fmt, va_list ap)
{
    (void)cls;
    if (!wd_log_enabled(WD_LOG_DEBUG))
        return;
    char line[512];
    vsnprintf(line, sizeof line, fmt, ap);
    size_t n = strlen(line);
    while (n && (line[n - 1] == '\n' || line[n - 1] == '\r'))
        line[--n] = '\0';
    wd_log_debug("metrics", "http: %s", line);
}

static size_t add(struct wd_metrics_sample *s, size_t i, const char *family,
                  enum wd_metrics_type type, const char *help, const char *labels, double v)
{
    if (i >= EXTRA_MAX)
        return i;
    s[i].family = family;
    s[i].type = type;
    s[i].help = help;
    snprintf(s[i].labels, sizeof s[i].labels, "%s", labels);
    s[i].value = v;
    return i + 1;
}

static double open_fds(void)
{
    DIR *d = opendir("/proc/self/fd");
    if (!d)
        return -1;
    double n = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL)
        if (e->d_name[0] != '.')
            n++;
    closedir(d);
    return n - 1; /* the directory's own fd */
}

static size_t process_samples(const struct wd_metrics_http *m, struct wd_metrics_sample *s,
                              size_t i)
{
    const enum wd_metrics_type G = WD_METRICS_GAUGE;
    i = add(s, i, "process_open_fds", G, "Number of open file descriptors.", "", open_fds());
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0)
        i = add(s, i, "process_max_fds", G, "Maximum number of open file descriptors.", "",
                rl.rlim_cur == RLIM_INFINITY ? -1 : (double)rl.rlim_cur);
    FILE *f = fopen("/proc/self/statm", "r");
    unsigned long long size = 0, rss = 0;
    if (f) {
        if (fscanf(f, "%llu %llu", &size, &rss) != 2)
            size = rss = 0;
        fclose(f);
    }
    double page = (double)sysconf(_SC_PAGESIZE);
    i = add(s, i, "process_resident_memory_bytes", G, "Resident memory size in bytes.", "",
            (double)rss * page);
    i = add(s, i, "process_virtual_memory_bytes", G, "Virtual memory size in bytes.", "",
            (double)size * page);
    struct rusage ru;
    if (getrusage(RUSAGE_SELF, &ru) == 0)
        i = add(s, i, "process_cpu_seconds_total", WD_METRICS_COUNTER,
                "Total user and system CPU time spent in seconds.", "",
                (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 +
                    (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec / 1e6);
    i = add(s, i, "process_start_time_seconds", G,
            "Start time of the process since unix epoch in seconds.", "", m->start_time);
    return i;
}

static void render_metrics(struct wd_metrics_http *m, struct wd_buf *out)
{
    struct wd_metrics_sample *s = wd_calloc(EXTRA_MAX, sizeof *s);
    size_t n = 0;
    char ver[64];
    char labels[96];
    snprintf(labels, sizeof labels, "version=\"%s\"",
             wd_metrics_label_escape(ver, sizeof ver, WD_VERSION));
    n = add(s, n, "warden_build_info", WD_METRICS_GAUGE, "warden's version (always 1)", labels, 1);
    uint64_t acc = wd_metrics_get(WD_M_CONN_ACCEPTED), cl = wd_metrics_get(WD_M_CONN_CLOSED);
    n = add(s, n, "warden_connections", WD_METRICS_GAUGE,
            "connections open now (transport h2): accepted minus closed", "",
            acc > cl ? (double)(acc - cl) : 0);
    if (m->ops.collect)
        n += m->ops.collect(m->ops.ctx, s + n, EXTRA_MAX - n);
    n = process_samples(m, s, n);
    wd_metrics_render(out, s, n);
    free(s);
}

static enum MHD_Result answer(struct MHD_Connection *c, unsigned status, const char *type,
                              struct wd_buf *body)
{
    if (!body->s)
        wd_buf_puts(body, "");
    /* MHD frees the text (MUST_FREE: free()) */
    struct MHD_Response *r =
        MHD_create_response_from_buffer(body->len, body->s, MHD_RESPMEM_MUST_FREE);
    body->s = NULL;
    if (!r)
        return MHD_NO;
    MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, type);
    MHD_add_response_header(r, "Cache-Control", "no-store");
    if (status == MHD_HTTP_METHOD_NOT_ALLOWED)
        MHD_add_response_header(r, MHD_HTTP_HEADER_ALLOW, "GET");
    enum MHD_Result rc = MHD_queue_response(c, status, r);
    MHD_destroy_response(r);
    return rc;
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *c, const char *url,
                                  const char *method, const char *version, const char *upload_data,
                                  size_t *upload_data_size, void **con_cls)
{
    struct wd_metrics_http *m = cls;
    struct wd_buf body = {0};
    static const char text[] = "text/plain; charset=utf-8";
    (void)version;
    (void)upload_data;
    (void)con_cls;
    if (strcmp(method, MHD_HTTP_METHOD_GET) != 0) {
        wd_buf_puts(&body, "only GET\n");
        return answer(c, MHD_HTTP_METHOD_NOT_ALLOWED, text, &body);
    }
    if (*upload_data_size != 0) {
        /* a GET with a body: refused, the body is not read */
        *upload_data_size = 0;
        wd_buf_puts(&body, "no body expected\n");
        return answer(c, MHD_HTTP_BAD_REQUEST, text, &body);
    }
    if (strcmp(url, "/metrics") == 0) {
        render_metrics(m, &body);
        return answer(c, MHD_HTTP_OK, "text/plain; version=0.0.4; charset=utf-8", &body);
    }
    if (strcmp(url, "/healthz") == 0) {
        wd_buf_puts(&body, "ok\n");
        return answer(c, MHD_HTTP_OK, text, &body);
    }
    if (strcmp(url, "/readyz") == 0) {
        struct wd_buf why = {0};
        bool ok;
        if (atomic_load(&m->stopping)) {
            ok = false;
            wd_buf_puts(&why, "stopping: the server is draining\n");
        } else {
            ok = m->ops.ready ? m->ops.ready(m->ops.ctx, &why) : true;
        }
        wd_buf_puts(&body, ok ? "ready\n" : "not ready\n");
        if (why.s)
            wd_buf_put(&body, why.s, why.len);
        wd_buf_free(&why);
        return answer(c, ok ? MHD_HTTP_OK : MHD_HTTP_SERVICE_UNAVAILABLE, text, &body);
    }
    wd_buf_puts(&body, "not found: /metrics, /healthz, /readyz\n");
    return answer(c, MHD_HTTP_NOT_FOUND, text, &body);
}

int wd_metrics_http_start(const char *listen, const struct wd_metrics_http_ops *ops,
                          struct wd_metrics_http **out, char *err, size_t errcap)
{
    *out = NULL;
    char host[256];
    const char *port;
    if (!wd_config_listen_split(listen, host, sizeof host, &port) || !*port) {
        snprintf(err, errcap, "metrics_listen %s: not HOST:PORT", listen);
        return WD_EINVAL;
    }
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM}, *ai = NULL;
    int g = getaddrinfo(host, port, &hints, &ai);
    if (g != 0 || !ai) {
        snprintf(err, errcap, "metrics_listen %s: %s", listen, gai_strerror(g));
        return WD_EINVAL;
    }
    struct wd_metrics_http *m = wd_calloc(1, sizeof *m);
    m->ops = *ops;
    struct timespec now;
    clock_gettime(CLOCK_REALTIME, &now);
    m->start_time = (double)now.tv_sec + (double)now.tv_nsec / 1e9;
    unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_EPOLL | MHD_USE_ERROR_LOG;
    if (ai->ai_family == AF_INET6)
        flags |= MHD_USE_IPv6;
    m->d = MHD_start_daemon(flags, 0, NULL, NULL, on_request, m, MHD_OPTION_SOCK_ADDR, ai->ai_addr,
                            MHD_OPTION_CONNECTION_LIMIT, (unsigned)WD_METRICS_HTTP_CONNS,
                            MHD_OPTION_PER_IP_CONNECTION_LIMIT, (unsigned)WD_METRICS_HTTP_PER_IP,
                            MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)WD_METRICS_HTTP_TIMEOUT_S,
                            MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)WD_METRICS_HTTP_MEMORY,
                            MHD_OPTION_LISTEN_BACKLOG_SIZE, (unsigned)16,
                            MHD_OPTION_EXTERNAL_LOGGER, mhd_log, NULL, MHD_OPTION_END);
    int e = errno;
    freeaddrinfo(ai);
    if (!m->d) {
        snprintf(err, errcap, "metrics_listen %s: cannot listen (%s)", listen,
                 e ? strerror(e) : "libmicrohttpd refused the options");
        free(m);
        return WD_EBIND;
    }
    *out = m;
    return WD_OK;
}

void wd_metrics_http_stopping(struct wd_metrics_http *m)
{
    if (m)
        atomic_store(&m->stopping, true);
}

void wd_metrics_http_stop(struct wd_metrics_http *m)
{
    if (!m)
        return;
    MHD_stop_daemon(m->d);
    free(m);
}
