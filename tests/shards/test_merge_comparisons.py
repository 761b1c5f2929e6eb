"""A sharded run whose reference ran in another shard: n/a in the shard (with the reason), compared by
``llmbench merge`` over the merged run, from the outputs the shards saved in their runs. The tiny Gemma 3 at
fp32 and bf16 in two shards (each (model, precision) loads in one shard: fp32 in one, bf16 in the other)."""

from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path
from typing import Any

import pytest

from llmbench.commands.merge import add_merge_arguments, merge_main
from llmbench.metrics import metrics_of
from tests.support.matrices import TINY_MATRIX, write_matrix
from tests.support.paths import REPO

pytestmark = pytest.mark.usefixtures("one_torch_thread")

ARGS = (
    "benchmarks", "--llmbench-isolation=none", "--llmbench-rounds=1", "--llmbench-warmup-rounds=0",
    "--llmbench-quality-items=3", "--llmbench-peak-bandwidth=10GB/s", "--llmbench-batch-size=1",
    "-p", "no:cacheprovider",
)  # fmt: skip


def benchmarks(path: Path) -> dict[str, dict[str, Any]]:
    return {bench["name"]: bench for bench in json.loads(path.read_text())["benchmarks"]}


def test_merge_compares_a_reference_that_ran_in_another_shard(
    suite: pytest.Pytester, tiny_gemma3_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("GITHUB_STEP_SUMMARY", raising=False)
    write_matrix(suite.path, TINY_MATRIX.format(path=tiny_gemma3_dir))
    shutil.copy(REPO / "benchmarks" / "test_generate.py", suite.path / "benchmarks")
    shards = [suite.path / "results" / f"shard-{k}-of-2.json" for k in (1, 2)]
    shards[0].parent.mkdir()
    for k, path in enumerate(shards, 1):
        suite.runpytest(*ARGS, f"--llmbench-shard={k}/2", f"--benchmark-json={path}").assert_outcomes(passed=1)

    saved = {name: bench for path in shards for name, bench in benchmarks(path).items()}
    assert set(saved) == {"test_generate[tiny-fp32-cpu-bs1]", "test_generate[tiny-bf16-cpu-bs1]"}
    bf16 = metrics_of(saved["test_generate[tiny-bf16-cpu-bs1]"])
    assert bf16["drift_identical_share"].value is None
    assert bf16["drift_identical_share"].note == (
        "n/a: the reference tiny fp32 cpu did not run in this session (it may run in another shard: llmbench "
        "merge compares them)"
    )

    merged_path = suite.path / "results" / "merged.json"
    parser = argparse.ArgumentParser()
    add_merge_arguments(parser)
    assert merge_main(parser.parse_args([*map(str, shards), "-o", str(merged_path)])) == 0

    merged = benchmarks(merged_path)
    compared = metrics_of(merged["test_generate[tiny-bf16-cpu-bs1]"])
    assert compared["drift_identical_share"].value is not None
    assert " of 3 output texts identical to fp32's" in compared["drift_identical_share"].note
    for name in ("drift_first_diff_token", "rouge1_diff", "rougeLsum_share", "quality_target_met"):
        assert name in compared, name
    assert compared["rouge1_diff"].value is not None
    info = merged["test_generate[tiny-bf16-cpu-bs1]"]["extra_info"]
    assert info["quality_reference"]["source"] == "the merged run"
    # The reference itself has nothing to compare; the shards' own files are left as they were.
    assert "drift_identical_share" not in metrics_of(merged["test_generate[tiny-fp32-cpu-bs1]"])
    again = {name: bench for path in shards for name, bench in benchmarks(path).items()}
    assert metrics_of(again["test_generate[tiny-bf16-cpu-bs1]"])["drift_identical_share"].value is None
