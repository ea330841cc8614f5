"""Experiments that run the whole system: corpus -> eval -> train -> eval -> report.

``config.py`` (``ReplicateConfig``: typed, from YAML or the CLI options), ``replicate.py`` (the
pipeline; every stage resumes and writes under the run directory), ``report.py`` (table with
CIs, verdicts, loss curve; RESULTS.md only when asked).
"""

from secfoundry.experiment.config import ReplicateConfig
from secfoundry.experiment.replicate import replicate
from secfoundry.experiment.report import render_markdown, write_reports

__all__ = ["ReplicateConfig", "render_markdown", "replicate", "write_reports"]
