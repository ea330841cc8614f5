"""The process steps' fast paths give what the plain code gives (issue #14 item 6: speed only):
the keyword scan over candidate positions, quality's n-gram and word counts, contenttype's letter
count and cached code split, PII's lower-cased ASCII scans and the digit-led address patterns."""

from __future__ import annotations

import random
import re
from collections import Counter

from secfoundry.corpus.process import contenttype as CT
from secfoundry.corpus.process import keywords as K
from secfoundry.corpus.process import pii as P
from secfoundry.corpus.process import pii_person as PP
from secfoundry.corpus.process.quality import _top_ngram_frac

RNG = random.Random(11)
VOCAB = ["password", "Password", "PASSWORD:", "token=", "api_key", "secret", "XSS", "xss", "sql", "injection",
         "SQL injection", "cross-site", "scripting", "buffer", "overflow", "CVE-2024-1234", "the", "a", "of",
         "Phone:", "tel", "+1 (202) 555-0143", "202-555-0143", "call", "1600", "Pennsylvania", "Avenue", "NW",
         "Washington,", "DC", "20500", "12", "Main", "Street", "x9f", "Ab3$kLm9Qz!", "=", ":", "\n", "\n\n", "-",
         "remote", "code", "execution", "Ransomware", "phishing", "C2", "ransomware", "é", "Straße", "İ"]


def rand_text(n: int = 120) -> str:
    return " ".join(RNG.choice(VOCAB) for _ in range(RNG.randint(0, n)))


def score_reference(text: str, kw: K.KeywordList) -> tuple[dict, float]:
    """The token-by-token scan score_text replaced (kept here as the reference)."""
    toks = K.TOKEN_RE.findall(text)
    low = [t.lower() for t in toks]
    hits: dict[str, int] = {}
    weighted = 0.0
    i, n = 0, len(toks)
    while i < n:
        matched = 0
        for table, seq in ((kw.exact, toks), (kw.folded, low)):
            for phrase, w, term in table.get(seq[i], ()):
                k = len(phrase)
                if tuple(seq[i:i + k]) == phrase:
                    hits[term] = hits.get(term, 0) + 1
                    weighted += w
                    matched = max(matched, k)
                    break
        i += max(matched, 1)
    return hits, weighted


def test_keyword_scan_matches_token_by_token_scan():
    kw = K.default_keywords()
    for _ in range(300):
        t = rand_text()
        s = K.score_text(t, kw)
        hits, weighted = score_reference(t, kw)
        word_hits = {k: v for k, v in s.hits.items() if k not in {p[2] for p in kw.patterns}}
        assert word_hits == {k: v for k, v in hits.items() if k not in {p[2] for p in kw.patterns}}
        pat_w = sum(w * min(len(p.findall(t)), 5) for p, w, _ in kw.patterns)
        assert s.weighted == round(weighted + pat_w, 3)


def test_quality_ngram_fraction_matches_the_tuple_counter():
    def ref(words, n=3):
        if len(words) < n + 10:
            return 0.0
        grams = Counter(tuple(words[i:i + n]) for i in range(len(words) - n + 1))
        gram, count = grams.most_common(1)[0]
        if count < 3:
            return 0.0
        return count * sum(len(w) for w in gram) / (sum(len(w) for w in words) or 1)

    for _ in range(300):
        words = [RNG.choice(["a", "bb", "ccc", "dd", "e"]) for _ in range(RNG.randint(0, 60))]
        assert _top_ngram_frac(words) == ref(words)


def test_letter_count_and_cached_split_match():
    for _ in range(300):
        s = rand_text(20)
        assert CT._letters(s) == len(CT.LETTER_RE.findall(s))
    text = "Intro line here.\n\n```python\nprint(1)\n```\n\n| a | b |\n|---|---|\n\nMore prose follows now.\n"
    first = CT.strip_non_prose(text)
    assert CT.strip_non_prose(text) == first
    assert first[1] == len("```python\nprint(1)\n```")


def test_lower_cased_pii_scans_match_case_insensitive_ones():
    pairs = [(P.SECRET_KV_RE, P.SECRET_KV_LOW), (P.SECRET_KEY_TRIGGER, P.SECRET_KEY_TRIGGER_LOW),
             (P.PHONE_CONTEXT_RE, P.PHONE_CONTEXT_LOW)]
    for _ in range(300):
        t = rand_text().encode("ascii", "ignore").decode()
        for rx, low in pairs:
            assert [m.span() for m in rx.finditer(t)] == [m.span() for m in low.finditer(t.lower())]
    bad = re.compile(r"Secret", re.I)
    try:
        P._lower_variant(bad)
    except ValueError:
        pass
    else:
        raise AssertionError("an upper-case pattern must be refused")


def test_digit_led_address_patterns_match_the_look_behind_form():
    old = [re.compile(r"(?<![\w.:/-])\d{1,6}" + rx.pattern[len(r"\d(?<![\w.:/-]\d)\d{0,5}"):])
           for rx in (PP.US_ADDRESS_RE, PP.US_ADDRESS_STRICT_RE)]
    samples = ["Ship to 1600 Pennsylvania Avenue NW, Washington, DC 20500 today.", "v1.2 12 Main Street",
               "/x/12 Main Street", "a-12 Main Street", "12 Main Street", "x12 Main Street", ":7 Oak Road, Springfield, IL 62704"]
    for t in samples + [rand_text() for _ in range(300)]:
        for o, n in zip(old, (PP.US_ADDRESS_RE, PP.US_ADDRESS_STRICT_RE)):
            assert [m.span() for m in o.finditer(t)] == [m.span() for m in n.finditer(t)], t


def test_pii_scrub_is_unchanged_on_mixed_case_secrets():
    s = P.PIIScrubber()
    text = ("Config dump:\nAPI_KEY = 'A1b2C3d4E5f6G7h8J9k0'\nPassword: Hunter2Secret!\nthe PASSWORD is Zx9!kLm0Qq\n"
            "Call me: +1 (202) 555-0143 or TEL: 202-555-0143\n")
    out, counts = s.scrub(text)
    assert counts["SECRET"] >= 3 and counts["PHONE"] >= 1, (out, counts)
    assert "A1b2C3d4E5f6G7h8J9k0" not in out and "Hunter2Secret!" not in out and "Zx9!kLm0Qq" not in out


def test_re2_prose_masks_match_re_on_ascii(monkeypatch):
    assert CT._NOISE_RE2 is not None, "google-re2 is a declared dependency"
    samples = ["See CVE-2024-1234 and GHSA-abcd-efgh-ijkl in v1.2.3-beta at /usr/lib/x.so or C:\\Win\\sys32.",
               "java.lang.Object getValue() setHTTPHeader deadbeefdeadbeef0123 CVSS:3.1/AV:N/AC:L hxxp://evil[.]com/x",
               "T1059.001 TA0002 M1042 S0154 a_b_c www.example.com ftp://h/p GO-2024-1 DS0009 plain words here"]
    words = ["é", "naïve.café.crème", "Straße/Weg/x", "\n", "日本語", "CVE-2020-1234é", "ωmega", "cve", "CVE-2021-44228", "fooBar", "x.y.z", "1.2", "/a/b", "\\\\srv\\share", "http://a.b/c", "word", "T1003",
             "abcdef0123456789", "under_score_name", "C2", "M1", "v10.4.1", "AV:N/AC:H", "ok.", "(x)", "#"]
    for _ in range(300):
        samples.append(" ".join(RNG.choice(words) for _ in range(RNG.randint(0, 30))))
    for t in samples:
        assert CT._mask_ids(t) == CT.NOISE_RE.sub(" ", CT.URL_RE.sub(" ", t))
        if t.isascii():
            assert CT._URL_RE2.sub(" ", t) == CT.URL_RE.sub(" ", t)
            assert CT._NOISE_RE2.sub(" ", t) == CT.NOISE_RE.sub(" ", t)
        fast = CT._prose_part(t)
        monkeypatch.setattr(CT, "_NOISE_RE2", None)
        assert CT._prose_part(t) == fast
        monkeypatch.undo()
