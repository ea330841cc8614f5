"""An emulation plan out: Markdown (for people), JSON (the pydantic model), and a Navigator layer
coloured by coverage."""

from __future__ import annotations

from typing import Any

from secfoundry.apps.intel import navigator
from secfoundry.apps.intel.schemas_emulate import EmulationPlan

_COLOR = {"covered": navigator.COVERED, "test-only": navigator.TEST_ONLY, "detection-only": navigator.DETECT_ONLY,
          "gap": navigator.GAP}


def _fence(text: str, lang: str = "") -> str:
    ticks = "````" if "```" in text else "```"
    return f"{ticks}{lang}\n{text.rstrip()}\n{ticks}"


def to_markdown(plan: EmulationPlan) -> str:
    n = len(plan.steps)
    cov = {k: sum(s.coverage == k for s in plan.steps) for k in _COLOR}
    lines = [f"# {plan.title}", "",
             f"ATT&CK {plan.attack_version}; platform: {plan.platform or 'any'}; {n} techniques — "
             + ", ".join(f"{k} {v}" for k, v in cov.items()), "",
             "| # | tactic | technique | Atomic tests | Sigma rules | coverage |", "|---|---|---|---|---|---|"]
    for s in plan.steps:
        lines.append(f"| {s.order} | {s.tactic} | {s.technique} {s.name} | {s.atomic_total} | {s.sigma_total} | "
                     f"{s.coverage} |")
    for s in plan.steps:
        lines += ["", f"## {s.order}. {s.technique} {s.name} ({s.tactic})", "", f"Why: {s.source}", ""]
        if s.atomic_tests:
            lines.append(f"Atomic Red Team tests ({len(s.atomic_tests)} of {s.atomic_total}):")
            for t in s.atomic_tests:
                lines += ["", f"- **{t.name}** ({t.technique}, {t.executor or 'manual'}, "
                          f"{', '.join(t.platforms)}{', needs elevation' if t.elevation_required else ''}) `{t.id}`"]
                if t.command:
                    lines += ["", _fence(t.command, "sh" if t.executor in ("sh", "bash") else "")]
                if t.cleanup_command:
                    lines += ["", "  Cleanup:", "", _fence(t.cleanup_command)]
                if t.input_arguments:
                    lines += ["", "  Defaults: " + ", ".join(f"`{k}`={v!r}" for k, v in t.input_arguments.items())]
        else:
            lines.append("No Atomic Red Team test" + (f" for {plan.platform}" if plan.platform else "") + ".")
        lines.append("")
        if s.sigma_rules:
            lines.append(f"Sigma rules ({len(s.sigma_rules)} of {s.sigma_total}):")
            for r in s.sigma_rules:
                src = "/".join(v for v in r.logsource.values())
                lines.append(f"- {r.title} — {r.level or '?'}/{r.status or '?'}, {src}"
                             f"{' (parent technique)' if r.via_parent else ''} `{r.path or r.id}`")
        else:
            lines.append("No Sigma rule: detection gap.")
    if plan.gaps_no_test or plan.gaps_no_detection:
        lines += ["", "## Coverage gaps", "",
                  f"- No test: {', '.join(plan.gaps_no_test) or 'none'}",
                  f"- No detection: {', '.join(plan.gaps_no_detection) or 'none'}"]
    if plan.unknown:
        lines += ["", "## Not planned", ""] + [f"- {u}" for u in plan.unknown]
    if plan.warnings:
        lines += ["", "## Warnings", ""] + [f"- {w}" for w in plan.warnings]
    return "\n".join(lines) + "\n"


def to_layer(plan: EmulationPlan, domain: str = "enterprise-attack") -> dict[str, Any]:
    techs = [{"techniqueID": s.technique, "tactic": s.tactic, "color": _COLOR[s.coverage],
              "comment": f"{s.coverage}: {s.atomic_total} Atomic tests, {s.sigma_total} Sigma rules",
              "metadata": {"coverage": s.coverage, "atomic_tests": s.atomic_total, "sigma_rules": s.sigma_total}}
             for s in plan.steps]
    legend = [("test + detection", navigator.COVERED), ("test only", navigator.TEST_ONLY),
              ("detection only", navigator.DETECT_ONLY), ("gap", navigator.GAP)]
    return navigator.layer(plan.title, techs, attack_version=plan.attack_version, domain=domain, gradient=False,
                           legend=legend, description="Coverage of an emulation plan (secfoundry intel emulate)",
                           metadata={"generator": "secfoundry intel emulate", "platform": plan.platform or "any"})
