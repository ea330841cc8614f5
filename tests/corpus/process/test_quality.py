"""Security-aware quality filters: junk out, CVE/ATT&CK/CWE/advisory/log/rule documents never."""

from __future__ import annotations

from secfoundry.corpus.process.quality import QualityConfig, QualityStep
from secfoundry.core.documents import Document

LOREM = ("Lorem ipsum dolor sit amet, consectetur adipiscing elit, sed do eiusmod tempor incididunt ut "
         "labore et dolore magna aliqua. Ut enim ad minim veniam, quis nostrud exercitation ullamco.")
SPAM = ("Buy now! Best price on replica watches. Click here for the casino bonus. Act now, limited time "
        "offer, 100% free spins for new players. Online betting made easy, order now today.") * 2
REPEAT = "\n".join(["Click the button below to continue reading this article."] * 12)


def doc(text, source="crawl", **meta):
    return Document(id=source + str(hash(text)), text=text, source=source, metadata=meta)


def test_junk_dropped():
    q = QualityStep()
    assert q(doc(LOREM * 2)).reason == "quality:lorem_ipsum"
    assert q(doc(SPAM)).reason.startswith("quality:")
    assert q(doc(REPEAT)).reason.startswith("quality:repetition")
    assert q(doc("Too short.")).reason == "quality:too_short"
    assert q(doc("   \n ")).reason == "quality:empty"
    assert q(doc("", source="cve")).reason == "quality:empty"  # nothing to keep, even from a connector


def test_security_documents_protected():
    q = QualityStep()
    cve = doc("# CVE-2024-3094\n\nxz backdoor.", source="cve")
    sigma = doc("title: x\nlogsource:\n  product: windows\ndetection:\n  sel:\n    a|contains: '-enc'\n  condition: sel\n")
    log = doc("\n".join(f"Jan 12 10:46:4{i} host sshd[1]: Failed password for root from 203.0.113.{i}" for i in range(9)))
    attack = doc("T1059.001 PowerShell", source="attack")
    ids_only = doc("Fixed CWE-79 in 2.3.1.")  # short, but carries a security id
    for d in (cve, sigma, log, attack, ids_only):
        assert q(d).doc is not None, d.text
    # the unprotected checks do fire — that is what a generic pipeline would drop
    assert "too_short" in q.audit(cve).failed and q.audit(cve).protected == "high-value-source"
    assert q.audit(log).protected == "content-type:log"


def test_code_gets_only_degenerate_checks():
    q = QualityStep()
    code = doc("```python\n" + "\n".join(f"x{i} = f({i})  # {'%' * 5}" for i in range(30)) + "\n```\n",
               content_type="code")
    assert q(code).doc is not None
    dup = doc("\n".join(["print('hello')"] * 40), content_type="code")
    assert q(dup).reason == "quality:repetition_lines"


def test_prose_with_code_and_tables_not_symbol_junk():
    text = ("Defenders can detect the loader with the rule below, which matches its PowerShell stager "
            "and the registry run key it writes for persistence on infected hosts.\n\n"
            "```yaml\n" + "\n".join(f"  - '{{}}|$%^&*[]<>=;:{i}'" for i in range(40)) + "\n```\n\n"
            "| Type | Indicator |\n|---|---|\n" + "\n".join(f"| SHA256 | {'ab' * 32} |" for _ in range(5)))
    assert QualityStep()(doc(text)).doc is not None


def test_config_can_disable_protection():
    q = QualityStep(QualityConfig(protect_high_value=False, protect_ids=False, protect_structured=False))
    assert q(doc("CVE-2024-1 short", source="cve")).doc is None


def test_short_security_text_kept_short_general_text_dropped():
    q = QualityStep()
    text = "Lizar has a module to collect usernames and passwords stored in browsers."
    assert q(doc(text, relevance=0.93)).doc is not None  # the classifier found it relevant
    assert q(doc(text, relevance=0.2)).reason == "quality:too_short"
    assert q(doc("The RAT steals credentials and exfiltrates them to its C2 server.")).doc is not None  # keywords
    gen = doc("The weather was lovely and we walked along the beach until sunset.")
    assert q(gen).reason == "quality:too_short"


def test_phrase_gates_cover_every_regex_alternative():
    """The literal gates must never hide a match of the phrase regexes they guard."""
    from secfoundry.corpus.process import quality as q

    cases = {
        (q.LOREM_RE, q.LOREM_LITERALS): ["Lorem Ipsum", "dolor sit amet", "CONSECTETUR ADIPISCING"],
        (q.SPAM_RE, q.SPAM_LITERALS): ["Buy now", "order now", "click here", "limited time offer", "best price",
                                       "cheap viagra", "cheap cialis", "cheap pills", "viagra", "cialis", "Casino",
                                       "online betting", "payday loan", "payday loans", "weight loss pills",
                                       "make money fast", "work from home and earn", "100% free", "act now",
                                       "hot singles", "porn", "porno", "escort service", "replica watches"],
        (q.BOILERPLATE_LINE_RE, q.BOILERPLATE_LITERALS): [
            "All Rights Reserved", "cookies", "cookie policy", "cookie settings", "privacy policy", "terms of use",
            "terms of service", "subscribe to our newsletter", "subscribe to the newsletter", "sign up for",
            "follow us on", "share on", "share this", "javascript is disabled", "javascript required",
            "enable javascript", "log in to reply", "login to comment", "powered by WordPress", "skip to content",
            "skip to main content", "back to top", "read more", "leave a reply", "leave a comment"],
    }
    for (rx, literals), phrases in cases.items():
        for ph in phrases:
            text = f"Some text before. {ph} and after."
            assert rx.search(text), (rx.pattern[:30], ph)
            assert q.mentions_any(text.lower(), literals), ph
