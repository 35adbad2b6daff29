"""``syn2seq download NAME``: fetch published weights through huggingface-hub and convert them.

Explicit only: nothing else in syn2seq downloads. Inside a ComfyUI install (the current folder or the
folder this package lives in has a parent holding both ``custom_nodes/`` and ``models/``) the result goes
to ``ComfyUI/models/syn2seq/``; elsewhere to a per-user folder (``$XDG_DATA_HOME/syn2seq/models``,
``%LOCALAPPDATA%\\syn2seq\\models`` on Windows); ``--dest`` overrides both. Offline
(``HF_HUB_OFFLINE=1``) or without a connection it stops after a short timeout and says which file to
fetch by hand and where to put it.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from pathlib import Path

HF_URL = "https://huggingface.co"


@dataclass(frozen=True)
class Downloadable:
    repo_id: str
    filename: str
    output: str
    description: str
    size: int = 256
    max_frames: int = 8

    @property
    def url(self) -> str:
        return f"{HF_URL}/{self.repo_id}/resolve/main/{self.filename}"

    @property
    def local_name(self) -> str:
        return Path(self.filename).name


DOWNLOADS = {
    "dfot-re10k": Downloadable(
        repo_id="kiwhansong/DFoT", filename="pretrained_models/DFoT_RE10K.ckpt", output="dfot_re10k.safetensors",
        description="DFoT U-ViT3D-Pose trained on RealEstate10K (256x256, 8-frame window, 458M parameters)"),
}


def comfyui_root(start: Path) -> Path | None:
    """The nearest folder at or above ``start`` holding both ``custom_nodes/`` and ``models/``."""
    start = start.resolve()
    for folder in (start, *start.parents):
        if (folder / "custom_nodes").is_dir() and (folder / "models").is_dir():
            return folder
    return None


def user_models_dir() -> Path:
    if sys.platform == "win32":
        base = Path(os.environ.get("LOCALAPPDATA", Path.home() / "AppData" / "Local"))
    else:
        base = Path(os.environ.get("XDG_DATA_HOME", Path.home() / ".local" / "share"))
    return base / "syn2seq" / "models"


def default_destination() -> Path:
    """``ComfyUI/models/syn2seq`` when run inside a ComfyUI install, else :func:`user_models_dir`."""
    for start in (Path.cwd(), Path(__file__).parent):
        root = comfyui_root(start)
        if root is not None:
            return root / "models" / "syn2seq"
    return user_models_dir()


def add_arguments(parser) -> None:
    parser.add_argument("name", choices=sorted(DOWNLOADS), help="what to download")
    parser.add_argument("--dest", type=Path, default=None,
                        help="folder for the converted model (default: ComfyUI/models/syn2seq inside a ComfyUI "
                             "install, else a per-user folder)")
    from ..base import limits

    parser.add_argument("--timeout", **limits.option("timeout", "seconds to wait for the server to answer", 10.0))
    parser.add_argument("--force", action="store_true", help="download and convert again even if the output exists")


def _manual_instructions(item: Downloadable, dest: Path) -> str:
    return (f"Fetch it by hand on a machine with internet:\n"
            f"    {item.url}\n"
            f"then either put it at\n"
            f"    {dest / item.local_name}\n"
            f"and run this command again, or convert it yourself:\n"
            f"    syn2seq convert-dfot {item.local_name} {dest / item.output}")


def fetch(item: Downloadable, timeout: float) -> Path:
    """The checkpoint from the Hugging Face cache, else downloaded into it.

    huggingface-hub retries a failing metadata request for up to a minute; one short request first
    (``get_hf_file_metadata``, no retries) makes an offline machine fail within ``timeout`` seconds.
    """
    from huggingface_hub import get_hf_file_metadata, hf_hub_download, hf_hub_url

    try:
        return Path(hf_hub_download(item.repo_id, item.filename, local_files_only=True))
    except Exception:
        pass  # not cached yet
    get_hf_file_metadata(hf_hub_url(item.repo_id, item.filename), timeout=timeout)
    return Path(hf_hub_download(item.repo_id, item.filename, etag_timeout=timeout))


def run(args) -> int:
    item = DOWNLOADS[args.name]
    dest = (args.dest or default_destination()).expanduser()
    out = dest / item.output
    if out.exists() and not args.force:
        print(f"{out} already exists (use --force to fetch and convert again)")
        return 0
    manual = dest / item.local_name
    if manual.is_file():
        ckpt_path = manual
        print(f"using {manual}")
    else:
        print(f"downloading {item.filename} from {item.repo_id} ({item.description}) ...", flush=True)
        try:
            ckpt_path = fetch(item, args.timeout)
        except Exception as e:  # offline, no route, DNS, HTTP error, ...
            reason = f"{type(e).__name__}: {str(e).strip().splitlines()[0] if str(e).strip() else ''}"
            offline = os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in ("1", "true", "yes", "on")
            print(f"syn2seq download: could not get {item.filename} from {item.repo_id}"
                  f"{' (HF_HUB_OFFLINE is set)' if offline else ''}.\n  {reason}\n" + _manual_instructions(item, dest),
                  file=sys.stderr)
            return 1
    from ..dfot.convert import convert_dfot_checkpoint

    dest.mkdir(parents=True, exist_ok=True)
    summary = convert_dfot_checkpoint(ckpt_path, out, height=item.size, width=item.size, max_frames=item.max_frames)
    print(f"wrote {out} ({summary['parameters'] / 1e6:.0f}M parameters, {summary['weights']})")
    if ckpt_path != manual:
        print(f"the original checkpoint stays in the Hugging Face cache: {ckpt_path}")
    return 0
