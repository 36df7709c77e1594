"""Pins the documented canonical form: changing it changes every digest."""

from __future__ import annotations

import hashlib

from genreg.core.hashing import canonical_json, digest_bytes, digest_json


def test_canonical_json_sorts_keys_and_drops_whitespace() -> None:
    assert (
        canonical_json({"b": 1, "a": [1, {"d": "é", "c": None}]})
        == '{"a":[1,{"c":null,"d":"é"}],"b":1}'.encode()
    )


def test_digest_is_tagged_sha256_of_canonical_bytes() -> None:
    value = {"z": 1, "a": "x"}
    expected = "sha256:" + hashlib.sha256(b'{"a":"x","z":1}').hexdigest()
    assert digest_json(value) == expected
    assert digest_bytes(b'{"a":"x","z":1}') == expected


def test_key_order_does_not_change_the_digest() -> None:
    assert digest_json({"a": 1, "b": 2}) == digest_json({"b": 2, "a": 1})
