"""Which generator and verifier the engine runs, from ``MUCODE_*`` variables or flags."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from .adapter_scope import AdapterScope

Backend = Literal["auto", "vllm", "llama-cpp", "transformers", "openai", "scripted"]


class EngineSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="MUCODE_", extra="ignore")

    generator: Backend = Field(
        "auto", description="Generator backend; `auto`: vllm if installed, else llama-cpp, else transformers."
    )
    model: str | None = Field(
        None,
        description="HF folder, .gguf file or hub id; unset means the bundled Qwen2.5-Coder-0.5B-Instruct.",
    )
    lora: str | None = Field(
        None,
        description="llama.cpp: a GGUF LoRA adapter applied to the model (MUCODE_MODEL when a .gguf, else "
        "the bundled GGUF). An installed checkpoint sets it to its generator's adapter.",
    )
    lora_scale: float = Field(
        1.0,
        ge=0.0,
        description="llama.cpp: the scale the LoRA adapter is applied at; 1 is the adapter as trained, "
        "between 0 and 1 the model moves only part of the way from the base toward it.",
    )
    lora_scope: AdapterScope | None = Field(
        None,
        description="llama.cpp: the problems the LoRA adapter is applied to: `all`, or `data-libraries` "
        "(problems naming pandas, numpy, scikit-learn, matplotlib, ...); the others are answered by the "
        "base model in the same decode loop. Unset: the checkpoint's, else `all`.",
    )
    verifier: str | None = Field(
        None,
        description="Verifier folder (HF classifier, PEFT adapter or probe), or `likelihood` (the "
        "generator's mean token log-probability of each answer; llama.cpp and vLLM backends); "
        "unset = none.",
    )
    device: str = Field("cpu", description="torch device for the transformers backend and the verifier.")
    dtype: str = Field(
        "auto",
        description="torch dtype for the vllm and transformers backends; `auto`: bfloat16 where the "
        "hardware computes in it (GPUs, CPUs with AVX-512 BF16 or AMX), else float32.",
    )
    n_ctx: int = Field(
        8192, ge=512, description="Context length (prompt and answer) of one sequence, llama.cpp and vLLM."
    )
    parallel: int = Field(
        16, ge=1, le=256, description="llama.cpp: sequences decoded together, over all running requests."
    )
    draft_tokens: int = Field(
        0,
        ge=0,
        le=64,
        description="llama.cpp: prompt-lookup speculative decoding for greedy answers, tokens drafted "
        "per step (0: off; off by default: on a CPU it measured no faster on first answers).",
    )
    kv_tokens: int = Field(
        32768,
        ge=512,
        description="llama.cpp: KV cache cells shared by those sequences (~12 KB each "
        "for the default model); a request waits until its prompt plus n x max_tokens fit.",
    )
    prefix_cache: int = Field(
        16,
        ge=0,
        le=128,
        description="llama.cpp: computed prompts kept in spare KV cells while other requests run, so "
        "that a request beginning the same way (a feedback turn, a refill, a chat's next message) "
        "skips that part of its prompt (0: off).",
    )
    kv_streams: bool = Field(
        False,
        description="llama.cpp: a KV stream of MUCODE_N_CTX cells per sequence (MUCODE_PARALLEL + "
        "MUCODE_PREFIX_CACHE of them, reserved up front) instead of MUCODE_KV_TOKENS cells shared: "
        "attention then walks only a sequence's own cells, faster with long contexts.",
    )
    openai_base_url: str | None = Field(
        None, description="Upstream for the `openai` backend, e.g. http://host/v1."
    )
    openai_api_key: str | None = Field(None, description="Bearer token for the upstream.")
    script: str | None = Field(None, description="JSON script for the `scripted` backend.")
    prompt_version: str | None = Field(
        None,
        description="The chat format the generator is prompted with (`mucode-chat-1`, `-2`, `-3`); "
        "unset means the checkpoint's, else the newest.",
    )
    checkpoint: str | None = Field(
        None,
        description="A training checkpoint (folder with mucode.json): its generator and verifier; unset "
        "means the installed one (`mucode models install-checkpoint`) if any, `none` means no checkpoint.",
    )

    @field_validator("prompt_version")
    @classmethod
    def _known_prompt(cls, version: str | None) -> str | None:
        from .prompts import prompt_format

        return None if version is None else prompt_format(version).version

    def resolved(self) -> EngineSettings:
        """With a checkpoint, the model and verifier it names (explicit settings still win)."""
        from .checkpoint import installed_checkpoint, read_manifest, resolve

        if self.checkpoint == "none":
            return self
        checkpoint = self.checkpoint or installed_checkpoint()
        if checkpoint is None:
            return self
        manifest = read_manifest(checkpoint)
        return self.model_copy(
            update={
                "checkpoint": str(checkpoint),
                "model": self.model or resolve(checkpoint, manifest.generator),
                # The same generator for llama.cpp: the bundled GGUF with the adapter converted for it.
                "lora": self.lora or (None if self.model else resolve(checkpoint, manifest.generator_lora)),
                # The scope belongs to the checkpoint's generator: a user's own model or adapter has none.
                "lora_scope": self.lora_scope
                or (None if self.lora or self.model else manifest.generator_scope),
                "verifier": self.verifier or resolve(checkpoint, manifest.verifier),
                # A verifier-only checkpoint leaves the generator, and so its prompt, as they were.
                "prompt_version": self.prompt_version
                or (manifest.prompt_version if manifest.generator or manifest.generator_adapter else None),
            }
        )
