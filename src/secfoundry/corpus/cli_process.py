"""Process-stage commands on ``secfoundry corpus``: relevance train/eval, audit-filters, and
single-step debugging commands (extract, route, langid, keywords, pii)."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Optional

import typer

from secfoundry.corpus.cli import app

relevance_app = typer.Typer(no_args_is_help=True, help="Train / evaluate the relevance classifier.")
app.add_typer(relevance_app, name="relevance")


def _read(path: str) -> str:
    if path == "-":
        return sys.stdin.read()
    return Path(path).read_text(encoding="utf-8", errors="replace")


@relevance_app.command("train")
def relevance_train(
    seed: Optional[Path] = typer.Option(None, help="relevance-seed.jsonl (default: ../shared/data/datasets)"),
    out: Optional[Path] = typer.Option(None, help="model dir (default: SECFOUNDRY_HOME/models/relevance)"),
    extra: list[Path] = typer.Option([], help="extra labelled JSONL (text, label[, source, split]); train split used"),
    no_hard_negatives: bool = typer.Option(False, help="train on the seed only"),
    c: float = typer.Option(16.0, "--C", help="inverse L2 regularisation"),
    threshold: float = typer.Option(0.5, help="decision threshold saved with the model"),
    no_char: bool = typer.Option(False, help="word n-grams only (faster, less accurate)"),
) -> None:
    """Train the hashed n-gram logistic classifier and save it (npz + json, no pickle)."""
    from rich.console import Console

    from secfoundry.corpus.process import relevance as R
    from secfoundry.corpus.process import relevance_data as D

    con = Console()
    with con.status("loading training data"):
        texts, labels, summary = D.training_set(seed, use_hard_negatives=not no_hard_negatives)
        for p in extra:
            ex = [e for e in D.load_jsonl_examples(p, p.stem) if e.split == "train"]
            texts += [e.text for e in ex]
            labels += [e.label for e in ex]
            summary[f"extra:{p.name}"] = len(ex)
    feats = R.FeatureConfig(char_features=0 if no_char else R.FeatureConfig().char_features)
    with con.status(f"training on {len(texts)} examples"):
        model = R.train(texts, labels, R.TrainConfig(features=feats, C=c, threshold=threshold),
                        info={"data": summary})
    with con.status("evaluating"):
        for name, ex in D.eval_sets(seed).items():
            m = R.metrics([e.label for e in ex], model.predict([e.text for e in ex]))
            model.info.setdefault("metrics", {})[name] = m.__dict__
            con.print(f"{name:15s} {m.row()}")
    d = model.save(out or R.default_model_dir())
    con.print(f"saved {d}  ({summary})")


@relevance_app.command("eval")
def relevance_eval(
    model_dir: Optional[Path] = typer.Option(None, "--model", help="model dir (default: the trained default)"),
    seed: Optional[Path] = typer.Option(None, help="relevance-seed.jsonl"),
    data: list[Path] = typer.Option([], help="extra labelled JSONL to evaluate on (all rows)"),
    threshold: Optional[float] = typer.Option(None, help="override the model threshold"),
    json_out: Optional[Path] = typer.Option(None, "--json", help="write metrics as JSON"),
    derived: bool = typer.Option(True, help="include derived hard negatives (Python docs, man pages)"),
) -> None:
    """Precision/recall/F1 on the seed test split, on hard negatives, and on extra files."""
    from collections import Counter

    from rich.console import Console
    from rich.table import Table

    from secfoundry.corpus.process import relevance as R
    from secfoundry.corpus.process import relevance_data as D

    model = R.RelevanceModel.load(model_dir) if model_dir else R.load_or_train_default(seed=seed)
    thr = model.threshold if threshold is None else threshold
    sets = D.eval_sets(seed, derived=derived)
    for p in data:
        sets[p.name] = D.load_jsonl_examples(p, p.stem)
    table = Table(title=f"relevance classifier (threshold {thr})")
    for col in ("set", "n", "P", "R", "F1", "acc", "FPR"):
        table.add_column(col)
    report = {}
    for name, ex in sets.items():
        probs = model.predict_proba([e.text for e in ex])
        m = R.metrics([e.label for e in ex], probs >= thr)
        report[name] = m.__dict__
        table.add_row(name, str(m.n), f"{m.precision:.4f}", f"{m.recall:.4f}", f"{m.f1:.4f}",
                      f"{m.accuracy:.4f}", f"{m.fpr:.4f}")
        wrong, total = Counter(), Counter()
        for e, p in zip(ex, probs):
            total[e.source] += 1
            wrong[e.source] += int((p >= thr) != bool(e.label))
        report[name + ":errors_by_source"] = {s: [wrong[s], total[s]] for s in sorted(total)}
    Console().print(table)
    if json_out:
        json_out.write_text(json.dumps(report, indent=2))


@relevance_app.command("label")
def relevance_label(
    input: Path = typer.Argument(..., help="JSONL with a 'text' field"),
    out: Path = typer.Option(..., help="output JSONL with 'label' and 'label_score' added"),
    model: str = typer.Option("smollm2-135m-instruct", help="any spec load_model accepts (embedded SmolLM2, hf:, openai:...)"),
    limit: Optional[int] = typer.Option(None),
    batch: int = typer.Option(8),
) -> None:
    """Bootstrap labels with an LLM (as the Foundation-Sec report did): is this text about security?"""
    from rich.progress import track

    from secfoundry.models.base import GenerationConfig
    from secfoundry.models.registry import load_model

    lm = load_model(model)
    rows = [json.loads(x) for x in input.read_text(encoding="utf-8").splitlines() if x.strip()][:limit]
    template = ("Question: Is the following text about cybersecurity (vulnerabilities, attacks, malware, "
                "threat intelligence, defence, security tools or practices)? Answer Yes or No.\n\n"
                "Text: {text}\n\nAnswer:")
    with out.open("w", encoding="utf-8") as f:
        for i in track(range(0, len(rows), batch), description="labelling"):
            chunk = rows[i:i + batch]
            prompts = [template.format(text=r["text"][:2000]) for r in chunk]
            if lm.capabilities.choice_logprobs:
                scores = [lp[0] - lp[1] for lp in lm.choice_logprobs(prompts, [" Yes", " No"])]
            else:
                outs = lm.generate(prompts, GenerationConfig(max_new_tokens=3))
                scores = [1.0 if o.strip().lower().startswith("yes") else -1.0 for o in outs]
            for r, s in zip(chunk, scores):
                r.update(label=int(s > 0), label_score=round(float(s), 4), label_source=f"llm:{lm.spec}")
                f.write(json.dumps(r) + "\n")
    lm.close()
    typer.echo(f"labelled {len(rows)} rows -> {out}")


@app.command("audit-filters")
def audit_filters(
    mirror: Optional[Path] = typer.Option(None, help="source mirror: audit the connectors' documents"),
    input: list[Path] = typer.Option([], help="Parquet file/dir or JSONL of documents"),
    sources: Optional[str] = typer.Option(None, help="comma-separated connector names (default: all)"),
    limit: int = typer.Option(2000, help="documents per connector / per input"),
    seed: bool = typer.Option(False, "--seed-paragraphs", help="also audit relevance-seed security paragraphs"),
    no_relevance: bool = typer.Option(False, help="skip the relevance classifier"),
    out: Optional[Path] = typer.Option(None, help="write the report (.md or .html)"),
) -> None:
    """For each filter, the fraction of each source's documents it would drop."""
    import itertools

    from rich.console import Console

    from secfoundry.corpus.process.audit import (Auditor, load_documents, render_html, render_markdown,
                                                 seed_documents, source_documents)
    from secfoundry.core.paths import mirror_dir

    mir = mirror_dir(mirror)
    if mir is None and not input and not seed:
        raise typer.BadParameter("give --mirror DIR (or SECFOUNDRY_MIRROR), --input, or --seed-paragraphs")
    errors: list[str] = []
    streams = []
    if mir is not None:
        streams.append(source_documents(mir, sources.split(",") if sources else None, limit, errors))
    for p in input:
        streams.append(load_documents(p, limit))
    if seed:
        streams.append(seed_documents())
    auditor = Auditor(relevance=not no_relevance)
    with Console().status("auditing filters"):
        res = auditor.audit(itertools.chain(*streams))
    res.errors = errors
    md = render_markdown(res)
    if out:
        out.write_text(render_html(res) if out.suffix in (".html", ".htm") else md, encoding="utf-8")
    typer.echo(md)


@app.command("extract")
def extract_cmd(
    file: str = typer.Argument(..., help="HTML file ('-' for stdin)"),
    whole_page: bool = typer.Option(False, help="render the whole <body>, no main-content detection"),
    links: bool = typer.Option(False, help="keep links as [text](href)"),
) -> None:
    """HTML → Markdown (code blocks, tables and lists kept), printed to stdout."""
    from secfoundry.corpus.process.extract import html_to_markdown

    typer.echo(html_to_markdown(_read(file), main_content=not whole_page, keep_links=links).markdown)


@app.command("route")
def route_cmd(file: str = typer.Argument(..., help="text/Markdown file ('-' for stdin)"),
              source: str = typer.Option("", help="source name")) -> None:
    """Content type, prose part, language and keyword score of one document."""
    from secfoundry.corpus.process.contenttype import route
    from secfoundry.corpus.process.keywords import score_text
    from secfoundry.corpus.process.langid import detect

    text = _read(file)
    r = route(text, source)
    k = score_text(text)
    typer.echo(json.dumps({"content_type": r.content_type, "prose_fraction": r.prose_fraction,
                           "code_fraction": r.code_fraction, "has_ids": r.has_security_ids,
                           "lang": detect(r.prose, k=3) if r.prose else {},
                           "keywords": {"score": k.weighted, "density": k.density, "hits": k.hits},
                           "prose": r.prose[:500]}, indent=2))


@app.command("pii")
def pii_cmd(file: str = typer.Argument(..., help="text file ('-' for stdin)")) -> None:
    """Print the text with PII replaced by typed placeholders (IOCs kept)."""
    from secfoundry.corpus.process.pii import PIIScrubber

    text, counts = PIIScrubber().scrub(_read(file))
    typer.echo(text)
    typer.echo(json.dumps(dict(counts)), err=True)
