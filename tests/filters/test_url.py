"""Rule `url`: documents whose URL's host is (under) a blocked domain, or whose host and path
hold a blocked word, are removed; the base class hands a rule the documents' urls when it
`needs` them.

The oracle is a plain reading of the rule's documentation: a host blocked when it equals a
listed domain or ends with "." + it; words are the ASCII letter-and-digit runs of the
lower-cased host and percent-decoded path. It runs on the bundled sample's real C4 and OSCAR
urls and through a real `prepare` of C4 files with a UT1-layout list folder.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from urllib.parse import unquote, urlsplit

import pytest
from tmfixtures import dumps, sample_docs, write_gz_lines

from tokenmill.config import ConfigError, load_config
from tokenmill.filters.base import Filter
from tokenmill.filters.registry import QualityConfig, _check_row, apply_filters, build_filters
from tokenmill.filters.url import UrlBlockList, load_domains


def _judge(rule, urls):
    return rule(["text"] * len(urls), ["en"] * len(urls), url=urls)


# ---- domains --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "blocked"),
    [
        ("https://example.com/", True),
        ("https://a.b.example.com/x?y=1", True),  # a subdomain matches its domain
        ("http://WWW.Example.COM./path", True),  # case and a trailing dot do not matter
        ("https://user:pw@shop.example.com:8443/", True),  # nor user info and port
        ("example.com/no/scheme", True),
        ("https://notexample.com/", False),  # a longer name is not a subdomain
        ("https://example.com.au/", False),
        ("https://example.co/", False),
        ("https://example.org/example.com", False),  # the path is not the host
        ("https://other.org/?u=https://example.com", False),
        ("https://10.0.0.1/", True),  # a listed address: only itself
        ("https://110.0.0.1/", False),
        ("https://1.10.0.0.1/", False),
        ("http://[2001:db8::1]:80/", True),
        ("http://[2001:db8::1:0]/", False),
        ("https://deep.sub.blocked-site.net/a", True),  # listed as *.blocked-site.net
        ("http://[broken/", False),  # not parsable: no host
        ("", False),
        (None, False),  # no url: the document passes
    ],
)
def test_a_host_matches_a_listed_domain_and_its_subdomains_only(url, blocked):
    rule = UrlBlockList(
        block_domains=["Example.com", "10.0.0.1", "2001:db8::1", "*.blocked-site.net"]
    )
    assert _judge(rule, [url]) == ["url:blocked_domain" if blocked else None]


def test_a_listed_top_level_domain_blocks_every_host_under_it():
    rule = UrlBlockList(block_domains=["xxx"])
    assert _judge(rule, ["http://a.xxx/", "http://xxx.com/", "http://a.b.xxx./"]) == [
        "url:blocked_domain",
        None,
        "url:blocked_domain",
    ]


# ---- words ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("https://free-casino.example.org/win_now.html", "url:blocked_word"),
        ("https://x.org/games/CASINO/", "url:blocked_word"),
        ("https://x.org/casinos/", None),  # whole tokens only
        ("https://x.org/mycasino", None),
        ("https://x.org/page?q=casino#casino", None),  # query and fragment are not searched
        ("https://x.org/la%20casino", "url:blocked_word"),  # the path is percent-decoded
        ("https://x.org/free/porn/", "url:blocked_word"),  # `free porn`: tokens in a row
        ("https://x.org/porn-free/", None),  # not in that order
        ("https://x.org/free/x/porn/", None),  # not next to each other
        ("https://x.org/free_porn", "url:blocked_word"),
        ("https://casino.blocked.org/", "url:blocked_domain"),  # the domain is checked first
    ],
)
def test_block_words_are_whole_tokens_of_host_and_path(url, reason):
    rule = UrlBlockList(block_words=["casino", "Free-Porn"], block_domains=["blocked.org"])
    assert _judge(rule, [url]) == [reason]


def _tokens(s: str) -> list[str]:
    return re.findall(r"[a-z0-9]+", s.lower())


def _oracle(url: str | None, domains: set[str], words: list[list[str]]) -> str | None:
    if not url:
        return None
    parts = urlsplit(url)
    host = (parts.hostname or "").rstrip(".")
    if not host:
        return None
    if any(host == d or host.endswith("." + d) for d in domains):
        return "url:blocked_domain"
    toks = _tokens(host) + _tokens(unquote(parts.path))
    for w in words:
        if any(toks[i : i + len(w)] == w for i in range(len(toks))):
            return "url:blocked_word"
    return None


def test_the_samples_real_urls_against_a_plain_reading():
    urls = [d["url"] for d in sample_docs("c4")]
    urls += [d["warc_headers"]["warc-target-uri"] for d in sample_docs("oscar")]
    domains = {"manpages.debian.org", "nothing.example"}
    words = [["fortune", "mod"], ["ch05"], ["de"]]
    rule = UrlBlockList(block_domains=sorted(domains), block_words=["fortune-mod", "ch05", "DE"])
    got = _judge(rule, urls)
    want = [_oracle(u, domains, words) for u in urls]
    assert got == want
    # each reason is given, and most documents pass
    counts = {r: got.count(r) for r in set(got)}
    assert counts["url:blocked_domain"] > 100 and counts["url:blocked_word"] > 100
    assert counts[None] > 500


# ---- list files (UT1 layout) --------------------------------------------------------------


def _ut1(root: Path) -> Path:
    """A UT1-style blacklists folder: two categories with `domains`, one with `urls` only."""
    (root / "adult").mkdir(parents=True)
    (root / "adult" / "domains").write_text("# UT1 adult\n\nAdult.example\n  porn.example \n")
    (root / "adult" / "urls").write_text("allowed.example/adult/page\n")  # not read
    (root / "gambling").mkdir()
    (root / "gambling" / "domains").write_text("casino.example\n.bet.example.\n")
    (root / "empty").mkdir()
    (root / "empty" / "urls").write_text("allowed.example/x\n")
    return root


def test_list_files_in_the_ut1_layout(tmp_path):
    root = _ut1(tmp_path / "blacklists")
    load_domains.cache_clear()
    assert load_domains((str(root),)) == {
        "adult.example",
        "porn.example",
        "casino.example",
        "bet.example",
    }
    assert load_domains((str(root / "gambling"),)) == {"casino.example", "bet.example"}
    assert load_domains((str(root / "adult" / "domains"),)) == {"adult.example", "porn.example"}
    rule = UrlBlockList(block_domains_files=[str(root / "gambling")], block_domains=["a.org"])
    assert _judge(
        rule,
        [
            "https://www.casino.example/",
            "https://x.bet.example/",
            "https://adult.example/",
            "https://a.org/",
            "https://allowed.example/x",
        ],
    ) == ["url:blocked_domain", "url:blocked_domain", None, "url:blocked_domain", None]


def test_a_missing_list_or_a_folder_without_domains_is_named(tmp_path):
    load_domains.cache_clear()
    rule = UrlBlockList(block_domains_files=[str(tmp_path / "nope")])
    with pytest.raises(FileNotFoundError, match="domain list not found: .*nope"):
        _judge(rule, ["https://a.org/"])
    (tmp_path / "cat").mkdir()
    (tmp_path / "cat" / "urls").write_text("a.org/x\n")
    rule = UrlBlockList(block_domains_files=[str(tmp_path)])
    with pytest.raises(FileNotFoundError, match="no `domains` file"):
        _judge(rule, ["https://a.org/"])
    # a rule without lists reads no file at all: documents without url never reach one
    assert _judge(UrlBlockList(), ["https://a.org/"]) == [None]


# ---- the base class: `needs` --------------------------------------------------------------


class _NeedsUrl(Filter):
    label = "seen"
    needs = ("url",)

    def setup(self) -> None:
        self.calls: list = []

    def judge(self, texts, langs, url):
        self.calls.append((list(texts), list(url)))
        return ["no_url" if u is None else None for u in url]


def test_a_rule_that_needs_urls_gets_those_of_the_documents_it_judges():
    rule = _NeedsUrl(languages=["en"])
    texts = ["a", "b", "c", "d"]
    reasons: list = ["quality:earlier", None, None, None]
    fields = {"url": ["u0", None, "u2", "u3"]}
    apply_filters([rule], texts, ["en", "en", "fr", "en"], reasons, fields=fields)
    assert rule.calls == [(["b", "d"], [None, "u3"])]  # kept and in scope, aligned
    assert reasons == ["quality:earlier", "quality:seen:no_url", None, None]
    with pytest.raises(ValueError, match="needs the document field 'url'"):
        apply_filters([rule], texts, ["en"] * 4, [None] * 4)


def test_rules_without_needs_are_called_with_texts_and_languages_only():
    class _Plain(Filter):
        label = "plain"

        def judge(self, texts, langs):  # the signature every rule before `needs` had
            return [None for _ in texts]

    reasons: list = [None]
    apply_filters([_Plain()], ["a"], ["en"], reasons, fields={"url": ["u"]})
    apply_filters([_Plain()], ["a"], ["en"], reasons)
    assert reasons == [None]


def test_the_table_refuses_a_rule_needing_an_unknown_field():
    class _Bad(Filter):
        needs = ("timestamp",)

    with pytest.raises(ValueError, match=r"needs \['timestamp'\]; a rule can ask for \['url'\]"):
        _check_row("bad", _Bad)


# ---- config -------------------------------------------------------------------------------


def _config(tmp_path: Path, quality: str) -> Path:
    path = tmp_path / "c.yaml"
    path.write_text(
        f"sources: [{{name: web, format: jsonl, paths: ['data/*.jsonl']}}]\nquality: {quality}\n"
    )
    return path


@pytest.mark.parametrize(
    ("quality", "line"),
    [
        (
            "{url: {block_domain: [a.org]}}",
            "quality.url.block_domain: unknown key (did you mean block_domains?)",
        ),
        (
            "{url: {block_domains: ['https://a.org/x']}}",
            "quality.url.block_domains: 'https://a.org/x' is not a domain (write example.com, "
            "not a URL)",
        ),
        (
            "{url: {block_domains: ['a..org']}}",
            "quality.url.block_domains: 'a..org' is not a domain (write example.com, not a URL)",
        ),
        (
            "{url: {block_words: ['--']}}",
            "quality.url.block_words: '--' has no letter or digit: it would match nothing",
        ),
        ("{url: {block_domains_files: ['']}}", "quality.url.block_domains_files: an empty path"),
        (
            "{url: {block_domains: a.org}}",
            "quality.url.block_domains: input should be a valid list (got 'a.org')",
        ),
    ],
)
def test_config_refuses_typos_and_bad_values_in_one_line(tmp_path, quality, line):
    path = _config(tmp_path, quality)
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert [x.removeprefix(f"{path}: ") for x in info.value.lines] == [line]


def test_list_paths_are_resolved_against_the_config_folder(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "proj").mkdir()
    path = _config(tmp_path / "proj", "{url: {block_domains_files: [lists/ut1, /abs/list, '~/x']}}")
    cfg = load_config(Path("proj") / path.name)
    assert cfg.quality.url.block_domains_files == [
        str((tmp_path / "proj" / "lists" / "ut1").resolve()),
        "/abs/list",
        str(Path("~/x").expanduser()),
    ]
    (rule,) = build_filters(["url"], cfg.quality)
    assert rule.block_domains_files == cfg.quality.url.block_domains_files


def test_default_section_blocks_nothing():
    (rule,) = build_filters(["url"], QualityConfig())
    assert (rule.block_domains, rule.block_domains_files, rule.block_words) == ([], [], [])
    assert _judge(rule, ["https://anything.example/porn"]) == [None]


# ---- a real prepare, and `tokenmill stats` on the raw files --------------------------------


@pytest.mark.distributed
def test_prepare_removes_blocked_urls_and_counts_and_reports_each_reason(tmp_path):
    from test_rule_plugin import _Rows

    from tokenmill.pipelines.prepare import prepare
    from tokenmill.report.raw import inputs_from_config, scan, settings_from_config

    records = sample_docs("c4")[:60]
    planted = [
        "https://www.casino.example/win",  # a UT1 gambling domain, a subdomain of it
        "https://notcasino.example/",  # not a subdomain: kept
        "https://blocked.test.example/a",  # block_domains
        "https://x.org/free-porn/",  # block_words: `free porn`
        "https://x.org/porn/free",  # not in that order: kept
        None,  # no url: kept
    ]
    for i, u in enumerate(planted):
        records[10 * i + 1] = {**records[10 * i + 1], "url": u}
    write_gz_lines(tmp_path / "c4" / "c4-train.00000-of-01024.json.gz", [dumps(r) for r in records])
    _ut1(tmp_path / "lists" / "blacklists")
    cfg_path = tmp_path / "c.yaml"
    cfg_path.write_text(
        "sources: [{name: c4, format: c4, paths: ['c4/*.json.gz']}]\n"
        "langid: {enabled: false}\n"
        "quality:\n"
        "  url: {block_domains: [test.example], block_domains_files: [lists/blacklists],\n"
        "        block_words: [free porn, politics]}\n"
        "  filter_sets: {c4: [url]}\n"
        "tokenizer: {train: {vocab_size: 400}}\n"
        "dedup: {exact: false, minhash: {enabled: false}}\n"
    )
    domains = {"test.example", "adult.example", "porn.example", "casino.example", "bet.example"}
    want: dict = {}
    for r in records:
        reason = _oracle(r.get("url"), domains, [["free", "porn"], ["politics"]])
        if reason:
            want["quality:" + reason] = want.get("quality:" + reason, 0) + 1
    # the two planted domains; the planted word and the sample's own fortunes on politics
    assert want["quality:url:blocked_domain"] == 2 and want["quality:url:blocked_word"] > 1

    cfg = load_config(cfg_path)
    stats = prepare(cfg, tmp_path / "out", workers=1, quiet=True)
    c4 = stats["sources"]["c4"]
    assert c4["removed"] == want
    assert c4["documents_in"] == len(records) == c4["documents_kept"] + sum(want.values())
    on_disk = json.loads((tmp_path / "out" / "stats.json").read_text())
    assert on_disk["sources"]["c4"]["languages"]["und"]["removed"] == want
    parser = _Rows()
    parser.feed((tmp_path / "out" / "report.html").read_text())
    for reason, n in want.items():
        rows = [r for r in parser.rows if r and r[0] == reason]
        assert rows and all(str(n) in r[1:] for r in rows), (reason, rows)
    # the same counts from `tokenmill stats` on the raw files (one file: no cluster)
    raw = scan(inputs_from_config(cfg), settings_from_config(cfg))
    assert raw["sources"]["c4"]["removed"] == want
