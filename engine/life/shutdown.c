/* SPDX-License-Identifier: MIT */
/*
 * shutdown.c — the phases of DESIGN section 4, driven by the scheduler.
 *
 * The trigger (a signal read from the signalfd, tr_engine_shutdown, or the
 * end of tr_run's main task) only requests; each scheduling pass then calls
 * tr__shutdown_pass, which moves through the phases as their conditions and
 * deadlines are met. Deadlines feed the pass's wait timeout, so a phase
 * never waits longer than it must. Phases:
 *   STOP   tr_shutting_down() is true, tr_wait_shutdown() waiters wake, new
 *          spawns start cancelled; drain_ms for tasks to end on their own.
 *   DRAIN  every task is cancelled (LATE ones once all others ended); the
 *          engine reaps until all have ended. Shields hold until grace_ms
 *          after the trigger or the 2nd signal, then break.
 *   KILL   kill_ms after the shields broke, or at the 3rd signal: each
 *          straggler's op is cancelled, its CQE reaped, and the task is
 *          never resumed; its stack is freed (G1), what it owned leaks.
 *   FINAL  tr_at_shutdown hooks run LIFO in a task; the audit; the report.
 */
#include "tr_internal.h"

#include <errno.h>
#include <string.h>
#if defined(__SANITIZE_ADDRESS__)
#include <sanitizer/asan_interface.h>
#endif

#define MS(x) ((uint64_t)(x)*1000000ull)

static void record_name(struct tr__sd_name *arr, unsigned *n, tr_task *t, int result)
{
    if (*n < TR_SD_NAMES) {
        struct tr__sd_name *r = &arr[*n];
        r->id = t->id;
        r->result = result;
        memcpy(r->name, tr_task_name(t), TR_NAME_MAX);
    }
    (*n)++;
}

void tr__scopes_left_record(tr_engine *e, tr_task *t, unsigned n)
{
    record_name(e->scopes_left, &e->nscopes_left, t, (int)n);
}

void tr__group_failures_record(tr_engine *e, tr_task *t, size_t nfail, int first)
{
    if (e->sd.ngfail < TR_SD_NAMES)
        e->sd.gfail_n[e->sd.ngfail] = nfail;
    record_name(e->sd.gfail, &e->sd.ngfail, t, first);
}

void tr__groups_left_record(tr_engine *e, tr_task *t, unsigned live)
{
    record_name(e->groups_left, &e->ngroups_left, t, (int)live);
}

/* ---- the trigger ---------------------------------------------------------- */

/* A run after a finished shutdown honours the ladder again (DESIGN
 * section 4): a trigger during it starts a new shutdown from Stop.
 * Shutdown signals that came since the last one ended belong to it (they
 * came while it finished) and are consumed here (tr_engine_shutdown calls
 * made during it were consumed when it ended; one made after it starts the
 * next shutdown), and signals read
 * after DONE in the run that finished it change nothing either. */
void tr__shutdown_rearm(tr_engine *e)
{
    if (e->sd.phase != TR_PH_DONE)
        return;
    tr__sig_drain_pending(e);
    e->sd_next_ok = true;
    e->sd_next_signal = 0;
}

/* A new shutdown after a finished one: the old one's record makes room. */
static void sd_restart(tr_engine *e)
{
    int signo = e->sd_next_signal;
    memset(&e->sd, 0, sizeof(e->sd));
    e->sd_next_ok = false;
    e->sd_next_signal = 0;
    e->main_returned = false;
    e->st.signals_received = e->sd.signals = signo ? 1 : 0;
    if (signo) {
        e->sd.trigger = TR_TRIG_SIGNAL;
        e->sd.trigger_signo = signo;
    }
}

void tr__shutdown_on_signal(tr_engine *e, int signo)
{
    if (e->sd.phase == TR_PH_DONE) {
        if (e->sd_next_ok && !e->sd_next_signal)
            e->sd_next_signal = signo; /* starts the next shutdown */
        else
            e->st.signals_received++; /* the finished one's */
        return;
    }
    e->st.signals_received++;
    e->sd.signals++;
    if (e->sd.phase == TR_PH_NONE && e->sd.trigger == TR_TRIG_NONE) {
        e->sd.trigger = TR_TRIG_SIGNAL;
        e->sd.trigger_signo = signo;
    }
}

/* ---- the shutdown event: tasks parked in tr_wait_shutdown ------------------ */

const struct tr__wait_kind tr__wk_shutdown = {
    .name = "shutdown-wait",
    .cancel = tr__waitq_cancel,
    .kill = tr__waitq_kill,
};

/* ---- the lockstep (engine.h) ------------------------------------------------- */

void tr__lockstep_join(tr_engine *e, struct tr__lockstep *ls, unsigned index)
{
    TR_ASSERT(index < ls->n);
    e->ls = ls;
    e->ls_index = index;
}

bool tr__lockstep_done(const struct tr__lockstep *ls)
{
    return atomic_load_explicit(&ls->arrived[TR_GATE_DONE], memory_order_acquire) == ls->n;
}

static void ls_wake_others(tr_engine *e)
{
    for (unsigned i = 0; i < e->ls->n; i++)
        if (e->ls->engines[i] != e)
            tr__wake_write(e->ls->engines[i]);
}

/* Has every engine arrived at gate g? e arrives when ready (once: its
 * condition, once true, stays true). Without a lockstep: ready. */
static bool gate(tr_engine *e, enum tr__gate g, bool ready)
{
    struct tr__lockstep *ls = e->ls;
    if (!ls)
        return ready;
    if (ready && !e->ls_arrived[g]) {
        e->ls_arrived[g] = true;
        if (atomic_fetch_add_explicit(&ls->arrived[g], 1, memory_order_acq_rel) + 1 == ls->n)
            ls_wake_others(e); /* the last: the others sleep until told */
    }
    return atomic_load_explicit(&ls->arrived[g], memory_order_acquire) == ls->n;
}

void tr__lockstep_leave(tr_engine *e)
{
    for (int g = 0; g < TR_GATES; g++)
        (void)gate(e, (enum tr__gate)g, true);
}

void tr__lockstep_signal(tr_engine *e, int signo)
{
    struct tr__lockstep *ls = e->ls;
    if (!ls)
        return;
    for (unsigned i = 0; i < ls->n; i++) {
        tr_engine *x = ls->engines[i];
        if (x == e)
            continue;
        atomic_store_explicit(&x->sw.peer_signo, signo, memory_order_relaxed);
        atomic_fetch_add_explicit(&x->sw.peer_signals, 1, memory_order_release);
        tr__wake_write(x);
    }
}

/* e begins its Stop: so does every engine of its lockstep, with the
 * deadlines of the first one's trigger. Returns the trigger's time. */
static uint64_t ls_begin(tr_engine *e, uint64_t now)
{
    struct tr__lockstep *ls = e->ls;
    uint64_t first = 0;
    if (atomic_compare_exchange_strong(&ls->t_trigger, &first, now)) {
        atomic_store(&ls->trigger, e->sd.trigger);
        atomic_store(&ls->trigger_signo, e->sd.trigger_signo);
        for (unsigned i = 0; i < ls->n; i++) {
            tr_engine *x = ls->engines[i];
            if (x != e)
                (void)tr_engine_shutdown(x);
        }
        return now;
    }
    return first;
}

/* The main task of a lockstep engine ended: the first failure shuts every
 * engine down, and so does the end of the last main. A main cancelled by
 * the shutdown did not fail. */
static void ls_main_ended(tr_engine *e, int result)
{
    struct tr__lockstep *ls = e->ls;
    bool failed = result < 0 && !(result == -ECANCELED && tr__shutdown_begun(e));
    int none = 0;
    if (failed)
        (void)atomic_compare_exchange_strong(&ls->first_err, &none, result);
    if (atomic_fetch_sub(&ls->mains_left, 1) == 1 || failed)
        atomic_store_explicit(&e->shutdown_req, 1, memory_order_relaxed);
}

static void sd_begin(tr_engine *e, uint64_t now)
{
    struct tr__shutdown *sd = &e->sd;
    if (sd->trigger == TR_TRIG_NONE)
        sd->trigger = e->main_returned ? TR_TRIG_MAIN : TR_TRIG_CALL;
    if (e->ls)
        now = ls_begin(e, now);
    sd->phase = TR_PH_STOP;
    sd->t_trigger = now;
    sd->drain_deadline = now + MS(e->drain_ms);
    sd->grace_deadline = now + MS(e->grace_ms);
    sd->ok0 = e->st.tasks_ok;
    sd->cancelled0 = e->st.tasks_cancelled;
    sd->failed0 = e->st.tasks_failed;
    sd->killed0 = e->st.tasks_killed;
    sd->cancels0 = e->st.cancels_submitted;
    sd->completed0 = e->st.ops_completed;
    sd->stale0 = e->st.cqe_stale;
    sd->cuts0 = e->st.deadline_cuts;
    sd->prim0 = e->st.prim_waits_cut;
    (void)tr__waitq_wake_all(&e->sd_stop, 0); /* once, at the trigger */
    tr__inbox_shut(e);                        /* tr_post and tr_call get -ESHUTDOWN from now on */
}

/* ---- cancel, break shields, kill ------------------------------------------ */

static void cancel_tasks(tr_engine *e, bool late)
{
    for (tr_task *t = e->sch.all_head; t; t = t->all_next) {
        if (t->late != late || t->internal || tr__task_cancelled(t))
            continue;
        e->sd.tasks_cancelled_by_sd++;
        (void)tr_cancel(t);
    }
}

static void break_shields(tr_engine *e, uint64_t now)
{
    /* The dump first: it shows what each straggler was waiting for. */
    if (e->sch.live > 0 && !e->sd.dumped && e->report_fd >= 0) {
        static const char hdr[] =
            "taskring: shields broken (grace period over or 2nd signal); tasks still alive:\n";
        e->sd.dumped = true;
        tr__report_line(e, hdr, sizeof(hdr) - 1);
        tr_engine_dump(e, e->report_fd);
    }
    e->sd.shields_broken = true;
    e->sd.t_grace = now;
    e->sd.kill_deadline = now + MS(e->kill_ms);
    /* Cancellation now ignores shields: re-check every parked task (running
     * ones see it at their next blocking call). */
    for (tr_task *t = e->sch.all_head; t; t = t->all_next)
        if (t->state == TR_TASK_PARKED && !t->internal)
            tr__wait_recheck(e, t);
}

/* The kill rung reaches a task only once its cancellation was delivered:
 * it was resumed knowing it, or it is parked on a kernel op whose cancel
 * was submitted and reaped (DESIGN section 4). Three signals within a
 * millisecond must not kill a task that was runnable and would have ended
 * on its first -ECANCELED; it is reconsidered at the next pass. */
static void kill_task(tr_engine *e, tr_task *t)
{
    /* Returned, waiting for its abandoned groups' children (G10): they are
     * killed, and it ends with its own result once the last has ended. */
    if (t->killed || TR_UNLIKELY(t->returned))
        return;
    if (!tr__task_cancelled(t))
        (void)tr_cancel(t); /* spawned after the cancel rung */
    if (!t->cancel_delivered) {
        if (t->state == TR_TASK_PARKED) /* shields are broken: deliver it */
            tr__wait_recheck(e, t);
        return;
    }
    /* G10: an owner goes after its groups' children (its stack holds what
     * they were given); they are killed meanwhile, and the last one's end
     * wakes it. */
    if (TR_UNLIKELY(t->groups != NULL) && tr__groups_live(t))
        return;
    /* Parked, or woken and not yet run: its wait may ask for a later pass. */
    if (t->wait && t->wait_kind->kill_later && t->wait_kind->kill_later(t))
        return;
    t->killed = true;
    if (t->state != TR_TASK_PARKED)
        return; /* READY: tr__run_task tears it down instead of running it */
    /* Never resumed, but a kernel op's CQE must be reaped before the stack
     * goes (G1): the wait's kill makes sure a cancel is on its way; every
     * other wait ends at once. */
    const struct tr__wait_kind *k = t->wait_kind;
    if (k->kill)
        k->kill(e, t);
    else
        k->cancel(e, t);
}

static void kill_all(tr_engine *e, bool internal_too)
{
    for (tr_task *t = e->sch.all_head; t; t = t->all_next) {
        if (t->late && !e->sd.late_cancelled)
            continue; /* not cancelled yet: others are alive (see KILL) */
        if (!t->internal || internal_too)
            kill_task(e, t);
    }
}

/* Called by tr__run_task for a killed task, instead of switching to it. */
void tr__kill_teardown(tr_engine *e, tr_task *t)
{
    TR_ASSERT(t->killed);
    TR_ASSERT(t->state == TR_TASK_READY);
    if (t->wait) {
        /* Woken from its wait (an op's CQE, a sleep cut short): the kernel
         * is done with the stack; what the wait holds goes back. */
        if (t->wait_kind->reap)
            t->wait_kind->reap(e, t);
        t->wait = NULL;
        t->wait_kind = NULL;
    }
    record_name(e->sd.killed, &e->sd.nkilled, t, -ECANCELED);
#if defined(__SANITIZE_ADDRESS__)
    /* Frames that never returned left their redzones poisoned. */
    __asan_unpoison_memory_region(t->stack->lo,
                                  (size_t)((char *)t->stack->hi - (char *)t->stack->lo));
#endif
    t->state = TR_TASK_RUNNING; /* the end path expects it */
    tr__task_end(e, t, -ECANCELED, true);
}

/* ---- hooks ------------------------------------------------------------------ */

static int hooks_task(void *arg)
{
    tr_engine *e = arg;
    /* LIFO, and hooks registered by hooks run too. Bounded by the hooks
     * registered: each round removes one. */
    while (e->nhooks > 0) {
        struct tr__hook h = e->hooks[--e->nhooks];
        /* Each hook starts unshielded, whether it runs in this task or in
         * a later one: a hook that returned inside a shield leaves nothing
         * to the next. */
        tr__current->shield = 0;
        tr__current->shield_base = 0;
        int r = h.fn(h.arg);
        /* Scopes the hook left entered are in its returned frame, and so
         * are groups it did not wait for: their children end now, before
         * the next hook reuses the frame (G10, as at a task's end). */
        if (tr__current->scope)
            tr__scopes_release(e, tr__current);
        if (tr__current->groups)
            tr__groups_release(tr__current);
        if (r < 0 && r != -ECANCELED)
            record_name(e->sd.failed, &e->sd.nfailed, tr__current, r);
    }
    return 0;
}

int tr_at_shutdown(tr_fn fn, void *arg)
{
    tr_task *t = tr__current;
    if (!t)
        return -EPERM;
    if (!fn)
        return -EINVAL;
    tr_engine *e = t->e;
    /* The kill rung of the hooks' phase has ended them: a hook registered
     * now (by a task a hook spawned) could never run, and the shutdown
     * would wait for it for ever. */
    if (e->sd.phase == TR_PH_FINAL && e->sd.final_killed)
        return -ECANCELED;
    /* What running the hooks will need is taken now, where -ENOMEM can
     * still be told to the caller: at shutdown the task cannot fail. */
    int err = tr__task_reserve(e);
    if (err)
        return err;
    if (e->nhooks == e->hooks_cap) {
        unsigned cap = e->hooks_cap ? e->hooks_cap * 2 : 8;
        if (TR_FAULT(TR_FS_ALLOC))
            return -ENOMEM;
        struct tr__hook *h = realloc(e->hooks, cap * sizeof(*h));
        if (!h)
            return -ENOMEM;
        e->hooks = h;
        e->hooks_cap = cap;
    }
    e->hooks[e->nhooks++] = (struct tr__hook){fn, arg};
    return 0;
}

static void enter_final(tr_engine *e, uint64_t now)
{
    e->sd.phase = TR_PH_FINAL;
    e->sd.t_final = now;
    e->sd.signals_at_final = e->sd.signals;
    /* Hooks get the same ladder as tasks: cancelled grace_ms after they
     * start (or at the next signal), killed kill_ms later (or at the one
     * after), so a hook stuck in I/O cannot hold the shutdown forever. */
    e->sd.hook_cancel_deadline = now + MS(e->grace_ms);
    e->sd.hook_kill_deadline = e->sd.hook_cancel_deadline + MS(e->kill_ms);
    e->sd.hook_retry_at = now;
    /* Every task of the run has ended: a LATE one a hook spawns has no one
     * left to wait for, and gets the hooks' ladder, kill rung included
     * (kill_all skips LATE tasks until they are cancelled). */
    e->sd.late_cancelled = true;
}

/* Spawns the task that runs the hooks. If that fails (no memory for a
 * record or a stack), retry every millisecond until the hooks' kill
 * deadline; then give up and say so in the report: never silently. */
static void spawn_hooks_task(tr_engine *e, uint64_t now)
{
    struct tr__shutdown *sd = &e->sd;
    if (e->nhooks > 0 && sd->hooks_abandoned) {
        /* Abandoned once: so is anything registered since. */
        sd->hooks_abandoned += e->nhooks;
        e->nhooks = 0;
    }
    if (e->nhooks == 0 || e->hook_task || sd->hooks_abandoned)
        return;
    if (sd->final_killed) {
        /* The kill rung ended the hooks' task with hooks still queued:
         * running them in a new task would only be killed again, forever. */
        sd->hooks_abandoned = e->nhooks;
        sd->hooks_spawn_err = 0;
        e->nhooks = 0;
        return;
    }
    if (now < sd->hook_retry_at)
        return;
    tr_task *t;
    struct tr_spawn_opts o = {.name = "at-shutdown"};
    e->spawning_internal = true;
    int err = tr_spawn(e, &t, hooks_task, e, &o);
    e->spawning_internal = false;
    if (err == 0) {
        e->hook_task = t;
        tr_detach(t);
        return;
    }
    sd->hooks_spawn_err = err;
    sd->hook_retry_at = now + MS(1);
    if (now >= sd->hook_kill_deadline) {
        sd->hooks_abandoned = e->nhooks;
        e->nhooks = 0;
    }
}

/* ---- the pass ----------------------------------------------------------------- */

void tr__shutdown_task_ended(tr_engine *e, tr_task *t)
{
    if (t == e->hook_task)
        e->hook_task = NULL;
    if (t == e->main_task) {
        e->main_task = NULL;
        e->main_returned = true;
        if (e->ls)
            ls_main_ended(e, t->result);
        else
            atomic_store_explicit(&e->shutdown_req, 1, memory_order_relaxed);
    }
    if (tr__shutdown_begun(e) && t->result < 0 && t->result != -ECANCELED && !t->killed)
        record_name(e->sd.failed, &e->sd.nfailed, t, t->result);
}

static void step(tr_engine *e, uint64_t now)
{
    struct tr__shutdown *sd = &e->sd;
    unsigned sigs = (unsigned)sd->signals;
    switch (sd->phase) {
    case TR_PH_DONE:
        if (!tr__shutdown_active(e))
            break;
        sd_restart(e);
        /* The new shutdown begins as the first did. */
        __attribute__((fallthrough));
    case TR_PH_NONE:
        /* The request is consumed: one asked during this shutdown starts
         * the next one (in a later run), never a second ladder now. */
        if (atomic_exchange_explicit(&e->shutdown_req, 0, memory_order_acquire) ||
            sd->trigger != TR_TRIG_NONE)
            sd_begin(e, now);
        break;
    case TR_PH_STOP:
        if (now >= sd->drain_deadline || sigs >= 2 || gate(e, TR_GATE_CANCEL, e->sch.live == 0)) {
            sd->t_cancel = now;
            cancel_tasks(e, false);
            sd->t_drain = tr__now_ns();
            sd->phase = TR_PH_DRAIN;
        }
        break;
    case TR_PH_DRAIN:
        if (!sd->late_cancelled && gate(e, TR_GATE_LATE, e->sch.live == e->sch.live_late)) {
            sd->late_cancelled = true;
            cancel_tasks(e, true);
        }
        if (!sd->shields_broken && (now >= sd->grace_deadline || sigs >= 2))
            break_shields(e, now);
        if (sd->shields_broken && (now >= sd->kill_deadline || sigs >= 3)) {
            sd->phase = TR_PH_KILL;
            sd->t_kill = now;
            kill_all(e, false);
        } else if (gate(e, TR_GATE_FINAL, e->sch.live == 0)) {
            enter_final(e, now);
        }
        break;
    case TR_PH_KILL:
        /* LATE tasks stay LATE: cancelled once all others ended (killed
         * ones included), killed once that was delivered. */
        if (!sd->late_cancelled && gate(e, TR_GATE_LATE, e->sch.live == e->sch.live_late)) {
            sd->late_cancelled = true;
            cancel_tasks(e, true);
        }
        kill_all(e, false); /* and tasks spawned meanwhile */
        if (gate(e, TR_GATE_FINAL, e->sch.live == 0))
            enter_final(e, now);
        break;
    case TR_PH_FINAL:
        spawn_hooks_task(e, now);
        if (e->sch.live > 0) {
            /* Hooks, and whatever they spawned, get the ladder too. */
            if (!sd->final_cancelled &&
                (sigs > sd->signals_at_final || now >= sd->hook_cancel_deadline)) {
                sd->final_cancelled = true;
                if (!sd->shields_broken)
                    break_shields(e, now);
                for (tr_task *t = e->sch.all_head; t; t = t->all_next)
                    (void)tr_cancel(t);
            }
            if (sigs > sd->signals_at_final + 1 || now >= sd->hook_kill_deadline) {
                sd->final_killed = true;
                kill_all(e, true);
            }
        }
        spawn_hooks_task(e, now); /* abandons what the kill rung left */
        if (e->sch.live == 0 && e->ops.inflight == 0 && e->nhooks == 0) {
            sd->phase = TR_PH_DONE;
            /* Requests made during it were its own; one made from now on
             * starts the next shutdown (in a later run). */
            atomic_store_explicit(&e->shutdown_req, 0, memory_order_relaxed);
            sd->t_done = now;
            if (e->ls)
                (void)gate(e, TR_GATE_DONE, true); /* the lockstep reports for all */
            else
                tr__shutdown_report(e);
            /* Over: shields hold again in a later run (its tasks start
             * cancelled, and shields are how they clean up) until the next
             * shutdown's grace. */
            sd->shields_broken = false;
        }
        break;
    default:
        break;
    }
}

void tr__shutdown_pass(tr_engine *e, uint64_t now)
{
    /* Up to one transition per phase per pass: bounded by the phase count. */
    for (int i = 0; i <= TR_PH_DONE; i++) {
        uint8_t before = e->sd.phase;
        step(e, now);
        if (e->sd.phase == before)
            break;
    }
}

uint64_t tr__shutdown_next_ns(const tr_engine *e, uint64_t now)
{
    const struct tr__shutdown *sd = &e->sd;
    uint64_t d = UINT64_MAX;
    switch (sd->phase) {
    case TR_PH_STOP:
        d = sd->drain_deadline;
        break;
    case TR_PH_DRAIN:
        d = sd->shields_broken ? sd->kill_deadline : sd->grace_deadline;
        break;
    case TR_PH_FINAL:
        if (e->nhooks > 0 && !e->hook_task) {
            d = sd->hook_retry_at; /* the hooks' task could not be spawned yet */
            break;
        }
        if (e->sch.live == 0)
            return UINT64_MAX;
        d = sd->final_cancelled ? sd->hook_kill_deadline : sd->hook_cancel_deadline;
        break;
    default:
        return UINT64_MAX;
    }
    return d > now ? d - now : 0;
}

/* ---- task-side calls ------------------------------------------------------------ */

bool tr_shutting_down(void)
{
    return tr__current && tr__shutdown_begun(tr__current->e);
}

int tr_wait_shutdown(void)
{
    tr_task *t = tr__current;
    if (!t)
        return -EPERM;
    /* Begun already: 0 (the event it waits for has happened, cancelled or
     * not), but through the scheduler, as every blocking call, so that a
     * task that loops on it can neither keep the engine from its deadlines
     * nor escape the kill rung. */
    if (tr__task_in_prep(t))
        return -EPERM; /* inside a tr_op prep callback */
    if (tr__shutdown_begun(t->e)) {
        /* The result is real (G5): no scope of the caller caught anything,
         * no deadline cut counted, but a cancellation that reaches the
         * task counts as delivered (the kill rung's rule). */
        tr__task_enqueue(t);
        tr__task_switch_away(t);
        if (t->attn)
            tr__cut_note(t);
        return 0;
    }
    int why = tr__cancel_point(t);
    if (why)
        return why;
    return tr__waitq_park(t, &t->e->sd_stop, &tr__wk_shutdown, true);
}

/* ---- tr_run ------------------------------------------------------------------------ */

int tr_run(tr_fn main_fn, void *arg, const struct tr_config *cfg)
{
    if (!main_fn)
        return -EINVAL;
    if (tr__current)
        return -EPERM;
    tr_engine *e;
    int err = tr_engine_create(&e, cfg);
    if (err)
        return err;
    tr_task *m;
    struct tr_spawn_opts o = {.name = "main"};
    err = tr_spawn(e, &m, main_fn, arg, &o);
    if (err) {
        tr_engine_destroy(e);
        return err;
    }
    e->main_task = m;
    err = tr_engine_run(e);
    if (err == -EDEADLK) {
        /* Tasks waiting on each other: a shutdown cancels them. */
        tr_engine_shutdown(e);
        err = tr_engine_run(e);
    }
    int result = err;
    if (err == 0 && tr_task_result(m, &result) != 0)
        result = -EIO;
    if (err == 0)
        tr_detach(m);
    /* After a failed run (a ring error) this may refuse with -EBUSY: the
     * engine is then left as it is rather than torn down under the kernel. */
    int derr = tr_engine_destroy(e);
    if (err == 0 && derr)
        result = derr;
    return result;
}
