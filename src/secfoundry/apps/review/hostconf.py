"""Host configuration checks derived from the ComplianceAsCode rules in the knowledge base.

No engine we can run offline covers sshd_config, sysctl.conf, sudoers or Apache httpd, so the
checks are *derived from the KB's rule text*, not written by hand: each ``cac:sshd_*``,
``cac:sysctl_*``, ``cac:sudo*`` and ``cac:httpd_*`` rule's description names the directive and
value it wants (a fenced example line, "should be set to `V`", "make sure that the `X` tag
exists / does not exist", "comment out ... `#LoadModule ...`", "remove the following").
Values given as XCCDF variables are resolved from ``mappings.yaml`` (``cac_variables``); the
few rules whose text has no example carry an override there. Title, severity, NIST controls and
CIS ids of every finding come from the rule's KB record.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from secfoundry.apps.review.kbmap import KBMap, tables

_FENCE = re.compile(r"```\s*\n(.*?)```", re.S)
_SET_TO = re.compile(r"kernel parameter `([\w.\-*]+)` should be set to `([^`]+)`")
_SYSCTL_LINE = re.compile(r"^\s*([a-z0-9_]+(?:\.[\w\-*]+)+)\s*=\s*(\S+)\s*$", re.M)
_TAG_EXISTS = re.compile(r"`([!\w]+)(?:=\$?\w+)?` (?:tag|option) exists")
_TAG_ABSENT = re.compile(r"`([!\w]+)`(?: and/or `([!\w]+)`)? (?:tag |option )?do(?:es)? not exist")


@dataclass
class HostCheck:
    rule_id: str            # cac:<rule>
    family: str             # sshd | sysctl | sudoers | apache
    directive: str
    op: str                 # eq | le | subset | require_token | forbid_token | forbid_line | set_to
    values: list[str] = field(default_factory=list)
    absent_ok: bool = False
    example: str = ""


def _resolve(value: str) -> str:
    value = value.strip().strip("*")
    m = re.fullmatch(r"\$(\w+)", value)
    if m:
        return str(tables().get("cac_variables", {}).get(m.group(1), ""))
    return value


def in_profile(rec: dict[str, Any]) -> bool:
    """Rules selected by a CIS benchmark or referencing NIST/STIG: ComplianceAsCode also holds
    opposite rules for other profiles (sshd_disable_pubkey_auth, sshd_enable_x11_forwarding...)
    that would always contradict each other."""
    a = rec.get("attributes") or {}
    return bool(a.get("cis_controls") or a.get("cis") or a.get("nist") or a.get("stig"))


def derive(kb: KBMap) -> list[HostCheck]:
    """All host checks the KB's ComplianceAsCode rules support (empty without a KB)."""
    t = tables()
    upper = set(t.get("sshd_upper_bound", []))
    subset = set(t.get("sshd_subset", []))
    out: list[HostCheck] = []
    for rec in filter(in_profile, kb.cac_rules("sshd_")):
        rid, desc = rec["id"], rec["description"] or ""
        ov = t.get("cac_overrides", {}).get(rid[4:])
        if ov:
            out.append(HostCheck(rid, "sshd", ov["directive"], ov.get("compare", "eq"), [str(ov["value"])],
                                 example=f"{ov['directive']} {ov['value']}"))
            continue
        for block in _FENCE.findall(desc)[:1]:
            line = block.strip().splitlines()[0].strip() if block.strip() else ""
            parts = line.split(None, 1)
            if len(parts) != 2 or not re.fullmatch(r"[A-Za-z]+", parts[0]):
                continue
            key, raw = parts
            val = _resolve(raw)
            if not val:
                continue
            op = "le" if key in upper and val.isdigit() else ("subset" if key in subset else "eq")
            absent_ok = "if no value is set" in desc or "default SSH configuration" in desc and "correct" in desc
            out.append(HostCheck(rid, "sshd", key, op, val.split("|") if op == "eq" else [val],
                                 absent_ok=absent_ok, example=f"{key} {val.split('|')[0]}"))
    for rec in filter(in_profile, kb.cac_rules("sysctl_")):
        desc = rec["description"] or ""
        m = _SET_TO.search(desc)
        pairs = [(m.group(1), m.group(2))] if m else _SYSCTL_LINE.findall("\n".join(_FENCE.findall(desc)))
        for key, raw in pairs[:1]:
            val = _resolve(raw)
            if val:
                out.append(HostCheck(rec["id"], "sysctl", key, "eq", val.split("|"), absent_ok=True,
                                     example=f"{key} = {val.split('|')[0]}"))
    for rec in filter(in_profile, kb.cac_rules("sudo")):
        desc = " ".join((rec["description"] or "").split())
        rid = rec["id"]
        if (m := _TAG_ABSENT.search(desc)):
            toks = [x for x in m.groups() if x]
            out.append(HostCheck(rid, "sudoers", toks[0], "forbid_token", toks, example=f"remove {' / '.join(toks)}"))
        elif (m := _TAG_EXISTS.search(desc)):
            tag = m.group(1)
            val = ""
            if (mv := re.search(rf"`{re.escape(tag)}=\$(\w+)`", desc)):
                val = _resolve("$" + mv.group(1))
            out.append(HostCheck(rid, "sudoers", tag, "require_token", [val] if val else [],
                                 example=f"Defaults {tag}" + (f"={val}" if val else "")))
        elif "removing the following entries" in desc:
            lines = re.findall(r"`([^`]+ALL[^`]*)`", desc)
            if lines:
                out.append(HostCheck(rid, "sudoers", "user specification", "forbid_line", lines,
                                     example="grant specific users specific commands"))
    for rec in filter(in_profile, kb.cac_rules("httpd_")):
        desc = rec["description"] or ""
        blocks = _FENCE.findall(desc)
        if not blocks:
            continue
        line = blocks[0].strip().splitlines()[0].strip() if blocks[0].strip() else ""
        if line.startswith("#"):
            tok = line.lstrip("#").split()
            if len(tok) >= 2:
                out.append(HostCheck(rec["id"], "apache", " ".join(tok[:2]), "forbid_line", [" ".join(tok[:2])],
                                     example=f"comment out: {line}"))
        elif re.search(r"\bremove the following\b", desc, re.I) and line:
            out.append(HostCheck(rec["id"], "apache", line, "forbid_token", [line], example=f"remove {line}"))
        elif re.fullmatch(r"[A-Z]\w+\s+.+", line):
            key, val = line.split(None, 1)
            out.append(HostCheck(rec["id"], "apache", key, "eq", [val], absent_ok=False, example=line))
    return out


# -- parsing & evaluation -------------------------------------------------------------------------------

def _directives(text: str, sep: str = r"\s+") -> list[tuple[int, str, str]]:
    """(line, key, value) for every non-comment directive line (sshd: first match wins)."""
    out = []
    for i, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if sep == "=":
            if "=" not in line:
                continue
            k, v = line.split("=", 1)
            out.append((i, k.strip().lstrip("-"), v.strip()))
        else:
            parts = line.split(None, 1)
            out.append((i, parts[0], parts[1].strip() if len(parts) > 1 else ""))
    return out


@dataclass
class Violation:
    check: HostCheck
    line: int
    found: str


def evaluate(family: str, text: str, checks: list[HostCheck]) -> list[Violation]:
    mine = [c for c in checks if c.family == family]
    out: list[Violation] = []
    if family == "sshd":
        first: dict[str, tuple[int, str]] = {}
        for ln, k, v in _directives(text):
            if k.lower() == "match":
                break  # conditional blocks apply to some connections only
            first.setdefault(k.lower(), (ln, v))
        for c in mine:
            got = first.get(c.directive.lower())
            if got is None:
                if not c.absent_ok:
                    out.append(Violation(c, 1, "not set"))
                continue
            ln, v = got
            if not _ok(c, v):
                out.append(Violation(c, ln, f"{c.directive} {v}"))
    elif family == "sysctl":
        vals = {k: (ln, v) for ln, k, v in _directives(text, "=")}
        for c in mine:
            got = vals.get(c.directive)
            if got and got[1] not in c.values:
                out.append(Violation(c, got[0], f"{c.directive} = {got[1]}"))
    elif family == "sudoers":
        lines = _directives(text)
        defaults = " ".join(f"{k} {v}" for _, k, v in lines if k.startswith("Defaults"))
        for c in mine:
            if c.op == "forbid_token":
                for ln, k, v in lines:
                    full = f"{k} {v}"
                    if any(re.search(rf"(^|[\s,:=]){re.escape(t)}(\b|$)", full) for t in c.values):
                        out.append(Violation(c, ln, full))
            elif c.op == "require_token":
                if not re.search(rf"(^|[\s,]){re.escape(c.directive)}(\b|=|$)", defaults):
                    out.append(Violation(c, 1, f"Defaults {c.directive} not set"))
            elif c.op == "forbid_line":
                norm = {re.sub(r"\s+", "", x) for x in c.values}
                for ln, k, v in lines:
                    if re.sub(r"\s+", "", f"{k}{v}") in norm:
                        out.append(Violation(c, ln, f"{k} {v}"))
    elif family == "apache":
        lines = _directives(text)
        for c in mine:
            if c.op == "forbid_line":
                for ln, k, v in lines:
                    if f"{k} {v}".startswith(c.values[0]):
                        out.append(Violation(c, ln, f"{k} {v}"))
            elif c.op == "forbid_token":
                for ln, k, v in lines:
                    if k.lower() == "options" and re.search(rf"(^|\s)\+?{re.escape(c.values[0])}\b", v):
                        out.append(Violation(c, ln, f"{k} {v}"))
            elif c.op == "eq":
                found = [(ln, v) for ln, k, v in lines if k.lower() == c.directive.lower()]
                if found and not any(v.lower() == c.values[0].lower() for _, v in found):
                    ln, v = found[-1]
                    out.append(Violation(c, ln, f"{c.directive} {v}"))
    return out


def _ok(c: HostCheck, value: str) -> bool:
    v = value.strip().strip('"')
    if c.op == "le":
        try:
            n, lim = int(v.split()[0]), int(c.values[0])
        except ValueError:
            return False
        return 0 < n <= lim
    if c.op == "subset":
        allowed = {x.strip().lower() for x in c.values[0].split(",") if x.strip()}
        got = [x.strip().lower() for x in v.lstrip("+-^").split(",") if x.strip()]
        return bool(got) and not v.startswith(("+", "^")) and all(x in allowed for x in got)
    return any(v.lower() == want.lower() for want in c.values)


def describe(c: HostCheck, rec: dict[str, Any] | None) -> tuple[str, str]:
    """(message, fix) for a violated check."""
    title = rec["name"] if rec else c.rule_id
    if c.op == "le":
        fix = f"Set `{c.directive} {c.values[0]}` (a positive value no greater than {c.values[0]})."
    elif c.op == "subset":
        fix = f"Set `{c.directive}` to approved algorithms only: {c.values[0]}"
    elif c.op in ("forbid_token", "forbid_line"):
        fix = f"Remove `{c.values[0]}`" + (f" ({c.example})" if c.example and c.example not in c.values else "") + "."
    elif c.op == "require_token":
        fix = f"Add `{c.example}`."
    else:
        fix = f"Set `{c.example}`."
    return title, fix
