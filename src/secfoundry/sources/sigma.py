"""Sigma detection rules (SigmaHQ/sigma): YAML rules with ATT&CK tags.

Upstream is the SigmaHQ repository (``rules*/**/*.yml``); live mode downloads its branch
tarball, the mirror holds the same tree as a tar.gz. One ``SIGMA_RULE`` record per rule,
id ``sigma:<uuid>``, with

- ``detects`` relations to ATT&CK techniques (tag ``attack.t1059.001`` -> ``T1059.001``),
  ``related-group``/``related-software`` to groups/software (``attack.g0016`` -> ``G0016``),
  ``related-vulnerability`` to CVEs (``cve.2021-1675``), ``related-rule`` to other Sigma rules;
- tactics (``attack.execution``), status, level, log source, author, dates, false positives.

Ids or tactic names that the pinned ATT&CK release does not know (Sigma follows ATT&CK's main
branch, so it can be ahead: e.g. the ``stealth`` and ``defense-impairment`` tactics) are kept
on the record and listed in ``unknown_attack`` and in ``Snapshot.extra["unknown_attack"]`` -
reported, never fatal.
"""

from __future__ import annotations

import logging
import re
from collections import defaultdict
from pathlib import Path
from typing import Any, Iterator

from secfoundry.sources._archives import (AttackCatalog, as_list, attack_catalog, attack_id_from_tag,
                                          iter_tar, jsonable, load_yaml, report, set_stats)
from secfoundry.sources.base import document_of, GitTarballSource, Quarantine, Remote, Snapshot, register
from secfoundry.core.documents import Document
from secfoundry.core.errors import InputError
from secfoundry.core.records import SIGMA_RULE, Record, Relation

log = logging.getLogger(__name__)

SIGMA_TARBALL = Remote("https://github.com/SigmaHQ/sigma/archive/refs/heads/master.tar.gz",
                       "sigma-master.tar.gz")
# rules/, rules-emerging-threats/, rules-threat-hunting/, ... and deprecated/ (flagged).
_RULE_MEMBER = re.compile(r"(^|/)(rules[^/]*|deprecated)/.+\.ya?ml$")
_UUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$", re.I)
_REPO_BLOB = "https://github.com/SigmaHQ/sigma/blob/master/"


def _rule_path(member: str) -> str:
    """``sigma-master/rules/windows/x.yml`` -> ``rules/windows/x.yml`` (drop the tarball prefix)."""
    m = _RULE_MEMBER.search(member)
    return member[m.start(2):] if m else member


def parse_tags(tags: list[Any], catalog: AttackCatalog | None) -> dict[str, Any]:
    """Split Sigma tags into ATT&CK techniques/objects, tactics, CVEs, CAR ids and the rest."""
    out: dict[str, Any] = {"techniques": [], "objects": [], "tactics": [], "cves": [], "car": [],
                           "other": [], "unknown": []}
    for raw in tags:
        tag = str(raw).strip()
        ns, _, value = tag.partition(".")
        ns = ns.lower()
        if ns == "attack" and value:
            aid = attack_id_from_tag(value)
            if aid is None:
                out["tactics"].append(value.lower())
                if catalog is not None and value.lower() not in catalog.tactics:
                    out["unknown"].append(tag)
            else:
                out["techniques" if aid.startswith("T") else "objects"].append(aid)
                if catalog is not None and not catalog.known(aid):
                    out["unknown"].append(aid)
        elif ns == "cve" and value:
            out["cves"].append("CVE-" + value.upper().removeprefix("CVE-"))
        elif ns == "car" and value:
            out["car"].append("CAR-" + value)
        else:
            out["other"].append(tag)
    return out


_OBJECT_RELATION = {"G": "related-group", "S": "related-software", "M": "related-mitigation",
                    "C": "related-campaign", "D": "related-data-source"}


def rule_record(data: Any, *, path: str, entry: str, version: str,
                catalog: AttackCatalog | None) -> Record:
    if not isinstance(data, dict):
        raise InputError("a Sigma rule must be a YAML mapping", file=path, row=entry)
    rid = str(data.get("id") or "").strip()
    if not _UUID.match(rid):
        raise InputError(f"missing or malformed rule id {rid!r}", file=path, row=entry, field="id")
    title = str(data.get("title") or "").strip()
    if not title:
        raise InputError("rule has no title", file=path, row=entry, field="title")
    if not isinstance(data.get("detection"), dict):
        raise InputError("rule has no detection mapping", file=path, row=entry, field="detection")
    tags = parse_tags(as_list(data.get("tags")), catalog)
    rels = [Relation("detects", t) for t in dict.fromkeys(tags["techniques"])]
    rels += [Relation(_OBJECT_RELATION.get(o[0], "related"), o) for o in dict.fromkeys(tags["objects"])]
    rels += [Relation("related-vulnerability", c) for c in dict.fromkeys(tags["cves"])]
    for rel in as_list(data.get("related")):
        if isinstance(rel, dict) and rel.get("id"):
            rels.append(Relation("related-rule", f"sigma:{rel['id']}", {"kind": rel.get("type", "")}))
    status = str(data.get("status") or "").strip()
    logsource = data.get("logsource") if isinstance(data.get("logsource"), dict) else {}
    rule_path = _rule_path(entry)
    return Record(
        id=f"sigma:{rid.lower()}",
        type=SIGMA_RULE,
        name=title,
        description=str(data.get("description") or "").strip(),
        source="sigma",
        url=_REPO_BLOB + rule_path,
        version=version,
        license="DRL-1.1",
        deprecated=status in ("deprecated", "unsupported") or rule_path.startswith("deprecated/"),
        relations=rels,
        attributes=jsonable({
            "status": status,
            "level": str(data.get("level") or "").strip(),
            "logsource": {k: v for k, v in logsource.items() if k in ("product", "category", "service", "definition")},
            "author": data.get("author", ""),
            "date": data.get("date", ""),
            "modified": data.get("modified", ""),
            "tactics": list(dict.fromkeys(tags["tactics"])),
            "techniques": list(dict.fromkeys(tags["techniques"])),
            "tags": [str(t) for t in as_list(data.get("tags"))],
            "car": tags["car"],
            "falsepositives": [str(x) for x in as_list(data.get("falsepositives"))],
            "references": [str(x) for x in as_list(data.get("references"))],
            "path": rule_path,
            "unknown_attack": tags["unknown"],
        }),
    )


@register
class SigmaSource(GitTarballSource):
    name = "sigma"
    title = "Sigma detection rules (SigmaHQ)"
    license = "DRL-1.1"
    homepage = "https://github.com/SigmaHQ/sigma"
    patterns = ("*.tar.gz", "*.tgz")
    tarball = SIGMA_TARBALL

    def parse(self, snapshot: Snapshot, q: Quarantine) -> Iterator[tuple[Record, str]]:
        """(rule record, the rule's YAML text): documents quote the rule as published."""
        root = snapshot.extra.get("mirror_root")
        catalog = attack_catalog(Path(root) if root else None)
        unknown: dict[str, list[str]] = defaultdict(list)
        count = 0
        for path in snapshot.files:
            for member, data in iter_tar(path, lambda n: bool(_RULE_MEMBER.search(n)),
                                         source=self.name, quarantine=q):
                try:
                    # All-string scalars: Sigma's metadata is strings (dates stay "2022-01-02").
                    parsed = load_yaml(data, str(path), member, strings=True)
                    rec = rule_record(parsed, path=str(path), entry=member, version=snapshot.version,
                                      catalog=catalog)
                except InputError as e:
                    report(q, self.name, path, member, e)
                    continue
                for u in rec.attributes["unknown_attack"]:
                    unknown[u].append(rec.id)
                count += 1
                yield rec, data.decode("utf-8")
        snapshot.extra["unknown_attack"] = {k: len(v) for k, v in sorted(unknown.items())}
        snapshot.extra["attack_checked_against"] = catalog.version if catalog else ""
        set_stats(snapshot, rules=count, unknown_attack_ids=len(unknown), unknown_attack=snapshot.extra["unknown_attack"],
                  attack_checked_against=snapshot.extra["attack_checked_against"])
        if unknown:
            log.info("sigma: %d ATT&CK ids/tactics not in the pinned ATT&CK %s (kept): %s", len(unknown),
                     catalog.version if catalog else "?", ", ".join(sorted(unknown)[:20]))

    def render(self, rec: Record, context: Any = None) -> Document:
        return rule_document(rec, context)


def rule_document(rec: Record, text: str) -> Document:
    a = rec.attributes
    ls = ", ".join(f"{k}: {v}" for k, v in a["logsource"].items())
    lines = [f"# Sigma rule: {rec.name}", ""]
    if rec.description:
        lines += [rec.description, ""]
    facts = [("Status", a["status"]), ("Level", a["level"]), ("Log source", ls),
             ("ATT&CK techniques", ", ".join(a["techniques"])), ("Tactics", ", ".join(a["tactics"])),
             ("Author", a["author"]), ("Date", a["date"])]
    lines += [f"- **{k}**: {v}" for k, v in facts if v] + [""]
    if a["falsepositives"]:
        lines += ["## False positives", ""] + [f"- {x}" for x in a["falsepositives"]] + [""]
    lines += ["## Rule", "", "```yaml", text.strip(), "```", ""]
    return document_of(rec, "\n".join(lines), id=f"sigma:{rec.id.removeprefix('sigma:')}", source="sigma",
                       techniques=a["techniques"], level=a["level"], status=a["status"])
