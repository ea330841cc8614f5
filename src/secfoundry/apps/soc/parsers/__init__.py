"""Per-format parsers. :func:`classify` names the format of one JSON record, :func:`parse_record`
turns it into a normalized row (``dict`` with the store's columns). Records are classified one by
one, so a file mixing formats is read correctly."""

from __future__ import annotations

from typing import Any, Callable

from secfoundry.apps.soc.parsers import generic, network, windows

FORMATS = ("suricata", "zeek", "zeek-tsv", "windows", "evtx", "ecs", "wazuh", "wazuh-test", "jsonl")


def classify(obj: dict[str, Any]) -> str:
    if windows.is_windows(obj):
        return "windows"
    if network.is_suricata(obj):
        return "suricata"
    if network.is_zeek(obj):
        return "zeek"
    if generic.is_wazuh(obj):
        return "wazuh"
    if generic.is_wazuh_test(obj):
        return "wazuh-test"
    if generic.is_ecs(obj):
        return "ecs"
    return "jsonl"


_PARSERS: dict[str, Callable[..., dict[str, Any]]] = {
    "windows": windows.parse, "suricata": network.suricata, "wazuh": generic.wazuh,
    "wazuh-test": generic.wazuh_test, "ecs": generic.ecs, "jsonl": generic.generic,
}


def parse_record(obj: dict[str, Any], fmt: str, path_hint: str = "") -> dict[str, Any]:
    if fmt == "zeek":
        return network.zeek(obj, path_hint=path_hint)
    return _PARSERS[fmt](obj)
