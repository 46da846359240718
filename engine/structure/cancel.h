/* SPDX-License-Identifier: MIT */
/*
 * cancel.h — cancellation: the ASYNC_CANCEL of an op, deferred cancels,
 * tr_cancel_all's waiters.
 */
#ifndef TR_CANCEL_H
#define TR_CANCEL_H

#include "io/io.h"

/* ---------------------------------------------------------------- cancel */

int tr__cancel_submit(tr_engine *e, uint32_t idx);
void tr__cancel_retry_deferred(tr_engine *e);
void tr__cancel_reaped(tr_engine *e, uint64_t ud);
void tr__cancel_notify_end(tr_engine *e, tr_task *t);

#endif /* TR_CANCEL_H */
