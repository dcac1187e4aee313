/* SPDX-License-Identifier: Apache-2.0 */
/*
 * declog.h: the decision log (`decision_log FILE|stderr|off`, `decision_log_events
 * deny|all`): one JSON object per line per decision, for audit and for finding out why a
 * device was refused without turning on debug logs.
 *
 * The worker that decided formats the line (core/json.h escapes every string: client ids,
 * usernames and topics come from devices) and hands it to a bounded queue; one writer
 * thread writes it. When the queue is full the line is dropped and counted
 * (warden_decision_log_dropped_total): a call never waits for the disk. The queue's lock is
 * held only to push or take a pointer.
 *
 * What a line never holds: a password, a token (with `jwt_from username` the username is
 * the token, so it is left out), a hash, a secret. The engine's reasons are static texts
 * that name none.
 *
 * Rotation: wd_declog_reopen() (SIGUSR1) makes the writer open the path again before its
 * next write; the old file is closed once what was queued before is written. stderr is
 * never reopened.
 *
 * The log is process-wide (one per process, like the metrics): wd_declog_emit() is a no-op
 * until wd_declog_start() and after wd_declog_stop().
 */
#ifndef WD_SERVER_DECLOG_H
#define WD_SERVER_DECLOG_H

#include <stdbool.h>
#include <stddef.h>
#include <time.h>

#include "core/config.h"
#include "core/request.h"
#include "engine/engine.h"

/* One decision, borrowed for the call. */
struct wd_declog_event {
    const char *hook; /* "client.authenticate", "client.authorize" */
    const struct wd_client *client;
    bool username_is_token; /* jwt_from username: the username is not written */
    const char *action;     /* "publish", "subscribe", or NULL (authenticate) */
    const char *topic;      /* NULL for authenticate */
    size_t topic_len;
    const struct wd_verdict *verdict;
};

/* Starts the log the configuration asks for (nothing when decision_log is unset or off).
 * policy is the policy file named in the `rule` field (NULL: "<embedded>"). WD_OK, or an
 * error with err set (the file cannot be opened). */
int wd_declog_start(const struct wd_config *cfg, const char *policy, char *err, size_t errcap);

/* Writes what is queued, stops the writer, closes the file. Safe when not started. */
void wd_declog_stop(void);

/* Asks the writer to reopen the file (log rotation; main calls it on SIGUSR1, taken by
 * sigwait, so never from a signal handler). Thread-safe; a no-op when not started. */
void wd_declog_reopen(void);

/* Whether a decision d would be written (cheap: call before building an event). */
bool wd_declog_wants(enum wd_decision d);

/* Queues the line for ev (or counts a drop). Never blocks on I/O. */
void wd_declog_emit(const struct wd_declog_event *ev);

/* Formats ev as one JSON line (newline included) into out; `now` is the decision's time
 * (CLOCK_REALTIME) and policy the policy file name. For tests and wd_declog_emit. */
void wd_declog_format(struct wd_buf *out, const struct wd_declog_event *ev, const char *policy,
                      const struct timespec *now);

#endif
