/* test_ch_fees.c: the relayer's fee policy (ch_fees): LCORE_CHAIN_FEE_MODE parsed into its enum
 * through the chain's configuration table, and what a stuck transaction's replacement pays in
 * bump and market mode, up to the ceilings. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "ch_config.h"
#include "ch_fees.h"

#include <stdlib.h>
#include <string.h>

static int s_load(ch_config_t *cfg, const char *fee_mode)
{
    char err[256];
    if (fee_mode)
        setenv("LCORE_CHAIN_FEE_MODE", fee_mode, 1);
    else
        unsetenv("LCORE_CHAIN_FEE_MODE");
    memset(cfg, 0x5a, sizeof *cfg);
    int rc = lc_cfg_load(cfg, ch_config_opts, ch_config_opts_len, err, sizeof err);
    unsetenv("LCORE_CHAIN_FEE_MODE");
    return rc;
}

static void test_fee_mode_config(void **state)
{
    (void)state;
    ch_config_t cfg;
    assert_int_equal(s_load(&cfg, NULL), 0);
    assert_int_equal(cfg.fee_mode, CH_FEE_MODE_BUMP);
    assert_int_equal(s_load(&cfg, "market"), 0);
    assert_int_equal(cfg.fee_mode, CH_FEE_MODE_MARKET);
    assert_int_equal(s_load(&cfg, "bump"), 0);
    assert_int_equal(cfg.fee_mode, CH_FEE_MODE_BUMP);
    assert_int_equal(s_load(&cfg, "orbit"), LC_ERR_INVALID);
    assert_int_equal(s_load(&cfg, ""), LC_ERR_INVALID);
}

#define BUMP CH_FEE_MODE_BUMP
#define MARKET CH_FEE_MODE_MARKET

/* One stuck transaction: the policy (mode, multiple, ceiling in wei; bump 12 %), its last fees
 * and first fee cap, the market's fees, and what the policy must decide. */
static const struct {
    const char *what;
    ch_fee_mode_t mode;
    uint64_t multiple, max_fee;
    uint64_t tip, cap, first_cap, market_tip, market_cap;
    ch_fees_action_t want;
    uint64_t want_tip, want_cap; /* CH_FEES_REPLACE only */
} s_vectors[] = {
    {"bump: both +12 %, market below", BUMP, 10, 1000000, 100, 1000, 1000, 50, 900, CH_FEES_REPLACE,
     112, 1120},
    {"bump: rounded up (nodes refuse one wei short)", BUMP, 10, 1000000, 1, 9, 9, 0, 0,
     CH_FEES_REPLACE, 2, 11},
    {"bump: the fee cap follows a rising market, the tip is only bumped", BUMP, 10, 1000000, 100,
     1000, 1000, 500, 5000, CH_FEES_REPLACE, 112, 5000},
    {"bump: never resent unchanged", BUMP, 10, 1000000, 100, 1000, 1000, 1, 10, CH_FEES_REPLACE,
     112, 1120},
    {"market: priced above market, resent", MARKET, 10, 1000000, 100, 1000, 1000, 50, 900,
     CH_FEES_RESEND, 0, 0},
    {"market: priced at market, resent", MARKET, 10, 1000000, 100, 1000, 1000, 50, 1000,
     CH_FEES_RESEND, 0, 0},
    {"market: below market, today's price", MARKET, 10, 1000000, 100, 1000, 1000, 300, 3000,
     CH_FEES_REPLACE, 300, 3000},
    {"market: just below market, still +12 %", MARKET, 10, 1000000, 100, 1000, 1000, 50, 1010,
     CH_FEES_REPLACE, 112, 1120},
    {"ceiling: fee cap multiple 1", BUMP, 1, 1000000, 100, 1000, 1000, 50, 900, CH_FEES_CEILING, 0,
     0},
    {"ceiling: multiple 2 leaves room", BUMP, 2, 1000000, 100, 1000, 1000, 50, 900, CH_FEES_REPLACE,
     112, 1120},
    {"ceiling: the market above the multiple", BUMP, 2, 1000000, 100, 1000, 1000, 50, 2001,
     CH_FEES_CEILING, 0, 0},
    {"ceiling: max fee one wei short", BUMP, 10, 1119, 100, 1000, 1000, 50, 900, CH_FEES_CEILING, 0,
     0},
    {"ceiling: max fee just enough", BUMP, 10, 1120, 100, 1000, 1000, 50, 900, CH_FEES_REPLACE, 112,
     1120},
    {"tip above the fee cap: no valid transaction", BUMP, 10, 1000000, 2000, 1000, 1000, 0, 0,
     CH_FEES_CEILING, 0, 0},
    {"market tip above its fee cap", MARKET, 10, 1000000, 100, 1000, 1000, 5000, 4000,
     CH_FEES_CEILING, 0, 0},
};

static void test_replacement(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof s_vectors / sizeof s_vectors[0]; i++) {
        ch_fee_policy_t p = {.mode = s_vectors[i].mode,
                             .bump_percent = 12,
                             .fee_cap_multiple = s_vectors[i].multiple,
                             .max_fee_wei = s_vectors[i].max_fee};
        ch_fees_t last = {s_vectors[i].tip, s_vectors[i].cap};
        ch_fees_t market = {s_vectors[i].market_tip, s_vectors[i].market_cap}, next = {0, 0};
        ch_fees_action_t got =
            ch_fees_replacement(&p, &last, s_vectors[i].first_cap, &market, &next);
        if (got != s_vectors[i].want ||
            (got == CH_FEES_REPLACE &&
             (next.tip != s_vectors[i].want_tip || next.fee_cap != s_vectors[i].want_cap)))
            fail_msg("%s: action %d tip %llu fee cap %llu", s_vectors[i].what, (int)got,
                     (unsigned long long)next.tip, (unsigned long long)next.fee_cap);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_fee_mode_config),
        cmocka_unit_test(test_replacement),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
