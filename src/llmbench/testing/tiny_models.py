"""Tiny, randomly initialised Hugging Face model directories, built offline in about a second.

For tests of a benchmark suite (and the harness's own tests): a model that loads and generates like
a real one, with nothing to download, so a suite's plumbing runs end to end in seconds. Give the
directory to the matrix as ``source = "path:DIR"`` (docs/matrix-and-models.md). Each builder writes a
directory that loads exactly like a real checkpoint::

    tokenizer = AutoTokenizer.from_pretrained(directory)
    model = AutoModelForCausalLM.from_pretrained(directory)      # build_tiny_gemma3
    model = AutoModelForSeq2SeqLM.from_pretrained(directory)     # build_tiny_t5, build_tiny_t5gemma

The weights are random but deterministic (fixed seed, global RNG state untouched), the tokenizers are
SentencePiece models trained in a few milliseconds on local text, and every directory carries a
``generation_config.json`` with pad/eos (and, for encoder-decoders, decoder-start) ids, so greedy
``generate`` runs without warnings. Nothing is downloaded: no hub access is needed or attempted.

``tests/testing/test_tiny_models.py`` checks it.
"""

# transformers leaves many public functions unannotated (GenerationConfig, get_output_embeddings, ...).
# mypy: disable-error-code="no-untyped-call"

from __future__ import annotations

import contextlib
import functools
import io
import json
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any, Final, Literal, TypeVar

import sentencepiece
import torch
from transformers import (
    Gemma3ForCausalLM,
    Gemma3TextConfig,
    GemmaTokenizer,
    GenerationConfig,
    PreTrainedConfig,
    PreTrainedModel,
    T5Config,
    T5ForConditionalGeneration,
    T5GemmaConfig,
    T5GemmaForConditionalGeneration,
    T5GemmaModuleConfig,
    T5Tokenizer,
)
from transformers.tokenization_utils_tokenizers import TokenizersBackend
from transformers.utils import logging as hf_logging

from llmbench.data import SHIPPED_DATA

__all__ = [
    "GEMMA_BOS_ID",
    "GEMMA_CHAT_TEMPLATE",
    "GEMMA_END_OF_TURN_ID",
    "GEMMA_EOS_ID",
    "GEMMA_PAD_ID",
    "MAX_POSITIONS",
    "SEED",
    "T5_EOS_ID",
    "T5_PAD_ID",
    "TokenizerKind",
    "build_tiny_gemma3",
    "build_tiny_t5",
    "build_tiny_t5gemma",
    "train_tokenizer",
]

_M = TypeVar("_M", bound=PreTrainedModel)
_T = TypeVar("_T", bound=TokenizersBackend)

TokenizerKind = Literal["gemma", "t5"]
"""``"gemma"``: byte-fallback BPE like Gemma's; ``"t5"``: Unigram like T5's."""

SEED: Final[int] = 0
"""Seed for the random weights of every tiny model."""

SUMMARIES_JSONL: Final[Path] = SHIPPED_DATA
"""Shipped data set whose texts (when present) join the tokenizer training corpus."""

MAX_POSITIONS: Final[int] = 2048
"""Longest sequence the tiny models are built for; also the tokenizers' ``model_max_length``."""

SPM_FILENAMES: Final[dict[str, str]] = {"gemma": "tokenizer.model", "t5": "spiece.model"}
"""File name of the SentencePiece model in a directory, as each family's checkpoints name it."""

# Gemma's special-token layout: <pad>=0, <eos>=1, <bos>=2, <unk>=3, then <mask> and the turn markers.
GEMMA_PAD_ID: Final[int] = 0
GEMMA_EOS_ID: Final[int] = 1
GEMMA_BOS_ID: Final[int] = 2
GEMMA_UNK_ID: Final[int] = 3
GEMMA_USER_SYMBOLS: Final[tuple[str, ...]] = ("<mask>", "<start_of_turn>", "<end_of_turn>")
GEMMA_END_OF_TURN_ID: Final[int] = 4 + GEMMA_USER_SYMBOLS.index("<end_of_turn>")
GEMMA_VOCAB_SIZE: Final[int] = 1024  # 256 byte-fallback pieces + 7 specials + 761 learned pieces

# T5's layout: <pad>=0, </s>=1, <unk>=2, no BOS; the decoder starts from <pad>.
T5_PAD_ID: Final[int] = 0
T5_EOS_ID: Final[int] = 1
T5_UNK_ID: Final[int] = 2
T5_VOCAB_SIZE: Final[int] = 768

GEMMA_CHAT_TEMPLATE: Final[str] = (
    "{{ bos_token }}"
    "{%- if messages and messages[0]['role'] == 'system' -%}"
    "{%- set system_text = messages[0]['content'] if messages[0]['content'] is string"
    " else messages[0]['content'] | map(attribute='text') | join('') -%}"
    "{%- set system_prefix = system_text | trim ~ '\n\n' -%}"
    "{%- set loop_messages = messages[1:] -%}"
    "{%- else -%}"
    "{%- set system_prefix = '' -%}"
    "{%- set loop_messages = messages -%}"
    "{%- endif -%}"
    "{%- for message in loop_messages -%}"
    "{%- if (message['role'] == 'user') != (loop.index0 % 2 == 0) -%}"
    "{{ raise_exception('Conversation roles must alternate user/assistant/user/assistant/...') }}"
    "{%- endif -%}"
    "{%- set role = 'model' if message['role'] == 'assistant' else message['role'] -%}"
    "{%- set text = message['content'] if message['content'] is string"
    " else message['content'] | map(attribute='text') | join('') -%}"
    "{{ '<start_of_turn>' ~ role ~ '\n' ~ (system_prefix if loop.first else '') ~ text | trim"
    " ~ '<end_of_turn>\n' }}"
    "{%- endfor -%}"
    "{%- if add_generation_prompt -%}{{ '<start_of_turn>model\n' }}{%- endif -%}"
)
"""A minimal Gemma-style chat template: turns ``<start_of_turn>{role}\\n...<end_of_turn>\\n``, an optional
system message folded into the first user turn (as Gemma 3 does), ``model`` as the assistant's role,
and content given either as a string or as a list of ``{"type": "text", "text": ...}`` parts."""

_BUILTIN_TEXT: Final[str] = """\
The old lighthouse keeper climbed the spiral stairs every evening at half past six. From the top he
could see the harbour, the fishing boats coming home, and the long grey line of the northern cliffs.
On clear nights the beam reached almost twenty-two kilometres out to sea; in fog it reached barely one.

Researchers at the university measured how quickly ice melts on rooftops painted white, black or green.
White roofs stayed 12 degrees cooler in July, which cut the buildings' cooling bills by nearly a third.
"We expected a difference," said Dr. Okafor, "but not one this large." The study ran from 2019 to 2023.

A small bakery on Rue Saint-Denis sells croissants, baguettes and a famous crème brûlée. Its owner,
Zoë, wakes at 4:15 every morning, kneads the dough by hand and refuses to use frozen butter. Customers
queue outside before dawn; by nine o'clock the shelves are usually empty and the café is full.

Why do cats purr? Scientists are still not entirely sure. Purring may signal contentment, but cats also
purr when they are frightened, injured or giving birth. Some researchers think the vibration (between 25
and 150 hertz) helps bones and tissues heal faster. Others believe it is simply a way to ask for food!

The committee voted 7-2 to approve the new bridge. Construction will begin next spring and should take
eighteen months. Critics argued that the $4.5 million budget was too small; supporters replied that a
ferry costs more every year. Traffic on the old road has doubled since 2010, according to the council.

Quick brown foxes jump over lazy dogs; zebras quietly vex jumpy wizards. Please answer the question in
one short sentence. Summarize the following article. Translate English to German: the house is wonderful.
"""
"""Fallback training text, always part of the corpus so the tokenizer never depends on a missing file."""


def _corpus_lines(corpus: Path) -> list[str]:
    """The tokenizer training corpus: the built-in text plus every text/reference of ``corpus`` (JSONL)."""
    lines = [line for line in _BUILTIN_TEXT.splitlines() if line.strip()]
    if corpus.is_file():
        for raw in corpus.read_text(encoding="utf-8").splitlines():
            if not raw.strip():
                continue
            record = json.loads(raw)
            for field in ("text", "reference"):
                value = record.get(field)
                if isinstance(value, str) and value.strip():
                    lines.extend(part for part in value.splitlines() if part.strip())
    return lines


@functools.cache
def _trained_spm_bytes(kind: TokenizerKind, corpus: Path) -> bytes:
    """Train a SentencePiece model of ``kind`` on ``corpus`` once per process; return its serialized bytes.

    Training is deterministic (one thread, no sentence sampling or shuffling): the same corpus gives
    byte-identical models in every process.
    """
    common: dict[str, Any] = {
        "sentence_iterator": iter(_corpus_lines(corpus)),
        "num_threads": 1,
        "minloglevel": 2,
        "character_coverage": 1.0,
        "shuffle_input_sentence": False,
        "max_sentence_length": 1 << 16,
    }
    buffer = io.BytesIO()
    if kind == "gemma":
        sentencepiece.SentencePieceTrainer.train(
            **common,
            model_writer=buffer,
            model_type="bpe",
            vocab_size=GEMMA_VOCAB_SIZE,
            pad_id=GEMMA_PAD_ID,
            eos_id=GEMMA_EOS_ID,
            bos_id=GEMMA_BOS_ID,
            unk_id=GEMMA_UNK_ID,
            pad_piece="<pad>",
            eos_piece="<eos>",
            bos_piece="<bos>",
            unk_piece="<unk>",
            user_defined_symbols=list(GEMMA_USER_SYMBOLS),
            byte_fallback=True,
            split_digits=True,
            add_dummy_prefix=False,
            remove_extra_whitespaces=False,
            allow_whitespace_only_pieces=True,
            normalization_rule_name="identity",
        )
    elif kind == "t5":
        sentencepiece.SentencePieceTrainer.train(
            **common,
            model_writer=buffer,
            model_type="unigram",
            vocab_size=T5_VOCAB_SIZE,
            pad_id=T5_PAD_ID,
            eos_id=T5_EOS_ID,
            unk_id=T5_UNK_ID,
            bos_id=-1,
            pad_piece="<pad>",
            eos_piece="</s>",
            unk_piece="<unk>",
        )
    else:  # pragma: no cover - guarded by the Literal type
        raise ValueError(f"unknown tokenizer kind {kind!r}; expected 'gemma' or 't5'")
    return buffer.getvalue()


def train_tokenizer(workdir: Path, kind: TokenizerKind = "gemma") -> Path:
    """Write a trained SentencePiece model into ``workdir`` and return the ``.model`` file's path.

    ``kind="gemma"`` gives a byte-fallback BPE model with Gemma's ids (pad 0, eos 1, bos 2, unk 3,
    ``<mask>`` 4, ``<start_of_turn>`` 5, ``<end_of_turn>`` 6), saved as ``tokenizer.model``;
    ``kind="t5"`` a Unigram model with T5's ids (pad 0, eos 1, unk 2, no bos), saved as ``spiece.model``.
    The corpus is a built-in paragraph set plus the texts of the shipped data set
    (:data:`llmbench.data.SHIPPED_DATA`) when that file exists. Training (about 0.02-0.1 s) happens
    once per process and kind; later calls only write the cached bytes.
    """
    workdir.mkdir(parents=True, exist_ok=True)
    target = workdir / SPM_FILENAMES[kind]
    target.write_bytes(_trained_spm_bytes(kind, SUMMARIES_JSONL))
    return target


def _without_vocab_file_path(tokenizer: _T) -> _T:
    """Keep the absolute ``vocab_file`` path out of the saved ``tokenizer_config.json``.

    ``tokenizer.json`` is the serialization that loads; a build-time absolute path would only dangle once
    the directory is copied or moved.
    """
    tokenizer.init_kwargs.pop("vocab_file", None)
    return tokenizer


def _gemma_tokenizer(spm_file: Path) -> GemmaTokenizer:
    """A Gemma tokenizer (BOS added, Gemma chat template) converted from a trained SentencePiece model."""
    native = GemmaTokenizer.convert_to_native_format(vocab_file=str(spm_file))
    tokenizer = GemmaTokenizer(
        **native,
        add_bos_token=True,
        add_eos_token=False,
        chat_template=GEMMA_CHAT_TEMPLATE,
        model_max_length=MAX_POSITIONS,
    )
    return _without_vocab_file_path(tokenizer)


def _t5_tokenizer(spm_file: Path) -> T5Tokenizer:
    """A T5 tokenizer (EOS appended, no ``<extra_id_*>`` sentinels) from a trained SentencePiece model."""
    native = T5Tokenizer.convert_to_native_format(vocab_file=str(spm_file), extra_ids=0)
    return _without_vocab_file_path(T5Tokenizer(**native, model_max_length=MAX_POSITIONS))


@contextlib.contextmanager
def _progress_bars_off() -> Iterator[None]:
    """Hide transformers' tqdm bars ("Writing model shards") for the duration, then restore the setting."""
    was_enabled = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        if was_enabled:
            hf_logging.enable_progress_bar()


def _save(model: PreTrainedModel, tokenizer: TokenizersBackend, spm_file: Path, path: Path) -> Path:
    """Save weights (safetensors), configs and tokenizer into ``path``; keep the ``.model`` file there too."""
    path.mkdir(parents=True, exist_ok=True)
    with _progress_bars_off():
        model.save_pretrained(path, safe_serialization=True)
    tokenizer.save_pretrained(path)
    if spm_file.parent.resolve() != path.resolve():
        (path / spm_file.name).write_bytes(spm_file.read_bytes())
    return path


def _seeded_init(factory: type[_M], config: PreTrainedConfig) -> _M:
    """Instantiate ``factory(config)`` with :data:`SEED`, restoring the global torch RNG state afterwards."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(SEED)
        model = factory(config)
    model.eval()
    return model


def _never_generate(model: PreTrainedModel, token_ids: Iterable[int], *, allow_tied: bool = False) -> None:
    """Zero the output-projection rows of ``token_ids`` so greedy decoding (practically) never picks them.

    A zero row gives a logit of exactly 0 (none of these heads has a bias), while the maximum over the
    several hundred random logits is well above 0, so these tokens never win the argmax. With tied
    embeddings (``allow_tied=True``) the same rows are also the tokens' input embeddings, which become
    zero vectors: harmless for pad/eos/unk in a random model.
    """
    head = model.get_output_embeddings()
    if head is None:
        raise ValueError(f"{type(model).__name__} has no output embeddings")
    if not allow_tied and head.weight is model.get_input_embeddings().weight:
        raise ValueError("output embeddings are tied to the input embeddings; pass allow_tied=True to accept")
    with torch.no_grad():
        head.weight[sorted(set(token_ids))] = 0.0


def _gemma_silenced_ids(tokenizer: GemmaTokenizer) -> list[int]:
    """Gemma ids kept out of random outputs: pad, eos, bos, unk, mask, turn markers, byte-fallback pieces.

    Silencing ``<eos>``/``<end_of_turn>`` makes every greedy run produce exactly ``max_new_tokens``
    tokens (deterministic token counts); silencing byte pieces keeps decoded text valid UTF-8 words.
    """
    vocab = tokenizer.get_vocab()
    special = [
        GEMMA_PAD_ID,
        GEMMA_EOS_ID,
        GEMMA_BOS_ID,
        GEMMA_UNK_ID,
        *(vocab[s] for s in GEMMA_USER_SYMBOLS),
    ]
    byte_pieces = [index for piece, index in vocab.items() if len(piece) == 6 and piece.startswith("<0x")]
    return special + byte_pieces


def build_tiny_gemma3(path: Path) -> Path:
    """Build a tiny random ``Gemma3ForCausalLM`` (about 0.2 M parameters) with its tokenizer in ``path``.

    Two layers (one sliding-window layer with a 16-token window, one full-attention layer), hidden size
    64, 2 query heads of dimension 32 sharing 1 KV head. The tokenizer is a ``GemmaTokenizer`` that adds
    ``<bos>``, pads on the left and carries :data:`GEMMA_CHAT_TEMPLATE`; generation stops on ``<eos>`` or
    ``<end_of_turn>`` and is greedy by default. Returns ``path``.
    """
    spm_file = train_tokenizer(path)
    tokenizer = _gemma_tokenizer(spm_file)
    config = Gemma3TextConfig(
        vocab_size=len(tokenizer),
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=2,
        num_key_value_heads=1,
        head_dim=32,
        max_position_embeddings=MAX_POSITIONS,
        sliding_window=16,
        layer_types=["sliding_attention", "full_attention"],
        query_pre_attn_scalar=32,
        pad_token_id=GEMMA_PAD_ID,
        eos_token_id=[GEMMA_EOS_ID, GEMMA_END_OF_TURN_ID],
        bos_token_id=GEMMA_BOS_ID,
        tie_word_embeddings=False,
    )
    model = _seeded_init(Gemma3ForCausalLM, config)
    _never_generate(model, _gemma_silenced_ids(tokenizer))
    model.generation_config = GenerationConfig(
        bos_token_id=GEMMA_BOS_ID,
        eos_token_id=[GEMMA_EOS_ID, GEMMA_END_OF_TURN_ID],
        pad_token_id=GEMMA_PAD_ID,
        do_sample=False,
    )
    return _save(model, tokenizer, spm_file, path)


def build_tiny_t5(path: Path) -> Path:
    """Build a tiny random ``T5ForConditionalGeneration`` with a T5 tokenizer in ``path``.

    Two encoder and two decoder layers, ``d_model`` 64, 2 heads of dimension 32, ``d_ff`` 128, no
    dropout. The decoder starts from ``<pad>`` (id 0) and stops on ``</s>`` (id 1), as in t5-small.
    Returns ``path``.
    """
    spm_file = train_tokenizer(path, kind="t5")
    tokenizer = _t5_tokenizer(spm_file)
    config = T5Config(
        vocab_size=len(tokenizer),
        d_model=64,
        d_kv=32,
        d_ff=128,
        num_layers=2,
        num_decoder_layers=2,
        num_heads=2,
        relative_attention_num_buckets=8,
        relative_attention_max_distance=32,
        dropout_rate=0.0,
        # A larger init than T5's default 1.0 makes the random decoder depend visibly on its input
        # (with 1.0 most prompts yield the same repeated token; with 3.0, 12 prompts gave 12 outputs).
        initializer_factor=3.0,
        pad_token_id=T5_PAD_ID,
        eos_token_id=T5_EOS_ID,
        decoder_start_token_id=T5_PAD_ID,  # type: ignore[call-arg]  # as in t5-small's config.json
    )
    model = _seeded_init(T5ForConditionalGeneration, config)
    # transformers 5 always ties T5's lm_head to the shared embedding (T5Config forces
    # tie_word_embeddings=True), so silencing pad/eos/unk also zeroes their input embeddings.
    _never_generate(model, [T5_PAD_ID, T5_EOS_ID, T5_UNK_ID], allow_tied=True)
    model.generation_config = GenerationConfig(
        decoder_start_token_id=T5_PAD_ID,
        eos_token_id=T5_EOS_ID,
        pad_token_id=T5_PAD_ID,
        do_sample=False,
    )
    return _save(model, tokenizer, spm_file, path)


def build_tiny_t5gemma(path: Path) -> Path:
    """Build a tiny random ``T5GemmaForConditionalGeneration`` with a Gemma tokenizer in ``path``.

    Encoder and decoder each get the Gemma-sized module config of :func:`build_tiny_gemma3` (two layers,
    hidden 64, 2 heads x 32, 1 KV head). As in the released T5Gemma checkpoints, the tokenizer is Gemma's
    (``<bos>`` added to encoder inputs) and the decoder starts from ``<bos>`` (id 2). Returns ``path``.
    """
    spm_file = train_tokenizer(path)
    tokenizer = _gemma_tokenizer(spm_file)
    vocab_size = len(tokenizer)

    def module(is_decoder: bool) -> T5GemmaModuleConfig:
        return T5GemmaModuleConfig(
            vocab_size=vocab_size,
            hidden_size=64,
            intermediate_size=128,
            num_hidden_layers=2,
            num_attention_heads=2,
            num_key_value_heads=1,
            head_dim=32,
            max_position_embeddings=MAX_POSITIONS,
            sliding_window=16,
            layer_types=["sliding_attention", "full_attention"],
            query_pre_attn_scalar=32,
            pad_token_id=GEMMA_PAD_ID,
            eos_token_id=[GEMMA_EOS_ID, GEMMA_END_OF_TURN_ID],
            bos_token_id=GEMMA_BOS_ID,
            is_decoder=is_decoder,
            tie_word_embeddings=False,
        )

    config = T5GemmaConfig(
        encoder=module(is_decoder=False),
        decoder=module(is_decoder=True),
        vocab_size=vocab_size,
        dropout_rate=0.0,
        attention_dropout=0.0,
        tie_word_embeddings=False,
    )
    model = _seeded_init(T5GemmaForConditionalGeneration, config)
    _never_generate(model, _gemma_silenced_ids(tokenizer))
    model.generation_config = GenerationConfig(
        bos_token_id=GEMMA_BOS_ID,
        decoder_start_token_id=GEMMA_BOS_ID,
        eos_token_id=[GEMMA_EOS_ID, GEMMA_END_OF_TURN_ID],
        pad_token_id=GEMMA_PAD_ID,
        do_sample=False,
    )
    return _save(model, tokenizer, spm_file, path)
