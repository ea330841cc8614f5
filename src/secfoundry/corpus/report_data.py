"""What the corpus report shows, read from what the engine already wrote to a run directory.

Sources of truth, all written by ``corpus/engine``:

* ``recipe.yaml`` — the planned phases (so phases not yet run show as *pending*);
* ``<phase>/_plan.json`` + ``markers/*.json`` — per partition: documents/chars in and out,
  drops by reason, per-step in/out, documents per source (the commit points, so a partial or
  resumed run is reported exactly as far as it got);
* ``<phase>/_SUCCESS`` / ``summary.json`` — phase wall time;
* ``<phase>/data/*.parquet`` — kept documents (bytes, lengths, languages, per-source counts);
* ``<phase>/excluded/*.parquet`` — dropped documents with ``step`` and ``reason`` (examples);
* the pack step's shard ``manifest.json`` — real per-source token counts.

Reading Parquet text columns is the only costly part, so each file's profile is cached under
``RUN/.report_cache`` keyed by file name, size and mtime: re-reporting a growing run only reads
the partitions committed since.
"""

from __future__ import annotations

import json
import math
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


from secfoundry.corpus.engine.summary import add_marker
from secfoundry.corpus.report_profiles import DataProfile, ExcludedProfile, ProfileCache


# ------------------------------------------------------------------------------------ run model
@dataclass
class PhaseReport:
    dirname: str
    stage: str
    steps: list[str]
    status: str  # "done" | "partial" | "pending"
    partitions: int = 0
    partitions_done: int = 0
    docs_in: int = 0
    docs_out: int = 0
    chars_in: int = 0
    chars_out: int = 0
    bytes_in: int | None = None  # from the upstream phase's kept documents
    bytes_out: int = 0
    excluded_docs: int = 0
    seconds: float = 0.0
    quarantined: int = 0
    dropped: dict[str, int] = field(default_factory=dict)  # reason key -> documents (markers)
    step_io: dict[str, dict[str, int]] = field(default_factory=dict)  # step -> in/out documents
    # step -> chars_in, chars_out, removed_by_source (dropped documents and cut spans alike)
    step_chars: dict[str, dict[str, Any]] = field(default_factory=dict)
    cuts: dict[str, int] = field(default_factory=dict)  # reason key -> spans cut out of kept documents
    cut_examples: dict[str, list[dict[str, str]]] = field(default_factory=dict)  # reason key -> examples
    by_source: dict[str, int] = field(default_factory=dict)  # kept documents per source (markers)
    input_errors: dict[str, str] = field(default_factory=dict)
    sampled: tuple[int, int] | None = None  # (partitions profiled, committed) when profiles are extrapolated
    out: DataProfile = field(default_factory=DataProfile)
    excluded: ExcludedProfile = field(default_factory=ExcludedProfile)

    @property
    def docs_per_s(self) -> float:
        return self.docs_in / self.seconds if self.seconds > 0 else 0.0


@dataclass
class TokenInfo:
    """Per-source tokens: real (shard manifest) or estimated from characters."""

    measured: bool
    chars_per_token: float
    manifest_path: str = ""
    tokenizer: str = ""
    seq_len: int = 0
    # source -> {"docs", "train", "test", "tail", "seqs", "licenses", "versions"} (tokens)
    sources: dict[str, dict[str, Any]] = field(default_factory=dict)

    @property
    def total(self) -> int:
        return sum(v["train"] + v["test"] + v.get("tail", 0) for v in self.sources.values())


@dataclass
class RunReport:
    run_dir: str
    recipe: str
    phases: list[PhaseReport]
    tokens: TokenInfo
    lang_from: str  # "langid" (the pipeline's metadata) | "sample" (detected by the report) | ""
    langs: dict[str, int]
    collected_by_source: dict[str, int]
    warnings: list[str] = field(default_factory=list)

    def stages(self) -> list[tuple[str, list[PhaseReport]]]:
        out: dict[str, list[PhaseReport]] = {}
        for p in self.phases:
            out.setdefault(p.stage, []).append(p)
        return list(out.items())


def _planned_phases(run_dir: Path, warnings: list[str]) -> tuple[str, list[tuple[str, str, list[str]]]]:
    """(recipe name, [(dirname, stage, step names)]) from the run's recipe.yaml; existing phase
    directories not in the recipe (stale) are left out; no recipe: the directories on disk."""
    on_disk = sorted(d.name for d in run_dir.iterdir() if d.is_dir() and d.name[:2].isdigit()
                     and (d / "_plan.json").exists())
    rpath = run_dir / "recipe.yaml"
    if rpath.exists():
        try:
            from secfoundry.corpus.engine.recipe import Recipe
            from secfoundry.corpus.engine.runner import plan_phases

            recipe = Recipe.from_yaml(rpath)
            return recipe.name, [(p.dirname, p.stage, [s.step for s in p.steps] or (["inputs"] if p.index == 0 else []))
                                 for p in plan_phases(recipe)]
        except Exception as e:  # a recipe naming a step this install lacks: report what is on disk
            warnings.append(f"recipe.yaml could not be planned ({type(e).__name__}: {e}); showing phases on disk")
    phases = []
    for name in on_disk:
        plan = json.loads((run_dir / name / "_plan.json").read_text())
        steps = [s["step"] for s in plan.get("steps", [])] or (["inputs"] if name.startswith("00") else [])
        stage = name.split("-", 2)[1] if "-" in name else name
        phases.append((name, stage, steps))
    return "", phases


def _find_manifest(run_dir: Path) -> Path | None:
    for st in sorted(run_dir.glob("[0-9]*/_state/pack.json")):
        try:
            out = Path(json.loads(st.read_text())["out"])
        except (json.JSONDecodeError, KeyError, OSError):
            continue
        if (out / "manifest.json").exists():
            return out / "manifest.json"
    p = run_dir / "shards" / "manifest.json"
    return p if p.exists() else None


def _tokens(run_dir: Path, final: PhaseReport | None, pack_input_chars: int | None) -> TokenInfo:
    man = _find_manifest(run_dir)
    if man is not None:
        d = json.loads(man.read_text())
        info = TokenInfo(measured=True, chars_per_token=4.0, manifest_path=str(man), tokenizer=str(d.get("tokenizer", "")),
                         seq_len=int(d.get("seq_len", 0)))
        for split, srcs in (d.get("splits") or {}).items():
            for src, v in srcs.items():
                cur = info.sources.setdefault(src, {"docs": 0, "train": 0, "test": 0, "tail": 0, "seqs": 0,
                                                    "licenses": set(), "versions": set()})
                cur["docs"] += int(v.get("n_docs", 0))
                cur[split if split in ("train", "test") else "train"] += int(v.get("n_tokens", 0))
                cur["tail"] += int(v.get("dropped_tail_tokens", 0))
                cur["seqs"] += int(v.get("n_seqs", 0))
                cur["licenses"].update(v.get("licenses", []))
                cur["versions"].update(v.get("versions", []))
        for v in info.sources.values():
            v["licenses"], v["versions"] = sorted(v["licenses"]), sorted(v["versions"])
        if pack_input_chars and info.total:
            info.chars_per_token = pack_input_chars / info.total  # measured ratio, used for estimates
        return info
    info = TokenInfo(measured=False, chars_per_token=4.0)
    if final is not None:
        for src, v in final.out.sources.items():
            est = round(v["chars"] / 4)
            info.sources[src] = {"docs": v["docs"], "train": est, "test": 0, "tail": 0, "seqs": 0,
                                 "licenses": [], "versions": []}
    return info


def _sample_langs(paths: list[Path], n: int = 1000) -> dict[str, int]:
    """Language of up to ``n`` documents, detected here, when no langid step annotated them."""
    import pyarrow.parquet as pq

    try:
        from secfoundry.corpus.process.langid import detect
    except Exception:
        return {}
    counts: Counter[str] = Counter()
    seen = 0
    per_file = max(1, math.ceil(n / max(1, len(paths))))
    for p in paths:
        texts = pq.read_table(p, columns=["text"]).column("text").to_pylist()
        step = max(1, len(texts) // per_file)
        for t in texts[::step][:per_file]:
            try:
                scores = detect(t or "")
            except Exception:
                return {}
            counts[max(scores, key=scores.get) if scores else "und"] += 1
            seen += 1
            if seen >= n:
                return dict(counts)
    return dict(counts)


def _cut_examples(pr: PhaseReport, cut_dir: Path, files: list[str], per_reason: int = 3) -> None:
    """The first few spans cut for each reason (``<phase>/cuts/*.parquet``, written by the engine
    from ``step.record_cut``): document, removed text, and the step's evidence."""
    import pyarrow.parquet as pq

    from secfoundry.corpus.engine.workers import reason_key

    for f in files:
        if all(len(v) >= per_reason for v in pr.cut_examples.values()) and len(pr.cut_examples) >= len(pr.cuts):
            return
        path = cut_dir / f
        if not path.exists():
            continue
        for r in pq.read_table(path).to_pylist():
            rk = reason_key(r.get("step") or "", r.get("reason") or "")
            cur = pr.cut_examples.setdefault(rk, [])
            if len(cur) >= per_reason:
                continue
            meta = json.loads(r.get("metadata") or "{}")
            why = " · ".join(str(meta[k]) for k in ("item", "why") if meta.get(k))
            cur.append({"id": str(meta.get("cut_of") or r.get("id")), "source": r.get("source") or "",
                        "url": r.get("url") or "", "reason": f"{r.get('reason')}" + (f" ({why})" if why else ""),
                        "text": " ".join(str(r.get("text") or "")[:400].split())[:200]})


def _sample(markers: list[dict[str, Any]], k: int | None) -> list[dict[str, Any]]:
    if k is None or len(markers) <= k:
        return markers
    step = len(markers) / k
    return [markers[int(i * step)] for i in range(k)]  # evenly spaced, deterministic


def collect_run(run_dir: str | Path, *, use_cache: bool = True, sample_languages: bool = True,
                max_partitions: int | None = None) -> RunReport:
    """Read everything the report needs from a (possibly partial) run directory.

    Counts from the markers (documents, characters, drops) are always exact. Profiles that read
    Parquet (bytes, lengths, languages, per-source sizes, drop examples) cover every partition,
    or with ``max_partitions`` an evenly spaced sample of each phase's partitions, extrapolated
    by documents and flagged in the report (for very large runs)."""
    from secfoundry.corpus.engine.storage import PhaseStore

    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        from secfoundry.core.errors import InputError

        raise InputError("not a run directory", file=str(run_dir))
    warnings: list[str] = []
    recipe, planned = _planned_phases(run_dir, warnings)
    if not planned:
        from secfoundry.core.errors import InputError

        raise InputError("no phase directories and no recipe.yaml: not a corpus run directory", file=str(run_dir))
    cache = ProfileCache(run_dir, enabled=use_cache)
    seconds_from_summary: dict[str, float] = {}
    if (run_dir / "summary.json").exists():
        try:
            for ph in json.loads((run_dir / "summary.json").read_text()).get("phases", []):
                if ph.get("seconds") and not ph.get("skipped"):
                    seconds_from_summary[ph["phase"]] = float(ph["seconds"])
        except (json.JSONDecodeError, OSError, TypeError):
            warnings.append("summary.json is unreadable; timings come from phase _SUCCESS files")
    phases: list[PhaseReport] = []
    prev_bytes: int | None = None
    for dirname, stage, steps in planned:
        pr = PhaseReport(dirname=dirname, stage=stage, steps=steps, status="pending")
        store = PhaseStore(run_dir / dirname)
        plan = store.load_plan() if store.root.is_dir() else None
        if plan is None:
            phases.append(pr)
            prev_bytes = None
            continue
        keys = list(plan.get("keys", []))
        wanted = set(keys)
        markers = [m for m in store.markers() if m.get("key") in wanted]
        pr.partitions, pr.partitions_done = len(keys), len(markers)
        pr.status = "done" if store.complete else ("partial" if markers or store.state_dir.exists() else "pending")
        dropped: Counter[str] = Counter()
        by_source: Counter[str] = Counter()
        for m in markers:
            add_marker(pr, m, dropped, by_source)
            for name, io in (m.get("steps") or {}).items():
                cur = pr.step_io.setdefault(name, {"in": 0, "out": 0})
                cur["in"] += int(io.get("in", 0))
                cur["out"] += int(io.get("out", 0))
                if "chars_in" in io:
                    ch = pr.step_chars.setdefault(name, {"chars_in": 0, "chars_out": 0, "removed_by_source": Counter()})
                    ch["chars_in"] += int(io.get("chars_in", 0))
                    ch["chars_out"] += int(io.get("chars_out", 0))
                    ch["removed_by_source"].update(io.get("chars_removed_by_source") or {})
                    ch["cuts"] = ch.get("cuts", 0) + int(io.get("cuts", 0))
            for rk, n in (m.get("cuts") or {}).items():
                pr.cuts[rk] = pr.cuts.get(rk, 0) + int(n)
            _cut_examples(pr, store.root / "cuts", m.get("cut_files") or [])
            if m.get("error"):
                pr.input_errors[m["key"]] = str(m["error"])
        chosen = _sample(markers, max_partitions)
        for m in chosen:
            for f in m.get("files", []):
                if (store.data_dir / f).exists():
                    pr.out.merge(cache.data(store.data_dir / f))
            for f in m.get("excluded_files", []):
                if (store.excluded_dir / f).exists():
                    pr.excluded.merge(cache.excluded(store.excluded_dir / f))
        if len(chosen) < len(markers):
            pr.sampled = (len(chosen), len(markers))
            n_out = sum(int(m.get("docs_out", 0)) for m in chosen)
            n_drop = sum(int(m.get("docs_in", 0)) - int(m.get("docs_out", 0)) for m in chosen)
            pr.out.scale(pr.docs_out / n_out if n_out else 0.0)
            pr.excluded.scale((pr.docs_in - pr.docs_out) / n_drop if n_drop > 0 else 0.0)
        pr.dropped, pr.by_source = dict(dropped.most_common()), dict(by_source.most_common())
        pr.bytes_out = pr.out.bytes
        pr.excluded_docs = pr.excluded.docs
        # bytes in = upstream kept bytes (when the upstream phase is complete and this one read all of it)
        pr.bytes_in = prev_bytes if (prev_bytes is not None and pr.status == "done") else None
        if pr.bytes_in is None and pr.status == "done" and dirname.startswith("00"):
            pr.bytes_in = pr.bytes_out + pr.excluded.bytes
        success = store.root / "_SUCCESS"
        if dirname in seconds_from_summary:
            pr.seconds = seconds_from_summary[dirname]
        elif success.exists():
            try:
                pr.seconds = float(json.loads(success.read_text()).get("seconds", 0.0))
            except (json.JSONDecodeError, OSError, TypeError, ValueError):
                pass
        if pr.input_errors:
            warnings.append(f"{dirname}: {len(pr.input_errors)} input(s) failed")
        phases.append(pr)
        prev_bytes = pr.bytes_out if pr.status == "done" else None
    done = [p for p in phases if p.status != "pending" and p.partitions_done]
    final = done[-1] if done else None
    pack_in = None
    for i, p in enumerate(phases):
        if "pack" in p.steps[:1] and i > 0 and phases[i - 1].status == "done":
            pack_in = phases[i - 1].chars_out
    tokens = _tokens(run_dir, final, pack_in)
    langs: dict[str, int] = {}
    lang_from = ""
    if final is not None and final.out.langs:
        langs, lang_from = dict(sorted(final.out.langs.items(), key=lambda kv: -kv[1])), "langid"
    elif final is not None and sample_languages:
        store = PhaseStore(run_dir / final.dirname)
        files = [f for f in store.committed_files() if f.exists()]
        langs = _sample_langs(files)
        lang_from = "sample" if langs else ""
    collected = phases[0].by_source if phases and phases[0].dirname.startswith("00") else {}
    return RunReport(run_dir=str(run_dir), recipe=recipe, phases=phases, tokens=tokens, lang_from=lang_from,
                     langs=langs, collected_by_source=dict(collected), warnings=warnings)


def source_table(rep: RunReport) -> list[dict[str, Any]]:
    """Per source: collected, after each stage, final (originals and with upsampled copies),
    keep rate (originals kept / collected), dropped by reason, tokens."""
    stage_out: list[tuple[str, PhaseReport]] = []
    for stage, phs in rep.stages():
        done = [p for p in phs if p.status == "done"]
        if done and done[-1] is phs[-1]:
            stage_out.append((stage, phs[-1]))
    final = next((p for p in reversed(rep.phases) if p.status == "done"), None)
    drops: dict[str, Counter[str]] = defaultdict(Counter)
    for p in rep.phases:
        for k, v in p.excluded.counts.items():
            step, rk, src = k.split("|", 2)
            drops[src][rk] += v[0]
    sources = sorted(set(rep.collected_by_source) | (set(final.out.sources) if final else set()) | set(drops))
    rows = []
    for s in sources:
        collected = rep.collected_by_source.get(s, 0)
        row: dict[str, Any] = {"source": s, "collected": collected}
        for stage, ph in stage_out:
            row[stage] = ph.out.sources.get(s, {}).get("docs", ph.by_source.get(s, 0))
        if final is not None:
            v = final.out.sources.get(s, {})
            row["final_docs"] = v.get("docs", 0)
            row["final_originals"] = v.get("originals", 0)
            row["keep_rate"] = (v.get("originals", 0) / collected) if collected else None
        tok = rep.tokens.sources.get(s.replace("/", "_"))
        row["tokens"] = (tok["train"] + tok["test"]) if tok else None
        row["dropped"] = dict(drops[s].most_common())
        rows.append(row)
    return rows
