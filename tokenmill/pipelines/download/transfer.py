"""One file over HTTP. `download_file` (a plain function the executor runs on a worker)
brings a URL to a local path: resume with Range, retries with backoff and jitter (`RetryPolicy`;
only tries that receive nothing count), quick retries then UnreachableError for a refused
connection, failed DNS lookup or unreachable network, redirects followed hop by hop with only
each hop's own credential, the integrity check, then an atomic rename. Progress and notices go
to the client as executor events on TOPIC. `fetch_small_file` fetches a listing or checksum
file with the same rules; `check_reachable` tries a host's TCP port before a cluster is started
for nothing. httpx, streamed raw bytes (a .gz is stored as served)."""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import random
import re
import socket
import sys
import time
import urllib.request
import uuid
from dataclasses import dataclass
from pathlib import Path

import httpx

from tokenmill.pipelines.download.credentials import (
    Credential,
    _hostport,
    credential_for,
    origin,
)
from tokenmill.pipelines.download.errors import (
    AuthError,
    DownloadError,
    IntegrityError,
    NotFoundError,
    UnreachableError,
)
from tokenmill.pipelines.download.files import _SHA256, _part_path, check_file
from tokenmill.pipelines.download.messages import Hints

log = logging.getLogger(__name__)

TOPIC = "tokenmill-download"
USER_AGENT = "tokenmill (+https://github.com/tokenmill)"
_REDIRECTS = (301, 302, 303, 307, 308)
_MAX_REDIRECTS = 10
_MAX_SMALL_FILE = 64 << 20  # listing and checksum files are kilobytes


class _Retry(Exception):
    def __init__(self, msg: str, retry_after: float | None = None):
        super().__init__(msg)
        self.retry_after = retry_after


# ---- settings passed to tasks ------------------------------------------------------------------


@dataclass(frozen=True)
class RetryPolicy:
    attempts: int = 8  # consecutive tries without progress before giving up
    backoff: float = 1.0  # seconds before the first retry; doubles each time
    max_backoff: float = 60.0
    fresh_downloads: int = 3  # downloads from zero after a failed integrity check
    connect_timeout: float = 30.0
    read_timeout: float = 120.0
    connect_retries: int = 3  # after a refused connection, failed DNS lookup, no route
    connect_backoff: float = 0.5  # seconds before the first of those; doubles, no jitter

    def connect_delay(self, retry: int) -> float:
        """Seconds before quick retry `retry` (1-based): exact, so the countdown it announces
        is true (tasks retrying a dead host in lockstep cost nothing)."""
        return self.connect_backoff * 2 ** (retry - 1)

    def delay(self, attempt: int, retry_after: float | None = None) -> float:
        d = min(self.max_backoff, self.backoff * 2 ** (attempt - 1))
        d *= 0.5 + random.random() / 2  # jitter: parallel tasks do not retry in lockstep
        if retry_after is not None:
            d = max(d, min(retry_after, self.max_backoff))
        return d


# ---- one file (a Dask task) ---------------------------------------------------------------------


class _Reporter:
    """Sends a file's progress to the client as executor events (a no-op outside a worker)."""

    def __init__(self, rel: str, interval: float = 0.25):
        from tokenmill.pipelines.executor import event_sender

        self.rel = rel
        self.interval = interval
        self.last = 0.0
        self.start = 0
        self.total: int | None = None
        self.emit = event_sender(TOPIC)  # never raises: progress must never fail a download

    def begin(self, start: int, total: int | None) -> None:
        self.start, self.total = start, total
        self.send(start, force=True)

    def send(self, have: int, force: bool = False) -> None:
        if self.emit is None:
            return
        now = time.monotonic()
        if not force and now - self.last < self.interval:
            return
        self.last = now
        self.emit({"rel": self.rel, "start": self.start, "have": have, "total": self.total})

    def notice(self, text: str) -> None:
        """A line for the user's terminal: the client prints it (once, whichever task sent
        it first); outside a worker it goes to stderr here."""
        if self.emit is None:
            _stderr(text)
            return
        self.emit({"rel": self.rel, "notice": text})


def _stderr(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


@dataclass
class _Remote:
    size: int | None = None
    sha256: str | None = None


def _content_range(value: str | None) -> tuple[int | None, int | None]:
    """(first byte, total) of a Content-Range header: `bytes 100-199/200` or `bytes */200`."""
    m = re.match(r"bytes\s+(?:(\d+)-\d+|\*)/(\d+|\*)", value or "")
    if not m:
        return None, None
    start = int(m[1]) if m[1] is not None else None
    total = int(m[2]) if m[2] != "*" else None
    return start, total


def _remote_info(r: httpx.Response) -> _Remote:
    info = _Remote()
    for resp in [*r.history, r]:  # the hub puts X-Linked-* on its redirect to the CDN
        h = resp.headers
        if h.get("x-linked-size", "").isdigit():
            info.size = int(h["x-linked-size"])
        etag = h.get("x-linked-etag", "").removeprefix("W/").strip('"')
        if _SHA256.fullmatch(etag):
            info.sha256 = etag.lower()
    if info.size is None:
        if r.status_code == 206:
            info.size = _content_range(r.headers.get("content-range"))[1]
        elif r.headers.get("content-length", "").isdigit():
            info.size = int(r.headers["content-length"])
    return info


def _retry_after(r: httpx.Response) -> float | None:
    v = r.headers.get("retry-after", "")
    try:
        return max(0.0, float(v))
    except ValueError:
        return None


def _raise_for_status(r: httpx.Response, url: str, hints: Hints) -> None:
    s = r.status_code
    if s in (401, 403):
        raise AuthError(hints.auth(s, url, r.headers.get("x-error-message", ""), str(r.url)))
    if s == 404:
        raise NotFoundError(hints.not_found(url))
    if s == 429 or s == 408 or 500 <= s < 600:
        raise _Retry(f"HTTP {s}", _retry_after(r))
    if s not in (200, 206):
        raise DownloadError(f"HTTP {s} from {url}")


def _http(policy: RetryPolicy) -> httpx.Client:
    return httpx.Client(
        follow_redirects=False,  # _get follows them, choosing each hop's credential itself
        timeout=httpx.Timeout(policy.read_timeout, connect=policy.connect_timeout),
        headers={"User-Agent": USER_AGENT, "Accept-Encoding": "identity"},
    )


@contextlib.contextmanager
def _get(http: httpx.Client, url: str, credentials, headers: dict | None = None):
    """A streamed GET that follows redirects hop by hop, each hop carrying only the credential
    bound to its own origin: a redirect to another host or port never sees a secret. The
    redirect responses are in the final response's `history` (the hub's X-Linked-* headers)."""
    history: list[httpx.Response] = []
    for _ in range(_MAX_REDIRECTS + 1):
        h = dict(headers or {})
        cred = credential_for(url, credentials)
        if cred is not None:
            h["Authorization"] = cred.value
        r = http.send(http.build_request("GET", url, headers=h), stream=True)
        location = r.headers.get("location")
        if r.status_code in _REDIRECTS and location:
            r.close()
            history.append(r)
            url = str(r.url.join(location))
            continue
        r.history = history
        try:
            yield r
        finally:
            r.close()
        return
    raise DownloadError(f"{url}: more than {_MAX_REDIRECTS} redirects; check --base-url")


def _unreachable(e: BaseException) -> tuple[str, str] | None:
    """("refused" | "dns" | "unreachable", reason) when a connection failed for a reason that
    waiting rarely fixes, else None."""
    if isinstance(e, httpx.TransportError) and not isinstance(e, httpx.ConnectError):
        return None  # read errors, timeouts, dropped connections: the usual backoff
    seen = set()
    c: BaseException | None = e
    while c is not None and id(c) not in seen:
        seen.add(id(c))
        if isinstance(c, ConnectionRefusedError):
            return "refused", "connection refused"
        if isinstance(c, socket.gaierror):
            return "dns", str(c.strerror or c)
        if isinstance(c, OSError) and c.errno in _NO_ROUTE:
            return "unreachable", os.strerror(c.errno).lower()
        c = c.__cause__ or c.__context__
    return None


_NO_ROUTE = {errno.ENETUNREACH, errno.EHOSTUNREACH, errno.ENETDOWN, errno.EHOSTDOWN}


def _quick_retry(e, url: str, retry: int, policy: RetryPolicy, hints: Hints, notice) -> None:
    """After a refused connection, failed DNS lookup or unreachable network (`_unreachable`):
    announce quick retry number `retry` and wait for it, or raise UnreachableError once
    `policy.connect_retries` are spent."""
    kind, reason = _unreachable(e) or ("", "")
    with contextlib.suppress(RuntimeError, AttributeError):  # the hop that failed
        url = str(e.request.url)
    n = policy.connect_retries
    if retry > n:
        raise UnreachableError(hints.unreachable(url, kind, reason, n)) from None
    delay = policy.connect_delay(retry)
    if kind == "dns":
        said = f"DNS lookup failed for {origin(url)[1]}"
    else:
        said = f"{reason} {'by' if kind == 'refused' else 'for'} {_hostport(url)}"
    notice(f"{said}; retry {retry}/{n} in {delay:g} s")
    time.sleep(delay)


def _fetch_into(http, url, part: Path, credentials, policy, hints, reporter, stats) -> _Remote:
    """Bring `part` up to the whole remote file, resuming and retrying; returns what the
    server said about the file (size, SHA-256)."""
    failures = 0
    quick = 0  # consecutive quick retries (refused, DNS, no route)
    while True:
        offset = part.stat().st_size if part.exists() else 0
        headers = {"Range": f"bytes={offset}-"} if offset else {}
        received = 0
        try:
            stats["requests"] += 1
            with _get(http, url, credentials, headers) as r:
                quick = 0
                if r.status_code == 416 and offset:
                    total = _content_range(r.headers.get("content-range"))[1]
                    if total == offset:  # the partial file was already whole
                        remote = _remote_info(r)
                        remote.size = remote.size or total
                        return remote
                    part.unlink()  # longer than the remote file: start over
                    continue
                _raise_for_status(r, url, hints)
                remote = _remote_info(r)
                if r.status_code == 206:
                    start = _content_range(r.headers.get("content-range"))[0]
                    if start != offset:
                        part.unlink()
                        raise _Retry(f"server sent bytes from {start}, asked {offset}")
                    mode = "ab"
                    stats["resumed_from"] = max(stats["resumed_from"], offset)
                else:
                    mode, offset = "wb", 0  # no Range support: the whole file again
                reporter.begin(offset, remote.size)
                try:
                    with open(part, mode) as fh:
                        for chunk in r.iter_raw():  # as received: a drop loses nothing
                            fh.write(chunk)
                            received += len(chunk)
                            offset += len(chunk)
                            reporter.send(offset)
                finally:
                    stats["bytes"] += received
                if remote.size is not None and offset < remote.size:
                    raise _Retry(f"connection closed at byte {offset:,} of {remote.size:,}")
                return remote
        except httpx.UnsupportedProtocol as e:
            raise DownloadError(f"{url}: {e}") from None
        except (httpx.TransportError, _Retry) as e:
            stats["retries"] += 1
            if _unreachable(e):
                quick += 1
                _quick_retry(e, url, quick, policy, hints, reporter.notice)
                continue
            if received:  # progress was made: only tries that get nothing count
                failures = 0
            failures += 1
            if failures >= policy.attempts:
                raise DownloadError(
                    f"{url}: gave up after {failures} tries without progress; last: "
                    f"{type(e).__name__}: {e}"
                ) from None
            delay = policy.delay(failures, getattr(e, "retry_after", None))
            log.info("%s: %s; retrying in %.1fs", url, e, delay)
            time.sleep(delay)


def download_file(
    url: str,
    path: str,
    size: int | None = None,
    sha256: str | None = None,
    credentials: tuple[Credential, ...] = (),
    policy: RetryPolicy | None = None,
    hints: Hints | None = None,
    rel: str | None = None,
) -> dict:
    """Download `url` to `path` (resume, retries, integrity check, atomic rename); returns
    counts: status (downloaded/complete), bytes fetched, requests, retries, resumed_from,
    fresh (re-downloads after failed checks), pid. Each request, and each redirect hop, carries
    only the credential bound to its origin (see `source_credentials`)."""
    policy = policy or RetryPolicy()
    hints = hints or Hints()
    out = Path(path)
    result = {"path": str(out), "rel": rel or out.name, "bytes": 0, "pid": os.getpid()}
    if out.exists():
        return {**result, "status": "complete", "requests": 0}
    out.parent.mkdir(parents=True, exist_ok=True)
    part = _part_path(out)
    stats = {"requests": 0, "retries": 0, "bytes": 0, "resumed_from": 0, "fresh": 0}
    reporter = _Reporter(result["rel"])
    with _http(policy) as http:
        while True:
            remote = _fetch_into(http, url, part, credentials, policy, hints, reporter, stats)
            problem = check_file(part, size or remote.size, sha256 or remote.sha256, out.name)
            if problem is None:
                break
            part.unlink(missing_ok=True)
            stats["fresh"] += 1
            if stats["fresh"] >= policy.fresh_downloads:
                raise IntegrityError(
                    f"{url}: {problem}, after {stats['fresh']} fresh downloads. The copy at this "
                    "address may be damaged: try another --base-url."
                )
            log.warning("%s: %s; downloading it again", url, problem)
    os.replace(part, out)
    return {**result, **stats, "status": "downloaded"}


def check_reachable(url: str, policy: RetryPolicy, hints: Hints, notice=_stderr) -> None:
    """Connect to `url`'s host once (TCP only, no request), with a download's quick retries
    and UnreachableError, so a dead host is reported before a local cluster is started for
    nothing. Skipped where a proxy carries the traffic (the host may not resolve here); any
    other failure is left to the downloads and their retries."""
    scheme, host, port = origin(url)
    proxies = urllib.request.getproxies()
    if (proxies.get(scheme) or proxies.get("all")) and not urllib.request.proxy_bypass(host):
        return
    retry = 0
    while True:
        try:
            socket.create_connection((host, port), timeout=policy.connect_timeout).close()
            return
        except OSError as e:
            if not _unreachable(e):
                return
            retry += 1
            _quick_retry(e, url, retry, policy, hints, notice)


# ---- small files: listings and checksums --------------------------------------------------------


def fetch_small_file(
    url: str,
    path: Path,
    credentials: tuple[Credential, ...],
    policy: RetryPolicy,
    hints: Hints,
    optional: bool = False,
    check=None,
) -> str | None:
    """A listing or checksum file, kept at `path` (so a rerun reads it from disk); None when
    `optional` and the server has no such file. `check(text)` must pass before it is kept, so
    an error page served as 200 is never cached."""
    if path.exists():
        return path.read_text(encoding="utf-8")
    failures = quick = 0
    with _http(policy) as http:
        while True:
            try:
                with _get(http, url, credentials) as r:
                    if optional and r.status_code in (404, 403, 401):
                        log.info("%s: HTTP %d; continuing without it", url, r.status_code)
                        return None
                    _raise_for_status(r, url, hints)
                    body = bytearray()
                    for chunk in r.iter_bytes():
                        body += chunk
                        if len(body) > _MAX_SMALL_FILE:
                            raise DownloadError(
                                f"{url}: over {_MAX_SMALL_FILE:,} bytes, too big for a listing"
                            )
                text = bytes(body).decode("utf-8")
                if check is not None:
                    check(text)
                break
            except UnicodeDecodeError:
                raise DownloadError(f"{url}: not a UTF-8 text file") from None
            except (httpx.TransportError, _Retry) as e:
                if _unreachable(e):
                    quick += 1
                    _quick_retry(e, url, quick, policy, hints, _stderr)
                    continue
                quick = 0
                failures += 1
                if failures >= policy.attempts:
                    raise DownloadError(f"{url}: gave up after {failures} tries: {e}") from None
                time.sleep(policy.delay(failures, getattr(e, "retry_after", None)))
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{uuid.uuid4().hex[:8]}")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)
    return text
