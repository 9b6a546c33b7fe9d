"""Rule `url`: removes documents whose URL is on a block list (domains, or words in the URL),
for sources whose records carry a URL (C4's `url`, OSCAR's `warc-target-uri`, a JSON lines
`url` field), as RefinedWeb did with the UT1 lists and datatrove's URLFilter does.

- **Domains** (`block_domains`, and the files of `block_domains_files`): a URL's host matches
  a listed domain when it is that domain or a subdomain of it: `a.b.example.com` and
  `example.com` match `example.com`; `notexample.com` and `example.com.au` do not. Hosts and
  listed domains are compared lower-cased, without a trailing dot, port or user info (a
  listed `*.example.com` or `.example.com` is read as `example.com`). An IP-address host
  matches only that address (IPv6 in any spelling, with or without brackets). Listing a
  top-level domain (`xxx`) blocks every host under it.
- **Files**: UT1's layout (the Université Toulouse Capitole blacklists: a folder per category,
  each with a `domains` file): one domain per line, blank lines and `#` comments skipped. A
  path is such a file (any name), or a folder: every file named `domains` in it or in its
  subfolders one level down is read (`blacklists/` reads every category, `blacklists/adult`
  one). UT1's `urls` and `expressions` files are not read. A file's relative path is resolved
  against the config's folder. The lists load once per worker process, on the first batch,
  into a set held in memory: about 115 MB per million domains of 33 characters (measured
  with tracemalloc), so UT1's 4.6M adult domains take about half a GB in each worker. The
  pinned config names the files, not their contents: after editing a list, rerun with
  `--fresh`.
- **Words** (`block_words`): matched as whole tokens of the URL's host and path. Both are
  lower-cased (the path percent-decoded first) and split at every character that is not a
  letter or a digit: `https://free-casino.example.com/win_now.html` gives the tokens `free
  casino example com win now html`. A block word of several tokens (`free casino`,
  `free-casino`) matches those tokens next to each other, in order. So `casino` matches the
  URL above but not `/casinos` or `/mycasino`. The query string and fragment are not searched.
- **Reasons**: `url:blocked_domain` (checked first), `url:blocked_word`, counted as
  `quality:url:...`.

A document without a URL (the Pile, most JSON lines) or whose URL has no host passes. The
rule reads the URL (`needs = ("url",)`), never the text. No format runs it by default: name it
in a source's `quality.filter_sets`.
"""

from __future__ import annotations

import ipaddress
import os
import re
from functools import lru_cache
from pathlib import Path
from typing import ClassVar
from urllib.parse import unquote, urlsplit

from pydantic import Field, field_validator

from tokenmill.filters.base import Filter, RuleParams, Verdict

_TOKEN_SPLIT = re.compile(r"[\W_]+")


def url_tokens(text: str) -> list[str]:
    """The lower-cased letter-and-digit runs of `text`."""
    return [t for t in _TOKEN_SPLIT.split(text.lower()) if t]


def normalize_domain(d: str) -> str:
    """A listed domain as hosts are compared: lower-cased, no `*.`/`.` in front, no trailing
    dot; an IPv6 address (brackets optional) in its compressed form."""
    d = d.strip().lower()
    if ":" in d:
        return _ipv6(d.removeprefix("[").removesuffix("]")) or d
    if d.startswith("*."):
        d = d[2:]
    return d.strip(".")


def _ipv6(s: str) -> str | None:
    try:
        return ipaddress.IPv6Address(s).compressed
    except ValueError:
        return None


def host_and_path(url: str) -> tuple[str, str]:
    """The URL's host (lower-cased, no port, user info or trailing dot) and its path
    (percent-decoded); ("", "") for a URL that cannot be parsed. A URL without a scheme
    (`example.com/a`) is read as a host and path."""
    if "//" not in url:
        url = "//" + url
    try:
        parts = urlsplit(url)
        host = parts.hostname or ""
    except ValueError:  # e.g. an unbalanced `[` in the host
        return "", ""
    if ":" in host:  # an IPv6 address: one spelling
        host = _ipv6(host) or host
    return host.rstrip("."), unquote(parts.path, errors="replace")


def domain_files(path: str) -> list[Path]:
    """The domain list files a `block_domains_files` entry names (module docstring)."""
    p = Path(path)
    if p.is_file():
        return [p]
    if p.is_dir():
        found = sorted(p.glob("domains")) + sorted(p.glob("*/domains"))
        found = [f for f in found if f.is_file()]
        if not found:
            raise FileNotFoundError(
                f"{p}: no `domains` file in this folder or its subfolders (UT1 layout: "
                f"CATEGORY/domains)"
            )
        return found
    raise FileNotFoundError(f"domain list not found: {p}")


@lru_cache(maxsize=4)
def load_domains(paths: tuple[str, ...]) -> frozenset[str]:
    """Every domain in the list files `paths` name, normalized; read once per process."""
    out: set[str] = set()
    for path in paths:
        for f in domain_files(path):
            with open(f, encoding="utf-8", errors="replace") as fh:
                for line in fh:
                    line = line.strip()
                    if line and not line.startswith("#"):
                        d = normalize_domain(line)
                        if d:
                            out.add(d)
    return frozenset(out)


class UrlParams(RuleParams):
    """Block lists for the URL; all empty by default (the rule then keeps everything)."""

    path_fields: ClassVar[tuple[str, ...]] = ("block_domains_files",)

    block_domains: list[str] = Field(default_factory=list, description="a.example.com matches")
    block_domains_files: list[str] = Field(
        default_factory=list, description="files or UT1 folders (CATEGORY/domains), a domain a line"
    )
    block_words: list[str] = Field(default_factory=list, description="whole tokens of host+path")

    @field_validator("block_domains")
    @classmethod
    def _domains(cls, v: list[str]) -> list[str]:
        for d in v:
            n = normalize_domain(d)
            if _ipv6(n):
                continue
            if not n or any(c in n for c in "/:@ \t") or ".." in n:
                raise ValueError(f"{d!r} is not a domain (write example.com, not a URL)")
        return v

    @field_validator("block_words")
    @classmethod
    def _words(cls, v: list[str]) -> list[str]:
        for w in v:
            if not url_tokens(w):
                raise ValueError(f"{w!r} has no letter or digit: it would match nothing")
        return v

    @field_validator("block_domains_files")
    @classmethod
    def _files(cls, v: list[str]) -> list[str]:
        if any(not p.strip() for p in v):
            raise ValueError("an empty path")
        return v


class UrlBlockList(Filter):
    """Removes documents whose URL's host is (a subdomain of) a blocked domain, or whose host
    and path hold a blocked word (module docstring); documents without a URL pass."""

    Params = UrlParams
    label = "url"
    needs = ("url",)

    def setup(self) -> None:
        self._inline = frozenset(normalize_domain(d) for d in self.block_domains)
        self._files = tuple(os.fspath(p) for p in self.block_domains_files)
        words = [tuple(url_tokens(w)) for w in self.block_words]
        self._single = frozenset(w[0] for w in words if len(w) == 1)
        self._multi = tuple(sorted({w for w in words if len(w) > 1}))

    def judge(self, texts: list[str], langs: list[str], url: list[str | None]) -> list[Verdict]:
        # the files' set is the process's cached one: never copied into a union per batch
        lists = [d for d in (self._inline, load_domains(self._files) if self._files else None) if d]
        words = bool(self._single or self._multi)
        out: list[Verdict] = []
        for u in url:
            if not u:
                out.append(None)
                continue
            host, path = host_and_path(u)
            if not host:
                out.append(None)
                continue
            if lists and self._blocked_host(host, lists):
                out.append("blocked_domain")
            elif words and self._blocked_words(host, path):
                out.append("blocked_word")
            else:
                out.append(None)
        return out

    @staticmethod
    def _blocked_host(host: str, lists: list[frozenset[str]]) -> bool:
        """Whether `host` or a domain it is under (each suffix after a dot) is listed."""
        if any(host in d for d in lists):
            return True
        if ":" in host or host.replace(".", "").isdigit():
            return False  # an IP address matches only itself
        at = host.find(".")
        while at != -1:
            tail = host[at + 1 :]
            if any(tail in d for d in lists):
                return True
            at = host.find(".", at + 1)
        return False

    def _blocked_words(self, host: str, path: str) -> bool:
        tokens = url_tokens(host) + url_tokens(path)
        if self._single and not self._single.isdisjoint(tokens):
            return True
        for w in self._multi:
            n = len(w)
            for i in range(len(tokens) - n + 1):
                if tuple(tokens[i : i + n]) == w:
                    return True
        return False
