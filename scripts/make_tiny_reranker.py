"""Create a tiny random-weight BERT cross-encoder (reranker) that vLLM can serve on a CPU, without any model hub.

Usage (with the vLLM venv's interpreter, which has torch, transformers and tokenizers)::

    .venv-vllm/bin/python scripts/make_tiny_reranker.py var/tiny-reranker

The scores are noise, but every part vLLM touches is real: a ``BertForSequenceClassification`` with
one label (a cross-encoder), safetensors weights, and a WordPiece tokenizer whose pair template is
``[CLS] A [SEP] B [SEP]`` with token type ids 0/1, so ``/rerank`` and ``/score`` work. Weights and
training text come from fixed seeds; the WordPiece trainer still breaks some ties differently from run
to run, so two builds can differ in a few vocabulary pieces (nothing here depends on them). The server
picks the public name: ``--served-model-name tiny-reranker``.

Does nothing when OUT_DIR already holds a complete model; the model is written to a temporary
directory and renamed into place, so an interrupted run never leaves a half-written model behind.
"""

from __future__ import annotations

import random
import sys
from pathlib import Path
from typing import TYPE_CHECKING

# The word list, the sentence generator and the directory writer are shared with the tiny generation model.
sys.path.insert(0, str(Path(__file__).resolve().parent))
from make_tiny_model import corpus, save, write_model

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerFast

SEED = 4321
VOCAB_SIZE = 4096
MARKER = "ragotel-tiny-reranker.json"

# vLLM's CPU attention accepts only some head sizes (32, 64, 80, ...): 128 / 4 heads = 32.
MODEL_SHAPE = {
    "hidden_size": 128,
    "num_attention_heads": 4,
    "num_hidden_layers": 2,
    "intermediate_size": 256,
    "max_position_embeddings": 512,
}

CLS, SEP, PAD, UNK, MASK = "[CLS]", "[SEP]", "[PAD]", "[UNK]", "[MASK]"


def build_tokenizer(rng: random.Random) -> PreTrainedTokenizerFast:
    """Train a lower-casing WordPiece tokenizer with BERT's single and pair templates."""
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    tokenizer = Tokenizer(models.WordPiece(unk_token=UNK))
    tokenizer.normalizer = normalizers.BertNormalizer(lowercase=True)
    tokenizer.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tokenizer.decoder = decoders.WordPiece()
    trainer = trainers.WordPieceTrainer(
        vocab_size=VOCAB_SIZE,
        special_tokens=[PAD, UNK, CLS, SEP, MASK],
        show_progress=False,
    )
    tokenizer.train_from_iterator(corpus(rng), trainer=trainer)
    if tokenizer.get_vocab_size() > VOCAB_SIZE:
        raise RuntimeError(f"tokenizer has {tokenizer.get_vocab_size()} tokens, expected at most {VOCAB_SIZE}")
    # The trainer learns the same pieces every run but numbers tied ones in hash order; WordPiece
    # matches greedily on the strings alone, so renumbering them (specials first, then sorted) keeps
    # the tokenization and makes tokenizer.json identical from run to run.
    specials = [PAD, UNK, CLS, SEP, MASK]
    pieces = specials + sorted(set(tokenizer.get_vocab()) - set(specials))
    trained = tokenizer
    tokenizer = Tokenizer(models.WordPiece({piece: i for i, piece in enumerate(pieces)}, unk_token=UNK))
    tokenizer.normalizer, tokenizer.pre_tokenizer, tokenizer.decoder = (
        trained.normalizer,
        trained.pre_tokenizer,
        trained.decoder,
    )
    for piece in specials:
        tokenizer.add_special_tokens([piece])
    cls_id, sep_id = tokenizer.token_to_id(CLS), tokenizer.token_to_id(SEP)
    tokenizer.post_processor = processors.TemplateProcessing(
        single=f"{CLS}:0 $A:0 {SEP}:0",
        pair=f"{CLS}:0 $A:0 {SEP}:0 $B:1 {SEP}:1",
        special_tokens=[(CLS, cls_id), (SEP, sep_id)],
    )
    return PreTrainedTokenizerFast(
        tokenizer_object=tokenizer,
        cls_token=CLS,
        sep_token=SEP,
        pad_token=PAD,
        unk_token=UNK,
        mask_token=MASK,
        model_input_names=["input_ids", "token_type_ids", "attention_mask"],
        model_max_length=MODEL_SHAPE["max_position_embeddings"],
    )


def build(out_dir: Path) -> None:
    """Write tokenizer, config and random weights into ``out_dir``."""
    import torch
    from transformers import BertConfig, BertForSequenceClassification
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()

    tokenizer = build_tokenizer(random.Random(SEED))
    tokenizer.save_pretrained(out_dir)

    config = BertConfig(
        vocab_size=VOCAB_SIZE,
        type_vocab_size=2,
        num_labels=1,
        pad_token_id=tokenizer.pad_token_id,
        dtype="float32",
        **MODEL_SHAPE,
    )
    torch.manual_seed(SEED)
    model = BertForSequenceClassification(config).to(torch.float32).eval()
    save(model, out_dir, MARKER, {"seed": SEED, "vocab_size": VOCAB_SIZE, **MODEL_SHAPE,
                                  "suggested_served_name": "tiny-reranker"})


if __name__ == "__main__":
    sys.exit(write_model(sys.argv, MARKER, "a tiny random BERT cross-encoder", build))
