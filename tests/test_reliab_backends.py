"""Issue 14, team backends under attack: ``--workers > 1`` serves consistent aliases; an
S3-compatible server that goes away mid-upload and a PostgreSQL connection dropped
mid-transaction leave no half-visible version, and a re-run converges.

Real servers only: ``genreg serve`` with two worker processes; moto's S3 server (our own
instance, behind a loopback TCP relay the test can cut); the PostgreSQL server .ci/run
starts (``GENREG_TEST_POSTGRES_URL``), whose backend the test terminates with
``pg_terminate_backend`` at the moment the version row is being inserted."""

from __future__ import annotations

import http.client
import json
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

from _apihelp import chat, free_port, start_server, stop_server
from _backends import POSTGRES_ENV, need, postgres_database, s3_env


# ---- --workers 2: aliases are consistent across worker processes -----------------------------
def _get(url: str, path: str, headers: dict[str, str] | None = None) -> tuple[int, Any]:
    u = urlsplit(url)
    c = http.client.HTTPConnection(u.hostname, u.port, timeout=30)  # a fresh connection each
    c.request("GET", path, headers=headers or {})
    r = c.getresponse()
    out = r.status, json.loads(r.read())
    c.close()
    return out


def _put(url: str, path: str, body: Any, token: str) -> int:
    u = urlsplit(url)
    c = http.client.HTTPConnection(u.hostname, u.port, timeout=30)
    c.request(
        "PUT",
        path,
        json.dumps(body),
        {"Content-Type": "application/json", "Authorization": f"Bearer {token}"},
    )
    r = c.getresponse()
    r.read()
    c.close()
    return r.status


def test_two_workers_serve_the_alias_a_write_just_moved(tmp_path: Path) -> None:
    from genreg import Registry

    home = tmp_path / ".genreg"
    reg = Registry.init(home)
    for i in range(4):
        reg.register_content("prompt", "qa", chat(i))
    reg.set_alias("prompt:qa@v1", "production")
    token = str(reg.create_token("mover", ["write"])[0])
    reg.close()
    proc, url = start_server(home, "--workers", "2")
    try:
        pids = subprocess.run(
            ["pgrep", "-P", str(proc.pid)], capture_output=True, text=True, check=False
        ).stdout.split()
        # uvicorn's supervisor spawns the workers (possibly via a multiprocessing helper)
        assert pids, "genreg serve --workers 2 started no worker processes"
        with ThreadPoolExecutor(8) as pool:
            for target in (3, 2, 4, 1, 3):
                assert (
                    _put(url, "/v1/prompts/qa/aliases/production", {"version": target}, token)
                    == 200
                )
                # every later read, on any worker, sees the move (the hot path and the
                # FastAPI route, anonymous and with a token)
                paths = ["/v1/prompts/qa?alias=production"] * 24
                got = list(pool.map(lambda p: _get(url, p), paths))
                auth = {"Authorization": f"Bearer {token}"}
                got += [_get(url, "/v1/prompts/qa?alias=production", auth) for _ in range(4)]
                assert all(s == 200 for s, _ in got), got
                versions = {b["version"] for _, b in got}
                assert versions == {target}, (target, versions)
                _, journal = _get(url, "/v1/prompts/qa/aliases?alias=production", auth)
                last = max(journal["events"], key=lambda e: e["created_at"])
                assert last["to_version"] == target
    finally:
        stop_server(proc)


# ---- S3 gone mid-upload -------------------------------------------------------------------------
class Relay:
    """A loopback TCP relay to ``target`` that the test can cut: :meth:`cut_after` closes every
    connection once that many request bytes have passed through one connection (an upload
    cut half-way) and refuses new ones until :meth:`restore`."""

    def __init__(self, target: tuple[str, int]) -> None:
        self.target = target
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.limit: int | None = None
        self.down = False
        self.cut = threading.Event()
        self.conns: list[socket.socket] = []
        self.lock = threading.Lock()
        threading.Thread(target=self._accept, daemon=True).start()

    def cut_after(self, n: int) -> None:
        self.limit = n

    def restore(self) -> None:
        self.down, self.limit = False, None

    def _kill_all(self) -> None:
        self.down = True
        self.cut.set()
        with self.lock:
            for c in self.conns:
                with __import__("contextlib").suppress(OSError):
                    c.shutdown(socket.SHUT_RDWR)
                    c.close()
            self.conns.clear()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.sock.accept()
            except OSError:
                return
            if self.down:
                client.close()
                continue
            upstream = socket.create_connection(self.target)
            with self.lock:
                self.conns += [client, upstream]
            threading.Thread(target=self._pipe, args=(client, upstream, True), daemon=True).start()
            threading.Thread(target=self._pipe, args=(upstream, client, False), daemon=True).start()

    def _pipe(self, src: socket.socket, dst: socket.socket, upload: bool) -> None:
        sent = 0
        try:
            while data := src.recv(65536):
                if upload and self.limit is not None and sent + len(data) > self.limit:
                    dst.sendall(data[: max(self.limit - sent, 0)])
                    self._kill_all()
                    return
                dst.sendall(data)
                sent += len(data)
        except OSError:
            pass
        finally:
            with __import__("contextlib").suppress(OSError):
                dst.shutdown(socket.SHUT_WR)

    def close(self) -> None:
        self.sock.close()
        self._kill_all()


@pytest.fixture
def moto(tmp_path: Path) -> Iterator[tuple[str, int]]:
    exe = Path(sys.executable).parent / "moto_server"
    if not exe.exists():
        pytest.skip("moto_server is not installed (pip install 'moto[server]')")
    port = free_port()
    proc = subprocess.Popen(
        [str(exe), "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            break
        except OSError:
            time.sleep(0.1)
    yield ("127.0.0.1", port)
    proc.terminate()
    proc.wait(10)


SECRET = "s3cr3t-never-shown-0123"


def test_s3_gone_mid_upload_leaves_no_half_visible_version(
    moto: tuple[str, int], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import s3fs

    from genreg import Registry
    from genreg.errors import StorageError

    relay = Relay(moto)
    endpoint = f"http://127.0.0.1:{relay.port}"
    for k, v in s3_env(endpoint).items():
        monkeypatch.setenv(k, v)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIDGENREGTEST")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", SECRET)
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "1")  # botocore's retries only slow the test down
    s3fs.S3FileSystem.clear_instance_cache()
    s3fs.S3FileSystem(skip_instance_cache=True).mkdir("crash")
    monkeypatch.setenv("GENREG_OBJECTS_URL", "s3://crash/objects")
    monkeypatch.setenv("GENREG_HOME", str(tmp_path / ".genreg"))
    src = tmp_path / "docs"
    src.mkdir()
    for i in range(40):  # ~2 MB of documents: the pack upload is one large PUT
        (src / f"d{i}.md").write_text(f"# doc {i}\n" + f"text {i} " * 6000)
    reg = Registry.init(tmp_path / ".genreg")
    reg.register_content("prompt", "p", {"template": "before"})
    relay.cut_after(400_000)  # S3 goes away 400 kB into the upload
    try:
        with pytest.raises(StorageError) as exc:  # one line, not botocore's traceback
            reg.snapshot("kb", src)
        assert relay.cut.is_set(), f"the upload finished before the cut: {exc.value!r}"
        msg = str(exc.value)
        assert "\n" not in msg
        assert msg.startswith(f"object store s3://crash/objects (endpoint {endpoint}): upload of")
        assert "nothing was committed" in msg
        assert SECRET not in msg and "AKIDGENREGTEST" not in msg
        assert exc.value.code == "storage" and exc.value.http_status == 503
        # the CLI (its fast path, then the full CLI it falls back to): one stderr line, exit 1
        # (the relay still refuses connections: the store is down)
        cli = subprocess.run(
            [sys.executable, "-c", "from genreg.fastcli import main; main()"]
            + ["corpus", "snapshot", "kb", str(src)],
            capture_output=True,
            text=True,
            timeout=120,
            env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)},
        )
        assert cli.returncode == 1, cli.stderr
        lines = cli.stderr.strip().splitlines()
        assert len(lines) == 1 and "Traceback" not in cli.stderr, cli.stderr
        assert f"(endpoint {endpoint})" in lines[0] and SECRET not in cli.stderr
        assert cli.stdout == ""
    finally:
        reg.close()
        relay.restore()
    reg = Registry(tmp_path / ".genreg")
    try:
        assert [a.name for a in reg.list("corpus")] == []  # no half-visible version
        assert reg.verify().ok, reg.verify().problems
        snap = reg.snapshot("kb", src)  # a re-run converges
        assert snap.created and snap.version.version == 1
        assert sum(1 for _ in reg.iter_documents("corpus:kb")) == 40
        assert reg.verify().ok
    finally:
        reg.close()
        relay.close()
        s3fs.S3FileSystem.clear_instance_cache()  # no later test may reuse the relay's client


def test_s3_unreachable_store_is_one_line_on_reads_and_writes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """No server at all behind the endpoint (a closed port): register and show each give one
    StorageError line naming the endpoint; the registration leaves no version."""
    import s3fs

    from genreg import Registry
    from genreg.errors import StorageError

    endpoint = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    for k, v in s3_env(endpoint).items():
        monkeypatch.setenv(k, v)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", SECRET)
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "1")
    monkeypatch.setenv("GENREG_OBJECTS_URL", "s3://nowhere/objects")
    s3fs.S3FileSystem.clear_instance_cache()
    reg = Registry.init(tmp_path / ".genreg")
    try:
        with pytest.raises(StorageError) as exc:
            reg.register_content("prompt", "p", {"template": "hi"})
        msg = str(exc.value)
        assert f"object store s3://nowhere/objects (endpoint {endpoint})" in msg, msg
        assert "\n" not in msg and SECRET not in msg
        assert reg.list("prompt") == []
    finally:
        reg.close()
        s3fs.S3FileSystem.clear_instance_cache()


# ---- PostgreSQL connection dropped mid-transaction ----------------------------------------------
@pytest.fixture
def pg_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[Path, str]]:
    admin = need(POSTGRES_ENV, "PostgreSQL server")
    with postgres_database(admin) as url:
        monkeypatch.setenv("GENREG_DATABASE_URL", url)
        monkeypatch.setenv("GENREG_HOME", str(tmp_path / ".genreg"))
        yield tmp_path / ".genreg", admin


@pytest.mark.postgres
@pytest.mark.parametrize("statement", ["INSERT INTO version", "INSERT INTO alias_event"])
def test_postgres_connection_dropped_mid_transaction_leaves_no_half_visible_version(
    pg_home: tuple[Path, str], statement: str
) -> None:
    """The server terminates the session just before the statement runs: at that moment
    another session sees nothing of the transaction; the write's bounded retry then commits
    it exactly once (one version, one journal entry, contiguous numbers)."""
    from sqlalchemy import create_engine, event, text

    from genreg import Registry

    home, admin_url = pg_home
    reg = Registry.init(home)
    reg.register_content("prompt", "qa", chat(0))
    admin = create_engine(admin_url, isolation_level="AUTOCOMMIT")
    other = create_engine(os.environ["GENREG_DATABASE_URL"], isolation_level="AUTOCOMMIT")
    seen: list[tuple[int, int]] = []

    def drop_connection(conn: Any, cursor: Any, stmt: str, *_a: Any) -> None:
        if stmt.lstrip().upper().startswith(statement.upper()) and not seen:
            pid = conn.exec_driver_sql("SELECT pg_backend_pid()").scalar()
            with admin.connect() as c:  # the server drops this session mid-transaction
                c.execute(text("SELECT pg_terminate_backend(:p)"), {"p": pid})
            with other.connect() as c:  # what everyone else sees right now
                seen.append(
                    (
                        c.execute(text("SELECT count(*) FROM version")).scalar_one(),
                        c.execute(text("SELECT count(*) FROM alias_event")).scalar_one(),
                    )
                )

    event.listen(reg.engine, "before_cursor_execute", drop_connection)
    try:
        if statement == "INSERT INTO version":
            reg.register_content("prompt", "qa", chat(1))
        else:
            reg.set_alias("prompt:qa@v1", "production")
    finally:
        event.remove(reg.engine, "before_cursor_execute", drop_connection)
        reg.close()
        admin.dispose()
        other.dispose()
    assert seen == [(1, 0)], seen  # dropped mid-transaction: nothing of it was visible
    reg = Registry(home)
    try:
        hist = [v.version for v in reg.history("prompt:qa")]
        journal = reg.alias_history("prompt:qa")
        if statement == "INSERT INTO version":
            assert hist == [1, 2] and journal == []
            assert reg.load_prompt("prompt:qa@v2").to_content() is not None
        else:
            assert hist == [1] and len(journal) == 1
            assert reg.resolve("prompt:qa@production").version == 1
        assert reg.verify().ok
    finally:
        reg.close()


def test_store_layout_errors_are_not_reported_as_an_unreachable_store() -> None:
    """A directory where an object should be is the store's content, not its transport:
    it keeps its own meaning (verify reports it as corrupt) instead of a StorageError."""
    from genreg.store.fsspec_objects import _is_transport_error

    assert _is_transport_error(ConnectionResetError(104, "reset"))
    assert _is_transport_error(TimeoutError())
    assert _is_transport_error(PermissionError(13, "denied"))
    assert not _is_transport_error(IsADirectoryError(21, "is a directory"))
    assert not _is_transport_error(NotADirectoryError(20, "not a directory"))
    assert not _is_transport_error(ValueError("bad digest"))
