"""Per-format parsers. :func:`classify` names the format of one JSON record, :func:`parse_record`
turns it into a normalized row (``dict`` with the store's columns). Records are classified one by
one, so a file mixing formats is read correctly."""

from __future__ import annotations

from typing import Any, Callable

from secfoundry.apps.soc.parsers import generic, network, windows

FORMATS = ("suricata", "zeek", "zeek-tsv", "windows", "evtx", "ecs", "wazuh", "wazuh-test", "jsonl")


# tried in this order; the first match names the format
_DETECTORS: tuple[tuple[str, Callable[[dict[str, Any]], bool]], ...] = (
    ("windows", windows.is_windows), ("suricata", network.is_suricata), ("zeek", network.is_zeek),
    ("wazuh", generic.is_wazuh), ("wazuh-test", generic.is_wazuh_test), ("ecs", generic.is_ecs),
)


def classify(obj: dict[str, Any]) -> str:
    return next((fmt for fmt, test in _DETECTORS if test(obj)), "jsonl")


_PARSERS: dict[str, Callable[..., dict[str, Any]]] = {
    "windows": windows.parse, "suricata": network.suricata, "wazuh": generic.wazuh,
    "wazuh-test": generic.wazuh_test, "ecs": generic.ecs, "jsonl": generic.generic,
}


def parse_record(obj: dict[str, Any], fmt: str, path_hint: str = "") -> dict[str, Any]:
    if fmt == "zeek":
        return network.zeek(obj, path_hint=path_hint)
    return _PARSERS[fmt](obj)
