"""Knowledge-base look-ups behind the review layer: id validation, CWE -> controls, guidance.

Every CWE, control and ComplianceAsCode id a finding carries passes through here and is kept
only if the KB knows it. Reads go straight to the KB's SQLite store (read-only connection), with
small caches: a review of a large tree asks for the same few CWEs thousands of times.
"""

from __future__ import annotations

import functools
import json
import re
import sqlite3
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from secfoundry.apps.review.schemas import Guidance

_CWE = re.compile(r"^CWE-(\d+)$", re.I)


@functools.lru_cache(maxsize=1)
def tables() -> dict[str, Any]:
    text = resources.files("secfoundry.apps.review").joinpath("data/mappings.yaml").read_text(encoding="utf-8")
    return yaml.safe_load(text)


def norm_cwe(x: Any) -> str | None:
    s = str(x).strip().upper()
    if s.isdigit():
        s = f"CWE-{s}"
    m = _CWE.match(s.replace("CWE:", "CWE-").replace("CWE ", "CWE-"))
    return f"CWE-{int(m.group(1))}" if m else None


class KBMap:
    """KB-backed mapping. ``KBMap(None)`` (no KB found) keeps engine ids unvalidated and says so."""

    def __init__(self, db: str | Path | None):
        self.db_path = Path(db) if db else None
        self.conn: sqlite3.Connection | None = None
        if self.db_path and self.db_path.exists():
            self.conn = sqlite3.connect(f"file:{self.db_path}?mode=ro", uri=True, check_same_thread=False)
            self.conn.row_factory = sqlite3.Row
        self.rejected: set[str] = set()  # ids dropped because the KB does not know them

    @classmethod
    def open(cls, kb_path: str | Path | None = None) -> "KBMap":
        from secfoundry.kb.knowledge import default_path

        base = Path(kb_path) if kb_path else default_path()
        db = base if base.suffix == ".sqlite" else base / "kb.sqlite"
        return cls(db if db.exists() else None)

    @property
    def available(self) -> bool:
        return self.conn is not None

    # -- basic look-ups -------------------------------------------------------------------------------
    @functools.lru_cache(maxsize=20000)
    def record(self, rid: str) -> dict[str, Any] | None:
        if self.conn is None:
            return None
        row = self.conn.execute("SELECT id, type, name, description, url, attributes, source FROM records "
                                "WHERE id=? ORDER BY revoked, deprecated LIMIT 1", (rid,)).fetchone()
        if row is None:
            return None
        d = dict(row)
        d["attributes"] = json.loads(d["attributes"] or "{}")
        return d

    def known(self, rid: str) -> bool:
        return self.record(rid) is not None

    def valid_cwes(self, ids: list[Any]) -> list[str]:
        out: list[str] = []
        for x in ids:
            c = norm_cwe(x)
            if not c or c in out:
                continue
            if self.conn is None or self.known(c):
                out.append(c)
            else:
                self.rejected.add(c)
        return out

    def valid_controls(self, ids: list[str]) -> list[str]:
        out: list[str] = []
        for c in ids:
            c = str(c).strip().upper()
            if c in out:
                continue
            if self.conn is None:
                out.append(c)
                continue
            if self.is_control(c):
                out.append(c)
            elif "(" in c and self.is_control(c.split("(")[0]):
                out.append(c.split("(")[0])  # enhancement withdrawn: keep its base control
            else:
                self.rejected.add(c)
        return list(dict.fromkeys(out))

    @functools.lru_cache(maxsize=5000)
    def is_control(self, cid: str) -> bool:
        if self.conn is None:
            return True
        return self.conn.execute("SELECT 1 FROM records WHERE id=? AND type='control' LIMIT 1", (cid,)).fetchone() is not None

    def control_title(self, cid: str) -> str:
        if self.conn is None:
            return ""
        row = self.conn.execute("SELECT name FROM records WHERE id=? AND type='control' LIMIT 1", (cid,)).fetchone()
        return row[0] if row else ""

    @functools.lru_cache(maxsize=5000)
    def _rel(self, src: str, type_: str) -> tuple[str, ...]:
        if self.conn is None:
            return ()
        return tuple(r[0] for r in self.conn.execute(
            "SELECT DISTINCT dst FROM relations WHERE src=? AND type=?", (src, type_)))

    @functools.lru_cache(maxsize=5000)
    def _rel_in(self, dst: str, type_: str, source: str | None = None) -> tuple[str, ...]:
        if self.conn is None:
            return ()
        q = "SELECT DISTINCT src FROM relations WHERE dst=? AND type=?" + (" AND source=?" if source else "")
        args = (dst, type_, source) if source else (dst, type_)
        return tuple(r[0] for r in self.conn.execute(q, args))

    # -- mappings ------------------------------------------------------------------------------------
    def cwe_ancestors(self, cwe: str, depth: int = 4) -> list[str]:
        out, frontier = [], [cwe]
        for _ in range(depth):
            nxt = []
            for c in frontier:
                for p in self._rel(c, "child-of"):
                    if p.startswith("CWE-") and p not in out and p != cwe:
                        out.append(p)
                        nxt.append(p)
            frontier = nxt
        return out

    @functools.lru_cache(maxsize=5000)
    def cwe_controls(self, cwe: str) -> tuple[tuple[str, ...], str]:
        """Controls for a CWE and how they were found: the KB chain CWE > CAPEC > ATT&CK > CTID
        first (controls that mitigate the techniques the weakness enables), else the table entry
        for the CWE or its nearest mapped ancestor."""
        table = tables().get("cwe_controls", {})
        votes: dict[str, int] = {}
        for capec in self._rel(cwe, "related-attack-pattern"):
            for tech in self._rel(capec, "related-technique"):
                for ctl in self._rel_in(tech, "mitigates", "ctid"):
                    votes[ctl] = votes.get(ctl, 0) + 1
        chain = [c for c, _ in sorted(votes.items(), key=lambda kv: (-kv[1], kv[0]))][:6]
        for c in [cwe] + self.cwe_ancestors(cwe):
            if c in table:
                ctl = [x for x in table[c] if x not in chain]
                via = "table" if c == cwe else f"table via ancestor {c}"
                return tuple(self.valid_controls(list(table[c]) + chain[:3])), via + (" + kb:ctid" if chain else "")
        if chain:
            return tuple(self.valid_controls(chain)), "kb:cwe>capec>attack>ctid"
        return (), ""

    def cac_rule(self, rule_id: str) -> dict[str, Any] | None:
        rid = rule_id if rule_id.startswith("cac:") else f"cac:{rule_id}"
        return self.record(rid)

    def cac_rules(self, prefix: str) -> list[dict[str, Any]]:
        if self.conn is None:
            return []
        rows = self.conn.execute("SELECT id FROM records WHERE type='compliance-rule' AND id LIKE ? ORDER BY id",
                                 (f"cac:{prefix}%",)).fetchall()
        return [r for r in (self.record(x[0]) for x in rows) if r]

    # -- guidance ------------------------------------------------------------------------------------
    @functools.lru_cache(maxsize=2000)
    def guidance(self, cwe: str) -> tuple[Guidance, ...]:
        """CWE mitigation text + the OWASP cheat sheets the KB links to the CWE (or its
        ancestors), falling back to a full-text match of the CWE's name among cheat sheets."""
        out: list[Guidance] = []
        rec = self.record(cwe)
        if rec is None:
            return ()
        mitig = rec["attributes"].get("mitigations") or []
        texts = [m.get("description", "") for m in mitig if isinstance(m, dict) and m.get("description")]
        if texts:
            out.append(Guidance(source_id=cwe, title=f"{cwe}: {rec['name']}", text=_clip(texts[0], 700),
                                url=rec.get("url") or f"https://cwe.mitre.org/data/definitions/{cwe[4:]}.html"))
        sheets: list[str] = []
        for c in [cwe] + self.cwe_ancestors(cwe, 2):
            sheets += [s for s in self._rel_in(c, "related-weakness", "owasp") if s not in sheets]
            if sheets:
                break
        for s in sheets[:2]:
            srec = self.record(s)
            if srec:
                out.append(Guidance(source_id=s, title=srec["name"], text=_clip(srec["description"] or "", 500),
                                    url=srec.get("url") or ""))
        return tuple(out)

    def cwe_name(self, cwe: str) -> str:
        rec = self.record(cwe)
        return rec["name"] if rec else ""


def _clip(text: str, n: int) -> str:
    text = re.sub(r"\s+", " ", text).strip()
    return text if len(text) <= n else text[: n - 1].rsplit(" ", 1)[0] + "…"
