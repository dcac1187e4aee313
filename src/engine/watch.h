/* SPDX-License-Identifier: Apache-2.0 */
/*
 * watch.h: calls a function when a file changes on disk.
 *
 * It watches the file's directory (inotify), not the file: editors save by writing a new
 * file and renaming it over the old one, and Kubernetes updates a mounted ConfigMap by
 * swapping a symlink, and neither is seen by a watch on the old inode. After any event in
 * the directory it waits for changes to settle (debounce), then compares the file's
 * identity (device, inode, size, modification time, following symlinks) with the last
 * one it reported, and calls fn only if it differs.
 */
#ifndef WD_WATCH_H
#define WD_WATCH_H

#include <stddef.h>

struct wd_watch;

/* Starts a watcher thread. Returns NULL with a message in err on failure. */
struct wd_watch *wd_watch_start(const char *path, int debounce_ms, void (*fn)(void *ctx), void *ctx,
                                char *err, size_t errcap);
/* Stops and joins the watcher thread. */
void wd_watch_stop(struct wd_watch *w);

#endif
