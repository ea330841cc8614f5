"""Relevance: a page naming a security identifier is security text whatever the model says.

ComplianceAsCode hardening rules crawled as web pages ("The kernel parameter ... should be set to
0", CCE ids) scored 0.27-0.42 with the default model, whose hard negatives include system
configuration man pages; 132 of 667 such pages were dropped on the throughput bench's input.
"""

from __future__ import annotations

import numpy as np

from secfoundry.corpus.process.keywords import KeywordStep
from secfoundry.corpus.process.relevance import FeatureConfig, RelevanceConfig, RelevanceModel, RelevanceStep
from secfoundry.core.documents import Document

CAC_PAGE = """# Disable Kernel Parameter for IPv4 Forwarding By Default

Posted by staff · 7 March 2025 · 13 min read

# Disable Kernel Parameter for IPv4 Forwarding By Default

- **Rule**: `sysctl_net_ipv4_conf_default_forwarding`
- **Severity**: medium
- **CCE**: CCE-86652-5, CCE-88797-6

## Description

The kernel parameter `net.ipv4.conf.default.forwarding` should be set to `0`.

## Rationale

IP forwarding permits the kernel to forward packets from one network interface to another. The ability to
forward packets between two networks is only appropriate for systems acting as routers.
"""


def says_no() -> RelevanceModel:
    """A model that scores every text ~0 (what the default model said about these pages)."""
    f = FeatureConfig(word_features=16, char_features=0)
    return RelevanceModel(f, np.zeros(16, dtype=np.float32), -8.0)


def test_identifier_keeps_a_compliance_rule_page():
    step = RelevanceStep(RelevanceConfig(), model=says_no())
    docs = [Document(id="cac", source="web:complianceascode", text=CAC_PAGE),
            Document(id="news", source="crawl", text="The kernel parameter controls how many files can be open. "
                     "Set it in /etc/sysctl.conf and reload. The CCE team met on Tuesday."),
            Document(id="cve", source="crawl", text="Patch notes: this release fixes CVE-2024-3905 in the router UI.")]
    kept, dropped = step.run_batch(docs)
    assert [d.id for d in kept] == ["cac", "cve"]
    assert kept[0].metadata["relevance_by"] == "identifier" and kept[0].metadata["relevance"] < 0.01
    assert [d.doc.id for d in dropped] == ["news"]


def test_identifier_override_can_be_switched_off():
    step = RelevanceStep(RelevanceConfig(id_override=False), model=says_no())
    kept, dropped = step.run_batch([Document(id="cac", source="web:complianceascode", text=CAC_PAGE)])
    assert not kept and dropped[0].reason.startswith("relevance:")


def test_cce_ids_pass_the_keyword_prefilter():
    long_page = CAC_PAGE + "\n" + " ".join(["The setting applies to every interface on the host."] * 12)
    d = KeywordStep().apply(Document(id="cac", source="web:complianceascode", text=long_page))
    assert d.doc is not None and any("CCE" in t for t in d.doc.metadata["keywords"]["top"])


ATOMIC_PAGE = """# Python Startup Hook - atomic_hook.pth (Linux)

Posted by staff · 16 March 2025 · 15 min read

# Atomic test: Python Startup Hook - atomic_hook.pth (Linux)

- **ATT&CK technique**: T1546.018 (Event Triggered Execution: Python Startup Hooks)
- **Platforms**: linux
- **Tactics**: privilege-escalation, persistence

Executes code by creating atomic_hook.pth in the site-packages directory.
"""


def test_technique_id_in_a_record_field_counts_in_the_body_does_not():
    step = RelevanceStep(RelevanceConfig(keyword_override_density=None), model=says_no())  # ids alone
    body_only = "Release notes. Build T1546 of the firmware adds a faster boot loader and a new theme."
    kept, dropped = step.run_batch([Document(id="atomic", source="web:atomic", text=ATOMIC_PAGE),
                                    Document(id="notes", source="crawl", text=body_only)])
    assert [d.id for d in kept] == ["atomic"] and kept[0].metadata["relevance_by"] == "identifier"
    assert [d.doc.id for d in dropped] == ["notes"]
