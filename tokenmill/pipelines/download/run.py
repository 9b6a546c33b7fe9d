"""The run: `fetch_source` and `fetch` plan a catalog source and download what is not yet
complete; `fetch_files` runs one executor call (a Dask task) per file with the progress bar.
Files under their final name are skipped without a request; each host is tried before a local
cluster starts; an AuthError or UnreachableError stops the rest at once, any other failure lets
the other files finish, then raises. The result (FetchResult) has each file's status and counts."""

from __future__ import annotations

import contextlib
import logging
import os
import posixpath
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

from tokenmill.pipelines.catalog import Catalog, load_catalog
from tokenmill.pipelines.download.credentials import Credential, Origin, origin
from tokenmill.pipelines.download.errors import AuthError, DownloadError, UnreachableError
from tokenmill.pipelines.download.files import check_file, safe_join
from tokenmill.pipelines.download.messages import Hints
from tokenmill.pipelines.download.plan import (
    Plan,
    RemoteFile,
    _url,
    default_dest,
    parse_listing,
    plan_source,
)
from tokenmill.pipelines.download.progress import _Progress
from tokenmill.pipelines.download.transfer import (
    TOPIC,
    RetryPolicy,
    check_reachable,
    download_file,
    fetch_small_file,
)

log = logging.getLogger(__name__)


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
