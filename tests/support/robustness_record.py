"""Where the robustness tests leave their counts, for docs/testing.md.

Set ``LLMBENCH_TESTING_RECORD=FILE``: each test appends one JSON line (what was tried, how many cases,
the outcome) to FILE; ``python -m tests.support.robustness_record FILE`` prints them as the page's table rows.
Without the variable nothing is written.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

ENV = "LLMBENCH_TESTING_RECORD"


def record(fault: str, **counts: Any) -> None:
    """Append ``{"fault": fault, **counts}`` to the file named by ``$LLMBENCH_TESTING_RECORD`` (if set)."""
    target = os.environ.get(ENV)
    if not target:
        return
    with Path(target).open("a", encoding="utf-8") as out:
        out.write(json.dumps({"fault": fault, **counts}) + "\n")


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print(f"usage: python -m tests.support.robustness_record FILE (the file ${ENV} named)", file=sys.stderr)
        return 2
    for line in Path(argv[0]).read_text(encoding="utf-8").splitlines():
        row = json.loads(line)
        fault = row.pop("fault")
        print(f"| {fault} | " + ", ".join(f"{key}: {value}" for key, value in row.items()) + " |")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
