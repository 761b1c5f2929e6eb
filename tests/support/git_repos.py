"""Git repositories for tests of commands that read history (llmbench ab, the workflows, history)."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

#: A committer identity, so commits work on a machine with no git configuration (CI).
IDENTITY = {"GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@t", "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@t"}


def git(repo: Path, *args: str) -> str:
    """Run ``git ARGS`` in ``repo``; its standard output. Raises ``CalledProcessError`` on failure."""
    env = dict(os.environ, **IDENTITY)
    return subprocess.run(["git", *args], cwd=repo, env=env, check=True, capture_output=True, text=True).stdout


def init_repo(repo: Path, message: str = "base") -> str:
    """Make ``repo`` (existing files included) a repository on ``main`` with one commit; its hash."""
    repo.mkdir(parents=True, exist_ok=True)
    git(repo, "init", "-q", "-b", "main")
    git(repo, "add", ".")
    git(repo, "commit", "-q", "-m", message)
    return git(repo, "rev-parse", "HEAD").strip()
