"""``ReplicateConfig``: the replication experiment's settings, typed; loaded from YAML
(``ReplicateConfig.from_yaml``) or bound to ``secfoundry experiment replicate``'s options."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from secfoundry.core.typed_config import YamlConfig, flag

REPO = Path(__file__).resolve().parents[3]  # the shipped recipes live in the repository's configs/


@dataclass
class ReplicateConfig(YamlConfig):
    out: Path = field(default=Path("runs/replicate"), metadata=flag(
        "--out", help="Run directory: corpus/, eval-*/, train/, summary.json, report.md/html."))
    corpus_recipe: Path = field(default=REPO / "configs" / "corpus" / "quickstart.yaml",
                                metadata=flag("--corpus-recipe", help="Corpus recipe (YAML)."))
    train_recipe: Path = field(default=REPO / "configs" / "train" / "smollm2-135m-cpt.yaml",
                               metadata=flag("--train-recipe", help="Training recipe (YAML)."))
    mirror: str | None = field(default=None, metadata=flag(
        "--mirror", envvar="SECFOUNDRY_MIRROR", help="Source mirror dir."))
    # Reuse a finished corpus run (a directory with shards/) instead of building one: lever runs
    # share one corpus so only the training settings differ.
    corpus_dir: Path | None = field(default=None, metadata=flag(
        "--corpus", help="Reuse a finished corpus run (its shards/) instead of building one."))
    # Reuse the base model's perplexities and benchmark answers from an earlier experiment with the
    # same corpus and eval settings (the base model does not change between lever runs).
    base_from: Path | None = field(default=None, metadata=flag(
        "--base-from", help="Reuse the base model's results from an earlier experiment dir (same corpus)."))
    benchmarks: list[str] = field(default_factory=lambda: ["ctibench-mcq", "cybermetric-500", "seceval"],
                                  metadata=flag("--benchmarks", type=str, help="Comma-separated benchmarks."))
    shots: int = 5  # FAITH base-model protocol for both models: same prompts, logprob letters
    eval_limit: int | None = field(default=None, metadata=flag(
        "--eval-limit", help="Items per benchmark (default: all)."))
    # CTIBench-MCQ rotation check on the first N questions (each asked with its options rotated
    # 0-3 places): a 135M model's letter scores mostly measure which letter it prefers, and the
    # rotation-averaged accuracy is the part that is not position bias. 0 = skip.
    permute_limit: int = field(default=400, metadata=flag(
        "--permute-limit", help="CTIBench-MCQ rotation check on this many questions; 0 = skip."))
    # CTIBench-MCQ scored by the option texts' log-likelihood (accuracy, and acc_norm: per byte)
    # on the first N questions, same 5-shot prompts. Small models are usually measured this way
    # ("cloze" formulation) because they cannot yet bind an answer to a letter. 0 = skip.
    option_limit: int = field(default=400, metadata=flag(
        "--option-limit", help="CTIBench-MCQ scored by option texts on this many questions; 0 = skip."))
    ppl_batches: int = field(default=16, metadata=flag(  # held-out batches of 8 rows per set; 0: every row
        "--ppl-batches", help="Held-out batches (8 rows each) per perplexity set; 0 = all."))
    # Where the evaluations (perplexities and harness) run; training picks its device itself.
    device: str = field(default="cpu", metadata=flag(
        "--device", help="Evaluation device: cpu (default) or cuda (bf16 there)."))
    eval_batch_size: int = field(default=16, metadata=flag(
        "--eval-batch-size", min=1, help="Rows per forward pass in the evaluations."))
    train_overrides: list[str] = field(default_factory=list, metadata=flag(
        "--set", help="Training overrides, e.g. --set max_steps=200 (repeatable)."))
    # Append the report to this Markdown file (e.g. RESULTS.md); None: only the run directory.
    results_md: Path | None = field(default=None, metadata=flag(
        "--results-md", help="Also append the report to this Markdown file (e.g. RESULTS.md)."))


