"""Moving runs around: export a run as one zip, import such a zip back, rename, delete. (The one-file HTML
report that shows a run to someone who has no playground is `report.py`.)

    data = export_run(Run("runs/tiny"))                  # config, tokenizer, logs, status, latest checkpoint
    run = import_run(data, "runs")                       # validated; a fresh name if "tiny" is taken
    run = rename_run(run, "tiny-baseline")               # refused while the run is queued or running
    delete_run(run)                                      # refused while the run is queued or running

An archive to import is untrusted input (anyone can mail one around), so `import_run` checks every
member before a byte is written: no absolute or `..` paths, no symlinks, no encrypted members, only
the files a run folder holds (a pickled `model.pt` is refused by name; nothing is ever unpickled),
a member-count and an uncompressed-size limit that is also enforced while extracting (declared sizes
can lie). It unpacks into a staging folder under `<runs>/.imports/`, which `list_runs` never sees,
validates the run there (config, tokenizer, logs, every checkpoint against a model built from the
config) and only then renames it into place, so a refused archive leaves nothing behind.
"""

from __future__ import annotations

import io
import json
import os
import re
import shutil
import stat
import time
import uuid
import warnings
import zipfile
import zlib
from collections.abc import Iterable
from contextlib import ExitStack
from pathlib import Path
from typing import IO, Any

import torch
from pydantic import ValidationError
from safetensors import SafetensorError, safe_open
from safetensors.torch import load_file

from genai_core.config import RunConfig
from genai_core.errors import CheckpointError, GenAIError, describe_validation_error
from genai_core.files import (
    atomic_write_bytes,
    atomic_write_json,
    atomic_write_text,
    check_runs_cap,
    jsonl_record,
    read_json,
)
from genai_core.runs.folder import Run, free_run_name, validate_run_name
from genai_core.runs.status import ACTIVE_STATES
from genai_core.units import format_bytes

FORMAT = "genai-playground-run"
FORMAT_VERSION = 1
MAX_IMPORT_BYTES = 2 * 1024**3
"""Largest total uncompressed size an imported archive may unpack to (a 2 GiB run is ~150M parameters
with optimizer state; anything bigger is better copied as a folder)."""
MAX_TEXT_MEMBER_BYTES = 64 * 1024**2
"""Largest JSON, JSON-lines or CSV member: a 100,000-step run logs about 20 MB of metrics."""
MAX_TEXT_BYTES = 128 * 1024**2
"""Largest total of the text members (the tensors are bounded by MAX_IMPORT_BYTES)."""
MAX_RATIO = 100
"""Largest compression ratio of a member over 1 MB: real logs deflate ~10:1, weights ~1.1:1; more is a bomb."""
MAX_MEMBERS = 64
"""A run archive holds about ten files; thousands of entries can only be an attack or a mistake."""

_ALLOWED = re.compile(
    r"(?:manifest\.json|config\.json|tokenizer\.json|metrics\.jsonl|samples\.jsonl|status\.json"
    r"|checkpoints/latest|checkpoints/step_\d{8}/(?:model\.safetensors|optimizer\.safetensors|state\.json)"
    r"|eval/[A-Za-z0-9_-][A-Za-z0-9_.-]*\.(?:json|csv))"
)
_ALLOWED_HINT = ("config.json, tokenizer.json, metrics.jsonl, samples.jsonl, status.json, manifest.json, "
                 "eval/*.json and *.csv (saved evaluations) and "
                 "checkpoints/latest + checkpoints/step_NNNNNNNN/{model,optimizer}.safetensors, state.json")
_PICKLE_SUFFIXES = (".pt", ".pth", ".pkl", ".pickle", ".ckpt", ".bin", ".joblib", ".npy", ".npz")
_CHUNK = 1 << 20
_LIVE_STATUS_KEYS = ("pid", "host", "started")


def is_active(run: Run) -> bool:
    """Queued or running (a dead process's `running` already reads `interrupted` in `Run.status`)."""
    return run.status().get("state") in ACTIVE_STATES


def _refuse_if_active(run: Run, action: str) -> None:
    st = run.status()
    if st.get("state") in ACTIVE_STATES:
        raise GenAIError(f"cannot {action} run {run.name!r} while it is {st['state']}; stop it first")


# --------------------------------------------------------------------------- export
def export_run(run: Run, dest: Path | str | IO[bytes] | None = None, *, include_optimizer: bool = True) -> bytes:
    """Zip of the run: config, tokenizer, metrics, samples, status and the latest checkpoint only.

    Members sit under a folder named after the run (unzipping gives a run folder). The optimizer
    state is included by default so that the imported run can be resumed exactly. Returns the zip's
    bytes, and also writes them to the path or binary file `dest` when given.
    A running run can be exported: its logs are re-serialised (a torn last line is dropped) and its
    checkpoint read in one go, retrying if training pruned it meanwhile.
    """
    if not run.exists():
        raise CheckpointError(f"{run.path} is not a run folder (no config.json)")
    if not run.tokenizer_path.is_file():
        raise GenAIError(f"run {run.name!r} has no tokenizer yet (it has not started training): nothing to export")
    files: dict[str, bytes] = {
        "config.json": run.config_path.read_bytes(),
        "tokenizer.json": run.tokenizer_path.read_bytes(),
        "metrics.jsonl": _jsonl_bytes(run.metrics()),
        "samples.jsonl": _jsonl_bytes(run.samples()),
    }
    # The exporting machine's pid and host name mean nothing elsewhere (and are nobody else's business).
    status = {k: v for k, v in run.read_status_raw().items() if k not in _LIVE_STATUS_KEYS}
    if status:
        files["status.json"] = json.dumps(status, indent=2).encode("utf-8")
    if run.eval_path.is_dir():  # saved evaluations travel with the run (the Runs page shows them)
        for f in sorted(run.eval_path.iterdir()):
            if f.is_file() and not f.is_symlink() and _ALLOWED.fullmatch(f"eval/{f.name}"):
                files[f"eval/{f.name}"] = f.read_bytes()
    ckpt_name = None
    for _attempt in range(3):  # training may prune the checkpoint between reading `latest` and its files
        ckpt = run.latest_checkpoint()
        if ckpt is None:
            break
        wanted = ["model.safetensors", "state.json"]
        if include_optimizer and (ckpt / "optimizer.safetensors").is_file():
            wanted.append("optimizer.safetensors")
        try:
            blobs = {f"checkpoints/{ckpt.name}/{f}": (ckpt / f).read_bytes() for f in wanted}
        except FileNotFoundError:
            continue
        files.update(blobs)
        files["checkpoints/latest"] = ckpt.name.encode("utf-8")
        ckpt_name = ckpt.name
        break
    manifest = {"format": FORMAT, "version": FORMAT_VERSION, "name": run.name, "exported_at": time.time(),
                "checkpoint": ckpt_name}
    files["manifest.json"] = json.dumps(manifest, indent=2).encode("utf-8")

    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for rel, data in files.items():
            info = zipfile.ZipInfo(f"{run.name}/{rel}", date_time=time.localtime()[:6])
            info.external_attr = (stat.S_IFREG | 0o644) << 16
            # Tensors barely compress; deflating them would only cost time.
            info.compress_type = zipfile.ZIP_STORED if rel.endswith(".safetensors") else zipfile.ZIP_DEFLATED
            zf.writestr(info, data)
    data = buf.getvalue()
    if isinstance(dest, (str, Path)):
        atomic_write_bytes(Path(dest), data)
    elif dest is not None:
        dest.write(data)
    return data


def _jsonl_bytes(rows: Iterable[dict[str, Any]]) -> bytes:
    return "".join(json.dumps(r) + "\n" for r in rows).encode("utf-8")


# --------------------------------------------------------------------------- import
def import_run(source: bytes | Path | str | IO[bytes], runs_root: Path | str, name: str | None = None, *,
               max_bytes: int = MAX_IMPORT_BYTES, max_members: int = MAX_MEMBERS) -> Run:
    """Validate a run archive and add it under `runs_root`; returns the new run.

    `source` is the zip's bytes, a path, or a binary file (e.g. a Streamlit upload). `name`
    (validated) defaults to the exported run's name; if that name is taken the run gets the first
    free `<name>-2`, `<name>-3`, ... A run exported while queued or running is imported as
    `interrupted` (no process here trains it; it can be resumed from its checkpoint).
    Raises GenAIError / CheckpointError naming the offending member; nothing is left behind then.
    """
    if name is not None:
        validate_run_name(name)
    root = Path(runs_root)
    with ExitStack() as stack:
        if isinstance(source, (bytes, bytearray)):
            fh: IO[bytes] = io.BytesIO(source)
        elif isinstance(source, (str, Path)):
            fh = stack.enter_context(open(source, "rb"))
        else:
            fh = source
        try:
            zf = stack.enter_context(zipfile.ZipFile(fh))
        except (zipfile.BadZipFile, zipfile.LargeZipFile, OSError, ValueError) as e:
            raise GenAIError(f"the file is not a zip archive of a run: {e}") from None
        members, source_name = _plan(zf, max_bytes=max_bytes, max_members=max_members)
        check_runs_cap(root, sum(m.file_size for m in members.values()))  # what unpacking will write
        staging_parent = root / ".imports"  # one level down: list_runs never shows a half-imported run
        staging_parent.mkdir(parents=True, exist_ok=True)
        tmp = staging_parent / f"import-{uuid.uuid4().hex}"  # mkdir, not mkdtemp: keep the usual permissions
        tmp.mkdir()
        try:
            _extract(zf, members, tmp, max_bytes)
            config, manifest = _validate_folder(tmp)
            source_name = str(manifest.get("name") or source_name or config.name or "imported-run")
            final = _install(tmp, root, name or _as_run_name(source_name), config, source_name)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
            _rmdir_if_empty(staging_parent)
    return Run(final)


def _plan(zf: zipfile.ZipFile, *, max_bytes: int, max_members: int) -> tuple[dict[str, zipfile.ZipInfo], str | None]:
    """Check every member's name, kind and size; map run-relative paths to members.

    Security checks come first for every member, so a traversal attempt is reported as such and not
    as an "unexpected file".
    """
    infos = zf.infolist()
    if len(infos) > max_members:
        raise GenAIError(f"the archive has {len(infos)} entries; a run archive has at most {max_members}")
    files: list[zipfile.ZipInfo] = []
    for info in infos:
        n = info.filename
        if n.startswith(("/", "\\")) or re.match(r"^[A-Za-z]:", n):
            raise GenAIError(f"refusing archive: member {n!r} has an absolute path")
        if "\\" in n:
            raise GenAIError(f"refusing archive: member {n!r} has a backslash in its path")
        parts = n.rstrip("/").split("/")
        if any(p == ".." for p in parts):
            raise GenAIError(f"refusing archive: member {n!r} points outside the run folder (path traversal)")
        if any(p in ("", ".") for p in parts) or "\x00" in n:
            raise GenAIError(f"refusing archive: member {n!r} has a malformed path")
        mode = info.external_attr >> 16
        if stat.S_ISLNK(mode):
            raise GenAIError(f"refusing archive: member {n!r} is a symbolic link")
        if info.flag_bits & 0x1:
            raise GenAIError(f"refusing archive: member {n!r} is encrypted")
        if info.is_dir():
            continue
        # No file-type bits at all is common (Windows tools; Python's writestr sets permissions only).
        if stat.S_IFMT(mode) not in (0, stat.S_IFREG):
            raise GenAIError(f"refusing archive: member {n!r} is not a regular file")
        files.append(info)

    text = [i for i in files if not i.filename.endswith(".safetensors")]
    for i in files:
        if i.file_size > 2**20 and i.file_size > MAX_RATIO * max(i.compress_size, 1):
            raise GenAIError(f"refusing archive: {i.filename!r} would unpack to {format_bytes(i.file_size)} from "
                             f"{format_bytes(i.compress_size)} ({i.file_size // max(i.compress_size, 1):,}:1, past the "
                             f"{MAX_RATIO}:1 limit): a zip bomb?")
        if i in text and i.file_size > MAX_TEXT_MEMBER_BYTES:
            raise GenAIError(f"refusing archive: {i.filename!r} would unpack to {format_bytes(i.file_size)}, more than "
                             f"the {format_bytes(MAX_TEXT_MEMBER_BYTES)} a run's text file may hold")
    if sum(i.file_size for i in text) > MAX_TEXT_BYTES:
        raise GenAIError(f"refusing archive: its text files would unpack to more than {format_bytes(MAX_TEXT_BYTES)}")
    total = sum(i.file_size for i in files)
    if total > max_bytes:
        raise GenAIError(f"refusing archive: it would unpack to {format_bytes(total)}, more than the "
                         f"{format_bytes(max_bytes)} limit (a zip bomb, or a run too large to import through the "
                         "browser)")

    # Our own exports put everything under one folder named after the run; accept a flat zip too.
    tops = {i.filename.split("/", 1)[0] for i in files}
    prefix = None
    if len(tops) == 1 and all("/" in i.filename for i in files):
        prefix = tops.pop()
    members: dict[str, zipfile.ZipInfo] = {}
    for info in files:
        rel = info.filename[len(prefix) + 1:] if prefix else info.filename
        if not _ALLOWED.fullmatch(rel):
            if rel.lower().endswith(_PICKLE_SUFFIXES):
                raise GenAIError(f"refusing archive: {rel!r} is a pickle-style file; runs store tensors as "
                                 "safetensors only and pickles are never loaded (they can run code)")
            raise GenAIError(f"refusing archive: unexpected file {rel!r}; a run archive holds only {_ALLOWED_HINT}")
        if rel in members:
            raise GenAIError(f"refusing archive: {rel!r} appears twice")
        members[rel] = info
    for required in ("config.json", "tokenizer.json"):
        if required not in members:
            raise GenAIError(f"not a run archive: it has no {required}")
    return members, prefix


def _extract(zf: zipfile.ZipFile, members: dict[str, zipfile.ZipInfo], dest: Path, max_bytes: int) -> None:
    """Stream members to `dest`, counting real bytes: a member that inflates past its declared size
    (or the whole past `max_bytes`) stops the import before it fills the disk."""
    total = 0
    for rel, info in members.items():
        target = dest / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        written = 0
        try:
            with zf.open(info) as src, open(target, "wb") as out:
                while chunk := src.read(_CHUNK):
                    written += len(chunk)
                    total += len(chunk)
                    if written > info.file_size or total > max_bytes:
                        raise GenAIError(f"refusing archive: {rel!r} unpacks to more than it declares "
                                         f"(limit {format_bytes(max_bytes)}): a zip bomb?")
                    out.write(chunk)
        except (zipfile.BadZipFile, zlib.error, EOFError, NotImplementedError, RuntimeError) as e:
            raise GenAIError(f"the archive is damaged: {rel!r} cannot be unpacked ({e})") from None


def _validate_folder(folder: Path) -> tuple[RunConfig, dict[str, Any]]:
    """Everything a run folder must satisfy before it may appear among the runs."""
    manifest: dict[str, Any] = {}
    if (folder / "manifest.json").is_file():
        manifest = _json_object(folder, "manifest.json")
        if manifest.get("format") != FORMAT:
            raise GenAIError(f"manifest.json says format {manifest.get('format')!r}, expected {FORMAT!r}")
        version = manifest.get("version")
        if not isinstance(version, int) or version > FORMAT_VERSION:
            raise GenAIError(f"the archive has format version {version!r}; this playground reads up to "
                             f"{FORMAT_VERSION} (update the playground)")
    try:
        config = RunConfig.from_saved((folder / "config.json").read_text(encoding="utf-8"))
    except ValidationError as e:
        raise GenAIError(f"config.json is not a valid run config: {describe_validation_error(e)}") from None
    except UnicodeDecodeError:
        raise GenAIError("config.json is not UTF-8 text") from None

    from genai_core.data.tokenization import load_tokenizer

    try:
        tok = load_tokenizer(folder / "tokenizer.json")
    except CheckpointError as e:
        raise CheckpointError(_relative(str(e), folder)) from None
    if tok.vocab_size != config.model.vocab_size:
        raise CheckpointError(f"tokenizer.json has {tok.vocab_size} tokens but config.json says "
                              f"model.vocab_size = {config.model.vocab_size}")
    for log in ("metrics.jsonl", "samples.jsonl"):
        _check_jsonl(folder, log)
    if (folder / "status.json").is_file():
        _json_object(folder, "status.json")
    _validate_checkpoints(folder, config)
    return config, manifest


def _check_jsonl(folder: Path, rel: str) -> None:
    path = folder / rel
    if not path.is_file():
        return
    try:
        with open(path, encoding="utf-8") as f:  # line by line: a big log is never held whole in memory
            for i, line in enumerate(f, 1):
                _check_jsonl_line(rel, i, line)
    except UnicodeDecodeError:
        raise GenAIError(f"{rel} is not UTF-8 text") from None


def _check_jsonl_line(rel: str, i: int, line: str) -> None:
    row = jsonl_record(line, rel, i)
    if row is not None:
        step = row.get("step")
        if step is not None and (not isinstance(step, int) or isinstance(step, bool)):
            raise GenAIError(f"{rel} line {i}: step must be an integer, got {step!r}")


def _json_object(folder: Path, rel: str) -> dict[str, Any]:
    try:
        data = read_json(folder / rel)
    except CheckpointError:
        raise GenAIError(f"{rel} is not valid JSON") from None
    if not isinstance(data, dict):
        raise GenAIError(f"{rel} is not a JSON object")
    return data


def _validate_checkpoints(folder: Path, config: RunConfig) -> None:
    """`latest` must name a complete checkpoint, and every checkpoint's weights must fit the config.

    The model is built on the meta device: it has every name and shape but no storage, so a config
    claiming a huge model cannot exhaust memory before the tensors are compared with it.
    """
    ckpts = folder / "checkpoints"
    if not ckpts.is_dir():
        return
    steps = sorted(p for p in ckpts.iterdir() if p.is_dir())
    pointer = ckpts / "latest"
    if not pointer.is_file():
        if steps:
            raise CheckpointError("checkpoints/latest is missing: the archive does not say which checkpoint is current")
        return
    latest = pointer.read_text(encoding="utf-8", errors="replace").strip()
    if latest not in {p.name for p in steps}:
        raise CheckpointError(f"checkpoints/latest names {latest!r}, which is not in the archive")

    from genai_core.model import load_state
    from genai_core.models import build_model

    with torch.device("meta"):
        model = build_model(config.model)
    for ckpt in steps:
        rel = f"checkpoints/{ckpt.name}"
        for required in ("model.safetensors", "state.json"):
            if not (ckpt / required).is_file():
                raise CheckpointError(f"{rel} is incomplete: it has no {required}")
        state = _json_object(ckpt, "state.json")
        if not isinstance(state.get("step"), int):
            raise CheckpointError(f"{rel}/state.json has no integer step")
        try:
            weights = load_file(str(ckpt / "model.safetensors"))
        except (SafetensorError, OSError, ValueError) as e:
            raise CheckpointError(f"{rel}/model.safetensors is not a valid safetensors file: {e}") from None
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # "copying into a meta parameter is a no-op": intended
                load_state(model, weights)
        except CheckpointError as e:
            raise CheckpointError(f"{rel}/model.safetensors does not match config.json: {e}") from None
        del weights
        opt = ckpt / "optimizer.safetensors"
        if opt.is_file():
            try:  # the header is enough: resume checks each tensor's shape against the parameters
                with safe_open(str(opt), framework="pt") as f:
                    list(f.keys())
            except (SafetensorError, OSError, ValueError) as e:
                raise CheckpointError(f"{rel}/optimizer.safetensors is not a valid safetensors file: {e}") from None


def _install(tmp: Path, root: Path, wanted: str, config: RunConfig, source_name: str) -> Path:
    """Fix name and status in the staged folder, then rename it to a free name under `root`."""
    status = read_json(tmp / "status.json") if (tmp / "status.json").is_file() else {}
    state = status.get("state")
    for k in _LIVE_STATUS_KEYS:  # the exporting process's pid means nothing here
        status.pop(k, None)
    if state in ACTIVE_STATES:
        status.update(state="interrupted",
                      message=f"imported while it was {state} elsewhere; resume it to continue from its checkpoint")
    elif state is None:
        status.update(state="stopped", message="imported (the archive had no status)")
    status.update(imported_from=source_name, imported_at=time.time(), updated_at=time.time())
    atomic_write_json(tmp / "status.json", status)

    # A display name of its own survives the import; one that was just the folder name follows it.
    follow = config.name in ("", source_name)
    for _attempt in range(20):  # another tab may take the same name between the check and the rename
        final = root / free_run_name(root, wanted)
        if follow:
            config = config.model_copy(update={"name": final.name})
        # Rewritten on every import: a fresh mtime lists the new run first.
        atomic_write_text(tmp / "config.json", config.model_dump_json(indent=2))
        try:
            os.rename(tmp, final)
        except OSError:
            continue
        return final
    raise GenAIError(f"could not find a free name for {wanted!r} in {root}")


def _as_run_name(text: str) -> str:
    from genai_core.runs.folder import slugify

    try:
        return validate_run_name(text)
    except GenAIError:
        return validate_run_name(slugify(text))


# --------------------------------------------------------------------------- rename / delete
def rename_run(run: Run, new_name: str) -> Run:
    """Rename the run folder (and the config's display name when it was the folder name)."""
    validate_run_name(new_name)
    if not run.exists():
        raise CheckpointError(f"{run.path} is not a run folder (no config.json)")
    if new_name == run.name:
        return run
    _refuse_if_active(run, "rename")
    target = run.path.parent / new_name
    if target.exists():
        raise GenAIError(f"a run named {new_name!r} already exists; choose another name")
    old = run.name
    os.rename(run.path, target)
    renamed = Run(target)
    try:
        config = renamed.config()
    except CheckpointError:
        return renamed  # a damaged config keeps its name; the folder is what matters
    if config.name in ("", old):
        # The runs list is ordered by config.json's mtime: a rename must not move the run to the top.
        before = renamed.config_path.stat()
        renamed.save_config(config.model_copy(update={"name": new_name}))
        os.utime(renamed.config_path, ns=(before.st_atime_ns, before.st_mtime_ns))
    return renamed


def delete_run(run: Run) -> None:
    """Delete a run folder (refusing folders that are not runs, and active runs).

    The folder is first renamed into `<runs>/.trash/`, which is atomic, so another tab never lists a
    half-deleted run; the copy in the trash is then removed.
    """
    if not run.exists():
        raise CheckpointError(f"{run.path} is not a run folder (no config.json); refusing to delete it")
    _refuse_if_active(run, "delete")
    trash = run.path.parent / ".trash"
    trash.mkdir(exist_ok=True)
    dest = trash / f"{run.name}-{uuid.uuid4().hex[:8]}"
    os.rename(run.path, dest)
    shutil.rmtree(dest, ignore_errors=True)
    _rmdir_if_empty(trash)


def _rmdir_if_empty(path: Path) -> None:
    try:
        path.rmdir()
    except OSError:
        pass


def _relative(message: str, folder: Path) -> str:
    """Engine messages name files by path; the staging folder means nothing to the person importing."""
    return message.replace(str(folder) + os.sep, "").replace(str(folder), "the archive")


__all__ = ["FORMAT", "MAX_IMPORT_BYTES", "MAX_MEMBERS", "delete_run", "export_run",
           "import_run", "is_active", "rename_run"]

