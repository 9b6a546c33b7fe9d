"""Samples over the shards: fixed length across document boundaries, blended by weight,
deterministic for a seed, resumable, with a held-out slice that training never sees."""

from __future__ import annotations

import json

import numpy as np
import pytest

from tokenmill.trainer.data import ManifestData

S = 32


def runs(sample: np.ndarray) -> list[np.ndarray]:
    """Split a sample of traceable tokens (d * 1000 + k) into runs of one document each."""
    cuts = np.flatnonzero(np.diff(sample) != 1) + 1
    return np.split(sample, cuts)


def doc_lengths(manifest) -> dict[int, int]:
    from tokenmill.shards.megatron import ShardReader

    m = json.loads(manifest.read_text())
    out = {}
    for s in m["shards"]:
        r = ShardReader(manifest.parent / s["prefix"])
        for i in range(len(r)):
            out[int(r[i][0]) // 1000] = int(r.sizes[i])
    return out


def test_samples_are_windows_across_document_boundaries(traceable):
    lengths = doc_lengths(traceable)
    data = ManifestData(traceable, S, seed=1, valid_fraction=0.0)
    for src in data.train.sources:
        starts = set()
        for k in range(len(src)):  # one block: one epoch's worth of samples
            sample = src[k]
            assert sample.shape == (S + 1,) and sample.dtype == np.int64
            parts = runs(sample)
            for i, part in enumerate(parts):
                d, first, last = part[0] // 1000, part[0] % 1000, part[-1] % 1000
                if i > 0:
                    assert first == 0, "a document is entered at its start"
                if i < len(parts) - 1:
                    assert last == lengths[d] - 1, "a document is left at its end"
            starts.add(int(sample[0]))
        assert len(starts) == len(src), "no sample drawn twice within an epoch"
        # the samples of an epoch cover all its tokens but the tail after the last one
        covered = np.unique(np.concatenate([src[k] for k in range(len(src))]))
        assert len(covered) >= src.tokens_per_epoch - S


def test_the_blend_follows_the_weights(traceable):
    data = ManifestData(traceable, S, seed=1)
    pairs = data.train.next_indices(400)
    sources = np.array([s for s, _ in pairs])
    a_share = np.cumsum(sources == 0) / np.arange(1, 401)
    assert abs(a_share[-1] - 0.75) < 0.01
    # every prefix stays within one sample of its target (Megatron's greedy blending)
    assert np.all(np.abs(np.cumsum(sources == 0) - 0.75 * np.arange(1, 401)) <= 1)
    # each source's samples are taken in order 0, 1, 2, ...
    for s in (0, 1):
        assert [i for src, i in pairs if src == s] == list(range(int((sources == s).sum())))


def test_deterministic_for_a_seed(traceable):
    def draw(seed):
        d = ManifestData(traceable, S, seed=seed)
        return d.train.get(d.train.next_indices(64))

    np.testing.assert_array_equal(draw(3), draw(3))
    assert not np.array_equal(draw(3), draw(4))


def test_state_resumes_the_same_samples(traceable):
    data = ManifestData(traceable, S, seed=5)
    data.train.next_indices(37)
    state = json.loads(json.dumps(data.state_dict()))  # survives a round trip to disk
    expected = data.train.get(data.train.next_indices(500))  # into later epochs too
    resumed = ManifestData(traceable, S, seed=5)
    resumed.load_state_dict(state)
    np.testing.assert_array_equal(resumed.train.get(resumed.train.next_indices(500)), expected)
    other = ManifestData(traceable, S + 1, seed=5)
    with pytest.raises(ValueError, match="other data"):
        other.load_state_dict(state)


def test_held_out_documents_never_train(traceable):
    data = ManifestData(traceable, S, seed=1, valid_fraction=0.1)
    valid = data.valid_batch(16)
    assert valid.shape == (16, S + 1)
    np.testing.assert_array_equal(valid, data.valid_batch(16))  # the same slice every time
    held = set(np.unique(valid // 1000).tolist())
    train = data.train.get(data.train.next_indices(1000))
    assert held and not held & set(np.unique(train // 1000).tolist())
    # the last 10% of each source's documents: 4 of a's 40, 3 of b's 25 (documents 36-39, 62-64)
    assert held <= {36, 37, 38, 39, 62, 63, 64}


def test_real_prepare_output(prepared):
    manifest = json.loads(prepared.read_text())
    data = ManifestData(prepared, 64, seed=1)
    assert data.source_names == sorted(manifest["mixture"])
    batch = data.train.get(data.train.next_indices(300))
    assert batch.shape == (300, 65)
    assert batch.min() >= 0 and batch.max() < manifest["tokenizer"]["vocab_size"]
    eod = manifest["tokenizer"]["eod_id"]
    assert (batch == eod).any(), "samples run across document ends"
    assert np.bincount([s for s, _ in data.train.next_indices(300)]).tolist() == [100] * 3
    assert data.valid_batch(8).shape == (8, 65)


def _copy_out(prepared, tmp_path):
    import shutil

    out = tmp_path / "out"
    shutil.copytree(prepared.parent, out, ignore=shutil.ignore_patterns("work"))
    return out


def test_a_damaged_shard_is_refused_by_name_before_training(prepared, tmp_path):
    from tokenmill.shards.verify import DamagedShards

    out = _copy_out(prepared, tmp_path)
    shard = json.loads(prepared.read_text())["shards"][-1]
    bin_ = out / (shard["prefix"] + ".bin")
    whole = bin_.stat().st_size
    with open(bin_, "r+b") as f:  # the last document loses its last token
        f.truncate(whole - 2)
    with pytest.raises(DamagedShards) as e:
        ManifestData(out / "manifest.json", S)
    assert f"1 of {len(json.loads(prepared.read_text())['shards'])} shards in {out}" in str(e.value)
    assert f"{shard['prefix']}: .bin is {whole - 2:,} bytes but the index's sizes add up to " in (
        str(e.value)
    )
    (out / (shard["prefix"] + ".bin")).unlink()
    with pytest.raises(DamagedShards, match=f"{shard['prefix']}: .bin is missing"):
        ManifestData(out, S)


@pytest.mark.parametrize(
    "text,message",
    [
        ("{}", "is not a tokenmill manifest: it has no 'format' or 'version' key"),
        ("[1, 2]", "is not a tokenmill manifest: it holds a list, not a JSON object"),
        ('{"format": "tokenmill-manifest", "version": 2}', "lacks keys 'tokenizer', 'shards'"),
        ("not json", "is not valid JSON"),
    ],
)
def test_a_manifest_that_is_not_tokenmills_is_refused_in_one_line(tmp_path, text, message):
    from tokenmill.shards.manifest import ManifestError

    (tmp_path / "manifest.json").write_text(text)
    with pytest.raises(ManifestError, match=message) as e:
        ManifestData(tmp_path, S)
    assert "\n" not in str(e.value) and str(tmp_path / "manifest.json") in str(e.value)


def test_a_mixture_trains_on_the_sources_it_names_only(traceable):
    # traceable token k of document d is d * 1000 + k: a's documents are 0-39, b's 40-64
    only_b = ManifestData(traceable, S, seed=1, valid_fraction=0.1, weights={"b": 1.0})
    assert only_b.source_names == ["b"]
    docs = set(np.unique(only_b.train.get(only_b.train.next_indices(300)) // 1000).tolist())
    assert docs and docs <= set(range(40, 62)), "b's training documents (62-64 held out)"
    # its own held-out slice is b's; the manifest's held-out mixture has a's too
    assert set(np.unique(only_b.valid_batch(16) // 1000).tolist()) <= {62, 63, 64}
    full = ManifestData(traceable, S, seed=1, valid_fraction=0.1)
    assert set(np.unique(full.valid_batch(16) // 1000).tolist()) & {36, 37, 38, 39}
    # other weights, other samples: a checkpoint of one is refused by the other
    assert only_b.fingerprint() != full.fingerprint()


def test_a_mixture_naming_a_source_the_manifest_lacks_is_refused(traceable):
    with pytest.raises(ValueError, match=r"no source 'c4' in its shards \(sources: a, b\)"):
        ManifestData(traceable, S, weights={"a": 1.0, "c4": 1.0})


def test_validation_data_with_another_tokenizer_is_refused(traceable, tmp_path):
    import shutil

    (traceable.parent / "tokenizer.json").write_text('{"model": "one"}')
    other = tmp_path / "other"
    shutil.copytree(traceable.parent, other)
    a, b = ManifestData(traceable, S), ManifestData(other / "manifest.json", S)
    a.require_same_tokenizer(b, "--valid-data")  # byte-identical tokenizer.json: accepted
    (other / "tokenizer.json").write_text('{"model": "two"}')
    with pytest.raises(ValueError, match="written with another tokenizer"):
        a.require_same_tokenizer(ManifestData(other / "manifest.json", S), "--valid-data")
