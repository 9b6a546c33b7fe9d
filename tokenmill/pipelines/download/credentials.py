"""Credentials, each bound to one origin (scheme, host, port) and sent only on requests to it.

HF_TOKEN (else HUGGING_FACE_HUB_TOKEN, or an explicit token) goes to the hub only: the origins
of huggingface.co, hf.co and $HF_ENDPOINT; never to the CDN the hub redirects to (its URLs are
pre-signed) nor to a --base-url mirror. A mirror gets TOKENMILL_MIRROR_TOKEN (Bearer, to the
--base-url origin only), else the netrc entry for its host ($NETRC, else ~/.netrc; Basic).
`source_credentials` applies these rules for a source's root; `credential_for` picks the one a
request may carry. Reads the environment and the netrc file; sends nothing."""

from __future__ import annotations

import base64
import netrc
import os
from dataclasses import dataclass, field

import httpx

from tokenmill.pipelines.download.errors import DownloadError

# The hub hosts HF_TOKEN belongs to (with the $HF_ENDPOINT origin when set). Not its CDN/LFS
# hosts (cdn-lfs*.huggingface.co, cas-bridge.xethub.hf.co...): the hub redirects there with
# pre-signed URLs, which need no token and which S3 refuses alongside an Authorization header.
HUB_HOSTS = ("huggingface.co", "hf.co")
MIRROR_TOKEN_ENV = "TOKENMILL_MIRROR_TOKEN"


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
