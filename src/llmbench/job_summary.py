"""Publishing markdown for a CI job: to a file the user names and to GitHub's job summary.

The one place that writes ``$GITHUB_STEP_SUMMARY`` (GitHub Actions shows that file's markdown on the
job's page): the gate's verdict (``--llmbench-verdict``, ``llmbench compare``, ``llmbench ab``) and the
``llmbench history`` table are published through :func:`publish`. See docs/gate.md and docs/history.md.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

from llmbench.runs import write_text_atomically

__all__ = ["SUMMARY_VARIABLE", "publish"]

#: The environment variable GitHub Actions sets to the job summary's file.
SUMMARY_VARIABLE = "GITHUB_STEP_SUMMARY"


def publish(
    text: str,
    path: Path | None = None,
    environ: Mapping[str, str] = os.environ,
    *,
    what: str = "the markdown",
    option: str | None = None,
) -> list[str]:
    """Write ``text`` to ``path`` (atomically) where given, and append it to ``$GITHUB_STEP_SUMMARY`` where set.

    ``what`` names the text and ``option`` the option that gave ``path``, in the problems returned as
    readable lines ("could not write the verdict to v.md (--llmbench-verdict): ..."); never raises
    ``OSError``. The summary is appended to even where the file could not be written.
    """
    problems = []
    if path is not None:
        try:
            write_text_atomically(path, text)
        except OSError as error:
            given = f" ({option})" if option else ""
            problems.append(f"could not write {what} to {path}{given}: {error}")
    summary = environ.get(SUMMARY_VARIABLE)
    if summary:
        try:
            with open(summary, "a", encoding="utf-8") as out:
                out.write(text)
        except OSError as error:
            problems.append(f"could not append {what} to ${SUMMARY_VARIABLE} ({summary}): {error}")
    return problems
