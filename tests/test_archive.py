"""Run archives: export/import roundtrip, refusal of malicious zips, rename, delete, the HTML report.

One real run is trained once per module (10 steps of a tiny GPT); each test works on its own copy.
"""

from __future__ import annotations

import io
import json
import pickle
import shutil
import stat
import struct
import zipfile
from collections.abc import Callable
from pathlib import Path

import pytest
import torch
from conftest import tiny_config
from safetensors.torch import load_file

from genai_core.errors import CheckpointError, GenAIError
from genai_core.runs import archive, report
from genai_core.runs.folder import Run, list_runs
from genai_core.train.trainer import train


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory, tiny_txt: Path) -> Run:
    torch.set_num_threads(1)
    root = tmp_path_factory.mktemp("trained")
    result = train(tiny_config(tiny_txt, max_steps=10), root / "tiny")
    assert result.state == "completed"
    return result.run


@pytest.fixture
def run(trained: Run, tmp_path: Path) -> Run:
    """A private copy of the trained run, in its own runs folder."""
    dest = tmp_path / "src" / "tiny"
    shutil.copytree(trained.path, dest)
    return Run(dest)


@pytest.fixture(scope="module")
def exported(trained: Run) -> bytes:
    return archive.export_run(trained)


def _members(data: bytes) -> dict[str, tuple[zipfile.ZipInfo, bytes]]:
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        return {i.filename: (i, zf.read(i)) for i in zf.infolist()}


def _rezip(data: bytes, edit: Callable[[dict[str, bytes]], None]) -> bytes:
    """The archive `data` with its members (name -> bytes) changed by `edit`."""
    files = {name: blob for name, (_, blob) in _members(data).items()}
    edit(files)
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, blob in files.items():
            zf.writestr(name, blob)
    return buf.getvalue()


def _leftovers(root: Path) -> list[str]:
    return sorted(p.name for p in root.iterdir()) if root.exists() else []


# --------------------------------------------------------------------------- export / import
def test_export_holds_the_run_and_only_the_latest_checkpoint(trained: Run, exported: bytes) -> None:
    names = set(_members(exported))
    ckpt = trained.latest_checkpoint()
    assert ckpt is not None
    expected = {"config.json", "tokenizer.json", "metrics.jsonl", "samples.jsonl", "status.json", "manifest.json",
                "checkpoints/latest", f"checkpoints/{ckpt.name}/model.safetensors",
                f"checkpoints/{ckpt.name}/optimizer.safetensors", f"checkpoints/{ckpt.name}/state.json"}
    assert names == {f"tiny/{n}" for n in expected}


def test_roundtrip_gives_identical_metrics_weights_and_samples(trained: Run, exported: bytes, tmp_path: Path) -> None:
    root = tmp_path / "runs"
    imported = archive.import_run(exported, root)
    assert imported.path == root / "tiny"
    assert imported.metrics() == trained.metrics() and len(imported.metrics()) > 0
    assert imported.samples() == trained.samples() and len(imported.samples()) > 0
    a, b = trained.load_checkpoint(), imported.load_checkpoint()
    for mine, theirs in zip(a[:2], b[:2], strict=True):
        assert mine.keys() == theirs.keys()
        assert all(torch.equal(mine[k], theirs[k]) for k in mine)
    assert a[2] == b[2]
    assert imported.tokenizer_path.read_bytes() == trained.tokenizer_path.read_bytes()
    assert imported.config() == trained.config()
    assert imported.status()["state"] == "completed"
    assert not {"pid", "host"} & set(json.loads(_members(exported)["tiny/status.json"][1]))  # not exported
    assert [r.path for r in list_runs(root)] == [imported.path]
    assert _leftovers(root) == ["tiny"]  # no staging folder left


def test_import_of_a_taken_name_gets_a_fresh_one(exported: bytes, tmp_path: Path) -> None:
    root = tmp_path / "runs"
    first = archive.import_run(exported, root)
    second = archive.import_run(exported, root)
    named = archive.import_run(exported, root, name="baseline")
    assert (first.name, second.name, named.name) == ("tiny", "tiny-2", "baseline")
    assert second.config().name == "tiny-2"  # the display name follows the folder
    assert second.metrics() == first.metrics()
    with pytest.raises(GenAIError, match="invalid run name"):
        archive.import_run(exported, root, name="../escape")


def test_a_hostile_name_in_the_manifest_becomes_a_safe_folder_name(exported: bytes, tmp_path: Path) -> None:
    def rename(files: dict[str, bytes]) -> None:
        manifest = json.loads(files["tiny/manifest.json"])
        files["tiny/manifest.json"] = json.dumps({**manifest, "name": "../../etc/evil"}).encode()

    imported = archive.import_run(_rezip(exported, rename), tmp_path / "runs")
    assert imported.path.parent == tmp_path / "runs" and imported.name == "etc-evil"
    assert _leftovers(tmp_path) == ["runs"]


def test_import_from_a_path_and_a_file_object(run: Run, tmp_path: Path) -> None:
    zpath = tmp_path / "tiny.zip"
    archive.export_run(run, zpath)
    assert archive.import_run(zpath, tmp_path / "a").name == "tiny"
    with open(zpath, "rb") as fh:
        assert archive.import_run(fh, tmp_path / "b").name == "tiny"


def test_a_run_exported_while_running_does_not_look_alive(run: Run, tmp_path: Path) -> None:
    run.write_status("running", "training", step=5)  # this live process's pid: it reads as running
    assert archive.is_active(run)
    imported = archive.import_run(archive.export_run(run), tmp_path / "runs")
    st = imported.read_status_raw()
    assert st["state"] == "interrupted" and "pid" not in st and st["imported_from"] == "tiny"
    assert imported.status()["state"] == "interrupted" and not archive.is_active(imported)


def test_export_refuses_what_is_not_a_run(tmp_path: Path) -> None:
    with pytest.raises(CheckpointError, match="not a run folder"):
        archive.export_run(Run(tmp_path / "nothing"))


# --------------------------------------------------------------------------- malicious archives
def _with_extra(data: bytes, info: zipfile.ZipInfo, blob: bytes) -> bytes:
    buf = io.BytesIO(data)
    with zipfile.ZipFile(buf, "a") as zf:
        zf.writestr(info, blob)
    return buf.getvalue()


def _symlink_zip(data: bytes) -> bytes:
    info = zipfile.ZipInfo("tiny/checkpoints/link")
    info.external_attr = (stat.S_IFLNK | 0o777) << 16
    return _with_extra(data, info, b"/etc/passwd")


def _declares_huge(data: bytes) -> bytes:
    """Patch the central directory so metrics.jsonl claims ~4 GB uncompressed (a zip bomb's header)."""
    raw = bytearray(data)
    pos = 0
    while (pos := raw.find(b"PK\x01\x02", pos)) != -1:
        name_len = struct.unpack_from("<H", raw, pos + 28)[0]
        if raw[pos + 46: pos + 46 + name_len] == b"tiny/metrics.jsonl":
            struct.pack_into("<I", raw, pos + 24, 0xFFFF_FFF0)
            return bytes(raw)
        pos += 4
    raise AssertionError("member not found")


def _config_edit(**model: object) -> Callable[[dict[str, bytes]], None]:
    def edit(files: dict[str, bytes]) -> None:
        cfg = json.loads(files["tiny/config.json"])
        cfg["model"].update(model)
        files["tiny/config.json"] = json.dumps(cfg).encode()
    return edit


def _ckpt(files: dict[str, bytes], leaf: str) -> str:
    return next(n for n in files if n.startswith("tiny/checkpoints/step_") and n.endswith(leaf))


def _set(path: str, blob: bytes) -> Callable[[dict[str, bytes]], None]:
    return lambda files: files.__setitem__(path, blob)


def _replace_weights(blob: bytes) -> Callable[[dict[str, bytes]], None]:
    return lambda files: files.__setitem__(_ckpt(files, "model.safetensors"), blob)


def _pickle_bytes() -> bytes:
    buf = io.BytesIO()
    torch.save({"w": torch.zeros(2)}, buf)  # a real torch pickle: it must never be loaded
    return buf.getvalue()


BAD_ARCHIVES: dict[str, tuple[Callable[[bytes], bytes], str]] = {
    "traversal": (lambda d: _rezip(d, _set("tiny/../../evil.txt", b"x")), "path traversal"),
    "absolute": (lambda d: _with_extra(d, zipfile.ZipInfo("/tmp/genai-evil.txt"), b"x"), "absolute path"),
    "symlink": (_symlink_zip, "symbolic link"),
    "declared-huge": (_declares_huge, "would unpack to .* limit"),
    "pickle-model-pt": (lambda d: _rezip(d, _set("tiny/checkpoints/model.pt", _pickle_bytes())), "pickle"),
    "pickle-as-safetensors": (lambda d: _rezip(d, _replace_weights(_pickle_bytes())),
                              "model.safetensors is not a valid safetensors file"),
    "garbage-safetensors": (lambda d: _rezip(d, _replace_weights(b"\x08\x00\x00\x00\x00\x00\x00\x00{garbage")),
                            "model.safetensors is not a valid safetensors file"),
    "wrong-shapes": (lambda d: _rezip(d, _config_edit(d_model=64)), "does not match config.json"),
    "invalid-config": (lambda d: _rezip(d, _config_edit(n_heads=3)), "not a valid run config: model: d_model"),
    "vocab-mismatch": (lambda d: _rezip(d, _config_edit(vocab_size=999)), "tokenizer.json has .* tokens"),
    "no-config": (lambda d: _rezip(d, lambda f: f.pop("tiny/config.json")), "no config.json"),
    "no-tokenizer": (lambda d: _rezip(d, lambda f: f.pop("tiny/tokenizer.json")), "no tokenizer.json"),
    "bad-tokenizer": (lambda d: _rezip(d, _set("tiny/tokenizer.json", b"{not json")), "tokenizer.json"),
    "non-json-metrics": (lambda d: _rezip(d, _set("tiny/metrics.jsonl", b'{"step": 1}\nloss=3.2\n')),
                         "metrics.jsonl: line 2 is not valid JSON"),
    "unexpected-file": (lambda d: _rezip(d, _set("tiny/run.sh", b"rm -rf /")), "unexpected file 'run.sh'"),
    "dangling-latest": (lambda d: _rezip(d, _set("tiny/checkpoints/latest", b"step_00000099")),
                        "latest names 'step_00000099'"),
    "not-a-zip": (lambda d: b"PK but not really a zip", "not a zip archive"),
}


@pytest.mark.parametrize("case", list(BAD_ARCHIVES))
def test_malicious_or_broken_archives_are_refused_and_leave_nothing(case: str, exported: bytes,
                                                                    tmp_path: Path) -> None:
    make, message = BAD_ARCHIVES[case]
    root = tmp_path / "runs"
    with pytest.raises(GenAIError, match=message):
        archive.import_run(make(exported), root)
    assert _leftovers(root) == []
    assert not (tmp_path / "evil.txt").exists() and not Path("/tmp/genai-evil.txt").exists()


def test_inflating_past_the_limit_is_refused(exported: bytes, tmp_path: Path) -> None:
    zeros = _rezip(exported, _set("tiny/samples.jsonl", b" " * 3_000_000))  # compresses to a few KB
    assert len(zeros) < 400_000
    with pytest.raises(GenAIError, match="would unpack to"):
        archive.import_run(zeros, tmp_path / "runs", max_bytes=1_000_000)
    with pytest.raises(GenAIError, match="entries"):
        archive.import_run(exported, tmp_path / "runs", max_members=3)
    assert _leftovers(tmp_path / "runs") == []


def test_nothing_is_unpickled(exported: bytes, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def boom(*a: object, **k: object) -> None:
        raise AssertionError("unpickling was attempted")

    monkeypatch.setattr(pickle, "load", boom)
    monkeypatch.setattr(pickle, "loads", boom)
    monkeypatch.setattr(torch, "load", boom)
    assert archive.import_run(exported, tmp_path / "runs").name == "tiny"
    with pytest.raises(GenAIError):
        archive.import_run(_rezip(exported, _replace_weights(_pickle_bytes())), tmp_path / "runs")


# --------------------------------------------------------------------------- rename / delete
def test_rename_moves_the_folder_and_its_display_name(run: Run) -> None:
    metrics = run.metrics()
    renamed = archive.rename_run(run, "tiny-baseline")
    assert not run.path.exists() and renamed.path == run.path.parent / "tiny-baseline"
    assert renamed.config().name == "tiny-baseline" and renamed.metrics() == metrics
    assert load_file(str(renamed.latest_checkpoint() / "model.safetensors"))  # checkpoint still readable


def test_rename_refusals(run: Run) -> None:
    (run.path.parent / "taken").mkdir()
    with pytest.raises(GenAIError, match="invalid run name"):
        archive.rename_run(run, "a/b")
    with pytest.raises(GenAIError, match="already exists"):
        archive.rename_run(run, "taken")
    run.write_status("running", "training")
    with pytest.raises(GenAIError, match="while it is running; stop it first"):
        archive.rename_run(run, "other")
    assert run.exists() and not (run.path.parent / "other").exists()


def test_delete_removes_the_run_and_refuses_active_runs_and_other_folders(run: Run) -> None:
    root = run.path.parent
    run.write_status("queued", "waiting for cpu")
    with pytest.raises(GenAIError, match="while it is queued"):
        archive.delete_run(run)
    assert run.exists()
    run.write_status("stopped", "stopped by request")
    archive.delete_run(run)
    assert _leftovers(root) == []
    (root / "notes").mkdir()
    with pytest.raises(CheckpointError, match="not a run folder"):
        archive.delete_run(Run(root / "notes"))
    assert (root / "notes").is_dir()


def test_a_dead_process_run_can_be_deleted(run: Run) -> None:
    run.write_status("running", "training")
    raw = run.read_status_raw()
    raw["pid"] = 2**22 + 17  # no such process: the run reads `interrupted`
    (run.path / "status.json").write_text(json.dumps(raw))
    assert run.status()["state"] == "interrupted"
    archive.delete_run(run)
    assert not run.path.exists()


# --------------------------------------------------------------------------- report
def test_html_report_is_one_offline_file(run: Run) -> None:
    (run.path / "samples.jsonl").open("a").write(json.dumps({"step": 11, "text": "<b>Bold</b> & more"}) + "\n")
    page = report.html_report(run)
    assert "<title>Run report: tiny</title>" in page
    assert "Plotly.newPlot" in page and len(page) > 1_000_000  # the figure, with plotly.js inlined
    assert "<script src=" not in page  # nothing to fetch: it works offline
    assert "&lt;b&gt;Bold&lt;/b&gt; &amp; more" in page  # samples are escaped
    assert run.samples()[0]["text"][:10] in page.replace("&#x27;", "'").replace("&quot;", '"')
    assert "best validation loss" in page and "d_model" in page
    # The corpus by its name only: a shared report does not show where the server keeps its files.
    corpus = Path(run.config().data.corpus)
    assert str(corpus.parent) not in page and json.dumps(corpus.name) in page.replace("&quot;", '"')


def test_saved_evaluations_travel_with_the_run(run: Run, tmp_path: Path) -> None:
    from genai_core.evaluate.perplexity import evaluate_run

    evaluate_run(run)  # writes eval/perplexity-val.json
    (run.eval_path / "notes.txt").write_text("not an evaluation")  # only .json/.csv results are exported
    data = archive.export_run(run)
    names = {n.split("/", 1)[1] for n in _members(data)}
    assert "eval/perplexity-val.json" in names and "eval/notes.txt" not in names
    imported = archive.import_run(data, tmp_path / "other")
    saved = "perplexity-val.json"
    assert (imported.eval_path / saved).read_bytes() == (run.eval_path / saved).read_bytes()
