"""CTIBench (Alam et al., NeurIPS 2024 Datasets & Benchmarks; CC BY-NC-SA 4.0).

Over 400 lines on purpose: one file per benchmark family, and the six CTIBench tasks share
one loader, one prompt convention and the official parsers (split, they would import each other).

Six tasks over TSV files with a ``Prompt`` column (the authors' exact prompt) and ``GT``:

* ``ctibench-mcq`` (2500): ATT&CK/CAPEC/... knowledge, 4 options;
* ``ctibench-rcm`` (1000) and ``ctibench-rcm-2021`` (1000): CVE description -> CWE;
* ``ctibench-vsp`` (1000): CVE description -> CVSS v3.1 vector;
* ``ctibench-ate`` (60): threat description -> ATT&CK technique ids;
* ``ctibench-taa`` (50): report with the actor masked -> threat actor. ``cti-taa.tsv`` has no
  GT column: the gold names are the GT column of ``responses/cti-taa-responses.tsv``, same
  row order.

Official protocol (the authors' evaluation notebook): system prompt below; MCQ answers are the
last line's letter (``X`` marks a refusal and counts as a wrong but valid answer), accuracy over
valid answers; RCM takes the last ``CWE-\\d+``, accuracy over answers that are a CWE id; VSP is
the mean absolute deviation between the CVSS base scores of predicted and gold vectors over
vectors that parse (a bare vector gets the ``CVSS:3.0/`` prefix, as theirs did); TAA counts an
answer as correct when it is linked to the gold actor through the alias graph, plausible
through alias + related-group links, over all 50 reports.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from secfoundry.core.errors import InputError
from secfoundry.eval import metrics, parsing
from secfoundry.eval import protocols as P
from secfoundry.eval.benchmarks import register
from secfoundry.eval.benchmarks._io import need_letter, read_json, read_tsv
from secfoundry.eval.benchmarks.base import BenchmarkTask, INSTRUCT_TOKENS, MCQTask
from secfoundry.eval.task import Item, Parsed, Protocol, Request, Response

SYSTEM = "You are a cybersecurity expert specializing in cyberthreat intelligence."
LICENSE = "CC BY-NC-SA 4.0"
URL = "https://github.com/xashru/cti-bench"

_MCQ_INTRO = ("You are given a multiple-choice question (MCQ) from a Cyber Threat Intelligence (CTI) knowledge "
              "benchmark dataset. Your task is to choose the best option among the four provided. Return your "
              "answer as a single uppercase letter: A, B, C, or D.")
_MCQ_OUTRO = ("**Important:** The last line of your answer should contain only the single letter corresponding "
              "to the best option, with no additional text. ")


def mcq_prompt(question: str, options: dict[str, str]) -> str:
    """The CTIBench MCQ prompt template, used for permuted options. It equals the ``Prompt``
    column up to whitespace (the column kept stray spaces of the source cells); an empty
    option is written "nan", as the authors' pandas-built prompts show it."""
    opts = " ".join(f"{k}) {v if str(v).strip() else 'nan'}" for k, v in options.items())
    return f"{_MCQ_INTRO}  **Question:** {question}  **Options:** {opts}  {_MCQ_OUTRO}"


def _norm_space(s: str) -> str:
    return " ".join(s.split())


@register("ctibench-mcq")
class CTIBenchMCQ(MCQTask):
    name = "ctibench-mcq"
    family = "ctibench"
    license = LICENSE
    url = URL
    title = "CTIBench CTI-MCQ"
    data_files = ("cti-mcq",)
    official_denominator = "valid"
    official_system = SYSTEM
    official_tokens = 1024

    def load(self, data_dir: Path | None = None) -> list[Item]:
        path = self.path("cti-mcq", data_dir)
        cols = ["URL", "Question", "Option A", "Option B", "Option C", "Option D", "Prompt", "GT"]
        items = []
        for i, row in enumerate(read_tsv(path, cols), start=1):
            for c in ("Question", "Prompt"):
                if not row[c].strip():
                    raise InputError("empty value", file=str(path), row=i, field=c)
            # One gold is a lower-case "b" (row 109); the authors' scorer upper-cased it. Five
            # questions have an empty option (their prompt shows "nan"); kept as published.
            gold = need_letter(row["GT"], "ABCD", path, i, "GT")
            options = {k: row[f"Option {k}"] for k in "ABCD"}
            items.append(Item(str(i - 1), row["Question"], gold, options, prompt=row["Prompt"],
                              meta={"url": row["URL"]}))
        return items

    def official_prompt(self, item: Item) -> tuple[str | None, str]:
        return SYSTEM, item.prompt or mcq_prompt(item.question, item.options)

    def official_parse(self, text: str | None) -> str | None:
        return parsing.ctibench_mcq_letter(text)

    def parse_prediction(self, item: Item, answer: str | None, protocol: Protocol) -> Parsed:
        # Authors' notebook: upper-case, valid iff one of A-D or X (X = refusal: valid, wrong).
        ans = (answer or "").strip().upper()
        ok = ans in ("A", "B", "C", "D", "X")
        return Parsed(ans if ok else None, ans if ok else None, ok)


class _CTIGenTask(BenchmarkTask):
    """Free-text CTIBench tasks (RCM, VSP, ATE, TAA): Prompt column in, one answer out."""

    family = "ctibench"
    license = LICENSE
    url = URL
    key = ""  # data file key (also the task's only data file unless ``data_files`` says otherwise)
    gold_col = "GT"
    text_col = "Description"
    faith_header = ""
    shot_question = "Description"  # label of the input in few-shot blocks
    shot_answer = "Answer"
    base_tokens = 32
    max_shots = 5  # TAA reports are too long for 5 shots in any common context window

    def __init_subclass__(cls, **kw: Any) -> None:
        super().__init_subclass__(**kw)
        if cls.key and "data_files" not in cls.__dict__:
            cls.data_files = (cls.key,)

    def n_shots(self, protocol: Protocol) -> int:
        if protocol.mode == "logprob":
            raise ValueError(f"{self.name}: --mode logprob applies to multiple-choice benchmarks only")
        if protocol.name != "faith":
            return 0
        return min(self.max_shots, P.default_shots(protocol.shots, protocol.instruct))

    def gold_of(self, row: dict[str, str], path: Path, i: int) -> Any:
        raise NotImplementedError

    def load(self, data_dir: Path | None = None) -> list[Item]:
        path = self.path(self.key, data_dir)
        rows = read_tsv(path, ["URL", self.text_col, "Prompt"] + ([self.gold_col] if self.gold_col else []))
        items = []
        for i, row in enumerate(rows, start=1):
            for c in (self.text_col, "Prompt"):
                if not row[c].strip():
                    raise InputError("empty value", file=str(path), row=i, field=c)
            items.append(Item(str(i - 1), row[self.text_col], self.gold_of(row, path, i), prompt=row["Prompt"],
                              meta={"url": row["URL"], **{k: v for k, v in row.items()
                                                          if k not in ("URL", "Prompt", self.text_col, "GT")}}))
        return items

    def gold_text(self, item: Item) -> str:
        return str(item.gold)

    def requests(self, items: list[Item], protocol: Protocol, trial: int, shots_pool: list[Item]) -> list[Request]:
        shots = self.draw_shots(shots_pool, protocol, trial)
        shot_ids = {s.id for s in shots}
        out = []
        base_faith = protocol.name == "faith" and (not protocol.instruct or shots)
        prefix = ""
        if base_faith:
            blocks = [f"{self.shot_question}: {_norm_space(s.question)}\n{self.shot_answer}: {self.gold_text(s)}"
                      for s in shots]
            prefix = P.fewshot_prefix(blocks, self.faith_header)
        for item in items:
            if item.id in shot_ids:
                continue
            if protocol.name == "official":
                prompt = P.chat(SYSTEM, item.prompt) if protocol.instruct else P.as_text(SYSTEM, item.prompt)
                out.append(Request(item.id, "generate", prompt, gen=self.gen(protocol, INSTRUCT_TOKENS, trial=trial)))
            elif base_faith:
                out.append(Request(item.id, "generate",
                                   f"{self.shot_question}: {_norm_space(item.question)}\n{self.shot_answer}:",
                                   prefix=prefix, gen=self.gen(protocol, self.base_tokens, ["\n"], trial=trial)))
            else:
                out.append(Request(item.id, "generate", P.chat(None, item.prompt),
                                   gen=self.gen(protocol, INSTRUCT_TOKENS, trial=trial)))
        return out


def _dedup_descriptions(items: list[Item]) -> list[Item]:
    seen: set[str] = set()
    out = []
    for it in items:
        k = _norm_space(it.question).lower()
        if k not in seen:
            seen.add(k)
            out.append(it)
    return out


class _RCM(_CTIGenTask):
    kind = "rcm"
    title = "CTIBench CTI-RCM"
    faith_header = "The following are CVE descriptions and the CWE weakness each one maps to.\n\n"
    shot_question = "CVE Description"
    shot_answer = "CWE"
    base_tokens = 12

    def gold_of(self, row: dict[str, str], path: Path, i: int) -> str:
        g = row["GT"].strip().upper()
        if not re.fullmatch(r"CWE-\d+", g):
            raise InputError(f"gold {row['GT']!r} is not a CWE id", file=str(path), row=i, field="GT")
        return g

    def eligible(self, items: list[Item], protocol: Protocol) -> list[Item]:
        # FAITH drops repeated CVE descriptions (same text, sometimes different CWE labels).
        return _dedup_descriptions(items) if protocol.name == "faith" else items

    def parse(self, item: Item, request: Request, response: Response, protocol: Protocol) -> Parsed:
        if response.error:
            return Parsed(meta={"error": response.error})
        if protocol.name == "official":
            ans = parsing.last_cwe(response.text)
            return Parsed(ans, ans, ans is not None)
        found = parsing.all_cwes(response.text)
        distinct = set(found)
        # A CWE counts only if every CWE in the answer agrees (no hedging over several).
        proper = found[0] if len(distinct) == 1 else None
        lenient = found[-1] if found else None
        return Parsed(proper, lenient, proper is not None, {"cwes": sorted(distinct)} if len(distinct) > 1 else {})

    def parse_prediction(self, item: Item, answer: str | None, protocol: Protocol) -> Parsed:
        # Authors' notebook: upper-case; valid iff it starts with "CWE-"; correct iff equal to GT.
        ans = (answer or "").strip().upper()
        ok = ans.startswith("CWE-")
        return Parsed(ans if ok else None, ans if ok else None, ok)

    def score(self, items: list[Item], parsed: list[Parsed], protocol: Protocol) -> dict[str, Any]:
        correct = [p.answer is not None and p.answer.upper() == str(i.gold).upper() for i, p in zip(items, parsed)]
        lenient = [p.lenient is not None and p.lenient.upper() == str(i.gold).upper() for i, p in zip(items, parsed)]
        over = "valid" if protocol.name == "official" else "all"
        return metrics.accuracy_scores(correct, [p.valid for p in parsed], over=over, lenient=lenient,
                                       seed=protocol.seed)


@register("ctibench-rcm")
class CTIBenchRCM(_RCM):
    name = "ctibench-rcm"
    key = "cti-rcm"


@register("ctibench-rcm-2021")
class CTIBenchRCM2021(_RCM):
    name = "ctibench-rcm-2021"
    key = "cti-rcm-2021"
    title = "CTIBench CTI-RCM (2021 CVEs)"


@register("ctibench-vsp")
class CTIBenchVSP(_CTIGenTask):
    name = "ctibench-vsp"
    kind = "vsp"
    title = "CTIBench CTI-VSP"
    key = "cti-vsp"
    headline = "mad"
    higher_is_better = False  # official (MAD); the faith score (1 - |d|/10) is higher-better
    faith_header = "The following are CVE descriptions and their CVSS v3.1 base vectors.\n\n"
    shot_question = "CVE Description"
    shot_answer = "CVSS v3.1 vector"
    base_tokens = 48
    # The authors prefixed bare vectors with CVSS:3.0/ (3.0 and 3.1 base scores differ only by
    # the round-up rule; on the published answers both give the same MAD).
    bare_prefix = "CVSS:3.0/"

    def gold_of(self, row: dict[str, str], path: Path, i: int) -> str:
        g = row["GT"].strip()
        if metrics.cvss_base_score(g) is None:
            raise InputError(f"gold {g!r} is not a CVSS v3 vector", file=str(path), row=i, field="GT")
        return g

    def _parsed(self, vector: str | None) -> Parsed:
        score = metrics.cvss_base_score(vector, self.bare_prefix) if vector else None
        if score is None:
            return Parsed(meta={"vector": vector} if vector else {})
        return Parsed(vector, vector, True, {"base_score": score})

    def parse(self, item: Item, request: Request, response: Response, protocol: Protocol) -> Parsed:
        if response.error:
            return Parsed(meta={"error": response.error})
        return self._parsed(parsing.cvss_vector(response.text))

    def parse_prediction(self, item: Item, answer: str | None, protocol: Protocol) -> Parsed:
        return self._parsed((answer or "").strip() or None)

    def score(self, items: list[Item], parsed: list[Parsed], protocol: Protocol) -> dict[str, Any]:
        n, n_valid = len(items), sum(p.valid for p in parsed)
        devs, per_item = [], []
        for it, p in zip(items, parsed):
            gold = metrics.cvss_base_score(str(it.gold), self.bare_prefix)
            if p.valid and gold is not None:
                d = abs(p.meta["base_score"] - gold)
                devs.append(d)
                per_item.append(1.0 - d / 10.0)
            else:
                per_item.append(0.0)  # unparseable: score 0 (FAITH)
        mad = metrics.summarize(devs, percent=False, seed=protocol.seed)
        faith = metrics.summarize(per_item, seed=protocol.seed)
        out = metrics.base_dict(n, n_valid)
        out.update(mad=mad["value"], mad_stderr=mad["stderr"], mad_ci95=mad["ci95"],
                   vsp_score=faith["value"], vsp_score_stderr=faith["stderr"], vsp_score_ci95=faith["ci95"])
        if protocol.name == "official":
            out.update(score=mad["value"], stderr=mad["stderr"], ci95=mad["ci95"], higher_is_better=False)
        else:
            out.update(score=faith["value"], stderr=faith["stderr"], ci95=faith["ci95"], higher_is_better=True)
        return out


@register("ctibench-ate")
class CTIBenchATE(_CTIGenTask):
    name = "ctibench-ate"
    kind = "ate"
    title = "CTIBench CTI-ATE"
    key = "cti-ate"
    headline = "micro_f1"
    faith_header = "The following are threat descriptions and the MITRE ATT&CK technique IDs they show.\n\n"
    shot_question = "Text"
    shot_answer = "Techniques"
    base_tokens = 64

    def gold_of(self, row: dict[str, str], path: Path, i: int) -> list[str]:
        ids = parsing.gold_attack_ids(row["GT"])
        if not ids:
            raise InputError(f"gold {row['GT']!r} has no ATT&CK technique id", file=str(path), row=i, field="GT")
        return sorted(ids)

    def gold_text(self, item: Item) -> str:
        return ", ".join(item.gold)

    def parse(self, item: Item, request: Request, response: Response, protocol: Protocol) -> Parsed:
        if response.error:
            return Parsed(meta={"error": response.error})
        ids = parsing.attack_ids(response.text)
        return Parsed(sorted(ids) if ids else None, sorted(ids) if ids else None, bool(ids))

    def parse_prediction(self, item: Item, answer: str | None, protocol: Protocol) -> Parsed:
        ids = parsing.attack_ids(answer, last_line=False)
        return Parsed(sorted(ids) if ids else None, sorted(ids) if ids else None, bool(ids))

    def score(self, items: list[Item], parsed: list[Parsed], protocol: Protocol) -> dict[str, Any]:
        preds = [set(p.answer or []) for p in parsed]
        golds = [set(i.gold) for i in items]
        s = metrics.set_scores(preds, golds)
        # Bootstrap over items (resampling whole items) for the micro-F1 headline.
        se, lo, hi = metrics.bootstrap_stat(
            len(items), lambda idx: metrics.set_scores([preds[i] for i in idx], [golds[i] for i in idx]).micro_f1,
            n_boot=500, seed=protocol.seed)
        out = metrics.base_dict(len(items), sum(p.valid for p in parsed))
        out.update(score=metrics.pct(s.micro_f1), micro_f1=metrics.pct(s.micro_f1), macro_f1=metrics.pct(s.macro_f1),
                   sample_f1=metrics.pct(s.sample_f1), stderr=metrics.pct(se), ci95=[metrics.pct(lo), metrics.pct(hi)],
                   exact_match=metrics.pct(s.exact), jaccard=metrics.pct(s.jaccard),
                   micro_precision=metrics.pct(s.micro_precision), micro_recall=metrics.pct(s.micro_recall))
        return out


@register("ctibench-taa")
class CTIBenchTAA(_CTIGenTask):
    name = "ctibench-taa"
    kind = "taa"
    title = "CTIBench CTI-TAA"
    key = "cti-taa"
    data_files = ("cti-taa", "cti-taa-responses", "cti-alias", "cti-related")
    headline = "correct"
    gold_col = ""
    text_col = "Text"
    faith_header = "The following are threat reports with the actor masked, and the actor responsible.\n\n"
    shot_question = "Report"
    shot_answer = "Threat actor"
    max_shots = 0  # reports average ~22k characters: zero-shot even for base models
    _graph: metrics.ActorGraph | None = None
    _data_dir: Path | None = None

    def load(self, data_dir: Path | None = None) -> list[Item]:
        items = super().load(data_dir)
        gt_path = self.path("cti-taa-responses", data_dir)
        gt_rows = read_tsv(gt_path, ["GT"])
        if len(gt_rows) != len(items):
            raise InputError(f"has {len(gt_rows)} rows but {self.path(self.key, data_dir).name} has {len(items)}",
                             file=str(gt_path), field="GT")
        for i, (item, row) in enumerate(zip(items, gt_rows), start=1):
            if not row["GT"].strip():
                raise InputError("empty value", file=str(gt_path), row=i, field="GT")
            item.gold = row["GT"].strip()
        self._data_dir = data_dir
        self._graph = None
        self.graph(data_dir)
        return items

    def gold_of(self, row: dict[str, str], path: Path, i: int) -> str:
        return ""  # filled from the responses file in load()

    def graph(self, data_dir: Path | None = None) -> metrics.ActorGraph:
        if self._graph is None:
            dicts = []
            for key in ("cti-alias", "cti-related"):
                p = self.path(key, data_dir if data_dir is not None else self._data_dir)
                d = read_json(p)
                if not isinstance(d, dict) or not all(isinstance(v, list) for v in d.values()):
                    raise InputError("expected an object of name -> list of names", file=str(p))
                dicts.append(d)
            self._graph = metrics.ActorGraph(*dicts)
        return self._graph

    def parse(self, item: Item, request: Request, response: Response, protocol: Protocol) -> Parsed:
        if response.error:
            return Parsed(meta={"error": response.error})
        name = parsing.actor_name(response.text)
        return Parsed(name, name, name is not None)

    def parse_prediction(self, item: Item, answer: str | None, protocol: Protocol) -> Parsed:
        name = (answer or "").strip()
        return Parsed(name or None, name or None, bool(name))

    def score(self, items: list[Item], parsed: list[Parsed], protocol: Protocol) -> dict[str, Any]:
        g = self.graph()
        rel = [g.relation(str(i.gold), p.answer) for i, p in zip(items, parsed)]
        correct = [1.0 if r == "C" else 0.0 for r in rel]
        plaus = [1.0 if r in ("C", "P") else 0.0 for r in rel]
        sc, sp = metrics.summarize(correct, seed=protocol.seed), metrics.summarize(plaus, seed=protocol.seed)
        out = metrics.base_dict(len(items), sum(p.valid for p in parsed))
        out.update(score=sc["value"], correct=sc["value"], stderr=sc["stderr"], ci95=sc["ci95"],
                   score_plausible=sp["value"], correct_plus_plausible=sp["value"],
                   plausible_stderr=sp["stderr"], plausible_ci95=sp["ci95"],
                   n_correct=int(sum(correct)), n_plausible=int(sum(plaus) - sum(correct)))
        return out
