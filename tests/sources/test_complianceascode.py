"""ComplianceAsCode connector: rule.yml (Jinja-templated YAML), references, CIS control files."""

from __future__ import annotations

import re
import tarfile
from pathlib import Path

import pytest

from secfoundry.sources.base import Quarantine, Remote, Snapshot, registry
from secfoundry.sources.complianceascode import (
    ComplianceAsCodeSource,
    fragment_to_markdown as html_to_markdown,
    nist_controls,
    render_template,
)

from .helpers import make_tgz


@pytest.fixture(scope="module")
def parsed(mirror: Path):
    src = ComplianceAsCodeSource()
    snap = src.fetch(mirror)
    q = Quarantine()
    recs = list(src.records(snap, q))
    return src, snap, q, {r.id: r for r in recs}, recs


def test_registered():
    assert registry()["complianceascode"] is ComplianceAsCodeSource


def test_counts_match_the_tarball(parsed, mirror):
    _, snap, q, by_id, recs = parsed
    with tarfile.open(mirror / "complianceascode" / "rules-yaml.tar.gz") as tar:
        names = [m.name for m in tar.getmembers() if m.isfile() and m.name.endswith("/rule.yml")]
        # The data README's 2,575 also counts docs/workshop/data/accounts_tmout/rule_yml (not a rule file).
        assert sum(1 for m in tar.getmembers() if re.search(r"rule.yml$", m.name)) == 2575
    assert len(names) == 2574
    rules = [r for r in recs if r.type == "compliance-rule"]
    # Every rule.yml is a record except one upstream unit-test fixture that is an empty file.
    assert len(rules) == 2573 and len(q) == 1
    assert q.items[0]["entry"] == "tests/unit/ssg-module/data/group_dir/rule_dir/rule.yml"
    assert "not a YAML mapping" in q.items[0]["error"]
    assert len({r.id for r in recs}) == len(recs)
    assert sum(r.type == "benchmark-control" for r in recs) == 310 + 312
    assert snap.version == "2026-08-21"


def test_rule_record(parsed):
    r = parsed[3]["cac:accounts_password_minlen_login_defs"]
    assert r.name == "Set Password Minimum Length in login.defs" and r.type == "compliance-rule"
    assert r.license == "BSD-3-Clause" and r.attributes["severity"] == "medium"
    assert [(x.type, x.target) for x in r.relations if x.type == "references-control"] == [
        ("references-control", "IA-5"), ("references-control", "IA-5(1)"), ("references-control", "CM-6")]
    assert "CCE-80652-1" in r.aliases and r.attributes["identifiers"]["cce@rhel8"] == "CCE-80652-1"
    assert "`/etc/login.defs`" in r.description and "PASS_MIN_LEN $var_accounts_password_minlen_login_defs" in r.description
    assert "{{" not in r.description and "<tt>" not in r.description
    assert r.attributes["rationale"].startswith("Requiring a minimum password length")


def test_templated_rule_and_cis_links(parsed):
    r = parsed[3]["cac:sshd_disable_root_login"]
    assert r.name == "Disable SSH Root Login"
    rels = {(x.type, x.target) for x in r.relations}
    assert {("implements", "cis_debian12:5.1.20"), ("implements", "cis_ubuntu2404:5.1.20")} <= rels
    assert ("references-control", "AC-6(2)") in rels
    assert r.attributes["stig"]["stigid@ol8"] == "OL08-00-010550"
    ctl = parsed[3]["cis_debian12:5.1.20"]
    assert ctl.type == "benchmark-control" and ("implemented-by", "cac:sshd_disable_root_login") in {
        (x.type, x.target) for x in ctl.relations}
    assert ctl.attributes["levels"] and ctl.version == "CIS Benchmark for Debian 12 1.1.0"


def test_all_rendered_text_is_free_of_jinja(parsed):
    recs = [r for r in parsed[4] if r.type == "compliance-rule"]
    leftovers = [r.id for r in recs if "{{" in r.name + r.description + r.attributes["rationale"]]
    assert leftovers == []
    assert sum(bool(r.attributes["nist"]) for r in recs) > 1200


def test_documents(parsed):
    src, snap, _, by_id, _ = parsed
    from secfoundry.sources.complianceascode import rule_document

    doc = rule_document(by_id["cac:sshd_disable_root_login"])
    assert doc.text.startswith("# Disable SSH Root Login") and "- **NIST SP 800-53**: AC-6(2)" in doc.text
    assert "```\nPermitRootLogin no\n```" in doc.text and doc.license == "BSD-3-Clause"


def test_render_template_product_neutral():
    text = ("a: '{{{ full_name }}}'\n"
            "{{% if product in ['rhel9'] %}}\nb: rhel\n{{% else %}}\nb: other\n{{% endif %}}\n"
            "c: |-\n    {{{ describe_package_install(package=\"aide\") }}} {{{ xccdf_value(\"var_x\") }}}\n"
            "{{{ complete_ocil_entry_package(package=\"aide\") }}}\n")
    out = render_template(text)
    assert out == ("a: 'the operating system'\n\nb: other\n\n"
                   "c: |-\n    The <tt>aide</tt> package should be installed. $var_x\n\n")
    fast = render_template("d: {{{ weblink(link=\"https://x.org\") | indent(4) }}} {{{ mystery_macro(\"a: b\") }}}")
    assert fast == 'd: <a href="https://x.org">https://x.org</a> mystery macro (a b)'


def test_nist_and_html_helpers():
    assert nist_controls("IA-5(f),IA-5(1)(a),CM-6(a), AC-17 (1),junk") == ["IA-5", "IA-5(1)", "CM-6", "AC-17"]
    assert html_to_markdown("Use <tt>x</tt>:<pre>cmd --flag</pre><ul><li>one</li></ul>") == \
        "Use `x`:\n```\ncmd --flag\n```\n\n- one"


RULE = b"""documentation_complete: true
title: 'Good rule'
description: |-
    Install <tt>{{{ full_name }}}</tt> things.
rationale: Because.
severity: high
references:
    nist: AC-2(a)
"""


def test_malformed_rules_are_quarantined(tmp_path):
    tgz = make_tgz(tmp_path / "content.tar.gz", {
        "content-master/linux_os/guide/good_rule/rule.yml": RULE,
        "content-master/linux_os/guide/broken_rule/rule.yml": b"title: x\nreferences: {nist: [\n",
        "content-master/linux_os/guide/latin_rule/rule.yml": RULE.replace(b"Because.", "Parce que\xe9".encode("latin-1")),
        "content-master/linux_os/guide/notitle_rule/rule.yml": RULE.replace(b"title: 'Good rule'\n", b""),
        "content-master/linux_os/guide/badjinja_rule/rule.yml": RULE + b"{{% if %}}\n",
    })
    ctl_dir = tmp_path / "controls"
    ctl_dir.mkdir()
    (ctl_dir / "cis_x.yml").write_text("id: cis_x\ntitle: CIS X\nversion: '1'\ncontrols:\n"
                                       "  - id: 1.1\n    title: T\n    rules: [good_rule, var_y=3]\n", encoding="utf-8")
    (ctl_dir / "cis_bad.yml").write_text("id: cis_bad\ncontrols: {not: a list}\n", encoding="utf-8")
    q = Quarantine()
    recs = {r.id: r for r in ComplianceAsCodeSource().records(
        Snapshot("complianceascode", [tgz, ctl_dir / "cis_x.yml", ctl_dir / "cis_bad.yml"], version="v"), q)}
    # A template Jinja cannot compile falls back to stripping: the rule is kept.
    assert set(recs) == {"cac:good_rule", "cac:badjinja_rule", "cis_x:1.1"}
    assert recs["cac:good_rule"].description == "Install `the operating system` things."
    assert ("implements", "cis_x:1.1") in {(x.type, x.target) for x in recs["cac:good_rule"].relations}
    assert recs["cis_x:1.1"].attributes["variables"] == ["var_y=3"]
    errors = {(i["entry"] or Path(i["file"]).name).split("/")[-2 if i["entry"] else -1]: i["error"] for i in q.items}
    assert set(errors) == {"broken_rule", "latin_rule", "notitle_rule", "cis_bad.yml"}
    assert "invalid YAML" in errors["broken_rule"] and "not valid UTF-8" in errors["latin_rule"]
    assert "field 'title'" in errors["notitle_rule"] and "field 'controls'" in errors["cis_bad.yml"]


def test_truncated_tarball(tmp_path):
    members = {f"c/linux_os/r{i}/rule.yml": RULE.replace(b"Because.", bytes(range(65, 91)) * 60) for i in range(40)}
    data = make_tgz(tmp_path / "full.tar.gz", members).read_bytes()
    cut = tmp_path / "cut.tar.gz"
    cut.write_bytes(data[: len(data) // 2])
    q = Quarantine()
    recs = list(ComplianceAsCodeSource().records(Snapshot("complianceascode", [cut]), q))
    assert 0 < len(recs) < 40 and len(q) == 1 and "damaged archive" in q.items[0]["error"]


def test_live(http_server, fast_fetcher, monkeypatch, tmp_path):
    monkeypatch.setenv("SECFOUNDRY_HOME", str(tmp_path / "home"))
    http_server.add_file("cac/master.tar.gz", make_tgz(tmp_path / "x.tar.gz", {"c/a/good_rule/rule.yml": RULE}).read_bytes())
    http_server.add_file("cac/controls/cis_x.yml", "id: cis_x\ncontrols:\n  - id: '2'\n    rules: [good_rule]\n")
    http_server.fail("cac/master.tar.gz", [503, 503], retry_after="0")
    monkeypatch.setattr(ComplianceAsCodeSource, "tarball",
                        Remote(http_server.url("cac/master.tar.gz"), "complianceascode-content-master.tar.gz"))
    monkeypatch.setattr(ComplianceAsCodeSource, "raw_files",
                        (Remote(http_server.url("cac/controls/cis_x.yml")),))
    src = ComplianceAsCodeSource()
    snap = src.fetch(None, fetcher=fast_fetcher)
    recs = {r.id: r for r in src.records(snap)}
    assert set(recs) == {"cac:good_rule", "cis_x:2"} and snap.version == "2023-11-14"
    src.fetch(None, fetcher=fast_fetcher)
    assert "if-none-match" in http_server.requests_to("cac/controls/cis_x.yml")[-1].headers
