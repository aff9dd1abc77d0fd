"""Checkpoint folders: `model.safetensors` + `config.json` + `metadata.json`, written atomically.

Tensors go through safetensors and everything else through JSON, so loading a checkpoint never
unpickles anything. The folder is an `ENCODER_OUTPUT`: saving over a folder that is not one is
refused, and the user's own files in an old checkpoint folder move into the new one.
"""

from __future__ import annotations

import json
import platform
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from gexcore.atomic import OutputKind, atomic_write_dir
from gexcore.errors import CheckpointError
from gexcore.train.state import FORMAT, STATE_JSON, TRAIN_STATE_ENTRIES

__all__ = ["CHECKPOINT_KIND", "ENCODER_OUTPUT", "Checkpoint", "load_checkpoint",
           "save_checkpoint", "versions"]

CHECKPOINT_KIND = "gexscope-encoder"
FORMAT_VERSION = 1
_FILES = ("model.safetensors", "config.json", "metadata.json")


def _is_checkpoint_folder(folder: Path) -> bool:
    """An unmarked folder an older GexScope wrote: a checkpoint, or a train state alone."""
    return (_read_json(folder / "config.json").get("kind") == CHECKPOINT_KIND or
            any(_read_json(folder / name / STATE_JSON).get("format") == FORMAT
                for name in TRAIN_STATE_ENTRIES))


def _read_json(path: Path) -> dict:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


ENCODER_OUTPUT = OutputKind("encoder", "an encoder checkpoint",
                            files=(*_FILES, *TRAIN_STATE_ENTRIES),
                            recognise=_is_checkpoint_folder, keep=TRAIN_STATE_ENTRIES)


@dataclass
class Checkpoint:
    """The three parts of a checkpoint folder, as loaded."""

    tensors: dict[str, torch.Tensor]
    config: dict
    metadata: dict


def versions() -> dict[str, str]:
    """Library versions recorded with every checkpoint."""
    from importlib.metadata import version

    import gexcore

    return {"gexscope": gexcore.__version__, "torch": torch.__version__,
            "numpy": version("numpy"), "anndata": version("anndata"),
            "python": platform.python_version()}


def save_checkpoint(path: str | Path, tensors: dict[str, torch.Tensor], config: dict,
                    metadata: dict) -> Path:
    """Write the folder atomically; `config` gets the kind and format version stamped in.

    InputError if `path` is a non-empty folder that is not a checkpoint; nothing is changed.
    """
    config = {"kind": CHECKPOINT_KIND, "format_version": FORMAT_VERSION, **config}
    metadata = {"created": datetime.now(UTC).isoformat(timespec="seconds"),
                "versions": versions(), **metadata}
    # safetensors refuses shared or non-contiguous storage; give it plain copies.
    plain = {k: v.detach().to("cpu").contiguous().clone() for k, v in tensors.items()}

    def write(tmp: Path) -> None:
        save_file(plain, str(tmp / "model.safetensors"))
        (tmp / "config.json").write_text(json.dumps(config, indent=1), encoding="utf-8")
        (tmp / "metadata.json").write_text(json.dumps(metadata, indent=1, default=str),
                                           encoding="utf-8")

    # train_state/ (what `--resume` reads) and the user's own files move into the new folder.
    return atomic_write_dir(path, write, kind=ENCODER_OUTPUT)


def load_checkpoint(path: str | Path) -> Checkpoint:
    """Read a checkpoint folder, with a clear `CheckpointError` for anything missing or foreign."""
    path = Path(path)
    if not path.is_dir():
        raise CheckpointError(f"{path}: not a checkpoint folder (expected a folder holding "
                              f"{', '.join(_FILES)}).")
    missing = [f for f in _FILES if not (path / f).exists()]
    if missing:
        raise CheckpointError(f"{path}: incomplete checkpoint, missing {', '.join(missing)}.")
    try:
        config = json.loads((path / "config.json").read_text(encoding="utf-8"))
        metadata = json.loads((path / "metadata.json").read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise CheckpointError(f"{path}: config.json or metadata.json is not valid JSON ({err}).") from err
    if config.get("kind") != CHECKPOINT_KIND:
        raise CheckpointError(f"{path}: config.json kind is {config.get('kind')!r}, "
                              f"not {CHECKPOINT_KIND!r}; this is not a GexScope encoder.")
    if config.get("format_version", 0) > FORMAT_VERSION:
        raise CheckpointError(f"{path}: written by a newer GexScope (format "
                              f"{config['format_version']}); upgrade to load it.")
    try:
        tensors = load_file(str(path / "model.safetensors"))
    except (SafetensorError, OSError) as err:
        raise CheckpointError(f"{path}: model.safetensors is unreadable ({err}).") from err
    return Checkpoint(tensors=tensors, config=config, metadata=metadata)
