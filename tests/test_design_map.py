"""docs/design.md's map of the source tree stays true: what it names exists, and nothing is left out of it.

The map is the ``text`` block of the page: ``src/llmbench/`` entries (a package ``name/`` or a module
``name.py``, two spaces in) with their description lines, then the top folders (``benchmarks/``,
``examples/``, ``fixtures/``, ``tests/``, ``scripts/``) and files (``conftest.py``). Every ``*.py`` named
in an entry's lines must exist in that package or folder;
every package and module of ``src/llmbench`` must have an entry, and every module of a package must be
named in its entry; the layer list names every package and top-level module exactly once.
"""

from __future__ import annotations

import re
from pathlib import Path

from tests.support.paths import REPO

SRC = REPO / "src" / "llmbench"
PAGE = REPO / "docs" / "design.md"
#: A top folder of the repository the map describes (besides src/llmbench/).
TOP_FOLDERS = ("benchmarks", "examples", "fixtures", "tests", "scripts")
#: A file at the top of the repository the map describes.
TOP_FILES = ("conftest.py",)


def _map_block() -> list[str]:
    text = PAGE.read_text(encoding="utf-8")
    match = re.search(r"```text\n(.*?)```", text, re.S)
    assert match, "docs/design.md has no ```text map"
    return match.group(1).splitlines()


def _entries() -> dict[str, str]:
    """Entry name (``gate/``, ``runs.py``, ``benchmarks/``) -> the text of its lines."""
    entries: dict[str, str] = {}
    current = None
    for line in _map_block():
        head = re.match(r"^( {2})?([\w.]+/?)\s", line + " ")
        if head and not line.startswith("   ") and head.group(2) != "src/llmbench/":
            current = head.group(2)
            entries[current] = line
        elif current is not None:
            entries[current] += " " + line.strip()
    return entries


def _packages() -> list[str]:
    return sorted(p.name for p in SRC.iterdir() if (p / "__init__.py").is_file())


def _modules(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.glob("*.py") if p.name != "__init__.py")


def test_every_package_and_top_level_module_has_an_entry() -> None:
    entries = _entries()
    missing = [f"{name}/" for name in _packages() if f"{name}/" not in entries]
    missing += [name for name in _modules(SRC) if name not in entries]
    assert not missing, f"docs/design.md's map leaves out: {missing}"


def test_every_entry_names_something_that_exists() -> None:
    stale = []
    for name, text in _entries().items():
        if name.endswith("/"):
            folder = REPO / name if name.rstrip("/") in TOP_FOLDERS else SRC / name
            if not folder.is_dir():
                stale.append(name)
                continue
            for module in set(re.findall(r"[\w/]+\.py\b", text)):
                if not list(folder.rglob(module)) and not (REPO / module).exists():
                    stale.append(f"{name}{module}")
        elif not (REPO / name if name in TOP_FILES else SRC / name).is_file():
            stale.append(name)
    assert not stale, f"docs/design.md's map names what does not exist: {stale}"


def test_every_module_of_a_package_is_named_in_its_entry() -> None:
    entries = _entries()
    unnamed = [
        f"{package}/{module}"
        for package in _packages()
        for module in _modules(SRC / package)
        if not re.search(rf"(?<![\w/]){re.escape(module)}", entries.get(f"{package}/", ""))
    ]
    assert not unnamed, f"docs/design.md's map does not name: {unnamed}"


def test_the_top_folders_are_described() -> None:
    entries = _entries()
    assert [name for name in (*TOP_FOLDERS, *TOP_FILES) if name not in entries and f"{name}/" not in entries] == []
    named = set(re.findall(r"[\w]+\.py\b", entries["benchmarks/"]))
    assert named == set(_modules(REPO / "benchmarks")), "benchmarks/: every test file, and only those"
    named = set(re.findall(r"(?<![\w/])[\w]+\.py\b", entries["fixtures/"]))
    assert named == set(_modules(REPO / "fixtures")), "fixtures/: every fixture module, and only those"


def test_the_layer_list_names_every_package_and_top_level_module_once() -> None:
    text = PAGE.read_text(encoding="utf-8")
    section = text.split("## Layers", 1)[1].split("\n\n`|`", 1)[0]
    layers = re.findall(r"^\d+\. (.*)$", section, re.M)
    names = [name for layer in layers for name in re.findall(r"`(\w+)`", layer)]
    expected = sorted([*_packages(), *(m.removesuffix(".py") for m in _modules(SRC))])
    assert sorted(names) == expected
