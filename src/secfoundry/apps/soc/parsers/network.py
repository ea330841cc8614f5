"""Network sensor records -> normalized rows: Suricata EVE JSON and Zeek logs (JSON and TSV).

Suricata ``event_type: alert`` and Zeek ``notice`` records are native alerts; everything else is
context (flows, DNS, TLS, HTTP...). ``fields`` keep the sensor's own field names, which is what
Sigma's ``product: zeek`` rules use (``query``, ``id.orig_h``...).
"""

from __future__ import annotations

from typing import Any

from secfoundry.apps.soc.normalize import flatten, parse_ts, s, to_int


def is_suricata(obj: dict[str, Any]) -> bool:
    return "event_type" in obj and ("src_ip" in obj or "flow_id" in obj or obj.get("event_type") == "stats")


def is_zeek(obj: dict[str, Any]) -> bool:
    return "_path" in obj or ("id.orig_h" in obj and "ts" in obj) or ("uid" in obj and "ts" in obj) or \
        (isinstance(obj.get("id"), dict) and "orig_h" in obj["id"] and "ts" in obj)


def suricata(obj: dict[str, Any], fmt: str = "suricata") -> dict[str, Any]:
    et = s(obj.get("event_type"))
    ts, note = parse_ts(obj.get("timestamp"))
    alert = obj.get("alert") if isinstance(obj.get("alert"), dict) else {}
    http = obj.get("http") if isinstance(obj.get("http"), dict) else {}
    dns = obj.get("dns") if isinstance(obj.get("dns"), dict) else {}
    tls = obj.get("tls") if isinstance(obj.get("tls"), dict) else {}
    msg = ""
    if et == "alert":
        msg = s(alert.get("signature"))
    elif http:
        msg = f"{s(http.get('http_method'))} {s(http.get('hostname'))}{s(http.get('url'))}".strip()
    elif dns:
        msg = s(dns.get("rrname") or (dns.get("queries") or [{}])[0].get("rrname") if isinstance(dns.get("queries"), list)
                else dns.get("rrname"))
    elif tls:
        msg = s(tls.get("sni") or tls.get("subject"))
    return {
        "ts": ts, "ts_note": note, "format": fmt, "dataset": f"suricata.{et}" if et else "suricata",
        "kind": "alert" if et == "alert" else "event",
        "category": s(alert.get("category")) if et == "alert" else ("network" if et in ("flow", "netflow") else et),
        "action": s(alert.get("action")) if et == "alert" else et,
        "code": s(alert.get("signature_id")) if et == "alert" else "",
        "host_name": s(obj.get("host") if isinstance(obj.get("host"), str) else ""),
        "source_ip": s(obj.get("src_ip")), "source_port": to_int(obj.get("src_port")),
        "destination_ip": s(obj.get("dest_ip")), "destination_port": to_int(obj.get("dest_port")),
        "network_protocol": s(obj.get("app_proto") or obj.get("proto")).lower(),
        "rule_id": f"suricata:{s(alert.get('signature_id'))}" if et == "alert" else "",
        "rule_name": s(alert.get("signature")) if et == "alert" else "",
        "severity": to_int(alert.get("severity")) if et == "alert" else None,
        "message": msg[:300], "log_product": "suricata", "log_category": et, "log_service": et,
        "fields": flatten(obj),
    }


def zeek(obj: dict[str, Any], fmt: str = "zeek", path_hint: str = "") -> dict[str, Any]:
    f = flatten(obj)
    path = s(f.get("_path")) or path_hint
    ts, note = parse_ts(f.get("ts"))
    is_notice = path == "notice" or ("note" in f and "msg" in f)
    if is_notice:
        path = "notice"
    src = s(f.get("id.orig_h") or f.get("src"))
    dst = s(f.get("id.resp_h") or f.get("dst"))
    msg = s(f.get("msg")) if is_notice else s(f.get("query") or f.get("host") or f.get("server_name") or
                                                f.get("uri") or f.get("service") or "")
    return {
        "ts": ts, "ts_note": note, "format": fmt, "dataset": f"zeek.{path}" if path else "zeek",
        "kind": "alert" if is_notice else "event", "category": "network" if path == "conn" else path,
        "action": s(f.get("note")) if is_notice else path,
        "code": s(f.get("note")) if is_notice else "",
        "host_name": s(f.get("_system_name") or ""),
        "user_name": s(f.get("user") or f.get("username") or ""),
        "source_ip": src, "source_port": to_int(f.get("id.orig_p")),
        "destination_ip": dst,
        "destination_port": to_int(f.get("id.resp_p") if f.get("id.resp_p") is not None else f.get("p")),
        "network_protocol": s(f.get("service") or f.get("proto")).lower(),
        "rule_id": f"zeek:{s(f.get('note'))}" if is_notice else "",
        "rule_name": s(f.get("note")) if is_notice else "",
        "message": msg[:300], "log_product": "zeek", "log_category": "dns" if path == "dns" else "",
        "log_service": path,
        "fields": f,
    }


def zeek_tsv_header(lines: list[str]) -> dict[str, Any]:
    """Read ``#separator``/``#fields``/``#types``/``#path`` header lines."""
    h: dict[str, Any] = {"sep": "\t", "set_sep": ",", "empty": "(empty)", "unset": "-", "path": "", "fields": [],
                         "types": []}
    for ln in lines:
        if ln.startswith("#separator"):
            val = ln.split(" ", 1)[1].strip() if " " in ln else "\\x09"
            h["sep"] = bytes(val, "ascii").decode("unicode_escape") if val.startswith("\\x") else val
        elif ln.startswith("#"):
            key, _, rest = ln[1:].partition(h["sep"])
            if key == "fields":
                h["fields"] = rest.split(h["sep"])
            elif key == "types":
                h["types"] = rest.split(h["sep"])
            elif key == "path":
                h["path"] = rest.strip()
            elif key == "set_separator":
                h["set_sep"] = rest
            elif key == "empty_field":
                h["empty"] = rest
            elif key == "unset_field":
                h["unset"] = rest
    return h


def zeek_tsv_record(line: str, h: dict[str, Any]) -> dict[str, Any]:
    vals = line.rstrip("\r\n").split(h["sep"])
    if len(vals) != len(h["fields"]):
        raise ValueError(f"{len(vals)} columns, the #fields header names {len(h['fields'])}")
    out: dict[str, Any] = {"_path": h["path"]}
    types = h["types"] or [""] * len(vals)
    for name, val, typ in zip(h["fields"], vals, types):
        if val == h["unset"]:
            continue
        if val == h["empty"]:
            out[name] = [] if typ.startswith(("set", "vector")) else ""
        elif typ.startswith(("set", "vector")):
            out[name] = val.split(h["set_sep"])
        elif typ in ("count", "int", "port"):
            out[name] = to_int(val)
        else:
            out[name] = val
    return out
