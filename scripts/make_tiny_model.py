"""Create a tiny random-weight Llama that vLLM can serve on a CPU, without any model hub.

Usage (with the vLLM venv's interpreter, which has torch, transformers and tokenizers)::

    .venv-vllm/bin/python scripts/make_tiny_model.py var/tiny-model

The answers are noise, but every part vLLM touches is real: a Llama architecture, safetensors weights,
a byte-level BPE tokenizer with bos/eos/pad tokens, and a chat template, so ``/v1/chat/completions`` and
``/v1/completions`` work. Weights and tokenizer come from fixed seeds and generated text, so every run
produces the same files. The server picks the public name: ``--served-model-name tiny-llama``.

Does nothing when OUT_DIR already holds a complete model; the model is written to a temporary
directory and renamed into place, so an interrupted run never leaves a half-written model behind.
"""

from __future__ import annotations

import json
import random
import shutil
import sys
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerFast

SEED = 1234
VOCAB_SIZE = 4096
MARKER = "ragotel-tiny-model.json"

# vLLM's CPU attention accepts only some head sizes (32, 64, 80, ...): 128 / 4 heads = 32.
MODEL_SHAPE = {
    "hidden_size": 128,
    "num_attention_heads": 4,
    "num_key_value_heads": 4,
    "num_hidden_layers": 2,
    "intermediate_size": 256,
    "max_position_embeddings": 2048,
}

BOS, EOS, PAD, UNK = "<|bos|>", "<|eos|>", "<|pad|>", "<|unk|>"
ROLE_TOKENS = ["<|system|>", "<|user|>", "<|assistant|>", "<|tool|>"]

# One block per message: a role marker, the text, eos. `add_generation_prompt` opens the assistant turn.
CHAT_TEMPLATE = (
    "{{ bos_token }}"
    "{% for message in messages %}"
    "{{ '<|' + message['role'] + '|>\\n' + message['content'] | trim + eos_token + '\\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|assistant|>\\n' }}{% endif %}"
)

# Common English plus the vocabulary of the RAG demo, so typical prompts split into whole words.
_WORD_TEXT = """
the of and to a in is it you that he was for on are with as I his they be at one have this from or had by
not word but what some we can out other were all there when up use your how said an each she which do
their time if will way about many then them write would like so these her long make thing see him two has
look more day could go come did number sound no most people my over know water than call first who may
down side been now find any new work part take get place made live where after back little only round
man year came show every good me give our under name very through just form sentence great think say help
low line differ turn cause much mean before move right boy old too same tell does set three want air well
also play small end put home read hand port large spell add even land here must big high such follow act
why ask men change went light kind off need house picture try us again animal point mother world near
build self earth father head stand own page should country found answer school grow study still learn
plant cover food sun four between state keep eye never last let thought city tree cross farm hard start
might story saw far sea draw left late run while press close night real life few north open seem together
next white children begin got walk example ease paper group always music those both mark often letter
until mile river car feet care second book carry took science eat room friend began idea fish mountain
stop once base hear horse cut sure watch color face wood main enough plain girl usual young ready above
ever red list though feel talk bird soon body dog family direct pose leave song measure door product
black short numeral class wind question happen complete ship area half rock order fire south problem
piece told knew pass since top whole king space heard best hour better true during hundred five remember
step early hold west ground interest reach fast verb sing listen six table travel less morning ten simple
several vowel toward war lay against pattern slow center love person money serve appear road map rain
rule govern pull cold notice voice unit power town fine certain fly fall lead cry dark machine note wait
plan figure star box noun field rest correct able pound done beauty drive stood contain front teach week
final gave green oh quick develop ocean warm free minute strong special mind behind clear tail produce
fact street inch multiply nothing course stay wheel full force blue object decide surface deep moon
island foot system busy test record boat common gold possible plane stead dry wonder laugh thousand ago
ran check game shape equate hot miss brought heat snow tire bring yes distant fill east paint language
among model server request response token prompt context document retrieval retriever embedding vector
index query search rerank score chunk passage answer question generation latency throughput trace span
metric log telemetry service cache queue batch stream decode prefill engine memory worker client
error timeout retry health ready label bucket histogram counter gauge sample rate budget cost user
assistant system tool message chat completion usage input output length limit temperature source
citation knowledge database storage cluster node pod region deploy release version config setting
observability dashboard alert incident
"""
WORDS = _WORD_TEXT.split()

SYLLABLES = [c + v for c in "bcdfghjklmnprstvwyz" for v in ("a", "e", "i", "o", "u", "ai", "ou", "ea")]
ENDINGS = ["", "", "", "s", "ed", "ing", "er", "ly", "tion", "ment", "ness", "al", "ous", "ive", "ity"]


def corpus(rng: random.Random, sentences: int = 30_000) -> Iterator[str]:
    """Yield English-like sentences: real words with Zipf-like frequencies, mixed with made-up words.

    The made-up words give the BPE trainer enough distinct pieces to fill the whole vocabulary.
    """
    made_up = sorted(
        {"".join(rng.choice(SYLLABLES) for _ in range(rng.randint(1, 4))) + rng.choice(ENDINGS) for _ in range(6_000)}
    )
    vocabulary = WORDS + made_up
    weights = [1.0 / (rank + 10) for rank in range(len(vocabulary))]
    for _ in range(sentences):
        words = rng.choices(vocabulary, weights, k=rng.randint(4, 18))
        if rng.random() < 0.2:
            words.insert(rng.randrange(len(words)), str(rng.randint(0, 2048)))
        if rng.random() < 0.15:
            words[rng.randrange(len(words))] += ","
        yield " ".join(words).capitalize() + rng.choice(".....?!:")


def build_tokenizer(rng: random.Random) -> PreTrainedTokenizerFast:
    """Train a byte-level BPE tokenizer and wrap it for transformers.

    Its alphabet is printable ASCII plus tab and newline, with no other bytes: a random model picks
    tokens at random, and lone bytes of multi-byte characters would decode to U+FFFD. Other
    characters in a prompt become ``<|unk|>``.
    """
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    byte_level = pre_tokenizers.ByteLevel(add_prefix_space=False)
    alphabet = [byte_level.pre_tokenize_str(chr(c))[0][0] for c in (9, 10, *range(32, 127))]
    tokenizer = Tokenizer(models.BPE(unk_token=UNK))
    tokenizer.pre_tokenizer = byte_level
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=VOCAB_SIZE,
        special_tokens=[PAD, BOS, EOS, UNK, *ROLE_TOKENS],
        initial_alphabet=alphabet,
        limit_alphabet=len(alphabet),
        show_progress=False,
    )
    tokenizer.train_from_iterator(corpus(rng), trainer=trainer)
    if tokenizer.get_vocab_size() != VOCAB_SIZE:
        raise RuntimeError(f"tokenizer has {tokenizer.get_vocab_size()} tokens, expected {VOCAB_SIZE}")
    return PreTrainedTokenizerFast(
        tokenizer_object=tokenizer,
        bos_token=BOS,
        eos_token=EOS,
        pad_token=PAD,
        unk_token=UNK,
        additional_special_tokens=ROLE_TOKENS,
        chat_template=CHAT_TEMPLATE,
        model_max_length=MODEL_SHAPE["max_position_embeddings"],
    )


def build(out_dir: Path) -> None:
    """Write tokenizer, config and random weights into ``out_dir``."""
    import torch
    from transformers import GenerationConfig, LlamaConfig, LlamaForCausalLM
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()

    tokenizer = build_tokenizer(random.Random(SEED))
    tokenizer.save_pretrained(out_dir)

    config = LlamaConfig(
        vocab_size=VOCAB_SIZE,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        tie_word_embeddings=False,
        dtype="float32",
        **MODEL_SHAPE,
    )
    torch.manual_seed(SEED)
    model = LlamaForCausalLM(config).to(torch.float32).eval()
    model.generation_config = GenerationConfig(
        bos_token_id=config.bos_token_id,
        eos_token_id=config.eos_token_id,
        pad_token_id=config.pad_token_id,
    )
    save(model, out_dir, MARKER, {"seed": SEED, "vocab_size": VOCAB_SIZE, **MODEL_SHAPE,
                                  "suggested_served_name": "tiny-llama"})


# -- shared with make_tiny_reranker.py: how a model directory is written and recognised ----------------
def save(model: Any, out_dir: Path, marker: str, info: dict[str, Any]) -> None:
    """Save the weights, then the marker file: written last, its presence means the directory is complete."""
    model.save_pretrained(out_dir, safe_serialization=True)
    (out_dir / marker).write_text(json.dumps(info, indent=2) + "\n")
    for path in out_dir.iterdir():
        path.chmod(0o644)  # save_pretrained leaves the weights private; the model is meant to be shared.


def is_complete(out_dir: Path, marker: str = MARKER) -> bool:
    """True when ``out_dir`` holds a finished model whose script writes ``marker``."""
    return all((out_dir / name).is_file() for name in (marker, "config.json", "tokenizer.json")) and any(
        out_dir.glob("*.safetensors")
    )


def write_model(argv: list[str], marker: str, what: str, build: Callable[[Path], None]) -> int:
    """``SCRIPT OUT_DIR``: build into a temporary directory and rename it into place, unless complete."""
    if len(argv) != 2:
        print(f"usage: {argv[0]} OUT_DIR", file=sys.stderr)
        return 2
    out_dir = Path(argv[1]).resolve()
    if is_complete(out_dir, marker):
        return 0
    print(f"{Path(argv[0]).stem}: writing {what} to {out_dir}")
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.", dir=out_dir.parent))
    tmp.chmod(0o755)  # mkdtemp makes it private; the model is meant to be shared.
    try:
        build(tmp)
        if out_dir.exists():  # Left over from an older or interrupted layout.
            shutil.rmtree(out_dir)
        tmp.rename(out_dir)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(write_model(sys.argv, MARKER, "a tiny random Llama", build))
