"""``llmbench selfcheck --device cuda`` on a FAKE torch.cuda and the FAKE NVML (no GPU here).

Each row agrees on fakes that agree, and fails, with its fix printed and exit status 1, where one
reading is put off by 5% (the energy: a counter that does not move; the fingerprint: a field the driver
refuses). What these show is the rows' logic; that a GPU reads as the fakes do is what the command
checks on the runner (docs/gpu.md).
"""

from __future__ import annotations

import argparse
from collections.abc import Callable

import pytest
import torch

from llmbench import cli
from llmbench.commands import selfcheck as command
from llmbench.selfcheck import run as selfcheck_run
from llmbench.selfcheck.checks import Check, render_checks
from llmbench.selfcheck.cuda_device import CudaDevice
from llmbench.selfcheck.gpu_checks import (
    DRIVER_GROWTH_TOLERANCE,
    KNOWN_ALLOCATION_BYTES,
    TIMER_TOLERANCE,
    cuda_checks,
    energy_check,
    fingerprint_check,
    memory_checks,
    timer_check,
)
from llmbench.testing.fake_nvml import FakeGpu, FakeNvml
from llmbench.units import MiB
from tests.support.fake_cuda import FakeCudaRuntime, fake_cuda_device

ROWS = (
    "CUDA timer vs synchronised wall clock",
    "CUDA allocated added vs the known allocation",
    "GPU process memory added vs CUDA reserved added",
    "GPU process memory vs CUDA reserved",
    "mean power over the energy window vs the power limit",
    "fingerprint fields of the GPU",
)


class Fakes:
    """A FAKE GPU (NVML) and a FAKE torch.cuda driving it, and the selfcheck's device over them."""

    def __init__(self, context_bytes: int = 500 * MiB) -> None:
        self.gpu = FakeGpu(name="NVIDIA H100 80GB HBM3")
        self.nvml = FakeNvml([self.gpu])
        self.runtime = FakeCudaRuntime(self.gpu, context_bytes=context_bytes)
        self.device: CudaDevice = fake_cuda_device(self.runtime, self.nvml)


@pytest.fixture(autouse=True)
def _no_cuda_visible_devices(monkeypatch: pytest.MonkeyPatch) -> None:
    """The driver maps cuda:0 through CUDA_VISIBLE_DEVICES; the fakes have one GPU, NVML device 0."""
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)


def _by_name(checks: list[Check]) -> dict[str, Check]:
    return {check.name: check for check in checks}


def test_every_row_agrees_on_agreeing_fakes() -> None:
    fakes = Fakes()
    checks = _by_name(cuda_checks(fakes.device, rounds=5))
    assert tuple(checks) == ROWS
    assert {name: check.status for name, check in checks.items()} == dict.fromkeys(ROWS, "ok"), checks
    timer = checks[ROWS[0]]
    assert timer.measured is not None
    assert timer.reference is not None
    # Both span the launch (20 us) and the 50 ms of work: the events from the start event, which the device
    # reaches at once, the wall clock from before the launch.
    assert timer.measured == pytest.approx(0.05 + 20e-6, rel=1e-9)
    assert timer.reference == pytest.approx(0.05 + 20e-6, rel=1e-9)
    assert checks[ROWS[1]].measured == KNOWN_ALLOCATION_BYTES
    assert checks[ROWS[2]].measured == checks[ROWS[2]].reference == KNOWN_ALLOCATION_BYTES
    level = checks[ROWS[3]]
    assert level.measured is not None
    assert level.reference is not None
    assert level.measured - level.reference == 500 * MiB  # the fake's CUDA context
    assert "500 MiB above the allocator's" in level.how
    energy = checks[ROWS[4]]
    assert energy.reference == 700.0  # the fake GPU's enforced power limit, W
    assert energy.measured == pytest.approx(300.0, rel=0.06)  # 300 W, the counter 100 ms stale at each end
    # The window is kept open for 20 of the counter's 100 ms periods: 40 synchronised calls of 50 ms.
    assert "600 J over 2 s of matmuls (40 calls, the window kept open for 2 s" in energy.how
    assert checks[ROWS[5]].measured == checks[ROWS[5]].reference == 14
    lines = render_checks(list(checks.values()))
    assert "what to fix:" not in lines
    limits = {row: lines[2 + index].split()[-2] for index, row in enumerate(ROWS)}  # after the header and rule
    assert limits == {
        ROWS[0]: "±2%", ROWS[1]: "±1%", ROWS[2]: "±2%", ROWS[3]: "0%", ROWS[4]: "-95%..+10%", ROWS[5]: "±0%",
    }  # fmt: skip


@pytest.mark.parametrize(
    ("row", "put_off", "run"),
    [
        (ROWS[0], lambda fakes: setattr(fakes.runtime, "event_scale", 0.95), lambda d: [timer_check(d, 5)]),
        (ROWS[1], lambda fakes: setattr(fakes.runtime, "allocated_scale", 0.95), memory_checks),
        (ROWS[2], lambda fakes: setattr(fakes.runtime, "driver_scale", 0.95), memory_checks),
        (ROWS[4], lambda fakes: setattr(fakes.runtime, "energy_moves", False), lambda d: [energy_check(d)]),
        (ROWS[5], lambda fakes: fakes.gpu.not_supported.add("nvmlDeviceGetPersistenceMode"),
         lambda d: [fingerprint_check(d)]),
    ],
    ids=["timer", "allocator", "driver-growth", "energy-stuck", "fingerprint-field"],
)  # fmt: skip
def test_a_reading_put_off_fails_its_row_with_the_fix(
    row: str, put_off: Callable[[Fakes], None], run: Callable[[CudaDevice], list[Check]]
) -> None:
    fakes = Fakes()
    put_off(fakes)
    checks = _by_name(run(fakes.device))
    check = checks[row]
    assert check.status == "DISAGREES", check
    assert check.fix
    lines = render_checks(list(checks.values()))
    assert lines[lines.index("what to fix:") + 1] == f"- {row}: {check.fix}"


def test_timer_row_is_off_by_the_put_off_share() -> None:
    fakes = Fakes()
    fakes.runtime.event_scale = 0.95
    check = timer_check(fakes.device, rounds=3)
    assert check.difference == pytest.approx(-0.05, rel=1e-9)
    assert check.difference is not None
    assert check.difference < -TIMER_TOLERANCE


def test_driver_reading_below_the_allocator_fails_both_memory_rows() -> None:
    """Without a context and 5% low, the driver reads below torch's allocator: a bug, never a tolerance."""
    fakes = Fakes(context_bytes=0)
    fakes.runtime.driver_scale = 0.95
    checks = _by_name(memory_checks(fakes.device))
    growth, level = checks[ROWS[2]], checks[ROWS[3]]
    assert growth.difference == pytest.approx(-0.05, abs=0.002)
    assert growth.difference is not None
    assert growth.difference < -DRIVER_GROWTH_TOLERANCE
    assert level.status == "DISAGREES", level
    assert "reads less than torch's allocator holds" in level.fix
    assert checks[ROWS[1]].status == "ok"


def test_driver_that_does_not_list_the_process_fails_with_the_pid_namespace_fix() -> None:
    """In a container without the host's PIDs the driver lists no process of ours: n/a is a failure here."""
    fakes = Fakes()
    fakes.runtime.pid = -1  # the driver lists another PID than this process's
    fakes.gpu.processes.clear()
    checks = _by_name(memory_checks(fakes.device))
    for row in ROWS[2:4]:
        assert checks[row].status == "DISAGREES", checks[row]
        assert "--pid=host" in checks[row].fix
        assert "did not list pid" in checks[row].how


def test_energy_row_without_nvml_energy_says_why() -> None:
    fakes = Fakes()
    fakes.gpu.not_supported.add("nvmlDeviceGetTotalEnergyConsumption")  # a GPU older than Volta
    check = energy_check(fakes.device)
    assert check.status == "DISAGREES"
    assert check.measured is None
    assert "Volta" in check.how
    assert "pytest-llmbench[cuda]" in check.fix


def test_fingerprint_without_the_driver_says_what_to_install() -> None:
    fakes = Fakes()
    reason = "nvidia-ml-py is not installed"
    fingerprint = {"gpus": ["NVIDIA H100"], "cuda_runtime": "12.4", "cuda_driver": "550.54.15",
                   "gpu_state": None, "gpu_state_unavailable": reason}  # fmt: skip
    device = fake_cuda_device(fakes.runtime, fakes.nvml, fingerprint)
    check = fingerprint_check(device)
    assert check.status == "DISAGREES"
    assert check.measured == 3
    assert reason in check.fix
    assert "pip install 'pytest-llmbench[cuda]'" in check.fix


def _run_cli(monkeypatch: pytest.MonkeyPatch, fakes: Fakes, *args: str) -> int:
    """``llmbench selfcheck --device cuda`` with the fakes in place of the GPU."""
    monkeypatch.setattr(command, "cuda_unavailable_reason", lambda device: None)
    monkeypatch.setattr(selfcheck_run, "open_cuda_device", lambda device: fakes.device)
    return cli.main(["selfcheck", "--device", "cuda", "--rounds", "3", *args])


def test_cli_exit_status_and_fix_on_fakes(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    assert _run_cli(monkeypatch, Fakes()) == 0
    out = capsys.readouterr().out
    assert all(row in out for row in ROWS)
    assert "what to fix:" not in out
    fakes = Fakes()
    fakes.runtime.driver_scale = 0.95
    assert _run_cli(monkeypatch, fakes) == 1
    out = capsys.readouterr().out
    fix = out.split("what to fix:\n", 1)[1]
    assert fix.startswith("- GPU process memory added vs CUDA reserved added: the driver's per-process figure")


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the refusal on a machine without CUDA")
def test_cli_refuses_cuda_without_a_cuda_device(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["selfcheck", "--device", "cuda"]) == 2
    err = capsys.readouterr().err
    assert (
        "llmbench selfcheck: --device 'cuda': no CUDA device visible to torch (torch.cuda.is_available() is False)"
        in err
    )


def test_cli_refuses_an_unknown_device(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_:
        cli.main(["selfcheck", "--device", "gpu"])
    assert exit_.value.code == 2
    assert "'gpu' is not a device; allowed: 'cpu', 'cuda', 'cuda:<index>'" in capsys.readouterr().err
    assert command.selfcheck_device("cuda:1") == "cuda:1"
    with pytest.raises(argparse.ArgumentTypeError):
        command.selfcheck_device("cuda:x")
