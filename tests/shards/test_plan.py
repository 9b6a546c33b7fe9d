"""Shard planning: documents in order, cut at document boundaries, none lost or repeated."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from tokenmill.shards.write import cut_into_shards as plan_shards


def _save(tmp_path, parts):
    paths = []
    for i, sizes in enumerate(parts):
        p = tmp_path / f"{i}.sizes.npy"
        np.save(p, np.array(sizes, dtype=np.int64))
        paths.append(str(p))
    return paths


@settings(max_examples=30, deadline=None)
@given(
    parts=st.lists(st.lists(st.integers(1, 50), max_size=30), min_size=1, max_size=5),
    per_shard=st.integers(1, 120),
)
def test_plan_covers_every_document_once_within_budget(tmp_path_factory, parts, per_shard):
    tmp = tmp_path_factory.mktemp("plan")
    plan = plan_shards(_save(tmp, parts), per_shard)
    seen = [(p, r) for shard in plan for p, a, b in shard for r in range(a, b)]
    assert seen == [(p, r) for p, sizes in enumerate(parts) for r in range(len(sizes))]
    for shard in plan:
        tokens = sum(sum(parts[p][a:b]) for p, a, b in shard)
        docs = sum(b - a for _, a, b in shard)
        assert docs >= 1
        assert tokens <= per_shard or docs == 1  # only a single oversize document may exceed


def test_plan_example(tmp_path):
    plan = plan_shards(_save(tmp_path, [[5, 5, 5], [5, 20, 1]]), 10)
    assert plan == [[(0, 0, 2)], [(0, 2, 3), (1, 0, 1)], [(1, 1, 2)], [(1, 2, 3)]]
