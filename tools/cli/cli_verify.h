/* cli_verify.h: `lcore-cli verify --receipt FILE`: checks a record's receipt (GET
 * /v1/records/{id}/receipt, docs/RECEIPTS.md, or the GET /v1/records/{id} answer) with nothing but
 * the chain's RPC: the leaf from record_id and envelope_hash, the Merkle proof up to the root, the
 * chain id, the anchor contract's verify(root, proof, leaf), and the Anchored(anchor_id, root)
 * event of the receipt's transaction in its block. No database, no lcore service. */
#ifndef CLI_VERIFY_H
#define CLI_VERIFY_H

/* argv[0] is "verify". Exit code: 0 VERIFIED, 1 NOT VERIFIED (or the chain did not answer),
 * 2 usage or an unreadable receipt. */
int cli_verify(int argc, char **argv);

#endif
