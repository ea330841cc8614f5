"""Sample jobs for a first look (``make run``): one per available application, read from the
shared data directory given on the command line by the operator (never through an endpoint).

- extract-ttps: a CTID adversary-emulation intelligence summary (APT29);
- prioritize: the CVE ids of the mirrored CVE records plus KEV entries, as a plain list;
- soc-run: the OTRF Windows/Sysmon attack recordings (zipped, as upstream ships them);
- review-config: checkov's failing Dockerfile / Kubernetes examples and a gixy nginx case.
"""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any, Callable, Optional

REPORT = "soc/reports/ctid-adversary-emulation-intel-summaries/apt29_Intelligence_Summary.md"
RECORDINGS = "soc/alerts/windows/otrf-security-datasets"
CVE_RECORDS = "mirror/cve/records"
KEV = "mirror/kev"
CONFIGS = ["soc/configs/dockerfile/checkov/example_RootUser/failure/Dockerfile",
           "soc/configs/kubernetes/checkov/example_AllowPrivilegeEscalation/nginx-app-FAILED.json",
           "soc/configs/nginx/gixy/alias_traversal/simple.conf"]


def _report(data: Path) -> Optional[tuple[Any, str]]:
    from secfoundry.apps.intel.schemas_ttps import TTPRequest

    p = data / REPORT
    return (TTPRequest(text=p.read_text(encoding="utf-8")), p.name) if p.is_file() else None


def _cves(data: Path) -> Optional[tuple[Any, str]]:
    from secfoundry.apps.intel.schemas_prioritize import PrioritizeRequest

    ids = sorted(p.stem for p in (data / CVE_RECORDS).glob("CVE-*.json"))[:30]
    kev = data / KEV / "known_exploited_vulnerabilities.json"
    if kev.is_file():  # a few known-exploited ones, so the ranking has something to say
        try:
            vulns = json.loads(kev.read_text(encoding="utf-8")).get("vulnerabilities", [])
            ids += [v["cveID"] for v in vulns[-10:] if "cveID" in v]
        except (ValueError, KeyError):
            pass
    if not ids:
        return None
    return PrioritizeRequest(content="\n".join(ids) + "\n", exposure="internet", epss="none"), \
        f"{len(ids)} CVE ids (mirrored CVE records + KEV)"


def _recordings(data: Path) -> Optional[tuple[Any, str]]:
    from secfoundry.serve.app_soc import SocRunRequest
    from secfoundry.serve.appkit import UploadedFile

    zips = sorted((data / RECORDINGS).glob("*.zip"))
    if not zips:
        return None
    files = [UploadedFile(name=z.name, content_b64=base64.b64encode(z.read_bytes()).decode()) for z in zips]
    return SocRunRequest(files=files), f"{len(zips)} OTRF attack recordings"


def _configs(data: Path) -> Optional[tuple[Any, str]]:
    from secfoundry.serve.app_review import ReviewUpload
    from secfoundry.serve.appkit import UploadedFile

    names = {"Dockerfile": "Dockerfile", ".json": "deployment.json", ".conf": "nginx.conf"}
    files = []
    for rel in CONFIGS:
        p = data / rel
        if p.is_file():
            name = next((v for k, v in names.items() if p.name.endswith(k)), p.name)
            files.append(UploadedFile(name=name, content=p.read_text(encoding="utf-8")))
    return (ReviewUpload(files=files), ", ".join(f.name for f in files)) if files else None


# job kind -> builder(data_dir) -> (request model instance, label) or None when the files are absent
SAMPLES: dict[str, Callable[[Path], Optional[tuple[Any, str]]]] = {
    "extract-ttps": _report, "prioritize": _cves, "review-config": _configs, "soc-run": _recordings,
}


def preload_samples(svc: Any, data_dir: Path, owner: str) -> list[str]:
    notes = []
    data_dir = Path(data_dir)
    if not data_dir.is_dir():
        return [f"no shared data at {data_dir}: nothing preloaded"]
    for kind, build in SAMPLES.items():
        if kind not in svc.jobs.kinds:
            notes.append(f"{kind}: app not available on this server, no sample")
            continue
        try:
            made = build(data_dir)
        except Exception as e:  # noqa: BLE001 - a sample that cannot be read is reported, the rest go on
            notes.append(f"{kind}: not preloaded ({type(e).__name__}: {e})")
            continue
        if made is None:
            notes.append(f"{kind}: sample files not found under {data_dir}")
            continue
        request, label = made
        job = svc.jobs.submit(kind, request, owner=owner)
        notes.append(f"{kind} on {label} -> /ui/jobs/{job['id']}")
    return notes
