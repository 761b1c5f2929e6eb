"""scripts/install.sh decides where torch comes from and how llama.cpp is built; nothing is installed.

Each test runs the script in its dry run (``LLMBENCH_INSTALL_DRY_RUN=1``: it prints the commands it
would run, one ``run:`` line each) with a fake virtual environment (its ``bin/python`` a stand-in that
says whether torch imports), a fake creating interpreter (it runs only the index probe), a fake
``nvidia-smi`` on ``PATH`` that works or fails, and the CPU wheel index pointed
(``LLMBENCH_TORCH_CPU_INDEX``) at a fake index served on 127.0.0.1 or at a closed port.
"""

from __future__ import annotations

import http.server
import os
import shlex
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.support.paths import REPO

SCRIPT = REPO / "scripts" / "install.sh"


@dataclass(frozen=True)
class FakeIndex:
    """A pip "simple" index on 127.0.0.1 serving only a torch page; counts the requests it answered."""

    url: str
    requests: list[str]


@pytest.fixture(scope="module")
def fake_cpu_index(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FakeIndex]:
    root = tmp_path_factory.mktemp("fake-cpu-index")
    (root / "torch").mkdir()
    (root / "torch" / "index.html").write_text('<a href="torch-2.13.0+cpu.whl">torch</a>\n')
    requests: list[str] = []

    class Handler(http.server.SimpleHTTPRequestHandler):
        def __init__(self, *args: object, **kwargs: object) -> None:
            super().__init__(*args, directory=str(root), **kwargs)  # type: ignore[arg-type]

        def log_message(self, format: str, *args: object) -> None:
            requests.append(self.path)

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield FakeIndex(f"http://127.0.0.1:{server.server_address[1]}", requests)
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


@pytest.fixture(scope="module")
def closed_port_url() -> str:
    """An index URL on 127.0.0.1 where nothing listens: the connection is refused at once."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}/whl/cpu"


@dataclass(frozen=True)
class Outcome:
    commands: list[list[str]]
    log: str

    def torch_install(self) -> list[str] | None:
        """The pip command that installs torch, or None when the script installs none."""
        found = [c for c in self.commands if "install" in c and "-e" not in c and "--upgrade" not in c]
        assert len(found) <= 1, found
        return found[0] if found else None

    def torch_index(self) -> str | None:
        command = self.torch_install()
        assert command is not None, f"no torch install among {self.commands}"
        return command[command.index("--index-url") + 1] if "--index-url" in command else None

    def cmake_args(self) -> str:
        (project,) = [c for c in self.commands if "-e" in c]
        (setting,) = [word for word in project if word.startswith("CMAKE_ARGS=")]
        return setting.removeprefix("CMAKE_ARGS=")


def dry_run(
    tmp_path: Path,
    cpu_index: str,
    *,
    cuda: bool = False,
    torch_installed: bool = False,
    env: Mapping[str, str] | None = None,
) -> Outcome:
    """Runs install.sh's dry run with the fakes: a ``nvidia-smi`` that works (``cuda``) or fails, a
    virtual environment whose python imports torch (``torch_installed``) or nothing."""
    fake_bin = tmp_path / "fake-bin"
    fake_bin.mkdir()
    (fake_bin / "nvidia-smi").write_text(f"#!/bin/sh\nexit {0 if cuda else 9}\n")
    venv_bin = tmp_path / "venv" / "bin"
    venv_bin.mkdir(parents=True)
    # The fake venv's python answers only `-c 'import ...'`: torch imports when asked for, nothing else.
    (venv_bin / "python").write_text(
        f'#!/bin/sh\n[ "$2" = "import torch" ] && exit {0 if torch_installed else 1}\nexit 1\n'
    )
    # The fake creating interpreter runs only the index probe (a script on stdin) and --version, so
    # that a broken dry run fails here instead of creating a virtual environment and installing.
    (fake_bin / "python3").write_text(
        f'#!/bin/sh\ncase "$1" in -|--version) exec {shlex.quote(sys.executable)} "$@";; esac\n'
        'echo "fake python3: refuses $*" >&2\nexit 3\n'
    )
    for script in (fake_bin / "nvidia-smi", fake_bin / "python3", venv_bin / "python"):
        script.chmod(0o755)
    # A clean environment: no proxy (it would carry the 127.0.0.1 probe away), no user's TORCH_* or CMAKE_ARGS.
    environment = {
        "PATH": f"{fake_bin}{os.pathsep}{os.environ['PATH']}",
        "HOME": str(tmp_path),
        "VENV": str(tmp_path / "venv"),
        "PYTHON": str(fake_bin / "python3"),
        "LLMBENCH_TORCH_CPU_INDEX": cpu_index,
        "LLMBENCH_INSTALL_DRY_RUN": "1",
        **(env or {}),
    }
    done = subprocess.run(["bash", str(SCRIPT)], cwd=REPO, env=environment, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert all(line.startswith("run: ") for line in lines), done.stdout
    return Outcome([shlex.split(line.removeprefix("run: ")) for line in lines], done.stderr)


def test_without_cuda_torch_comes_from_the_cpu_index(tmp_path: Path, fake_cpu_index: FakeIndex) -> None:
    outcome = dry_run(tmp_path, fake_cpu_index.url)
    assert outcome.torch_index() == fake_cpu_index.url
    assert outcome.torch_install()[-1] == "torch==2.13.0"  # type: ignore[index]
    assert "/torch/" in fake_cpu_index.requests
    assert "(CPU build)" in outcome.log


def test_an_unreachable_cpu_index_falls_back_to_the_default_index_and_says_so(
    tmp_path: Path, closed_port_url: str
) -> None:
    outcome = dry_run(tmp_path, closed_port_url)
    assert outcome.torch_index() is None
    assert outcome.torch_install()[-1] == "torch==2.13.0"  # type: ignore[index]
    assert f"CPU wheel index is unreachable ({closed_port_url}/torch/" in outcome.log
    assert "TORCH_INDEX_URL" in outcome.log  # what to set instead


def test_with_cuda_torch_comes_from_the_default_index(tmp_path: Path, fake_cpu_index: FakeIndex) -> None:
    asked = len(fake_cpu_index.requests)
    outcome = dry_run(tmp_path, fake_cpu_index.url, cuda=True)
    assert outcome.torch_index() is None
    assert len(fake_cpu_index.requests) == asked, "the CPU index was probed on a CUDA machine"
    assert "nvidia-smi works" in outcome.log


@pytest.mark.parametrize(
    ("given", "spec", "index"),
    [
        ({"TORCH_INDEX_URL": "https://mirror.example/cu128"}, "torch==2.13.0", "https://mirror.example/cu128"),
        ({"TORCH_SPEC": "torch==2.5.1"}, "torch==2.5.1", None),
        (
            {"TORCH_SPEC": "torch==2.5.1", "TORCH_INDEX_URL": "https://m.example/cpu"},
            "torch==2.5.1",
            "https://m.example/cpu",
        ),
    ],
    ids=["index", "spec", "both"],
)
def test_a_given_torch_spec_or_index_is_used_as_given(
    tmp_path: Path, fake_cpu_index: FakeIndex, given: dict[str, str], spec: str, index: str | None
) -> None:
    outcome = dry_run(tmp_path, fake_cpu_index.url, env=given)
    assert outcome.torch_install()[-1] == spec  # type: ignore[index]
    assert outcome.torch_index() == index


def test_an_installed_torch_is_kept_and_no_index_is_probed(tmp_path: Path, fake_cpu_index: FakeIndex) -> None:
    asked = len(fake_cpu_index.requests)
    outcome = dry_run(tmp_path, fake_cpu_index.url, torch_installed=True)
    assert outcome.torch_install() is None
    assert len(fake_cpu_index.requests) == asked


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        (None, "-DGGML_NATIVE=OFF"),
        ("", "-DGGML_NATIVE=OFF"),
        ("-DGGML_CUDA=on", "-DGGML_NATIVE=OFF -DGGML_CUDA=on"),
        # The user names GGML_NATIVE: theirs wins (docs/options.md says so).
        ("-DGGML_NATIVE=ON -DGGML_CUDA=on", "-DGGML_NATIVE=ON -DGGML_CUDA=on"),
    ],
    ids=["unset", "empty", "adds", "user-native-wins"],
)
def test_cmake_args_keep_ggml_native_off(
    tmp_path: Path, closed_port_url: str, given: str | None, expected: str
) -> None:
    cmake_args = None if given is None else {"CMAKE_ARGS": given}
    outcome = dry_run(tmp_path, closed_port_url, torch_installed=True, env=cmake_args)
    assert outcome.cmake_args() == expected


def test_a_dry_run_creates_nothing(tmp_path: Path, closed_port_url: str) -> None:
    venv = tmp_path / "new-venv"
    outcome = dry_run(tmp_path, closed_port_url, env={"VENV": str(venv)})
    assert outcome.commands[0] == [str(tmp_path / "fake-bin" / "python3"), "-m", "venv", str(venv)]
    assert outcome.torch_index() is None
    assert not venv.exists()
