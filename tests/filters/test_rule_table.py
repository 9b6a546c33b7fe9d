"""Adding a quality rule inside tokenmill: a module with one `Filter` subclass and one row in
the table of tokenmill/filters/registry.py, nothing else (docs/EXTENDING.md, "A quality rule").

The row is added as the recipe says, to the real source: a fresh interpreter loads
registry.py's own text with one line added at the end of `_BUILTIN` (and the import of the
rule's class) as `tokenmill.filters.registry`, before anything imports it. The rule's module is
the plugin test's toy rule (test_rule_plugin.RULE), on PYTHONPATH rather than in
tokenmill/filters/ only so that the test leaves the package untouched. That interpreter then
runs a real `prepare` on a Dask cluster whose worker is a thread of its own (so it sees the
same table): the rule's config section is its `Params` model, its reason is counted in
stats.json and shown in report.html. If this test fails at the edit, registry.py's table
moved: update the recipe in docs/EXTENDING.md with it.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from test_rule_plugin import RULE, check_toy_counted, write_toy_run
from tmfixtures import sample_docs

pytestmark = pytest.mark.distributed

# Runs in the fresh interpreter: argv = config, output folder.
SCRIPT = r"""
import importlib.util
import json
import re
import sys

spec = importlib.util.find_spec("tokenmill.filters.registry")
source = open(spec.origin).read()
# the recipe's edit: the rule's import, and one row at the end of the table
table = re.compile(r"(_BUILTIN: dict\[str, type\[Filter\]\] = \{\n(?:    .*\n)+)\}")
assert len(table.findall(source)) == 1, "registry.py's _BUILTIN table not found"
source = table.sub(
    lambda m: 'from toyrule import Mentions\n\n' + m[1] + '    "toy": Mentions,\n}', source
)
registry = importlib.util.module_from_spec(spec)
sys.modules[spec.name] = registry
exec(compile(source, spec.origin, "exec"), registry.__dict__)

import tokenmill.filters

tokenmill.filters.registry = registry

from distributed import LocalCluster

from tokenmill.config import ConfigError, load_config
from tokenmill.filters.registry import RULES, QualityConfig
from tokenmill.pipelines.prepare import prepare

config, out = sys.argv[1:]
cfg = load_config(config)
found = {
    "rules": list(RULES),
    "section_is_params": QualityConfig.model_fields["toy"].annotation is RULES["toy"].Params,
    "word": cfg.quality.toy.word,
}
typo = config + ".typo.yaml"
with open(typo, "w") as f:
    f.write("sources: [{name: web, format: jsonl, paths: ['data/*.jsonl']}]\n")
    f.write("quality: {toy: {wrod: kiwi}}\n")
try:
    load_config(typo)
except ConfigError as e:
    found["typo"] = e.lines
with LocalCluster(
    n_workers=1, threads_per_worker=1, processes=False, dashboard_address=None
) as cluster:
    prepare(cfg, out, scheduler=cluster.scheduler_address, quiet=True)
print(json.dumps(found))
"""


def test_a_rule_added_as_a_table_row_runs_in_prepare_and_is_counted_and_reported(tmp_path):
    plugin = tmp_path / "plugin"
    plugin.mkdir()
    (plugin / "toyrule.py").write_text(RULE)  # no dist-info: not a plugin, only a module
    docs = [d["text"] for d in sample_docs("c4")[:24]]
    docs = [t + "\nI like kiwi fruit." if i % 3 == 0 else t for i, t in enumerate(docs)]
    path, cfg = write_toy_run(tmp_path, docs)
    env = {k: v for k, v in os.environ.items() if not k.startswith("DASK_")}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(plugin), env.get("PYTHONPATH")]))
    out = tmp_path / "out"
    proc = subprocess.run(
        [sys.executable, "-c", SCRIPT, str(cfg), str(out)],
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
    )
    assert proc.returncode == 0, proc.stderr
    found = json.loads(proc.stdout.splitlines()[-1])
    assert found["rules"][-1] == "toy"  # the built-in rows, then the new last row
    assert found["section_is_params"] and found["word"] == "kiwi"
    assert found["typo"] == [f"{cfg}.typo.yaml: quality.toy.wrod: unknown key (did you mean word?)"]

    want = check_toy_counted(path, out)  # the oracle: the input read with json
    assert want == 8
    web = json.loads((out / "stats.json").read_text())["sources"]["web"]
    assert web["documents_in"] == web["documents_kept"] + sum(web["removed"].values())
    assert web["languages"]["und"]["removed"]["quality:toy:mentions_kiwi"] == want
