/* SPDX-License-Identifier: MIT */
/*
 * engine.c — creating, running and destroying an engine.
 */
#include "tr_internal.h"

#include <errno.h>
#include <pthread.h>
#include <string.h>
#include <unistd.h>

#define TR_SQ_MAX 32768u
#define TR_CQ_MAX 65536u               /* the kernel's IORING_MAX_CQ_ENTRIES */
#define TR_STACK_MAX ((size_t)1 << 30) /* 1 GiB: beyond, a typo, not a stack */

void tr_config_init(struct tr_config *cfg)
{
    if (!cfg)
        return;
    memset(cfg, 0, sizeof(*cfg));
    cfg->sq_entries = 256;
    cfg->cq_entries = 0;
    cfg->stack_size = TR_STACK_DEFAULT;
    cfg->drain_ms = 0;
    cfg->grace_ms = 5000;
    cfg->kill_ms = 2000;
    sigemptyset(&cfg->shutdown_signals);
    sigaddset(&cfg->shutdown_signals, SIGINT);
    sigaddset(&cfg->shutdown_signals, SIGTERM);
    cfg->report_fd = 2;
    cfg->flags = 0;
}

static pthread_once_t opdefs_once = PTHREAD_ONCE_INIT;

/* The live engines, for tr__engine_serial_live: a stale scope of a
 * destroyed engine is told apart from one of another engine that lives. */
static pthread_mutex_t live_mu = PTHREAD_MUTEX_INITIALIZER;
static tr_engine *live_head;
static _Atomic uint64_t last_serial;

static void live_add(tr_engine *e)
{
    e->serial = atomic_fetch_add(&last_serial, 1) + 1;
    pthread_mutex_lock(&live_mu);
    e->live_next = live_head;
    live_head = e;
    pthread_mutex_unlock(&live_mu);
}

static void live_remove(tr_engine *e)
{
    pthread_mutex_lock(&live_mu);
    for (tr_engine **p = &live_head; *p; p = &(*p)->live_next)
        if (*p == e) {
            *p = e->live_next;
            break;
        }
    pthread_mutex_unlock(&live_mu);
}

bool tr__engine_serial_live(uint64_t serial)
{
    bool live = false;
    pthread_mutex_lock(&live_mu);
    for (const tr_engine *x = live_head; x && !live; x = x->live_next)
        live = x->serial == serial;
    pthread_mutex_unlock(&live_mu);
    return live;
}

int tr_engine_create(tr_engine **out, const struct tr_config *cfg)
{
    struct tr_config dflt;
    if (!out)
        return -EINVAL;
    *out = NULL;
    if (!cfg) {
        tr_config_init(&dflt);
        cfg = &dflt;
    }
    if (cfg->sq_entries == 0 || cfg->sq_entries > TR_SQ_MAX)
        return -EINVAL;
    if (cfg->cq_entries && (cfg->cq_entries < cfg->sq_entries || cfg->cq_entries > TR_CQ_MAX))
        return -EINVAL;
    if (cfg->stack_size && (cfg->stack_size < TR_STACK_MIN || cfg->stack_size > TR_STACK_MAX))
        return -EINVAL;
    if (cfg->flags & ~TR_CFG_NO_SIGNALS)
        return -EINVAL;
    if (cfg->task_prefill > TR_PREFILL_MAX)
        return -EINVAL;
    if (!(cfg->flags & TR_CFG_NO_SIGNALS) && !tr__shutdown_signals_ok(&cfg->shutdown_signals))
        return -EINVAL;
    pthread_once(&opdefs_once, tr__opdefs_check);

    tr_engine *e = calloc(1, sizeof(*e));
    if (!e)
        return -ENOMEM;
    e->rs.sq_entries = cfg->sq_entries;
    /* Room for a cancel storm (every in-flight op's CQE plus its cancel's)
     * without leaning on the kernel's overflow list. At least 8192: the
     * kernel sizes its cancel hash from the CQ (ilog2(cq) - 5 bits, at most
     * 8), and each per-op cancel walks one bucket of it. */
    e->rs.cq_entries = cfg->cq_entries
                           ? cfg->cq_entries
                           : (cfg->sq_entries * 16 > 8192 ? cfg->sq_entries * 16 : 8192);
    if (e->rs.cq_entries < cfg->sq_entries * 2)
        e->rs.cq_entries = cfg->sq_entries * 2;
    if (e->rs.cq_entries > TR_CQ_MAX)
        e->rs.cq_entries = TR_CQ_MAX;
    e->stk.size = tr__stack_round(cfg->stack_size ? cfg->stack_size : TR_STACK_DEFAULT);
    e->cfg_flags = cfg->flags;
    e->ops.free = TR_OP_NONE;
    e->drain_ms = cfg->drain_ms;
    e->grace_ms = cfg->grace_ms;
    e->kill_ms = cfg->kill_ms;
    e->report_fd = cfg->report_fd;
    e->emb.fd = -1;
    e->emb.armed_at = UINT64_MAX;
    tr__list_init(&e->sch.end_listeners);
    tr__list_init(&e->groups);
    tr__waitq_init(&e->sd_stop);
    tr__timers_init(e);
    tr__waitq_init(&e->sq_room);
    int err = tr__inbox_init(e);
    if (err) {
        free(e);
        return err;
    }
    err = tr__ring_init(e, cfg);
    if (err) {
        pthread_mutex_destroy(&e->ib.mu);
        free(e);
        return err;
    }
    err = tr__sigwake_open(e, cfg);
    if (err) {
        tr__ring_exit(e);
        pthread_mutex_destroy(&e->ib.mu);
        free(e);
        return err;
    }
    tr__guard_thread_init();
    live_add(e);
    if (cfg->task_prefill) {
        err = tr__task_records_prefill(e, cfg->task_prefill);
        if (!err)
            err = tr__stack_prefill(e, cfg->task_prefill);
        if (err) {
            (void)tr_engine_destroy(e); /* nothing ran: it frees all */
            return err;
        }
    }
    *out = e;
    return 0;
}

int tr__run_enter(tr_engine *e, bool first)
{
    if (tr__current)
        return -EPERM;
    if (e->sch.running)
        return -EBUSY;
    /* A SINGLE_ISSUER ring refuses every thread but the one that enabled
     * it (-EEXIST): say so before a task runs, or it would run and leave
     * an op in flight that nobody can submit or reap. */
    if (e->rs.enabled && e->rs.single_issuer && !pthread_equal(e->rs.thread, pthread_self()))
        return -EEXIST;
    int err = tr__ring_enable(e);
    if (err)
        return err;
    if (first)
        tr__shutdown_rearm(e);
    tr__ring_register(e);
    tr__guard_thread_init();
    e->sch.running = true;
    return 0;
}

void tr__run_leave(tr_engine *e)
{
    /* The registered ring fd lives in this thread's table: give it back
     * here, so an engine destroyed (or run) on another thread leaks no
     * ring. The next run registers again. */
    tr__ring_unregister(e);
    e->sch.running = false;
}

int tr_engine_run(tr_engine *e)
{
    if (!e)
        return -EINVAL;
    int err = tr__run_enter(e, true);
    if (err)
        return err;
    err = tr__engine_loop(e);
    tr__run_leave(e);
    return err;
}

static bool engine_quiet(tr_engine *e)
{
    return !e->sch.running && e->sch.live == 0 && e->ops.inflight == 0 &&
           e->ops.cancels_inflight == 0 && e->sw.inflight == 0 && tr__ring_sq_pending(e) == 0 &&
           tr__ring_cq_empty(e) && !tr__ring_overflow_pending(e);
}

int tr_engine_destroy(tr_engine *e)
{
    if (!e)
        return -EINVAL;
    if (tr__current && tr__current->e == e)
        return -EBUSY;
    if (!engine_quiet(e) || tr__inbox_close_for_destroy(e) != 0)
        return -EBUSY;
    TR_ASSERT(e->sch.run_head == NULL);
    TR_ASSERT(e->sch.all_head == NULL);
    TR_ASSERT(e->tm.len == 0);
    bool had_signals = e->sw.sigfd >= 0;
    live_remove(e);
    tr__ring_exit(e);
    struct tr__sig_release rel;
    tr__sigwake_close(e, &rel);
    if (e->sd.phase == TR_PH_DONE && e->report_fd >= 0 && !e->ls) { /* a cluster says it once */
        char line[128];
        int n = snprintf(line, sizeof(line), "taskring:   ring closed%s\n",
                         had_signals ? ", signalfd closed, signal mask restored" : "");
        if (n > 0)
            tr__report_line(e, line, (size_t)n < sizeof(line) ? (size_t)n : sizeof(line) - 1);
    }
    if (e->emb.fd >= 0)
        close(e->emb.fd); /* the ring that signalled it is gone */
    tr__task_reserve_release(e);
    tr__task_records_free(e);
    tr__stack_pool_drain(e);
    TR_ASSERT(e->st.stacks_guarded == 0);
    TR_ASSERT(e->st.stacks_canary == 0);
    tr__timer_free(e);
    tr__op_table_free(e);
    free(e->hooks);
    free(e);
    tr__sig_release(&rel);
    return 0;
}

#if defined(TR_HAVE_VALGRIND_H)
/* Read by TR_VG_INIT_CHECK (base.h); set before main, only read after. */
bool tr__on_valgrind;

__attribute__((constructor)) static void detect_valgrind(void)
{
    tr__on_valgrind = RUNNING_ON_VALGRIND != 0;
}

void tr__vg_init_check(const void *p, size_t n)
{
    (void)VALGRIND_MAKE_MEM_DEFINED_IF_ADDRESSABLE(p, n);
}
#endif
