"""Rule `pii`: email addresses and IP addresses replaced by a placeholder naming their kind, as
BigScience's ROOTS pipeline did (data-preparation, 02_pii/bigscience_pii_detect_redact.py,
which wrote `PI:EMAIL` and `PI:IP_ADDRESS`). It never removes a document: it rewrites it.

Kinds and default placeholders: `email` -> `<EMAIL>`, `ipv4` and `ipv6` -> `<IP_ADDRESS>`
(StarCoder's spelling; `placeholders: {email: "PI:EMAIL", ...}` gives ROOTS'). Each replaced
span is counted by kind (stats.json: `rewritten["quality:pii"].counts`).

What counts as an address (stricter than ROOTS' patterns, which matched any `x@y` and any four
dotted numbers up to 255):

- **email**: a dot-atom local part of `A-Z a-z 0-9 . _ % + -` (no dot first, last or twice),
  `@`, then a domain of dot-separated labels (letters, digits, inner hyphens) ending in a
  letters-only top-level label of 2-63 letters: `luc@gmail.com`, `a.b+c@lists.debian.org`.
  Not inside a longer token. Not an address: `python@2.7`, `user@localhost`, `@decorator`,
  `pkg@1.2.3`. Examples in documentation (`user@host.dom`) are addresses by their form and
  are replaced.
- **ipv4**: four dotted decimal numbers 0-255 without leading zeros (what Python's
  `ipaddress` accepts), not inside a longer dotted or alphanumeric token (`1.2.3.4.5`,
  `v1.2.3.4`, `4.3.2.1.in-addr.arpa` are not addresses). Read as version or section numbers
  and left alone: four one-digit numbers (`6.2.4.3`, `1.2.3.4`, and so `8.8.8.8` too, as
  BigCode's PII filter also does), numbers opening a line and followed by a dot, space and a
  letter (a heading: `12.6.2.2. Uninstall`), and numbers after a version or section word
  (`version 12.1.0.2`, `Section 2.4.3.5`, `§`: VERSION_WORDS). Dates are never four numbers
  up to 255 (`2023.10.12`, `12.10.2023` are not candidates).
- **ipv6**: a run of hex groups and colons (optionally ending in a dotted IPv4) that Python's
  `ipaddress.IPv6Address` accepts, with at least one decimal digit (as ROOTS required), not
  inside a longer token: `2001:4860:4860::8888`, `::ffff:93.184.216.34`. Clock times
  (`23:07:40`), `APT::Periodic`, `std::map`, MAC addresses are not.
- an address followed by a prefix length that leaves no host bits is a network, not a host,
  and stays (`2002::/16`, `93.184.0.0/16`); `93.184.216.34/24` is a host's address.

`ip_scope` (default `public`): only addresses that reach a host on the public internet are
replaced, as BigCode's PII pipeline chose (ROOTS replaced all); private, loopback, link-local,
documentation, benchmarking, shared, multicast and reserved addresses (`192.168.0.1`,
`127.0.0.1`, `255.255.255.0`, `224.0.0.251`, `::1`, `fe80::1`, `2001:db8::1`) identify no one
and stay, as the configuration examples in manuals do. For IPv6 only global unicast (2000::/3,
less its special ranges) is public; an IPv6 address that carries an IPv4 address
(IPv4-mapped, 6to4, NAT64) is judged by that IPv4 address. The ranges are IANA's
special-purpose registries, written out below (NOT_PUBLIC_V4, NOT_PUBLIC_V6), so the decision
does not change with the Python version's `is_global`. `all` replaces every address.

Speed: the patterns are compiled once (module level). Each kind first looks for a literal that
every address of it holds (`@`; `.N.N.`; `:H:`), which `re` finds at memory speed, skips the
document without one and starts its pattern there; only candidates are parsed.
"""

from __future__ import annotations

import ipaddress
import re
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from tokenmill.filters.base import Filter, Kept, RuleParams, Verdict

Kind = Literal["email", "ipv4", "ipv6"]
KINDS: tuple[str, ...] = ("email", "ipv4", "ipv6")

# Boundaries are ASCII: Chinese and Japanese text write an address right after a word.
_EMAIL = re.compile(
    r"(?<![A-Za-z0-9_.%+\-])"  # not the tail of a longer token
    r"[A-Za-z0-9_%+\-]+(?:\.[A-Za-z0-9_%+\-]+)*"
    r"@"
    r"(?:[A-Za-z0-9](?:[A-Za-z0-9\-]{0,61}[A-Za-z0-9])?\.)+[A-Za-z]{2,63}"
    r"(?![A-Za-z0-9_\-]|\.[A-Za-z0-9])"
)
_IPV4 = re.compile(
    r"(?<![A-Za-z0-9_.])"
    r"[0-9]{1,3}(?:\.[0-9]{1,3}){3}"
    r"(?![A-Za-z0-9_]|\.[A-Za-z0-9_])"
)
_IPV6 = re.compile(
    r"(?<![A-Za-z0-9_:.])"
    r"[0-9A-Fa-f]{0,4}(?::[0-9A-Fa-f]{0,4}){2,7}"
    r"(?:(?<=:)[0-9]{1,3}(?:\.[0-9]{1,3}){3})?"
    r"(?![A-Za-z0-9_:]|\.[0-9])"
)
# Necessary parts of a candidate, each starting with a literal, which `re` finds far faster
# than a pattern starting with a class: a document without one skips that pattern, and the
# pattern starts at the first one (an address starts at most 3 digits / 4 hex digits before).
_IPV4_HINT = re.compile(r"\.[0-9]{1,3}\.[0-9]{1,3}\.")
_IPV6_HINT = re.compile(r":[0-9A-Fa-f]{0,4}:")
# A version or section word right before four dotted numbers (case-insensitive; optionally
# followed by `:` or `.`): the numbers are a version or a section, not an address.
VERSION_WORDS = frozenset(
    {
        "version",
        "versions",
        "ver",
        "v",
        "release",
        "build",
        "rev",
        "revision",
        "section",
        "sections",
        "sect",
        "sec",
        "chapter",
        "§",
    }
)
_WORD_BEFORE = re.compile(r"(\S+?)[:.]?[ \t]*\Z")
_HEADING_TAIL = re.compile(r"\.[ \t]+[^\W\d_]")  # `. ` then a letter
_PREFIX_LEN = re.compile(r"/([0-9]{1,3})(?![0-9])")

NOT_PUBLIC_V4 = tuple(
    ipaddress.IPv4Network(n)
    for n in (
        "0.0.0.0/8",  # this network
        "10.0.0.0/8",  # private
        "100.64.0.0/10",  # shared (carrier-grade NAT)
        "127.0.0.0/8",  # loopback
        "169.254.0.0/16",  # link-local
        "172.16.0.0/12",  # private
        "192.0.0.0/24",  # IETF protocol assignments
        "192.0.2.0/24",  # documentation (TEST-NET-1)
        "192.88.99.0/24",  # 6to4 relay anycast (deprecated)
        "192.168.0.0/16",  # private
        "198.18.0.0/15",  # benchmarking
        "198.51.100.0/24",  # documentation (TEST-NET-2)
        "203.0.113.0/24",  # documentation (TEST-NET-3)
        "224.0.0.0/4",  # multicast
        "240.0.0.0/4",  # reserved, and 255.255.255.255 (netmasks such as 255.255.255.0)
    )
)
GLOBAL_UNICAST_V6 = ipaddress.IPv6Network("2000::/3")
NOT_PUBLIC_V6 = tuple(
    ipaddress.IPv6Network(n)
    for n in (
        "2001::/23",  # IETF protocol assignments (Teredo, benchmarking, ORCHID, ...)
        "2001:db8::/32",  # documentation
        "3fff::/20",  # documentation (RFC 9637)
    )
)


NAT64_V6 = ipaddress.IPv6Network("64:ff9b::/96")


def embedded_ipv4(ip: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 address carries: IPv4-mapped (::ffff:0:0/96), 6to4
    (2002::/16) or NAT64 (64:ff9b::/96); None for any other."""
    if ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    if ip.sixtofour is not None:
        return ip.sixtofour
    if ip in NAT64_V6:
        return ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    return None


# the ranges as (first, last) integers: a membership test without building objects
_RANGES_V4 = tuple((int(n.network_address), int(n.broadcast_address)) for n in NOT_PUBLIC_V4)
_RANGES_V6 = tuple((int(n.network_address), int(n.broadcast_address)) for n in NOT_PUBLIC_V6)


def is_public(ip: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    """Whether `ip` reaches a host on the public internet (see the module docstring)."""
    if ip.version == 6:
        v4 = embedded_ipv4(ip)
        if v4 is not None:
            return is_public(v4)
        if ip not in GLOBAL_UNICAST_V6:
            return False
        ranges = _RANGES_V6
    else:
        ranges = _RANGES_V4
    v = int(ip)
    return not any(lo <= v <= hi for lo, hi in ranges)


def _is_network(text: str, end: int, ip) -> bool:
    """An address followed by a prefix length that leaves no host bits (`2002::/16`,
    `93.184.0.0/16`): a network, not a host's address."""
    m = _PREFIX_LEN.match(text, end)
    if m is None or int(m[1]) >= ip.max_prefixlen:
        return False
    try:
        ipaddress.ip_network(f"{ip}/{m[1]}")  # strict: refuses host bits
    except ValueError:
        return False
    return True


def _looks_like_version(text: str, start: int, end: int, s: str) -> bool:
    """Four dotted numbers that read as a version or section number (module docstring). Looks
    back only over the indentation and a few characters: a long line costs nothing extra."""
    if len(s) == 7:  # four one-digit numbers
        return True
    j = start
    while j > 0 and text[j - 1] in " \t":
        j -= 1
    if (j == 0 or text[j - 1] == "\n") and _HEADING_TAIL.match(text, end):
        return True  # a heading: `12.6.2.2. Title`
    lo = max(0, start - 24)
    m = _WORD_BEFORE.search(text, text.rfind("\n", lo, start) + 1 or lo, start)
    return m is not None and m[1].lower() in VERSION_WORDS


class PiiPlaceholders(BaseModel):
    """The text that replaces each kind of address."""

    model_config = ConfigDict(extra="forbid")

    email: str = "<EMAIL>"
    ipv4: str = "<IP_ADDRESS>"
    ipv6: str = "<IP_ADDRESS>"

    @model_validator(mode="after")
    def _no_address_inside(self) -> PiiPlaceholders:
        for kind in KINDS:
            value = getattr(self, kind)
            if find_spans(value, KINDS, "all"):
                raise ValueError(f"the {kind} placeholder {value!r} is itself an address")
        return self


class PiiParams(RuleParams):
    """Which kinds of address to replace, with what, and which IP addresses."""

    kinds: list[Kind] = Field(default_factory=lambda: list(KINDS), min_length=1)
    placeholders: PiiPlaceholders = Field(default_factory=PiiPlaceholders)
    ip_scope: Literal["public", "all"] = Field(
        "public", description="public: globally reachable addresses only; all: every address"
    )

    @field_validator("kinds")
    @classmethod
    def _each_once(cls, v: list[str]) -> list[str]:
        if len(set(v)) != len(v):
            raise ValueError(f"each kind once (got {v})")
        return v


def find_spans(text: str, kinds, ip_scope: str = "public") -> list[tuple[int, int, str]]:
    """(start, end, kind) of every address of `kinds` in `text` (the module docstring says
    what counts), in text order, without overlaps (the earlier, then the longer, wins)."""
    spans: list[tuple[int, int, str]] = []
    public_only = ip_scope == "public"
    at = text.find("@") if "email" in kinds else -1
    if at != -1:
        # the local part has no whitespace: start after the last space or newline before `@`
        pos = max(text.rfind(" ", 0, at), text.rfind("\n", 0, at), text.rfind("\t", 0, at)) + 1
        spans += [(m.start(), m.end(), "email") for m in _EMAIL.finditer(text, pos)]
    hint = _IPV6_HINT.search(text) if "ipv6" in kinds else None
    if hint is not None:
        for m in _IPV6.finditer(text, max(0, hint.start() - 4)):
            s = m[0]
            if not any(c.isdigit() for c in s):
                continue
            try:
                ip = ipaddress.IPv6Address(s)
            except ValueError:
                continue
            if (not public_only or is_public(ip)) and not _is_network(text, m.end(), ip):
                spans.append((m.start(), m.end(), "ipv6"))
    hint = _IPV4_HINT.search(text) if "ipv4" in kinds else None
    if hint is not None:
        for m in _IPV4.finditer(text, max(0, hint.start() - 3)):
            s = m[0]
            try:
                ip = ipaddress.IPv4Address(s)
            except ValueError:  # a number over 255 or with a leading zero
                continue
            if _looks_like_version(text, m.start(), m.end(), s):
                continue
            if (not public_only or is_public(ip)) and not _is_network(text, m.end(), ip):
                spans.append((m.start(), m.end(), "ipv4"))
    if len(spans) > 1:
        spans.sort(key=lambda x: (x[0], -x[1]))
        kept = [spans[0]]
        for sp in spans[1:]:
            if sp[0] >= kept[-1][1]:
                kept.append(sp)
        spans = kept
    return spans


class PiiRedaction(Filter):
    """Replaces email and IP addresses with placeholders (the module docstring); keeps every
    document. Counts per kind the spans replaced (`Kept(text, {"email": n, ...})`)."""

    Params = PiiParams
    label = "pii"
    rewrites = True

    def setup(self) -> None:
        self._kinds = frozenset(self.kinds)
        self._with = {k: getattr(self.placeholders, k) for k in KINDS}

    def judge(self, texts: list[str], langs: list[str]) -> list[Verdict]:
        out: list[Verdict] = []
        for text in texts:
            spans = find_spans(text, self._kinds, self.ip_scope)
            if not spans:
                out.append(None)
                continue
            parts, counts, at = [], {}, 0
            for start, end, kind in spans:
                parts.append(text[at:start])
                parts.append(self._with[kind])
                counts[kind] = counts.get(kind, 0) + 1
                at = end
            parts.append(text[at:])
            out.append(Kept("".join(parts), counts))
        return out
