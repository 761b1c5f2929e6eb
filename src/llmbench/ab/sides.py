"""The two sides of an A/B run: a git worktree (or the working tree) and the interpreter its workers use.

A side given as a git ref gets a detached worktree of that commit; the head side given as ``HEAD``
(or ``.``) is the working tree as it is, uncommitted changes included. A side's workers import
``llmbench`` from its own ``src`` folder: its workers are started with ``sys_path`` set to the side's
interpreter's own path with the side's ``src`` first (:class:`llmbench.workers.Worker`). A side may add
variables to its workers' environment (``--base-env``/``--head-env``, :func:`side_environment`), e.g. the
faults of :mod:`llmbench.testing.faults` on one side only.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

__all__ = [
    "WORKING_TREE", "AbError", "Side", "SideName", "git", "parse_env", "prepare_sides", "remove_worktrees",
    "side_environment",
]  # fmt: skip

SideName = Literal["base", "head"]
#: Head refs that mean the working tree as it is.
WORKING_TREE = ("HEAD", ".")


class AbError(Exception):
    """Input ``llmbench ab`` cannot use (a bad ref, no git repository, a missing interpreter)."""


@dataclass(frozen=True)
class Side:
    """One side of the pair: where its code is and which interpreter its workers run on."""

    name: SideName
    #: The ref as given on the command line (``main``, ``HEAD``).
    ref: str
    commit: str
    #: The root of the side's checkout (a worktree, or the repository itself for the working tree).
    root: Path
    python: str
    #: The worker's ``sys.path``: the side's ``src`` first, then its interpreter's own path.
    sys_path: tuple[str, ...]
    #: True for the working tree with uncommitted changes.
    dirty: bool = False
    #: True where this run created the worktree (and removes it at the end).
    created: bool = False
    #: Variables set in this side's workers' environment (over this process's), in the order given.
    env: tuple[tuple[str, str], ...] = ()
    #: The CPUs this side's workers are pinned to (``--duet``: a half of this process's, drawn per load pair);
    #: None: not pinned.
    cpus: frozenset[int] | None = None

    @property
    def label(self) -> str:
        return f"{self.name} {self.ref} ({self.commit[:7]}{'+' if self.dirty else ''})"


def git(args: Sequence[str], cwd: Path) -> str:
    """``git ARGS`` in ``cwd``; its stdout stripped. Raises :class:`AbError` with git's message."""
    try:
        done = subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, check=False)
    except FileNotFoundError:
        raise AbError("git is not installed (llmbench ab checks out each side with git worktree)") from None
    if done.returncode != 0:
        raise AbError(f"git {' '.join(args)} (in {cwd}): {done.stderr.strip() or done.stdout.strip()}")
    return done.stdout.strip()


def _interpreter_path(python: str, src: Path) -> tuple[str, ...]:
    """``python``'s own ``sys.path`` with ``src`` first (asked of the interpreter itself)."""
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(src), os.environ.get("PYTHONPATH", "")]).rstrip(os.pathsep))
    code = "import json, sys; print(json.dumps(sys.path))"
    try:
        done = subprocess.run([python, "-c", code], capture_output=True, text=True, env=env, cwd=src, check=False)
    except OSError as error:
        raise AbError(f"cannot run the interpreter {python}: {error}") from None
    if done.returncode != 0:
        raise AbError(f"the interpreter {python} failed: {done.stderr.strip()}")
    paths = [p for p in json.loads(done.stdout) if p and p != str(src)]
    return (str(src), *paths)


def parse_env(items: Sequence[str], flag: str) -> tuple[tuple[str, str], ...]:
    """``KEY=VALUE`` items of ``flag`` (``--head-env``) as pairs; :class:`AbError` for one without a name."""
    pairs = []
    for item in items:
        key, equals, value = item.partition("=")
        if not equals or not key or any(c in key for c in " \0"):
            raise AbError(f"{flag} {item!r} must be KEY=VALUE (a variable name, '=', its value; VALUE may be empty)")
        pairs.append((key, value))
    return tuple(pairs)


@contextlib.contextmanager
def side_environment(env: Sequence[tuple[str, str]]) -> Iterator[Mapping[str, str]]:
    """This process's environment with ``env`` set, restored afterwards: a worker started inside inherits it.
    (Process-wide state: start one side's worker at a time, as :mod:`llmbench.ab.interleave` does.)"""
    saved = {key: os.environ.get(key) for key, _ in env}
    os.environ.update(dict(env))
    try:
        yield os.environ
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def _side(name: SideName, ref: str, repo: Path, scratch: Path, python: str | None) -> Side:
    interpreter = python or sys.executable
    if python is not None and shutil.which(python) is None and not Path(python).is_file():
        raise AbError(f"--{name}-python: {python!r} is not an interpreter (no such file)")
    if name == "head" and ref in WORKING_TREE:
        commit = git(["rev-parse", "HEAD"], repo)
        dirty = bool(git(["status", "--porcelain", "--untracked-files=no"], repo))
        return Side(name, ref, commit, repo, interpreter, _interpreter_path(interpreter, repo / "src"), dirty)
    commit = git(["rev-parse", "--verify", "--quiet", f"{ref}^{{commit}}"], repo)
    root = scratch / f"{name}-{commit[:12]}"
    git(["worktree", "add", "--detach", "--force", str(root), commit], repo)
    if not (root / "src" / "llmbench" / "workers").is_dir():
        raise AbError(
            f"{name} {ref} ({commit[:7]}) has no src/llmbench/workers: it predates model workers, which "
            "llmbench ab needs on both sides"
        )
    return Side(name, ref, commit, root, interpreter, _interpreter_path(interpreter, root / "src"), created=True)


def prepare_sides(
    base_ref: str, head_ref: str, repo: Path, base_python: str | None = None, head_python: str | None = None,
    base_env: Sequence[tuple[str, str]] = (), head_env: Sequence[tuple[str, str]] = (),
) -> tuple[Side, Side, Path]:  # fmt: skip
    """Check out both sides (a worktree each, or the working tree for ``HEAD``); returns them and the
    scratch folder holding the worktrees. Raises :class:`AbError`; worktrees made so far are removed."""
    scratch = Path(tempfile.mkdtemp(prefix="llmbench-ab-"))
    sides: list[Side] = []
    try:
        sides.append(_side("base", base_ref, repo, scratch, base_python))
        sides.append(_side("head", head_ref, repo, scratch, head_python))
    except BaseException:
        remove_worktrees(sides, repo, scratch)
        if any(scratch.iterdir()):
            for child in scratch.iterdir():
                with contextlib.suppress(AbError):
                    git(["worktree", "remove", "--force", str(child)], repo)
        shutil.rmtree(scratch, ignore_errors=True)
        raise
    base = dataclasses.replace(sides[0], env=tuple(base_env))
    return base, dataclasses.replace(sides[1], env=tuple(head_env)), scratch


def remove_worktrees(sides: Sequence[Side], repo: Path, scratch: Path) -> None:
    """Remove the worktrees this run created, and the scratch folder."""
    for side in sides:
        if side.created:
            with contextlib.suppress(AbError):
                git(["worktree", "remove", "--force", str(side.root)], repo)
    shutil.rmtree(scratch, ignore_errors=True)
    with contextlib.suppress(AbError):
        git(["worktree", "prune"], repo)
