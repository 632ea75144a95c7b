// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

/// @title LcoreAnchor: Merkle roots of lcore record batches, committed by the chain relayer.
/// @notice One anchor() per batch. A record's leaf is
///         keccak256(keccak256(abi.encode(bytes32 record_id, bytes32 envelope_hash))) and batches
///         are sorted-pair keccak256 trees, so proofs are those of OpenZeppelin's MerkleProof and
///         StandardMerkleTree; verify(root, proof, leaf) checks them here without any other code.
/// @dev Storage is keyed by root only: one fresh slot per anchor (the batch's facts, packed), so
///      anchor() costs one 22.1k cold SSTORE instead of two. A root is anchored at most once (the
///      same leaves twice would be a relayer bug, not a second fact). Batch ids are not stored:
///      the batch id -> root index is the Anchored event (both indexed), and the contract does not
///      refuse a batch id seen before; lookups go by root (anchors, rootBatch, verify).
contract LcoreAnchor {
    /// Facts about an anchored root, packed into one slot (8 + 4 + 8 + 8 bytes, from the
    /// low-order end: batchIdPlusOne in bits 0-63, count 64-95, blockNumber 96-159, timestamp
    /// 160-223; anchor() writes the slot whole in that layout).
    struct Anchor {
        uint64 batchIdPlusOne; // 0: root never anchored
        uint32 count; // leaves in the batch
        uint64 blockNumber; // block that anchored it
        uint64 timestamp; // that block's timestamp (seconds)
    }

    address public owner;
    address public relayer;

    mapping(bytes32 root => Anchor) private _anchors;

    /// The block's timestamp is not repeated here (anchors(root) has it, and so has the block).
    event Anchored(uint64 indexed batchId, bytes32 indexed root, uint32 count);
    /// Per-record mode, same event as the lcore-node MVP contract.
    event DataSubmitted(
        bytes32 indexed dataHash, bytes32 indexed deviceIdHash, address indexed owner, uint256 timestamp
    );
    event RelayerChanged(address indexed previousRelayer, address indexed newRelayer);
    event OwnershipTransferred(address indexed previousOwner, address indexed newOwner);

    error NotOwner(address caller);
    error NotRelayer(address caller);
    error ZeroAddress();
    error RootAlreadyAnchored(bytes32 root, uint64 batchId);
    error EmptyRoot();
    error EmptyBatch();

    modifier onlyOwner() {
        if (msg.sender != owner) revert NotOwner(msg.sender);
        _;
    }

    modifier onlyRelayer() {
        if (msg.sender != relayer) revert NotRelayer(msg.sender);
        _;
    }

    constructor(address relayer_) {
        if (relayer_ == address(0)) revert ZeroAddress();
        owner = msg.sender;
        relayer = relayer_;
        emit OwnershipTransferred(address(0), msg.sender);
        emit RelayerChanged(address(0), relayer_);
    }

    function setRelayer(address newRelayer) external onlyOwner {
        if (newRelayer == address(0)) revert ZeroAddress();
        emit RelayerChanged(relayer, newRelayer);
        relayer = newRelayer;
    }

    function transferOwnership(address newOwner) external onlyOwner {
        if (newOwner == address(0)) revert ZeroAddress();
        emit OwnershipTransferred(owner, newOwner);
        owner = newOwner;
    }

    /// @notice Commits the Merkle root of batch `batchId` holding `count` leaves.
    function anchor(uint64 batchId, bytes32 root, uint32 count) external onlyRelayer {
        if (root == bytes32(0)) revert EmptyRoot();
        if (count == 0) revert EmptyBatch();
        Anchor storage a = _anchors[root];
        uint64 previous = a.batchIdPlusOne;
        if (previous != 0) revert RootAlreadyAnchored(root, previous - 1);
        // batchId + 1 cannot be 0 for a uint64 batch id below 2^64 - 1; that last id is refused
        // by the checked addition, so 0 keeps meaning "unknown".
        uint256 packed = uint256(batchId + 1) | (uint256(count) << 64)
            | (uint256(uint64(block.number)) << 96) | (uint256(uint64(block.timestamp)) << 160);
        // The slot was just read as empty: one plain SSTORE of the whole word, instead of the
        // read-modify-write of each struct member Solidity would emit.
        assembly ("memory-safe") {
            sstore(a.slot, packed)
        }
        emit Anchored(batchId, root, count);
    }

    /// @notice Per-record mode: one event per record, nothing stored.
    function submitData(bytes32 dataHash, bytes32 deviceIdHash) external onlyRelayer {
        emit DataSubmitted(dataHash, deviceIdHash, msg.sender, block.timestamp);
    }

    /// @notice What anchored `root`: its batch id, leaf count, block and that block's timestamp.
    ///         All zero when `root` was never anchored (an anchored root has count >= 1).
    function anchors(bytes32 root)
        external
        view
        returns (uint64 batchId, uint32 count, uint64 blockNumber, uint64 timestamp)
    {
        Anchor memory a = _anchors[root];
        if (a.batchIdPlusOne != 0) {
            (batchId, count, blockNumber, timestamp) = (a.batchIdPlusOne - 1, a.count, a.blockNumber, a.timestamp);
        }
    }

    /// @notice batchId + 1 of the batch that anchored `root`, 0 when it was never anchored.
    function rootBatch(bytes32 root) external view returns (uint64) {
        return _anchors[root].batchIdPlusOne;
    }

    /// @notice True when `root` was anchored (by any batch) and `proof` proves `leaf` against it.
    function verify(bytes32 root, bytes32[] calldata proof, bytes32 leaf) external view returns (bool) {
        return _anchors[root].batchIdPlusOne != 0 && _processProof(proof, leaf) == root;
    }

    /// Same as OpenZeppelin MerkleProof.processProofCalldata with Hashes.commutativeKeccak256.
    function _processProof(bytes32[] calldata proof, bytes32 leaf) private pure returns (bytes32 h) {
        h = leaf;
        for (uint256 i = 0; i < proof.length; ++i) {
            bytes32 p = proof[i];
            (bytes32 a, bytes32 b) = h < p ? (h, p) : (p, h);
            assembly ("memory-safe") {
                mstore(0x00, a)
                mstore(0x20, b)
                h := keccak256(0x00, 0x40)
            }
        }
    }
}
