"""What travels to the GPU machine for the replication experiment at GPU scale (issue #15 item 5).

The device tool copies the repository plus at most 64 MiB per call (tracked files + carried
folders). The payload of the replication run -- the embedded GGUF (98.4 MB), the quickstart
corpus's packed shards, the held-out texts, the benchmark files and the wheels the device lacks --
does not fit one call, so it is written as ONE uncompressed tar stream (the GGUF as is; the data
already xz-compressed inside it) cut into two parts:

    .gpu/a/bundle.tar.part1  + bundle.json   carried by call 1 (which copies it to /tmp/sfgpu)
    .gpu/b/bundle.tar.part2  + bundle.json   carried by call 2, which joins, verifies, unpacks

``bundle.json`` holds the sha256 and size of every part, of the whole stream and of every member,
so a missing, truncated or corrupted part is named before anything runs. Stdlib only: it runs
before the wheels are installed on the device.

    python bench/gpu_bundle.py split OUT_A OUT_B --first-max-mib 55 NAME=PATH ...   # write the parts
    python bench/gpu_bundle.py check DIR...          # verify the parts present in DIRs (call 1)
    python bench/gpu_bundle.py unpack --to DEST DIR...  # join + verify + extract (call 2)
    python bench/gpu_bundle.py travel                # MiB the repository sends per call (git ls-files)
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tarfile
import time
from pathlib import Path

MiB = 1 << 20
FORMAT = "secfoundry-gpu-bundle-1"
MANIFEST = "bundle.json"
STREAM = "bundle.tar"
CHUNK = 4 * MiB


class BundleError(RuntimeError):
    """A part or member is missing, has the wrong size or the wrong sha256."""


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(CHUNK):
            h.update(block)
    return h.hexdigest()


def write_stream(members: list[tuple[str, Path]], dest: Path) -> list[dict]:
    """An uncompressed tar of ``members`` (arcname, path: a file or a folder) at ``dest``;
    returns each regular file's name, size and sha256 (checked again after unpacking)."""
    listed: list[dict] = []
    seen: set[str] = set()
    with tarfile.open(dest, "w", format=tarfile.PAX_FORMAT) as tar:
        for arcname, src in members:
            if arcname in seen or arcname.startswith(("/", "..")) or "/../" in arcname:
                raise BundleError(f"member name {arcname!r}: duplicate or not a relative path")
            seen.add(arcname)
            src = Path(src)
            if not src.exists():
                raise BundleError(f"member {arcname!r}: {src} does not exist")
            files = [src] if src.is_file() else sorted(p for p in src.rglob("*") if p.is_file())
            for p in files:
                name = arcname if p == src else f"{arcname}/{p.relative_to(src).as_posix()}"
                tar.add(p, arcname=name, recursive=False)
                listed.append({"name": name, "size": p.stat().st_size, "sha256": sha256_file(p)})
    return listed


def cut(stream: Path, dirs: list[Path], first_max: int) -> list[dict]:
    """Cut ``stream`` into len(dirs) == 2 parts: the first at most ``first_max`` bytes, the second
    the rest; part i goes to dirs[i] as ``bundle.tar.part{i+1}``."""
    if len(dirs) != 2:
        raise ValueError("two parts: one per device call")
    size = stream.stat().st_size
    bounds = [min(size, first_max), size]
    parts = []
    with open(stream, "rb") as f:
        start = 0
        for i, (d, end) in enumerate(zip(dirs, bounds)):
            d.mkdir(parents=True, exist_ok=True)
            p = d / f"{STREAM}.part{i + 1}"
            h = hashlib.sha256()
            with open(p, "wb") as out:
                left = end - start
                while left:
                    block = f.read(min(CHUNK, left))
                    if not block:
                        raise BundleError(f"{stream} ended early")
                    out.write(block)
                    h.update(block)
                    left -= len(block)
            parts.append({"file": p.name, "dir": d.name, "size": end - start, "sha256": h.hexdigest()})
            start = end
    return parts


def split(members: list[tuple[str, Path]], dir_a: Path, dir_b: Path, first_max: int,
          work: Path | None = None, info: dict | None = None) -> dict:
    """Write the two parts and ``bundle.json`` (into both folders); returns the manifest."""
    for d in (dir_a, dir_b):
        if d.exists():
            shutil.rmtree(d)
        d.mkdir(parents=True)
    work = work or dir_b.parent
    stream = work / STREAM
    try:
        listed = write_stream(members, stream)
        whole = {"name": STREAM, "size": stream.stat().st_size, "sha256": sha256_file(stream)}
        parts = cut(stream, [dir_a, dir_b], first_max)
    finally:
        stream.unlink(missing_ok=True)
    man = {"format": FORMAT, "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
           "stream": whole, "parts": parts, "members": listed, "info": info or {}}
    for d in (dir_a, dir_b):
        (d / MANIFEST).write_text(json.dumps(man, indent=1) + "\n")
    return man


def read_manifest(dirs: list[Path]) -> dict:
    for d in dirs:
        m = Path(d) / MANIFEST
        if m.is_file():
            man = json.loads(m.read_text())
            if man.get("format") != FORMAT:
                raise BundleError(f"{m}: format {man.get('format')!r}, expected {FORMAT!r}")
            return man
    raise BundleError(f"no {MANIFEST} in any of {', '.join(map(str, dirs))}")


def find_parts(man: dict, dirs: list[Path], need_all: bool = True) -> dict[str, Path]:
    """Each part's path (first folder that holds it with the right size and sha256). A part
    present with the wrong size or hash is an error naming it; an absent one only if need_all."""
    found: dict[str, Path] = {}
    problems = []
    for part in man["parts"]:
        bad = []
        for d in dirs:
            p = Path(d) / part["file"]
            if not p.is_file():
                continue
            if p.stat().st_size != part["size"]:
                bad.append(f"{p}: {p.stat().st_size} bytes, expected {part['size']}")
            elif sha256_file(p) != part["sha256"]:
                bad.append(f"{p}: sha256 differs from the manifest's {part['sha256'][:16]}...")
            else:
                found[part["file"]] = p
                break
        if part["file"] not in found:
            if bad:
                problems.extend(bad)
            elif need_all:
                problems.append(f"{part['file']} ({part['size']:,} bytes, carried by call "
                                f"{man['parts'].index(part) + 1}) is in none of {', '.join(map(str, dirs))}")
    if problems:
        raise BundleError("; ".join(problems))
    return found


def join(man: dict, dirs: list[Path], dest: Path) -> Path:
    """Concatenate the verified parts into ``dest`` and check the whole stream's sha256."""
    found = find_parts(man, dirs)
    h = hashlib.sha256()
    with open(dest, "wb") as out:
        for part in man["parts"]:
            with open(found[part["file"]], "rb") as f:
                while block := f.read(CHUNK):
                    out.write(block)
                    h.update(block)
    if h.hexdigest() != man["stream"]["sha256"] or dest.stat().st_size != man["stream"]["size"]:
        raise BundleError(f"{dest}: the joined stream does not match the manifest's sha256")
    return dest


def unpack(dirs: list[Path], to: Path) -> dict:
    """Join, verify and extract into ``to``; every member's sha256 is checked after extraction."""
    man = read_manifest(dirs)
    to.mkdir(parents=True, exist_ok=True)
    stream = join(man, dirs, to / STREAM)
    try:
        with tarfile.open(stream, "r:") as tar:
            kw = {"filter": "data"} if hasattr(tarfile, "data_filter") else {}
            tar.extractall(to, **kw)
    finally:
        stream.unlink(missing_ok=True)
    for m in man["members"]:
        p = to / m["name"]
        if not p.is_file() or p.stat().st_size != m["size"] or sha256_file(p) != m["sha256"]:
            raise BundleError(f"{p}: missing or not the file the manifest lists (sha256 {m['sha256'][:16]}...)")
    return man


def travel_bytes(repo: Path) -> int:
    """Bytes of what the device tool sends besides carried folders: tracked files and untracked
    files git does not ignore (``git ls-files -co --exclude-standard``)."""
    out = subprocess.run(["git", "-C", str(repo), "ls-files", "-z", "-co", "--exclude-standard"],
                         check=True, capture_output=True).stdout
    total = 0
    for name in out.decode().split("\0"):
        p = repo / name
        if name and p.is_file() and not p.is_symlink():
            total += p.stat().st_size
    return total


def folder_bytes(d: Path) -> int:
    return sum(p.stat().st_size for p in Path(d).rglob("*") if p.is_file())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("split")
    s.add_argument("dir_a", type=Path)
    s.add_argument("dir_b", type=Path)
    s.add_argument("members", nargs="+", help="NAME=PATH (file or folder)")
    s.add_argument("--first-max-mib", type=float, default=55.0)
    c = sub.add_parser("check")
    c.add_argument("dirs", nargs="+", type=Path)
    u = sub.add_parser("unpack")
    u.add_argument("dirs", nargs="+", type=Path)
    u.add_argument("--to", type=Path, required=True)
    t = sub.add_parser("travel")
    t.add_argument("--repo", type=Path, default=Path(__file__).resolve().parents[1])
    a = ap.parse_args()
    try:
        if a.cmd == "split":
            members = [(m.split("=", 1)[0], Path(m.split("=", 1)[1])) for m in a.members]
            man = split(members, a.dir_a, a.dir_b, int(a.first_max_mib * MiB))
            print(json.dumps({p["file"]: p["size"] for p in man["parts"]}))
        elif a.cmd == "check":
            man = read_manifest(a.dirs)
            found = find_parts(man, a.dirs, need_all=False)
            for part in man["parts"]:
                state = f"ok at {found[part['file']]}" if part["file"] in found else "not here"
                print(f"{part['file']}: {part['size'] / MiB:.1f} MiB, sha256 {part['sha256'][:16]}... {state}")
        elif a.cmd == "unpack":
            man = unpack(a.dirs, a.to)
            print(f"unpacked {len(man['members'])} files ({man['stream']['size'] / MiB:.1f} MiB) into {a.to}, sha256 verified")
        else:
            print(f"{travel_bytes(a.repo) / MiB:.2f}")
    except BundleError as e:
        print(f"gpu_bundle: {e}", file=sys.stderr)
        sys.exit(2)


if __name__ == "__main__":
    os.umask(0o022)
    main()
