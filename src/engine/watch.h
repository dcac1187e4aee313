/* SPDX-License-Identifier: Apache-2.0 */
/*
 * watch.h: calls a function when a file changes on disk.
 *
 * It watches the file's directory (inotify), not the file: editors save by writing a new
 * file and renaming it over the old one, and Kubernetes updates a mounted ConfigMap by
 * swapping a symlink, and neither is seen by a watch on the old inode.
 *
 * Only a file a writer has finished with is reported: one closed after writing
 * (IN_CLOSE_WRITE), renamed into place (IN_MOVED_TO), or reached through a symlink that
 * was created or renamed into place (atomic). Creating, truncating or writing the file
 * (IN_CREATE of a regular file, IN_MODIFY) or deleting it means a writer is at work: the
 * half-written file is never loaded, its close is awaited. After a finished write the
 * watcher waits for events to settle (debounce; a writer that starts again meanwhile
 * cancels it), then compares the file's identity (device, inode, size, modification time,
 * following symlinks) with the last one it reported, and calls fn only if it differs. A
 * deleted file is not reported (the caller keeps what it has).
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
