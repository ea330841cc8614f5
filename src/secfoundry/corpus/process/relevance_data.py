"""Training and evaluation data for the relevance classifier.

* ``relevance-seed.jsonl`` (shared datasets): 8,400 labelled paragraphs with a hash-based
  ``split`` column; 1,000 of its negatives are Python-docs "hard negatives".
* Harder negatives, built three ways (all label 0, each with a hash split 50/50 train/test):
  - ``handwritten:*`` — 62 paragraphs written for secfoundry (IT news, networking manuals,
    software docs, IT operations), shipped in ``secfoundry/data/relevance_hard_negatives.jsonl``;
  - ``pydocs-extra`` — paragraphs of the Python 3.11 docs (shared ``general-text``) that are not
    in the seed, excluding the pages of security modules (ssl, hashlib, secrets, hmac, ...);
  - ``manpages:*`` — paragraphs of Debian man pages for networking and system tools, rendered
    with ``man -l`` on this machine (when ``man`` exists), excluding security tools
    (ssh, gpg, pam, passwd, openssl, ip-xfrm, ...).
"""

from __future__ import annotations

import gzip
import hashlib
import json
import re
import shutil
import subprocess
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from secfoundry.core.errors import InputError


@dataclass
class Example:
    text: str
    label: int
    source: str
    split: str  # "train" | "test"


def hash_split(text: str, test_share: float = 0.5) -> str:
    h = int(hashlib.sha1(text.encode("utf-8")).hexdigest()[:8], 16)
    return "test" if (h % 1000) < test_share * 1000 else "train"


def default_seed_path() -> Path | None:
    from secfoundry.core.paths import shared_data

    sd = shared_data()
    p = sd / "datasets" / "relevance-seed.jsonl" if sd else None
    return p if p and p.is_file() else None


def load_jsonl_examples(path: str | Path, default_source: str = "") -> list[Example]:
    p = Path(path)
    out: list[Example] = []
    opener = gzip.open if p.suffix == ".gz" else open
    with opener(p, "rt", encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
                text, label = row["text"], int(row["label"])
            except (json.JSONDecodeError, KeyError, TypeError, ValueError) as e:
                raise InputError(f"bad example: {e}", file=str(p), row=n) from e
            if label not in (0, 1):
                raise InputError(f"label must be 0 or 1, got {label}", file=str(p), row=n, field="label")
            out.append(Example(text, label, row.get("source") or default_source,
                               row.get("split") or hash_split(text)))
    return out


def load_seed(path: str | Path | None = None) -> list[Example]:
    p = Path(path) if path else default_seed_path()
    if p is None or not p.is_file():
        raise InputError("relevance-seed.jsonl not found; pass --seed PATH (or place ../shared/data)",
                         file=str(p) if p else "datasets/relevance-seed.jsonl")
    return load_jsonl_examples(p)


def handwritten_negatives() -> list[Example]:
    text = resources.files("secfoundry.data").joinpath("relevance_hard_negatives.jsonl").read_text("utf-8")
    out = []
    for line in text.splitlines():
        if line.strip():
            row = json.loads(line)
            out.append(Example(row["text"], 0, row["source"], hash_split(row["text"])))
    return out


_SECURITY_PAGES = re.compile(r"(ssl|hashlib|secrets|hmac|crypt|security|audit|getpass|sandbox|tarfile|"
                             r"zipfile|xml|pickle|marshal|shelve|urllib|http|email|smtp|ftp|imap|poplib|"
                             r"socket|select|subprocess|webbrowser)", re.I)


# Derived negatives must really be label 0: paragraphs that talk about security topics
# (rmtree's "symlink attack", apt's replay protection, TLS trust stores ...) are left out.
SECURITY_TOPIC = re.compile(r"\b(attack|secur|vulnerab|exploit|malicious|malware|password|passphrase|secret|"
                            r"credential|certificate|ssl|tls|https|encrypt|crypt|cipher|suid|setuid|"
                            r"privilege|authenticat|authoriz|inject|sandbox|untrusted|trust|spoof|"
                            r"firewall|permission|hack|threat|audit|signature|verif)", re.I)


def _paragraphs(text: str, min_chars: int = 150, max_chars: int = 900) -> list[str]:
    out = []
    for para in re.split(r"\n\s*\n", text):
        p = " ".join(para.split())
        letters = sum(c.isalpha() for c in p)
        if min_chars <= len(p) <= max_chars and letters >= 0.6 * len(p) and len(p.split()) >= 20:
            out.append(p)
    return out


def pydocs_negatives(datasets_dir: Path, exclude: set[str], limit: int = 3000) -> list[Example]:
    path = datasets_dir / "general-text" / "python-3.11-docs-rst.jsonl.gz"
    if not path.is_file():
        return []
    out: list[Example] = []
    with gzip.open(path, "rt", encoding="utf-8") as f:
        for line in f:
            row = json.loads(line)
            if _SECURITY_PAGES.search(row.get("path", "")):
                continue
            for p in _paragraphs(row.get("text", "")):
                if p in exclude or SECURITY_TOPIC.search(p):
                    continue
                out.append(Example(p, 0, "pydocs-extra", hash_split(p)))
    # deterministic subsample spread over all pages
    out.sort(key=lambda e: hashlib.sha1(e.text.encode()).hexdigest())
    return out[:limit]


MANPAGES = [
    "man8/ip.8.gz", "man8/ip-route.8.gz", "man8/ip-link.8.gz", "man8/ip-address.8.gz",
    "man8/ip-neighbour.8.gz", "man8/ip-rule.8.gz", "man8/ip-netns.8.gz", "man8/ip-tunnel.8.gz",
    "man8/ip-monitor.8.gz", "man8/ip-nexthop.8.gz", "man8/ip-mroute.8.gz", "man8/bridge.8.gz",
    "man8/ifconfig.8.gz", "man8/netstat.8.gz", "man8/arp.8.gz", "man8/mii-tool.8.gz", "man8/nstat.8.gz",
    "man8/lnstat.8.gz", "man8/devlink.8.gz", "man8/mount.8.gz", "man8/lsblk.8.gz", "man8/mkfs.8.gz",
    "man8/fsck.8.gz", "man8/apt-get.8.gz", "man8/apt-cache.8.gz", "man8/lsof.8.gz",
    "man1/networkctl.1.gz", "man1/curl.1.gz", "man1/wget.1.gz", "man1/tar.1.gz", "man1/make.1.gz",
    "man1/journalctl.1.gz", "man1/systemctl.1.gz", "man1/ps.1.gz", "man1/top.1.gz", "man1/find.1.gz",
    "man1/git-rebase.1.gz", "man1/git-merge.1.gz", "man1/git-clone.1.gz", "man1/git-log.1.gz",
    "man1/git-worktree.1.gz", "man1/git-submodule.1.gz", "man1/dpkg.1.gz", "man1/cmake.1.gz",
    "man5/resolv.conf.5.gz", "man5/hosts.5.gz", "man5/services.5.gz", "man5/networks.5.gz",
    "man5/protocols.5.gz", "man5/nsswitch.conf.5.gz", "man5/networkd.conf.5.gz", "man5/fstab.5.gz",
    "man5/sources.list.5.gz", "man5/journald.conf.5.gz", "man5/proc.5.gz", "man5/gitignore.5.gz",
]


def manpage_negatives(cache: Path | None = None, mandir: Path = Path("/usr/share/man")) -> list[Example]:
    """Paragraphs of networking/system man pages (rendered once, cached as JSONL)."""
    if cache is not None and cache.is_file():
        return load_jsonl_examples(cache)
    if shutil.which("man") is None or not mandir.is_dir():
        return []
    out: list[Example] = []
    for rel in MANPAGES:
        p = mandir / rel
        if not p.is_file():
            continue
        try:
            txt = subprocess.run(["man", "-l", str(p)], capture_output=True, text=True, timeout=30,
                                 env={"MANWIDTH": "2000", "PATH": "/usr/bin:/bin", "LANG": "C.UTF-8"}).stdout
        except (OSError, subprocess.SubprocessError):
            continue
        txt = re.sub(r".\x08", "", txt)  # overstrike bold/underline
        name = p.name.split(".")[0]
        paras = _paragraphs(txt, 150, 900)
        for para in [q for q in paras if not SECURITY_TOPIC.search(q)][:80]:
            out.append(Example(para, 0, f"manpages:{name}", hash_split(para)))
    if cache is not None and out:
        cache.parent.mkdir(parents=True, exist_ok=True)
        with cache.open("w", encoding="utf-8") as f:
            for e in out:
                f.write(json.dumps({"text": e.text, "label": 0, "source": e.source, "split": e.split}) + "\n")
    return out


def hard_negatives(datasets_dir: Path | None, seed_texts: set[str], derived: bool = True) -> list[Example]:
    from secfoundry.core.paths import cache_dir

    out = handwritten_negatives()
    if not derived:
        return out
    if datasets_dir is not None:
        out += pydocs_negatives(datasets_dir, seed_texts)
    out += manpage_negatives(cache_dir("corpus") / "relevance-manpage-negatives.jsonl")
    return out


def training_set(seed: str | Path | None = None, use_hard_negatives: bool = True
                 ) -> tuple[list[str], list[int], dict]:
    """Seed train split + train half of the hard negatives; returns texts, labels, a summary."""
    examples = load_seed(seed)
    seed_path = Path(seed) if seed else default_seed_path()
    datasets_dir = seed_path.parent if seed_path else None
    train = [e for e in examples if e.split == "train"]
    summary = {"seed": str(seed_path), "seed_train": len(train)}
    if use_hard_negatives:
        hn = [e for e in hard_negatives(datasets_dir, {e.text for e in examples}) if e.split == "train"]
        train += hn
        summary["hard_negatives_train"] = len(hn)
    return [e.text for e in train], [e.label for e in train], summary


def eval_sets(seed: str | Path | None = None, derived: bool = True) -> dict[str, list[Example]]:
    """Evaluation sets, all held out from training:

    * ``seed-test`` — the seed's test split as given;
    * ``hard-negatives`` — the seed's test positives against as many *hard* negatives as the seed
      test split has negatives (same class ratio, so F1 is comparable): all of the seed's held-out
      Python-docs negatives and handwritten ones, filled up with derived ones (pydocs-extra,
      man pages) in hash order;
    * ``hard-negatives-all`` — every held-out hard negative (report its false-positive rate).
    """
    examples = load_seed(seed)
    seed_path = Path(seed) if seed else default_seed_path()
    test = [e for e in examples if e.split == "test"]
    pos = [e for e in test if e.label == 1]
    n_neg = sum(1 for e in test if e.label == 0)
    seed_hn = [e for e in test if e.label == 0 and "hard-negative" in e.source]
    extra = [e for e in hard_negatives(seed_path.parent if seed_path else None, {e.text for e in examples},
                                       derived) if e.split == "test"]
    first = seed_hn + [e for e in extra if e.source.startswith("handwritten:")]
    rest = sorted((e for e in extra if not e.source.startswith("handwritten:")),
                  key=lambda e: hashlib.sha1(e.text.encode()).hexdigest())
    balanced = (first + rest)[:max(n_neg, len(first))]
    return {"seed-test": test, "hard-negatives": pos + balanced, "hard-negatives-all": seed_hn + extra}
