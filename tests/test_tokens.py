"""API tokens: shown once, stored as a salted hash, scoped, revocable."""

from __future__ import annotations

import json
import sqlite3

import pytest

from genreg.errors import AuthError, ConfigError


def test_token_is_stored_only_as_a_salted_hash(registry) -> None:
    token, info = registry.create_token("ci", ["write"])
    assert token.startswith("grg_") and info.name == "ci"
    secret = token.split("_", 2)[2]
    db = registry.settings.database_url.removeprefix("sqlite:///")
    dump = "\n".join(sqlite3.connect(db).iterdump())
    assert secret not in dump and token not in dump
    row = sqlite3.connect(db).execute("SELECT salt, hash FROM api_token").fetchone()
    assert len(row[0]) == 32 and len(row[1]) == 64


def test_same_secret_gives_different_hashes_per_token(registry) -> None:
    registry.create_token("a", ["read"])
    registry.create_token("b", ["read"])
    db = registry.settings.database_url.removeprefix("sqlite:///")
    salts = {r[0] for r in sqlite3.connect(db).execute("SELECT salt FROM api_token")}
    assert len(salts) == 2


def test_authenticate_returns_the_tokens_name_and_scopes(registry) -> None:
    token, _ = registry.create_token("ci", ["write", "evalsets:read"])
    p = registry.authenticate(token)
    assert p.name == "ci"
    assert p.allows("read") and p.allows("write") and p.allows("evalsets:read")
    assert not p.allows("admin")


def test_write_scope_does_not_imply_evalset_access_but_admin_does(registry) -> None:
    w, _ = registry.create_token("w", ["write"])
    a, _ = registry.create_token("a", ["admin"])
    assert not registry.authenticate(w).allows("evalsets:read")
    assert registry.authenticate(a).allows("evalsets:read")


@pytest.mark.parametrize(
    "mangle",
    [
        lambda t: t[:-1] + ("A" if t[-1] != "A" else "B"),  # wrong secret
        lambda t: "grg_000000000000_" + t.split("_", 2)[2],  # unknown id
        lambda t: "nonsense",
        lambda t: "",
    ],
)
def test_wrong_or_malformed_tokens_are_refused(registry, mangle) -> None:
    token, _ = registry.create_token("ci", ["read"])
    with pytest.raises(AuthError) as exc:
        registry.authenticate(mangle(token))
    assert token not in str(exc.value)


def test_revoked_token_is_refused(registry) -> None:
    token, _ = registry.create_token("ci", ["write"])
    registry.revoke_token("ci")
    with pytest.raises(AuthError, match="revoked"):
        registry.authenticate(token)
    assert registry.list_tokens()[0].revoked_at is not None


def test_unknown_scope_is_a_config_error(registry) -> None:
    with pytest.raises(ConfigError, match="unknown scope 'superuser'"):
        registry.create_token("ci", ["superuser"])


def test_cli_prints_the_token_once_and_list_never_shows_it(cli, registry) -> None:
    r = cli(
        "token", "create", "--name", "ci", "--scope", "write", "--scope", "evalsets:read", "--json"
    )
    assert r.exit_code == 0, r.output
    token = json.loads(r.stdout)["token"]
    assert registry.authenticate(token).scopes == ("write", "evalsets:read")
    r = cli("token", "list", "--json")
    assert r.exit_code == 0, r.output
    assert token.split("_", 2)[2] not in r.output
    assert json.loads(r.stdout)[0]["name"] == "ci"
    r = cli("token", "revoke", "ci")
    assert r.exit_code == 0, r.output
    with pytest.raises(AuthError):
        registry.authenticate(token)
