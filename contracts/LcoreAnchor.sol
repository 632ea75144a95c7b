// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

/// @title LcoreAnchor: Merkle roots of lcore record batches, committed by the chain relayer.
/// @notice One anchor() per batch. A record's leaf is
///         keccak256(keccak256(abi.encode(bytes32 record_id, bytes32 envelope_hash))) and batches
///         are sorted-pair keccak256 trees, so proofs are those of OpenZeppelin's MerkleProof and
///         StandardMerkleTree; verify()/verifyRoot() check them here without any other code.
/// @dev Storage per batch is two slots (about 44k gas of SSTOREs): the root by batch id, and the
///      batch's facts packed into one slot keyed by the root. A root is therefore anchored at most
///      once (the same leaves twice would be a relayer bug, not a second fact).
contract LcoreAnchor {
    /// Facts about an anchored root, packed into one slot (8 + 4 + 8 + 8 bytes).
    struct Anchor {
        uint64 batchIdPlusOne; // 0: root never anchored
        uint32 count; // leaves in the batch
        uint64 blockNumber; // block that anchored it
        uint64 timestamp; // that block's timestamp (seconds)
    }

    address public owner;
    address public relayer;

    mapping(uint64 batchId => bytes32 root) private _roots;
    mapping(bytes32 root => Anchor) private _anchors;

    event Anchored(uint64 indexed batchId, bytes32 indexed root, uint32 count, uint64 timestamp);
    /// Per-record mode, same event as the lcore-node MVP contract.
    event DataSubmitted(
        bytes32 indexed dataHash, bytes32 indexed deviceIdHash, address indexed owner, uint256 timestamp
    );
    event RelayerChanged(address indexed previousRelayer, address indexed newRelayer);
    event OwnershipTransferred(address indexed previousOwner, address indexed newOwner);

    error NotOwner(address caller);
    error NotRelayer(address caller);
    error ZeroAddress();
    error AlreadyAnchored(uint64 batchId);
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
        if (_roots[batchId] != bytes32(0)) revert AlreadyAnchored(batchId);
        uint64 previous = _anchors[root].batchIdPlusOne;
        if (previous != 0) revert RootAlreadyAnchored(root, previous - 1);
        // batchId + 1 cannot be 0 for a uint64 batch id below 2^64 - 1; that last id is refused
        // by the checked addition, so 0 keeps meaning "unknown".
        _roots[batchId] = root;
        _anchors[root] = Anchor(batchId + 1, count, uint64(block.number), uint64(block.timestamp));
        emit Anchored(batchId, root, count, uint64(block.timestamp));
    }

    /// @notice Per-record mode: one event per record, nothing stored.
    function submitData(bytes32 dataHash, bytes32 deviceIdHash) external onlyRelayer {
        emit DataSubmitted(dataHash, deviceIdHash, msg.sender, block.timestamp);
    }

    /// @notice The anchored batch `batchId`; all zero when it was never anchored.
    function batches(uint64 batchId)
        external
        view
        returns (bytes32 root, uint32 count, uint64 blockNumber, uint64 timestamp)
    {
        root = _roots[batchId];
        if (root != bytes32(0)) {
            Anchor memory a = _anchors[root];
            (count, blockNumber, timestamp) = (a.count, a.blockNumber, a.timestamp);
        }
    }

    /// @notice batchId + 1 of the batch that anchored `root`, 0 when it was never anchored.
    function rootBatch(bytes32 root) external view returns (uint64) {
        return _anchors[root].batchIdPlusOne;
    }

    function isAnchored(uint64 batchId) external view returns (bool) {
        return _roots[batchId] != bytes32(0);
    }

    /// @notice True when `proof` proves `leaf` against the root anchored as batch `batchId`.
    function verify(uint64 batchId, bytes32[] calldata proof, bytes32 leaf) external view returns (bool) {
        bytes32 root = _roots[batchId];
        return root != bytes32(0) && _processProof(proof, leaf) == root;
    }

    /// @notice True when `root` was anchored (by any batch) and `proof` proves `leaf` against it.
    function verifyRoot(bytes32 root, bytes32[] calldata proof, bytes32 leaf) external view returns (bool) {
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
