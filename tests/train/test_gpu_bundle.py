"""bench/gpu_bundle.py: the two-part bundle that carries the GGUF and data to the GPU machine."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
_spec = importlib.util.spec_from_file_location("gpu_bundle", REPO / "bench" / "gpu_bundle.py")
gb = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(gb)


@pytest.fixture
def payload(tmp_path):
    src = tmp_path / "src"
    (src / "data" / "shards" / "train").mkdir(parents=True)
    (src / "model.gguf").write_bytes(os.urandom(50_000))
    (src / "data" / "shards" / "manifest.json").write_text('{"seq_len": 8}')
    (src / "data" / "shards" / "train" / "a.bin").write_bytes(bytes(range(256)) * 40)
    return [("model.gguf", src / "model.gguf"), ("data", src / "data")]


def test_split_and_unpack_round_trip(tmp_path, payload):
    a, b = tmp_path / "gpu" / "a", tmp_path / "gpu" / "b"
    man = gb.split(payload, a, b, first_max=30_000, info={"what": "test"})
    p1, p2 = a / "bundle.tar.part1", b / "bundle.tar.part2"
    assert p1.stat().st_size == 30_000 and p2.stat().st_size == man["stream"]["size"] - 30_000
    assert not (a / "bundle.tar.part2").exists() and not (b / "bundle.tar.part1").exists()
    assert json.loads((a / "bundle.json").read_text()) == json.loads((b / "bundle.json").read_text()) == man
    assert {m["name"] for m in man["members"]} == {"model.gguf", "data/shards/manifest.json", "data/shards/train/a.bin"}
    assert not (tmp_path / "gpu" / "bundle.tar").exists()  # the whole stream is not left behind
    out = tmp_path / "out"
    gb.unpack([a, b], out)
    for name, src in payload:
        files = [src] if src.is_file() else [p for p in src.rglob("*") if p.is_file()]
        for f in files:
            rel = name if f == src else f"{name}/{f.relative_to(src).as_posix()}"
            assert (out / rel).read_bytes() == f.read_bytes()
    assert not (out / "bundle.tar").exists()


def test_part_found_in_any_listed_folder(tmp_path, payload):
    """Call 1 copies part 1 to /tmp/sfgpu: the join looks in every folder it is given."""
    a, b, moved = tmp_path / "a", tmp_path / "b", tmp_path / "moved"
    gb.split(payload, a, b, first_max=20_000)
    moved.mkdir()
    (a / "bundle.tar.part1").rename(moved / "bundle.tar.part1")
    gb.unpack([a, b, moved], tmp_path / "out")
    assert (tmp_path / "out" / "model.gguf").read_bytes() == payload[0][1].read_bytes()


def test_missing_part_names_the_call(tmp_path, payload):
    a, b = tmp_path / "a", tmp_path / "b"
    gb.split(payload, a, b, first_max=20_000)
    (a / "bundle.tar.part1").unlink()
    with pytest.raises(gb.BundleError, match=r"bundle.tar.part1 .* carried by call 1"):
        gb.unpack([a, b], tmp_path / "out")
    # call 1's check does not require the part call 2 brings
    man = gb.read_manifest([b])
    assert set(gb.find_parts(man, [b], need_all=False)) == {"bundle.tar.part2"}


def test_corrupt_or_truncated_part_is_named(tmp_path, payload):
    a, b = tmp_path / "a", tmp_path / "b"
    gb.split(payload, a, b, first_max=20_000)
    p2 = b / "bundle.tar.part2"
    data = bytearray(p2.read_bytes())
    data[100] ^= 0xFF
    p2.write_bytes(bytes(data))
    with pytest.raises(gb.BundleError, match=r"part2: sha256 differs"):
        gb.unpack([a, b], tmp_path / "out")
    p2.write_bytes(bytes(data[:-10]))
    with pytest.raises(gb.BundleError, match=r"part2: \d+ bytes, expected"):
        gb.unpack([a, b], tmp_path / "out")


def test_bad_member_names_and_missing_sources(tmp_path, payload):
    with pytest.raises(gb.BundleError, match="not a relative path"):
        gb.split([("../x", payload[0][1])], tmp_path / "a", tmp_path / "b", first_max=10)
    with pytest.raises(gb.BundleError, match="does not exist"):
        gb.split([("x", tmp_path / "nope")], tmp_path / "a", tmp_path / "b", first_max=10)
    with pytest.raises(gb.BundleError, match="no bundle.json"):
        gb.read_manifest([tmp_path / "empty"])


def test_cli_check_and_unpack(tmp_path, payload):
    a, b = tmp_path / "a", tmp_path / "b"
    gb.split(payload, a, b, first_max=20_000)
    run = lambda *args: subprocess.run([sys.executable, str(REPO / "bench" / "gpu_bundle.py"), *args],
                                       capture_output=True, text=True)
    r = run("check", str(a))
    assert r.returncode == 0 and "part1" in r.stdout and "ok at" in r.stdout and "not here" in r.stdout
    r = run("unpack", "--to", str(tmp_path / "out"), str(a))  # part 2 missing
    assert r.returncode == 2 and "carried by call 2" in r.stderr
    r = run("unpack", "--to", str(tmp_path / "out"), str(a), str(b))
    assert r.returncode == 0 and "sha256 verified" in r.stdout


def test_travel_bytes_counts_what_git_would_send(tmp_path):
    repo = tmp_path / "repo"
    repo.mkdir()
    subprocess.run(["git", "init", "-q", str(repo)], check=True)
    (repo / ".gitignore").write_text(".gpu/\n")
    (repo / "tracked.txt").write_bytes(b"x" * 1000)
    (repo / "untracked.txt").write_bytes(b"y" * 500)
    (repo / ".gpu").mkdir()
    (repo / ".gpu" / "big.bin").write_bytes(b"z" * 100_000)
    subprocess.run(["git", "-C", str(repo), "add", "tracked.txt", ".gitignore"], check=True)
    assert gb.travel_bytes(repo) == 1000 + 500 + len(".gpu/\n")
    assert gb.folder_bytes(repo / ".gpu") == 100_000
