"""Build the tiny models the tiny offline twins of examples/ load (docs/examples.md), in about a second each.

Usage: python scripts/examples/tiny_models.py [ROOT]

Writes ROOT/build/tiny-models/t5 and ROOT/build/tiny-models/gemma3 (ROOT: the current folder), where the
twins' matrix files look for them when pytest runs in ROOT. Folders that already hold a model are kept.
Random weights, real SentencePiece tokenizers (llmbench.testing.tiny_models); nothing is downloaded.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from fixtures.examples import build_tiny_models


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("root", type=Path, nargs="?", default=Path.cwd(), help="default: the current folder")
    args = parser.parse_args(argv)
    for name, folder in build_tiny_models(args.root).items():
        print(f"{name}: {folder}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
