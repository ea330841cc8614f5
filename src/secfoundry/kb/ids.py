"""Security identifier validation and normalisation, used everywhere ids appear.

Pure syntax (no knowledge base needed): ``normalize("t1059.1") == "T1059.001"``,
``kind_of("CWE-79") == "cwe"``, ``extract_ids(text)``. With a knowledge base,
``resolve(id, kb)`` follows revoked/deprecated ids to their replacements
(``KnowledgeBase.resolve`` / ``.validate`` wrap this).

Accepted spellings (case-insensitive), canonical form on the right:

- ATT&CK techniques: ``T1059.001``, ``t1059.1``, ``T1059/001``, ``T1059-001``,
  ``attack.t1059.001`` (Sigma tag), ``T1059.001`` -> ``T1059.001``; other ATT&CK objects
  ``TA0002``, ``G0016``, ``S0002``, ``M1036``, ``DS0017``, ``DC0001``, ``C0001``, ``A0001``,
  ``DET0001``, ``AN0001``.
- ``CWE-79`` (``cwe79``, ``CWE 79``, ``CWE_79``), ``NVD-CWE-Other``, ``NVD-CWE-noinfo``;
  ``CAPEC-66``; ``CVE-2024-3400``.
- Advisories: ``GHSA-xxxx-xxxx-xxxx`` (body lower-case, as GitHub writes it), ``PYSEC-2021-1``,
  ``RUSTSEC-2021-0001``, ``GO-2022-0001``, ``OSV-2020-111`` and other ``PREFIX-YYYY-N`` OSV ids.
- D3FEND ``D3-AL``; NIST SP 800-53 ``AC-2``, ``AC-2(1)`` (``ac-2.1`` OSCAL form, ``AC-02(01)``).
- Namespaced KB ids of sources without a public id scheme: ``sigma:<uuid>``,
  ``atomic:<guid>``, ``owasp:<cheat sheet>``.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass
from functools import lru_cache
from typing import TYPE_CHECKING, Any, Iterable

if TYPE_CHECKING:  # pragma: no cover
    from secfoundry.kb.knowledge import KnowledgeBase

# ATT&CK object prefixes -> kind. Longest prefixes first in the regex below.
ATTACK_PREFIXES = {
    "T": "attack-technique", "TA": "attack-tactic", "G": "attack-group", "S": "attack-software",
    "M": "attack-mitigation", "DS": "attack-data-source", "DC": "attack-data-component",
    "C": "attack-campaign", "A": "attack-asset", "DET": "attack-detection-strategy",
    "AN": "attack-analytic",
}
NIST_FAMILIES = ("AC", "AT", "AU", "CA", "CM", "CP", "IA", "IR", "MA", "MP", "PE", "PL", "PM", "PS",
                 "PT", "RA", "SA", "SC", "SI", "SR")
KINDS = ("attack-technique", *sorted(set(ATTACK_PREFIXES.values()) - {"attack-technique"}), "cwe", "capec",
         "cve", "ghsa", "osv", "d3fend", "nist-control", "sigma", "atomic", "owasp")

_SEP = r"[\s._/:-]?"
# Full-string patterns (anchored by fullmatch). Groups capture the numeric parts.
_TECH = re.compile(r"(?:attack\.)?T(\d{4})(?:[./-](\d{1,3}))?", re.I)
_ATTACK_OTHER = re.compile(r"(?:attack\.)?(DET|TA|DS|DC|AN|G|S|M|C|A)(\d{4})", re.I)
_CWE = re.compile(rf"CWE{_SEP}(\d{{1,5}})", re.I)
_NVD_CWE = re.compile(r"NVD-CWE-(Other|noinfo)", re.I)
_CAPEC = re.compile(rf"CAPEC{_SEP}(\d{{1,5}})", re.I)
_CVE = re.compile(r"CVE[-_ ](\d{4})[-_ ](\d{4,7})", re.I)
_GHSA = re.compile(r"GHSA(-[23456789cfghjmpqrvwx]{4}){3}", re.I)
_OSV = re.compile(r"(PYSEC|RUSTSEC|GO|OSV|GSD|PSF|MAL|RSEC|BIT|UVI|DSA|DLA|USN|ALSA|RLSA|MGASA|SUSE-SU|"
                  r"openSUSE-SU|CURL|HSEC|LBSEC|RXSA)-(\d{4})-(\d+)", re.I)
_D3 = re.compile(r"D3-([A-Z0-9]{1,12})", re.I)
_NIST = re.compile(rf"({'|'.join(NIST_FAMILIES)})-0*(\d{{1,2}})(?:\(0*(\d{{1,2}})\)|\.0*(\d{{1,2}}))?", re.I)
_NS = re.compile(r"(sigma|atomic|owasp):(\S+)", re.I)

# Free-text patterns: the same shapes with word boundaries, spellings kept narrow so prose is not
# mistaken for ids: D3FEND and NIST ids only in upper case, no bare C0001/A0001 (campaign, asset).
_FIND = re.compile(
    r"(?<![\w-])(?:"
    r"(?P<tech>(?:attack\.)?T\d{4}(?:(?:\.|/)\d{3})?)"
    r"|(?P<other>(?:attack\.)?(?:DET|TA|DS|DC|AN|G|S|M)\d{4})"
    r"|(?P<cwe>CWE[-_ ]?\d{1,5}|NVD-CWE-(?:Other|noinfo))"
    r"|(?P<capec>CAPEC[-_ ]?\d{1,5})"
    r"|(?P<cve>CVE-\d{4}-\d{4,7})"
    r"|(?P<ghsa>GHSA(?:-[23456789cfghjmpqrvwx]{4}){3})"
    r"|(?P<osv>(?:PYSEC|RUSTSEC|GO|OSV|GSD|PSF|MAL)-\d{4}-\d+)"
    r"|(?-i:(?P<d3>D3-[A-Z][A-Z0-9]{0,11}))"
    rf"|(?-i:(?P<nist>(?:{'|'.join(NIST_FAMILIES)})-\d{{1,2}}(?:\(\d{{1,2}}\))?))"
    r")(?![\w-])",
    re.I,
)


@dataclass(frozen=True)
class ParsedId:
    canonical: str
    kind: str


@lru_cache(maxsize=1 << 16)
def parse(value: str) -> ParsedId | None:
    """Canonical form and kind of one id, or None when ``value`` is not a known id shape."""
    s = str(value).strip().strip("[]{}<>\"'`,;")
    if s.count("(") != s.count(")"):  # "(T1059)" or "AC-2(1)," from prose: drop stray brackets
        s = s.strip("()")
    if s.startswith("(") and s.endswith(")"):
        s = s[1:-1]
    if not s:
        return None
    if m := _TECH.fullmatch(s):
        sub = f".{int(m.group(2)):03d}" if m.group(2) else ""
        return ParsedId(f"T{m.group(1)}{sub}", "attack-technique")
    if m := _ATTACK_OTHER.fullmatch(s):
        prefix = m.group(1).upper()
        return ParsedId(f"{prefix}{m.group(2)}", ATTACK_PREFIXES[prefix])
    if m := _CWE.fullmatch(s):
        return ParsedId(f"CWE-{int(m.group(1))}", "cwe")
    if m := _NVD_CWE.fullmatch(s):
        return ParsedId("NVD-CWE-Other" if m.group(1).lower() == "other" else "NVD-CWE-noinfo", "cwe")
    if m := _CAPEC.fullmatch(s):
        return ParsedId(f"CAPEC-{int(m.group(1))}", "capec")
    if m := _CVE.fullmatch(s):
        return ParsedId(f"CVE-{m.group(1)}-{m.group(2)}", "cve")
    if _GHSA.fullmatch(s):
        return ParsedId("GHSA" + s[4:].lower(), "ghsa")
    if m := _OSV.fullmatch(s):
        return ParsedId(f"{m.group(1).upper()}-{m.group(2)}-{m.group(3)}", "osv")
    if m := _D3.fullmatch(s):
        return ParsedId(f"D3-{m.group(1).upper()}", "d3fend")
    if m := _NIST.fullmatch(s):
        enh = m.group(3) or m.group(4)
        return ParsedId(f"{m.group(1).upper()}-{int(m.group(2))}" + (f"({int(enh)})" if enh else ""),
                        "nist-control")
    if m := _NS.fullmatch(s):
        ns, rest = m.group(1).lower(), m.group(2)
        return ParsedId(f"{ns}:{rest.lower() if ns in ('sigma', 'atomic') else rest}", ns)
    return None


def normalize(value: str) -> str | None:
    """Canonical spelling of an id (``t1059.1`` -> ``T1059.001``), or None if not an id."""
    p = parse(value)
    return p.canonical if p else None


def normalize_or_keep(value: str) -> str:
    """Canonical spelling when ``value`` parses, else ``value`` stripped (KB keys stay usable)."""
    p = parse(value)
    return p.canonical if p else str(value).strip()


def kind_of(value: str) -> str | None:
    p = parse(value)
    return p.kind if p else None


def is_valid(value: str, kinds: Iterable[str] | None = None) -> bool:
    """Syntax check, optionally restricted to some kinds (``is_valid(x, {"cve"})``)."""
    p = parse(value)
    return p is not None and (kinds is None or p.kind in set(kinds))


def parent_technique(tid: str) -> str | None:
    """``T1059.001`` -> ``T1059``; None for a top-level technique or a non-technique."""
    p = parse(tid)
    if p and p.kind == "attack-technique" and "." in p.canonical:
        return p.canonical.split(".", 1)[0]
    return None


def extract_ids(text: str, kinds: Iterable[str] | None = None) -> list[str]:
    """All ids mentioned in ``text``, canonical, de-duplicated in order of first mention."""
    want = set(kinds) if kinds is not None else None
    out: dict[str, None] = {}
    for m in _FIND.finditer(text or ""):
        p = parse(m.group(0))
        if p and (want is None or p.kind in want):
            out.setdefault(p.canonical, None)
    return list(out)


# -- resolution against a knowledge base ----------------------------------------------------------


@dataclass
class IdCheck:
    """What the validator knows about one id."""

    input: str
    canonical: str | None
    kind: str | None
    syntax_ok: bool
    known: bool | None = None  # None: checked without a knowledge base
    name: str = ""
    revoked: bool = False
    deprecated: bool = False
    replaced_by: str | None = None  # the final, current replacement (chains followed)
    chain: tuple[str, ...] = ()  # every hop from the input to the replacement

    @property
    def current(self) -> str | None:
        """The id to use today: the replacement when there is one, else the canonical id."""
        return self.replaced_by or self.canonical

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["chain"] = list(self.chain)
        d["current"] = self.current
        return d


def validate(value: str, kb: "KnowledgeBase | None" = None) -> IdCheck:
    """Syntax check, plus (with ``kb``) existence and revoked/deprecated resolution."""
    p = parse(value)
    canonical = p.canonical if p else (str(value).strip() or None)
    check = IdCheck(input=value, canonical=p.canonical if p else None, kind=p.kind if p else None,
                    syntax_ok=p is not None)
    if kb is None or canonical is None:
        return check
    state = kb.store.id_state(canonical)
    if state is None and p is None:
        return check
    if state is None:
        check.known = False
        return check
    check.canonical, check.known = canonical, True
    check.name, check.revoked, check.deprecated = state.name, state.revoked, state.deprecated
    chain = [canonical]
    nxt = state.replaced_by
    while nxt and nxt not in chain and len(chain) < 16:
        chain.append(nxt)
        st = kb.store.id_state(nxt)
        nxt = st.replaced_by if st and (st.revoked or st.deprecated) else None
    if len(chain) > 1:
        check.replaced_by, check.chain = chain[-1], tuple(chain)
    return check


def resolve(value: str, kb: "KnowledgeBase") -> str | None:
    """The current id for ``value``: revoked/deprecated ids map to their replacement."""
    return validate(value, kb).current
