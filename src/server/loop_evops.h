/* SPDX-License-Identifier: Apache-2.0 */
/*
 * loop_evops.h: a worker loop (loop.h) as the struct wd_evops (core/evops.h) that the
 * store and engine layers take: the async Redis client and the hash pool run on it
 * without including anything from server/.
 */
#ifndef WD_LOOP_EVOPS_H
#define WD_LOOP_EVOPS_H

#include "core/evops.h"
#include "server/loop.h"

/* Fills *out for loop l (borrowed: it must outlive every user of *out). */
void wd_loop_evops(struct wd_loop *l, struct wd_evops *out);

#endif
