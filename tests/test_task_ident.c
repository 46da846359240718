/* SPDX-License-Identifier: MIT */
/*
 * Description: who a task is: names (also of NULL), ids (unique and
 * increasing), tr_self inside and outside tasks.
 * Checks inside tasks record failures with TCHECK* (see tr_test_task.h).
 */
#define _GNU_SOURCE /* pipe2, in tr_test.h */
#include "tr_test_task.h"

/* ------------------------------------------------------- names and ids */

struct self_name {
    char name[64];
    uint64_t id;
};

static int fn_record_self(void *p)
{
    struct self_name *sn = p;
    const char *n = tr_task_name(tr_self());
    TCHECK(n != NULL);
    if (n != NULL)
        snprintf(sn->name, sizeof sn->name, "%s", n);
    sn->id = tr_task_id(tr_self());
    return 0;
}

static void test_task_names(void **state)
{
    (void)state;
    tr_engine *e = NULL;
    tr_task *given = NULL, *deflt = NULL, *longn = NULL, *copied = NULL;
    struct self_name sn[4];
    memset(sn, 0, sizeof sn);
    char buf[16];
    static const char long_name[] = "0123456789abcdefghijklmnopqrstuvwxyzABCDEF"; /* 42 bytes */

    assert_int_equal(tr_engine_create(&e, NULL), 0);
    struct tr_spawn_opts o = {.name = "worker"};
    assert_int_equal(tr_spawn(e, &given, fn_record_self, &sn[0], &o), 0);
    assert_int_equal(tr_spawn(e, &deflt, fn_record_self, &sn[1], NULL), 0);
    o.name = long_name;
    assert_int_equal(tr_spawn(e, &longn, fn_record_self, &sn[2], &o), 0);
    /* The name is copied: changing the caller's buffer changes nothing. */
    snprintf(buf, sizeof buf, "copied");
    o.name = buf;
    assert_int_equal(tr_spawn(e, &copied, fn_record_self, &sn[3], &o), 0);
    snprintf(buf, sizeof buf, "XXXXXX");

    assert_string_equal(tr_task_name(given), "worker");
    char want[32];
    snprintf(want, sizeof want, "task-%llu", (unsigned long long)tr_task_id(deflt));
    assert_string_equal(tr_task_name(deflt), want);
    assert_int_equal(strlen(tr_task_name(longn)), 31);
    assert_memory_equal(tr_task_name(longn), long_name, 31);
    assert_string_equal(tr_task_name(copied), "copied");

    assert_int_equal(tr_engine_run(e), 0);
    /* Inside the task, tr_task_name(tr_self()) agrees. */
    assert_string_equal(sn[0].name, "worker");
    assert_string_equal(sn[1].name, want);
    assert_int_equal(strlen(sn[2].name), 31);
    assert_memory_equal(sn[2].name, long_name, 31);
    assert_string_equal(sn[3].name, "copied");
    assert_int_equal(sn[1].id, tr_task_id(deflt));

    /* Handles that were never joined or detached die with the engine. */
    tr_test_assert_quiescent(e);
    assert_int_equal(tr_engine_destroy(e), 0);
    tr_test_assert_clean();
}

static void test_task_name_and_id_of_null(void **state)
{
    (void)state;
    assert_int_equal(tr_task_id(NULL), 0);
    assert_null(tr_task_name(NULL));
}

/* Ids count from 1 per engine and only grow, also for tasks spawned from
 * tasks; a second engine counts from 1 again. */
struct ids {
    uint64_t inner[4];
};

static int fn_spawn_and_record_ids(void *p)
{
    struct ids *ids = p;
    for (int i = 0; i < 4; i++) {
        tr_task *t = NULL;
        TCHECK_EQ(tr_spawn(NULL, &t, fn_return_arg, NULL, NULL), 0);
        ids->inner[i] = tr_task_id(t);
        TCHECK_EQ(tr_join(t, NULL), 0);
    }
    return 0;
}

static void test_task_ids_unique_increasing(void **state)
{
    (void)state;
    tr_engine *e = NULL, *e2 = NULL;
    tr_task *t[5];
    struct ids ids = {{0}};
    assert_int_equal(tr_engine_create(&e, NULL), 0);
    for (int i = 0; i < 5; i++)
        assert_int_equal(tr_spawn(e, &t[i], i == 4 ? fn_spawn_and_record_ids : fn_return_arg,
                                  i == 4 ? (void *)&ids : NULL, NULL),
                         0);
    assert_int_equal(tr_task_id(t[0]), 1);
    for (int i = 1; i < 5; i++)
        assert_true(tr_task_id(t[i]) > tr_task_id(t[i - 1]));
    uint64_t last = tr_task_id(t[4]);
    assert_int_equal(tr_engine_run(e), 0);
    for (int i = 0; i < 4; i++) {
        assert_true(ids.inner[i] > last);
        last = ids.inner[i];
    }
    /* Ids are not reused after tasks end. */
    tr_task *after = NULL;
    assert_int_equal(tr_spawn(e, &after, fn_return_arg, NULL, NULL), 0);
    assert_true(tr_task_id(after) > last);
    assert_int_equal(tr_detach(after), 0);
    assert_int_equal(tr_engine_run(e), 0);

    assert_int_equal(tr_engine_create(&e2, NULL), 0);
    tr_task *first2 = NULL;
    assert_int_equal(tr_spawn(e2, &first2, fn_return_arg, NULL, NULL), 0);
    assert_int_equal(tr_task_id(first2), 1);
    assert_int_equal(tr_engine_run(e2), 0);
    tr_test_assert_quiescent(e2);
    assert_int_equal(tr_engine_destroy(e2), 0);

    tr_test_assert_quiescent(e);
    assert_int_equal(tr_engine_destroy(e), 0);
    tr_test_assert_clean();
}

/* ---------------------------------------------------------------- self */

struct self_check {
    tr_task *seen_by_child;
    tr_task *handle;
    int equal_in_parent;
};

static int fn_store_self(void *p)
{
    struct self_check *sc = p;
    sc->seen_by_child = tr_self();
    return 0;
}

static int fn_self_parent(void *p)
{
    struct self_check *sc = p;
    tr_task *me = tr_self();
    TCHECK(me != NULL);
    TCHECK_EQ(tr_task_id(me), 1); /* the tramp task is the engine's first */
    TCHECK_EQ(tr_spawn(NULL, &sc->handle, fn_store_self, sc, NULL), 0);
    TCHECK(sc->handle != me);
    for (int i = 0; i < 100 && sc->seen_by_child == NULL; i++)
        TCHECK_EQ(tr_yield(), 0);
    sc->equal_in_parent = sc->seen_by_child == sc->handle;
    /* tr_self stays the same across a park. */
    TCHECK(tr_self() == me);
    TCHECK_EQ(tr_join(sc->handle, NULL), 0);
    return 0;
}

static void test_task_self(void **state)
{
    (void)state;
    struct self_check sc = {NULL, NULL, 0};
    tr_engine *e = NULL;
    assert_null(tr_self());
    assert_int_equal(tr_engine_create(&e, NULL), 0);
    assert_null(tr_self());
    assert_int_equal(tr_engine_destroy(e), 0);
    assert_int_equal(tt_run(fn_self_parent, &sc), 0);
    assert_non_null(sc.seen_by_child);
    assert_int_equal(sc.equal_in_parent, 1);
    assert_null(tr_self());
}

/* ----------------------------------------------------------------- main */

int main(void)
{
    const struct CMUnitTest tests[] = {
        T(test_task_names),
        T(test_task_name_and_id_of_null),
        T(test_task_ids_unique_increasing),
        T(test_task_self),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
