"""Synthetic connectors and records for the knowledge-base tests (no shared data needed)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Iterator

from secfoundry.sources.base import Quarantine, Snapshot, Source
from secfoundry.core.errors import InputError
from secfoundry.core.records import Record


class JsonSource(Source):
    """Reads ``<mirror>/<name>/records.json``: {"version": ..., "records": [Record dicts]}.

    Entries with ``"bad": true`` are quarantined; ``"crash": true`` makes the parser raise
    mid-stream (after the earlier records were yielded).
    """

    license = "test"

    def fetch(self, mirror: Path | None = None, *, fetcher: Any = None) -> Snapshot:
        f = Path(mirror or ".") / self.name / "records.json"
        if not f.exists():
            raise InputError("no files in the mirror", file=str(f))
        return Snapshot(self.name, [f], version=json.loads(f.read_text())["version"], origin=f"mirror:{f.parent}")

    def parse(self, snapshot: Snapshot, quarantine: Quarantine) -> Iterator[Record]:
        data = json.loads(snapshot.files[0].read_text())
        for i, r in enumerate(data["records"]):
            if r.get("bad"):
                quarantine.add(self.name, str(snapshot.files[0]), i, "bad entry")
                continue
            if r.get("crash"):
                raise RuntimeError(f"parser crashed at entry {i}")
            yield Record.from_dict({**r, "source": self.name, "version": data["version"]})


def make_source(name: str) -> type[Source]:
    return type(f"Src_{name}", (JsonSource,), {"name": name, "title": name.upper()})


def write_source(mirror: Path, name: str, records: list[dict[str, Any]], version: str = "1") -> None:
    d = mirror / name
    d.mkdir(parents=True, exist_ok=True)
    (d / "records.json").write_text(json.dumps({"version": version, "records": records}))


def rec(id: str, type: str, name: str, description: str = "", **kw: Any) -> dict[str, Any]:
    d: dict[str, Any] = {"id": id, "type": type, "name": name, "description": description, "source": "x"}
    d.update(kw)
    return d


def rel(type: str, target: str, **attrs: Any) -> dict[str, Any]:
    return {"type": type, "target": target, "attributes": attrs}


ATTACKISH = [
    rec("T1003", "technique", "OS Credential Dumping",
        "Adversaries may attempt to dump credentials to obtain account login and credential material."),
    rec("T1003.001", "technique", "LSASS Memory",
        "Adversaries may attempt to access credential material stored in the process memory of the Local "
        "Security Authority Subsystem Service (LSASS).", relations=[rel("subtechnique-of", "T1003")]),
    rec("T1059", "technique", "Command and Scripting Interpreter",
        "Adversaries may abuse command and script interpreters to execute commands."),
    rec("T1059.001", "technique", "PowerShell", "Adversaries may abuse PowerShell commands and scripts.",
        relations=[rel("subtechnique-of", "T1059")]),
    rec("T1086", "technique", "PowerShell", "Revoked duplicate.", revoked=True, replaced_by="T1059.001",
        relations=[rel("revoked-by", "T1059.001")]),
    rec("T1190", "technique", "Exploit Public-Facing Application",
        "Adversaries may exploit a weakness in an Internet-facing host or system."),
    rec("M1043", "mitigation", "Credential Access Protection", "Use capabilities to prevent credential dumping.",
        relations=[rel("mitigates", "T1003.001", description="Enable Credential Guard.")]),
    rec("G0007", "group", "APT28", "APT28 is a threat group attributed to Russia.", aliases=["Fancy Bear", "Sofacy"],
        relations=[rel("uses", "T1003.001", stix_id="relationship--1",
                       description="[APT28](https://attack.mitre.org/groups/G0007) regularly deploys mimikatz "
                                   "to read lsass process memory.(Citation: X)"),
                   rel("uses", "T1059.001", stix_id="relationship--2",
                       description="APT28 downloads additional tooling with PowerShell scripts.")]),
    rec("TA0006", "tactic", "Credential Access", "The adversary is trying to steal account names and passwords."),
]
CWEISH = [
    rec("CWE-79", "weakness", "Improper Neutralization of Input During Web Page Generation ('Cross-site Scripting')",
        "The product does not neutralize user-controllable input before it is placed in output used as a web page.",
        relations=[rel("child-of", "CWE-74"), rel("related-attack-pattern", "CAPEC-63")],
        attributes={"observed_examples": [{"reference": "CVE-2021-0001",
                                           "description": "Reflected XSS in a search form of a wiki product."}]}),
    rec("CWE-74", "weakness", "Injection", "The product constructs a command using externally-influenced input."),
    rec("CWE-89", "weakness", "SQL Injection", "The product builds an SQL query from user input without "
        "neutralizing special elements.", relations=[rel("child-of", "CWE-74")]),
]
EXTRA = [
    rec("sigma:aaaa", "sigma-rule", "LSASS Access From Non System Account",
        "Detects access to the LSASS memory by a process that is not a system account.",
        relations=[rel("detects", "attack.t1003.001")]),
    rec("atomic:bbbb", "atomic-test", "Dump LSASS.exe Memory using ProcDump", "Uses procdump to dump lsass.",
        relations=[rel("tests", "T1003.001")]),
    rec("CVE-2024-3400", "vulnerability", "PAN-OS Command Injection", "Command injection in GlobalProtect.",
        attributes={"date_added": "2024-04-12", "ransomware": False},
        relations=[rel("related-weakness", "CWE-77")]),
]


