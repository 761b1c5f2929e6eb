"""How far each CPU row of ``llmbench selfcheck`` reads from its reference on unchanged code (issue 21).

Usage (from the repository root)::

    .venv/bin/python scripts/selfcheck/row_spread.py --repeats 8 --rounds 3 --threads 1 \\
        --out scripts/selfcheck/data/row_spread.json

The tolerances of the llama.cpp rows and the memory rows (src/llmbench/selfcheck/agreement.py,
machine.py) come from what this prints: in one process, the default model on llama.cpp (q4_k_m, as the
selfcheck runs it), ``repeats`` times: the llama.cpp rows (``rounds`` rounds of 32 tokens each), the
peak-RSS probe around a generate call against 1 ms sampling, and around a known allocation of 256 MiB.
Each row's difference (reading / reference - 1) goes to ``--out`` (small JSON, committed) with the
date, the command and the load average; the summary gives each row's range over the repeats.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import sys
from pathlib import Path

from llmbench.backends import get_backend
from llmbench.backends.llama_cpp_backend import LlamaCppModel
from llmbench.config.combination import Combination
from llmbench.config.models import BUILTIN_MODELS
from llmbench.config.options import default_cache_dir
from llmbench.data import SHIPPED_DATA, load_items
from llmbench.measure.probes import probes_for
from llmbench.selfcheck.agreement import llama_cpp_checks
from llmbench.selfcheck.machine import cpu_memory_checks


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--tokens", type=int, default=32)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", default="scripts/selfcheck/data/row_spread.json")
    args = parser.parse_args()
    load_before = os.getloadavg()
    started_at = datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")
    spec = BUILTIN_MODELS["gemma3-270m"]
    prompts = [spec.format_prompt(load_items(SHIPPED_DATA)[0].text)]
    model = get_backend("llama_cpp", args.threads).load(
        Combination(spec, "q4_k_m", "cpu", 1), default_cache_dir(), probes_for("cpu").timer
    )
    assert isinstance(model, LlamaCppModel)
    differences: dict[str, list[float | None]] = {}
    for repeat in range(args.repeats):
        checks = llama_cpp_checks(model, prompts, args.tokens, args.rounds)
        checks += cpu_memory_checks(lambda: model.generate(prompts, args.tokens))
        for check in checks:
            differences.setdefault(check.name, []).append(check.difference)
        print(f"repeat {repeat + 1}: load {os.getloadavg()[0]:.2f}", flush=True)
    model.close()
    record = {
        "command": " ".join(["scripts/selfcheck/row_spread.py", *sys.argv[1:]]),
        "started_utc": started_at,
        "load_average_before": load_before,
        "load_average_after": os.getloadavg(),
        "model": "gemma3-270m q4_k_m cpu, llama.cpp",
        "differences": differences,
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(record, indent=1) + "\n")
    print(f"load average {load_before[0]:.2f} before, {os.getloadavg()[0]:.2f} after")
    for name, values in differences.items():
        found = [v for v in values if v is not None]
        spread = f"{min(found):+.3%} .. {max(found):+.3%}" if found else "n/a"
        print(f"{name:45s} {spread}  ({len(found)} of {len(values)})")


if __name__ == "__main__":
    main()
