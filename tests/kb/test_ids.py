from __future__ import annotations

import pytest

from secfoundry.kb import ids


@pytest.mark.parametrize("raw, canonical, kind", [
    ("T1059.001", "T1059.001", "attack-technique"),
    ("t1059.1", "T1059.001", "attack-technique"),
    ("T1059/001", "T1059.001", "attack-technique"),
    ("T1059-001", "T1059.001", "attack-technique"),
    ("attack.t1059.001", "T1059.001", "attack-technique"),
    ("attack.T1003", "T1003", "attack-technique"),
    (" (T1059) ", "T1059", "attack-technique"),
    ("ta0002", "TA0002", "attack-tactic"),
    ("g0016", "G0016", "attack-group"),
    ("S0002", "S0002", "attack-software"),
    ("M1036", "M1036", "attack-mitigation"),
    ("DS0017", "DS0017", "attack-data-source"),
    ("DET0455", "DET0455", "attack-detection-strategy"),
    ("AN0110", "AN0110", "attack-analytic"),
    ("cwe-79", "CWE-79", "cwe"),
    ("CWE 79", "CWE-79", "cwe"),
    ("cwe_079", "CWE-79", "cwe"),
    ("NVD-CWE-noinfo", "NVD-CWE-noinfo", "cwe"),
    ("capec 66", "CAPEC-66", "capec"),
    ("cve-2024-3400", "CVE-2024-3400", "cve"),
    ("CVE-2021-44228", "CVE-2021-44228", "cve"),
    ("ghsa-JFH8-C2JP-5V3Q", "GHSA-jfh8-c2jp-5v3q", "ghsa"),
    ("pysec-2021-66", "PYSEC-2021-66", "osv"),
    ("RUSTSEC-2021-0001", "RUSTSEC-2021-0001", "osv"),
    ("d3-al", "D3-AL", "d3fend"),
    ("ac-2", "AC-2", "nist-control"),
    ("AC-02(01)", "AC-2(1)", "nist-control"),
    ("ac-2.1", "AC-2(1)", "nist-control"),
    ("SI-4(12)", "SI-4(12)", "nist-control"),
    ("sigma:5F1AB0E2-aaaa-bbbb-cccc-000000000000", "sigma:5f1ab0e2-aaaa-bbbb-cccc-000000000000", "sigma"),
])
def test_normalize(raw: str, canonical: str, kind: str) -> None:
    p = ids.parse(raw)
    assert p is not None and (p.canonical, p.kind) == (canonical, kind)
    assert ids.normalize(raw) == canonical and ids.is_valid(raw)
    assert ids.normalize(canonical) == canonical  # idempotent


@pytest.mark.parametrize("raw", ["", "T123", "T12345", "CWE-", "CVE-2024-12", "GHSA-abcd-efgh", "XY-2", "hello",
                                 "T1059.0001", "D3-", "AC-"])
def test_rejects(raw: str) -> None:
    assert ids.parse(raw) is None and not ids.is_valid(raw)


def test_kinds_filter_and_parent() -> None:
    assert ids.is_valid("CVE-2020-0001", {"cve"}) and not ids.is_valid("CVE-2020-0001", {"cwe"})
    assert ids.parent_technique("t1059.1") == "T1059" and ids.parent_technique("T1059") is None
    assert ids.normalize_or_keep(" not-an-id ") == "not-an-id"


def test_extract_ids() -> None:
    text = ("APT28 (G0007) used attack.t1059.001 and T1003/001 to exploit CVE-2021-44228 (CWE-502, capec-66); "
            "see GHSA-jfh8-c2jp-5v3q, PYSEC-2021-66, D3-AL and AC-2(1). T1059.001 again. "
            "Not ids: T1, CVE-20, ac-2 in prose, 2024-3400.")
    assert ids.extract_ids(text) == ["G0007", "T1059.001", "T1003.001", "CVE-2021-44228", "CWE-502", "CAPEC-66",
                                     "GHSA-jfh8-c2jp-5v3q", "PYSEC-2021-66", "D3-AL", "AC-2(1)"]
    assert ids.extract_ids(text, kinds={"cve", "cwe"}) == ["CVE-2021-44228", "CWE-502"]


def test_validate_without_kb() -> None:
    c = ids.validate("t1086")
    assert c.syntax_ok and c.canonical == "T1086" and c.known is None and c.current == "T1086"
    bad = ids.validate("T99")
    assert not bad.syntax_ok and bad.canonical is None
