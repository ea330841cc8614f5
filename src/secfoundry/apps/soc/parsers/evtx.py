"""``.evtx`` files through python-evtx (the maintained pure-Python parser, williballenthin/python-evtx).

Each record's XML is parsed with defusedxml into the flat dict the Windows parser reads:
System fields (EventID, Channel, Computer, Provider_Name, TimeCreated) + EventData/UserData.
"""

from __future__ import annotations

from typing import Any, Iterator

from defusedxml import ElementTree as ET

_NS = "{http://schemas.microsoft.com/win/2004/08/events/event}"


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


def record_to_dict(xml: str) -> dict[str, Any]:
    root = ET.fromstring(xml)
    out: dict[str, Any] = {}
    for child in root:
        name = _local(child.tag)
        if name == "System":
            for el in child:
                tag = _local(el.tag)
                if tag == "Provider":
                    out["Provider_Name"] = el.get("Name", "")
                    out["SourceName"] = el.get("Name", "")
                elif tag == "TimeCreated":
                    out["TimeCreated"] = el.get("SystemTime", "")
                elif tag == "Security":
                    if el.get("UserID"):
                        out["SecurityUserID"] = el.get("UserID")
                elif tag == "Execution":
                    out["ExecutionProcessID"] = el.get("ProcessID", "")
                elif el.text is not None:
                    out[tag] = el.text.strip()
        elif name == "EventData":
            for i, el in enumerate(child):
                key = el.get("Name") or f"Data{i}"
                out[key] = (el.text or "").strip()
        elif name == "UserData":
            for el in child.iter():
                if el is not child and len(el) == 0 and el.text and el.text.strip():
                    out.setdefault(_local(el.tag), el.text.strip())
    return out


def iter_evtx(path: str) -> Iterator[tuple[int, str | None, str | Exception]]:
    """(record number, xml or None, xml text or the error). Bad records are reported, not fatal."""
    from Evtx.Evtx import Evtx

    with Evtx(path) as log:
        fh = log.get_file_header()
        if not fh.verify():  # magic, versions or header checksum wrong: say so, then read what parses
            why = "bad magic" if not fh.check_magic() else "header checksum/version mismatch"
            yield 0, None, ValueError(f"evtx file header invalid ({why}); reading the chunks that parse")
        for i, rec in enumerate(log.records(), 1):
            try:
                yield i, rec.xml(), ""
            except Exception as e:  # noqa: BLE001 - python-evtx raises many types on damaged chunks
                yield i, None, e
