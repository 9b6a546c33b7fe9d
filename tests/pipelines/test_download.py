"""Downloads against a real HTTP server on 127.0.0.1 serving real-format files (made from the
bundled sample) in each source's published layout. The server honours Range, logs every
request with its Authorization header, and injects faults on demand: 5xx/429, a connection
dropped mid-file, a truncated or corrupted body, missing or wrong credentials, redirects to a
second server on another port (a CDN, another host). Unreachable hosts are a real closed port
on 127.0.0.1 and a name under `.invalid` (reserved: it never resolves). Nothing here touches
the internet."""

from __future__ import annotations

import base64
import contextlib
import hashlib
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import unquote, urlsplit

import pytest
import typer
from tmfixtures import dumps, sample_docs, write_gz_lines, write_zst_lines
from typer.testing import CliRunner

from tokenmill.pipelines.download import (
    AuthError,
    Credential,
    DownloadError,
    Hints,
    IntegrityError,
    NotFoundError,
    RetryPolicy,
    UnreachableError,
    UnsafePathError,
    check_file,
    download_file,
    fetch,
    fetch_small_file,
    fetch_source,
    origin,
    parse_listing,
    safe_join,
)
from tokenmill.pipelines.download_cli import download
from tokenmill.pipelines.readers import Doc, read_records

FAST = RetryPolicy(attempts=5, backoff=0.01, max_backoff=0.05, fresh_downloads=3)


# ---- the server --------------------------------------------------------------------------------


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):  # keep test output clean
        pass

    def do_GET(self):
        srv: Server = self.server.owner
        url = urlsplit(self.path)
        path = unquote(url.path)
        with srv.lock:
            srv.log.append(
                {
                    "path": path,
                    "range": self.headers.get("Range"),
                    "auth": self.headers.get("Authorization"),
                    "query": url.query,
                }
            )
            queue = srv.faults.get(path)
            action = queue.pop(0) if queue else None
            srv.active += 1
            srv.max_active = max(srv.max_active, srv.active)
        try:
            if srv.delay:
                time.sleep(srv.delay)
            deadline = time.monotonic() + 10
            while srv.meet and srv.max_active < srv.meet and time.monotonic() < deadline:
                time.sleep(0.01)  # hold until that many requests were in flight at once
            self._answer(srv, path, url.query, action)
        finally:
            with srv.lock:
                srv.active -= 1

    def _send(self, status, headers=None, body=b""):
        self.send_response(status)
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _answer(self, srv, path, query, action):
        for prefix, required in srv.auth.items():
            if path.startswith(prefix) and self.headers.get("Authorization") != required:
                return self._send(401, {"X-Error-Message": "Access to this dataset is restricted"})
        for prefix, target in srv.redirects.items():
            if path.startswith(prefix):
                return self._send(302, {"Location": f"{target}{path}"})
        if action in ("500", "503", "429"):
            return self._send(int(action), {"Retry-After": "0"}, b"busy")
        file = srv.root / path.lstrip("/")
        if not file.is_file():
            return self._send(404, body=b"not found")
        data = file.read_bytes()
        if srv.hub and "cdn=1" not in query:  # the hub: a redirect carrying size and sha256
            sha = srv.etags.get(path, hashlib.sha256(data).hexdigest())
            return self._send(
                302,
                {
                    "Location": f"{srv.cdn or ''}{path}?cdn=1",
                    "X-Linked-Size": str(len(data)),
                    "X-Linked-Etag": f'"{sha}"',
                },
            )
        if action == "truncate":
            data = data[: len(data) // 2]
        elif action == "corrupt":
            mid = len(data) // 2
            data = data[:mid] + bytes([data[mid] ^ 0xFF]) + data[mid + 1 :]
        start = 0
        rng = self.headers.get("Range")
        headers = {"Accept-Ranges": "bytes"}
        status = 200
        if rng and srv.ranges:
            start = int(rng.removeprefix("bytes=").split("-")[0])
            if start >= len(data):
                return self._send(416, {"Content-Range": f"bytes */{len(data)}"})
            status = 206
            headers["Content-Range"] = f"bytes {start}-{len(data) - 1}/{len(data)}"
        body = data[start:]
        if action and action.startswith("drop:"):
            keep = int(action.split(":")[1])
            self.send_response(status)
            for k, v in headers.items():
                self.send_header(k, v)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body[:keep])
            self.wfile.flush()
            self.close_connection = True
            self.connection.shutdown(socket.SHUT_RDWR)
            return
        self._send(status, headers, body)


class Server:
    def __init__(self, root: Path):
        self.root = root
        self.log: list[dict] = []
        self.faults: dict[str, list[str]] = {}
        self.auth: dict[str, str] = {}  # path prefix -> the Authorization header it requires
        self.redirects: dict[str, str] = {}  # path prefix -> server URL it redirects to (302)
        self.cdn: str | None = None  # where the hub redirects files to (else to itself)
        self.etags: dict[str, str] = {}  # path -> X-Linked-Etag to send instead of the real one
        self.hub = False
        self.ranges = True
        self.delay = 0.0
        self.meet = 0  # hold each GET (up to 10 s) until this many were in flight at once
        self.active = 0
        self.max_active = 0
        self.lock = threading.Lock()
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
        self.httpd.daemon_threads = True
        self.httpd.owner = self
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def requests(self, path_part: str = "") -> list[dict]:
        return [r for r in self.log if path_part in r["path"]]


@contextlib.contextmanager
def _serving(root: Path):
    root.mkdir(exist_ok=True)
    srv = Server(root)
    srv.thread.start()
    try:
        yield srv
    finally:
        srv.httpd.shutdown()
        srv.httpd.server_close()


@pytest.fixture
def server(tmp_path):
    with _serving(tmp_path / "www") as srv:
        yield srv


@pytest.fixture
def server2(tmp_path, server):
    """A second server on another port of the same host, serving the same files."""
    with _serving(server.root) as srv:
        assert srv.url != server.url
        yield srv


@pytest.fixture
def no_credentials(monkeypatch, tmp_path):
    """None of the user's tokens or netrc: each test sets what it means to."""
    for var in ("HF_TOKEN", "HUGGING_FACE_HUB_TOKEN", "TOKENMILL_MIRROR_TOKEN", "HF_ENDPOINT"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))  # no ~/.netrc
    monkeypatch.delenv("NETRC", raising=False)


@pytest.fixture(scope="module")
def client():
    from distributed import Client, LocalCluster

    with (
        LocalCluster(
            n_workers=2,
            threads_per_worker=1,
            processes=True,
            dashboard_address=":0",
            silence_logs=50,
        ) as cluster,
        Client(cluster) as c,
    ):
        yield c


# ---- fixture files in the published layouts ----------------------------------------------------


def c4_files(root: Path, n: int, per_file: int = 40) -> list[bytes]:
    """C4 en files under root/c4/en/, as the hub names them; returns their bytes."""
    docs = sample_docs("c4")
    out = []
    for i in range(n):
        lines = [dumps(r) for r in docs[i * per_file : (i + 1) * per_file]]
        p = write_gz_lines(root / "c4" / "en" / f"c4-train.{i:05d}-of-01024.json.gz", lines)
        out.append(p.read_bytes())
    return out


def oscar2301_files(
    root: Path, lang: str = "fr", parts: int = 2, bad_name: str | None = None, under="oscar"
):
    """OSCAR 23.01 LANG_meta/ files with the checksum.sha256 listing the hub publishes."""
    docs = sample_docs("oscar")
    folder = root / under / f"{lang}_meta"
    lines = []
    for k in range(1, parts + 1):
        p = write_zst_lines(
            folder / f"{lang}_meta_part_{k}.jsonl.zst",
            [dumps(r) for r in docs[(k - 1) * 30 : k * 30]],
        )
        lines.append(f"{hashlib.sha256(p.read_bytes()).hexdigest()}  {p.name}")
    if bad_name:
        lines.append(f"{'0' * 64}  {bad_name}")
    (folder / "checksum.sha256").write_text("\n".join(lines) + "\n")
    return folder


def _fetch(server, name, variant, dest, **kw):
    return fetch(
        name, variant, dest=dest, base_url=f"{server.url}/{name}", policy=FAST, quiet=True, **kw
    )


# ---- tests -------------------------------------------------------------------------------------


@pytest.mark.distributed
def test_parallel_download_on_dask_workers_then_rerun_fetches_nothing(server, client, tmp_path):
    originals = c4_files(server.root, 4)
    # each request is held until two are in flight at once (at most 10 s): downloads that
    # ran one at a time never get there, parallel ones always do, however slow a worker starts
    server.meet = 2
    dest = tmp_path / "dl"
    res = _fetch(server, "c4", "en", dest, files="0:4", client=client)

    assert res.paths == [
        str(dest.resolve() / "en" / f"c4-train.{i:05d}-of-01024.json.gz") for i in range(4)
    ]
    assert [Path(p).read_bytes() for p in res.paths] == originals
    assert {f["status"] for f in res.files} == {"downloaded"}
    assert len({f["pid"] for f in res.files}) == 2, "both worker processes downloaded"
    assert server.max_active >= 2
    assert not list(dest.rglob(".*.part"))
    docs = [d for _, d in read_records(res.paths[0], "c4") if isinstance(d, Doc)]
    assert len(docs) == 40

    server.log.clear()
    again = fetch_source(
        "c4", "en", files="0:4", dest=dest, base_url=f"{server.url}/c4", quiet=True
    )
    assert again == res.paths
    assert server.log == [], "a rerun asks the server for nothing"


@pytest.mark.distributed
def test_partial_file_resumes_with_a_range_request(server, client, tmp_path):
    (data,) = c4_files(server.root, 1)
    dest = tmp_path / "dl"
    final = dest / "en" / "c4-train.00000-of-01024.json.gz"
    final.parent.mkdir(parents=True)
    have = len(data) // 3
    (final.parent / f".{final.name}.part").write_bytes(data[:have])

    res = _fetch(server, "c4", "en", dest, files="0", client=client)

    assert final.read_bytes() == data
    reqs = server.requests("c4-train.00000")
    assert [r["range"] for r in reqs] == [f"bytes={have}-"], "only the rest was asked for"
    (entry,) = res.files
    assert entry["resumed_from"] == have and entry["bytes"] == len(data) - have


def test_connection_dropped_mid_file_resumes_where_it_stopped(server, tmp_path):
    (data,) = c4_files(server.root, 1)
    path = "/c4/en/c4-train.00000-of-01024.json.gz"
    server.faults[path] = ["drop:5000"]
    out = tmp_path / "x.json.gz"

    res = download_file(server.url + path, str(out), policy=FAST)

    assert out.read_bytes() == data
    assert [r["range"] for r in server.requests(path)] == [None, "bytes=5000-"]
    assert res["retries"] == 1 and res["bytes"] == len(data)


def test_5xx_and_429_are_retried_then_succeed(server, tmp_path):
    (data,) = c4_files(server.root, 1)
    path = "/c4/en/c4-train.00000-of-01024.json.gz"
    server.faults[path] = ["500", "429", "503"]

    res = download_file(server.url + path, str(tmp_path / "x.json.gz"), policy=FAST)

    assert (tmp_path / "x.json.gz").read_bytes() == data
    assert len(server.requests(path)) == 4
    assert res["retries"] == 3


def test_retries_give_up_with_a_clear_error(server, tmp_path):
    c4_files(server.root, 1)
    path = "/c4/en/c4-train.00000-of-01024.json.gz"
    server.faults[path] = ["503"] * 10
    with pytest.raises(DownloadError, match=r"gave up after 5 tries.*HTTP 503"):
        download_file(server.url + path, str(tmp_path / "x.json.gz"), policy=FAST)
    assert not (tmp_path / "x.json.gz").exists()


def test_truncated_file_fails_the_decompression_pass_and_is_fetched_again(server, tmp_path):
    (data,) = c4_files(server.root, 1)
    path = "/c4/en/c4-train.00000-of-01024.json.gz"
    server.faults[path] = ["truncate"]  # a whole-looking response holding half the file
    out = tmp_path / "x.json.gz"

    res = download_file(server.url + path, str(out), policy=FAST)

    assert out.read_bytes() == data
    reqs = server.requests(path)
    assert [r["range"] for r in reqs] == [None, None], "fetched afresh, not resumed"
    assert res["fresh"] == 1


def test_a_file_that_stays_corrupt_is_an_integrity_error(server, tmp_path):
    c4_files(server.root, 1)
    path = "/c4/en/c4-train.00000-of-01024.json.gz"
    server.faults[path] = ["truncate"] * 3
    out = tmp_path / "out"
    with pytest.raises(IntegrityError, match="decompression failed"):
        download_file(server.url + path, str(out / "x.json.gz"), policy=FAST)
    assert not list(out.iterdir()), "no final file and no partial left"


def _compressed_file(root: Path, kind: str) -> tuple[str, bytes]:
    """A Pile-style .jsonl.bz2 / .jsonl.xz under root/pile/ (the standard library's own
    compressors); returns its URL path and bytes."""
    import bz2
    import lzma

    body = b"".join(dumps(r) + b"\n" for r in sample_docs("pile")[:60])
    data = bz2.compress(body) if kind == "bz2" else lzma.compress(body)
    path = f"/pile/train/00.jsonl.{kind}"
    (root / path.lstrip("/")).parent.mkdir(parents=True, exist_ok=True)
    (root / path.lstrip("/")).write_bytes(data)
    return path, data


@pytest.mark.parametrize("kind", ["bz2", "xz"])
@pytest.mark.parametrize("fault", ["truncate", "corrupt"])
def test_a_damaged_bz2_or_xz_fails_the_decompression_pass_and_is_fetched_again(
    server, tmp_path, kind, fault
):
    path, data = _compressed_file(server.root, kind)
    server.faults[path] = [fault]  # a whole-looking response: half the file, or a byte flipped
    out = tmp_path / f"x.jsonl.{kind}"

    res = download_file(server.url + path, str(out), policy=FAST)

    assert out.read_bytes() == data
    assert [r["range"] for r in server.requests(path)] == [None, None], "fetched afresh"
    assert res["fresh"] == 1


@pytest.mark.parametrize("kind", ["bz2", "xz"])
def test_a_bz2_or_xz_that_stays_damaged_is_an_integrity_error(server, tmp_path, kind):
    path, _ = _compressed_file(server.root, kind)
    server.faults[path] = ["truncate"] * 3
    out = tmp_path / "out"
    with pytest.raises(IntegrityError, match="decompression failed"):
        download_file(server.url + path, str(out / f"x.jsonl.{kind}"), policy=FAST)
    assert not list(out.iterdir()), "no final file and no partial left"


HUB_ROOT = "datasets/oscar-corpus/OSCAR-2301/resolve/main"  # as HF_ENDPOINT/... serves it


def _auth_seen(*servers) -> set:
    """Every Authorization header (None: none) the servers received."""
    return {r["auth"] for srv in servers for r in srv.log}


@pytest.mark.distributed
def test_gated_oscar_on_the_hub_401_says_set_hf_token_then_it_goes_to_the_hub_not_its_cdn(
    server, server2, client, tmp_path, monkeypatch, no_credentials
):
    hub, cdn = server, server2  # the hub redirects every file to a CDN on another port
    oscar2301_files(hub.root, "fr", parts=2, under=HUB_ROOT)
    hub.hub, hub.cdn = True, cdn.url
    hub.auth["/datasets/"] = "Bearer hf_secret"
    monkeypatch.setenv("HF_ENDPOINT", hub.url)
    dest = tmp_path / "dl"

    def run(**kw):
        return fetch("oscar", "23.01", "fr", dest=dest, policy=FAST, quiet=True, **kw)

    with pytest.raises(AuthError) as e:
        run(client=client)
    msg = str(e.value)
    assert "401" in msg and "HF_TOKEN" in msg and "Bearer" in msg
    assert "huggingface.co/datasets/oscar-corpus/OSCAR-2301" in msg

    monkeypatch.setenv("HF_TOKEN", "wrong")
    with pytest.raises(AuthError, match="HF_TOKEN was refused"):
        run(client=client)

    monkeypatch.setenv("HF_TOKEN", "hf_secret")
    hub.log.clear()
    res = run(client=client)
    assert [Path(p).name for p in res.paths] == [
        "fr_meta_part_1.jsonl.zst",
        "fr_meta_part_2.jsonl.zst",
    ]
    assert sorted(r["path"] for r in hub.log) == [
        f"/{HUB_ROOT}/fr_meta/{n}"
        for n in ("checksum.sha256", "fr_meta_part_1.jsonl.zst", "fr_meta_part_2.jsonl.zst")
    ]
    assert _auth_seen(hub) == {"Bearer hf_secret"}
    assert len(cdn.log) == 3 and _auth_seen(cdn) == {None}, "the CDN URL is signed"
    assert (dest / "fr_meta" / "checksum.sha256").exists(), "the listing is kept for reruns"
    hub.log.clear()
    assert run().paths == res.paths
    assert hub.log == []


@pytest.mark.distributed
def test_gated_source_on_a_mirror_never_gets_hf_token(
    server, client, tmp_path, monkeypatch, no_credentials
):
    oscar2301_files(server.root, "fr", parts=2)
    monkeypatch.setenv("HF_TOKEN", "hf_secret")
    server.auth["/oscar/"] = "Bearer hf_secret"  # it would even accept it: still not sent

    with pytest.raises(AuthError) as e:
        _fetch(server, "oscar", "23.01", tmp_path / "dl", lang="fr", client=client)
    msg = str(e.value)
    port = server.url.rsplit(":", 1)[1]
    assert f"127.0.0.1:{port} wants credentials" in msg and "HF_TOKEN is never sent" in msg
    assert "'machine 127.0.0.1 login USER password SECRET'" in msg and "NETRC" in msg
    assert f"TOKENMILL_MIRROR_TOKEN (sent as 'Authorization: Bearer' to 127.0.0.1:{port}" in msg
    assert server.log and _auth_seen(server) == {None}

    server.auth.clear()  # an open mirror: everything comes, and still no token
    server.log.clear()
    res = _fetch(server, "oscar", "23.01", tmp_path / "dl", lang="fr", client=client)
    assert len(res.paths) == 2 and len(server.log) == 3
    assert _auth_seen(server) == {None}


@pytest.mark.distributed
def test_token_is_not_sent_to_mirrors_of_open_sources(
    server, client, tmp_path, monkeypatch, no_credentials
):
    c4_files(server.root, 1)
    monkeypatch.setenv("HF_TOKEN", "hf_secret")
    _fetch(server, "c4", "en", tmp_path / "dl", files="0", client=client)
    assert server.log and all(r["auth"] is None for r in server.log)


@pytest.mark.distributed
def test_mirror_token_goes_to_the_mirror_only(
    server, server2, client, tmp_path, monkeypatch, no_credentials
):
    oscar2301_files(server.root, "fr", parts=2)
    monkeypatch.setenv("HF_TOKEN", "hf_secret")
    monkeypatch.setenv("TOKENMILL_MIRROR_TOKEN", "wrong")
    server.auth["/oscar/"] = "Bearer mirror_secret"
    with pytest.raises(AuthError, match="refused the credentials from TOKENMILL_MIRROR_TOKEN"):
        _fetch(server, "oscar", "23.01", tmp_path / "dl", lang="fr", client=client)

    monkeypatch.setenv("TOKENMILL_MIRROR_TOKEN", "mirror_secret")
    server.redirects["/oscar/fr_meta/fr_meta_part_2"] = server2.url  # another port
    server.log.clear()
    res = _fetch(server, "oscar", "23.01", tmp_path / "dl", lang="fr", client=client)

    assert len(res.paths) == 2
    assert (
        Path(res.paths[1]).read_bytes()
        == (server.root / "oscar/fr_meta/fr_meta_part_2.jsonl.zst").read_bytes()
    )
    assert len(server.log) == 3 and _auth_seen(server) == {"Bearer mirror_secret"}
    assert [r["path"] for r in server2.log] == ["/oscar/fr_meta/fr_meta_part_2.jsonl.zst"]
    assert _auth_seen(server2) == {None}


def test_a_redirect_keeps_credentials_on_their_origin_only(server, server2, tmp_path):
    """Hop by hop: a redirect to another port of the same host gets no Authorization, and one
    from there back to the credential's own origin gets it again."""
    (data,) = c4_files(server.root, 1)
    path = "/c4/en/c4-train.00000-of-01024.json.gz"
    cred = Credential(origin(server.url), "Bearer mirror_secret", "test")
    out = tmp_path / "x.json.gz"

    server.redirects["/c4/"] = server2.url
    download_file(server.url + path, str(out), credentials=(cred,), policy=FAST)
    assert out.read_bytes() == data
    assert [(r["path"], r["auth"]) for r in server.log] == [(path, "Bearer mirror_secret")]
    assert [(r["path"], r["auth"]) for r in server2.log] == [(path, None)]

    server.log.clear()
    server2.log.clear()
    server.redirects.clear()
    server2.redirects["/c4/"] = server.url + "/back"  # mirror -> other port -> mirror
    server.redirects["/c4/"] = server2.url
    back = server.root / "back" / path.lstrip("/")
    back.parent.mkdir(parents=True)
    back.write_bytes(data)
    download_file(server.url + path, str(tmp_path / "y.json.gz"), credentials=(cred,), policy=FAST)
    assert [(r["path"], r["auth"]) for r in server.log] == [
        (path, "Bearer mirror_secret"),
        ("/back" + path, "Bearer mirror_secret"),
    ]
    assert [(r["path"], r["auth"]) for r in server2.log] == [(path, None)]


@pytest.mark.distributed
def test_netrc_gives_credentials_to_the_mirror_host_only(
    server, server2, client, tmp_path, monkeypatch, no_credentials
):
    originals = c4_files(server.root, 2)
    netrc = tmp_path / "netrc"
    netrc.write_text(
        "machine huggingface.co login hf password not-for-mirrors\n"
        "machine 127.0.0.1 login alice password s3cret\n"
    )
    netrc.chmod(0o600)
    monkeypatch.setenv("NETRC", str(netrc))
    monkeypatch.setenv("HF_TOKEN", "hf_secret")
    basic = "Basic " + base64.b64encode(b"alice:s3cret").decode()
    server.auth["/c4/"] = basic
    server.redirects["/c4/en/c4-train.00001"] = server2.url  # same host, another port

    res = _fetch(server, "c4", "en", tmp_path / "dl", files="0:2", client=client)

    assert [Path(p).read_bytes() for p in res.paths] == originals
    assert len(server.log) == 2 and _auth_seen(server) == {basic}
    assert [r["path"] for r in server2.log] == ["/c4/en/c4-train.00001-of-01024.json.gz"]
    assert _auth_seen(server2) == {None}

    netrc.write_text("machine mirror.example login alice password s3cret\n")
    server.log.clear()
    with pytest.raises(AuthError, match="127.0.0.1:[0-9]+ wants credentials"):
        _fetch(server, "c4", "en", tmp_path / "dl2", files="0", client=client)
    assert _auth_seen(server) == {None}

    monkeypatch.setenv("NETRC", str(tmp_path / "missing"))
    with pytest.raises(DownloadError, match="NETRC=.*missing: no such file"):
        _fetch(server, "c4", "en", tmp_path / "dl3", files="0", client=client)


@pytest.mark.distributed
def test_404_names_the_url_and_what_to_check(server, client, tmp_path):
    c4_files(server.root, 1)
    with pytest.raises(NotFoundError) as e:
        _fetch(server, "c4", "en", tmp_path / "dl", files="5", client=client)
    msg = str(e.value)
    assert "404" in msg and "c4-train.00005-of-01024.json.gz" in msg
    assert "--files" in msg and "1024 files" in msg and "--base-url" in msg


@pytest.mark.distributed
def test_checksum_listing_catches_corruption_and_refetches(server, client, tmp_path, monkeypatch):
    oscar2301_files(server.root, "de", parts=1)
    server.faults["/oscar/de_meta/de_meta_part_1.jsonl.zst"] = ["corrupt"]
    monkeypatch.setenv("HF_TOKEN", "x")
    res = _fetch(server, "oscar", "23.01", tmp_path / "dl", lang="de", client=client)
    (entry,) = res.files
    assert entry["fresh"] == 1
    listed = dict(parse_listing((tmp_path / "dl/de_meta/checksum.sha256").read_text(), "sha256sum"))
    got = hashlib.sha256(Path(entry["path"]).read_bytes()).hexdigest()
    assert listed["de_meta_part_1.jsonl.zst"] == got


@pytest.mark.distributed
def test_published_checksum_file_is_used_when_served(server, client, tmp_path):
    pile = sample_docs("pile")
    root = server.root / "pile"
    sums = []
    for name in ("val.jsonl.zst", "test.jsonl.zst"):
        p = write_zst_lines(root / name, [dumps(r) for r in pile[:20]])
        sums.append(f"{hashlib.sha256(p.read_bytes()).hexdigest()}  ./{name}")
    sums[1] = f"{'0' * 64}  ./test.jsonl.zst"  # a wrong published sum must be caught
    (root / "SHA256SUMS.txt").write_text("\n".join(sums) + "\n")

    res = _fetch(server, "pile", "original", tmp_path / "dl", split="validation", client=client)
    assert Path(res.paths[0]).read_bytes() == (root / "val.jsonl.zst").read_bytes()
    with pytest.raises(IntegrityError, match="SHA-256"):
        _fetch(server, "pile", "original", tmp_path / "dl", split="test", client=client)

    (root / "SHA256SUMS.txt").unlink()  # a mirror without it: files are still checked otherwise
    res = _fetch(server, "pile", "original", tmp_path / "dl2", split="test", client=client)
    assert Path(res.paths[0]).name == "test.jsonl.zst"


def test_hub_size_and_sha256_headers_are_checked(server, tmp_path):
    (data,) = c4_files(server.root, 1)
    server.hub = True
    path = "/c4/en/c4-train.00000-of-01024.json.gz"
    res = download_file(server.url + path, str(tmp_path / "ok.json.gz"), policy=FAST)
    assert res["status"] == "downloaded" and (tmp_path / "ok.json.gz").read_bytes() == data

    server.etags[path] = "ab" * 32  # the hub says another file: never accepted
    with pytest.raises(IntegrityError, match="SHA-256"):
        download_file(server.url + path, str(tmp_path / "bad.json.gz"), policy=FAST)


def test_server_without_range_support_restarts_the_file(server, tmp_path):
    (data,) = c4_files(server.root, 1)
    server.ranges = False
    out = tmp_path / "x.json.gz"
    (tmp_path / ".x.json.gz.part").write_bytes(b"stale bytes")
    download_file(server.url + "/c4/en/c4-train.00000-of-01024.json.gz", str(out), policy=FAST)
    assert out.read_bytes() == data


@pytest.mark.parametrize(
    "rel", ["../evil", "a/../../evil", "/etc/passwd", "C:/x", "a\\..\\b", "", "a//b", "./a"]
)
def test_unsafe_remote_names_are_refused(tmp_path, rel):
    with pytest.raises(UnsafePathError):
        safe_join(tmp_path, rel)


def test_symlink_out_of_dest_is_refused(tmp_path):
    (tmp_path / "dest").mkdir()
    (tmp_path / "outside").mkdir()
    (tmp_path / "dest" / "link").symlink_to(tmp_path / "outside")
    with pytest.raises(UnsafePathError):
        safe_join(tmp_path / "dest", "link/x.jsonl.zst")
    assert safe_join(tmp_path / "dest", "fr_meta/x.jsonl.zst").name == "x.jsonl.zst"


def test_listing_with_path_traversal_writes_nothing(server, tmp_path, monkeypatch):
    oscar2301_files(server.root, "fr", parts=1, bad_name="../../../escaped.jsonl.zst")
    monkeypatch.setenv("HF_TOKEN", "x")
    dest = tmp_path / "a" / "b" / "dl"
    with pytest.raises(UnsafePathError, match="escaped"):
        _fetch(server, "oscar", "23.01", dest, lang="fr", workers=1)
    assert not list(tmp_path.rglob("escaped*"))
    assert not list(dest.rglob("*.jsonl.zst"))


@pytest.mark.distributed
def test_oscar2109_fetches_text_with_its_metadata_and_reads_them(
    server, client, tmp_path, monkeypatch
):
    folder = server.root / "oscar" / "packaged" / "fr"
    listing = []
    for k in (1, 2):
        texts = [f"Document {k}.{i} line one.\nDocument {k}.{i} line two." for i in range(3)]
        body, metas, offset = [], [], 0
        for t in texts:
            lines = t.split("\n")
            metas.append(
                dumps(
                    {
                        "headers": {"warc-target-uri": f"https://e/{k}/{offset}"},
                        "offset": offset,
                        "nb_sentences": len(lines),
                    }
                )
            )
            body += [ln.encode() for ln in lines] + [b""]
            offset += len(lines) + 1
        txt = write_gz_lines(folder / f"fr_part_{k}.txt.gz", body)
        meta = write_gz_lines(folder / f"fr_meta_part_{k}.jsonl.gz", metas)
        for p in (txt, meta):
            listing.append(f"{hashlib.sha256(p.read_bytes()).hexdigest()}  {p.name}")
    (folder / "fr_sha256.txt").write_text("\n".join(listing) + "\n")
    monkeypatch.setenv("HF_TOKEN", "x")

    res = _fetch(server, "oscar", "21.09", tmp_path / "dl", lang="fr", files="1", client=client)

    assert [Path(p).name for p in res.paths] == ["fr_part_2.txt.gz"]
    assert sorted(Path(f["path"]).name for f in res.files) == [
        "fr_meta_part_2.jsonl.gz",
        "fr_part_2.txt.gz",
    ]
    got = list(read_records(res.paths[0], "oscar2109"))
    assert [d.text for _, d in got] == [
        f"Document 2.{i} line one.\nDocument 2.{i} line two." for i in range(3)
    ]
    assert got[1][1].url == "https://e/2/3"


def test_check_file(tmp_path):
    (data,) = c4_files(tmp_path, 1)
    p = tmp_path / "x.json.gz"
    p.write_bytes(data)
    sha = hashlib.sha256(data).hexdigest()
    assert check_file(p, len(data), sha) is None
    assert "size" in check_file(p, len(data) + 1)
    assert "SHA-256" in check_file(p, None, "0" * 64)
    p.write_bytes(data + b"garbage after the last member")
    assert "decompression" in check_file(p)


def test_listing_formats():
    sha = "a" * 64
    assert parse_listing(f"{sha}  ./train/00.jsonl.zst\n{sha} *val.jsonl.zst\n", "sha256sum") == [
        ("train/00.jsonl.zst", sha),
        ("val.jsonl.zst", sha),
    ]
    assert parse_listing(f"fr_part_1.txt.gz\t{sha}\n", "name_tab_sha256") == [
        ("fr_part_1.txt.gz", sha)
    ]
    with pytest.raises(DownloadError, match="line 1"):
        parse_listing("<html>not a listing</html>", "sha256sum")


@pytest.mark.distributed
def test_an_error_page_is_never_kept_as_a_listing(server, tmp_path):
    (server.root / "checksum.sha256").write_text("<html>Temporarily unavailable</html>")
    with pytest.raises(DownloadError, match="line 1"):
        fetch_small_file(
            f"{server.url}/checksum.sha256",
            tmp_path / "checksum.sha256",
            None,
            FAST,
            Hints(),
            check=lambda t: parse_listing(t, "sha256sum"),
        )
    assert not (tmp_path / "checksum.sha256").exists()


def test_cli_download_lists_dry_runs_fetches_and_fails_clearly(server, client, tmp_path):
    c4_files(server.root, 2)
    app = typer.Typer()
    app.command()(download)
    runner = CliRunner()
    base = ["--base-url", f"{server.url}/c4", "--dest", str(tmp_path / "dl")]

    listed = runner.invoke(app, [])
    assert listed.exit_code == 0 and "multilingual" in listed.output and "23.01" in listed.output

    dry = runner.invoke(app, ["c4", "--files", "0:2", "--dry-run", *base])
    assert dry.exit_code == 0, dry.output
    assert "c4-train.00001-of-01024.json.gz" in dry.output and server.log == []

    cluster = ["--scheduler", client.scheduler.address]
    ok = runner.invoke(app, ["c4", "--variant", "en", "--files", "0:2", *cluster, *base])
    assert ok.exit_code == 0, ok.output
    assert "2 downloaded" in ok.output and "format: c4" in ok.output
    assert len(list((tmp_path / "dl" / "en").glob("*.json.gz"))) == 2

    missing = runner.invoke(app, ["c4", "--files", "7", *cluster, *base])
    assert missing.exit_code == 1 and "404" in missing.output

    bad = runner.invoke(app, ["c4", "--variant", "multilingual", *base])
    assert bad.exit_code == 1 and "needs --lang" in bad.output


# ---- unreachable hosts: a few quick retries, announced, then one clear line ------------------


@pytest.fixture
def no_proxy(monkeypatch):
    """Connections go straight to the host, whatever this machine's proxy settings."""
    for var in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY"):
        monkeypatch.delenv(var, raising=False)
        monkeypatch.delenv(var.lower(), raising=False)


def _closed_port() -> int:
    """A port on 127.0.0.1 that nothing listens on: bound, then closed."""
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


# The default policy's waits, as documented: 0.5, 1 and 2 s.
DEFAULT_COUNTDOWN = ["retry 1/3 in 0.5 s", "retry 2/3 in 1 s", "retry 3/3 in 2 s"]


def test_refused_port_fails_fast_with_a_countdown(tmp_path, capsys, no_proxy):
    port = _closed_port()
    url = f"http://127.0.0.1:{port}/c4/en/c4-train.00000-of-01024.json.gz"
    t0 = time.monotonic()
    with pytest.raises(UnreachableError) as e:
        download_file(url, str(tmp_path / "x.json.gz"))  # the default policy
    took = time.monotonic() - t0

    assert str(e.value) == (
        f"cannot connect to 127.0.0.1:{port}: connection refused (3 quick retries). Check "
        "that a server listens there and that the URL is right."
    )
    assert capsys.readouterr().err.splitlines() == [
        f"connection refused by 127.0.0.1:{port}; {c}" for c in DEFAULT_COUNTDOWN
    ]
    # the waits (0.5 + 1 + 2 s) and slack for a loaded machine; the old backoff took ~100 s
    assert 3.5 <= took < 10, took
    assert list(tmp_path.iterdir()) == []


def test_dns_failure_fails_fast_with_a_countdown(tmp_path, capsys, no_proxy):
    host = "nonexistent.invalid"  # reserved (RFC 6761): never resolves
    t0 = time.monotonic()
    try:
        socket.getaddrinfo(host, 80)
    except socket.gaierror:
        pass
    else:
        pytest.skip(f"this machine's resolver answers for {host}")
    lookup = time.monotonic() - t0  # however slow this resolver is to say no
    policy = RetryPolicy(connect_backoff=0.05)
    t0 = time.monotonic()
    with pytest.raises(UnreachableError) as e:
        download_file(f"http://{host}/c4/x.json.gz", str(tmp_path / "x.json.gz"), policy=policy)
    took = time.monotonic() - t0

    msg = str(e.value)
    assert msg.startswith(f"cannot resolve host {host}: DNS lookup failed (")
    assert msg.endswith(
        "; 3 quick retries). Check the host name in the URL and this machine's network and DNS."
    )
    assert capsys.readouterr().err.splitlines() == [
        f"DNS lookup failed for {host}; retry 1/3 in 0.05 s",
        f"DNS lookup failed for {host}; retry 2/3 in 0.1 s",
        f"DNS lookup failed for {host}; retry 3/3 in 0.2 s",
    ]
    assert took < 0.35 + 4 * lookup + 2.0, (took, lookup)  # 4 lookups and 3 short waits


def test_unreachable_listing_host_fails_while_planning(tmp_path, capsys, no_proxy):
    """OSCAR's listing is fetched by the client itself: the same countdown, on its stderr,
    and no Dask cluster is started for a host that cannot be reached."""
    port = _closed_port()
    base = f"http://127.0.0.1:{port}/oscar"
    policy = RetryPolicy(connect_backoff=0.01)
    with pytest.raises(UnreachableError) as e:
        fetch("oscar", "23.01", "fr", dest=tmp_path, base_url=base, policy=policy, quiet=True)
    assert str(e.value) == (
        f"cannot connect to 127.0.0.1:{port}: connection refused (3 quick retries). Check "
        f"that a server listens there and that --base-url ({base}) is right."
    )
    assert capsys.readouterr().err.splitlines() == [
        f"connection refused by 127.0.0.1:{port}; retry {k}/3 in {d} s"
        for k, d in ((1, "0.01"), (2, "0.02"), (3, "0.04"))
    ]


def test_refused_port_is_reported_before_a_local_cluster_starts(
    tmp_path, capsys, monkeypatch, no_proxy
):
    port = _closed_port()
    base = f"http://127.0.0.1:{port}/c4"

    def no_cluster(*args, **kwargs):
        raise AssertionError("a local cluster was started for a host that refuses connections")

    monkeypatch.setattr("tokenmill.pipelines.executor.dask_client", no_cluster)
    t0 = time.monotonic()
    with pytest.raises(UnreachableError) as e:
        fetch("c4", "en", files="0:4", dest=tmp_path, base_url=base, quiet=True)
    took = time.monotonic() - t0
    assert str(e.value) == (
        f"cannot connect to 127.0.0.1:{port}: connection refused (3 quick retries). Check "
        f"that a server listens there and that --base-url ({base}) is right."
    )
    assert capsys.readouterr().err.splitlines() == [
        f"connection refused by 127.0.0.1:{port}; {c}" for c in DEFAULT_COUNTDOWN
    ]
    assert 3.5 <= took < 10, took  # the waits and slack: no cluster is started and stopped


@pytest.mark.distributed
def test_cli_download_fails_fast_on_a_refused_port(client, tmp_path, no_proxy):
    """On a running cluster the tasks meet the dead port: their countdown reaches the
    terminal through the client, once per line."""
    port = _closed_port()
    base = f"http://127.0.0.1:{port}/c4"
    app = typer.Typer()
    app.command()(download)
    args = ["c4", "--files", "0:4", "--base-url", base, "--dest", str(tmp_path / "dl")]
    t0 = time.monotonic()
    r = CliRunner().invoke(app, [*args, "--scheduler", client.scheduler.address])
    took = time.monotonic() - t0

    assert r.exit_code == 1, r.output
    lines = r.output.splitlines()
    notices = [ln for ln in lines if "; retry " in ln]
    # two workers hit the dead port at once: each line is shown once, in order
    assert notices == [f"connection refused by 127.0.0.1:{port}; {c}" for c in DEFAULT_COUNTDOWN]
    assert lines[-1] == (
        f"error: cannot connect to 127.0.0.1:{port}: connection refused (3 quick retries). "
        f"Check that a server listens there and that --base-url ({base}) is right."
    )
    assert took < 3.5 + 12, took  # the waits, the tasks' start and cancelling the rest
    assert not list((tmp_path / "dl").rglob("*.json.gz"))
