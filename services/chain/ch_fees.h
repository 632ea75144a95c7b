/* ch_fees.h: the relayer's fee policy, as pure functions: what the replacement of a stuck anchor
 * transaction pays under LCORE_CHAIN_FEE_MODE (bump both fees, or follow the market price on
 * Arbitrum Orbit), within the configured ceilings. The market price itself is read from the node
 * (lc_ethsend_market_fees); ch_submit applies the decision. */
#ifndef CH_FEES_H
#define CH_FEES_H

#include <stdint.h>

/* LCORE_CHAIN_FEE_MODE. The values are the indices of CH_FEE_MODE_CHOICES (lc_cfg's enum). */
typedef enum {
    CH_FEE_MODE_BUMP = 0,   /* a stuck transaction is replaced with both fees bumped */
    CH_FEE_MODE_MARKET = 1, /* Orbit: resent as is while priced at market, else re-priced */
} ch_fee_mode_t;
#define CH_FEE_MODE_CHOICES "bump|market"

/* EIP-1559 fees of one attempt, in wei. */
typedef struct {
    uint64_t tip, fee_cap;
} ch_fees_t;

/* The settings the policy reads (from ch_config_t). */
typedef struct {
    ch_fee_mode_t mode;
    uint64_t bump_percent;     /* >= 10: nodes refuse a smaller replacement */
    uint64_t fee_cap_multiple; /* fee cap at most this multiple of the first attempt's */
    uint64_t max_fee_wei;      /* absolute ceiling for the fee cap */
} ch_fee_policy_t;

typedef enum {
    CH_FEES_RESEND,  /* send the last attempt again unchanged (market mode, priced at market) */
    CH_FEES_REPLACE, /* sign a replacement at the fees given */
    CH_FEES_CEILING, /* no valid replacement under the ceiling: keep the last one in the pool */
} ch_fees_action_t;

/* What to do about a transaction without a receipt after LCORE_CHAIN_BUMP_AFTER_MS: last is its
 * newest attempt's fees, first_fee_cap its first attempt's fee cap, market today's price.
 * *next is set for CH_FEES_REPLACE: each fee at least +bump_percent over last (rounded up), the
 * fee cap at least the market's, the tip the market's too in market mode. */
ch_fees_action_t ch_fees_replacement(const ch_fee_policy_t *policy, const ch_fees_t *last,
                                     uint64_t first_fee_cap, const ch_fees_t *market,
                                     ch_fees_t *next);

#endif
