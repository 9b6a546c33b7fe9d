"""The source catalog: real layouts and counts, URL building, --files/--lang checks."""

from __future__ import annotations

import base64
import fnmatch
from pathlib import Path

import pytest

from tokenmill.pipelines.catalog import CatalogError, load_catalog, parse_files, select
from tokenmill.pipelines.download import default_dest, plan_source
from tokenmill.pipelines.readers import FORMATS

DATA = Path(__file__).resolve().parents[2] / "tokenmill" / "data"


@pytest.fixture(scope="module")
def cat():
    return load_catalog()


def test_c4_en_layout_and_published_counts(cat):
    v = cat.variant("c4", "en")
    train = v.file_names("train")
    assert len(train) == 1024
    assert train[0] == "en/c4-train.00000-of-01024.json.gz"
    assert train[-1] == "en/c4-train.01023-of-01024.json.gz"
    assert v.file_names("validation") == [
        f"en/c4-validation.{i:05d}-of-00008.json.gz" for i in range(8)
    ]
    assert v.documents == {"train": 364868892, "validation": 364608}
    assert v.format == "c4" and not v.gated
    assert v.root_url() == "https://huggingface.co/datasets/allenai/c4/resolve/main"


def test_c4_other_variants(cat):
    assert cat.variant("c4").name == "en"
    nb = cat.variant("c4", "en.noblocklist").file_names("train", files="1023")
    assert nb == ["en.noblocklist/c4-train.01023-of-01024.json.gz"]
    rn = cat.variant("c4", "realnewslike")
    assert len(rn.file_names("train")) == 512
    assert rn.file_names("validation") == ["realnewslike/c4-validation.00000-of-00001.json.gz"]


def test_mc4_names_come_from_the_per_language_table(cat):
    v = cat.variant("c4", "multilingual")
    assert v.file_names("train", "fr", "0:1") == [
        "multilingual/c4-fr.tfrecord-00000-of-02048.json.gz"
    ]
    assert v.file_names("validation", "iw") == [
        "multilingual/c4-iw-validation.tfrecord-00000-of-00001.json.gz"
    ]
    assert len(v.file_names("train", "en")) == 11264
    assert len(v.languages) == 108  # 101 languages + und + 6 romanized (*-Latn)
    with pytest.raises(CatalogError, match="needs --lang"):
        v.file_names("train")
    with pytest.raises(CatalogError, match="no language 'xx'"):
        v.file_names("train", "xx")
    with pytest.raises(CatalogError, match="invalid language"):
        v.file_names("train", "../../etc")


def test_pile_layout_hosts_and_base_url_override(cat):
    v = cat.variant("pile")
    assert v.name == "uncopyrighted" and v.format == "pile"
    assert v.file_names("train") == [f"train/{i:02d}.jsonl.zst" for i in range(30)]
    assert v.file_names("validation") == ["val.jsonl.zst"]
    assert v.file_names("test") == ["test.jsonl.zst"]
    assert (
        v.root_url() == "https://huggingface.co/datasets/monology/pile-uncopyrighted/resolve/main"
    )
    orig = cat.variant("pile", "original")
    assert orig.root_url() == "https://the-eye.eu/public/AI/pile"
    assert orig.splits["train"].checksums == "SHA256SUMS.txt"
    assert orig.documents["train"] == 210607728
    assert orig.root_url("https://mirror.example/pile/") == "https://mirror.example/pile"


def test_hf_endpoint_mirror(cat, monkeypatch):
    monkeypatch.setenv("HF_ENDPOINT", "https://hf-mirror.example")
    v = cat.variant("c4", "en")
    assert v.root_url() == "https://hf-mirror.example/datasets/allenai/c4/resolve/main"


@pytest.mark.parametrize(
    "variant, fmt, gated, listing",
    [
        ("2019", "oscar2019", False, "fr/fr_sha256.txt"),
        ("21.09", "oscar2109", True, "packaged/fr/fr_sha256.txt"),
        ("21.09-original", "oscar2109", True, "packaged_nondedup/fr/fr_sha256.txt"),
        ("22.01", "oscar2201", True, "compressed/fr_meta/checksum.sha256"),
        ("23.01", "oscar2301", True, "fr_meta/checksum.sha256"),
    ],
)
def test_oscar_releases(cat, variant, fmt, gated, listing):
    v = cat.variant("oscar", variant)
    assert v.format == fmt and bool(v.gated) is gated
    assert v.listing_path("train", "fr") == listing
    with pytest.raises(CatalogError, match="needs --lang"):
        v.check_lang(None)


def test_oscar_default_is_2301_on_the_hub(cat):
    v = cat.variant("oscar")
    assert v.name == "23.01"
    assert v.root_url() == "https://huggingface.co/datasets/oscar-corpus/OSCAR-2301/resolve/main"


def test_every_format_has_a_reader_and_every_variant_a_host(cat):
    for name, src in cat.sources.items():
        for vname in src.variants:
            v = cat.variant(name, vname)
            assert v.format in FORMATS, (name, vname)
            assert v.root_url().startswith("https://"), (name, vname)
            assert v.splits


def test_the_bundled_sample_uses_the_catalog_layouts(cat):
    c4 = cat.variant("c4", "en").file_names("train", files="0:2")
    assert all((DATA / "c4" / rel).is_file() for rel in c4)
    pile = cat.variant("pile").file_names("train", files="0:2")
    assert all((DATA / "pile" / rel).is_file() for rel in pile)
    oscar = cat.variant("oscar", "23.01")
    inc = oscar.splits["train"].include
    fr = DATA / "oscar" / Path(oscar.listing_path("train", "fr")).parent
    assert [p.name for p in fr.iterdir() if fnmatch.fnmatch(p.name, inc)]


def test_files_selection():
    assert select(10, "0:3") == [0, 1, 2]
    assert select(10, "8:") == [8, 9]
    assert select(10, "0:10:4,9") == [0, 4, 8, 9]
    assert select(10, "-1") == [9]
    assert select(10, None) == list(range(10))
    assert select(3, "0:100") == [0, 1, 2]
    assert parse_files(":") == [slice(None, None)]
    for bad in ("a:b", "1:2:3:4", "1-3"):
        with pytest.raises(CatalogError):
            parse_files(bad)
    with pytest.raises(CatalogError, match="out of range"):
        select(10, "12")


def test_unknown_names_list_what_exists(cat):
    with pytest.raises(CatalogError, match="c4, pile, oscar"):
        cat.variant("redpajama")
    with pytest.raises(CatalogError, match="en.noblocklist"):
        cat.variant("c4", "fr")
    with pytest.raises(CatalogError, match="validation"):
        cat.variant("c4", "en").file_names("dev")


def test_plan_builds_urls_under_the_base_url_without_network(tmp_path):
    plan = plan_source("c4", "en", files="0:2", dest=tmp_path, base_url="http://mirror/c4/")
    assert [f.url for f in plan.files] == [
        "http://mirror/c4/en/c4-train.00000-of-01024.json.gz",
        "http://mirror/c4/en/c4-train.00001-of-01024.json.gz",
    ]
    assert default_dest("c4", "en") == Path("data/c4")
    assert default_dest("pile", "original") == Path("data/pile/original")


@pytest.fixture
def tokens(monkeypatch, tmp_path):
    """HF_TOKEN set; no mirror token, no HF_ENDPOINT, no netrc unless a test adds them."""
    monkeypatch.setenv("HF_TOKEN", "hf_secret")
    for var in ("HUGGING_FACE_HUB_TOKEN", "TOKENMILL_MIRROR_TOKEN", "HF_ENDPOINT", "NETRC"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    return monkeypatch


def test_hf_token_goes_to_the_hub_and_nowhere_else(tmp_path, tokens):
    hub = plan_source("c4", "en", files="0:2", dest=tmp_path)
    assert [hub.authorization(f.url) for f in hub.files] == ["Bearer hf_secret"] * 2
    assert hub.authorization("https://hf.co/datasets/allenai/c4/resolve/main/x") == (
        "Bearer hf_secret"
    )
    for elsewhere in (
        "https://cdn-lfs.huggingface.co/repos/ab/cd/x?X-Amz-Signature=1",  # signed CDN URL
        "https://cas-bridge.xethub.hf.co/xet-bridge-us/x",
        "http://huggingface.co/datasets/allenai/c4/resolve/main/x",  # in clear text
        "https://huggingface.co:8443/x",  # another port
        "https://huggingface.co.evil.example/x",
        "https://mirror.example/c4/en/x",
    ):
        assert hub.authorization(elsewhere) is None, elsewhere

    mirror = plan_source(
        "c4", "en", files="0:2", dest=tmp_path, base_url="https://mirror.example/c4"
    )
    assert [mirror.authorization(f.url) for f in mirror.files] == [None, None]
    assert mirror.credentials == ()  # not even carried along to the workers

    other_host = plan_source("pile", "original", split="validation", dest=tmp_path)
    assert other_host.root == "https://the-eye.eu/public/AI/pile"
    assert other_host.credentials == ()


def test_mirror_token_goes_to_the_base_url_origin_only(tmp_path, tokens):
    tokens.setenv("TOKENMILL_MIRROR_TOKEN", "mirror_secret")
    plan = plan_source("c4", "en", files="0", dest=tmp_path, base_url="https://mirror.example/c4")
    (f,) = plan.files
    assert plan.authorization(f.url) == "Bearer mirror_secret"
    for elsewhere in (
        "https://mirror.example:8443/c4/x",
        "http://mirror.example/c4/x",
        "https://cdn.mirror.example/c4/x",
        "https://huggingface.co/datasets/allenai/c4/resolve/main/x",
    ):
        assert plan.authorization(elsewhere) is None, elsewhere
    assert all("hf_secret" not in c.value for c in plan.credentials)
    assert "mirror_secret" not in repr(plan), "secrets stay out of reprs and logs"

    # only a --base-url the user gave gets it, not a host the catalog names
    eye = plan_source("pile", "original", split="validation", dest=tmp_path)
    assert eye.credentials == ()
    # on the hub it is HF_TOKEN that goes, never the mirror's
    hub = plan_source("c4", "en", files="0", dest=tmp_path)
    assert hub.authorization(hub.files[0].url) == "Bearer hf_secret"


def test_hf_endpoint_is_the_hub_the_token_goes_to(tmp_path, tokens):
    tokens.setenv("HF_ENDPOINT", "http://127.0.0.1:8080")
    plan = plan_source("c4", "en", files="0", dest=tmp_path)
    (f,) = plan.files
    assert f.url.startswith("http://127.0.0.1:8080/datasets/allenai/c4/resolve/main/")
    assert plan.authorization(f.url) == "Bearer hf_secret"
    assert plan.authorization("http://127.0.0.1:8081/x") is None


def test_netrc_entry_for_the_mirror_host(tmp_path, tokens):
    netrc = tmp_path / "netrc"
    netrc.write_text("machine mirror.example login alice password s3cret\n")
    netrc.chmod(0o600)
    tokens.setenv("NETRC", str(netrc))
    plan = plan_source("c4", "en", files="0", dest=tmp_path, base_url="https://mirror.example/c4")
    basic = "Basic " + base64.b64encode(b"alice:s3cret").decode()
    assert plan.authorization(plan.files[0].url) == basic
    assert plan.authorization("https://other.example/c4/x") is None
    assert plan.authorization("https://mirror.example:444/c4/x") is None
    hub = plan_source("c4", "en", files="0", dest=tmp_path)
    assert hub.authorization(hub.files[0].url) == "Bearer hf_secret"
