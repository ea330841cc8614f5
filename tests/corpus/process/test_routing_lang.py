"""Content-type routing and prose-only language ID."""

from __future__ import annotations

import gzip
import itertools
import json

import pytest

from secfoundry.corpus.process.contenttype import ContentTypeStep, detect_rule, prose_part, route
from secfoundry.corpus.process.langid import LanguageStep, detect
from secfoundry.core.documents import Document

SIGMA = """title: Suspicious Encoded PowerShell
id: 1a2b3c4d-0000-4000-8000-000000000001
logsource:
    category: process_creation
    product: windows
detection:
    selection:
        CommandLine|contains: ' -enc '
    condition: selection
level: high
"""
YARA = 'rule Evil_Loader : loader {\n  strings:\n    $a = "evil" ascii\n  condition:\n    $a\n}\n'
SNORT = 'alert tcp $EXTERNAL_NET any -> $HOME_NET 445 (msg:"SMB exploit attempt"; flow:to_server; sid:1000001; rev:1;)'
LOG = "\n".join(f"2024-05-0{i} 10:15:3{i} sshd[88{i}]: Failed password for root from 198.51.100.{i} port 5221{i}"
                for i in range(1, 8))
CODE = "import os\nimport sys\n\ndef main():\n    for p in sys.argv[1:]:\n        os.remove(p)\n\nmain()\n"
PROSE = ("Credential dumping from LSASS remains one of the most common post-exploitation steps. "
         "Defenders should monitor process access events and alert on unusual handles.")


def test_route_types():
    assert route(SIGMA).content_type == "rule" and detect_rule(SIGMA) == "sigma"
    assert route(YARA).content_type == "rule" and detect_rule(YARA) == "yara"
    assert route(SNORT).content_type == "rule" and detect_rule(SNORT) == "snort"
    assert route(LOG).content_type == "log"
    assert route(CODE).content_type == "code"
    assert route(f"```python\n{CODE}```\n").content_type == "code"
    assert route(PROSE).content_type == "prose"
    assert route('{"cveMetadata": {"cveId": "CVE-2024-1"}}').content_type == "record"
    assert route("Short text", source="cve").content_type == "record"
    assert route("anything", source="sigma").content_type == "rule"


def test_prose_part_masks_code_ids_and_versions():
    text = ("# Fix\n\nUpgrade OpenSSL 3.0.7 to fix CVE-2023-0286 in /usr/lib/ssl/libssl.so now please.\n\n"
            "```bash\napt-get install --only-upgrade openssl\n```\n\n| a | b |\n|---|---|\n| 1 | 2 |\n")
    p = prose_part(text)
    assert "apt-get" not in p and "3.0.7" not in p and "CVE-2023-0286" not in p and "| 1 |" not in p
    assert "Upgrade OpenSSL" in p


def test_step_annotates():
    doc = ContentTypeStep()(Document(id="x", text=SIGMA, source="crawl")).doc
    assert doc.metadata["content_type"] == "rule"


@pytest.fixture(scope="module")
def cve_descriptions(datasets_dir):
    path = datasets_dir / "cve-records.jsonl.gz"
    with gzip.open(path, "rt") as f:
        rows = [json.loads(x) for x in itertools.islice(f, 0, None, 40)]  # every 40th: ~970
    return [r["description"] for r in rows if r.get("description")]


def test_cve_descriptions_kept(cve_descriptions):
    """Routing + prose-only language ID keeps >= 99% of real CVE descriptions, where fastText's
    raw English score is below 0.65 for several percent of them."""
    step = LanguageStep()
    kept = sum(step.classify(d, route(d).content_type).keep for d in cve_descriptions)
    raw_ok = sum(detect(d).get("en", 0.0) >= 0.65 for d in cve_descriptions)
    assert kept / len(cve_descriptions) >= 0.99
    assert kept > raw_ok


def test_non_english_prose_dropped_code_kept():
    step = LanguageStep()
    de = Document(id="de", source="crawl", text=(
        "Die Bundesregierung hat heute neue Maßnahmen zur Förderung der erneuerbaren Energien beschlossen. "
        "Der Ausbau von Windkraft und Solaranlagen soll in den kommenden Jahren deutlich beschleunigt werden."))
    d = step(de)
    assert d.doc is None and d.reason.startswith("lang:de")
    # code with a short German comment: structured, not enough prose to judge
    code = Document(id="c", source="crawl", text="```python\n# Datei löschen\nos.remove(pfad)\n```\n",
                    metadata={"content_type": "code"})
    assert step(code).doc is not None
    en = step(Document(id="en", text=PROSE, source="crawl")).doc
    assert en.metadata["lang"] == "en"
