/* SPDX-License-Identifier: MIT */
/*
 * Description: the context switch keeps every callee-saved register, the
 * FP control state and 16-byte stack alignment across 1,000,000 switches.
 * The checks live in ctx_selftest.c, a standalone program that also runs
 * cross-compiled under qemu-aarch64 (see its header); this suite runs the
 * same program in-process under CTest and asserts its verdict.
 */
#define main ctx_selftest_main
#include "ctx_selftest.c"
#undef main

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

static void test_ctx_switch_preserves_state(void **state)
{
    (void)state;
    assert_int_equal(ctx_selftest_main(), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_ctx_switch_preserves_state),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
