"""Dedup judged by redundancy left and distinct entities lost; the paragraph step's entity guard."""

from __future__ import annotations

from secfoundry.corpus.prepare.dedup_metrics import entities_lost, jaccard, pair_stats, redundancy
from secfoundry.corpus.prepare.dedup_paragraph import ParagraphDedup, ParagraphDedupConfig
from secfoundry.corpus.prepare.identity import identity, identity_key
from secfoundry.core.documents import Document

from .helpers import fit_and_run
from .test_dedup import prose

ORACLE = ("Vulnerability in the Oracle {p} product of Oracle Fusion Middleware (component: Web Services). "
          "Supported versions that are affected are 12.2.1.3.0 and 12.2.1.4.0. Easily exploitable vulnerability "
          "allows unauthenticated attacker with network access via HTTP to compromise Oracle {p}. Successful "
          "attacks of this vulnerability can result in takeover of Oracle {p}.")
TRACE = ("Call Trace:\n <TASK>\n dump_stack_lvl+0x48/0x70\n print_report+0xd2/0x660\n kasan_report+0xd4/0x110\n"
         " __asan_load8+0x82/0xb0\n process_one_work+0x3bb/0x6e0\n worker_thread+0x2c7/0x720\n kthread+0x18c/0x1d0\n"
         " ret_from_fork+0x31/0x60\n </TASK>")


def D(i, text, source="cve", title=""):
    return Document(id=str(i), text=text, source=source, title=title)


def test_identity_and_key():
    osv = "# PYSEC-2020-342: PYSEC-2020-342 in apache-skywalking\n\n- **Aliases**: CVE-2020-13921, GHSA-x9v2-4xqf-4q9r\n"
    assert identity_key(identity(osv)) == "CVE-2020-13921"
    ghsa = "# GHSA-x9v2-4xqf-4q9r: SQL injection in skywalking\n\n- **Aliases**: CVE-2020-13921\n"
    assert identity_key(identity(ghsa)) == "CVE-2020-13921"
    assert identity_key(identity("# Extra Window Memory Injection (T1055.011)\n\nbody mentions CVE-2020-1")) == "T1055.011"
    assert identity("# A blog post\n\nIt mentions CVE-2020-1 in the body only.") == frozenset()
    assert identity_key(identity("Published: 2025-01-01\n\n# CVE-2018-2711\n\ntext", "")) == "CVE-2018-2711"


def test_paragraph_step_never_empties_a_distinct_entity(tmp_path):
    """Oracle-template and kernel stack-trace advisories about different CVEs keep their text;
    a copy about the same CVE still loses its repeated paragraphs."""
    docs = []
    for i, cve in enumerate(["CVE-2018-2711", "CVE-2021-2394", "CVE-2019-2725", "CVE-2020-14882"]):
        docs.append(D(f"o{i}", f"# {cve}\n\n{ORACLE.format(p='WebLogic Server')}\n\n- **Published**: 2021-01-01\n"))
    for i, cve in enumerate(["CVE-2024-26600", "CVE-2024-26601", "CVE-2024-26602"]):
        docs.append(D(f"k{i}", f"# {cve}\n\nIn the Linux kernel, the following vulnerability has been resolved: "
                           f"a use-after-free in the worker pool.\n\n{TRACE}\n"))
    docs.append(D("o-mirror", f"# CVE-2018-2711\n\n{ORACLE.format(p='WebLogic Server')}\n\n{prose(5, 60)}\n", source="nvd"))
    kept, dropped = fit_and_run(ParagraphDedup(), docs, tmp_path)
    by_id = {d.id: d for d in kept}
    assert not dropped
    for d in docs[:-1]:
        assert by_id[d.id].text.strip() == d.text.strip(), d.id  # untouched
    assert ORACLE.format(p="WebLogic Server") not in by_id["o-mirror"].text  # same entity: repeat removed
    loss = entities_lost(docs, kept)
    assert loss.n_lost == 0


def test_without_the_guard_template_paragraphs_empty_distinct_advisories(tmp_path):
    docs = [D(i, f"# {cve}\n\n{ORACLE.format(p='WebLogic Server')}\n") for i, cve in
            enumerate(["CVE-2018-2711", "CVE-2021-2394", "CVE-2019-2725"])]
    kept, dropped = fit_and_run(ParagraphDedup(ParagraphDedupConfig(entity_guard=False)), docs, tmp_path)
    loss = entities_lost(docs, kept)
    assert loss.n_lost == 2 and {k for _, k, _ in loss.lost} == {"CVE-2021-2394", "CVE-2019-2725"}


def test_redundancy_and_entity_loss_metrics():
    a, b = prose(1, 120), prose(2, 120)
    assert redundancy([D(1, a), D(2, b)]).fraction == 0.0
    assert redundancy([D(1, a), D(2, a)]).fraction == 1.0
    r = redundancy([D(1, a), D(2, a + "\n\n" + b, source="web")])
    assert 0.3 < r.fraction < 0.8 and r.by_source["cve"][1] == r.by_source["cve"][0]
    osv = D("osv", "# PYSEC-2020-1: x\n\n- **Aliases**: CVE-2020-10001\n\n" + a, source="osv")
    ghsa = D("ghsa", "# GHSA-2345-6789-cfgh: x\n\n- **Aliases**: CVE-2020-10001\n\n" + a, source="ghsa")
    other = D("c2", "# CVE-2020-20002\n\n" + a)
    before = [osv, ghsa, other]
    assert entities_lost(before, [osv, other]).n_lost == 0  # the GHSA mirror of the same CVE went
    lost = entities_lost(before, [osv, ghsa])
    assert lost.n_lost == 1 and lost.lost[0][1] == "CVE-2020-20002" and lost.removed == 1
    emptied = Document(id="c2", text="# CVE-2020-20002\n", source="cve")
    assert entities_lost(before, [osv, ghsa, emptied]).lost == [("c2", "CVE-2020-20002", "emptied")]


def test_pair_stats():
    a = prose(3, 200)
    ps = pair_stats([("x", "y"), ("x", "z")], [D("x", a), D("y", "Posted 2025-01-01\n\n" + a)])
    assert ps.pairs == 2 and ps.both_kept == 1 and ps.median_jaccard > 0.9
    assert jaccard(a, prose(4, 200)) < 0.2


def test_fused_dedup_step_one_phase(tmp_path):
    """`dedup` = exact, then MinHash on whole documents, then paragraphs of the survivors."""
    from secfoundry.corpus.prepare.dedup import Dedup

    from .test_dedup import planted_set

    docs, truth = planted_set()
    shared = prose(7, 60)
    docs = docs + [D("x1", docs[0].text, source="web")]  # an exact copy
    docs += [D(f"p{i}", f"# Page {i}\n\n{shared}\n\n{prose(300 + i)}", source="web") for i in range(3)]
    docs += [D(f"o{i}", f"# {cve}\n\n{ORACLE.format(p='WebLogic Server')}\n") for i, cve in
             enumerate(["CVE-2018-2711", "CVE-2021-2394"])]
    kept, dropped = fit_and_run(Dedup(), docs, tmp_path, parts=3)
    reasons = {d.doc.id: d.reason for d in dropped}
    assert reasons["x1"] == "dedup:exact"
    near = {(d.doc.id, d.doc.metadata["duplicate_of"]) for d in dropped if d.reason == "dedup:near"}
    assert near <= truth and len(near) >= 0.95 * len(truth)
    by_id = {d.id: d for d in kept}
    assert shared in by_id["p0"].text and shared not in by_id["p1"].text and by_id["p1"].metadata["paragraphs_removed"] == 1
    assert all(by_id[f"o{i}"].text.strip() == docs[-2 + i].text.strip() for i in range(2))
    assert sum(d.id.startswith("cwe") for d in kept) == 30
    assert entities_lost(docs, kept).n_lost == 0


def test_minhash_guard_compares_what_documents_are_about(tmp_path):
    """Parent/child CWE pages that name each other, and NIST "-1" controls of different families,
    are near-identical templates about different entities: never merged."""
    from secfoundry.corpus.prepare.dedup_minhash import MinHashDedup

    body = prose(11, 240)
    docs = [D("c162", f"# CWE-162: Improper Neutralization of Trailing Special Elements\n\n{body}\n\nParentOf CWE-163.", "cwe"),
            D("c163", f"# CWE-163: Improper Neutralization of Multiple Trailing Special Elements\n\n{body}\n\nChildOf CWE-162.", "cwe"),
            D("ac1", f"# AC-1: Policy and Procedures\n\n{body}", "nist80053"),
            D("si1", f"# SI-1: Policy and Procedures\n\n{body}", "nist80053"),
            D("osv", f"# PYSEC-2021-7: x\n\n- **Aliases**: CVE-2021-33203\n\n{body}", "osv"),
            D("ghsa", f"# GHSA-68w8-qjq3-2gfm: x\n\n- **Aliases**: CVE-2021-33203\n\n{body}", "osv")]
    from secfoundry.corpus.prepare.dedup_minhash import MinHashDedupConfig

    # without the title guard the OSV record and its GHSA alias twin (same CVE) merge ...
    kept, dropped = fit_and_run(MinHashDedup(MinHashDedupConfig(title_guard=False)), docs, tmp_path / "a")
    assert {(d.doc.id, d.doc.metadata["duplicate_of"]) for d in dropped} == {("ghsa", "osv")}
    assert entities_lost(docs, kept).n_lost == 0
    # ... with it (the default) they stay — different records with their own ids and titles; the
    # paragraph pass then trims the twin's shared text — while a crawled copy (same title) merges
    docs.append(D("ghsa-copy", "Posted 2025-01-02\n\n" + docs[-1].text + "\n\nShare this page.", "web:blog"))
    kept, dropped = fit_and_run(MinHashDedup(), docs, tmp_path / "b")
    assert {(d.doc.id, d.doc.metadata["duplicate_of"]) for d in dropped} == {("ghsa-copy", "ghsa")}
    assert entities_lost(docs, kept).n_lost == 0


def test_minhash_title_guard_keeps_sibling_rules(tmp_path):
    """One-template records whose texts are near-identical but whose titles differ are different
    records (ComplianceAsCode ownership/permissions rules; a Sigma rule and a crawled page of a
    sibling rule); their crawled copies, which keep the title heading, still merge."""
    from secfoundry.corpus.prepare.dedup import Dedup

    body = prose(31, 240)
    docs = [D("own", f"# Verify ownership of log files\n\n- **Severity**: medium\n\n{body}", "complianceascode"),
            D("perm", f"# Site news\n\nPosted by staff\n\n# Verify permissions of log files\n\n- **Severity**: medium\n\n{body}",
              "web:complianceascode"),
            D("own-copy", f"# Site news\n\nPosted by staff\n\n# Verify ownership of log files\n\n- **Severity**: medium\n\n{body}",
              "web:complianceascode")]
    # two rules with one title but different rule ids (ComplianceAsCode has such pairs)
    docs += [D(f"web-{r}", f"# Verify ownership of log files\n\nPosted 2025-03-0{i}\n\n- **Rule**: `{r}`\n\n{body}",
               "web:complianceascode") for i, r in enumerate(("file_ownerships_var_log", "file_groupownerships_var_log"))]
    kept, dropped = fit_and_run(Dedup(), docs, tmp_path)
    assert [(d.doc.id, d.reason, d.doc.metadata.get("duplicate_of")) for d in dropped] == [("own-copy", "dedup:near", "own")]
    assert {d.id for d in kept} == {"own", "perm", "web-file_ownerships_var_log", "web-file_groupownerships_var_log"}
    assert identity_key(identity(docs[-1].text)) == "RULE:file_groupownerships_var_log"


def test_connector_records_without_ids_are_their_own_entities(tmp_path):
    """Two ComplianceAsCode rules from one template are distinct records; a crawled copy of one
    (another source) is still a duplicate."""
    from secfoundry.corpus.prepare.dedup import Dedup

    def rule(b):
        return (f"# Disable the {b} SELinux Boolean\n\n- **Rule**: `sebool_{b}`\n- **Severity**: medium\n\n## Description\n\n"
                f"By default, the SELinux boolean `{b}` is disabled. If this setting is enabled, it should be disabled. "
                f"The SELinux boolean `{b}` should be disabled. {prose(21, 120)}\n")
    docs = [Document(id=f"cac:sebool_{b}", text=rule(b), source="complianceascode")
            for b in ("fenced_can_ssh", "httpd_setrlimit", "cobbler_use_nfs")]
    docs.append(Document(id="web:copy", text="Posted 2025-01-02\n\n" + rule("httpd_setrlimit"), source="web:blog"))
    kept, dropped = fit_and_run(Dedup(), docs, tmp_path)
    assert {d.doc.id for d in dropped} == {"web:copy"}
    assert entities_lost(docs, kept).n_lost == 0
