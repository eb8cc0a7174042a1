"""Transparency-log checks: RFC 6962 inclusion proofs, signed entry timestamps, checkpoints."""

from __future__ import annotations

import dataclasses
import json

import pytest

from falcoctl_py.errors import VerificationError
from falcoctl_py.signing import certs, tlog
from tests.falcoctl_py.signing.standins import (
    RekorStandIn,
    audit_path,
    merkle_root,
    trusted_root_json,
)


def test_inclusion_proofs_for_every_leaf_of_many_tree_sizes() -> None:
    for size in range(1, 34):
        leaves = [tlog.leaf_hash(b"%d" % i) for i in range(size)]
        root = merkle_root(leaves)
        for index in range(size):
            path = audit_path(index, leaves)
            assert tlog.root_from_proof(index, size, leaves[index], path) == root
            if path:
                bad = [bytes(32), *path[1:]]
                assert tlog.root_from_proof(index, size, leaves[index], bad) != root


def test_malformed_proofs_raise() -> None:
    leaves = [tlog.leaf_hash(b"%d" % i) for i in range(6)]
    path = audit_path(2, leaves)
    with pytest.raises(VerificationError, match="outside the tree"):
        tlog.root_from_proof(6, 6, leaves[2], path)
    with pytest.raises(VerificationError, match="too few"):
        tlog.root_from_proof(2, 6, leaves[2], path[:-1])
    with pytest.raises(VerificationError, match="too many"):
        tlog.root_from_proof(2, 6, leaves[2], [*path, bytes(32)])


def test_canonical_json_sorts_keys_without_spaces() -> None:
    assert tlog.canonical_json({"b": 1, "a": {"d": [1, 2], "c": "x"}}) == (
        b'{"a":{"c":"x","d":[1,2]},"b":1}'
    )


def _root(rekor: RekorStandIn) -> certs.TrustedRoot:
    return certs.parse_trusted_root(trusted_root_json([], [rekor]), source="root")


def test_entry_verifies_by_set_and_by_proof() -> None:
    rekor = RekorStandIn()
    entry = rekor.record(b'{"kind":"x"}', "hashedrekord")
    tlog.verify_entry(entry, _root(rekor))
    tlog.verify_entry(dataclasses.replace(entry, proof=None), _root(rekor))
    tlog.verify_entry(dataclasses.replace(entry, set=None), _root(rekor))
    with pytest.raises(VerificationError, match="neither"):
        tlog.verify_entry(dataclasses.replace(entry, set=None, proof=None), _root(rekor))


def test_checkpoint_signed_by_another_key_is_refused() -> None:
    rekor, other = RekorStandIn(), RekorStandIn()
    entry = rekor.record(b"body", "hashedrekord")
    assert entry.proof is not None
    forged = other.checkpoint(entry.proof.tree_size, entry.proof.root_hash)
    bad = dataclasses.replace(
        entry, set=None, proof=dataclasses.replace(entry.proof, checkpoint=forged)
    )
    with pytest.raises(VerificationError, match="checkpoint's signature"):
        tlog.verify_entry(bad, _root(rekor))


def test_checkpoint_for_another_tree_is_refused() -> None:
    rekor = RekorStandIn()
    entry = rekor.record(b"body", "hashedrekord")
    assert entry.proof is not None
    other = rekor.checkpoint(entry.proof.tree_size + 1, entry.proof.root_hash)
    bad = dataclasses.replace(
        entry, set=None, proof=dataclasses.replace(entry.proof, checkpoint=other)
    )
    with pytest.raises(VerificationError, match="another tree"):
        tlog.verify_entry(bad, _root(rekor))


def test_log_key_outside_its_validity_is_unknown() -> None:
    rekor = RekorStandIn(time=0)  # integrated in 1970, before the key's validFor.start
    entry = rekor.record(b"body", "hashedrekord")
    with pytest.raises(VerificationError, match="unknown transparency log"):
        tlog.verify_entry(entry, _root(rekor))


def test_bundle_entry_fields_are_parsed() -> None:
    from falcoctl_py.signing.sign import bundle_tlog_entry

    rekor = RekorStandIn()
    entry = rekor.record(b'{"a":1}', "dsse")
    doc = bundle_tlog_entry(entry)
    assert set(doc) == {
        "logIndex",
        "logId",
        "kindVersion",
        "integratedTime",
        "canonicalizedBody",
        "inclusionPromise",
        "inclusionProof",
    }
    assert doc["kindVersion"] == {"kind": "dsse", "version": "0.0.1"}
    assert isinstance(doc["logIndex"], str) and isinstance(doc["integratedTime"], str)
    assert set(doc["inclusionProof"]) == {
        "logIndex",
        "rootHash",
        "treeSize",
        "hashes",
        "checkpoint",
    }
    back = tlog.entry_from_bundle(json.loads(json.dumps(doc)))
    assert back == dataclasses.replace(entry, extra={})
