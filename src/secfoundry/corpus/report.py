"""The corpus run report: ``RUN/report.html`` (self-contained) and ``RUN/report.md``.

    from secfoundry.corpus.report import write_report
    html_path = write_report("runs/corpus-quickstart")      # also: secfoundry corpus report RUN

Shows documents / bytes / tokens in and out per stage and per phase, per-step document counts,
drop reasons with examples (from the exclusion outputs), per-source keep rates and token counts
(from the packed shard manifest when the run packed, else estimated as characters / 4 and
labelled so), language and length histograms. Works on a partial run: phases not yet run are
listed as pending, a phase in progress shows the partitions committed so far. Everything is read
from what the engine wrote (see ``report_data.py``); nothing is recomputed by the pipeline.
"""

from __future__ import annotations

import datetime as _dt
from pathlib import Path
from typing import Any

from secfoundry.corpus import report_plots
from secfoundry.corpus.report_data import PhaseReport, RunReport, collect_run, source_table
from secfoundry.core.report import Figure, Page, Table, fmt_bytes, fmt_n, fmt_pct, md_table, render_html as render_template

ASSETS = "report_assets"


_n, _bytes, _pct = fmt_n, fmt_bytes, fmt_pct


# ------------------------------------------------------------------------------------ content
def _tokens_of(rep: RunReport, chars: int | None, *, measured: int | None = None) -> str:
    if measured is not None:
        return _n(measured)
    if chars is None:
        return "–"
    return "≈" + _n(round(chars / rep.tokens.chars_per_token))


def _phase_tokens_out(rep: RunReport, p: PhaseReport) -> int | None:
    """Real token count for the phase that packed (its documents are the shards' documents)."""
    return rep.tokens.total if rep.tokens.measured and p.steps[:1] == ["pack"] and p.status == "done" else None


def stage_table(rep: RunReport) -> Table:
    rows = []
    for stage, phs in rep.stages():
        first, last = phs[0], phs[-1]
        started = [p for p in phs if p.status != "pending"]
        status = "done" if all(p.status == "done" for p in phs) else ("partial" if started else "pending")
        if not started:
            rows.append([stage, status, f"{len(phs)}", *["–"] * 8, "–"])
            continue
        out_p = last if last.status != "pending" else started[-1]
        secs = sum(p.seconds for p in phs)
        rows.append([stage, status, f"{len(started)}/{len(phs)}", _n(first.docs_in), _n(out_p.docs_out),
                     _pct(out_p.docs_out, first.docs_in), _bytes(first.bytes_in), _bytes(out_p.bytes_out),
                     _tokens_of(rep, first.chars_in), _tokens_of(rep, out_p.chars_out, measured=_phase_tokens_out(rep, out_p)),
                     f"{secs:,.1f}", f"{first.docs_in / secs:,.0f}" if secs > 0 and status == "done" else "–"])
    note = ("Tokens marked ≈ are estimates: characters / "
            + (f"{rep.tokens.chars_per_token:.2f} (the ratio measured by the pack step on this run)" if rep.tokens.measured
               else "4 (no packed shard manifest in this run)")
            + "; unmarked token counts are the packed shards' own counts. Kept % can exceed 100% where mixing upsamples.")
    return Table("Stages", ["stage", "status", "phases", "docs in", "docs out", "kept", "bytes in", "bytes out",
                            "tokens in", "tokens out", "seconds", "docs/s"], rows, note)


def phase_table(rep: RunReport) -> Table:
    rows = []
    for p in rep.phases:
        if p.status == "pending":
            rows.append([p.dirname, ", ".join(p.steps) or "copy", "pending", "–", *["–"] * 8])
            continue
        rows.append([p.dirname, ", ".join(p.steps) or "copy", p.status, f"{p.partitions_done}/{p.partitions}",
                     _n(p.docs_in), _n(p.docs_out), _pct(p.docs_out, p.docs_in), _bytes(p.bytes_in), _bytes(p.bytes_out),
                     _tokens_of(rep, p.chars_out, measured=_phase_tokens_out(rep, p)), f"{p.seconds:,.1f}",
                     f"{p.docs_per_s:,.0f}" if p.status == "done" and p.seconds else "–"])
    return Table("Phases", ["phase", "steps", "status", "partitions", "docs in", "docs out", "kept", "bytes in",
                            "bytes out", "tokens out", "seconds", "docs/s"], rows,
                 "A stage is split into phases before each global step (dedup, decontamination, mixing, packing). "
                 "Bytes are UTF-8 bytes of the text column; a partial phase counts its committed partitions only.")


def step_table(rep: RunReport) -> Table:
    rows = []
    for p in rep.phases:
        order = {name: i for i, name in enumerate(p.steps)}  # markers store steps in key order
        for name, io in sorted(p.step_io.items(), key=lambda kv: order.get(kv[0], len(order))):
            ch = p.step_chars.get(name)
            chars = ["–", "–", "–"]
            cuts = ch.get("cuts", 0) if ch else 0
            if ch:
                removed = sum(ch["removed_by_source"].values())
                top = sorted(ch["removed_by_source"].items(), key=lambda kv: -kv[1])[:3]
                chars = [_n(removed), _pct(removed, ch["chars_in"]),
                         ", ".join(f"{s} {c:,}" for s, c in top) or "–"]
            rows.append([p.dirname, name, _n(io["in"]), _n(io["out"]), _n(io["in"] - io["out"]), _pct(io["out"], io["in"]),
                         _n(cuts) if cuts else "–", *chars])
    return Table("Steps", ["phase", "step", "docs seen", "docs kept", "dropped", "kept", "spans cut", "chars removed",
                           "of chars in", "chars removed, top sources"], rows,
                 "Documents each step saw (steps routed to some sources only see those) and kept, and the characters "
                 "it removed by dropping documents or cutting spans out of the documents it kept (per source). "
                 "Upsampling steps can keep more than they saw.")


def drop_table(rep: RunReport) -> tuple[Table, list[tuple[str, str, int, list[dict[str, str]]]]]:
    rows, examples = [], []
    for p in rep.phases:
        by_reason: dict[tuple[str, str], list[int]] = {}
        srcs: dict[tuple[str, str], dict[str, int]] = {}
        for k, v in p.excluded.counts.items():
            step, rk, src = k.split("|", 2)
            cur = by_reason.setdefault((step, rk), [0, 0])
            cur[0] += v[0]
            cur[1] += v[2]
            srcs.setdefault((step, rk), {})[src] = srcs.get((step, rk), {}).get(src, 0) + v[0]
        if not by_reason:  # no exclusion output (keep_excluded: false): the markers' counts only
            for rk, n in p.dropped.items():
                by_reason[("", rk)] = [n, -1]
        for (step, rk), (n, nbytes) in sorted(by_reason.items(), key=lambda kv: -kv[1][0]):
            top = sorted(srcs.get((step, rk), {}).items(), key=lambda kv: -kv[1])[:4]
            rows.append([p.dirname, step or "–", rk, _n(n), _pct(n, p.docs_in), _bytes(nbytes) if nbytes >= 0 else "–",
                         ", ".join(f"{s} {c:,}" for s, c in top) or "(no exclusion output)"])
            exs = p.excluded.examples.get(rk, [])
            if exs:
                examples.append((p.dirname, rk, n, exs))
        for rk, n in sorted(p.cuts.items(), key=lambda kv: -kv[1]):  # spans cut out of kept documents
            if p.cut_examples.get(rk):
                examples.append((p.dirname, f"cut · {rk}", n, p.cut_examples[rk]))
    return Table("Drop reasons", ["phase", "step", "reason", "docs", "of phase input", "bytes", "top sources"], rows,
                 "From each phase's exclusion output (excluded/*.parquet, columns step and reason); reasons with "
                 "numeric suffixes (scores) are grouped, the examples keep the full reason."), examples


def source_tables(rep: RunReport) -> tuple[Table, list[dict[str, Any]]]:
    rows = source_table(rep)
    stages = [s for s, phs in rep.stages() if phs and phs[-1].status == "done" and s != "collect"]
    out = []
    for r in rows:
        top = ", ".join(f"{k} {v:,}" for k, v in list(r["dropped"].items())[:3])
        out.append([r["source"], _n(r["collected"]), *[_n(r.get(s)) for s in stages], _n(r.get("final_originals")),
                    _n(r.get("final_docs")), "–" if r.get("keep_rate") is None else f"{100 * r['keep_rate']:.1f}%",
                    ("" if rep.tokens.measured else "≈") + _n(r["tokens"]) if r["tokens"] is not None else "–", top or "–"])
    return Table("Per source", ["source", "collected", *[f"after {s}" for s in stages], "final (originals)",
                                "final (with copies)", "kept", "tokens", "top drop reasons"], out,
                 "Kept = original documents in the last completed phase / documents collected (upsampled copies "
                 "`<id>#r<k>` are not counted as kept documents)."), rows


def token_table(rep: RunReport) -> Table:
    t = rep.tokens
    rows = []
    total = max(1, sum(v["train"] + v["test"] for v in t.sources.values()))
    for src, v in sorted(t.sources.items(), key=lambda kv: -(kv[1]["train"] + kv[1]["test"])):
        est = "" if t.measured else "≈"
        rows.append([src, _n(v["docs"]), est + _n(v["train"]), _n(v["test"]), _pct(v["train"] + v["test"], total),
                     _n(v["seqs"]) if t.measured else "–", _n(v["tail"]) if t.measured else "–",
                     ", ".join(v["licenses"])[:80] or "–", ", ".join(v["versions"])[:60] or "–"])
    if t.measured:
        note = (f"From the packed shard manifest {t.manifest_path} (tokenizer {t.tokenizer}, {t.seq_len}-token rows); "
                "'tail' = tokens of the last partial row per shard, not written.")
    else:
        note = "This run has no packed shards yet: tokens are ESTIMATED as characters / 4 of the last completed phase."
    return Table("Tokens per source", ["source", "docs", "train tokens", "test tokens", "share", "rows", "tail",
                                       "licenses", "versions"], rows, note)


def lang_table(rep: RunReport) -> Table:
    total = max(1, sum(rep.langs.values()))
    rows = [[lg, _n(n), _pct(n, total)] for lg, n in sorted(rep.langs.items(), key=lambda kv: -kv[1])[:25]]
    note = {"langid": "metadata['lang'] written by the langid step on the documents of the last completed phase "
                      "('und' = too little prose to judge, kept).",
            "sample": "No langid step annotated this run: a sample of the last completed phase, detected by the report "
                      "with the same bundled fastText model.",
            "": "No language information."}[rep.lang_from]
    return Table("Languages", ["language", "docs", "share"], rows, note)


def figures(rep: RunReport, rows: list[dict[str, Any]]) -> list[Figure]:
    out = []
    for name, title, fn in (("funnel", "Documents per phase", lambda: report_plots.funnel(rep)),
                            ("keep_rates", "Keep rate per source", lambda: report_plots.keep_rates(rows)),
                            ("tokens", "Tokens per source", lambda: report_plots.tokens_per_source(rep)),
                            ("languages", "Languages", lambda: report_plots.languages(rep)),
                            ("lengths", "Document lengths", lambda: report_plots.length_histograms(rep))):
        png = fn()
        if png:
            out.append(Figure(name, title, png))
    return out


# ------------------------------------------------------------------------------------ renderers
def _overview(rep: RunReport) -> list[tuple[str, str]]:
    done = [p for p in rep.phases if p.status == "done"]
    final = done[-1] if done else None
    first = rep.phases[0]
    secs = sum(p.seconds for p in rep.phases)
    status = f"{len(done)}/{len(rep.phases)} phases complete"
    partial = [p.dirname for p in rep.phases if p.status == "partial"]
    if partial:
        status += f" ({', '.join(partial)} in progress)"
    items = [("run", rep.run_dir), ("recipe", rep.recipe or "–"), ("status", status),
             ("documents collected", _n(first.docs_out) if first.status != "pending" else "–"),
             ("documents out", _n(final.docs_out) if final else "–"),
             ("bytes out", _bytes(final.bytes_out) if final else "–")]
    if rep.tokens.measured:
        train = sum(v["train"] for v in rep.tokens.sources.values())
        test = sum(v["test"] for v in rep.tokens.sources.values())
        items.append(("tokens (packed)", f"{train:,} train + {test:,} test ({rep.tokens.tokenizer})"))
    else:
        est = sum(v["train"] for v in rep.tokens.sources.values())
        items.append(("tokens", f"≈{est:,} (estimated: characters / 4; not packed)"))
    quarantined = sum(p.quarantined for p in rep.phases)
    if quarantined:
        items.append(("quarantined input entries", _n(quarantined)))
    items.append(("wall time (this run's phases)", f"{secs:,.1f} s"))
    items.append(("generated", _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")))
    return items


def render_html(rep: RunReport, tables: list[Table], examples, figs: list[Figure]) -> str:
    """The self-contained page (``corpus/templates/corpus_report.html.j2`` on the core shell)."""
    errs = [(p.dirname, k, e) for p in rep.phases for k, e in p.input_errors.items()]
    return render_template("corpus_report.html.j2", package="secfoundry.corpus",
                           page=Page(f"corpus report: {rep.recipe or rep.run_dir}", "Corpus report"),
                           overview=_overview(rep), warnings=rep.warnings, tables={t.title: t for t in tables},
                           figures={f.name: f for f in figs}, examples=examples, errors=errs)


def render_markdown(rep: RunReport, tables: list[Table], examples, figs: list[Figure]) -> str:
    lines = ["# Corpus report", ""] + [f"- **{k}**: {v}" for k, v in _overview(rep)] + [""]
    if rep.warnings:
        lines += ["> " + w for w in rep.warnings] + [""]
    by_title = {t.title: t for t in tables}
    fig = {f.name for f in figs}

    def img(name: str, title: str) -> list[str]:
        return [f"![{title}]({ASSETS}/{name}.png)", ""] if name in fig else []

    lines += [md_table(by_title["Stages"]), md_table(by_title["Phases"]), *img("funnel", "documents per phase"),
              md_table(by_title["Steps"]), md_table(by_title["Drop reasons"])]
    if examples:
        lines += ["## Drop and cut examples", ""]
        for phase, rk, n, exs in examples:
            lines.append(f"**{phase} · {rk}** ({n:,} docs)")
            lines.append("")
            for e in exs:
                url = f" <{e['url']}>" if e.get("url") else ""
                lines.append(f"- `{e['source']}` `{e['id']}`{url} — _{e['reason'][:200]}_: "
                             f"{e['text'].replace('|', '/').replace('`', chr(39))}")
            lines.append("")
    lines += [md_table(by_title["Per source"]), *img("keep_rates", "keep rate per source"),
              md_table(by_title["Tokens per source"]), *img("tokens", "tokens per source"),
              md_table(by_title["Languages"]), *img("languages", "languages"), *img("lengths", "document lengths")]
    return "\n".join(lines) + "\n"


def build(rep: RunReport) -> tuple[list[Table], list, list[Figure]]:
    drops, examples = drop_table(rep)
    src_tab, rows = source_tables(rep)
    tables = [stage_table(rep), phase_table(rep), step_table(rep), drops, src_tab, token_table(rep), lang_table(rep)]
    return tables, examples, figures(rep, rows)


def write_report(run_dir: str | Path, out: str | Path | None = None, *, use_cache: bool = True,
                 markdown: bool = True, max_partitions: int | None = None) -> Path:
    """Write ``report.html`` (self-contained, plots embedded) and ``report.md`` (+ ``report_assets/``
    PNGs) for a run directory; returns the HTML path. Safe to call on a run in progress.
    ``max_partitions`` bounds the Parquet partitions read per phase (see ``collect_run``)."""
    from secfoundry.corpus.engine.storage import atomic_write_bytes

    run_dir = Path(run_dir)
    rep = collect_run(run_dir, use_cache=use_cache, max_partitions=max_partitions)
    t = rep.tokens
    tail = sum(v.get("tail", 0) for v in t.sources.values())
    if t.measured and t.total and tail / t.total > 0.02:
        empty = sorted(s for s, v in t.sources.items() if v["docs"] and not v["train"] + v["test"])
        rep.warnings.append(f"packing dropped {tail:,} tokens ({100 * tail / t.total:.1f}% of all tokenized) as partial "
                            f"last rows of its shards" + (f"; sources with documents but no full row: {', '.join(empty)}"
                                                          if empty else ""))
    for p in rep.phases:
        if p.sampled:
            rep.warnings.append(f"{p.dirname}: bytes, lengths, languages and per-source sizes extrapolated from "
                                f"{p.sampled[0]} of {p.sampled[1]} partitions (document counts and drops are exact)")
    tables, examples, figs = build(rep)
    html_path = Path(out) if out else run_dir / "report.html"
    atomic_write_bytes(html_path, render_html(rep, tables, examples, figs).encode("utf-8"))
    if markdown:
        md_path = html_path.with_suffix(".md")
        for f in figs:
            atomic_write_bytes(md_path.parent / ASSETS / f"{f.name}.png", f.png)
        atomic_write_bytes(md_path, render_markdown(rep, tables, examples, figs).encode("utf-8"))
    return html_path
