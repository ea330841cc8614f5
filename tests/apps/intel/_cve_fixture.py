"""Tiny offline fixtures for map-cwe / predict-cvss: a CWE knowledge base and labelled CVE records.

The KB is a real KB store holding a synthetic ``cwe`` source (records in the KB's Record
format, written with ``Store.replace_source`` as a sync does); the records file is JSONL.gz in
the shape of shared cve-records.
"""

from __future__ import annotations

import gzip
import json
import random
from pathlib import Path
from typing import Any



def rec(id: str, type: str, name: str, description: str = "", **kw: Any) -> dict[str, Any]:
    d: dict[str, Any] = {"id": id, "type": type, "name": name, "description": description, "source": "cwe"}
    d.update(kw)
    return d


def rel(type: str, target: str, **attrs: Any) -> dict[str, Any]:
    return {"type": type, "target": target, "attributes": attrs}


V1000 = {"view_id": "1000", "ordinal": "Primary"}


def cwe(id: str, name: str, desc: str, parent: str | None = None, usage: str = "Allowed",
        abstraction: str = "Base", aliases: list[str] | None = None, **kw: Any) -> dict[str, Any]:
    rels = [rel("child-of", parent, **V1000)] if parent else []
    attrs = {"status": "Stable", "abstraction": abstraction, "mapping": {"usage": usage}}
    return rec(id, "weakness", name, desc, relations=rels, attributes=attrs, aliases=aliases or [], **kw)


CWES = [
    cwe("CWE-74", "Improper Neutralization of Special Elements in Output Used by a Downstream Component ('Injection')",
        "The product constructs all or part of a command using externally-influenced input.", abstraction="Class",
        usage="Discouraged"),
    cwe("CWE-79", "Improper Neutralization of Input During Web Page Generation ('Cross-site Scripting')",
        "The product does not neutralize user-controllable input before it is placed in output used as a web page.",
        parent="CWE-74", aliases=["XSS", "HTML Injection"]),
    cwe("CWE-89", "Improper Neutralization of Special Elements used in an SQL Command ('SQL Injection')",
        "The product constructs an SQL command using externally-influenced input without neutralizing it.",
        parent="CWE-74"),
    cwe("CWE-119", "Improper Restriction of Operations within the Bounds of a Memory Buffer",
        "The product performs operations on a memory buffer outside its bounds.", abstraction="Class",
        aliases=["buffer overflow"]),
    cwe("CWE-787", "Out-of-bounds Write", "The product writes data past the end of the intended buffer.",
        parent="CWE-119"),
    cwe("CWE-121", "Stack-based Buffer Overflow", "A stack-based buffer overflow condition.", parent="CWE-787",
        abstraction="Variant"),
    cwe("CWE-22", "Improper Limitation of a Pathname to a Restricted Directory ('Path Traversal')",
        "The product uses external input to construct a pathname outside a restricted directory."),
    cwe("CWE-352", "Cross-Site Request Forgery (CSRF)",
        "The web application does not verify that a request was intentionally provided by the user."),
    cwe("CWE-416", "Use After Free", "The product reuses memory after it has been freed."),
    rec("CWE-534", "weakness", "DEPRECATED: Information Exposure Through Debug Log Files",
        "This entry has been deprecated. See CWE-532.", deprecated=True, replaced_by="CWE-532",
        attributes={"status": "Deprecated", "mapping": {"usage": "Prohibited"}}),
    cwe("CWE-532", "Insertion of Sensitive Information into Log File",
        "The product writes sensitive information to a log file."),
    rec("CWE-1000", "cwe-view", "Research Concepts", "A view.", attributes={"mapping": {"usage": "Prohibited"}}),
    # NVD's mapping view: CWE-121 is not a member, its parent CWE-787 is
    rec("CWE-1003", "cwe-view", "Weaknesses for Simplified Mapping of Published Vulnerabilities", "A view.",
        attributes={"mapping": {"usage": "Prohibited"}},
        relations=[rel("has-member", c) for c in ("CWE-74", "CWE-79", "CWE-89", "CWE-119", "CWE-787", "CWE-22",
                                                    "CWE-352", "CWE-416", "CWE-532")]),
]

PRODUCTS = ["Acme Portal", "Foo CMS", "Bar Router", "Baz Server", "Qux Gateway", "Zed Manager", "Omni Suite",
            "Nimbus Cloud", "Vega Shop", "Orion Desk", "Atlas HR", "Pico Store"]
TEMPLATES = {
    "CWE-89": ("A vulnerability was found in {p} {v}. The manipulation of the argument id in {f} leads to sql "
               "injection. The attack may be launched remotely.", "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H"),
    "CWE-79": ("{p} {v} is vulnerable to cross-site scripting (XSS) via the search parameter in {f}, allowing "
               "attackers to inject arbitrary web script.", "CVSS:3.1/AV:N/AC:L/PR:N/UI:R/S:C/C:L/I:L/A:N"),
    "CWE-121": ("Stack-based buffer overflow in {p} {v} allows local users to execute code via a long argument "
                "to {f}.", "CVSS:3.1/AV:L/AC:L/PR:L/UI:N/S:U/C:H/I:H/A:H"),
    "CWE-22": ("Path traversal in {p} {v} allows remote attackers to read arbitrary files via ../ sequences in "
               "the file parameter of {f}.", "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:N/A:N"),
    "CWE-352": ("Cross-Site Request Forgery (CSRF) in {p} {v} allows attackers to change settings via a crafted "
                "request to {f}.", "CVSS:3.1/AV:N/AC:L/PR:N/UI:R/S:U/C:N/I:H/A:N"),
    "CWE-416": ("Use after free in the {f} handler of {p} {v} allows a remote attacker to cause memory "
                "corruption and execute code.", "CVSS:3.1/AV:N/AC:L/PR:N/UI:R/S:U/C:H/I:H/A:H"),
}


def make_records(n_per: int = 8, seed: int = 7) -> list[dict[str, Any]]:
    rnd = random.Random(seed)
    out = []
    k = 0
    for cwe_id, (tpl, vec) in TEMPLATES.items():
        for i in range(n_per):
            k += 1
            p = PRODUCTS[(i + k) % len(PRODUCTS)]
            desc = tpl.format(p=p, v=f"{rnd.randint(1, 9)}.{rnd.randint(0, 20)}", f=f"/{rnd.choice('abcdefgh')}{i}.php")
            side = "cwe_cna" if i % 2 else "cwe_adp"
            out.append({"id": f"CVE-2023-{1000 + k}", "published": f"2023-{(k % 12) + 1:02d}-01T00:00:00",
                        "description": desc, "cwe_cna": [cwe_id] if side == "cwe_cna" else [],
                        "cwe_adp": [cwe_id] if side == "cwe_adp" else [],
                        "cvss_cna": {"cvssV3_1": {"vector": vec, "score": 0}}, "cvss_adp": {}})
    # a deprecated label (-> CWE-532), an unknown one (dropped), NVD placeholders (no label)
    out.append({"id": "CVE-2023-9001", "published": "2023-05-01T00:00:00",
                "description": "Acme Portal writes passwords to a debug log file readable by local users.",
                "cwe_cna": ["CWE-534"], "cwe_adp": [], "cvss_cna": {}, "cvss_adp": {}})
    out.append({"id": "CVE-2023-9002", "published": "2023-05-01T00:00:00",
                "description": "Foo CMS logs session tokens into a log file.", "cwe_cna": ["CWE-99999"],
                "cwe_adp": [], "cvss_cna": {}, "cvss_adp": {}})
    out.append({"id": "CVE-2023-9003", "published": "2023-05-01T00:00:00",
                "description": "Unspecified vulnerability in Bar Router.", "cwe_cna": ["NVD-CWE-noinfo"],
                "cwe_adp": [], "cvss_cna": {}, "cvss_adp": {}})
    return out


def write_records(path: Path, records: list[dict[str, Any]]) -> Path:
    with gzip.open(path, "wt", encoding="utf-8") as fh:
        for r in records:
            fh.write(json.dumps(r) + "\n")
    return path


def build_kb(tmp: Path) -> Path:
    """A KB directory whose store holds the CWE fixture as source ``cwe``."""
    from secfoundry.core.records import Record
    from secfoundry.kb import KnowledgeBase
    from secfoundry.kb.store import SourceRow, Store

    kb_dir = tmp / "kb"
    st = Store(KnowledgeBase.open(kb_dir).paths.db)
    try:
        st.replace_source(SourceRow(name="cwe", title="CWE", version="4.14"),
                          [Record.from_dict({**r, "version": "4.14"}) for r in CWES])
    finally:
        st.close()
    return kb_dir


# -- pytest fixtures (import them into a test module to use them) ---------------------------------
import pytest  # noqa: E402


@pytest.fixture(scope="session")
def cve_env(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """KB dir, records file, catalog and a fitted model (no CTIBench decontamination: tiny data)."""
    from secfoundry.apps.intel.cwe_catalog import CweCatalog
    from secfoundry.apps.intel.fitted import IntelModel

    tmp = tmp_path_factory.mktemp("intel")
    kb_dir = build_kb(tmp)
    records = write_records(tmp / "cve-records.jsonl.gz", make_records())
    catalog = CweCatalog.from_kb(kb_dir)
    model = IntelModel.get(records=records, catalog=catalog, decontaminate=False, cache=tmp / "models",
                           log=lambda m: None)
    return {"tmp": tmp, "kb": kb_dir, "records": records, "catalog": catalog, "model": model}
