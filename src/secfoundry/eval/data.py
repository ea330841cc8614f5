"""Benchmark files: a local copy when there is one, else a pinned, verified download.

Every benchmark file is a ``DataFile``: its path relative to a benchmarks directory laid out
like ``../shared/data/benchmarks`` (one folder per family, upstream file names), the upstream
URL at a pinned commit, and the sha256 of the file. Resolution order:

1. ``--data-dir`` / ``SECFOUNDRY_DATA`` / ``../shared/data/benchmarks``
   (``secfoundry.core.paths.benchmark_data_dir``): used as is; a checksum mismatch is logged (users
   may keep a patched copy) and the actual sha256 is what runs record;
2. ``SECFOUNDRY_HOME/benchmarks/<relpath>`` (an earlier download);
3. download through ``core.download`` into the cache, verify the sha256, move into place atomically.

Set ``SECFOUNDRY_OFFLINE=1`` to forbid step 3.
"""

from __future__ import annotations

import logging
import os
import pickle
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from secfoundry.core import paths
from secfoundry.core.hashing import sha256_file

log = logging.getLogger(__name__)


class DataUnavailable(RuntimeError):
    """A benchmark file is neither local nor downloadable (offline, 404, checksum mismatch)."""


@dataclass(frozen=True)
class DataFile:
    relpath: str  # e.g. "cybermetric/CyberMetric-500-v1.json"
    url: str  # upstream, at a pinned commit
    sha256: str | None = None  # None: upstream content not pinned (trust on first download)
    convert: str | None = None  # "pickle-json": upstream is a plain-data pickle, stored as JSON

    @property
    def name(self) -> str:
        return self.relpath.rsplit("/", 1)[-1]


def cache_root() -> Path:
    return paths.cache_dir("benchmarks")


def resolve(file: DataFile, data_dir: str | os.PathLike | None = None, *, download: bool = True) -> Path:
    """Local path of a benchmark file (see module docstring for the order)."""
    base = paths.benchmark_data_dir(data_dir)
    if base is not None:
        local = Path(base) / file.relpath
        if local.is_file():
            if file.sha256 and sha256_file(local) != file.sha256:
                log.warning("%s: sha256 %s differs from the pinned %s (using the local copy as is)",
                            local, sha256_file(local), file.sha256)
            return local
    cached = cache_root() / file.relpath
    if cached.is_file() and (not file.sha256 or sha256_file(cached) == file.sha256):
        return cached
    if not download or os.environ.get("SECFOUNDRY_OFFLINE") == "1":
        where = f"{Path(base) / file.relpath} or " if base is not None else ""
        raise DataUnavailable(f"{file.relpath}: not found in {where}{cached} and downloads are disabled; "
                              f"pass --data-dir DIR (a folder laid out like shared/data/benchmarks)")
    return download_file(file, cached)


def download_file(file: DataFile, dest: Path, timeout: float = 60.0) -> Path:
    """Download through the one pinned downloader (``core.download``); failures are ``DataUnavailable``."""
    from secfoundry.core.download import ChecksumError, FetchError, Fetcher

    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_name(dest.name + ".part")
    log.info("downloading %s -> %s", file.url, dest)
    pin = None if file.convert else file.sha256  # a converted file is checked after conversion, not before
    try:
        with Fetcher(timeout=timeout, retries=2) as fetcher:
            fetcher.download(file.url, tmp, sha256=pin)
    except ChecksumError as e:
        raise DataUnavailable(f"{file.relpath}: {e} (sha256 of {file.url} differs from the pinned one)") from e
    except (FetchError, OSError) as e:
        tmp.unlink(missing_ok=True)
        raise DataUnavailable(f"{file.relpath}: download from {file.url} failed ({e}); "
                              f"pass --data-dir DIR with a local copy") from e
    finally:
        tmp.with_name(tmp.name + ".meta.json").unlink(missing_ok=True)
    if file.convert == "pickle-json":
        data = safe_unpickle(tmp.read_bytes(), file.url)
        tmp.write_text(json.dumps(data, indent=1, ensure_ascii=False), encoding="utf-8")
    os.replace(tmp, dest)
    return dest


class _PlainUnpickler(pickle.Unpickler):
    """Refuses every global, so only plain containers/strings/numbers can be loaded: nothing in
    the file can run code. CTIBench ships its actor graphs as pickled dict[str, list[str]]."""

    def find_class(self, module: str, name: str) -> Any:  # noqa: D401
        raise pickle.UnpicklingError(f"refusing global {module}.{name}")


def safe_unpickle(data: bytes, origin: str) -> Any:
    import io

    try:
        obj = _PlainUnpickler(io.BytesIO(data)).load()
    except Exception as e:  # any malformed or non-plain pickle
        raise DataUnavailable(f"{origin}: not a plain-data pickle ({e})") from e
    if not isinstance(obj, dict):
        raise DataUnavailable(f"{origin}: expected a dict, got {type(obj).__name__}")
    return {str(k): [str(v) for v in vs] for k, vs in obj.items()}


def describe(files: list[DataFile], data_dir: str | os.PathLike | None = None) -> list[dict[str, Any]]:
    """What a run records about its data: path, url, pinned and actual sha256."""
    out = []
    for f in files:
        try:
            p = resolve(f, data_dir, download=False)
            actual = sha256_file(p)
            out.append({"file": f.relpath, "url": f.url, "sha256": actual, "pinned": f.sha256,
                        "matches_pin": f.sha256 in (None, actual), "path": str(p)})
        except DataUnavailable:
            out.append({"file": f.relpath, "url": f.url, "sha256": None, "pinned": f.sha256})
    return out


# --- pinned upstream locations -------------------------------------------------------------------

CTIBENCH_COMMIT = "57ce8c246e5fc66a16c6cef743f3a983831b90f0"  # xashru/cti-bench (now maveryn/cti-bench)
CYBERMETRIC_COMMIT = "2f5818b"  # cybermetric/CyberMetric
SECBENCH_COMMIT = "3a148ab"  # secbench-git/SecBench
SECEVAL_COMMIT = "7aef317"  # XuanwuAI/SecEval (the data file lives on the HF dataset)


def github_raw(repo: str, commit: str, path: str) -> str:
    # github.com/<repo>/raw/<ref>/<path> resolves abbreviated commits and redirects to raw.
    return f"https://github.com/{repo}/raw/{commit}/{path}"


def ctibench(path: str, sha: str | None, convert: str | None = None, upstream: str | None = None) -> DataFile:
    return DataFile(f"ctibench/{path}", github_raw("xashru/cti-bench", CTIBENCH_COMMIT, upstream or f"data/{path}"),
                    sha, convert)


def cybermetric(n: int, sha: str | None) -> DataFile:
    return DataFile(f"cybermetric/CyberMetric-{n}-v1.json",
                    github_raw("cybermetric/CyberMetric", CYBERMETRIC_COMMIT, f"CyberMetric-{n}-v1.json"), sha)


def ctibench_responses(task: str, sha: str) -> DataFile:
    """The CTIBench authors' published model responses for ``task`` (e.g. cti-mcq)."""
    return ctibench(f"responses/{task}-responses.tsv", sha, upstream=f"evaluation/responses/{task}-responses.tsv")


FILES: dict[str, DataFile] = {
    "cti-mcq": ctibench("cti-mcq.tsv", "11e0af8db2dae9706c6e79901d2390bcdf9746e8feccbd9ba10682df649bcc6a"),
    "cti-rcm": ctibench("cti-rcm.tsv", "ed7d7fa79fc912c627f96e229eaa38b3c4b6be813d834d434580be6d4703d700"),
    "cti-rcm-2021": ctibench("cti-rcm-2021.tsv", "a1fc5348b4bc181778dd98055f267b584755215580dd8a18896134e2670d43d3"),
    "cti-vsp": ctibench("cti-vsp.tsv", "43d4ceefe042236a7d0885cb8506bf6537426cf2359eddb2450dd151864a498b"),
    "cti-ate": ctibench("cti-ate.tsv", "79e5354a5c6aae0c979389786853e768201f8d129fb0f0ca5af392555f238f28"),
    "cti-taa": ctibench("cti-taa.tsv", "2f14c3209ea83bd9e7bc456e336d10a78870cfe2b9b4dc3f86ea50621d6f6321"),
    "cti-taa-responses": ctibench_responses("cti-taa", "3d776cf7f36fc9890b9fd728a5df786139ae1ad4fe4413d09c7c1b67044ca764"),
    "cti-mcq-responses": ctibench_responses("cti-mcq", "41011627e0580fdc73102f0f64f858760780cc19fb05761e1d97bc76f616b8e5"),
    "cti-rcm-responses": ctibench_responses("cti-rcm", "418fc17114f6e5a9e339d07135242ce157a985b17afde038c89348782778aa14"),
    "cti-rcm-2021-responses": ctibench_responses("cti-rcm-2021", "88390e80e76cf6b4b96a2652e176960049471f61593330d5083c3c59042c4dc9"),
    "cti-vsp-responses": ctibench_responses("cti-vsp", "ae32b1ee6adf036312473a47a12951709761c8cea87e615d1b53128de62bf0d0"),
    # Upstream ships these as pickles; shared data holds the JSON conversion (sha256 of that).
    # A download goes through the no-globals unpickler above and is stored as JSON.
    "cti-alias": ctibench("alias_dict.json", None, "pickle-json", upstream="evaluation/alias_dict.pickle"),
    "cti-related": ctibench("related_dict.json", None, "pickle-json", upstream="evaluation/related_dict.pickle"),
    "cybermetric-80": cybermetric(80, "1624aeecc54761198bff4828442ce4a10de6cb87c9da3298088b34ae11e15ba0"),
    "cybermetric-500": cybermetric(500, "036747c989da9f38f39a6b33fa2d5ab14147c928df0274217bbecab20be88faa"),
    # Not in shared data: 2000 is unpinned (trust on first download), 10000's sha256 is published.
    "cybermetric-2000": cybermetric(2000, None),
    "cybermetric-10000": cybermetric(10000, "4e35bb62c73b60bd27e54512b2ace6f9286ff2921a45a3d5fe2da22401e04bbb"),
    "secbench-mcq": DataFile("secbench/MCQs_2730.jsonl",
                             github_raw("secbench-git/SecBench", SECBENCH_COMMIT, "data/MCQs_2730.jsonl"),
                             "47bd5abf97182bf1bb673051d8b7af41b36da5a5f38b7ecec2a0e03169f7bc2d"),
    "secbench-saq": DataFile("secbench/SAQs_270.jsonl",
                             github_raw("secbench-git/SecBench", SECBENCH_COMMIT, "data/SAQs_270.jsonl"),
                             "f8cddfec58041ddb229ed83e19895082cf8c95251b6c9c9391de5a08b3bbdb3b"),
    "seceval": DataFile("seceval/questions.json",
                        "https://huggingface.co/datasets/XuanwuAI/SecEval/resolve/main/questions.json",
                        "ed06498bc4cb99ac2a6e197bd150922de590b45fd3b63f368437bdf67d8982e5"),
}
