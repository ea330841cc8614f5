"""The Sigma rules the detector runs: the KB's ``sigma-rule`` records, with their YAML.

The KB keeps each rule's metadata (title, level, ATT&CK tags, false positives) but not its
detection logic, so the YAML is read from the same Sigma archive the KB was synced from:
``--rules`` (a directory or ``.tar.gz``) > ``SECFOUNDRY_MIRROR/sigma`` > the mirror path the KB
recorded at sync time. With a KB, only rules it knows (and that are not deprecated) run, and
their KB metadata is used; without one, every parsable rule runs.

Conversion (pySigma, see :mod:`.sigma_backend`) takes a while for ~3,700 rules, so compiled
rules are cached under ``SECFOUNDRY_HOME/soc/`` keyed by the archive's hash and the library
versions.
"""

from __future__ import annotations

import hashlib
import json
import os
import tarfile
from dataclasses import asdict, dataclass, field, replace
from importlib.metadata import version
from pathlib import Path
from typing import Any, Iterator

import yaml

SKIP_STATUS = {"deprecated", "unsupported"}
HUNTING_PREFIX = "rules-threat-hunting/"
# Sigma log source categories pySigma's windows_audit_pipeline maps onto Security events.
AUDIT_CATEGORIES = ("process_creation", "registry_event", "registry_set", "registry_add")


@dataclass
class CompiledRule:
    id: str  # sigma:<uuid>
    title: str
    level: str
    status: str
    product: str
    category: str
    service: str
    condition: str  # DuckDB WHERE clause
    fields: list[str]
    techniques: list[str] = field(default_factory=list)
    tactics: list[str] = field(default_factory=list)
    cves: list[str] = field(default_factory=list)
    description: str = ""
    falsepositives: list[str] = field(default_factory=list)
    path: str = ""
    variant: str = ""  # "" (as written, Sysmon/Windows pipelines) or "security-audit" (the rule on Security 4688/4657)


@dataclass
class RuleSet:
    rules: list[CompiledRule]
    source: str
    skipped: dict[str, int]  # reason -> count
    errors: list[str]


def find_rules_source(explicit: str | os.PathLike[str] | None = None, kb: Any = None) -> Path:
    cands: list[Path] = []
    if explicit:
        cands.append(Path(explicit))
    if os.environ.get("SECFOUNDRY_MIRROR"):
        cands.append(Path(os.environ["SECFOUNDRY_MIRROR"]) / "sigma")
    if kb is not None:
        try:
            origin = next((s.origin for s in kb.store.sources() if s.name == "sigma"), "")
        except Exception:  # noqa: BLE001 - a KB without the sigma source
            origin = ""
        if origin.startswith("mirror:"):
            p = Path(origin.removeprefix("mirror:"))
            cands += [p, kb.paths.db.parent / p] if not p.is_absolute() else [p]
            from secfoundry.core.paths import _REPO_ROOT  # noqa: PLC2701 - resolve paths relative to the checkout

            cands.append(_REPO_ROOT / p)
    for c in cands:
        if c.is_dir() and any(c.glob("*.tar.gz")):
            return sorted(c.glob("*.tar.gz"))[0]
        if c.exists():
            return c
    raise FileNotFoundError("no Sigma rules found: pass --rules DIR|TAR.GZ, set SECFOUNDRY_MIRROR, or sync the KB's "
                            f"sigma source from a mirror (looked in: {', '.join(map(str, cands)) or 'nothing'})")


def iter_rule_files(src: Path) -> Iterator[tuple[str, bytes]]:
    if src.is_dir():
        for p in sorted(src.rglob("*.yml")):
            yield str(p.relative_to(src)), p.read_bytes()
        return
    with tarfile.open(src) as tf:
        for m in tf:
            if m.isfile() and m.name.endswith((".yml", ".yaml")):
                f = tf.extractfile(m)
                if f is not None:
                    yield m.name.removeprefix("./"), f.read()


def _digest(src: Path) -> str:
    h = hashlib.sha256()
    if src.is_dir():
        for name, data in iter_rule_files(src):
            h.update(name.encode())
            h.update(data)
    else:
        with src.open("rb") as f:
            for chunk in iter(lambda: f.read(1 << 20), b""):
                h.update(chunk)
    for pkg in ("pysigma", "pysigma-backend-sqlite", "pysigma-pipeline-sysmon", "pysigma-pipeline-windows"):
        h.update(version(pkg).encode())
    h.update(b"v3")
    return h.hexdigest()[:20]


def _kb_meta(kb: Any) -> dict[str, dict[str, Any]] | None:
    if kb is None:
        return None
    rows = kb.store.conn.execute(
        "SELECT id, name, description, deprecated, attributes FROM records WHERE type='sigma-rule'").fetchall() \
        if hasattr(kb.store, "conn") else None
    if rows is None:
        return None
    out = {}
    for rid, name, desc, dep, attrs in rows:
        a = json.loads(attrs or "{}")
        out[rid] = {"title": name, "description": desc or "", "deprecated": bool(dep), **a}
    return out


def _tags(tags: list[Any]) -> tuple[list[str], list[str], list[str]]:
    from secfoundry.sources.sigma import parse_tags

    t = parse_tags([str(x) for x in tags or []], None)
    return t["techniques"], t["tactics"], t["cves"]


def load_rules(rules: str | os.PathLike[str] | None = None, kb: Any = None, *, hunting: bool = False,
               cache: bool = True, only: str | None = None) -> RuleSet:
    """``only``: a substring a rule's path must contain (a quick subset; not cached)."""
    src = find_rules_source(rules, kb)
    if only:
        cache = False
    meta = _kb_meta(kb)
    cache_file = None
    if cache:
        from secfoundry.core.paths import cache_dir

        cache_file = cache_dir("soc", "rules") / f"{_digest(src)}.json"
        if cache_file.is_file():
            data = json.loads(cache_file.read_text())
            compiled = [CompiledRule(**r) for r in data["rules"]]
            return _select(compiled, data["skipped"], data["errors"], str(src), meta, hunting)
    from sigma.collection import SigmaCollection
    from sigma.exceptions import SigmaError

    from secfoundry.apps.soc.sigma_backend import make_backend, referenced_fields, where_clause

    backend = make_backend()
    audit = make_backend(audit=True)
    compiled: list[CompiledRule] = []
    skipped: dict[str, int] = {}
    errors: list[str] = []
    for name, data in iter_rule_files(src):
        if only and only not in name:
            continue
        try:
            doc = yaml.safe_load(data)
        except yaml.YAMLError as e:
            errors.append(f"{name}: YAML: {str(e).splitlines()[0]}")
            continue
        if not isinstance(doc, dict) or "detection" not in doc:
            continue
        if "correlation" in doc or doc.get("type") == "correlation":
            skipped["correlation rule (not supported)"] = skipped.get("correlation rule (not supported)", 0) + 1
            continue
        try:
            queries = backend.convert(SigmaCollection.from_dicts([doc]))
            if len(queries) != 1:
                raise ValueError(f"{len(queries)} queries")
            cond = where_clause(queries[0])
        except (SigmaError, ValueError, NotImplementedError, TypeError, KeyError, AttributeError) as e:
            reason = f"not convertible: {type(e).__name__}"
            skipped[reason] = skipped.get(reason, 0) + 1
            errors.append(f"{name}: {type(e).__name__}: {str(e)[:160]}")
            continue
        ls = doc.get("logsource") or {}
        tech, tac, cves = _tags(doc.get("tags") or [])
        fps = doc.get("falsepositives") or []
        rule = CompiledRule(
            id=f"sigma:{str(doc.get('id', '')).lower()}", title=str(doc.get("title", "")),
            level=str(doc.get("level") or ""), status=str(doc.get("status") or ""),
            product=str(ls.get("product") or ""), category=str(ls.get("category") or ""),
            service=str(ls.get("service") or ""), condition=cond, fields=referenced_fields(cond),
            techniques=tech, tactics=tac, cves=cves, description=str(doc.get("description") or "").strip(),
            falsepositives=[str(x) for x in (fps if isinstance(fps, list) else [fps])], path=name)
        compiled.append(rule)
        if rule.product == "windows" and rule.category in AUDIT_CATEGORIES:
            # The same rule on Windows Security events (4688 process creation, 4657 registry), as
            # pySigma's windows_audit_pipeline maps it (Image -> NewProcessName, ...).
            try:
                acond = where_clause(audit.convert(SigmaCollection.from_dicts([doc]))[0])
            except (SigmaError, ValueError, NotImplementedError, TypeError, KeyError, AttributeError, IndexError):
                continue  # e.g. fields with no Security-event equivalent: the Sysmon variant alone
            compiled.append(replace(rule, category="", service="security", condition=acond,
                                    fields=referenced_fields(acond), variant="security-audit"))
    if cache_file is not None:
        tmp = cache_file.with_suffix(".tmp")
        tmp.write_text(json.dumps({"rules": [asdict(r) for r in compiled], "skipped": skipped, "errors": errors}))
        tmp.replace(cache_file)
    return _select(compiled, skipped, errors, str(src), meta, hunting)


def _select(compiled: list[CompiledRule], skipped: dict[str, int], errors: list[str], src: str,
            meta: dict[str, dict[str, Any]] | None, hunting: bool) -> RuleSet:
    skipped = dict(skipped)
    out: list[CompiledRule] = []
    for r in compiled:
        reason = ""
        if r.status in SKIP_STATUS or r.path.startswith("deprecated/"):
            reason = "deprecated/unsupported"
        elif r.path.startswith(HUNTING_PREFIX) and not hunting:
            reason = "threat-hunting rule (use --hunting)"
        elif meta is not None:
            m = meta.get(r.id)
            if m is None:
                reason = "not in the KB"
            elif m.get("deprecated"):
                reason = "deprecated in the KB"
            else:
                r.title = m.get("title") or r.title
                r.description = m.get("description") or r.description
                r.techniques = m.get("techniques") or r.techniques
                r.tactics = m.get("tactics") or r.tactics
                r.falsepositives = m.get("falsepositives") or r.falsepositives
        if reason:
            skipped[reason] = skipped.get(reason, 0) + 1
        else:
            out.append(r)
    return RuleSet(out, src, skipped, errors)
