/* SPDX-License-Identifier: Apache-2.0 */
/*
 * admin.h: the operator's admin channel, a Unix stream socket that `warden admin ...` talks
 * to: flush every cache, flush one user's cached entries, print statistics. This module is
 * the transport, the protocol, the serving thread and the client; the engine supplies the
 * operations as callbacks, so nothing here knows what a cache is.
 *
 * Protocol (docs/operations.md, "Admin socket"): one request per connection, a single line
 * of at most WD_ADMIN_LINE_MAX bytes including its terminating '\n':
 *
 *   flush\n                   every cache
 *   flush-user HEX\n          one user's entries; HEX is the user name's bytes, two hex
 *                             digits each (either case; empty for the empty name)
 *   stats\n
 *
 * The name is hex-encoded because MQTT user names may hold any bytes, spaces, CR, LF and
 * NUL included, and must reach the callback exactly. The reply is a status line, `OK` or
 * `ERR <reason>`, then the callback's text lines; the server then closes the connection.
 *
 * Access: the socket file is created with mode 0600, and the server also checks the peer's
 * uid (SO_PEERCRED) and refuses every uid but root and the daemon's own effective uid.
 */
#ifndef WD_ADMIN_H
#define WD_ADMIN_H

#include <stddef.h>

#include "core/buf.h"

/* Longest request line, the '\n' included; longer ones are answered `ERR line too long`. */
#define WD_ADMIN_LINE_MAX 4096
/* Longest user name `flush-user` can carry: what fits in one line as hex. */
#define WD_ADMIN_USER_MAX ((WD_ADMIN_LINE_MAX - 1 - (sizeof "flush-user " - 1)) / 2)
/* A connection must deliver its request line within this (then `ERR timed out`); the reply
 * must be taken within this too. The server serves one connection at a time, so this bounds
 * how long a silent client can hold up the next one. */
#define WD_ADMIN_TIMEOUT_MS 2000
/* The callbacks' text is cut at this size (a line says so). */
#define WD_ADMIN_REPLY_MAX (1u << 20)

/* The operations, supplied by the engine. Each is called on the admin thread (one call at a
 * time, concurrently with the worker threads), returns WD_OK or an error code, and writes
 * human-readable lines to out (whose limit is set; a missing final '\n' is added). On an
 * error the reply is `ERR <wd_rc_str(rc)>` followed by what was written. A NULL callback
 * answers `ERR not supported`. ctx is passed to each and must outlive the server. */
struct wd_admin_ops {
    int (*flush_all)(void *ctx, struct wd_buf *out);
    /* user: len bytes, any values (NUL included), not NUL-terminated, may be empty; borrowed
     * for the duration of the call. */
    int (*flush_user)(void *ctx, const char *user, size_t len, struct wd_buf *out);
    int (*stats)(void *ctx, struct wd_buf *out);
    void *ctx;
};

struct wd_admin;

/* Binds a SOCK_STREAM AF_UNIX socket at path with mode 0600 (umask around bind(2): call
 * this at start-up, before other threads create files) and starts one thread that serves
 * connections one at a time. ops is copied. What is at path decides:
 *   - nothing: bind;
 *   - a socket something accepts connections on: fail, "already in use";
 *   - a stale socket (connection refused: its daemon died): unlink it, bind;
 *   - anything else (regular file, directory, symlink): fail; it is never unlinked.
 * A path that does not fit in sun_path (or is empty) is refused.
 * Returns WD_OK and the server in *out; or WD_EINVAL (path unusable) or WD_EBIND (in use,
 * not a socket, socket/bind/listen failed, no thread) with a message in err, *out NULL. */
int wd_admin_start(const char *path, const struct wd_admin_ops *ops, struct wd_admin **out,
                   char *err, size_t errcap);

/* Stops the thread (at once, even mid-connection), closes the socket and unlinks the socket
 * file if it is still the one wd_admin_start created. NULL-safe. */
void wd_admin_stop(struct wd_admin *a);

/* The client, for `warden admin ARGS`. argv holds the arguments after "admin" (argv[0] is
 * the command): `flush`, `flush --user NAME` or `stats`. Connects to path, sends the
 * request, writes the whole reply, status line included, to out_fd. Usage errors and
 * transport failures are reported on fd 2. Returns the exit status: 0 the server answered
 * OK, 1 it answered ERR (or the reply was cut off or late), 2 bad usage (nothing is sent),
 * 3 cannot connect. */
int wd_admin_request(const char *path, int argc, char **argv, int out_fd);

#endif
