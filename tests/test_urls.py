"""The one URL redactor: no credentials in what genreg shows of a storage URL."""

from __future__ import annotations

import pytest

from genreg.core.urls import endpoint_of, redact_url

SECRET = "wJalr/XUtnFEMI/K7MDENG+bPxRfiCY"


@pytest.mark.parametrize(
    "url",
    [
        f"s3://AKIAEXAMPLE:{SECRET}@bucket/prefix",  # a secret with "/" in it
        f"postgresql://genreg:{SECRET}@db.internal:5432/genreg?sslpassword={SECRET}",
        f"https://user:{SECRET}@minio.local:9000/bucket#{SECRET}",
        f"s3://{SECRET}@bucket",
    ],
)
def test_no_part_of_the_user_info_or_query_is_shown(url: str) -> None:
    for shown in (redact_url(url), endpoint_of(url)):
        assert SECRET not in shown and "AKIA" not in shown and "wJalr" not in shown, shown
        assert "@" not in shown


def test_what_is_kept_is_scheme_host_port_and_path() -> None:
    assert redact_url("postgresql://u:p@db:5432/genreg?x=1") == "postgresql://db:5432/genreg"
    assert endpoint_of("postgresql://u:p@db:5432/genreg") == "postgresql://db:5432"
    assert redact_url(f"s3://AKIA:{SECRET}@bucket/prefix") == "s3://bucket/prefix"
    assert endpoint_of("http://127.0.0.1:9000/bucket/x") == "http://127.0.0.1:9000"
    assert redact_url("/srv/objects") == "/srv/objects" and endpoint_of("/srv/x") == "unknown"
