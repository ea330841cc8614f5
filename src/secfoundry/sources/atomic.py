"""Atomic Red Team tests (redcanaryco/atomic-red-team): ``atomics/T*/T*.yaml`` + ``index.csv``.

Each technique file holds ``attack_technique``, ``display_name`` and a list of
``atomic_tests``; every test becomes one ``ATOMIC_TEST`` record ``atomic:<auto_generated_guid>``
with a ``tests`` relation to its technique, its platforms, executor (name, command, cleanup,
elevation), input arguments and dependencies. ``index.csv`` (Tactic, Technique #, Technique
Name, Test #, Test Name, Test GUID, Executor Name) adds the tactics of each test; a test listed
there but missing from the YAML (or the other way round) is reported.

Technique ids newer than the pinned ATT&CK release are kept and listed in
``Snapshot.extra["unknown_attack"]``.
"""

from __future__ import annotations

import csv
import logging
import re
from collections import defaultdict
from pathlib import Path
from typing import Any, Iterator

from secfoundry.sources._archives import (as_list, attack_catalog, attack_id_from_tag, iter_tar, jsonable,
                                          load_yaml, report, set_stats)
from secfoundry.sources.base import document_of, GitTarballSource, Quarantine, Remote, Snapshot, register, text_stream
from secfoundry.core.documents import Document
from secfoundry.core.errors import InputError
from secfoundry.core.records import ATOMIC_TEST, Record, Relation

log = logging.getLogger(__name__)

ATOMIC_TARBALL = Remote("https://github.com/redcanaryco/atomic-red-team/archive/refs/heads/master.tar.gz",
                        "atomic-red-team-master.tar.gz")
ATOMIC_INDEX = Remote("https://raw.githubusercontent.com/redcanaryco/atomic-red-team/master/atomics/Indexes/"
                      "Indexes-CSV/index.csv", "index.csv")
_MEMBER = re.compile(r"(^|/)atomics/(T\d{4}(?:\.\d{3})?)/(T\d{4}(?:\.\d{3})?)\.ya?ml$")
_GUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$", re.I)
_DOC_BASE = "https://github.com/redcanaryco/atomic-red-team/blob/master/atomics/"


def read_index(path: Path, quarantine: Quarantine, source: str = "atomic") -> dict[str, dict[str, Any]]:
    """``index.csv`` rows keyed by test GUID: tactics (a test can sit under several), number."""
    out: dict[str, dict[str, Any]] = {}
    try:
        with text_stream(path) as f:
            reader = csv.DictReader(f)
            missing = {"Tactic", "Technique #", "Test GUID"} - set(reader.fieldnames or [])
            if missing:
                raise InputError(f"index.csv lacks columns {sorted(missing)}", file=str(path), row=1)
            for i, row in enumerate(reader, start=2):
                guid = (row.get("Test GUID") or "").strip().lower()
                if not _GUID.match(guid):
                    report(quarantine, source, path, i, InputError(f"malformed Test GUID {guid!r}",
                                                                   file=str(path), row=i, field="Test GUID"))
                    continue
                e = out.setdefault(guid, {"tactics": [], "technique": row.get("Technique #", "").strip(),
                                          "number": row.get("Test #", "").strip()})
                tactic = (row.get("Tactic") or "").strip()
                if tactic and tactic not in e["tactics"]:
                    e["tactics"].append(tactic)
    except UnicodeDecodeError as e:
        report(quarantine, source, path, None, InputError(f"not valid UTF-8: {e.reason}", file=str(path)))
    except (csv.Error, InputError) as e:
        report(quarantine, source, path, None, e)
    return out


def technique_records(data: Any, *, path: str, member: str, version: str,
                      index: dict[str, dict[str, Any]]) -> Iterator[Record | InputError]:
    """Records of one technique file; a bad test yields an ``InputError`` (the others go on)."""
    if not isinstance(data, dict):
        yield InputError("a technique file must be a YAML mapping", file=path, row=member)
        return
    tech = attack_id_from_tag(str(data.get("attack_technique") or ""))
    if tech is None or not tech.startswith("T"):
        yield InputError(f"malformed attack_technique {data.get('attack_technique')!r}", file=path, row=member,
                         field="attack_technique")
        return
    tests = data.get("atomic_tests")
    if not isinstance(tests, list):
        yield InputError("atomic_tests is not a list", file=path, row=member, field="atomic_tests")
        return
    display = str(data.get("display_name") or tech)
    for n, test in enumerate(tests, start=1):
        where = f"{member}#test{n}"
        if not isinstance(test, dict):
            yield InputError("test is not a mapping", file=path, row=where)
            continue
        guid = str(test.get("auto_generated_guid") or "").strip().lower()
        if not _GUID.match(guid):
            yield InputError(f"missing or malformed auto_generated_guid {guid!r}", file=path, row=where,
                             field="auto_generated_guid")
            continue
        ex = test.get("executor")
        if not isinstance(ex, dict) or not ex.get("name"):
            yield InputError("test has no executor name", file=path, row=where, field="executor")
            continue
        idx = index.get(guid, {})
        args = test.get("input_arguments") if isinstance(test.get("input_arguments"), dict) else {}
        deps = [d for d in as_list(test.get("dependencies")) if isinstance(d, dict)]
        yield Record(
            id=f"atomic:{guid}",
            type=ATOMIC_TEST,
            name=str(test.get("name") or "").strip() or f"{tech} test {n}",
            description=str(test.get("description") or "").strip(),
            source="atomic",
            url=f"{_DOC_BASE}{tech}/{tech}.md",
            version=version,
            license="MIT",
            relations=[Relation("tests", tech)],
            attributes=jsonable({
                "technique": tech,
                "technique_name": display,
                "test_number": n,
                "platforms": [str(p) for p in as_list(test.get("supported_platforms"))],
                "executor": ex.get("name"),
                "command": ex.get("command") or ex.get("steps") or "",
                "cleanup_command": ex.get("cleanup_command") or "",
                "elevation_required": bool(ex.get("elevation_required", False)),
                "input_arguments": {k: {"description": (v or {}).get("description", ""),
                                        "type": (v or {}).get("type", ""),
                                        "default": (v or {}).get("default", "")}
                                    for k, v in args.items() if isinstance(v, dict) or v is None},
                "dependencies": [{"description": d.get("description", ""),
                                  "prereq_command": d.get("prereq_command", ""),
                                  "get_prereq_command": d.get("get_prereq_command", "")} for d in deps],
                "dependency_executor": test.get("dependency_executor_name", ""),
                "tactics": idx.get("tactics", []),
                "in_index": bool(idx),
                "path": f"atomics/{tech}/{tech}.yaml",
            }),
        )


@register
class AtomicSource(GitTarballSource):
    name = "atomic"
    title = "Atomic Red Team tests (Red Canary)"
    license = "MIT"
    homepage = "https://github.com/redcanaryco/atomic-red-team"
    folder = "atomic-red-team"
    patterns = ("*.tar.gz", "*.tgz", "index.csv")
    tarball, raw_files = ATOMIC_TARBALL, (ATOMIC_INDEX,)

    def parse(self, snapshot: Snapshot, q: Quarantine) -> Iterator[Record]:
        index: dict[str, dict[str, Any]] = {}
        for f in snapshot.files:
            if f.suffix == ".csv":
                index.update(read_index(f, q, self.name))
        root = snapshot.extra.get("mirror_root")
        catalog = attack_catalog(Path(root) if root else None)
        unknown: dict[str, int] = defaultdict(int)
        seen: set[str] = set()
        for path in snapshot.files:
            if not path.name.endswith((".tar.gz", ".tgz")):
                continue
            for member, data in iter_tar(path, lambda n: bool(_MEMBER.search(n)), source=self.name, quarantine=q):
                try:
                    parsed = load_yaml(data, str(path), member)
                except InputError as e:
                    report(q, self.name, path, member, e)
                    continue
                for item in technique_records(parsed, path=str(path), member=member, version=snapshot.version,
                                              index=index):
                    if isinstance(item, InputError):
                        report(q, self.name, path, item.row, item)
                        continue
                    if item.id in seen:
                        report(q, self.name, path, member, InputError(f"duplicate test GUID {item.id}",
                                                                      file=str(path), row=member))
                        continue
                    seen.add(item.id)
                    tech = item.attributes["technique"]
                    if catalog is not None and not catalog.known(tech):
                        unknown[tech] += 1
                    yield item
        not_in_yaml = sorted(g for g in index if f"atomic:{g}" not in seen)
        snapshot.extra.update({
            "unknown_attack": dict(sorted(unknown.items())),
            "attack_checked_against": catalog.version if catalog else "",
            "index_tests": len(index),
            "index_only_tests": not_in_yaml,
        })
        set_stats(snapshot, tests=len(seen), index_tests=len(index), index_only_tests=len(not_in_yaml),
                  unknown_attack=snapshot.extra["unknown_attack"],
                  attack_checked_against=snapshot.extra["attack_checked_against"])
        if not_in_yaml:
            log.info("atomic: %d tests listed in index.csv are not in the YAML files", len(not_in_yaml))

    def render(self, rec: Record, context: Any = None) -> Document:
        return test_document(rec)


_FENCE = {"powershell": "powershell", "command_prompt": "bat", "sh": "sh", "bash": "bash"}


def test_document(rec: Record) -> Document:
    a = rec.attributes
    lines = [f"# Atomic test: {rec.name}", "",
             f"- **ATT&CK technique**: {a['technique']} ({a['technique_name']})",
             f"- **Platforms**: {', '.join(a['platforms'])}",
             f"- **Executor**: {a['executor']}" + (" (elevation required)" if a["elevation_required"] else "")]
    if a["tactics"]:
        lines.append(f"- **Tactics**: {', '.join(a['tactics'])}")
    lines.append("")
    if rec.description:
        lines += [rec.description, ""]
    if a["input_arguments"]:
        lines += ["## Input arguments", "", "| name | type | default | description |", "|---|---|---|---|"]
        for k, v in a["input_arguments"].items():
            cells = [k, v["type"], v["default"], v["description"]]
            lines.append("| " + " | ".join(str(c).replace("|", "\\|").replace("\n", " ").strip() for c in cells) + " |")
        lines.append("")
    fence = _FENCE.get(a["executor"], "")
    if a["command"]:
        lines += ["## Command", "", f"```{fence}", str(a["command"]).strip(), "```", ""]
    if a["cleanup_command"]:
        lines += ["## Cleanup", "", f"```{fence}", str(a["cleanup_command"]).strip(), "```", ""]
    for d in a["dependencies"]:
        lines += [f"## Dependency: {str(d['description']).strip()}", ""]
        if d["prereq_command"]:
            lines += ["```", str(d["prereq_command"]).strip(), "```", ""]
    return document_of(rec, "\n".join(lines), id=rec.id, source="atomic", technique=a["technique"],
                       platforms=a["platforms"])
