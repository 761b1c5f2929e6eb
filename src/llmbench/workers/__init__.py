"""Model workers: each (model, precision, device) loaded and measured in its own spawned process.

The parent drives a worker with requests (:mod:`llmbench.workers.protocol`) and gets plain data
back; :class:`WorkerLauncher` starts, prepares and loads one. See docs/isolation.md for what runs where
and how failures are reported.
"""

from __future__ import annotations

from llmbench.workers.client import Worker, WorkerFailed, WorkerModel
from llmbench.workers.launch import WorkerLauncher

__all__ = ["Worker", "WorkerFailed", "WorkerLauncher", "WorkerModel"]
