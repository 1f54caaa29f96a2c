"""A PEFT LoRA adapter as a llama.cpp GGUF adapter, so that a trained generator runs on the GGUF
base the CPU server already decodes with (``MUCODE_LORA``) instead of a merged Hugging Face
model on a slower backend.

llama.cpp applies ``scale * alpha / r * B(Ax)`` beside each quantized weight, the same update
PEFT adds; the adapter's matrices keep their PEFT layout (``lora_a``: r x in, ``lora_b``:
out x r), named after the base tensor they modify. The base GGUF names the architecture and its
tensor names, so any architecture ``gguf`` knows converts alike.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

from .checkpoint import ADAPTER_CONFIG, ADAPTER_WEIGHTS

# base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight -> model.layers.0.self_attn.q_proj, A
_PEFT_KEY = re.compile(r"^base_model\.model\.(?P<module>.+)\.lora_(?P<part>[AB])\.weight$")


class AdapterConversionError(ValueError):
    pass


def _check_config(config: dict[str, object]) -> None:
    """Refuses what a plain GGUF LoRA cannot express, rather than serving a different model."""
    if config.get("peft_type") != "LORA":
        raise AdapterConversionError(f"not a LoRA adapter: peft_type {config.get('peft_type')!r}")
    for key in ("use_dora", "use_rslora", "modules_to_save", "alpha_pattern", "rank_pattern"):
        if config.get(key):
            raise AdapterConversionError(f"adapter uses {key}, which a GGUF LoRA cannot hold")
    if config.get("bias", "none") != "none":
        raise AdapterConversionError("adapter trains biases, which a GGUF LoRA cannot hold")


def adapter_to_gguf(adapter: str | Path, base_gguf: str | Path, out: str | Path) -> Path:
    """Writes ``out`` (a GGUF LoRA for ``base_gguf``) from the PEFT adapter folder ``adapter``."""
    import gguf
    import torch
    from safetensors.torch import load_file

    adapter, out = Path(adapter), Path(out)
    config = json.loads((adapter / ADAPTER_CONFIG).read_text(encoding="utf-8"))
    _check_config(config)
    base = gguf.GGUFReader(str(base_gguf))
    arch_name = str(base.fields["general.architecture"].contents())
    arch = next((a for a, name in gguf.MODEL_ARCH_NAMES.items() if name == arch_name), None)
    if arch is None:
        raise AdapterConversionError(f"gguf does not know the base's architecture {arch_name!r}")
    blocks = int(base.fields[f"{arch_name}.block_count"].contents())
    names = gguf.get_tensor_name_map(arch, blocks)
    base_tensors = {t.name for t in base.tensors}

    matrices = {}
    for key, weight in sorted(load_file(str(adapter / ADAPTER_WEIGHTS)).items()):
        match = _PEFT_KEY.match(key)
        if match is None:
            raise AdapterConversionError(f"adapter tensor {key} is not a LoRA matrix")
        target = names.get_name(match["module"] + ".weight", try_suffixes=(".weight",))
        if target is None or target not in base_tensors:
            raise AdapterConversionError(f"{match['module']} has no tensor in the base GGUF")
        # float16 halves the file (adapters ship in bfloat16, which numpy lacks); llama.cpp
        # multiplies in it directly.
        matrices[f"{target}.lora_{match['part'].lower()}"] = weight.to(torch.float16).numpy()

    out.parent.mkdir(parents=True, exist_ok=True)
    writer = gguf.GGUFWriter(str(out), arch_name)
    writer.add_type(gguf.GGUFType.ADAPTER)
    writer.add_string(gguf.Keys.Adapter.TYPE, "lora")
    writer.add_float32(gguf.Keys.Adapter.LORA_ALPHA, float(config["lora_alpha"]))
    for name, matrix in matrices.items():
        writer.add_tensor(name, matrix)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return out
