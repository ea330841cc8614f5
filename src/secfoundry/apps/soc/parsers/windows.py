"""Windows event records -> normalized rows: Sysmon, Security, PowerShell, System, ...

Accepts the flat JSON exports (OTRF Security-Datasets / NXLog / Logstash style: ``EventID``,
``Channel``, ``Hostname`` and the EventData fields at the top level), Winlogbeat documents
(``winlog.event_id``, ``winlog.channel``, ``winlog.event_data``) and dicts built from ``.evtx``
XML (see :mod:`.evtx`). The Sigma-facing ``fields`` keep the Windows field names Sigma rules use
(``Image``, ``CommandLine``, ``TargetObject``, ``EventID``, ``Channel``...).
"""

from __future__ import annotations

from typing import Any

from secfoundry.apps.soc.normalize import parse_ts, s, to_int

SYSMON_CHANNEL = "Microsoft-Windows-Sysmon/Operational"
# Sysmon event id -> Sigma log source category (Sigma's taxonomy appendix).
SYSMON_CATEGORY = {
    1: "process_creation", 2: "file_change", 3: "network_connection", 5: "process_termination",
    6: "driver_load", 7: "image_load", 8: "create_remote_thread", 9: "raw_access_thread",
    10: "process_access", 11: "file_event", 12: "registry_event", 13: "registry_event", 14: "registry_event",
    15: "create_stream_hash", 17: "pipe_created", 18: "pipe_created", 19: "wmi_event", 20: "wmi_event",
    21: "wmi_event", 22: "dns_query", 23: "file_delete", 24: "clipboard_capture", 25: "process_tampering",
    26: "file_delete", 29: "file_executable_detected",
}
# Sigma also splits the registry events: 12 add/delete, 13 set, 14 rename.
SYSMON_EXTRA_CATEGORY = {12: "registry_add", 13: "registry_set", 14: "registry_rename"}
CHANNEL_SERVICE = {
    "security": "security", "system": "system", "application": "application",
    SYSMON_CHANNEL.lower(): "sysmon",
    "microsoft-windows-powershell/operational": "powershell",
    "windows powershell": "powershell-classic",
    "microsoft-windows-taskscheduler/operational": "taskscheduler",
    "microsoft-windows-wmi-activity/operational": "wmi",
    "microsoft-windows-windows defender/operational": "windefend",
    "microsoft-windows-bits-client/operational": "bits-client",
    "microsoft-windows-dns-client/operational": "dns-client",
    "microsoft-windows-windows firewall with advanced security/firewall": "firewall-as",
    "microsoft-windows-codeintegrity/operational": "codeintegrity-operational",
    "microsoft-windows-ntlm/operational": "ntlm",
    "microsoft-windows-smbclient/security": "smbclient-security",
    "microsoft-windows-terminalservices-localsessionmanager/operational": "terminalservices-localsessionmanager",
    "microsoft-windows-appxdeploymentserver/operational": "appxdeployment-server",
    "microsoft-windows-applocker/exe and dll": "applocker",
}
POWERSHELL_CATEGORY = {4104: "ps_script", 4103: "ps_module", 400: "ps_classic_start", 600: "ps_classic_provider_start",
                       800: "ps_classic_script"}
_META = {"Message", "@timestamp", "@version", "TimeCreated", "host", "tags", "port", "Keywords", "Opcode",
         "ProviderGuid", "Level", "Task", "Version", "RecordNumber", "ExecutionProcessID", "ExecutionThreadID"}


def is_windows(obj: dict[str, Any]) -> bool:
    if "EventID" in obj and ("Channel" in obj or "SourceName" in obj or "Computer" in obj or "Hostname" in obj):
        return True
    w = obj.get("winlog")
    return isinstance(w, dict) and ("event_id" in w or "channel" in w)


def _from_winlogbeat(obj: dict[str, Any]) -> dict[str, Any]:
    w = obj["winlog"]
    flat: dict[str, Any] = {}
    ed = w.get("event_data")
    if isinstance(ed, dict):
        flat.update(ed)
    ud = w.get("user_data")
    if isinstance(ud, dict):
        flat.update({k: v for k, v in ud.items() if not isinstance(v, dict)})
    flat["EventID"] = w.get("event_id")
    flat["Channel"] = w.get("channel", "")
    flat["Provider_Name"] = w.get("provider_name", "")
    flat["Computer"] = w.get("computer_name", "") or (obj.get("host") or {}).get("name", "")
    flat["@timestamp"] = obj.get("@timestamp")
    return flat


def _first(rec: dict[str, Any], *keys: str) -> Any:
    """The first of ``keys`` with a value ('' and '-' count as none, as in Windows' own exports)."""
    for k in keys:
        v = rec.get(k)
        if v is not None and v != "" and v != "-":
            return v
    return None


def parse(obj: dict[str, Any], fmt: str = "windows") -> dict[str, Any]:
    rec = _from_winlogbeat(obj) if isinstance(obj.get("winlog"), dict) else obj
    eid = to_int(rec.get("EventID"))
    channel = s(rec.get("Channel"))
    host = s(rec.get("Hostname") or rec.get("Computer") or rec.get("host"))
    if host.startswith("{"):
        host = ""
    fields = {k: v for k, v in rec.items() if k not in _META and not isinstance(v, (dict, list))}
    fields["EventID"] = eid if eid is not None else rec.get("EventID")
    fields["Channel"] = channel
    if "Provider_Name" not in fields and rec.get("SourceName"):
        fields["Provider_Name"] = rec.get("SourceName")
    if host:
        fields.setdefault("Computer", host)
    service = CHANNEL_SERVICE.get(channel.lower(), channel.lower().replace("microsoft-windows-", "").split("/")[0])
    category = ""
    categories: list[str] = []
    if service == "sysmon" and eid is not None:
        category = SYSMON_CATEGORY.get(eid, "")
        categories = [c for c in (category, SYSMON_EXTRA_CATEGORY.get(eid, "")) if c]
    elif service in ("powershell", "powershell-classic") and eid is not None:
        category = POWERSHELL_CATEGORY.get(eid, "")
        categories = [category] if category else []
    # Time: Sysmon's UtcTime is written by the sensor in UTC; exporters' @timestamp/TimeCreated can
    # carry a shifted clock (local time labelled Z). Keep both so the ingest can measure the skew.
    ts_export, note_export = parse_ts(rec.get("TimeCreated") or rec.get("@timestamp") or rec.get("SystemTime"))
    utc = rec.get("UtcTime")
    ts, note = (parse_ts(utc) if utc else (None, "missing"))
    row: dict[str, Any] = {}
    if ts is not None:
        row["_skew_ref"] = ts_export  # sensor UTC vs exporter clock
    else:
        ts, note = ts_export, note_export
        row["_export_only"] = True
    user = s(_first(rec, "User", "TargetUserName", "SubjectUserName"))
    if user and "\\" not in user:
        dom = s(_first(rec, "TargetDomainName") if _first(rec, "TargetUserName") else _first(rec, "SubjectDomainName"))
        user = f"{dom}\\{user}" if dom else user
    exe = s(rec.get("Image") or rec.get("NewProcessName") or rec.get("ProcessName") or rec.get("Application")
            or rec.get("SourceImage"))
    src_ip = s(_first(rec, "SourceIp", "SourceAddress", "IpAddress"))
    dst_ip = s(_first(rec, "DestinationIp", "DestAddress"))
    row.update({
        "ts": ts, "ts_note": note, "format": fmt,
        "dataset": service or "windows", "kind": "event",
        "category": category or ("authentication" if eid in (4624, 4625, 4648, 4776) else ""),
        "action": s(rec.get("EventType") or rec.get("TaskName") or ""),
        "code": "" if eid is None else str(eid),
        "host_name": host, "user_name": "" if user in ("-",) else user,
        "source_ip": "" if src_ip in ("-", "::1", "0.0.0.0") else src_ip,
        "source_port": to_int(rec.get("SourcePort") or rec.get("IpPort")),
        "destination_ip": "" if dst_ip in ("-",) else dst_ip,
        "destination_port": to_int(rec.get("DestinationPort") or rec.get("DestPort")),
        "network_protocol": s(rec.get("Protocol")),
        "process_pid": to_int(rec.get("ProcessId") or rec.get("NewProcessId") or rec.get("ProcessID")),
        "process_entity_id": s(rec.get("ProcessGuid") or rec.get("SourceProcessGUID") or rec.get("SourceProcessGuid")),
        "process_executable": exe,
        "process_command_line": s(rec.get("CommandLine") or rec.get("ScriptBlockText") or ""),
        "process_parent_entity_id": s(rec.get("ParentProcessGuid")),
        "process_parent_executable": s(rec.get("ParentImage") or rec.get("ParentProcessName")),
        "message": s(rec.get("Message"))[:300],
        "log_product": "windows", "log_category": ",".join(categories), "log_service": service,
        "fields": fields,
    })
    return row
