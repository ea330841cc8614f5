"""``RunConfig``: everything that defines an eval run (recorded in config.json; a resumed run
must match it). Typed, loadable from YAML and from the ``secfoundry eval run`` flags."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


@dataclass
class RunConfig:
    """Everything that defines a run (recorded in config.json; a resumed run must match it)."""

    model: str
    benchmarks: list[str]
    out: Path
    protocol: str = "faith"
    mode: str = "generate"
    shots: int | None = None
    trials: int = 1
    temperature: float = 0.0
    limit: int | None = None
    seed: int = 1234
    permute: bool = False
    score_options: bool = False
    data_dir: Path | None = None
    batch_size: int = 16
    instruct: bool | None = None  # None: detected from the model (chat template present)
    max_new_tokens: int | None = None
    fresh: bool = False  # discard samples of an earlier run in the same directory
    gen_token_cap: int | None = None  # upper bound on max_new_tokens (quickstart keeps generation short)
    gen_limit: int | None = None  # items per generation benchmark when lower than ``limit`` (quickstart)
    bootstrap: int = 1000  # bootstrap resamples for the 95% CI of each benchmark's score
    model_options: dict[str, Any] = field(default_factory=dict)  # passed to load_model (threads, dtype...)

    def identity(self) -> dict[str, Any]:
        """The fields that must agree for a directory to be resumed."""
        return {k: getattr(self, k) for k in ("model", "protocol", "mode", "shots", "trials", "temperature",
                                              "limit", "seed", "permute", "score_options", "instruct",
                                              "max_new_tokens", "gen_token_cap", "gen_limit")}
