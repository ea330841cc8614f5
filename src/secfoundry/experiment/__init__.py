"""Experiments that run the whole system: corpus -> eval -> train -> eval -> report.

``config.py`` (``ReplicateConfig``: typed, from YAML or the CLI options), ``replicate.py`` (the
pipeline; every stage resumes and writes under the run directory), ``report.py`` (table with
CIs, verdicts, loss curve; RESULTS.md only when asked). Import from the modules (nothing is
imported here, so the CLI stays fast).
"""
