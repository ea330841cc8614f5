"""Lexical evidence for extract-ttps: ATT&CK group/software names and aliases, technique names.

Names are matched with word boundaries. Entity names are proper nouns, so they are matched
case-sensitively; short all-lower-case tool names that are also English words (``at``, ``net``,
``ping``, ``route``) count only when written as a program (``net.exe``) or in code. Technique
names count when they are specific enough to be evidence by themselves: several words
("Scheduled Task", "Pass the Hash") or one distinctive word (PowerShell, Rundll32); a generic
one ("Services", "Local Account") only adds to the model's score.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from secfoundry.apps.intel.ttps_catalog import AttackCatalog

# Single-word technique names that are evidence on their own (tool/technique words, not prose).
_DISTINCT = re.compile(r"\d|[a-z][A-Z]|^(?:Keylogging|Timestomp|Rootkit|Steganography|Phishing|Spearphishing|"
                       r"Bootkit|Mshta|Msiexec|Odbcconf|Regsvcs|Regasm|InstallUtil|Rundll32|Regsvr32|Verclsid|"
                       r"Mavinject|MMC|CMSTP|Kerberoasting|AS-REP Roasting|Screensaver|Netsh|Launchctl|"
                       r"Crontab|Cron|Systemd|Odbcconf|Compiled HTML File|Trap|Emond)$")
# Technique names that read as ordinary prose: never evidence on their own.
_GENERIC = {"services", "local account", "domain account", "cloud account", "cloud accounts", "local accounts",
            "domain accounts", "default accounts", "at", "scripting", "cloud services", "web protocols",
            "file transfer protocols", "dns", "mail protocols", "standard encoding", "non-standard encoding",
            "junk data", "impact", "exfiltration", "traffic duplication", "one-way communication",
            "bidirectional communication", "dead drop resolver", "multi-hop proxy", "internal proxy",
            "external proxy", "domain fronting", "search engines", "social media", "code repositories",
            "threat intel vendors", "purchase technical data", "scan databases", "digital certificates",
            "domains", "server", "botnet", "virtual private server", "web services", "malware", "tool",
            "exploits", "vulnerabilities", "email addresses", "employee names", "credentials", "ip addresses",
            "network topology", "business relationships", "identify roles", "determine physical locations",
            "client configurations", "hardware", "software", "firmware", "network trust dependencies",
            "network security appliances", "cloud", "containers", "process", "application",
            "data", "encrypted channel", "data encoding", "data obfuscation", "protocol impersonation",
            "fallback channels", "multi-stage channels", "port knocking", "compromise accounts",
            "stage capabilities", "upload malware", "upload tool", "install digital certificate",
            "drive-by target", "link target", "sms pumping", "email accounts", "hidden files and directories",
            "command obfuscation", "file deletion", "indicator blocking", "debugger evasion",
            "user activity based checks", "time based checks", "system checks"}
_LOWER_WORDS = {"at", "net", "ping", "route", "reg", "expand", "cmd", "ftp", "tor", "arp", "whoami", "hostname",
                "ipconfig", "netstat", "tasklist", "systeminfo", "schtasks", "dsquery", "nltest", "esentutl",
                "certutil", "forfiles", "wevtutil", "vssadmin", "bitsadmin", "attrib", "xcopy", "sc", "nbtstat"}
_ENTITY_STOP = {"page", "net", "mis", "ping", "tor", "at", "reg", "sc", "off", "ace", "gold", "hi", "out", "ok",
                "nbtstat", "route", "expand", "cmd", "ftp", "arp", "zero", "mask", "sun", "ruler", "rover",
                "spark", "tiny", "bad", "empire", "hydra", "kitten", "molerats", "pony", "torch", "wiper",
                "flame", "raw", "trap", "cobalt", "agent", "dust",
                "carbon", "comet", "cuba", "medusa", "royal", "play", "action", "check", "ember", "smoke", "bear", "hammer"}


@dataclass
class Match:
    start: int
    end: int
    id: str
    surface: str


_WORD = re.compile(r"\w+")


class PhraseIndex:
    """Find many fixed phrases in text in one pass over its word tokens (a regex alternation of
    thousands of names is quadratic in practice). A phrase matches when its word tokens appear
    in sequence and the exact surface (punctuation included) is in the text at that place, not
    glued to a neighbouring word, dot or hyphen."""

    def __init__(self, phrases: dict[str, object], *, case_sensitive: bool, allow_extension: bool = False):
        self.cs = case_sensitive
        self.allow_extension = allow_extension  # "rundll32.exe" counts as "Rundll32"
        self.first: dict[str, list[tuple[int, str, object]]] = {}
        for phrase, payload in phrases.items():
            toks = _WORD.findall(phrase if self.cs else phrase.lower())
            if toks:
                self.first.setdefault(toks[0], []).append((len(toks), phrase if self.cs else phrase.lower(), payload))
        for v in self.first.values():
            v.sort(key=lambda x: -len(x[1]))  # longest phrase first

    def find(self, text: str) -> list[tuple[int, int, str, object]]:
        hay = text if self.cs else text.lower()
        if len(hay) != len(text):  # a few characters lower-case to two; keep offsets aligned
            hay = "".join(c.lower() if len(c.lower()) == 1 else c for c in text)
        toks = [(m.start(), m.end(), m.group(0)) for m in _WORD.finditer(hay)]
        out = []
        i = 0
        while i < len(toks):
            cands = self.first.get(toks[i][2])
            hit = None
            if cands:
                start = toks[i][0]
                for ntok, phrase, payload in cands:
                    end = start + len(phrase)
                    if hay[start:end] != phrase or i + ntok > len(toks) or toks[i + ntok - 1][1] != end:
                        continue
                    before = hay[start - 1] if start else " "
                    after = hay[end] if end < len(hay) else " "
                    if before in ".-" and start > 1 and hay[start - 2].isalnum():
                        continue
                    if after == "-" or (after == "." and end + 1 < len(hay) and hay[end + 1].isalnum()
                                        and not (self.allow_extension and hay[end + 1:end + 4] == "exe")):
                        continue
                    hit = (start, end, text[start:end], payload, ntok)
                    break
            if hit:
                out.append(hit[:4])
                i += hit[4]
            else:
                i += 1
        return out


class EntityMatcher:
    """Find ATT&CK groups, software and campaigns by name or alias."""

    def __init__(self, catalog: AttackCatalog):
        self.catalog = catalog
        forms: dict[str, set[str]] = {}
        lower_tools: dict[str, set[str]] = {}
        for surface, eid in catalog.entity_names():
            s = surface.strip()
            if len(s) < 3 and not re.search(r"\d", s):
                continue
            if s.lower() in _LOWER_WORDS or (s.islower() and len(s) <= 6):
                lower_tools.setdefault(s.lower(), set()).add(eid)
                continue
            if s.lower() in _ENTITY_STOP and not re.search(r"[A-Z].*[A-Z]|\d", s[1:]):
                continue
            forms.setdefault(s, set()).add(eid)
        self.forms = forms
        self.lower_tools = lower_tools
        self._index = PhraseIndex(forms, case_sensitive=True)
        self._tool_re = re.compile(r"(?i)(?<![\w.-])(\w+)\.exe\b|`(\w+)\b") if lower_tools else None

    def find(self, text: str) -> list[Match]:
        out: list[Match] = []
        for start, end, surface, ids in self._index.find(text):
            for eid in sorted(ids):
                out.append(Match(start, end, eid, surface))
        if self._tool_re is not None and (".exe" in text.lower() or "`" in text):
            for m in self._tool_re.finditer(text):
                g = 1 if m.group(1) else 2
                for eid in sorted(self.lower_tools.get(m.group(g).lower(), ())):
                    out.append(Match(m.start(g), m.end(g), eid, m.group(g)))
        return out

    def mask(self, text: str, matches: list[Match] | None = None) -> str:
        """``text`` with entity names replaced by a generic word of the entity's kind (the model
        learns behaviour, not names)."""
        matches = self.find(text) if matches is None else matches
        if not matches:
            return text
        out, pos = [], 0
        for m in sorted(matches, key=lambda m: (m.start, -m.end)):
            if m.start < pos:
                continue
            e = self.catalog.entities.get(m.id)
            out.append(text[pos:m.start])
            out.append({"group": "the group", "campaign": "the campaign"}.get(e.type if e else "", "the malware"))
            pos = m.end
        out.append(text[pos:])
        return "".join(out)


class TechniqueNameMatcher:
    """Technique (and sub-technique) names in text -> (technique id, strength)."""

    def __init__(self, catalog: AttackCatalog):
        self.catalog = catalog
        by_name: dict[str, set[str]] = {}
        for t in catalog.techniques.values():
            for n in [t.name, *t.aliases]:
                n = n.strip()
                if len(n) >= 3:
                    by_name.setdefault(n.lower(), set()).add(t.id)
        self.by_name = by_name
        self._index = PhraseIndex({n: n for n in by_name}, case_sensitive=False, allow_extension=True)

    @staticmethod
    def strength(name: str) -> float:
        """How much a bare mention of this name says (0..1)."""
        low = name.lower()
        if low in _GENERIC:
            return 0.15
        words = low.split()
        if len(words) >= 3:
            return 0.6
        if len(words) == 2:
            return 0.5
        return 0.55 if _DISTINCT.search(name) else 0.1

    def find(self, text: str) -> list[tuple[Match, float]]:
        out = []
        for start, end, surface, low in self._index.find(text):
            ids = self.by_name.get(low, set())
            canon = next((t.name for i in ids if (t := self.catalog.techniques.get(i))), surface)
            s = self.strength(canon)
            # A name shared by techniques in several places (e.g. sub-techniques of different
            # parents) is weaker evidence for each.
            for tid in sorted(ids):
                out.append((Match(start, end, tid, surface), s / len(ids)))
        return out
