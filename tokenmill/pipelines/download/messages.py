"""What download errors say. `Hints` (built once per source by the client, passed to every
task) turns a 401/403, a 404 or an unreachable host into one message that says what to do:
accept a gated dataset's terms and set HF_TOKEN, give a mirror its own credentials, check
--variant, --lang, --files or --base-url, check the network. Builds text only."""

from __future__ import annotations

from dataclasses import dataclass

from tokenmill.pipelines.download.credentials import MIRROR_TOKEN_ENV, _hostport, origin


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
