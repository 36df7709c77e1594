"""SQL operations on API tokens (``api_token`` table). Returns domain objects only."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import Engine, or_
from sqlmodel import col, select

from genreg.core.timestamps import now
from genreg.errors import AlreadyExists, NotFound
from genreg.store.db import read_session, with_retry, write_session
from genreg.store.models import TokenRow


@dataclass(frozen=True)
class TokenRecord:
    token_id: str
    name: str
    scopes: tuple[str, ...]
    salt: str
    hash: str
    created_at: str
    revoked_at: str | None


def _rec(r: TokenRow) -> TokenRecord:
    return TokenRecord(
        r.token_id, r.name, tuple(r.scopes.split()), r.salt, r.hash, r.created_at, r.revoked_at
    )


class TokenRepo:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def add(
        self, token_id: str, name: str, scopes: tuple[str, ...], salt: str, hash_: str
    ) -> TokenRecord:
        def tx() -> TokenRecord:
            with write_session(self.engine) as s:
                dup = s.exec(
                    select(TokenRow).where(
                        TokenRow.name == name, col(TokenRow.revoked_at).is_(None)
                    )
                ).first()
                if dup is not None:
                    raise AlreadyExists(f"an active token named {name!r} exists; revoke it first")
                row = TokenRow(
                    token_id=token_id,
                    name=name,
                    scopes=" ".join(scopes),
                    salt=salt,
                    hash=hash_,
                    created_at=now(),
                )
                s.add(row)
                s.flush()
                return _rec(row)

        return with_retry(tx)

    def get(self, token_id: str) -> TokenRecord | None:
        with read_session(self.engine) as s:
            row = s.exec(select(TokenRow).where(TokenRow.token_id == token_id)).first()
            return _rec(row) if row else None

    def list(self) -> list[TokenRecord]:
        with read_session(self.engine) as s:
            return [_rec(r) for r in s.exec(select(TokenRow).order_by(col(TokenRow.id))).all()]

    def revoke(self, name_or_id: str) -> TokenRecord:
        def tx() -> TokenRecord:
            with write_session(self.engine) as s:
                rows = s.exec(
                    select(TokenRow).where(
                        or_(col(TokenRow.name) == name_or_id, col(TokenRow.token_id) == name_or_id),
                        col(TokenRow.revoked_at).is_(None),
                    )
                ).all()
                if not rows:
                    raise NotFound(f"no active token named {name_or_id!r}")
                for r in rows:
                    r.revoked_at = now()
                    s.add(r)
                s.flush()
                return _rec(rows[0])

        return with_retry(tx)
