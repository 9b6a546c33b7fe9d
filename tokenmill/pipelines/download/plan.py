"""Planning: the files of a catalog source (variant, split, languages, --files slice), each
with its URL (the hub or a --base-url mirror), its path in the published layout and its SHA-256
where a listing gives one, plus what may be sent where and what errors will say (`plan_source`
-> `Plan`). Template splits need no network; listing splits (OSCAR) fetch their listing into
dest once. Every remote name is checked safe under dest before anything is downloaded.
`default_dest`: where a source goes without --dest."""

from __future__ import annotations

import fnmatch
import os
import posixpath
import re
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from urllib.parse import quote

from tokenmill.pipelines.catalog import (
    Catalog,
    FileSet,
    Variant,
    load_catalog,
    natural_key,
    select,
)
from tokenmill.pipelines.download.credentials import (
    Credential,
    credential_for,
    hub_origins,
    origin,
    source_credentials,
)
from tokenmill.pipelines.download.errors import DownloadError
from tokenmill.pipelines.download.files import _SHA256, safe_join
from tokenmill.pipelines.download.messages import Hints
from tokenmill.pipelines.download.transfer import RetryPolicy, fetch_small_file


@dataclass(frozen=True)
class RemoteFile:
    url: str
    rel: str  # its path in the published layout, and under dest
    size: int | None = None
    sha256: str | None = None
    is_input: bool = True  # False for companions (OSCAR 21.09 metadata) read with an input


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
