"""Tables written to files through pandas: CSV (empty cells where a value is missing) and Parquet."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pandas as pd  # type: ignore[import-untyped]  # no stubs installed (pandas-stubs)

from llmbench.report.frame import ReportError, Table
from llmbench.runs import write_text_atomically

__all__ = ["check_output", "write_csv", "write_decision_export", "write_export", "write_frame"]


def write_csv(path: Path, records: Sequence[Mapping[str, Any]] | pd.DataFrame, columns: Sequence[str] = ()) -> Path:
    """Records (or a frame) as CSV, ``columns`` first where given, written atomically; pandas reads the empty
    cells back as NaN."""
    frame = records if isinstance(records, pd.DataFrame) else pd.DataFrame.from_records(list(records))
    if columns:
        frame = frame.reindex(columns=list(columns))
    write_text_atomically(path, frame.to_csv(index=False))
    return path


def write_export(table: Table, output: Path) -> Path:
    """The table, one line per run x combination (:meth:`Table.wide`), as ``.csv`` or ``.parquet`` (pyarrow)."""
    check_output(output)
    return write_frame(table.wide(), output)


def write_decision_export(table: Table, output: Path) -> Path:
    """The decision table of the table's rows (:func:`llmbench.report.decision.decision_frame`: one line per run x
    combination, the Pareto fronts within each run), as ``.csv`` or ``.parquet`` (pyarrow)."""
    from llmbench.report.decision import decision_frame

    check_output(output)
    return write_frame(decision_frame(table.rows), output)


def check_output(output: Path) -> None:
    """A :class:`ReportError` unless ``output`` ends in ``.csv``, or in ``.parquet`` with pyarrow installed."""
    suffix = output.suffix.lower()
    if suffix not in (".csv", ".parquet"):
        raise ReportError(f"--output: {str(output)!r} must end in .csv or .parquet")
    if suffix == ".parquet":
        try:
            import pyarrow  # type: ignore[import-untyped]  # noqa: F401  (pandas writes Parquet through it)
        except ImportError:
            raise ReportError(
                f"--output: writing {output.name} needs pyarrow, which is not installed; "
                "install it (pip install pyarrow) or write a .csv file"
            ) from None


def write_frame(frame: pd.DataFrame, output: Path) -> Path:
    """A frame (:meth:`Table.wide`, :func:`llmbench.report.per_item.per_item_frames`) as ``.csv`` or
    ``.parquet`` (pyarrow), chosen by the suffix (:func:`check_output`)."""
    check_output(output)
    output.parent.mkdir(parents=True, exist_ok=True)
    if output.suffix.lower() == ".csv":
        return write_csv(output, frame)
    frame.to_parquet(output, engine="pyarrow", index=False)
    return output
