"""The benchmark matrix: read the matrix file, apply command-line and ini overrides, expand.

The matrix file (TOML, ``benchmarks/matrix.toml`` by default)::

    [matrix]
    models = ["gemma3-270m"]
    precisions = ["fp32", "bf16", "int8", "nf4", "q4_k_m"]
    devices = ["cpu", "cuda"]
    batch_sizes = [1, 4]
    # datasets = ["summaries", "prompts.txt"]  # optional: shipped sets by name, or files (relative to this
    #                                          # file); default: the shipped summaries set
    # max_new_tokens = 32          # optional: overrides every model's own setting
    # prompt_tokens = [128, 1024]  # optional: prompts of exactly these many tokens (an axis; test id -promptN)
    exclude = [                    # optional: combinations left out (GitHub Actions' matrix exclude)
        { precision = "int8", device = "cpu" },
    ]
    # reference = { precision = "fp32", device = "cpu" }  # optional: what every combination is compared with
    #                                                    # (drift, quality differences); default: its model's
    #                                                    # reference precision on its own device

    [models.my-model]              # optional: models of your own, next to the built-in registry
    source = "hub:my-org/my-model" # or "path:/models/my-model"
    family = "causal"              # or "seq2seq"
    prompt_template = "Article: {text}\\n\\nSummary:"
    # bnb_4bit_use_double_quant = true   # optional 4-bit settings (nf4, fp4): also bnb_4bit_compute_dtype,
    #                                    # bnb_4bit_quant_storage; named in the test id when not the default
    # reference = { model = "gemma3-4b-it", precision = "bf16" }  # optional: what this model is compared
    #                                    # with; a key left out is the combination's own; over [matrix]'s

A built-in model's reference is set with a table of that alone (``[models.t5-small] reference = {...}``).
See docs/matrix-and-models.md, "References".
"""

from __future__ import annotations

import itertools
import re
import tomllib
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from llmbench.config.combination import (
    DEFAULT_DATASET,
    KNOWN_DEVICES,
    REFERENCE_KEYS,
    Combination,
    ModelSpec,
    Reference,
)
from llmbench.config.models import BUILTIN_MODELS
from llmbench.config.options import SettingError
from llmbench.config.precisions import KNOWN_PRECISIONS, bnb_4bit_setting_error

#: The matrix used when no matrix file exists: the offline default model on CPU (bitsandbytes int8,
#: nf4 and fp4 need CUDA for their own kernels; on CPU they run a fallback path: docs/matrix-and-models.md).
DEFAULT_MATRIX: dict[str, list[Any]] = {
    "models": ["gemma3-270m"],
    "precisions": ["fp32", "bf16", "q4_k_m"],
    "devices": ["cpu"],
    "batch_sizes": [1, 4],
}
AXES = ("models", "precisions", "devices", "batch_sizes")
#: The keys of an ``exclude`` entry: one per axis, each matching one value.
EXCLUDE_KEYS = {"model": str, "precision": str, "device": str, "batch_size": int, "dataset": str,
                "prompt_tokens": int}  # fmt: skip
MODEL_FIELDS = {f.name for f in fields(ModelSpec)} - {"name"}
#: The fields a ``[models.<name>]`` table of a built-in model may have alone: they amend the built-in entry.
REFERENCE_FIELDS = {"reference", "reference_precision"}
#: A combination's reference, as the messages name it: (model, precision, device, data set).
ReferenceKey = tuple[str, str, str, str]
#: A data-set value of these characters alone is the name of a shipped set; any other is a file's path.
SHIPPED_NAME = re.compile(r"[A-Za-z0-9_-]+")


@dataclass(frozen=True)
class DatasetEntry:
    """One data set of the matrix: a shipped set by name (``path`` None) or a file.

    ``name`` is what test ids, saved runs and tables show: the shipped set's name, else the file's stem
    (or the ``name`` of a ``{ name = ..., path = ... }`` entry).
    """

    name: str
    path: Path | None = None

    def __str__(self) -> str:
        return self.name if self.path is None else f"{self.name} ({self.path})"


def dataset_entry(value: str, base: Path) -> DatasetEntry:
    """A data-set value as written: a shipped set's name (letters, digits, ``-``, ``_``), else a path,
    ``~`` expanded and relative to ``base``."""
    if SHIPPED_NAME.fullmatch(value):
        return DatasetEntry(value)
    path = Path(value).expanduser()
    path = path if path.is_absolute() else base / path
    return DatasetEntry(path.stem, path)


#: The datasets axis of a matrix that does not set it.
DEFAULT_DATASETS = (DatasetEntry(DEFAULT_DATASET),)


@dataclass(frozen=True)
class Axis:
    """The values of one axis and where they came from."""

    values: tuple[Any, ...]
    origin: str


@dataclass(frozen=True)
class Matrix:
    models: Axis
    precisions: Axis
    devices: Axis
    batch_sizes: Axis
    registry: Mapping[str, ModelSpec]
    max_new_tokens: int | None = None
    source: str = "the built-in default matrix"
    notes: tuple[str, ...] = field(default=())
    #: ``[matrix] exclude`` entries: a combination matching every key of one entry is left out.
    exclude: tuple[Mapping[str, str | int], ...] = ()
    #: :class:`DatasetEntry` values: the data sets each combination runs on.
    datasets: Axis = Axis(DEFAULT_DATASETS, "the built-in default matrix")
    #: ``[matrix] prompt_tokens``: prompts of exactly these many tokens; None: no such axis, the data set's
    #: own prompts (docs/matrix-and-models.md, "Prompt length").
    prompt_lengths: Axis | None = None
    #: ``[matrix] reference``: what every combination is compared with, where its model entry does not say
    #: (already folded into each :class:`ModelSpec`'s ``reference``; kept for messages).
    reference: Reference | None = None

    @property
    def names_datasets(self) -> bool:
        """Whether test ids name the data set: several data sets, or another than the default."""
        return self.datasets.values != DEFAULT_DATASETS

    def dataset(self, name: str) -> DatasetEntry:
        """The entry of the data set ``name`` (a combination's ``dataset_name``)."""
        entries: tuple[DatasetEntry, ...] = self.datasets.values
        return next(entry for entry in entries if entry.name == name)

    def _product(self) -> list[Combination]:
        named = self.names_datasets
        combinations = [
            Combination(self.registry[model], precision, device, batch_size, dataset.name if named else None)
            for model, precision, device, batch_size, dataset in itertools.product(
                self.models.values, self.precisions.values, self.devices.values, self.batch_sizes.values,
                self.datasets.values,
            )
        ]  # fmt: skip
        if self.prompt_lengths is None:
            return combinations
        # Within one load, the shorter prompts first (every batch size of a length before the next length):
        # the calls grow, so no call starts with the memory a longer one left behind.
        loads = {key: index for index, key in enumerate(dict.fromkeys(c.load_key for c in combinations))}
        lengths = sorted(self.prompt_lengths.values)
        on_axis = [replace(c, prompt_length=length) for length in lengths for c in combinations]
        return sorted(on_axis, key=lambda c: loads[c.load_key])

    def is_excluded(self, combination: Combination) -> bool:
        values = {"model": combination.model.name, "precision": combination.precision,
                  "device": combination.device, "batch_size": combination.batch_size,
                  "dataset": combination.dataset_name, "prompt_tokens": combination.prompt_length}  # fmt: skip
        return any(all(values[key] == value for key, value in entry.items()) for entry in self.exclude)

    def combinations(self) -> list[Combination]:
        """Every combination not excluded, in matrix order (model, precision, device, batch size, data set; on
        the prompt-length axis, prompt length before batch size)."""
        return [c for c in self._product() if not self.is_excluded(c)]

    def excluded(self) -> list[Combination]:
        """The combinations of the axes that ``exclude`` leaves out."""
        return [c for c in self._product() if self.is_excluded(c)]


def _error(path: Path, message: str) -> SettingError:
    return SettingError(f"matrix file {path}: {message}")


def _model_spec(path: Path, name: str, table: Any) -> ModelSpec:
    if not isinstance(table, dict):
        raise _error(path, f"[models.{name}] must be a table, got {type(table).__name__}")
    unknown = sorted(set(table) - MODEL_FIELDS)
    if unknown:
        raise _error(
            path,
            f"[models.{name}] has unknown field(s) {', '.join(unknown)}; allowed: {', '.join(sorted(MODEL_FIELDS))}",
        )
    for required in ("source", "family"):
        if required not in table:
            raise _error(path, f"[models.{name}] needs a {required!r} field")
    if table["family"] not in ("causal", "seq2seq"):
        raise _error(path, f"[models.{name}] family {table['family']!r} is not 'causal' or 'seq2seq'")
    source = str(table["source"])
    if source.split(":", 1)[0] not in ("hub", "path", "package") or ":" not in source:
        raise _error(path, f"[models.{name}] source {source!r} must start with 'hub:', 'path:' or 'package:'")
    template = table.get("prompt_template", "{text}")
    if "{text}" not in template:
        raise _error(path, f"[models.{name}] prompt_template {template!r} must contain '{{text}}'")
    context = table.get("context_tokens")
    if context is not None and (not isinstance(context, int) or isinstance(context, bool) or context < 1):
        raise _error(path, f"[models.{name}] context_tokens must be a positive integer (tokens), got {context!r}")
    for key, value in table.items():
        reason = bnb_4bit_setting_error(key, value)
        if reason is not None:
            raise _error(path, f"[models.{name}] {reason}")
    fields_ = {key: value for key, value in table.items() if key not in REFERENCE_FIELDS}
    return ModelSpec(name=name, **fields_, **_model_reference(path, name, table))


def _reference(path: Path, where: str, value: Any) -> Reference:
    """A ``reference = { model = ..., precision = ..., device = ... }`` table (any subset of the keys)."""
    example = '{ model = "gemma3-4b-it", precision = "bf16", device = "cpu" }'
    if not isinstance(value, dict):
        raise _error(path, f"{where} must be a table like {example} (any of its keys), got {value!r}")
    unknown = sorted(set(value) - set(REFERENCE_KEYS))
    if unknown:
        raise _error(path, f"{where} has unknown key(s) {', '.join(unknown)}; allowed: {', '.join(REFERENCE_KEYS)} "
                           "(a key left out is the combination's own)")  # fmt: skip
    if not value:
        raise _error(path, f"{where} is empty: name at least one of {', '.join(REFERENCE_KEYS)}, e.g. {example}")
    for key, text in value.items():
        if not isinstance(text, str) or not text.strip():
            raise _error(path, f"{where}: {key} must be a non-empty string, got {text!r}")
    known = {"precision": KNOWN_PRECISIONS, "device": KNOWN_DEVICES}
    for key, allowed in known.items():
        if key in value and value[key] not in allowed:
            raise _error(
                path, f"{where}: {key} {value[key]!r} is not a known {key}; known {key}s: {', '.join(allowed)}"
            )
    return Reference(value.get("model"), value.get("precision"), value.get("device"), origin=where)


def _model_reference(path: Path, name: str, table: Mapping[str, Any]) -> dict[str, Any]:
    """The reference fields of a ``[models.<name>]`` table: ``reference`` (a table) or ``reference_precision``
    (a precision), never both: they would be two references for the same combinations."""
    out: dict[str, Any] = {}
    if "reference" in table and "reference_precision" in table:
        precision, given = table["reference_precision"], table["reference"]
        merged = {"precision": precision, **given} if isinstance(given, dict) else {"precision": precision}
        written = ", ".join(f'{key} = "{merged[key]}"' for key in REFERENCE_KEYS if key in merged)
        raise _error(path, f"[models.{name}] has two references, reference = {given!r} and reference_precision = "
                           f"{precision!r}: keep one, e.g. reference = {{ {written} }} (reference_precision is "
                           "the precision of reference)")  # fmt: skip
    if "reference" in table:
        out["reference"] = _reference(path, f"[models.{name}] reference", table["reference"])
    if "reference_precision" in table:
        precision = table["reference_precision"]
        if precision not in KNOWN_PRECISIONS:
            raise _error(path, f"[models.{name}] reference_precision {precision!r} is not a known precision; "
                               f"known precisions: {', '.join(KNOWN_PRECISIONS)}")  # fmt: skip
        out["reference_precision"] = precision
    return out


def _amended_builtin(path: Path, name: str, table: Mapping[str, Any]) -> ModelSpec:
    """A built-in model with the reference of a ``[models.<name>]`` table that has nothing else."""
    return replace(BUILTIN_MODELS[name], **_model_reference(path, name, table))


def _axis_values(path: Path, table: Mapping[str, Any], axis: str) -> Axis:
    values = table.get(axis, DEFAULT_MATRIX[axis])
    origin = f"[matrix] {axis} in {path}" if axis in table else "the built-in default matrix"
    if not isinstance(values, list) or not values:
        raise _error(path, f"[matrix] {axis} must be a non-empty list, got {values!r}")
    return Axis(tuple(values), origin)


def _datasets(path: Path, table: Mapping[str, Any]) -> Axis:
    """``[matrix] datasets``: names of shipped sets, paths relative to the matrix file, or
    ``{ name = "...", path = "..." }`` tables."""
    if "datasets" not in table:
        return Axis(DEFAULT_DATASETS, "the built-in default matrix")
    values = table["datasets"]
    where = "[matrix] datasets"
    if not isinstance(values, list) or not values:
        raise _error(path, f"{where} must be a non-empty list of shipped set names or paths, got {values!r}")
    entries = []
    for number, value in enumerate(values, 1):
        table_form = isinstance(value, dict) and set(value) == {"name", "path"}
        if table_form and all(isinstance(v, str) for v in value.values()):
            if not SHIPPED_NAME.fullmatch(value["name"]):
                raise _error(path, f"{where} entry {number}: name {value['name']!r} may only have letters, digits, "
                                   "'-' and '_'")  # fmt: skip
            entries.append(DatasetEntry(value["name"], dataset_entry(value["path"], path.parent).path))
        elif isinstance(value, str) and value.strip():
            entries.append(dataset_entry(value.strip(), path.parent))
        else:
            raise _error(path, f"{where} entry {number} must be a shipped set's name, a path or a table "
                               f"{{ name = \"...\", path = \"...\" }}, got {value!r}")  # fmt: skip
    return Axis(tuple(entries), f"{where} in {path}")


def _prompt_lengths(path: Path, table: Mapping[str, Any]) -> Axis | None:
    """``[matrix] prompt_tokens``: a non-empty list of positive integers, or None where it is not set."""
    if "prompt_tokens" not in table:
        return None
    values = table["prompt_tokens"]
    where = "[matrix] prompt_tokens"
    if not isinstance(values, list) or not values:
        raise _error(path, f"{where} must be a non-empty list of prompt lengths in tokens, e.g. [128, 1024], "
                           f"got {values!r}")  # fmt: skip
    for number, value in enumerate(values, 1):
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise _error(path, f"{where} entry {number}: {value!r} is not a positive integer (tokens per prompt)")
    return Axis(tuple(values), f"{where} in {path}")


def _exclude(path: Path, entries: Any) -> tuple[dict[str, str | int], ...]:
    where = "[matrix] exclude"
    if not isinstance(entries, list):
        raise _error(path, f"{where} must be a list of tables like {{ precision = \"int8\", device = \"cpu\" }}, "
                           f"got {entries!r}")  # fmt: skip
    out = []
    for number, entry in enumerate(entries, 1):
        if not isinstance(entry, dict) or not entry:
            raise _error(path, f"{where} entry {number} must be a non-empty table of {', '.join(EXCLUDE_KEYS)}, "
                               f"got {entry!r}")  # fmt: skip
        unknown = sorted(set(entry) - set(EXCLUDE_KEYS))
        if unknown:
            raise _error(path, f"{where} entry {number} has unknown key(s) {', '.join(unknown)}; "
                               f"allowed: {', '.join(EXCLUDE_KEYS)}")  # fmt: skip
        for key, value in entry.items():
            kind = EXCLUDE_KEYS[key]
            if not isinstance(value, kind) or isinstance(value, bool):
                expected = "a string" if kind is str else "an integer"
                raise _error(path, f"{where} entry {number}: {key} must be {expected}, got {value!r}")
        out.append(dict(entry))
    return tuple(out)


def load_matrix(path: Path, required: bool) -> Matrix:
    """Read a matrix file; where it does not exist and is not ``required``, the default matrix."""
    registry: dict[str, ModelSpec] = dict(BUILTIN_MODELS)
    if not path.exists():
        if required:
            raise SettingError(f"matrix file {path} does not exist (from --llmbench-matrix)")
        default = [Axis(tuple(DEFAULT_MATRIX[axis]), "the built-in default matrix") for axis in AXES]
        return Matrix(default[0], default[1], default[2], default[3], registry=registry)
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as error:
        raise _error(path, f"not valid TOML: {error}") from None
    unknown = sorted(set(data) - {"matrix", "models"})
    if unknown:
        raise _error(path, f"unknown table(s) {', '.join(unknown)}; allowed: [matrix], [models.<name>]")
    table = data.get("matrix", {})
    allowed = (*AXES, "datasets", "prompt_tokens", "max_new_tokens", "exclude", "reference")
    unknown = sorted(set(table) - set(allowed))
    if unknown:
        raise _error(path, f"[matrix] has unknown key(s) {', '.join(unknown)}; allowed: {', '.join(allowed)}")
    precision_only: set[str] = set()
    for name, model_table in data.get("models", {}).items():
        amends = name in BUILTIN_MODELS and isinstance(model_table, dict) and model_table
        if amends and set(model_table) <= REFERENCE_FIELDS:
            registry[name] = _amended_builtin(path, name, model_table)
        else:
            registry[name] = _model_spec(path, name, model_table)
        if isinstance(model_table, dict) and "reference_precision" in model_table:
            precision_only.add(name)
    reference = _reference(path, "[matrix] reference", table["reference"]) if "reference" in table else None
    if reference is not None:
        # The matrix's reference under each model entry's own, key by key (docs/matrix-and-models.md): an
        # entry's reference_precision is its reference = { precision = ... } there.
        for name, spec in registry.items():
            own = spec.reference
            if own is None and name in precision_only:
                own = Reference(precision=spec.reference_precision, origin=f"[models.{name}] reference_precision")
            registry[name] = replace(spec, reference=reference if own is None else own.over(reference))
    max_new_tokens = table.get("max_new_tokens")
    if max_new_tokens is not None and (not isinstance(max_new_tokens, int) or max_new_tokens < 1):
        raise _error(path, f"[matrix] max_new_tokens must be a positive integer, got {max_new_tokens!r}")
    axes = [_axis_values(path, table, axis) for axis in AXES]
    matrix = Matrix(
        axes[0],
        axes[1],
        axes[2],
        axes[3],
        registry=registry,
        max_new_tokens=max_new_tokens,
        source=str(path),
        exclude=_exclude(path, table.get("exclude", [])),
        datasets=_datasets(path, table),
        prompt_lengths=_prompt_lengths(path, table),
        reference=reference,
    )
    validate(matrix)
    return matrix


def _check_known(axis: Axis, known: Sequence[str], what: str) -> None:
    for value in axis.values:
        if value not in known:
            raise SettingError(f"unknown {what} {value!r} (from {axis.origin}); known {what}s: {', '.join(known)}")


def validate(matrix: Matrix) -> None:
    """Every axis value must be known; raise a :class:`SettingError` naming the value and its origin."""
    _check_known(matrix.models, sorted(matrix.registry), "model")
    _check_known(matrix.precisions, KNOWN_PRECISIONS, "precision")
    _check_known(matrix.devices, KNOWN_DEVICES, "device")
    for value in matrix.batch_sizes.values:
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise SettingError(f"batch size {value!r} is not a positive integer (from {matrix.batch_sizes.origin})")
    for axis in AXES:
        values = getattr(matrix, axis).values
        duplicates = sorted({str(v) for v in values if values.count(v) > 1})
        if duplicates:
            raise SettingError(f"{axis} lists {', '.join(duplicates)} twice (from {getattr(matrix, axis).origin})")
    _check_datasets(matrix.datasets)
    _check_prompt_lengths(matrix.prompt_lengths)
    known = {"model": sorted(matrix.registry), "precision": KNOWN_PRECISIONS, "device": KNOWN_DEVICES,
             "dataset": [entry.name for entry in matrix.datasets.values]}  # fmt: skip
    for number, entry in enumerate(matrix.exclude, 1):
        for key, value in entry.items():
            if key in known and value not in known[key]:
                raise SettingError(f"unknown {key} {value!r} in [matrix] exclude entry {number} "
                                   f"(from {matrix.source}); known {key}s: {', '.join(known[key])}")  # fmt: skip
    excluded = matrix.excluded()
    if excluded and not matrix.combinations():
        shown = ", ".join(describe(c) for c in excluded[:4]) + (", ..." if len(excluded) > 4 else "")
        raise SettingError(f"every combination selected is excluded by [matrix] exclude in {matrix.source} "
                           f"({shown}): remove the entry there to run them")  # fmt: skip


def _check_prompt_lengths(axis: Axis | None) -> None:
    """Each prompt length a positive integer, once."""
    if axis is None:
        return
    for value in axis.values:
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise SettingError(f"prompt length {value!r} is not a positive integer (from {axis.origin})")
    duplicates = sorted({v for v in axis.values if axis.values.count(v) > 1})
    if duplicates:
        raise SettingError(f"prompt_tokens lists {', '.join(map(str, duplicates))} twice (from {axis.origin})")


def _check_datasets(axis: Axis) -> None:
    """Each data set's name once: it tells their combinations apart."""
    seen: dict[str, DatasetEntry] = {}
    for entry in axis.values:
        first = seen.setdefault(entry.name, entry)
        if first is not entry:
            what = "lists it twice" if first == entry else f"has two data sets named {entry.name!r} ({first}, {entry})"
            raise SettingError(f"datasets {what} (from {axis.origin}); each data set needs a name of its own: "
                               'rename a file, or give { name = "...", path = "..." } in the matrix file')  # fmt: skip


def describe(combination: Combination) -> str:
    """``gemma3-270m int8 cpu bs1``: a combination as the terminal tables name it (and its data set, where
    the test id names it)."""
    words = f"{' '.join(combination.load_key)} bs{combination.batch_size}"
    words = words if combination.dataset is None else f"{words} {combination.dataset}"
    return words if combination.prompt_length is None else f"{words} prompt{combination.prompt_length}"


def describe_reference(key: ReferenceKey, named_dataset: bool = False) -> str:
    """``gemma3-4b-it bf16 cpu``: a reference as messages and notes name it (its data set where ids name it)."""
    words = " ".join(key[:3])
    return f"{words} ({key[3]})" if named_dataset else words


def check_references(
    matrix: Matrix, available: Collection[ReferenceKey] = (), run: str | None = None, run_origin: str = ""
) -> None:
    """Every reference a matrix file declares (``reference`` tables, ``reference_precision``) of a combination
    to run is a combination of the matrix (not excluded) or has outputs in the reference run ``run``
    (``available``: its (model, precision, device, data set) keys); else a :class:`SettingError` naming the
    file, the key, the reference and what the matrix and the run have. A model's default reference (its
    reference precision on the same device) is not checked: it is n/a with the reason when it does not run.
    """
    combinations = matrix.combinations()
    in_matrix = {(*c.load_key, c.dataset_name) for c in combinations}
    missing: dict[ReferenceKey, tuple[Reference, Combination]] = {}
    for combination in combinations:
        reference = combination.model.reference
        key = (*combination.reference_key, combination.dataset_name)
        if reference is None or key[:3] == combination.load_key or key in in_matrix or key in available:
            continue
        missing.setdefault(key, (reference, combination))
    if not missing:
        return
    named = matrix.names_datasets
    key, (reference, combination) = next(iter(missing.items()))
    has = (f"models {', '.join(matrix.models.values)}; precisions {', '.join(matrix.precisions.values)}; "
           f"devices {', '.join(matrix.devices.values)}")  # fmt: skip
    has += f"; data sets {', '.join(entry.name for entry in matrix.datasets.values)}" if named else ""
    has += "; less [matrix] exclude" if matrix.exclude else ""
    if run is None:
        elsewhere = ("and no reference run is named (--llmbench-reference-run): add it to the matrix, or name a "
                     "saved run that has its outputs")  # fmt: skip
    else:
        keys = sorted({describe_reference(k, named) for k in available}) or ["no outputs at all"]
        shown = ", ".join(keys[:8]) + (f" and {len(keys) - 8} more" if len(keys) > 8 else "")
        elsewhere = (f"nor in the reference run {run} (from {run_origin}), which has outputs of: {shown}; add it "
                     "to the matrix, or name a saved run that has its outputs")  # fmt: skip
    others = f" ({len(missing) - 1} more reference(s) missing)" if len(missing) > 1 else ""
    raise _error(
        Path(matrix.source),
        f"{reference.origin} = {reference.describe()}: the reference {describe_reference(key, named)} of "
        f"{describe(combination)} is not in the matrix ({has}) {elsewhere}{others}",
    )
