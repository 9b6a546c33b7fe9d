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

Modules, one concern each (lower ones never import higher ones):
- `errors`: DownloadError and its kinds (AuthError, NotFoundError, IntegrityError,
  UnsafePathError, UnreachableError).
- `credentials`: origins and the credentials bound to them (HF_TOKEN, TOKENMILL_MIRROR_TOKEN,
  netrc): `source_credentials`, `credential_for`.
- `messages`: `Hints`, what the errors say and what to do.
- `files`: where a file lands (`safe_join`, its `.part`) and whether it is whole (`check_file`).
- `transfer`: one file over HTTP with resume, retries and progress events (`download_file`,
  `RetryPolicy`, `fetch_small_file`, `check_reachable`).
- `plan`: a catalog source's files, URLs and checksums (`plan_source`, `parse_listing`,
  `default_dest`).
- `progress`: the terminal's byte bar.
- `run`: planning and downloading together on the executor (`fetch_source`, `fetch`,
  `fetch_files`, `FetchResult`).
The command itself is `pipelines/download_cli.py`, outside this package: cli.py imports it at
start-up, and importing the package (httpx, the catalog) would slow `tokenmill --help`.
"""

from __future__ import annotations

from tokenmill.pipelines.catalog import CatalogError
from tokenmill.pipelines.download.credentials import (
    HUB_HOSTS,
    MIRROR_TOKEN_ENV,
    Credential,
    Origin,
    credential_for,
    hf_token,
    hub_origins,
    netrc_credential,
    origin,
    source_credentials,
)
from tokenmill.pipelines.download.errors import (
    AuthError,
    DownloadError,
    IntegrityError,
    NotFoundError,
    UnreachableError,
    UnsafePathError,
)
from tokenmill.pipelines.download.files import (
    check_file,
    safe_join,
)
from tokenmill.pipelines.download.messages import (
    Hints,
)
from tokenmill.pipelines.download.plan import (
    Plan,
    RemoteFile,
    default_dest,
    parse_listing,
    plan_source,
)
from tokenmill.pipelines.download.run import (
    FetchResult,
    fetch,
    fetch_files,
    fetch_source,
)
from tokenmill.pipelines.download.transfer import (
    TOPIC,
    USER_AGENT,
    RetryPolicy,
    check_reachable,
    download_file,
    fetch_small_file,
)

__all__ = [
    "AuthError",
    "CatalogError",
    "Credential",
    "DownloadError",
    "FetchResult",
    "HUB_HOSTS",
    "Hints",
    "IntegrityError",
    "MIRROR_TOKEN_ENV",
    "NotFoundError",
    "Origin",
    "Plan",
    "RemoteFile",
    "RetryPolicy",
    "TOPIC",
    "USER_AGENT",
    "UnreachableError",
    "UnsafePathError",
    "check_file",
    "check_reachable",
    "credential_for",
    "default_dest",
    "download_file",
    "fetch",
    "fetch_files",
    "fetch_small_file",
    "fetch_source",
    "hf_token",
    "hub_origins",
    "netrc_credential",
    "origin",
    "parse_listing",
    "plan_source",
    "safe_join",
    "source_credentials",
]
