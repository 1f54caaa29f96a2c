"""Building the configured generator and verifier (the only place that imports the backends)."""

from __future__ import annotations

import importlib.util
import logging

from .generators.base import Generator, GeneratorError
from .model_store import Progress, pull_gguf, pull_hf
from .prompts import DEFAULT, PromptFormat, prompt_format
from .settings import EngineSettings
from .verifier import Verifier, load_verifier

log = logging.getLogger("mucode.engine")


def resolve_backend(settings: EngineSettings) -> str:
    if settings.generator != "auto":
        return settings.generator
    if settings.openai_base_url:
        return "openai"
    resolved = settings.resolved()
    model = resolved.model
    # llama.cpp reads GGUF only: a Hugging Face folder or hub id goes to vLLM or transformers,
    # unless it comes with a GGUF LoRA for the bundled GGUF (an installed checkpoint's generator).
    gguf = model is None or model.endswith(".gguf") or resolved.lora is not None
    for backend, module in (("vllm", "vllm"), ("llama-cpp", "llama_cpp")):
        if (gguf or backend != "llama-cpp") and importlib.util.find_spec(module) is not None:
            return backend
    return "transformers"


def ensure_model(settings: EngineSettings, progress: Progress | None = None) -> None:
    """Pull the default model bundle now if the chosen backend will need it (a no-op once cached),
    so a long first download shows progress before the server starts."""
    settings = settings.resolved()
    model, backend = settings.model, resolve_backend(settings)
    if backend == "llama-cpp" and (model is None or not model.endswith(".gguf")):
        pull_gguf(progress=progress)  # the base of an installed checkpoint's LoRA, too
    elif backend in ("vllm", "transformers") and model is None:
        pull_hf(progress=progress)


def load_generator(settings: EngineSettings, progress: Progress | None = None) -> Generator:
    settings = settings.resolved()
    backend = resolve_backend(settings)
    model = settings.model
    if backend == "scripted":
        from .generators.scripted import ScriptedGenerator

        if not settings.script:
            raise GeneratorError("the scripted backend needs MUCODE_SCRIPT (a JSON list of turns of answers)")
        generator: Generator = ScriptedGenerator.from_file(settings.script)
    elif backend == "openai":
        from .generators.openai_compat import OpenAIGenerator

        if not settings.openai_base_url:
            raise GeneratorError("the openai backend needs MUCODE_OPENAI_BASE_URL")
        generator = OpenAIGenerator(
            settings.openai_base_url, model or "default", api_key=settings.openai_api_key
        )
    elif backend == "vllm":
        from .generators.vllm_engine import VLLMGenerator

        generator = VLLMGenerator.load(
            model or pull_hf(progress=progress),
            max_model_len=settings.n_ctx,
            dtype=compute_dtype(settings.dtype, gpu=_cuda()),
        )
    elif backend == "llama-cpp":
        from .generators.llamacpp import LlamaCppGenerator

        gguf = model if model is not None and model.endswith(".gguf") else None
        if model is not None and gguf is None and settings.lora is None:
            raise GeneratorError(f"the llama-cpp backend needs a .gguf file, not {model}")
        generator = LlamaCppGenerator.load(
            gguf or pull_gguf(progress=progress),
            lora=settings.lora,
            lora_scale=settings.lora_scale,
            lora_scope=settings.lora_scope or "all",
            n_ctx=settings.n_ctx,
            kv_tokens=settings.kv_tokens,
            max_sequences=settings.parallel,
            draft_tokens=settings.draft_tokens,
            prefix_cache=settings.prefix_cache,
            kv_streams=settings.kv_streams,
        )
    else:
        from .generators.hf import TransformersGenerator

        generator = TransformersGenerator.load(
            model or pull_hf(progress=progress),
            dtype=compute_dtype(settings.dtype, gpu=settings.device.startswith("cuda")),
            device=settings.device,
        )
    if backend in ("vllm", "transformers") and settings.lora_scope not in (None, "all"):
        log.warning(
            "generator: MUCODE_LORA_SCOPE=%s is applied on llama.cpp only; %s serves the trained "
            "generator to every problem",
            settings.lora_scope,
            backend,
        )
    log.info("generator: %s", generator.description)
    return generator


def configured_prompt(settings: EngineSettings) -> PromptFormat:
    """The checkpoint's prompt format (or the one set), else the newest."""
    version = settings.resolved().prompt_version
    return prompt_format(version) if version else DEFAULT


def load_configured_verifier(settings: EngineSettings) -> Verifier | None:
    settings = settings.resolved()
    verifier = load_verifier(settings.verifier, device=settings.device)
    log.info("verifier: %s", verifier.name if verifier else "none (selection by public tests)")
    return verifier


def compute_dtype(setting: str, gpu: bool) -> str:
    """``auto`` is bfloat16 where the hardware computes in it, else float32: on a CPU with only
    AVX2, bfloat16 matmuls are emulated and ran at a third of float32's speed (2-core AMD EPYC VM,
    64-row linear layer of the default model), and vLLM's oneDNN kernels refuse them."""
    if setting != "auto":
        return setting
    import torch

    if gpu:
        return "bfloat16" if torch.cuda.is_bf16_supported() else "float16"
    return "bfloat16" if torch.ops.mkldnn._is_mkldnn_bf16_supported() else "float32"


def _cuda() -> bool:
    import torch

    return torch.cuda.is_available()
