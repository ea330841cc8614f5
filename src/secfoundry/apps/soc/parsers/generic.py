"""Elastic ECS documents, Wazuh alerts (and the Wazuh ruleset test cases), and any other JSON
lines -> normalized rows."""

from __future__ import annotations

from typing import Any

from secfoundry.apps.soc.normalize import flatten, parse_ts, s, to_int


def is_wazuh(obj: dict[str, Any]) -> bool:
    r = obj.get("rule")
    return isinstance(r, dict) and "level" in r and ("agent" in obj or "manager" in obj or "full_log" in obj
                                                     or "decoder" in obj)


def is_wazuh_test(obj: dict[str, Any]) -> bool:
    return "expected_rule_id" in obj and isinstance(obj.get("logs"), list)


def is_ecs(obj: dict[str, Any]) -> bool:
    return "@timestamp" in obj and (isinstance(obj.get("event"), dict) or isinstance(obj.get("ecs"), dict))


def _get(f: dict[str, Any], *keys: str) -> Any:
    for k in keys:
        v = f.get(k)
        if v not in (None, "", []):
            return v
    return None


def wazuh(obj: dict[str, Any], fmt: str = "wazuh") -> dict[str, Any]:
    f = flatten(obj)
    rule = obj.get("rule") or {}
    mitre = rule.get("mitre") if isinstance(rule.get("mitre"), dict) else {}
    ts, note = parse_ts(_get(f, "timestamp", "@timestamp"))
    level = to_int(rule.get("level"))
    return {
        "ts": ts, "ts_note": note, "format": fmt, "dataset": "wazuh.alerts", "kind": "alert",
        "category": ",".join(s(g) for g in (rule.get("groups") or [])[:4]),
        "action": s(_get(f, "decoder.name")), "code": s(rule.get("id")),
        "host_name": s(_get(f, "agent.name", "predecoder.hostname", "manager.name")),
        "user_name": s(_get(f, "data.dstuser", "data.srcuser", "data.win.eventdata.targetUserName",
                            "data.win.eventdata.user")),
        "source_ip": s(_get(f, "data.srcip", "data.win.eventdata.ipAddress")),
        "source_port": to_int(_get(f, "data.srcport")),
        "destination_ip": s(_get(f, "data.dstip", "agent.ip")),
        "destination_port": to_int(_get(f, "data.dstport")),
        "process_executable": s(_get(f, "data.win.eventdata.image")),
        "process_command_line": s(_get(f, "data.win.eventdata.commandLine", "data.command")),
        "rule_id": f"wazuh:{s(rule.get('id'))}", "rule_name": s(rule.get("description")),
        "severity": level, "message": s(_get(f, "full_log"))[:300],
        "log_product": "wazuh", "log_category": "", "log_service": "alerts",
        "fields": {**f, "_mitre": [s(x) for x in (mitre.get("id") or [])]},
    }


def wazuh_test(obj: dict[str, Any], fmt: str = "wazuh-test") -> dict[str, Any]:
    """One Wazuh ruleset test case = the alert Wazuh's own test expects for its log lines."""
    logs = [x for x in obj.get("logs") or [] if isinstance(x, dict)]
    first = s(logs[0].get("log")) if logs else ""
    ts, note = parse_ts(first[:15]) if first[:3].isalpha() else (None, "missing")
    alert = {"timestamp": None, "rule": {"id": obj.get("expected_rule_id"), "level": obj.get("expected_level"),
                                         "description": obj.get("rule_description"),
                                         "groups": obj.get("rule_groups") or [],
                                         "mitre": {"id": obj.get("rule_mitre") or []}},
             "decoder": {"name": obj.get("expected_decoder")}, "full_log": first}
    row = wazuh(alert, fmt)
    row.update(ts=ts, ts_note=note, dataset="wazuh.ruleset-test", host_name=_syslog_host(first))
    return row


def _syslog_host(line: str) -> str:
    parts = line.split()
    return parts[3] if len(parts) > 4 and parts[0][:3].isalpha() and ":" in parts[2] else ""


def ecs(obj: dict[str, Any], fmt: str = "ecs") -> dict[str, Any]:
    f = flatten(obj)
    ts, note = parse_ts(f.get("@timestamp"))
    kind = s(f.get("event.kind")) or "event"
    cat = f.get("event.category")
    return {
        "ts": ts, "ts_note": note, "format": fmt, "dataset": s(_get(f, "event.dataset", "event.module")) or "ecs",
        "kind": "alert" if kind in ("alert", "signal") else "event",
        "category": ",".join(cat) if isinstance(cat, list) else s(cat),
        "action": s(f.get("event.action")), "code": s(f.get("event.code")),
        "host_name": s(_get(f, "host.name", "host.hostname", "agent.hostname")),
        "user_name": s(_get(f, "user.name")),
        "source_ip": s(f.get("source.ip")), "source_port": to_int(f.get("source.port")),
        "destination_ip": s(f.get("destination.ip")), "destination_port": to_int(f.get("destination.port")),
        "network_protocol": s(_get(f, "network.protocol", "network.transport")),
        "process_pid": to_int(f.get("process.pid")),
        "process_entity_id": s(f.get("process.entity_id")),
        "process_executable": s(f.get("process.executable")),
        "process_command_line": s(f.get("process.command_line")),
        "process_parent_entity_id": s(f.get("process.parent.entity_id")),
        "process_parent_executable": s(f.get("process.parent.executable")),
        "rule_id": f"ecs:{s(_get(f, 'rule.id', 'rule.uuid', 'rule.name'))}" if kind in ("alert", "signal") else "",
        "rule_name": s(f.get("rule.name")), "severity": to_int(f.get("event.severity")),
        "message": s(f.get("message"))[:300],
        "log_product": s(f.get("host.os.family") or "").lower(), "log_category": "", "log_service": "",
        "fields": f,
    }


def generic(obj: dict[str, Any], fmt: str = "jsonl") -> dict[str, Any]:
    f = flatten(obj)
    ts, note = parse_ts(_get(f, "@timestamp", "timestamp", "time", "ts", "date", "eventTime", "EventTime",
                             "datetime", "created_at"))
    return {
        "ts": ts, "ts_note": note, "format": fmt, "dataset": "jsonl", "kind": "event",
        "host_name": s(_get(f, "host", "hostname", "host.name", "computer", "Computer", "device")),
        "user_name": s(_get(f, "user", "username", "user.name", "account")),
        "source_ip": s(_get(f, "src_ip", "srcip", "source_ip", "source.ip", "client_ip", "clientip", "src")),
        "destination_ip": s(_get(f, "dst_ip", "dstip", "dest_ip", "destination.ip", "server_ip", "dst")),
        "process_command_line": s(_get(f, "command_line", "cmdline", "CommandLine", "process.command_line")),
        "message": s(_get(f, "message", "msg", "log"))[:300],
        "fields": f,
    }
