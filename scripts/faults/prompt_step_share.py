"""What share of llama.cpp's TTFT is the prompt step that prefill_slow slows (docs/fault-injection.md).

``prefill_slow=1.0`` adds exactly one prompt step's own duration to every prompt step, and the fault's record
says how much it added: that is the step's duration, measured in the same rounds as their TTFT. Gemma 3 270M
at Q4_K_M in a model worker on one thread, the first item of the shipped summaries, 8 new tokens, 1 warm-up
and 5 timed rounds::

    .venv/bin/python scripts/faults/prompt_step_share.py [CACHE_DIR]
"""

from __future__ import annotations

import os
import statistics
import sys
import tempfile
from pathlib import Path

from llmbench.config.combination import Combination
from llmbench.config.models import BUILTIN_MODELS
from llmbench.config.options import default_cache_dir
from llmbench.data import load_dataset
from llmbench.measure.speed import round_speed
from llmbench.quality.runs import prompt_of
from llmbench.testing import faults
from llmbench.workers import WorkerLauncher


def main() -> int:
    spec = BUILTIN_MODELS["gemma3-270m"]
    cache = Path(sys.argv[1]) if len(sys.argv) > 1 else default_cache_dir()
    prompt = prompt_of(spec, load_dataset("summaries", None)[0])
    with tempfile.TemporaryDirectory(prefix="prompt-step-") as tmp:
        record = Path(tmp) / "record.jsonl"
        os.environ.update(faults.environment("prefill_slow=1.0", record=record))
        model = WorkerLauncher(threads=1, log_dir=Path(tmp)).launch(Combination(spec, "q4_k_m", "cpu", 1), cache)
        try:
            rounds = [model.timed_generate([prompt], 8) for _ in range(6)][1:]
        finally:
            model.close()
        [done] = faults.read_records(record)
    step = done["prefill_added_s"] / done["prefill_steps"]
    ttft = statistics.median(t for r in rounds if (t := round_speed(r.generation).ttft_s) is not None) - step
    print(f"{rounds[0].generation.prompt_tokens[0]} prompt tokens: TTFT without the fault about {ttft * 1e3:.0f} ms, "
          f"the prompt step {step * 1e3:.0f} ms ({step / ttft:.0%} of TTFT)")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
