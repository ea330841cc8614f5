"""Simulate, on this CPU machine, what the GPU device sees in call 2 of the GPU check, and run the
CPU dry run there (issue #15 item 5): a scratch copy of the repository holding only what the
device tool sends (tracked files + untracked files git does not ignore, + the carried ``.gpu/a``
and ``.gpu/b``; no ``.venv``, no ``runs/``, no ``../shared``), a fresh ``python3 -m venv`` that
sees only the packages the device image has (KINDS.md's list for 'nvidia-h200', linked from this
venv, so versions are this machine's, not the device's), the carried wheels installed the way the
device README says, and ``GPU_CHECK_DRY=1 bash bench/gpu_check.sh`` run in it. A package the run
imports that the device lacks (and the bundle does not carry) fails here as it would there.

    python bench/gpu_devsim.py [--work /tmp/gpu_devsim] [--no-throughput]
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import sysconfig
import time
from importlib.metadata import distributions
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

# /work/.library/device/KINDS.md, "Python packages already there" (nvidia-h200, image 'cuda', read
# 2026-11-17). python3 there is 3.12 with these; anything else must travel as a wheel.
DEVICE_PACKAGES = """absl-py accelerate aiofiles aiohappyeyeballs aiohttp aiosignal annotated-doc anyio attrs botorch
build certifi charset-normalizer chex click cloudpickle cmake colorama contourpy coverage cuda-bindings cuda-core
cuda-pathfinder cuda-toolkit cupy-cuda13x cycler cython diffrax e3nn einops equinox etils execnet filelock
flatbuffers flax fonttools formulaic frozenlist fsspec gpytorch grpcio h11 h5py hf-xet httpcore httpx
huggingface-hub humanize hypothesis idna imageio iniconfig interface-meta jax jax-cuda13-pjrt jax-cuda13-plugin
jaxlib jaxtyping jinja2 joblib kiwisolver lazy-loader lightning lightning-utilities linear-operator lineax
llvmlite lxml markdown markdown-it-py markupsafe matplotlib mdurl meson ml-dtypes mpi4py mpmath msgpack
multidict multipledispatch mypy-extensions nanobind narwhals networkx ninja numba numba-cuda numpy numpyro
nvidia-cublas nvidia-cuda-cupti nvidia-cuda-nvrtc nvidia-cuda-runtime nvidia-cudnn-cu13 nvidia-cufft
nvidia-cufile nvidia-curand nvidia-cusolver nvidia-cusparse nvidia-cusparselt-cu13 nvidia-ml-py
nvidia-nccl-cu13 nvidia-nvjitlink nvidia-nvshmem-cu13 nvidia-nvtx onnx onnx-ir onnxruntime onnxscript
opencv-python-headless optax opt-einsum opt-einsum-fx optimistix orbax-checkpoint packaging pandas pathspec
patsy peft pillow pip pluggy portalocker prometheus-client propcache protobuf psutil pyarrow pybind11
py-cpuinfo pygments pyparsing pyproject-hooks pyre-extensions pytest pytest-benchmark pytest-cov pytest-mock
pytest-timeout pytest-xdist python-dateutil pytorch-lightning pyyaml regex requests rich sacrebleu
safetensors scikit-build-core scikit-image scikit-learn scipy seaborn sentencepiece sentence-transformers
setuptools shellingham simplejson six sortedcontainers statsmodels sympy tabulate tensorboard
tensorboard-data-server tensorstore threadpoolctl tifffile tiktoken timm tokenizers toolz torch torchaudio
torchdiffeq torch-geometric torchmetrics torchvision tqdm transformers treescope triton typer
typing-extensions typing-inspect urllib3 uvloop wadler-lindig werkzeug wheel wrapt xarray xxhash yarl zipp""".split()


# Every module the device run imports, directly or through the library (lazy imports included).
IMPORTS = ["secfoundry.cli", "secfoundry.train.trainer", "secfoundry.train.plan", "secfoundry.train.data",
           "secfoundry.corpus.prepare.shards", "secfoundry.experiment.replicate", "secfoundry.experiment.report",
           "secfoundry.eval.runner", "secfoundry.eval.benchmarks", "secfoundry.models.hf", "secfoundry.models.embedded",
           "secfoundry.corpus.collect.general", "secfoundry.corpus.engine.recipe", "secfoundry.corpus.prepare.pack",
           "transformers.integrations.ggml", "transformers.modeling_gguf_pytorch_utils", "gguf", "accelerate",
           "matplotlib.pyplot", "markdown_it", "jinja2", "filelock", "safetensors", "yaml", "lzma", "tarfile"]


def norm(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def device_site(dest: Path) -> list[str]:
    """Links to this venv's installed files of the device's packages only (top-level modules and
    their .dist-info, so importlib.metadata version checks see them too)."""
    site = Path(sysconfig.get_paths()["purelib"])
    dists = {norm(d.metadata["Name"] or ""): d for d in distributions(path=[str(site)])}
    # The listed packages and what they need (as installed here): the image satisfies its own
    # packages' requirements, with its versions (a requirement behind an extra is not followed).
    want, todo = set(), [norm(n) for n in DEVICE_PACKAGES]
    while todo:
        name = todo.pop()
        if name in want:
            continue
        want.add(name)
        for req in (dists[name].requires or []) if name in dists else []:
            if "extra ==" in req or "extra==" in req:
                continue
            todo.append(norm(re.split(r"[\s;<>=!~\[(]", req, maxsplit=1)[0]))
    dest.mkdir(parents=True)
    linked = []
    for name, dist in dists.items():
        if name not in want:
            continue
        tops = set()
        for f in dist.files or []:
            part = f.parts[0]
            if part in ("..", "__pycache__") or part.endswith(".pth"):
                continue
            tops.add(part)
        for top in tops:
            src, link = site / top, dest / top
            if src.exists() and not link.exists():
                link.symlink_to(src)
        linked.append(name)
    return sorted(linked)


def scratch_repo(dest: Path) -> int:
    """What the device tool sends: tracked + untracked-not-ignored files, and the carried .gpu/a, .gpu/b."""
    names = subprocess.run(["git", "-C", str(REPO), "ls-files", "-z", "-co", "--exclude-standard"],
                           check=True, capture_output=True).stdout.decode().split("\0")
    n = 0
    for name in filter(None, names):
        src = REPO / name
        if src.is_file():
            (dest / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dest / name, follow_symlinks=False)
            n += 1
    for carried in (".gpu/a", ".gpu/b"):
        shutil.copytree(REPO / carried, dest / carried)
    subprocess.run(["git", "init", "-q", str(dest)], check=True)  # the device gets a checkout
    return n


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--work", type=Path, default=Path("/tmp/gpu_devsim"))
    ap.add_argument("--no-throughput", action="store_true", help="skip the throughput runs (bundle, conversion, replication only)")
    ap.add_argument("--check-imports", action="store_true",
                    help="only import, in the simulated device environment, every module the device run uses")
    a = ap.parse_args()
    t0 = time.time()
    if a.work.exists():
        shutil.rmtree(a.work)
    repo, site, venv = a.work / "repo", a.work / "devsite", a.work / "venv"
    n = scratch_repo(repo)
    linked = device_site(site)
    subprocess.run(["/usr/bin/python3", "-m", "venv", "--without-pip", str(venv)], check=True)
    py = venv / "bin" / "python"
    purelib = subprocess.run([str(py), "-c", "import sysconfig;print(sysconfig.get_paths()['purelib'])"],
                             check=True, capture_output=True, text=True).stdout.strip()
    Path(purelib, "device_site.pth").write_text(str(site) + "\n")
    print(f"scratch repo: {n} files + .gpu/a, .gpu/b; device packages linked: {len(linked)}; venv {venv}")
    missing = sorted({norm(p) for p in DEVICE_PACKAGES} - set(linked))
    print(f"device packages not installed here (so not simulated): {', '.join(missing)}")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("VIRTUAL_ENV", "PYTHON"))}
    env.update(PYTHON=str(py), PATH=f"{venv / 'bin'}:{env.get('PATH', '')}", GPU_CHECK_DRY="1",
               OUT=str(a.work / "out"), GPU_CHECK_WORK=str(a.work / "gpu_check"), HOME=str(a.work / "home"))
    whl = REPO / ".gpu" / "whl-local"  # the bundle's wheels for this Python (bench/gpu_prepare.py)
    env["GPU_CHECK_WHEELS"] = str(whl)
    if a.check_imports:
        wheels = sorted(whl.glob("*.whl"))
        target = a.work / "site-wheels"
        r = subprocess.run([str(py), "-m", "pip", "install", "-q", "--no-index", "--no-deps", "--no-compile",
                            "--target", str(target), *map(str, wheels)], env=env)
        env["PYTHONPATH"] = f"{repo / 'src'}:{target}"
        code = "; ".join(f"import {m}" for m in IMPORTS) + "; print('all imports resolve:', len(%r))" % (IMPORTS,)
        r = subprocess.run([str(py), "-c", code], cwd=repo, env=env)
        sys.exit(r.returncode)
    if a.no_throughput:
        env["GPU_CHECK_RUNS"] = ""
    r = subprocess.run(["bash", "bench/gpu_check.sh"], cwd=repo, env=env)
    print(f"gpu_devsim: gpu_check.sh exit {r.returncode} in {time.time() - t0:.0f} s (work {a.work})")
    sys.exit(r.returncode)


if __name__ == "__main__":
    main()
