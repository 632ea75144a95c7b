#!/usr/bin/env node
// tests/e2e/verify_receipt.js: checks an lcore receipt (docs/RECEIPTS.md) the way anyone can, with
// OpenZeppelin's @openzeppelin/merkle-tree and ethers only: no lcore code, no database, no service.
//   node tests/e2e/verify_receipt.js RECEIPT.json --rpc URL
// Exit 0 "VERIFIED ...", 1 "NOT VERIFIED: why", 2 usage or an unreadable receipt.
// The packages are looked up in $LCORE_TOOLS_DIR (default <repo>/.tools, scripts/install-deps);
// outside lcore, `npm install @openzeppelin/merkle-tree ethers` and plain require() do the same.
'use strict';
const fs = require('fs');
const path = require('path');

const TOOLS = process.env.LCORE_TOOLS_DIR || path.join(__dirname, '..', '..', '.tools');
const need = (name) => require(require.resolve(name, { paths: [path.join(TOOLS, 'node_modules')] }));
const { StandardMerkleTree } = need('@openzeppelin/merkle-tree');
const { AbiCoder, Contract, JsonRpcProvider, getAddress, id, keccak256, toBeHex, zeroPadValue } =
    need('ethers');

const ABI = [
    'function verify(bytes32 root, bytes32[] proof, bytes32 leaf) view returns (bool)',
    'event Anchored(uint64 indexed batchId, bytes32 indexed root, uint32 count)',
];

function fail(why) {
    console.log(`NOT VERIFIED: ${why}`);
    process.exit(1);
}

async function main() {
    const args = process.argv.slice(2);
    const at = args.indexOf('--rpc');
    const rpcUrl = at >= 0 ? args[at + 1] : process.env.LCORE_CHAIN_RPC;
    const file = args.find((a, i) => a !== '--rpc' && (at < 0 || i !== at + 1));
    if (!file || !rpcUrl) {
        console.error('usage: verify_receipt.js RECEIPT.json --rpc URL');
        process.exit(2);
    }
    let r;
    try {
        r = JSON.parse(fs.readFileSync(file === '-' ? 0 : file, 'utf8'));
    } catch (e) {
        console.error(`verify_receipt.js: ${file}: ${e.message}`);
        process.exit(2);
    }

    // 1. The leaf: keccak256(keccak256(abi.encode(bytes32 record_id, bytes32 envelope_hash))).
    const leaf = keccak256(
        keccak256(AbiCoder.defaultAbiCoder().encode(['bytes32', 'bytes32'], [r.record_id, r.envelope_hash])));
    if (leaf !== String(r.leaf).toLowerCase()) fail('the leaf is not the hash of record_id and envelope_hash');

    // 2. The proof leads from that leaf to the root (OpenZeppelin's StandardMerkleTree, sorted pairs).
    if (!StandardMerkleTree.verify(r.root, ['bytes32', 'bytes32'], [r.record_id, r.envelope_hash], r.proof))
        fail('the proof does not lead from the leaf to the root');

    // 3. The chain is the receipt's, and the contract holds the root: verify(root, proof, leaf).
    const provider = new JsonRpcProvider(rpcUrl, undefined, { staticNetwork: true });
    const { chainId } = await provider.getNetwork();
    if (chainId !== BigInt(r.chain_id)) fail(`the RPC serves chain ${chainId}, the receipt names ${r.chain_id}`);
    const contract = new Contract(getAddress(r.contract), ABI, provider);
    if (!(await contract.verify(r.root, r.proof, leaf))) fail('the anchor contract does not hold this root for this leaf');

    // 4. The receipt's transaction, in its block, emitted Anchored(anchor_id, root) from the contract.
    const tx = await provider.getTransactionReceipt(r.tx_hash);
    if (!tx || tx.status !== 1 || tx.blockNumber !== r.block) fail(`transaction ${r.tx_hash} is not a successful one in block ${r.block}`);
    const topics = [id('Anchored(uint64,bytes32,uint32)'), zeroPadValue(toBeHex(r.anchor_id), 32), r.root.toLowerCase()];
    const event = tx.logs.find((l) => l.address === contract.target &&
        l.topics.length === 3 && l.topics.every((t, i) => t.toLowerCase() === topics[i]));
    if (!event) fail(`transaction ${r.tx_hash} did not anchor this root (no Anchored event of the contract)`);

    console.log(`VERIFIED record=${r.record_id} anchor=${r.anchor_id} root=${r.root} block=${r.block} ` +
        `proof_length=${r.proof.length} (OpenZeppelin merkle-tree + ethers)`);
}

main().catch((e) => fail(`the chain did not answer: ${e.shortMessage || e.message}`));
