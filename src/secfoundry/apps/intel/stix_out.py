"""extract-ttps -> a STIX 2.1 bundle (``stix2``): a report, the ATT&CK attack-patterns,
intrusion-sets / malware / tools / campaigns it names, and ``uses`` relationships.

Attack patterns and entities keep ATT&CK's own STIX ids (from the KB), so the bundle merges
cleanly with ATT&CK data in a TIP. A ``uses`` relationship links a named group/software/campaign
to a technique when both occur in the same paragraph of the report (the report's own claim,
with the sentence quoted in the relationship's description); the report lists every object.
Ids of the report and relationships are deterministic (UUIDv5 of the content), so the same
report gives the same bundle.
"""

from __future__ import annotations

import uuid
from datetime import datetime, timezone
from typing import Any

from secfoundry.apps.intel.schemas_ttps import TTPResult
from secfoundry.apps.intel.ttps_catalog import AttackCatalog

_NS = uuid.UUID("6f0d2c1e-9a55-4c64-9a0e-5ec0f0d2a1b7")
_ATTACK_URL = "https://attack.mitre.org/techniques/"


def _sid(kind: str, *parts: str) -> str:
    return f"{kind}--{uuid.uuid5(_NS, '|'.join(parts))}"


def _para(text: str, pos: int) -> tuple[int, int]:
    a = text.rfind("\n\n", 0, pos)
    b = text.find("\n\n", pos)
    return (a + 1 if a >= 0 else 0, b if b >= 0 else len(text))


def build_bundle(result: TTPResult, catalog: AttackCatalog, *, text: str, name: str | None = None,
                 published: datetime | None = None) -> Any:
    import stix2

    when = published or datetime(2000, 1, 1, tzinfo=timezone.utc)
    ts = when.strftime("%Y-%m-%dT%H:%M:%S.000Z")
    identity = stix2.Identity(id=_sid("identity", "secfoundry"), name="secfoundry intel extract-ttps",
                              identity_class="system", created=ts, modified=ts)
    objs: list[Any] = [identity]
    by_tech: dict[str, Any] = {}
    for t in result.techniques:
        tech = catalog.techniques[t.id]
        url = _ATTACK_URL + t.id.replace(".", "/")
        ap = stix2.AttackPattern(
            id=tech.stix_id or _sid("attack-pattern", t.id), name=t.name, created=ts, modified=ts,
            external_references=[{"source_name": "mitre-attack", "external_id": t.id, "url": url}],
            kill_chain_phases=[{"kill_chain_name": "mitre-attack", "phase_name": p} for p in t.tactics] or None,
            allow_custom=True, x_secfoundry_confidence=t.confidence)
        by_tech[t.id] = ap
        objs.append(ap)
    ents: list[tuple[Any, Any]] = []
    for hit in [*result.groups, *result.software, *result.campaigns]:
        e = catalog.entities[hit.id]
        kind = e.stix_type or {"group": "intrusion-set", "campaign": "campaign"}.get(e.type, "malware")
        common = dict(id=e.stix_id or _sid(kind, hit.id), name=e.name, created=ts, modified=ts,
                      external_references=[{"source_name": "mitre-attack", "external_id": hit.id}])
        if kind == "intrusion-set":
            obj = stix2.IntrusionSet(**common, aliases=e.aliases or None)
        elif kind == "campaign":
            obj = stix2.Campaign(**common)
        elif kind == "tool":
            obj = stix2.Tool(**common)
        else:
            obj = stix2.Malware(**common, is_family=True)
        objs.append(obj)
        ents.append((hit, obj))
    rels = []
    for hit, obj in ents:
        paras = {_para(text, s.start) for s in hit.spans}
        for t in result.techniques:
            support = [s for s in t.spans if any(a <= s.start < b for a, b in paras)]
            if not support:
                continue
            ap = by_tech[t.id]
            rels.append(stix2.Relationship(
                id=_sid("relationship", obj.id, ap.id, result.source), relationship_type="uses", source_ref=obj.id,
                target_ref=ap.id, created=ts, modified=ts, created_by_ref=identity.id,
                description=f"Report: \"{support[0].text[:400]}\"", confidence=int(round(t.confidence * 100))))
    objs.extend(rels)
    report = stix2.Report(
        id=_sid("report", result.source, *sorted(by_tech)), name=name or f"Techniques in {result.source}",
        published=ts, created=ts, modified=ts, created_by_ref=identity.id, report_types=["threat-report"],
        description=f"ATT&CK {result.attack_version} techniques extracted by secfoundry from {result.source}",
        object_refs=[o.id for o in objs if o is not identity] or [identity.id])
    return stix2.Bundle(id=_sid("bundle", report.id), objects=[report, *objs], allow_custom=True)
