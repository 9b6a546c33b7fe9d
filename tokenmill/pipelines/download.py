"""Downloads of catalog sources: one Dask task per file, resumable, retried and verified.

    paths = fetch_source("c4", "en", files="0:8", dest="data/c4")   # local paths, in order

Each file is fetched by `download_file` (a plain function Dask runs on a worker) into a hidden
`.NAME.part` beside its final path:

- **Resume**: a partial file is continued with an HTTP `Range: bytes=N-` request; a server that
  ignores Range (200) rewrites it from the start, a 416 means it was already whole.
- **Retries**: timeouts, dropped connections, 429 and 5xx are retried with exponential backoff
  and jitter (honouring `Retry-After`); `attempts` counts consecutive tries that received
  nothing, so a flaky link that keeps making progress on a 15 GB file is not given up on.
- **Fail fast**: a refused connection, a failed DNS lookup or an unreachable network rarely heals
  by waiting (a wrong --base-url, no network): it gets `connect_retries` quick retries, each
  announced on stderr (`connection refused by 127.0.0.1:8080; retry 2/3 in 1 s`), then an
  `UnreachableError` naming the host and what to check (3.5 s in all by default).
- **Secrets stay home**: a credential is bound to one origin (scheme, host, port) and sent only
  on requests to it; redirects are followed here, hop by hop, so a redirect to another host or
  port gets no Authorization. HF_TOKEN goes to the hub only (huggingface.co, hf.co, or the
  $HF_ENDPOINT origin), never to a --base-url mirror nor to the CDN the hub redirects to (its
  URLs are pre-signed). A mirror's credentials come from TOKENMILL_MIRROR_TOKEN (Bearer, to the
  --base-url origin only) or from the netrc file (~/.netrc, or $NETRC) entry for its host.
- **Integrity**: the finished file's size, its SHA-256 where known (the catalog's listing or
  checksum file, else the hub's `X-Linked-Size`/`X-Linked-Etag` headers) and a full
  decompression pass over .gz/.zst/.bz2/.xz must pass, else it is deleted and downloaded
  afresh (up to `fresh_downloads` times).
- **Atomic**: only a verified file is renamed to its final name, so a file under its final name
  is complete and a rerun skips it without a request.
- **Errors**: 401/403 and 404 stop with a message that says what to do (set HF_TOKEN for gated
  OSCAR, the mirror's own credentials for a mirror; check --variant/--lang/--files/--base-url);
  remote file names that would land outside `dest` (`..`, absolute paths) are refused before
  anything is written.

HTTP is httpx (streaming, raw bytes: a `.gz` is stored as served, never transparently decoded).
The files run as calls of the executor (`pipelines.executor.run_calls`, the loop every parallel
step uses); they report bytes as executor events, and the client shows one rich bar with the
rate.
"""

from __future__ import annotations

import base64
import contextlib
import errno
import fnmatch
import hashlib
import logging
import netrc
import os
import posixpath
import random
import re
import socket
import sys
import threading
import time
import urllib.request
import uuid
import zlib
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path, PurePosixPath
from urllib.parse import quote

import httpx
import zstandard

from tokenmill.pipelines.catalog import (
    Catalog,
    CatalogError,
    FileSet,
    Variant,
    load_catalog,
    natural_key,
    select,
)

log = logging.getLogger(__name__)

TOPIC = "tokenmill-download"
USER_AGENT = "tokenmill (+https://github.com/tokenmill)"
# The hub hosts HF_TOKEN belongs to (with the $HF_ENDPOINT origin when set). Not its CDN/LFS
# hosts (cdn-lfs*.huggingface.co, cas-bridge.xethub.hf.co...): the hub redirects there with
# pre-signed URLs, which need no token and which S3 refuses alongside an Authorization header.
HUB_HOSTS = ("huggingface.co", "hf.co")
MIRROR_TOKEN_ENV = "TOKENMILL_MIRROR_TOKEN"
_REDIRECTS = (301, 302, 303, 307, 308)
_MAX_REDIRECTS = 10
_SHA256 = re.compile(r"[0-9a-fA-F]{64}")
_MAX_SMALL_FILE = 64 << 20  # listing and checksum files are kilobytes


# ---- errors -----------------------------------------------------------------------------------


class DownloadError(RuntimeError):
    """A file could not be downloaded; the message says why and what to do."""


class AuthError(DownloadError):
    """401/403: a token is missing, wrong, or lacks access to a gated dataset."""


class NotFoundError(DownloadError):
    """404: the file is not at that address."""


class IntegrityError(DownloadError):
    """The file kept failing its size, checksum or decompression check."""


class UnsafePathError(DownloadError):
    """A remote file name that would write outside the destination folder."""


class UnreachableError(DownloadError):
    """The host refused the connection, or its name did not resolve, after the quick retries."""


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


# ---- credentials: each bound to its own origin -------------------------------------------------

Origin = tuple[str, str, int]  # scheme, host, port


def origin(url: str | httpx.URL) -> Origin:
    """(scheme, lower-case host, port with the scheme's default filled in) of a URL."""
    u = httpx.URL(str(url))
    port = u.port or {"http": 80, "https": 443}.get(u.scheme, 0)
    return (u.scheme, u.host.lower(), port)


def _hostport(url: str | httpx.URL) -> str:
    _, host, port = origin(url)
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


@dataclass(frozen=True)
class Credential:
    """An Authorization header value bound to one origin: sent only on requests to it."""

    origin: Origin
    value: str = field(repr=False)  # never in a repr, a log line or a Dask dashboard
    source: str = ""  # where it came from, for messages: HF_TOKEN, TOKENMILL_MIRROR_TOKEN, netrc

    def matches(self, url: str | httpx.URL) -> bool:
        o = origin(url)
        if o == self.origin:
            return True
        # http -> https on the same host is the same server made safer (httpx and requests
        # keep credentials across that redirect too); any other change of origin is not.
        scheme, host, port = self.origin
        return scheme == "http" and port == 80 and o == ("https", host, 443)


def credential_for(url: str | httpx.URL, credentials) -> Credential | None:
    """The credential a request to `url` may carry: the first bound to its origin, else None."""
    return next((c for c in credentials or () if c.matches(url)), None)


def hub_origins() -> list[Origin]:
    """The origins HF_TOKEN may go to: https://huggingface.co, https://hf.co and $HF_ENDPOINT
    (a hub the user named, as huggingface_hub sends the token there)."""
    out = [("https", h, 443) for h in HUB_HOSTS]
    endpoint = os.environ.get("HF_ENDPOINT", "").strip()
    if endpoint:
        out.append(origin(endpoint))
    return out


def hf_token(explicit: str | None = None) -> tuple[str | None, str]:
    """The Hugging Face token and where it came from (`explicit`, else HF_TOKEN, else the
    older HUGGING_FACE_HUB_TOKEN); an explicit "" means none."""
    if explicit is not None:
        return explicit or None, "the token argument"
    for var in ("HF_TOKEN", "HUGGING_FACE_HUB_TOKEN"):
        if os.environ.get(var):
            return os.environ[var], var
    return None, ""


def netrc_credential(url: str) -> Credential | None:
    """Basic auth for `url`'s origin from the netrc file entry for its host ($NETRC, else
    ~/.netrc); None when there is no file or no entry with a password."""
    path = os.environ.get("NETRC") or os.path.join(os.path.expanduser("~"), ".netrc")
    if not os.path.isfile(path):
        if os.environ.get("NETRC"):
            raise DownloadError(
                f"NETRC={path}: no such file; point NETRC at a netrc file or unset it"
            )
        return None
    try:
        entry = netrc.netrc(path).authenticators(origin(url)[1])
    except (netrc.NetrcParseError, OSError) as e:
        raise DownloadError(
            f"{path}: not a readable netrc file ({e}); fix it or unset NETRC"
        ) from None
    if not entry or not entry[2]:
        return None
    login, _, password = entry
    basic = base64.b64encode(f"{login or ''}:{password}".encode()).decode("ascii")
    return Credential(origin(url), f"Basic {basic}", f"netrc ({path}, machine {origin(url)[1]})")


def source_credentials(
    root: str, base_url: bool, token: str | None = None
) -> tuple[tuple[Credential, ...], str]:
    """What may be sent where for files under `root`, and a word on it for messages. On the hub:
    the HF token, bound to the hub origins. Elsewhere (a --base-url mirror, a catalog host):
    never the HF token; TOKENMILL_MIRROR_TOKEN bound to the --base-url origin, else the netrc
    entry for the host, if any."""
    o = origin(root)
    if o in hub_origins():
        tok, where = hf_token(token)
        if not tok:
            return (), ""
        return tuple(Credential(h, f"Bearer {tok}", where) for h in hub_origins()), where
    mirror_token = os.environ.get(MIRROR_TOKEN_ENV) if base_url else None
    if mirror_token:
        return (Credential(o, f"Bearer {mirror_token}", MIRROR_TOKEN_ENV),), MIRROR_TOKEN_ENV
    cred = netrc_credential(root)
    return ((cred,), cred.source) if cred else ((), "")


# ---- what error messages say --------------------------------------------------------------------


@dataclass(frozen=True)
class Hints:
    """What error messages need to say about the source (built by the client)."""

    title: str = ""
    gated: bool = False
    page: str | None = None  # where to accept a gated dataset's terms
    token_set: bool = False
    layout: str = ""  # how to fix a 404: the variant, split, file count and root URL
    root: str = ""  # where the files come from
    mirror: bool = False  # root is not the hub: HF_TOKEN is never sent there
    base_url: bool = False  # root is the user's --base-url
    credential: str = ""  # where the credential sent to a mirror came from ("" when none)

    def auth(self, status: int, url: str, detail: str = "", final: str | None = None) -> str:
        extra = f" (server: {detail})" if detail else ""
        if final and origin(final) != origin(url):
            there = _hostport(final)
            return (
                f"HTTP {status} from {final}{extra}, where {url} redirected: credentials go only "
                f"to the host they are for, never to a redirect target ({there}). Point "
                f"--base-url at {there} if you trust it with them, or have the mirror serve the "
                "files itself."
            )
        if self.mirror:
            host = _hostport(url)
            if self.credential:
                return (
                    f"HTTP {status} from {url}{extra}: {host} refused the credentials from "
                    f"{self.credential}; check them (HF_TOKEN is never sent to a mirror)."
                )
            how = (
                f"a 'machine {origin(url)[1]} login USER password SECRET' line in ~/.netrc (or "
                "in the file NETRC names)"
            )
            if self.base_url:
                how += f", or {MIRROR_TOKEN_ENV} (sent as 'Authorization: Bearer' to {host} only)"
            return (
                f"HTTP {status} from {url}{extra}: {host} wants credentials. HF_TOKEN is never "
                f"sent to a mirror; give it its own: {how}."
            )
        if self.gated and not self.token_set:
            return (
                f"HTTP {status} from {url}{extra}: {self.title} is gated. Accept its terms with "
                f"your Hugging Face account at {self.page}, then set HF_TOKEN to a token of that "
                "account (it is sent as 'Authorization: Bearer $HF_TOKEN') and run again."
            )
        if self.token_set:
            return (
                f"HTTP {status} from {url}{extra}: the token in HF_TOKEN was refused. Check it is "
                "valid (`hf auth whoami`) and that its account accepted the terms"
                + (f" at {self.page}" if self.page else "")
                + "."
            )
        return (
            f"HTTP {status} from {url}{extra}: access refused. If this host needs a Hugging Face "
            "token, set HF_TOKEN (sent as 'Authorization: Bearer'); otherwise check --base-url."
        )

    def not_found(self, url: str) -> str:
        return f"HTTP 404 from {url}: no such file. {self.layout}".rstrip()

    def unreachable(self, url: str, kind: str, reason: str, retries: int) -> str:
        tries = f"{retries} quick retries"
        if self.base_url:
            where = f"--base-url ({self.root})"
        elif self.root:
            where = ""
            other = f" (the catalog's host is {self.root}), or give --base-url a reachable mirror"
        else:
            where = "the URL"
        if kind == "dns":
            head = f"cannot resolve host {origin(url)[1]}: DNS lookup failed ({reason}; {tries})"
            if where:
                return f"{head}. Check the host name in {where} and this machine's network and DNS."
            return f"{head}. Check this machine's network and DNS{other}."
        if kind == "refused":
            head = f"cannot connect to {_hostport(url)}: connection refused ({tries})"
            if where:
                return f"{head}. Check that a server listens there and that {where} is right."
            return f"{head}. Check the network{other}."
        head = f"cannot reach {_hostport(url)}: {reason} ({tries})"
        if where:
            return f"{head}. Check this machine's network and {where}."
        return f"{head}. Check this machine's network{other}."


@dataclass(frozen=True)
class RemoteFile:
    url: str
    rel: str  # its path in the published layout, and under dest
    size: int | None = None
    sha256: str | None = None
    is_input: bool = True  # False for companions (OSCAR 21.09 metadata) read with an input


@dataclass
class FetchResult:
    dest: Path
    files: list[dict] = field(default_factory=list)  # one per file: rel, path, status, bytes...

    @property
    def paths(self) -> list[str]:
        """Local paths of the input files (what a reader opens), in catalog order."""
        return [f["path"] for f in self.files if f.get("is_input", True)]

    @property
    def downloaded(self) -> int:
        return sum(1 for f in self.files if f["status"] == "downloaded")

    @property
    def bytes_fetched(self) -> int:
        return sum(f.get("bytes", 0) for f in self.files)


# ---- paths ------------------------------------------------------------------------------------


def safe_join(dest: str | os.PathLike, rel: str) -> Path:
    """`dest/rel`, refusing any `rel` that could write outside `dest`: absolute paths, drive
    letters, backslashes, `..` or empty segments, and symlinks inside `dest` that lead out."""
    bad = (
        not rel
        or "\x00" in rel
        or "\\" in rel
        or rel.startswith("/")
        or re.match(r"^[A-Za-z]:", rel) is not None
        or any(seg in ("", ".", "..") for seg in rel.split("/"))
    )
    if bad:
        raise UnsafePathError(f"refusing remote file name {rel!r}: it would write outside --dest")
    root = Path(dest).resolve()
    target = (root / PurePosixPath(rel)).resolve()
    if target != root and root not in target.parents:
        raise UnsafePathError(f"refusing remote file name {rel!r}: it resolves outside {root}")
    return root / PurePosixPath(rel)


def _part_path(path: Path) -> Path:
    return path.with_name(f".{path.name}.part")


# ---- integrity --------------------------------------------------------------------------------


class _Hashing:
    """A raw file that hashes what is read from it."""

    def __init__(self, raw, h):
        self._raw, self._h = raw, h

    def read(self, n: int = -1) -> bytes:
        b = self._raw.read(n)
        if self._h is not None:
            self._h.update(b)
        return b

    def close(self) -> None:
        self._raw.close()


def check_file(
    path: str | os.PathLike,
    size: int | None = None,
    sha256: str | None = None,
    name: str | None = None,
) -> str | None:
    """None if the file is whole, else what is wrong: its size, its SHA-256, or (for a name
    the readers decompress: .gz, .zst, .bz2, .xz, by `name` or the path's name) a full
    decompression pass. One read of the file."""
    from tokenmill.pipelines.readers import READ_BUFFER, Decompressed, compression_of

    path = Path(path)
    name = name or path.name
    actual = path.stat().st_size
    if size is not None and actual != size:
        return f"size is {actual:,} bytes, expected {size:,}"
    h = hashlib.sha256() if sha256 else None
    kind = compression_of(name)  # what prepare's readers will decompress, checked the same way
    src = _Hashing(open(path, "rb"), h)
    try:
        if kind:
            stream = Decompressed(src, kind)
            buf = bytearray(READ_BUFFER)
            while stream.readinto(buf):
                pass
        else:
            while src.read(READ_BUFFER):
                pass
            if name.endswith(".parquet") and actual >= 8:
                with open(path, "rb") as f:
                    head = f.read(4)
                    f.seek(-4, os.SEEK_END)
                    if head != b"PAR1" or f.read(4) != b"PAR1":
                        return "not a whole Parquet file (no PAR1 magic at both ends)"
    except (EOFError, zlib.error, zstandard.ZstdError) as e:
        return f"decompression failed ({type(e).__name__}: {e})"
    finally:
        src.close()
    if h is not None and h.hexdigest() != sha256.lower():
        return f"SHA-256 is {h.hexdigest()}, expected {sha256.lower()}"
    return None


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


def parse_listing(text: str, fmt: str, where: str = "listing") -> list[tuple[str, str | None]]:
    """(name, sha256) pairs of a checksum listing: `sha256sum` lines (`HASH  NAME`, NAME may
    start with `*` or `./`) or `name_tab_sha256` lines (`NAME<TAB>HASH`)."""
    out: list[tuple[str, str | None]] = []
    for n, line in enumerate(text.splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        parts = line.split(None, 1) if fmt == "sha256sum" else line.rsplit(None, 1)
        if len(parts) != 2:
            raise DownloadError(f"{where} line {n} is not 'HASH NAME': {line[:80]!r}")
        digest, name = parts if fmt == "sha256sum" else parts[::-1]
        if not _SHA256.fullmatch(digest):
            raise DownloadError(f"{where} line {n} has no SHA-256: {line[:80]!r}")
        name = name.strip().removeprefix("*")
        while name.startswith("./"):
            name = name[2:]
        out.append((name, digest.lower()))
    return out


# ---- planning: catalog -> files ----------------------------------------------------------------


@dataclass
class Plan:
    """A source's files, where they come from and what may be sent where."""

    variant: Variant
    root: str
    files: list[RemoteFile]
    credentials: tuple[Credential, ...]  # each sent only to its own origin
    hints: Hints
    checksums: dict[str, str] = field(default_factory=dict)  # split's published checksum files

    def authorization(self, url: str) -> str | None:
        """The Authorization header a request to `url` would carry, if any."""
        cred = credential_for(url, self.credentials)
        return cred.value if cred else None


def _url(root: str, rel: str) -> str:
    return f"{root}/{quote(rel)}"


def _pair(inputs: list[str], companions: list[str]) -> dict[str, str]:
    """Each input's companion: the one whose numbers match (fr_part_3 <-> fr_meta_part_3)."""
    by_nums: dict[tuple, list[str]] = {}
    for c in companions:
        by_nums.setdefault(tuple(re.findall(r"\d+", posixpath.basename(c))), []).append(c)
    out = {}
    for i in inputs:
        key = tuple(re.findall(r"\d+", posixpath.basename(i)))
        match = by_nums.get(key, [])
        if len(match) != 1:
            raise DownloadError(f"no single companion file for {i} (found {match or 'none'})")
        out[i] = match[0]
    return out


def plan_source(
    name: str,
    variant: str | None = None,
    lang: str | None = None,
    files=None,
    dest: str | os.PathLike | None = None,
    base_url: str | None = None,
    *,
    split: str = "train",
    token: str | None = None,
    policy: RetryPolicy | None = None,
    catalog: Catalog | None = None,
) -> Plan:
    """The files to fetch for a catalog source. Template splits need no network; listing splits
    (OSCAR) fetch their listing file into `dest` once. `lang` may list several: "fr,de".
    `token` overrides HF_TOKEN, which goes to the hub only (see `source_credentials`)."""
    policy = policy or RetryPolicy()
    cat = catalog or load_catalog()
    v = cat.variant(name, variant)
    dest = Path(dest) if dest is not None else default_dest(name, v.name, cat)
    root = v.root_url(base_url)
    creds, cred_from = source_credentials(root, bool(base_url), token)
    on_hub = origin(root) in hub_origins()
    # what errors say; the layout (how to fix a 404) is the split's and language's
    hints_for = partial(
        Hints,
        cat.title(name, v.name),
        bool(v.gated),
        f"https://huggingface.co/datasets/{v.repo}" if v.repo else cat.source(name).homepage,
        on_hub and bool(creds),
        root=root,
        mirror=not on_hub,
        base_url=bool(base_url),
        credential="" if on_hub else cred_from,
    )
    fs = v.split(split)
    out: list[RemoteFile] = []
    layout = ""
    for lg in [s.strip() for s in lang.split(",")] if lang else [None]:
        v.check_lang(lg)
        if fs.template is not None:
            rels = v.file_names(split, lg, files)
            layout = _template_layout(v, split, lg, root, rels)
            out += [RemoteFile(_url(root, r), r) for r in rels]
            continue
        listing = v.listing_path(split, lg)
        assert listing is not None
        layout = _listing_layout(v, lg, root, listing)
        text = fetch_small_file(
            _url(root, listing),
            safe_join(dest, listing),
            creds,
            policy,
            hints_for(layout),
            check=lambda t, f=fs.listing_format, w=listing: parse_listing(t, f, w),
        )
        assert text is not None
        out += _listed_files(text, fs, listing, files, root, dest)
    for f in out:
        safe_join(dest, f.rel)
    checksums = {split: fs.checksums} if fs.checksums else {}
    return Plan(v, root, out, creds, hints_for(layout), checksums)


def _template_layout(v: Variant, split: str, lang: str | None, root: str, rels: list[str]) -> str:
    """How to fix a 404 on a split whose file names follow a template."""
    count = v.file_count(split, lang)
    example = rels[0] if rels else v.split(split).template
    return (
        f"Check --variant ({v.name}), --lang, --split ({split}) and --files ({split} has "
        f"{count} files: 0:{count}); a --base-url mirror must keep the published layout "
        f"({root}/{example})."
    )


def _listing_layout(v: Variant, lang: str | None, root: str, listing: str) -> str:
    """How to fix a 404 on a split whose files a listing names."""
    return (
        f"Check --lang ({lang}): {v.source} {v.name} lists a language's files in {listing}; "
        f"a --base-url mirror must keep the published layout ({root}/{listing})."
    )


def _listed_files(
    text: str, fs: FileSet, listing: str, files, root: str, dest: Path
) -> list[RemoteFile]:
    """The files a listing names that the split's `include` pattern and the `files` slice
    select, in natural order, each followed by its companion (if the split has them); with
    the listing's SHA-256. A listing with any name unsafe under `dest` is refused whole."""
    folder = posixpath.dirname(listing)
    entries = []
    for fname, digest in parse_listing(text, fs.listing_format, listing):
        rel = f"{folder}/{fname}" if folder else fname
        safe_join(dest, rel)
        entries.append((rel, digest))
    sums = dict(entries)
    names = [r for r, _ in entries]
    inputs = sorted(
        (r for r in names if fnmatch.fnmatch(posixpath.basename(r), fs.include)),
        key=natural_key,
    )
    chosen = [inputs[i] for i in select(len(inputs), files)]
    companions = {}
    if fs.companion:
        comp = [r for r in names if fnmatch.fnmatch(posixpath.basename(r), fs.companion)]
        companions = _pair(chosen, comp)
    out = []
    for r in chosen:
        out.append(RemoteFile(_url(root, r), r, sha256=sums.get(r)))
        if r in companions:
            c = companions[r]
            out.append(RemoteFile(_url(root, c), c, sha256=sums.get(c), is_input=False))
    return out


def default_dest(name: str, variant: str, catalog: Catalog | None = None) -> Path:
    """data/SOURCE/VARIANT, or the source's own `default_dest` pattern from the catalog."""
    src = (catalog or load_catalog()).source(name)
    return Path(
        (src.default_dest or "data/{source}/{variant}").format(source=name, variant=variant)
    )


# ---- running: files -> Dask tasks ----------------------------------------------------------------


class _Progress:
    """One byte bar for all files, fed by the tasks' worker events."""

    def __init__(self, files: list[RemoteFile], dest: Path, console, quiet: bool):
        from rich.progress import (
            BarColumn,
            DownloadColumn,
            Progress,
            TextColumn,
            TimeRemainingColumn,
            TransferSpeedColumn,
        )

        self.lock = threading.Lock()
        self.state: dict[str, dict] = {}
        for f in files:
            part = _part_path(safe_join(dest, f.rel))
            have = part.stat().st_size if part.exists() else 0
            total = f.size
            self.state[f.rel] = {"start": have, "have": have, "total": total}
        self.done = 0
        self.n = len(files)
        self.noticed: set[str] = set()
        self.progress = Progress(
            TextColumn("[bold]download"),
            BarColumn(bar_width=24),
            DownloadColumn(),
            TransferSpeedColumn(),
            TextColumn("{task.fields[files]}"),
            TimeRemainingColumn(),
            console=console,
            disable=quiet,
            transient=False,
        )
        self.bar = self.progress.add_task("download", total=self._total(), files=self._files())

    def _files(self) -> str:
        return f"{self.done}/{self.n} files"

    def _total(self) -> int | None:
        totals = [s["total"] - s["start"] for s in self.state.values() if s["total"] is not None]
        return sum(totals) if len(totals) == len(self.state) else None

    def _completed(self) -> int:
        return sum(max(0, s["have"] - s["start"]) for s in self.state.values())

    def event(self, event) -> None:
        msg = event[1] if isinstance(event, tuple) else event
        if "notice" in msg:
            with self.lock:
                if msg["notice"] in self.noticed:  # tasks hitting the same dead host
                    return
                self.noticed.add(msg["notice"])
            self.progress.console.print(msg["notice"], markup=False, highlight=False)
            return
        with self.lock:
            s = self.state.get(msg.get("rel"))
            if s is None:
                return
            s.update(start=msg["start"], have=msg["have"], total=msg["total"] or s["total"])
            self.progress.update(self.bar, completed=self._completed(), total=self._total())

    def file_done(self, rel: str) -> None:
        with self.lock:
            self.done += 1
            s = self.state.get(rel)
            if s and s["total"] is not None:
                s["have"] = s["total"]
            self.progress.update(
                self.bar, completed=self._completed(), total=self._total(), files=self._files()
            )


def fetch_files(
    files: list[RemoteFile],
    dest: str | os.PathLike,
    *,
    client=None,
    workers: int | None = None,
    scheduler: str | None = None,
    credentials: tuple[Credential, ...] = (),
    policy: RetryPolicy | None = None,
    hints: Hints | None = None,
    verify: bool = False,
    console=None,
    quiet: bool = False,
) -> FetchResult:
    """Download `files` under `dest` in parallel, one executor call (a Dask task) per file.
    Files already under their final name are complete and skipped without a request (`verify`
    re-checks them first, offline). Without a `client` or `scheduler`, a LocalCluster is
    started only if there is work and each host it needs accepts connections
    (`check_reachable`). An AuthError or UnreachableError stops the rest at once (every other
    file would fail the same way); other failures let the other files finish, then raise."""
    from rich.console import Console

    from tokenmill.pipelines.executor import Call, dask_client

    policy = policy or RetryPolicy()
    hints = hints or Hints()
    dest = Path(dest)
    console = console or Console(stderr=True)
    result, todo = _sort_out(files, dest, verify)
    if not todo:
        return result
    if client is None and scheduler is None:
        _check_hosts(todo, policy, hints, console)
    # one call per file, keyed by its path in the layout (unique in a plan)
    args = (credentials, policy, hints)
    calls = [
        Call(
            f.rel,
            download_file,
            (f.url, str(safe_join(dest, f.rel)), f.size, f.sha256, *args, f.rel),
        )
        for f in todo
    ]
    n_workers = workers or max(1, min(len(todo), 8, 2 * (os.cpu_count() or 1)))
    with contextlib.ExitStack() as stack:
        c = client or stack.enter_context(dask_client(n_workers, scheduler))
        done, errors = _run_downloads(c, calls, _Progress(todo, dest, console, quiet))
    for entry in result.files:
        r = done.get(entry["rel"])
        if r is not None:
            entry.update({k: r[k] for k in r if k not in ("path", "rel")})
    _raise_failures(errors, len(todo))
    return result


def _run_downloads(client, calls: list, progress: _Progress) -> tuple[dict, list]:
    """Run the download calls on `client` with the progress bar: each finished file's counts
    by its path in the layout, and the (path, error) of the files that failed, in the order
    they failed. An AuthError or UnreachableError is raised at once, and stops the rest."""
    from tokenmill.pipelines.executor import Call, run_calls

    errors: list[tuple[str, Exception]] = []

    def failed(call: Call, error: Exception) -> None:
        if isinstance(error, (AuthError, UnreachableError)):  # every other file would fail
            raise error  # the same way: the executor cancels them
        errors.append((call.key, error))

    with progress.progress:
        results = run_calls(
            client,
            "download",
            calls,
            on_result=lambda call, _: progress.file_done(call.key),
            on_error=failed,
            events=(TOPIC, progress.event),
        )
    done = {call.key: r for call, r in zip(calls, results, strict=True) if r is not None}
    return done, errors


def _sort_out(
    files: list[RemoteFile], dest: Path, verify: bool
) -> tuple[FetchResult, list[RemoteFile]]:
    """Every file's entry (complete, or pending) and the files to download: those not under
    their final name, and those `verify` found damaged (deleted here)."""
    result = FetchResult(dest)
    todo: list[RemoteFile] = []
    for f in files:
        path = safe_join(dest, f.rel)
        entry = {"rel": f.rel, "path": str(path), "is_input": f.is_input, "bytes": 0}
        if path.exists() and verify:
            problem = check_file(path, f.size, f.sha256)
            if problem:
                log.warning("%s: %s; downloading it again", path, problem)
                path.unlink()
        if path.exists():
            result.files.append({**entry, "status": "complete"})
        else:
            result.files.append({**entry, "status": "pending"})
            todo.append(f)
    return result, todo


def _check_hosts(todo: list[RemoteFile], policy: RetryPolicy, hints: Hints, console) -> None:
    """`check_reachable` once per host the files come from, its countdown on `console`."""
    hosts: dict[Origin, str] = {}
    for f in todo:
        hosts.setdefault(origin(f.url), f.url)
    for url in hosts.values():
        check_reachable(url, policy, hints, partial(console.print, markup=False, highlight=False))


def _raise_failures(errors: list[tuple[str, Exception]], n: int) -> None:
    """One failed file raises its own error; several, a DownloadError naming the first."""
    if not errors:
        return
    rel, e = errors[0]
    if len(errors) == 1 and isinstance(e, DownloadError):
        raise e
    raise DownloadError(
        f"{len(errors)} of {n} files failed (the others are complete; run again to "
        f"retry). First: {rel}: {e}"
    ) from e


def fetch(
    name: str,
    variant: str | None = None,
    lang: str | None = None,
    files=None,
    dest: str | os.PathLike | None = None,
    base_url: str | None = None,
    client=None,
    *,
    split: str = "train",
    workers: int | None = None,
    scheduler: str | None = None,
    token: str | None = None,
    policy: RetryPolicy | None = None,
    verify: bool = False,
    console=None,
    quiet: bool = False,
    catalog: Catalog | None = None,
) -> FetchResult:
    """Plan a catalog source's files and download those not yet complete (see fetch_source)."""
    policy = policy or RetryPolicy()
    cat = catalog or load_catalog()
    v = cat.variant(name, variant)
    dest = Path(dest) if dest is not None else default_dest(name, v.name, cat)
    plan = plan_source(
        name,
        variant,
        lang,
        files,
        dest,
        base_url,
        split=split,
        token=token,
        policy=policy,
        catalog=cat,
    )
    remote = plan.files
    pending = [f for f in remote if not safe_join(dest, f.rel).exists()]
    if pending and plan.checksums:
        remote = _with_published_checksums(plan, dest, policy)
    return fetch_files(
        remote,
        dest,
        client=client,
        workers=workers,
        scheduler=scheduler,
        credentials=plan.credentials,
        policy=policy,
        hints=plan.hints,
        verify=verify,
        console=console,
        quiet=quiet,
    )


def _with_published_checksums(plan: Plan, dest: Path, policy: RetryPolicy) -> list[RemoteFile]:
    sums: dict[str, str] = {}
    for rel in set(plan.checksums.values()):
        text = fetch_small_file(
            _url(plan.root, rel),
            safe_join(dest, rel),
            plan.credentials,
            policy,
            plan.hints,
            optional=True,
            check=lambda t, w=rel: parse_listing(t, "sha256sum", w),
        )
        if text is None:
            log.warning("%s/%s is not served: files are checked without it", plan.root, rel)
            continue
        folder = posixpath.dirname(rel)
        for name, digest in parse_listing(text, "sha256sum", rel):
            sums[f"{folder}/{name}" if folder else name] = digest
    return [
        RemoteFile(f.url, f.rel, f.size, f.sha256 or sums.get(f.rel), f.is_input)
        for f in plan.files
    ]


def fetch_source(
    name: str,
    variant: str | None = None,
    lang: str | None = None,
    files=None,
    dest: str | os.PathLike | None = None,
    base_url: str | None = None,
    client=None,
    **kwargs,
) -> list[str]:
    """Download a catalog source (or the part of it `variant`, `lang`, `files` select) into
    `dest` in its published layout, on `client` or a new LocalCluster, and return the local
    paths of its input files, in order. Complete files are not fetched again; a gated source
    on the hub reads its token from HF_TOKEN (sent to the hub only; a mirror's credentials
    come from TOKENMILL_MIRROR_TOKEN or netrc, see `source_credentials`). Keyword options:
    split, workers, scheduler, token, policy, verify, console, quiet (see `fetch`). Raises
    CatalogError, DownloadError (AuthError, NotFoundError, IntegrityError, UnreachableError,
    UnsafePathError)."""
    return fetch(name, variant, lang, files, dest, base_url, client, **kwargs).paths


__all__ = [
    "AuthError",
    "CatalogError",
    "Credential",
    "DownloadError",
    "FetchResult",
    "Hints",
    "IntegrityError",
    "NotFoundError",
    "RemoteFile",
    "RetryPolicy",
    "UnreachableError",
    "UnsafePathError",
    "check_file",
    "credential_for",
    "download_file",
    "fetch",
    "fetch_files",
    "fetch_source",
    "parse_listing",
    "plan_source",
    "safe_join",
    "source_credentials",
]
