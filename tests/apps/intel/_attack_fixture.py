"""A tiny mirror in the upstream formats (ATT&CK STIX bundle, KEV JSON, Sigma and Atomic Red Team
tarballs) and a KB synced from it, for the extract-ttps / prioritize / emulate tests.

Written by hand for these tests (no shared data): a dozen techniques with procedure examples,
one revoked technique, a group, two software entries, two Sigma rules, three Atomic tests, two
KEV entries.
"""

from __future__ import annotations

import io
import json
import tarfile
import uuid
from pathlib import Path

TS = "2024-01-01T00:00:00.000Z"
_NS = uuid.UUID("2b8c1f0e-4b5a-4f1e-9a9e-000000000001")


def sid(kind: str, key: str) -> str:
    return f"{kind}--{uuid.uuid5(_NS, key)}"


TECHNIQUES = {
    # id: (name, tactics, platforms, description)
    "T1059": ("Command and Scripting Interpreter", ["execution"], ["Windows", "Linux"],
              "Adversaries may abuse command and script interpreters to execute commands."),
    "T1059.001": ("PowerShell", ["execution"], ["Windows"],
                  "Adversaries may abuse PowerShell commands and scripts for execution."),
    "T1003": ("OS Credential Dumping", ["credential-access"], ["Windows", "Linux"],
              "Adversaries may attempt to dump credentials to obtain account login information."),
    "T1003.001": ("LSASS Memory", ["credential-access"], ["Windows"],
                  "Adversaries may access credential material stored in the process memory of LSASS."),
    "T1566": ("Phishing", ["initial-access"], ["Windows", "Linux"], "Adversaries may send phishing messages."),
    "T1566.001": ("Spearphishing Attachment", ["initial-access"], ["Windows", "Linux"],
                  "Adversaries may send spearphishing emails with a malicious attachment."),
    "T1071": ("Application Layer Protocol", ["command-and-control"], ["Windows", "Linux"],
              "Adversaries may communicate using application layer protocols."),
    "T1071.001": ("Web Protocols", ["command-and-control"], ["Windows", "Linux"],
                  "Adversaries may communicate using HTTP or HTTPS to avoid detection."),
    "T1486": ("Data Encrypted for Impact", ["impact"], ["Windows", "Linux"],
              "Adversaries may encrypt data on target systems to interrupt availability."),
    "T1105": ("Ingress Tool Transfer", ["command-and-control"], ["Windows", "Linux"],
              "Adversaries may transfer tools or other files from an external system."),
    "T1547": ("Boot or Logon Autostart Execution", ["persistence"], ["Windows"],
              "Adversaries may configure system settings to automatically execute a program during boot."),
    "T1547.001": ("Registry Run Keys / Startup Folder", ["persistence"], ["Windows"],
                  "Adversaries may achieve persistence by adding a program to a Run key."),
    "T1082": ("System Information Discovery", ["discovery"], ["Windows", "Linux"],
              "An adversary may attempt to get detailed information about the operating system and hardware."),
}
REVOKED = {"T1086": ("PowerShell", "T1059.001")}

PROCEDURES = {
    # technique: example sentences (owner is assigned round-robin)
    "T1059.001": ["used PowerShell scripts to download and execute payloads.",
                  "executed an encoded PowerShell command to run its loader.",
                  "has used PowerShell to run commands on the victim host."],
    "T1003.001": ["dumped credentials from LSASS process memory using a custom tool.",
                  "used procdump to dump the memory of lsass.exe and extract passwords.",
                  "accessed LSASS memory to harvest credential hashes."],
    "T1566.001": ["sent spearphishing emails with malicious Word document attachments.",
                  "delivered a malicious attachment in targeted phishing emails to employees.",
                  "used emails with weaponized Excel attachments to gain initial access."],
    "T1071.001": ["communicates with its C2 server over HTTP.",
                  "uses HTTPS POST requests for command and control traffic.",
                  "sends beacons to the command server using HTTP GET requests."],
    "T1486": ["encrypts files on the victim's disks and appends a ransom extension.",
              "used ransomware to encrypt data on all reachable hosts.",
              "encrypted the victim's files with AES and demanded a ransom."],
    "T1105": ["downloaded additional tools from a remote server onto the host.",
              "can download further payloads and files from its C2 infrastructure.",
              "transferred malware to the compromised system from an external site."],
    "T1547.001": ["added a registry Run key to establish persistence at logon.",
                  "created a value under HKCU Software Microsoft Windows CurrentVersion Run for persistence.",
                  "places a shortcut in the Startup folder so it runs at logon."],
    "T1082": ["collected the operating system version and hardware details of the host.",
              "gathers system information such as the computer name and OS version.",
              "ran systeminfo to discover the operating system configuration."],
}
ENTITIES = {
    "G0016": ("intrusion-set", "APT29", ["Cozy Bear", "NOBELIUM"]),
    "S0154": ("malware", "Cobalt Strike", []),
    "S0002": ("tool", "Mimikatz", []),
}


def attack_bundle() -> dict:
    objs: list[dict] = [{"type": "x-mitre-collection", "id": sid("x-mitre-collection", "c"), "spec_version": "2.1",
                         "name": "Enterprise ATT&CK", "x_mitre_version": "18.1", "created": TS, "modified": TS}]
    for short, tid in (("execution", "TA0002"), ("credential-access", "TA0006"), ("initial-access", "TA0001"),
                       ("command-and-control", "TA0011"), ("impact", "TA0040"), ("persistence", "TA0003"),
                       ("discovery", "TA0007")):
        objs.append({"type": "x-mitre-tactic", "id": sid("x-mitre-tactic", tid), "spec_version": "2.1",
                     "name": short.replace("-", " ").title(), "x_mitre_shortname": short, "created": TS,
                     "modified": TS, "description": f"The {short} tactic.", "x_mitre_domains": ["enterprise-attack"],
                     "external_references": [{"source_name": "mitre-attack", "external_id": tid}]})
    for tid, (name, tactics, plats, desc) in TECHNIQUES.items():
        objs.append({"type": "attack-pattern", "id": sid("attack-pattern", tid), "spec_version": "2.1", "name": name,
                     "description": desc, "created": TS, "modified": TS, "x_mitre_platforms": plats,
                     "x_mitre_domains": ["enterprise-attack"], "x_mitre_is_subtechnique": "." in tid,
                     "x_mitre_version": "1.0",
                     "kill_chain_phases": [{"kill_chain_name": "mitre-attack", "phase_name": t} for t in tactics],
                     "external_references": [{"source_name": "mitre-attack", "external_id": tid,
                                              "url": f"https://attack.mitre.org/techniques/{tid.replace('.', '/')}"}]})
        if "." in tid:
            objs.append({"type": "relationship", "id": sid("relationship", "sub" + tid), "spec_version": "2.1",
                         "relationship_type": "subtechnique-of", "source_ref": sid("attack-pattern", tid),
                         "target_ref": sid("attack-pattern", tid.split(".")[0]), "created": TS, "modified": TS})
    for old, (name, new) in REVOKED.items():
        objs.append({"type": "attack-pattern", "id": sid("attack-pattern", old), "spec_version": "2.1", "name": name,
                     "revoked": True, "created": TS, "modified": TS, "x_mitre_domains": ["enterprise-attack"],
                     "external_references": [{"source_name": "mitre-attack", "external_id": old}]})
        objs.append({"type": "relationship", "id": sid("relationship", "rev" + old), "spec_version": "2.1",
                     "relationship_type": "revoked-by", "source_ref": sid("attack-pattern", old),
                     "target_ref": sid("attack-pattern", new), "created": TS, "modified": TS})
    for eid, (kind, name, aliases) in ENTITIES.items():
        o = {"type": kind, "id": sid(kind, eid), "spec_version": "2.1", "name": name, "created": TS, "modified": TS,
             "description": f"{name} is a test entity.", "x_mitre_domains": ["enterprise-attack"],
             "external_references": [{"source_name": "mitre-attack", "external_id": eid}]}
        if kind == "intrusion-set":
            o["aliases"] = [name, *aliases]
        else:
            o["is_family"] = True if kind == "malware" else None
            o = {k: v for k, v in o.items() if v is not None}
        objs.append(o)
    owners = list(ENTITIES)
    n = 0
    for tid, sents in PROCEDURES.items():
        for s in sents:
            eid = owners[n % len(owners)]
            kind, name, _ = ENTITIES[eid]
            n += 1
            objs.append({"type": "relationship", "id": sid("relationship", f"uses{n}"), "spec_version": "2.1",
                         "relationship_type": "uses", "source_ref": sid(kind, eid),
                         "target_ref": sid("attack-pattern", tid), "created": TS, "modified": TS,
                         "description": f"[{name}](https://attack.mitre.org/x/{eid}) {s}(Citation: Test {n})"})
    return {"type": "bundle", "id": sid("bundle", "b"), "objects": objs}


def _tar(files: dict[str, str]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tf:
        for name, text in files.items():
            data = text.encode()
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
    return buf.getvalue()


SIGMA = {
    "rules/windows/proc_creation_win_powershell_enc.yml": """title: Encoded PowerShell Command
id: 11111111-1111-4111-8111-111111111111
status: stable
description: Detects encoded PowerShell command lines.
author: test
date: 2024-01-01
tags:
    - attack.execution
    - attack.t1059.001
logsource:
    category: process_creation
    product: windows
detection:
    selection:
        CommandLine|contains: ' -enc '
    condition: selection
level: high
""",
    "rules/windows/proc_access_win_lsass.yml": """title: LSASS Memory Access
id: 22222222-2222-4222-8222-222222222222
status: test
description: Detects access to LSASS memory.
author: test
date: 2024-01-01
tags:
    - attack.credential-access
    - attack.t1003.001
logsource:
    category: process_access
    product: windows
detection:
    selection:
        TargetImage|endswith: '\\\\lsass.exe'
    condition: selection
level: high
""",
}

ATOMICS = {
    "atomics/T1059.001/T1059.001.yaml": """attack_technique: T1059.001
display_name: 'Command and Scripting Interpreter: PowerShell'
atomic_tests:
- name: Run an encoded command
  auto_generated_guid: 33333333-3333-4333-8333-333333333333
  description: Runs an encoded PowerShell command.
  supported_platforms:
  - windows
  input_arguments:
    text:
      description: text to print
      type: string
      default: hello
  executor:
    command: powershell -enc VwByAGkAdABlAC0ASABvAHMAdAAgACIAIwB7AHQAZQB4AHQAfQAiAA==
    cleanup_command: Remove-Item $env:TEMP\\\\x.txt -ErrorAction Ignore
    name: powershell
""",
    "atomics/T1082/T1082.yaml": """attack_technique: T1082
display_name: System Information Discovery
atomic_tests:
- name: System Information Discovery (Windows)
  auto_generated_guid: 44444444-4444-4444-8444-444444444444
  description: Runs systeminfo.
  supported_platforms:
  - windows
  executor:
    command: systeminfo
    name: command_prompt
- name: System Information Discovery (Linux)
  auto_generated_guid: 55555555-5555-4555-8555-555555555555
  description: Runs uname.
  supported_platforms:
  - linux
  executor:
    command: uname -a
    name: sh
""",
}

KEV = {"title": "CISA Catalog of Known Exploited Vulnerabilities", "catalogVersion": "2025.08.25",
       "dateReleased": "2025-08-25T00:00:00.000Z", "count": 2, "vulnerabilities": [
           {"cveID": "CVE-2024-3400", "vendorProject": "Palo Alto Networks", "product": "PAN-OS",
            "vulnerabilityName": "PAN-OS Command Injection", "dateAdded": "2024-04-12",
            "shortDescription": "PAN-OS GlobalProtect contains a command injection vulnerability.",
            "requiredAction": "Apply mitigations.", "dueDate": "2024-04-19", "knownRansomwareCampaignUse": "Unknown",
            "notes": "", "cwes": ["CWE-77"]},
           {"cveID": "CVE-2021-44228", "vendorProject": "Apache", "product": "Log4j2",
            "vulnerabilityName": "Apache Log4j2 Remote Code Execution", "dateAdded": "2021-12-10",
            "shortDescription": "Apache Log4j2 JNDI features do not protect against attacker-controlled LDAP.",
            "requiredAction": "Apply updates.", "dueDate": "2021-12-24", "knownRansomwareCampaignUse": "Known",
            "notes": "", "cwes": ["CWE-20"]}]}


def write_mirror(root: Path) -> Path:
    (root / "attack").mkdir(parents=True, exist_ok=True)
    (root / "attack" / "enterprise-attack-18.1.json").write_text(json.dumps(attack_bundle()))
    (root / "kev").mkdir(exist_ok=True)
    (root / "kev" / "known_exploited_vulnerabilities.json").write_text(json.dumps(KEV))
    (root / "sigma").mkdir(exist_ok=True)
    (root / "sigma" / "sigma-rules-yaml.tar.gz").write_bytes(_tar(SIGMA))
    (root / "atomic-red-team").mkdir(exist_ok=True)
    (root / "atomic-red-team" / "atomics-yaml.tar.gz").write_bytes(_tar(ATOMICS))
    return root


def build_kb(tmp: Path):
    from secfoundry.kb.knowledge import KnowledgeBase

    mirror = write_mirror(tmp / "mirror")
    kb = KnowledgeBase.open(tmp / "kb", embedder="hashing")
    rep = kb.sync(mirror=mirror, sources=["attack", "kev", "sigma", "atomic"], dense=False)
    bad = [f"{r.name}: {r.status} {r.error}" for r in rep.results if r.status not in ("synced", "unchanged")]
    assert not bad, f"fixture KB did not sync: {bad}"
    return kb
