"""The ``secfoundry`` command: one sub-command group per stage.

One module per group in this package (``cli/<group>.py``), each a ``typer.Typer`` mounted
here; commands parse options and call library functions, and keep heavy imports (torch, ray,
transformers) inside the command so that ``secfoundry --help`` stays fast. Nothing registers
commands as an import side effect. Config-driven commands bind their typed config dataclass
(``cli/_config.py``): the same fields load from YAML.
"""

from __future__ import annotations

import typer

from secfoundry import __version__
from secfoundry.cli.corpus import app as corpus_app
from secfoundry.cli.eval import app as eval_app
from secfoundry.cli.experiment import app as experiment_app
from secfoundry.cli.kb import app as kb_app
from secfoundry.cli.models import app as models_app
from secfoundry.cli.train import app as train_app
from secfoundry.cli.intel import app as intel_app
from secfoundry.cli.review import app as review_app
from secfoundry.cli.serve import app as serve_app
from secfoundry.cli.soc import app as soc_app
from secfoundry.models.registry import register_lazy_backend

# applications scored as models: `--model system:map-cwe` (issue #12; models never imports apps)
register_lazy_backend("system", "secfoundry.apps.intel.system")

app = typer.Typer(no_args_is_help=True, add_completion=False,
                  help="Build, train and measure security LLMs end to end.")
app.add_typer(eval_app, name="eval", help="Evaluate models on security benchmarks.")
app.add_typer(kb_app, name="kb", help="Security knowledge base: sync sources, look up, search.")
app.add_typer(corpus_app, name="corpus", help="Corpus pipeline: collect, process, prepare.")
app.add_typer(train_app, name="train", help="Continued pretraining.")
app.add_typer(models_app, name="models", help="Model backends: convert, inspect, generate.")
app.add_typer(experiment_app, name="experiment", help="End-to-end experiments (the replication run).")
app.add_typer(intel_app, name="intel", help="Threat intel and vulnerabilities: CWE, CVSS, ATT&CK techniques, prioritization.")
app.add_typer(soc_app, name="soc", help="SOC: ingest, detect, triage, cases, timelines, notes.")
app.add_typer(review_app, name="review", help="Engineering review: configs, code, compliance.")
app.add_typer(serve_app, name="serve", help="The analyst service: HTTP API and web UI.")


@app.command()
def version() -> None:
    """Print the package version."""
    typer.echo(__version__)


if __name__ == "__main__":
    app()
