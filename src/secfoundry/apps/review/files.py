"""Walk what the user pointed at, safely: classify each file, skip bad input with a note.

Skipped (never fatal, the rest is reviewed): binary files (a NUL byte in the first 8 KiB),
files over ``max_bytes``, symlink loops and dangling links, unreadable files and folders.
Directory symlinks are followed once (a (device, inode) set breaks loops).
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path

from secfoundry.apps.review.schemas import Skipped

SKIP_DIRS = {".git", ".hg", ".svn", "node_modules", ".venv", "venv", "__pycache__", ".tox", ".mypy_cache",
             ".pytest_cache", ".terraform", ".venv-tools"}

CODE_EXT = {".py": "python", ".pyw": "python", ".js": "javascript", ".jsx": "javascript", ".mjs": "javascript",
            ".cjs": "javascript", ".ts": "typescript", ".tsx": "typescript", ".java": "java", ".go": "go",
            ".c": "c", ".h": "c", ".cc": "cpp", ".cpp": "cpp", ".cxx": "cpp", ".hpp": "cpp"}

_K8S = re.compile(r"^\s*apiVersion\s*:", re.M)
_K8S_KIND = re.compile(r"^\s*kind\s*:\s*\w+", re.M)
_K8S_JSON = re.compile(r'"apiVersion"\s*:.*"kind"\s*:|"kind"\s*:.*"apiVersion"\s*:', re.S)
_COMPOSE = re.compile(r"^services\s*:", re.M)
_NGINX = re.compile(r"^\s*(server|http|location|upstream|events)\b[^{;]*\{|^\s*(proxy_pass|add_header|"
                    r"server_name|listen|root|alias)\s+\S", re.M)
_APACHE = re.compile(r"<\s*(VirtualHost|Directory|Location|IfModule)\b|^\s*(ServerTokens|ServerSignature|"
                     r"DocumentRoot|LoadModule|Listen)\s", re.M | re.I)
_SSHD = re.compile(r"^\s*(PermitRootLogin|PasswordAuthentication|PermitEmptyPasswords|X11Forwarding|"
                   r"MaxAuthTries|Protocol|UsePAM|ChallengeResponseAuthentication|HostKey|Ciphers|MACs)\s",
                   re.M | re.I)
_SYSCTL = re.compile(r"^\s*-?[a-z0-9_]+(\.[a-z0-9_*-]+)+\s*=\s*\S", re.M)
_SUDOERS = re.compile(r"^\s*(Defaults\b|%?\w[\w.-]*\s+ALL\s*=|[#@]includedir\b|User_Alias|Cmnd_Alias)", re.M)


@dataclass
class Target:
    path: Path          # absolute
    rel: str            # as reported (relative to the root given)
    kind: str           # dockerfile, kubernetes, terraform, compose, sshd, nginx, apache, sysctl, sudoers, <lang>
    size: int = 0


@dataclass
class Walk:
    root: Path
    targets: list[Target] = field(default_factory=list)
    skipped: list[Skipped] = field(default_factory=list)
    ignored: int = 0    # readable files of no kind we review

    def of(self, *kinds: str) -> list[Target]:
        return [t for t in self.targets if t.kind in kinds]


def config_kind(path: Path, head: str) -> str | None:
    """Kind of a configuration file from its name, then its content."""
    name = path.name.lower()
    parts = [p.lower() for p in path.parts]
    if name in ("dockerfile", "containerfile") or name.startswith("dockerfile.") or name.endswith(".dockerfile"):
        return "dockerfile"
    if name.endswith(".tf") or name.endswith(".tf.json"):
        return "terraform"
    if re.match(r"(docker-)?compose([.-].*)?\.ya?ml$", name):
        return "compose"
    if name == "sshd_config" or "sshd_config.d" in parts:
        return "sshd"
    if name == "sudoers" or "sudoers.d" in parts:
        return "sudoers"
    if name in ("sysctl.conf",) or "sysctl.d" in parts:
        return "sysctl"
    if name in ("httpd.conf", "apache2.conf", ".htaccess") or "httpd" in parts or "apache2" in parts:
        return "apache"
    if name == "nginx.conf" or "nginx" in parts and name.endswith(".conf"):
        return "nginx"
    suffix = path.suffix.lower()
    if suffix in (".yaml", ".yml"):
        if _K8S.search(head) and _K8S_KIND.search(head):
            return "kubernetes"
        if _COMPOSE.search(head):
            return "compose"
        return None
    if suffix == ".json":
        return "kubernetes" if _K8S_JSON.search(head[:4000]) else None
    if suffix in (".conf", ".cfg", "") or name.endswith(".conf.d"):
        if _SSHD.search(head) and len(_SSHD.findall(head)) >= 1 and "{" not in head:
            return "sshd"
        if _APACHE.search(head):
            return "apache"
        if _NGINX.search(head):
            return "nginx"
        if _SUDOERS.search(head):
            return "sudoers"
        if _SYSCTL.search(head):
            return "sysctl"
    return None


def code_kind(path: Path) -> str | None:
    return CODE_EXT.get(path.suffix.lower())


def _read_head(path: Path, n: int = 8192) -> bytes:
    with open(path, "rb") as fh:
        return fh.read(n)


def walk(paths: list[str | os.PathLike[str]], mode: str, *, max_bytes: int = 2_000_000) -> Walk:
    """Collect review targets under ``paths`` (files or folders) for ``mode`` 'config' or 'code'."""
    roots = [Path(p) for p in paths]
    base = roots[0] if len(roots) == 1 and roots[0].is_dir() else Path.cwd()
    out = Walk(root=base.resolve() if base.exists() else base)
    seen_dirs: set[tuple[int, int]] = set()
    seen_files: set[tuple[int, int]] = set()

    def rel(p: Path) -> str:
        try:
            return str(p.relative_to(base)) if base != Path.cwd() or not p.is_absolute() else str(p)
        except ValueError:
            return str(p)

    def consider(p: Path) -> None:
        r = rel(p)
        try:
            st = p.stat()  # follows links: ELOOP / ENOENT for loops and dangling links
        except OSError as e:
            reason = "symlink loop" if e.errno == 40 else ("dangling symlink" if p.is_symlink() else f"unreadable: {e.strerror}")
            out.skipped.append(Skipped(path=r, reason=reason))
            return
        key = (st.st_dev, st.st_ino)
        if key in seen_files:
            return
        seen_files.add(key)
        kind = code_kind(p) if mode == "code" else None
        if mode == "code" and kind is None:
            out.ignored += 1
            return
        if st.st_size > max_bytes:
            if mode == "code" or config_kind(p, "") is not None or p.suffix.lower() in (".yaml", ".yml", ".tf", ".json", ".conf"):
                out.skipped.append(Skipped(path=r, reason=f"too large: {st.st_size} bytes > {max_bytes}"))
            else:
                out.ignored += 1
            return
        try:
            head = _read_head(p)
        except OSError as e:
            out.skipped.append(Skipped(path=r, reason=f"unreadable: {e.strerror or e}"))
            return
        if b"\x00" in head:
            if kind or config_kind(p, "") or p.suffix.lower() in (".yaml", ".yml", ".tf", ".json", ".conf"):
                out.skipped.append(Skipped(path=r, reason="binary file (NUL byte in the first 8 KiB)"))
            else:
                out.ignored += 1
            return
        if mode == "config":
            kind = config_kind(p, head.decode("utf-8", "replace"))
            if kind is None:
                out.ignored += 1
                return
        out.targets.append(Target(path=p.absolute(), rel=r, kind=kind or "", size=st.st_size))

    def visit_dir(d: Path) -> None:
        try:
            st = d.stat()
        except OSError as e:
            out.skipped.append(Skipped(path=rel(d), reason="symlink loop" if e.errno == 40 else f"unreadable: {e.strerror}"))
            return
        key = (st.st_dev, st.st_ino)
        if key in seen_dirs:
            out.skipped.append(Skipped(path=rel(d), reason="symlink loop (folder already visited)"))
            return
        seen_dirs.add(key)
        try:
            entries = sorted(os.scandir(d), key=lambda e: e.name)
        except OSError as e:
            out.skipped.append(Skipped(path=rel(d), reason=f"unreadable folder: {e.strerror}"))
            return
        for ent in entries:
            p = Path(ent.path)
            try:
                is_dir = ent.is_dir(follow_symlinks=True)
            except OSError:
                is_dir = False
            if is_dir:
                if ent.name not in SKIP_DIRS:
                    visit_dir(p)
            else:
                consider(p)

    for r in roots:
        if r.is_dir():
            visit_dir(r)
        elif r.exists() or r.is_symlink():
            consider(r)
        else:
            out.skipped.append(Skipped(path=str(r), reason="no such file or folder"))
    return out


def read_text(path: Path) -> str:
    return path.read_text(encoding="utf-8", errors="replace")
