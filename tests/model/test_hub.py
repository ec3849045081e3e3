"""Model hub: built-in model, name resolution, sha256-verified resumable downloads.

Every download goes to a local HTTP server on 127.0.0.1 ($SAM_PETS_DOWNLOAD_URL); the registry's
hashes are replaced by the fixture's, so nothing here reaches the internet.
"""

from __future__ import annotations

import dataclasses
import hashlib
import os

import pytest
import torch

from local_http import FileServer, unused_port
from sam_pets.model import build_model, hub, save_checkpoint
from sam_pets.progress import Progress, run_job

NAME = "sam2.1_hiera_tiny"
URL_PATH = f"/092824/{NAME}.pt"
PAYLOAD = os.urandom(50_000)


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("SAM_PETS_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setattr(hub, "CHUNK_BYTES", 4096)
    return tmp_path / "cache" / "checkpoints"


@pytest.fixture
def server(cache, monkeypatch):
    with FileServer() as srv:
        srv.files[URL_PATH] = PAYLOAD
        monkeypatch.setenv("SAM_PETS_DOWNLOAD_URL", srv.url)
        _set_hash(monkeypatch, NAME, hashlib.sha256(PAYLOAD).hexdigest())
        yield srv


def _set_hash(monkeypatch, name, sha256, **changes):
    entry = dataclasses.replace(hub.OFFICIAL[name], sha256=sha256, **changes)
    monkeypatch.setitem(hub.OFFICIAL, name, entry)


def _download(name=NAME, **kw):
    job = hub.download(name, **kw)
    records = []
    while True:
        try:
            records.append(next(job))
        except StopIteration as stop:
            return stop.value, records


def test_registry_urls_and_hashes():
    assert len(hub.OFFICIAL) == 8
    tiny = hub.OFFICIAL["sam2.1_hiera_tiny"]
    assert tiny.url().endswith("segment_anything_2/092824/sam2.1_hiera_tiny.pt")
    assert hub.OFFICIAL["sam2_hiera_large"].url().endswith("/072824/sam2_hiera_large.pt")
    assert hub.OFFICIAL["sam2.1_hiera_large"].sha256 is None
    assert all(len(e.sha256) == 64 for e in hub.OFFICIAL.values() if e.sha256)
    assert hub.official("tiny") is tiny and hub.official("nope") is None
    assert hub.model_names()[0] == "pets"


def test_good_download_is_verified_and_cached(server, cache):
    res, records = _download()
    assert res.path == cache / f"{NAME}.pt" and res.verified and res.fetched
    assert res.path.read_bytes() == PAYLOAD
    assert not list(cache.glob("*.part"))
    steps = [r.step for r in records if r.message.startswith("downloading")]
    assert steps == sorted(steps) and steps[-1] == len(PAYLOAD) and len(steps) > 5
    assert all(isinstance(r, Progress) for r in records)
    assert records[0].total == len(PAYLOAD)
    # cached: no second request; --force fetches again
    res2, _ = _download()
    assert not res2.fetched and len(server.requests) == 1
    res3, _ = _download(force=True)
    assert res3.fetched and len(server.requests) == 2 and res3.path.read_bytes() == PAYLOAD


def test_corrupted_file_never_reaches_the_cache(server, cache, monkeypatch):
    _set_hash(monkeypatch, NAME, "0" * 64)
    with pytest.raises(hub.DownloadError, match="sha256 mismatch") as e:
        _download()
    assert "nothing was installed" in str(e.value)
    assert not (cache / f"{NAME}.pt").exists() and not list(cache.glob("*.part"))
    with pytest.raises(hub.ModelNotFoundError, match=f"sam-pets download {NAME}"):
        hub.resolve_checkpoint(NAME)


def test_interrupted_transfer_resumes_with_range(server, cache):
    server.faults[URL_PATH] = [("cut", 20_000)]
    with pytest.raises(hub.DownloadError, match="interrupted after 0.0 MB.*again to resume"):
        _download()
    part = cache / f"{NAME}.pt.part"
    assert part.stat().st_size == 20_000 and not (cache / f"{NAME}.pt").exists()
    res, records = _download()
    assert server.requests[-1]["range"] == "bytes=20000-"
    assert res.verified and res.path.read_bytes() == PAYLOAD and not part.exists()
    first = next(r for r in records if r.message.startswith("downloading"))
    assert first.step > 20_000 and first.total == len(PAYLOAD)


def test_server_ignoring_range_starts_over(server, cache):
    server.faults[URL_PATH] = [("cut", 10_000), ("no-range",)]
    with pytest.raises(hub.DownloadError):
        _download()
    res, _ = _download()
    assert server.requests[-1]["range"] == "bytes=10000-"  # asked, but got a 200
    assert res.path.read_bytes() == PAYLOAD


def test_stale_part_is_discarded_and_fetched_afresh(server, cache):
    cache.mkdir(parents=True)
    (cache / f"{NAME}.pt.part").write_bytes(b"x" * 1000)  # not a prefix of the real file
    res, records = _download()
    assert [r["range"] for r in server.requests] == ["bytes=1000-", None]
    assert any("downloading afresh" in r.message for r in records)
    assert res.path.read_bytes() == PAYLOAD


def test_complete_part_gets_416_then_installed(server, cache):
    cache.mkdir(parents=True)
    (cache / f"{NAME}.pt.part").write_bytes(PAYLOAD)
    res, _ = _download()
    assert server.requests == [{"path": URL_PATH, "range": f"bytes={len(PAYLOAD)}-"}]
    assert res.path.read_bytes() == PAYLOAD


def test_stalled_server_times_out_and_keeps_the_part(server, cache):
    server.stall_s = 2.0
    server.faults[URL_PATH] = [("stall", 8192)]
    with pytest.raises(hub.DownloadError, match="interrupted.*timed out"):
        _download(timeout=0.3)
    assert (cache / f"{NAME}.pt.part").stat().st_size == 8192


def test_http_error_is_reported(server, cache):
    with pytest.raises(hub.DownloadError, match="HTTP 404"):
        _download("sam2_hiera_small")
    with pytest.raises(KeyError, match="unknown official checkpoint"):
        _download("sam3_giant")


def test_offline_gives_one_clear_message(cache, monkeypatch):
    monkeypatch.setenv("SAM_PETS_DOWNLOAD_URL", f"http://127.0.0.1:{unused_port()}")
    with pytest.raises(hub.OfflineError) as e:
        _download()
    msg = str(e.value)
    assert "unreachable" in msg and "offline" in msg
    assert "--checkpoint FILE" in msg and "Open checkpoint" in msg and "'pets'" in msg
    assert "sam-pets info FILE" in msg  # info takes the file as its argument, not --checkpoint
    assert not cache.exists() or not list(cache.iterdir())


@pytest.fixture(scope="module")
def test_ckpt_bytes(tmp_path_factory) -> bytes:
    path = save_checkpoint(build_model("test", seed=0), tmp_path_factory.mktemp("c") / "t.pt")
    return path.read_bytes()


def test_file_without_known_hash_gets_its_layout_checked(
    server, cache, monkeypatch, test_ckpt_bytes
):
    large = "sam2.1_hiera_large"
    server.files[f"/092824/{large}.pt"] = test_ckpt_bytes
    _set_hash(monkeypatch, large, None, config="test")
    res, _ = _download(large)
    assert not res.verified and res.path.read_bytes() == test_ckpt_bytes


def test_file_without_hash_and_wrong_layout_is_refused(server, cache, monkeypatch, test_ckpt_bytes):
    large = "sam2.1_hiera_large"
    server.files[f"/092824/{large}.pt"] = test_ckpt_bytes
    _set_hash(monkeypatch, large, None, config="cpu_small")
    with pytest.raises(hub.DownloadError, match="layout of test, not cpu_small"):
        _download(large)
    assert not (cache / f"{large}.pt").exists() and not list(cache.glob("*.part"))
    server.files[f"/092824/{large}.pt"] = b"garbage" * 100
    with pytest.raises(hub.DownloadError, match="not a usable checkpoint"):
        _download(large)


# --- resolving models ------------------------------------------------------------------------
@pytest.fixture
def builtin(tmp_path, monkeypatch):
    path = tmp_path / "pets.pt"
    save_checkpoint(build_model("test", seed=1), path, dtype=torch.float16)
    monkeypatch.setenv("SAM_PETS_BUILTIN_MODEL", str(path))
    return path


def test_builtin_model_resolves_and_loads_in_fp32(builtin):
    assert hub.resolve_checkpoint("pets") == builtin
    model = hub.resolve_model()
    assert model.cfg.name == "test"
    assert all(p.dtype == torch.float32 for p in model.parameters())


def test_missing_builtin_is_a_clear_error(tmp_path, monkeypatch):
    monkeypatch.setenv("SAM_PETS_BUILTIN_MODEL", str(tmp_path / "absent.pt"))
    with pytest.raises(hub.ModelNotFoundError, match="built-in 'pets' model is missing"):
        hub.resolve_model("pets")


def test_shipped_builtin_location(monkeypatch):
    monkeypatch.delenv("SAM_PETS_BUILTIN_MODEL", raising=False)
    assert hub.builtin_path().parts[-3:] == ("sam_pets", "weights", "pets.pt")


def test_resolve_official_path_and_random(server, cache, tmp_path, test_ckpt_bytes, monkeypatch):
    with pytest.raises(hub.ModelNotFoundError, match="not downloaded yet"):
        hub.resolve_model("tiny")
    server.files[URL_PATH] = test_ckpt_bytes
    _set_hash(monkeypatch, NAME, hashlib.sha256(test_ckpt_bytes).hexdigest())
    run_job(hub.download("tiny"), show=False)
    assert hub.resolve_model("tiny").cfg.name == "test"  # the fixture's file, from the cache
    local = tmp_path / "mine.pt"
    local.write_bytes(test_ckpt_bytes)
    assert hub.resolve_model(str(local)).source == str(local)
    assert hub.resolve_model("random:test").cfg.name == "test"
    with pytest.raises(hub.ModelNotFoundError, match="not a model name"):
        hub.resolve_model(str(tmp_path / "missing.pt"))


def test_fp16_storage_halves_the_file_and_loads_back(tmp_path):
    from sam_pets.model import load_model

    model = build_model("cpu_small", seed=0)
    full = save_checkpoint(model, tmp_path / "fp32.pt")
    half = save_checkpoint(model, tmp_path / "fp16.pt", dtype=torch.float16)
    assert half.stat().st_size < 0.55 * full.stat().st_size
    back = load_model(half)
    for (k, a), b in zip(model.state_dict().items(), back.state_dict().values(), strict=True):
        assert b.dtype == a.dtype, k
        if a.is_floating_point():
            torch.testing.assert_close(b, a.half().float(), rtol=0, atol=0)
    with pytest.raises(ValueError, match="floating-point"):
        save_checkpoint(model, tmp_path / "int.pt", dtype=torch.int8)


def test_concurrent_download_of_the_same_file_is_refused(server, cache):
    fcntl = pytest.importorskip("fcntl")
    cache.mkdir(parents=True)
    with open(cache / f"{NAME}.pt.part", "ab") as other:
        fcntl.flock(other.fileno(), fcntl.LOCK_EX)
        with pytest.raises(hub.DownloadError, match="another sam-pets process"):
            _download()
    res, _ = _download()
    assert res.path.read_bytes() == PAYLOAD


def test_shipped_builtin_model(monkeypatch):
    """The real pets.pt (once it is in the package): small, fp16 storage, loads in fp32."""
    from sam_pets.model import read_checkpoint

    monkeypatch.delenv("SAM_PETS_BUILTIN_MODEL", raising=False)
    path = hub.builtin_path()
    if not path.is_file():
        pytest.skip(f"built-in weights not in this checkout: {path}")
    assert path.stat().st_size <= 25_000_000
    ckpt = read_checkpoint(path)
    assert ckpt.format == "sam-pets"
    assert {v.dtype for v in ckpt.image_state.values() if v.is_floating_point()} == {torch.float16}
    model = hub.resolve_model("pets")
    assert all(p.dtype == torch.float32 for p in model.parameters())


def test_a_folder_is_named_as_one(tmp_path):
    """A run folder once gave "no such checkpoint file"; it names the run's best.pt now."""
    run = tmp_path / "run"
    run.mkdir()
    with pytest.raises(hub.ModelNotFoundError, match="run is a folder, not a checkpoint file$"):
        hub.resolve_checkpoint(run)
    (run / "best.pt").write_bytes(b"")
    with pytest.raises(hub.ModelNotFoundError, match=r"training run\? give .*run/best.pt\)"):
        hub.resolve_checkpoint(run)
