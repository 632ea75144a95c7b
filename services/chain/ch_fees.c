/* ch_fees.c: see ch_fees.h. */
#include "ch_fees.h"

static uint64_t s_max(uint64_t a, uint64_t b)
{
    return a > b ? a : b;
}

/* v raised by pct percent, rounded up: a replacement must pay at least that much more. */
static uint64_t s_bumped(uint64_t v, uint64_t pct)
{
    return v + (v * pct + 99) / 100;
}

ch_fees_action_t ch_fees_replacement(const ch_fee_policy_t *policy, const ch_fees_t *last,
                                     uint64_t first_fee_cap, const ch_fees_t *market,
                                     ch_fees_t *next)
{
    int market_mode = policy->mode == CH_FEE_MODE_MARKET;
    /* Orbit: the sequencer has no fee market to win; a transaction priced at or above market is
     * sent again as it is, not outbid. */
    if (market_mode && last->fee_cap >= market->fee_cap)
        return CH_FEES_RESEND;
    uint64_t min_tip = s_bumped(last->tip, policy->bump_percent);
    uint64_t min_cap = s_bumped(last->fee_cap, policy->bump_percent);
    /* market: today's price, at least a valid replacement */
    next->tip = market_mode ? s_max(market->tip, min_tip) : min_tip;
    next->fee_cap = s_max(market->fee_cap, min_cap);
    uint64_t ceiling = first_fee_cap * policy->fee_cap_multiple;
    if (ceiling > policy->max_fee_wei)
        ceiling = policy->max_fee_wei;
    if (next->fee_cap > ceiling || next->tip > next->fee_cap)
        return CH_FEES_CEILING;
    return CH_FEES_REPLACE;
}
