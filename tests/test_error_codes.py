"""The error hierarchy: one code per class, documented, and the client's table derived from it."""

from __future__ import annotations

import inspect

from genreg import client, errors


def _classes() -> list[type[errors.GenregError]]:
    return [
        v
        for v in vars(errors).values()
        if isinstance(v, type) and issubclass(v, errors.GenregError)
    ]


def test_every_error_class_has_its_own_code() -> None:
    classes = _classes()
    codes = [c.code for c in classes]
    assert len(codes) == len(set(codes)), sorted(codes)
    assert errors.error_classes() == {c.code: c for c in classes}
    assert {c.__name__ for c in classes} - {"GenregError"} == set(errors.__all__) - {
        "GenregError",
        "error_classes",
    }


def test_every_error_class_says_when_it_is_raised() -> None:
    for c in _classes():
        doc = inspect.getdoc(c) or ""
        assert c.__doc__ and len(doc) > 20, c.__name__


def test_client_turns_each_envelope_code_back_into_the_server_class() -> None:
    for code, cls in errors.error_classes().items():
        assert client._CODES[code] is cls
    # the codes the old hand-copied table missed
    assert client._CODES["gate_failed"] is errors.GateFailed
    assert client._CODES["conflict"] is errors.AlreadyExists
    assert client._CODES["replay_miss"] is errors.ReplayMiss
    assert client._CODES["endpoint"] is errors.EndpointError


def test_client_raises_the_class_named_by_the_envelope() -> None:
    c = client.Client("http://127.0.0.1:9")
    body = (
        b'{"error": {"status": 409, "code": "gate_failed", "message": "no gates", "details": {}}}'
    )
    try:
        c._raise_for(409, body)
    except errors.GateFailed as exc:
        assert exc.message == "no gates"
    else:
        raise AssertionError("no error raised")
