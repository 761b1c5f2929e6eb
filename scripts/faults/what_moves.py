"""What each fault of llmbench.testing.faults moves, read from saved runs (docs/fault-injection.md).

For each model and each fault, one ``llmbench ab`` of the same commit against itself, the head side's workers
given the fault through their environment (``--head-env``): base and head alternate in one go, so the change
in each figure is the fault's, not the machine's drift. The figures are read from the saved pair: per load pair,
head / base of each timed or memory figure (the per-load medians ``llmbench ab`` saves), and the quality of
each side's greedy pass; the paired verdict of ``llmbench ab`` on each. The faulted workers' own records
(what they added) are kept too. Writes OUT/what_moves.json (small: per-load values only) and prints the table::

    .venv/bin/python scripts/faults/what_moves.py --out scripts/faults/data
    .venv/bin/python scripts/faults/what_moves.py --summarize --out scripts/faults/data

The models: Gemma 3 270M at Q4_K_M in llama.cpp (the offline model) and the tiny Gemma 3 in transformers
(random weights: its ROUGE is about 0 either way), both on the CPU, batch size 1, 8 new tokens. The code
measured is the repository's HEAD, in a scratch clone (not the working tree).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from llmbench.ab.verdict import compare_pair
from llmbench.runs import load_run
from llmbench.testing.faults import ENV, RECORD_ENV, parse_faults, read_records
from llmbench.testing.tiny_models import build_tiny_gemma3

REPO = Path(__file__).resolve().parents[2]
#: Scenario -> the faults of the head side ("" for A/A: both sides unchanged).
SCENARIOS = {
    "aa": "",
    "decode 5%": "decode_slow=0.05",
    "prefill 5%": "prefill_slow=0.05",
    "both 5%": "slow=0.05",
    "+64 MiB": "hold_mib=64",
    "+5% RSS": "hold_share=0.05",
    "half damaged": "degrade=0.5",
}
#: The figures shown, with the saved metric each is read from.
FIGURES = {
    "latency_s": "latency_s",
    "ttft_s": "ttft_s",
    "prefill_tok_s": "prefill_tok_s",
    "decode_tok_s": "decode_tok_s_total",
    "peak_rss_bytes": "peak_rss_bytes",
    "rouge1": "rouge1",
}
TINY_MATRIX = """[matrix]
models = ["tiny"]
precisions = ["fp32"]
devices = ["cpu"]
batch_sizes = [1]
max_new_tokens = 8

[models.tiny]
source = "path:{path}"
family = "causal"
"""


def models(scratch: Path) -> dict[str, list[str]]:
    """Model label -> the pytest arguments that select it."""
    tiny = build_tiny_gemma3(scratch / "tiny-gemma3")
    matrix = scratch / "tiny-matrix.toml"
    matrix.write_text(TINY_MATRIX.format(path=tiny))
    return {
        "gemma3-270m q4_k_m (llama.cpp)": [
            "--llmbench-model=gemma3-270m", "--llmbench-precision=q4_k_m", "--llmbench-device=cpu",
            "--llmbench-batch-size=1", "--llmbench-max-new-tokens=8",
        ],
        "tiny gemma3 fp32 (transformers)": [f"--llmbench-matrix={matrix}"],
    }  # fmt: skip


def ab(repo: Path, commit: str, spec: str, pytest_args: Sequence[str], storage: Path, record: Path,
       loads: int, rounds: int, seed: int) -> tuple[Path, Path]:  # fmt: skip
    """One ``llmbench ab`` of ``commit`` against itself, ``spec``'s faults on the head side; the saved pair."""
    site = repo / "src" / "llmbench" / "testing" / "faults_site"
    head_env = [] if not spec else [
        "--head-env", f"{ENV}={spec}", "--head-env", f"PYTHONPATH={site}", "--head-env", f"{RECORD_ENV}={record}",
    ]  # fmt: skip
    command = [
        sys.executable, "-c", "import sys; from llmbench.cli import main; sys.exit(main())",
        "ab", commit, commit, f"--loads={loads}", f"--max-loads={loads}", f"--rounds={rounds}", f"--seed={seed}",
        *head_env, "--", "benchmarks", *pytest_args, f"--benchmark-storage={storage}", "--llmbench-quality-items=8",
        "--llmbench-threads=1", "-p", "no:cacheprovider",
    ]  # fmt: skip
    # The parent runs the clone's code too, not this working tree's.
    env = {**os.environ, "PYTHONPATH": str(repo / "src")}
    env.pop(ENV, None)
    done = subprocess.run(command, cwd=repo, env=env, capture_output=True, text=True, check=False)
    if done.returncode not in (0, 1):
        sys.exit(
            f"what_moves.py: llmbench ab failed ({done.returncode}):\n{done.stdout[-2000:]}\n{done.stderr[-3000:]}"
        )
    saved = sorted(storage.rglob("*_ab-*-head.json"))
    head = saved[-1]
    pair = head.name.split("_ab-", 1)[1].removesuffix("-head.json")
    return next(head.parent.glob(f"*_ab-{pair}-base.json")), head


def figures_of(base: Path, head: Path) -> dict[str, Any]:
    """Per figure: per-load base and head values (timed and memory) or each side's value (quality), and the
    paired verdict."""
    runs = [json.loads(path.read_text()) for path in (base, head)]
    verdict = compare_pair(load_run(base), load_run(head))
    decided = {d.metric: d.verdict for result in verdict.results for d in result.decisions}
    [b], [h] = (run["benchmarks"] for run in runs)
    out: dict[str, Any] = {}
    for figure, metric in FIGURES.items():
        per_load = zip(b["extra_info"]["llmbench_ab"]["loads"], h["extra_info"]["llmbench_ab"]["loads"], strict=True)
        loads = [(lb.get(metric), lh.get(metric)) for lb, lh in per_load]
        if all(x is not None for pair in loads for x in pair) and loads:
            out[figure] = {"base": [x for x, _ in loads], "head": [y for _, y in loads]}
        else:
            values = [bench["extra_info"].get("metrics", {}).get(metric, {}).get("value") for bench in (b, h)]
            out[figure] = {"base": [values[0]], "head": [values[1]]}
        out[figure]["verdict"] = decided.get(metric, "n/a")
    return out


def measure(out: Path, loads: int, rounds: int, scenarios: Sequence[str]) -> None:
    out.mkdir(parents=True, exist_ok=True)
    data_file = out / "what_moves.json"
    data: dict[str, Any] = json.loads(data_file.read_text()) if data_file.exists() else {}
    with tempfile.TemporaryDirectory(prefix="what-moves-") as tmp:
        scratch = Path(tmp)
        repo = scratch / "repo"
        subprocess.run(["git", "clone", "--quiet", "--local", str(REPO), str(repo)], check=True)
        commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=repo, capture_output=True, text=True,
                                check=True).stdout.strip()  # fmt: skip
        for seed, (label, pytest_args) in enumerate(models(scratch).items()):
            for name in scenarios:
                spec = SCENARIOS[name]
                record = scratch / f"record-{seed}-{len(data)}.jsonl"
                started = time.monotonic()
                base, head = ab(repo, commit, spec, pytest_args, scratch / "runs", record, loads, rounds, seed)
                entry = {
                    "model": label, "scenario": name, "faults": spec, "commit": commit, "loads": loads,
                    "rounds": rounds, "seconds": round(time.monotonic() - started, 1),
                    "figures": figures_of(base, head), "records": read_records(record),
                }  # fmt: skip
                data[f"{label} | {name}"] = entry
                data_file.write_text(json.dumps(data, indent=1) + "\n")
                print(f"{label} {name}: {entry['seconds']} s", file=sys.stderr, flush=True)


def change(figure: Mapping[str, Any]) -> str:
    """The median of head / base - 1 over the load pairs, with the range (one value for quality)."""
    pairs = [(b, h) for b, h in zip(figure["base"], figure["head"], strict=True) if b and h is not None]
    if not pairs:
        return "n/a"
    ratios = [h / b - 1 for b, h in pairs]
    text = f"{statistics.median(ratios):+.1%}"
    if len(ratios) > 1:
        text += f" ({min(ratios):+.1%}..{max(ratios):+.1%})"
    return text + ("" if figure["verdict"] in ("unchanged", "n/a") else f" **{figure['verdict']}**")


def summarize(out: Path) -> str:
    data = json.loads((out / "what_moves.json").read_text())
    lines = []
    for label in dict.fromkeys(entry["model"] for entry in data.values()):
        entries = [e for e in data.values() if e["model"] == label]
        first = entries[0]
        lines += [f"{label}, commit {first['commit'][:7]}, {first['loads']} load pairs of {first['rounds']} rounds "
                  "per side (median of head / base − 1 over load pairs (min..max); **verdict** of llmbench ab where "
                  "not unchanged):", "",
                  "| fault | " + " | ".join(FIGURES) + " | what the fault added |",
                  "|---|" + "---|" * (len(FIGURES) + 1)]  # fmt: skip
        for entry in entries:
            cells = [change(entry["figures"][figure]) for figure in FIGURES]
            lines.append(f"| {entry['scenario']} (`{entry['faults'] or 'none'}`) | " + " | ".join(cells)
                         + f" | {added(entry['records'])} |")  # fmt: skip
        lines.append("")
    return "\n".join(lines)


def added(records: Sequence[Mapping[str, Any]]) -> str:
    """What the faulted workers say they added, summed over them."""
    if not records:
        return "nothing"
    total = {key: sum(r[key] for r in records) for key in
             ("prefill_steps", "decode_steps", "prefill_added_s", "decode_added_s", "items", "damaged")}  # fmt: skip
    parts = []
    for kind in ("prefill", "decode"):
        if total[f"{kind}_added_s"]:
            parts.append(f"{total[f'{kind}_added_s'] * 1e3:.0f} ms over {total[f'{kind}_steps']} {kind} steps")
    held = {r["held_bytes"] for r in records if r["held_bytes"]}
    if held:
        parts.append("held " + "/".join(f"{h / 2**20:.0f}" for h in sorted(held)) + " MiB per worker")
    if total["damaged"]:
        parts.append(f"{total['damaged']} of {total['items']} outputs damaged")
    return "; ".join(parts) or "nothing"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--out", type=Path, default=REPO / "scripts" / "faults" / "data",
                        help="where what_moves.json goes. Default: %(default)s")  # fmt: skip
    parser.add_argument("--loads", type=int, default=3, help="load pairs per llmbench ab. Default: %(default)r")
    parser.add_argument("--rounds", type=int, default=5, help="timed rounds per side per load. Default: %(default)r")
    parser.add_argument("--scenarios", default=",".join(SCENARIOS),
                        help="comma list of scenarios. Default: %(default)s")  # fmt: skip
    parser.add_argument("--summarize", action="store_true", help="print the table from OUT, measure nothing")
    args = parser.parse_args(argv)
    scenarios = [s.strip() for s in args.scenarios.split(",") if s.strip()]
    unknown = [s for s in scenarios if s not in SCENARIOS]
    if unknown:
        parser.error(f"--scenarios: unknown {unknown}; known: {', '.join(SCENARIOS)}")
    for spec in SCENARIOS.values():
        parse_faults(spec)  # a typo here fails before anything runs
    if not args.summarize:
        measure(args.out, args.loads, args.rounds, scenarios)
    print(summarize(args.out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
