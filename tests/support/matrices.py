"""Matrix files for test suites: the tiny offline model on the CPU, the axes and token budget a test needs."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path


def _toml_list(values: Sequence[str | int]) -> str:
    return "[" + ", ".join(f'"{v}"' if isinstance(v, str) else str(v) for v in values) + "]"


def tiny_matrix(
    model_dir: Path | str,
    *,
    precisions: Sequence[str] = ("fp32",),
    batch_sizes: Sequence[int] = (1,),
    max_new_tokens: int | None = 4,
    models: Sequence[str] = ("tiny",),
    family: str = "causal",
) -> str:
    """A matrix file over tiny models built offline (every entry of ``models`` loads ``model_dir``) on the CPU.

    ``model_dir="{path}"`` gives a template for ``str.format(path=...)``; ``max_new_tokens=None`` leaves the
    model's own setting."""
    lines = [
        "[matrix]",
        f"models = {_toml_list(models)}",
        f"precisions = {_toml_list(precisions)}",
        'devices = ["cpu"]',
        f"batch_sizes = {_toml_list(batch_sizes)}",
    ]
    for name in models:
        lines += [
            "",
            f"[models.{name}]",
            f'source = "path:{model_dir}"',
            f'family = "{family}"',
        ]
        if max_new_tokens is not None:
            lines.append(f"max_new_tokens = {max_new_tokens}")
    return "\n".join(lines) + "\n"


def write_matrix(root: Path, body: str) -> Path:
    """Write ``body`` as ``root/benchmarks/matrix.toml`` (the plugin's default matrix file); returns its path."""
    path = root / "benchmarks" / "matrix.toml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(body, encoding="utf-8")
    return path


#: The tiny Gemma 3 at fp32 and bf16, batch sizes 1 and 2, 4 new tokens: a template (``.format(path=...)``).
TINY_MATRIX = tiny_matrix("{path}", precisions=("fp32", "bf16"), batch_sizes=(1, 2))
#: The same with fp32 alone.
TINY_FP32_MATRIX = tiny_matrix("{path}", batch_sizes=(1, 2))
