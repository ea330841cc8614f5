"""``RunConfig``: everything that defines an eval run (recorded in config.json; a resumed run
must match it). One typed dataclass, loaded from YAML (``RunConfig.from_yaml``) or from the
``secfoundry eval run`` options (``cli/_config.py`` binds the fields marked with ``flag``)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from secfoundry.core.typed_config import YamlConfig, flag


@dataclass(kw_only=True)
class RunConfig(YamlConfig):
    """Everything that defines a run (recorded in config.json; a resumed run must match it)."""

    model: str = field(default="smollm2-135m-instruct", metadata=flag(
        "--model", "-m", help="Model spec: hf:ID|PATH, openai:URL#model, llamacpp:PATH, or an alias."))
    benchmarks: list[str] = field(metadata=flag(
        "--benchmark", "-b", type=str, help="Comma-separated benchmarks, families (ctibench) or groups "
                                            "(quickstart: a slice of every locally available benchmark; all)."))
    out: Path = field(metadata=flag(
        "--out", "-o", help="Run directory (config.json, results.json, samples.jsonl)."))
    protocol: str = field(default="faith", metadata=flag("--protocol", help="official | faith"))
    mode: str = field(default="generate", metadata=flag(
        "--mode", help="generate | logprob (answer-letter log-probabilities)"))
    shots: int | None = field(default=None, metadata=flag(
        "--shots", help="Few-shot examples (default: faith 5 for base models, else 0)."))
    trials: int = field(default=1, metadata=flag("--trials", min=1, help="Independent trials (new shots and seed each)."))
    temperature: float = field(default=0.0, metadata=flag("--temperature", min=0.0, help="0 = greedy."))
    limit: int | None = field(default=None, metadata=flag(
        "--limit", min=1, help="Score only the first N items per benchmark."))
    seed: int = field(default=1234, metadata=flag("--seed"))
    permute: bool = field(default=False, metadata=flag("--permute", help="Also ask each MCQ with rotated options."))
    score_options: bool = field(default=False, metadata=flag(
        "--score-options", help="logprob mode: score option texts instead of letters."))
    data_dir: Path | None = field(default=None, metadata=flag(
        "--data-dir", help="Local benchmark copy (default SECFOUNDRY_DATA or ../shared/data/benchmarks)."))
    batch_size: int = field(default=16, metadata=flag("--batch-size", min=1))
    instruct: bool | None = field(default=None, metadata=flag(  # None: detected (chat template present)
        "--instruct/--base", help="Treat the model as instruct/base (default: detected from its chat template)."))
    max_new_tokens: int | None = field(default=None, metadata=flag("--max-new-tokens", min=1))
    fresh: bool = field(default=False, metadata=flag(  # discard samples of an earlier run in the same directory
        "--fresh", help="Discard samples already in --out instead of resuming."))
    threads: int | None = field(default=None, metadata=flag("--threads", help="CPU threads for local backends."))
    dtype: str | None = field(default=None, metadata=flag("--dtype", help="hf backend dtype (bf16 default on CPU)."))
    judge: str | None = field(default=None, metadata=flag(
        "--judge", help="Model spec of the LLM judge grading free-text answers (secbench-saq); "
                        "default: the embedded SmolLM2, reported as low-trust."))
    gen_token_cap: int | None = None  # upper bound on max_new_tokens (quickstart keeps generation short)
    gen_limit: int | None = None  # items per generation benchmark when lower than ``limit`` (quickstart)
    bootstrap: int = 1000  # bootstrap resamples for the 95% CI of each benchmark's score
    model_options: dict[str, Any] = field(default_factory=dict)  # more load_model options (batch_size...)

    def __post_init__(self) -> None:
        # --threads/--dtype are load_model options: folded in once, so model_options is the one place
        self.model_options = {k: v for k, v in (("threads", self.threads), ("dtype", self.dtype))
                              if v is not None} | dict(self.model_options)
        if self.protocol not in ("official", "faith"):
            raise ValueError(f"protocol must be official or faith, not {self.protocol!r}")
        if self.mode not in ("generate", "logprob"):
            raise ValueError(f"mode must be generate or logprob, not {self.mode!r}")
        if self.judge is not None:
            from secfoundry.models.spec import ModelSpecError, parse_spec

            try:
                parse_spec(self.judge)
            except ModelSpecError as e:  # names the valid forms
                raise ValueError(f"judge: {e}") from e


    def load_options(self) -> dict[str, Any]:
        """Keyword arguments for ``load_model``."""
        return dict(self.model_options)

    def identity(self) -> dict[str, Any]:
        """The fields that must agree for a directory to be resumed."""
        return {k: getattr(self, k) for k in ("model", "protocol", "mode", "shots", "trials", "temperature",
                                              "limit", "seed", "permute", "score_options", "instruct",
                                              "max_new_tokens", "gen_token_cap", "gen_limit", "judge")}
