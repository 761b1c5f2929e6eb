"""The folder :data:`llmbench.testing.faults.SITE_DIR`: put on an interpreter's PYTHONPATH, its ``sitecustomize``
installs the faults that ``LLMBENCH_FAULTS`` asks for when the interpreter starts (docs/fault-injection.md)."""
