"""The README and docs/ stay true: short front door, no broken links, every option and command documented."""

from __future__ import annotations

import contextlib
import io
import os
import re
import tomllib
from pathlib import Path

import pytest

from llmbench.cli import SUBCOMMANDS
from tests.support.paths import REPO

README = REPO / "README.md"
DOCS = REPO / "docs"
PAGES = [README, *sorted(DOCS.glob("*.md"))]
#: [text](target) outside code; images too. Targets with a scheme (https:, mailto:) are not checked.
LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)\)")
OPTION = re.compile(r"--llmbench-[a-z][a-z-]*[a-z]")
#: Where the code cites the manual.
CODE = [REPO / "src", REPO / "scripts", REPO / "benchmarks", REPO / ".github"]
CITATION = re.compile(r"docs/([\w.-]+\.md)")


def prose(text: str) -> str:
    """The text without fenced code blocks (whose brackets are code, not links)."""
    return re.sub(r"^```.*?^```", "", text, flags=re.MULTILINE | re.DOTALL)


def slug(heading: str) -> str:
    """GitHub's anchor of a heading: lower case, punctuation dropped, spaces to hyphens."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def anchors(page: Path) -> set[str]:
    return {slug(m.group(1)) for m in re.finditer(r"^#+ (.*)$", prose(page.read_text()), re.MULTILINE)}


def test_the_readme_is_a_front_door() -> None:
    lines = README.read_text().splitlines()
    assert len(lines) < 200, f"README.md has {len(lines)} lines; move the detail to docs/"


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(REPO)))
def test_every_relative_link_points_to_a_file_and_heading(page: Path) -> None:
    broken = []
    for target in LINK.findall(prose(page.read_text())):
        if re.match(r"^[a-z]+:", target):
            continue
        path_part, _, anchor = target.partition("#")
        linked = (page.parent / path_part).resolve() if path_part else page
        if not linked.exists():
            broken.append(f"{target}: no such file")
        elif anchor and linked.suffix == ".md" and anchor not in anchors(linked):
            broken.append(f"{target}: no heading #{anchor} in {linked.name}")
    assert not broken, f"{page.name}: " + "; ".join(broken)


def test_the_readme_example_is_the_suites_benchmark() -> None:
    example = re.search(r"^```python\n(.*?)^```", README.read_text(), re.MULTILINE | re.DOTALL)
    assert example is not None
    suite = (REPO / "benchmarks" / "test_generate.py").read_text()
    assert example.group(1).strip() in suite, "README's example differs from benchmarks/test_generate.py"


def test_the_readme_matrix_is_the_suites_matrix() -> None:
    shown = re.search(r"^```toml\n(.*?)^```", README.read_text(), re.MULTILINE | re.DOTALL)
    assert shown is not None
    suite = tomllib.loads((REPO / "benchmarks" / "matrix.toml").read_text())
    assert tomllib.loads(shown.group(1))["matrix"] == suite["matrix"], "README differs from benchmarks/matrix.toml"


@pytest.fixture(scope="module")
def pytest_help() -> str:
    """``pytest --help`` in the repository, run in this process: a fresh interpreter would spend its
    seconds importing torch and the backends again (tests/conftest.py), which this one has done."""
    out = io.StringIO()
    cwd = Path.cwd()
    os.chdir(REPO)
    try:
        with contextlib.redirect_stdout(out):
            code = pytest.main(["--help", "-p", "no:cacheprovider"])
    finally:
        os.chdir(cwd)
    assert code == pytest.ExitCode.OK, out.getvalue()
    return out.getvalue()


def test_every_option_of_pytest_help_is_documented(pytest_help: str) -> None:
    options = set(OPTION.findall(pytest_help))
    assert len(options) > 20, sorted(options)
    options_page = (DOCS / "options.md").read_text()
    missing = sorted(option for option in options if f"`{option}`" not in options_page)
    assert not missing, f"not in docs/options.md: {missing}"
    # Each option's ini key too.
    keys = sorted(o[2:].replace("-", "_") for o in options if f"`{o[2:].replace('-', '_')}`" not in options_page)
    assert not keys, f"ini keys not in docs/options.md: {keys}"


def test_every_documented_option_exists(pytest_help: str) -> None:
    options = set(OPTION.findall(pytest_help))
    stale = {
        f"{page.name}: {option}"
        for page in PAGES
        for option in OPTION.findall(page.read_text())
        if option not in options
    }
    assert not stale, sorted(stale)


@pytest.mark.parametrize("command", sorted(SUBCOMMANDS))
def test_every_llmbench_subcommand_is_documented(command: str) -> None:
    pages = [page.name for page in PAGES if f"llmbench {command}" in page.read_text()]
    assert pages, f"`llmbench {command}` is not documented in README.md or docs/"


def test_every_page_the_code_cites_exists() -> None:
    cited = {
        f"{path.relative_to(REPO)}: docs/{name}"
        for folder in CODE
        for path in folder.rglob("*")
        if path.is_file() and path.suffix in {".py", ".sh", ".toml", ".yml"}
        for name in CITATION.findall(path.read_text(errors="replace"))
        if not (DOCS / name).exists()
    }
    assert not cited, sorted(cited)
