"""Fixtures for the review tests: a tiny knowledge base written with the KB's own store."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from secfoundry.core.records import Record, Relation
from secfoundry.kb.store import SourceRow, Store

SHARED = Path(__file__).resolve().parents[3].parent / "shared" / "data" / "soc"


def _r(id: str, type: str, name: str, desc: str = "", source: str = "t", rels=(), **attrs) -> Record:
    return Record(id=id, type=type, name=name, description=desc, source=source,
                  relations=[Relation(t, d) for t, d in rels], attributes=attrs)


CWES = {
    "CWE-74": ("Injection", []), "CWE-78": ("OS Command Injection", ["CWE-74"]),
    "CWE-89": ("SQL Injection", ["CWE-74"]), "CWE-95": ("Eval Injection", ["CWE-74"]),
    "CWE-94": ("Code Injection", ["CWE-74"]), "CWE-250": ("Execution with Unnecessary Privileges", []),
    "CWE-269": ("Improper Privilege Management", []), "CWE-798": ("Use of Hard-coded Credentials", []),
    "CWE-328": ("Weak Hash", []), "CWE-327": ("Broken Crypto", []), "CWE-295": ("Improper Certificate Validation", []),
    "CWE-22": ("Path Traversal", []), "CWE-1357": ("Reliance on Insufficiently Trustworthy Component", []),
    "CWE-693": ("Protection Mechanism Failure", []), "CWE-668": ("Exposure of Resource to Wrong Sphere", []),
    "CWE-120": ("Buffer Copy without Checking Size", []), "CWE-134": ("Uncontrolled Format String", []),
    "CWE-242": ("Use of Inherently Dangerous Function", []), "CWE-703": ("Improper Check of Exceptional Conditions", []),
    "CWE-502": ("Deserialization of Untrusted Data", []), "CWE-79": ("Cross-site Scripting", ["CWE-74"]),
}
CONTROLS = ["SI-10", "AC-6", "AC-3", "CM-6", "CM-7", "IA-5", "SC-28", "SC-13", "SC-8", "SR-3", "CM-2",
            "AC-17", "SI-16", "SI-7", "IA-2", "SI-11", "SC-39", "AC-4"]


def build_kb(db: Path) -> Path:
    st = Store(db)
    recs = [_r(c, "weakness", n, f"{n} weakness.", source="cwe", rels=[("child-of", p) for p in parents],
               mitigations=[{"description": f"Mitigate {n} by design."}]) for c, (n, parents) in CWES.items()]
    recs.append(_r("CWE-16", "cwe-category", "Configuration", source="cwe"))
    st.replace_source(SourceRow(name="cwe"), recs)
    ctl = [_r(c, "control", f"Control {c}", source="nist80053") for c in CONTROLS]
    st.replace_source(SourceRow(name="nist80053"), ctl)
    st.replace_source(SourceRow(name="attack"), [_r("T1059", "technique", "Command and Scripting Interpreter", source="attack"),
                                                 _r("T1190", "technique", "Exploit Public-Facing Application", source="attack")])
    st.replace_source(SourceRow(name="ctid"), [
        _r("SI-10", "mapping", "SI-10", source="ctid", rels=[("mitigates", "T1190")]),
        _r("CM-7", "mapping", "CM-7", source="ctid", rels=[("mitigates", "T1059")]),
        _r("AC-6", "mapping", "AC-6", source="ctid", rels=[("mitigates", "T1059")]),
    ])
    st.replace_source(SourceRow(name="owasp"), [
        _r("owasp:SQL_Injection_Prevention_Cheat_Sheet", "cheatsheet", "SQL Injection Prevention Cheat Sheet",
           "Use prepared statements with parameterized queries.", source="owasp", rels=[("related-weakness", "CWE-89")])])
    cac = [
        _r("cac:sshd_disable_root_login", "compliance-rule", "Disable SSH Root Login",
           "To disable root login via SSH, add or correct the following line in\nsshd config file\n\n```\nPermitRootLogin no\n```",
           source="complianceascode", rels=[("references-control", "AC-6")], severity="medium", nist=["AC-6", "AC-17"],
           rationale="Root logins are not attributable.", cis={"debian12": "5.1.20"}),
        _r("cac:sshd_disable_empty_passwords", "compliance-rule", "Disable SSH Access via Empty Passwords",
           "The appropriate\nconfiguration is used if no value is set for `PermitEmptyPasswords`.\n\n```\nPermitEmptyPasswords no\n```",
           source="complianceascode", severity="high", nist=["CM-6"], cis={"x": "1"}),
        _r("cac:sshd_set_max_auth_tries", "compliance-rule", "Set SSH authentication attempt limit",
           "```\nMaxAuthTries $sshd_max_auth_tries_value\n```", source="complianceascode", severity="medium", cis={"x": "1"}),
        _r("cac:sshd_disable_pubkey_auth", "compliance-rule", "Disable PubkeyAuthentication (no profile)",
           "```\nPubkeyAuthentication no\n```", source="complianceascode", severity="medium"),
        _r("cac:sysctl_kernel_randomize_va_space", "compliance-rule", "Enable Randomized Layout of Virtual Address Space",
           "The kernel parameter `kernel.randomize_va_space` should be set to `2`.", source="complianceascode",
           severity="medium", nist=["SC-30"], cis={"x": "1"}),
        _r("cac:sudo_remove_nopasswd", "compliance-rule", "Ensure Users Re-Authenticate - sudo NOPASSWD",
           "This should be disabled by making sure that the `NOPASSWD` tag does not exist in `/etc/sudoers`.",
           source="complianceascode", severity="medium", nist=["IA-11"], cis={"x": "1"}),
        _r("cac:sudo_add_use_pty", "compliance-rule", "sudo use_pty",
           "This should be enabled by making sure that the `use_pty` tag exists in `/etc/sudoers`.",
           source="complianceascode", severity="medium", cis={"x": "1"}),
        _r("cac:httpd_servertokens_prod", "compliance-rule", "Set httpd ServerTokens Directive to Prod",
           "Add or correct the following directive in `/etc/httpd/conf/httpd.conf`:\n\n```\nServerTokens Prod\n```",
           source="complianceascode", severity="medium", nist=["CM-6"]),
        _r("cac:httpd_server_configuration_display", "compliance-rule", "Disable Server Configuration Display",
           "If its functionality is unnecessary, comment out the module:\n\n```\n#LoadModule info_module modules/mod_info.so\n```",
           source="complianceascode", severity="medium", nist=["CM-7"]),
    ]
    st.replace_source(SourceRow(name="complianceascode"), cac)
    st.close()
    return db


@pytest.fixture(scope="session")
def kb_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_kb(tmp_path_factory.mktemp("kb") / "kb.sqlite")


@pytest.fixture()
def kbmap(kb_db: Path):
    from secfoundry.apps.review.kbmap import KBMap

    return KBMap(kb_db)


def require_engine(name: str):
    """The engine, or skip (fail under CI=true: `make test` installs them)."""
    from secfoundry.apps.review import engines

    e = engines.find(name)
    if e is None:
        msg = f"{name} not installed (make review-engines)"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(msg)
        pytest.skip(msg)
    return e


def require_shared() -> Path:
    if not SHARED.exists():
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"shared data missing: {SHARED}")
        pytest.skip(f"shared data missing: {SHARED}")
    return SHARED
