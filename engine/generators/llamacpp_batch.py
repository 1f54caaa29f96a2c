"""Continuous batching over one llama.cpp context: the n samples of a request and the samples of
concurrent requests decode together, one token per running sequence per step.

One thread owns the context. Each step it admits waiting requests whose prompt and answers fit in
the KV cache, feeds their prompts (each prompt token belongs to all of its request's sequences, so
the prompt is computed and stored once), appends the last sampled token of every running
sequence, decodes the whole batch in one call and samples every sequence with its own seeded
sampler. On a CPU a decode step costs about the same for one sequence or eight (reading the
weights dominates), which is where the throughput comes from.

While other requests run, finished prompts stay in the cache under sequence ids of their own, and
a later request that begins the same way (a feedback turn after the first, a refill, a chat's next
message) starts from their keys and values instead of computing them again (on this project's
2-core CPU a prompt token costs about a fifth of an answer token). The kept prompts only fill room
no request needs, and are dropped with everything else when the decoder falls idle.

Two layouts of the KV cache. Shared (the default): one buffer of ``kv_tokens`` cells for all
sequences, each taking only the cells it uses; but every row's attention walks the cells of all
sequences, the others' masked out, so with long contexts a step costs more the more sequences
run (``bench/llamacpp_kv_span.py``). Streams: one stream of ``n_ctx`` cells per sequence id, where
attention walks only the row's own; memory for every sequence's longest context, reserved up front.
llama.cpp then cannot store one token for several sequences, so a prompt is computed in its first
sample's stream and copied to the others; and it decodes one pass per run of consecutive sequence
ids in a step, so the running sequences are kept on the lowest ids (a stream moves when one
before it ends).
"""

from __future__ import annotations

import concurrent.futures
import ctypes
import threading
from array import array
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .base import Completion, GeneratorError, SamplingParams, cut_at_stop

# Logits this close between the best two tokens may rank differently in another kernel's sums.
NEAR_TIE = 0.5


@dataclass
class _Sequence:
    seq_id: int
    sampler: Any
    tokens: list[int] = field(default_factory=list)
    text: bytes = b""
    finish_reason: str | None = None
    logprob: float = 0.0  # of the tokens so far, under the raw distribution
    history: array[int] | None = None  # prompt and answer, for drafting (greedy sequences only)
    alone: bool = False  # decode the next step without a draft (a near tie was not trusted)


def draft(history: array[int], limit: int, longest: int = 4, shortest: int = 2) -> list[int]:
    """Prompt lookup: the tokens that followed the latest earlier occurrence of the history's last
    ``longest`` (down to ``shortest``) tokens — what a copy of the prompt or of itself continues
    with. Searched as bytes, in C: an answer's step must not pay a Python scan of the prompt."""
    width = history.itemsize
    data = history.tobytes()
    for n in range(longest, shortest - 1, -1):
        if len(history) <= n:
            continue
        tail = data[-n * width :]
        end = len(data) - width  # an earlier occurrence: not the tail itself
        while (found := data.rfind(tail, 0, end)) >= 0:
            if found % width == 0:
                start = found // width + n
                return history[start : start + limit].tolist()
            end = found + len(tail) - 1
    return []


@dataclass
class _Cached:
    """A prompt kept in the KV cache: its cells are also held by ``seq_id``. Computed with the
    adapter or without it, it serves only requests decoded the same way."""

    tokens: list[int]
    seq_id: int
    adapter: bool = False


def token_logprob(logits: Any, token: int) -> float:
    """The token's log-probability under the model's own distribution at one row of logits
    (before temperature and top-p): what the likelihood verifier ranks candidates by."""
    top = logits.max()
    return float(logits[token] - top - np.log(np.exp(logits - top).sum()))


def load_lora(model: Any, path: str) -> Any:
    """Loads the GGUF LoRA at ``path`` onto ``model``, which then owns it (llama.cpp frees it with
    the weights)."""
    import llama_cpp as lc

    adapter = lc.llama_adapter_lora_init(model, path.encode())
    if not adapter:
        raise GeneratorError(f"llama.cpp could not load the LoRA adapter {path}")
    return adapter


def set_lora(ctx: Any, adapter: Any, scale: float = 1.0) -> None:
    """Decodes in ``ctx`` with ``adapter`` at ``scale`` from now on; with ``None``, with the base
    model's weights alone."""
    import llama_cpp as lc

    if adapter is None:
        status = lc.llama_set_adapters_lora(ctx, None, 0, None)
    else:
        adapters = (lc.llama_adapter_lora_p_ctypes * 1)(adapter)
        status = lc.llama_set_adapters_lora(ctx, adapters, 1, (ctypes.c_float * 1)(scale))
    if status != 0:
        raise GeneratorError("llama.cpp could not set the LoRA adapter")


def apply_lora(model: Any, ctx: Any, path: str, scale: float = 1.0) -> None:
    """Loads the GGUF LoRA at ``path`` onto ``model`` and applies it at ``scale`` in ``ctx``."""
    set_lora(ctx, load_lora(model, path), scale)


def common_prefix(a: list[int], b: list[int]) -> int:
    """How many leading tokens the two lists share."""
    n = min(len(a), len(b))
    if n == 0:
        return 0
    differ = np.flatnonzero(np.asarray(a[:n]) != np.asarray(b[:n]))
    return int(differ[0]) if len(differ) else n


# Reusing fewer tokens than this is not worth a cache lookup's bookkeeping.
MIN_REUSE = 16


@dataclass
class _Request:
    prompt: list[int]
    params: SamplingParams
    future: concurrent.futures.Future[list[Completion]]
    on_text: Callable[[str], None] | None = None  # the text so far, after each token (one sample)
    on_tokens: Callable[[list[int]], None] | None = None  # tokens per sample, after each step
    sequences: list[_Sequence] = field(default_factory=list)
    adapter: bool = False  # decoded with the LoRA adapter
    fed: int = 0  # prompt tokens already in the KV cache
    cells: int = 0  # KV cells reserved: the prompt plus max_tokens per sequence

    @property
    def samples(self) -> int:
        # Greedy decoding gives the same text every time: one sequence, copied.
        return 1 if self.params.temperature == 0 else self.params.n


class BatchDecoder:
    """Decodes requests on ``llama``'s model in a context of its own: at most ``max_sequences``
    sequences of at most ``n_ctx`` tokens each, in ``kv_tokens`` KV cells shared by all of them,
    or (``streams``) in a stream of ``n_ctx`` cells each."""

    def __init__(
        self,
        llama: Any,
        *,
        n_ctx: int,
        kv_tokens: int,
        max_sequences: int,
        n_threads: int,
        draft_tokens: int = 0,
        prefix_cache: int = 0,
        streams: bool = False,
        lora: str | None = None,
        lora_scale: float = 1.0,
    ) -> None:
        """``lora``: a GGUF LoRA adapter file, applied at ``lora_scale`` to the requests that ask
        for it (all of them unless ``submit`` says otherwise)."""
        import llama_cpp as lc

        self._lc = lc
        self.llama = llama
        self.n_ctx = n_ctx
        self.streams = streams
        # Greedy sequences verify up to this many looked-up tokens per step (0: no drafting).
        self.draft_tokens = draft_tokens
        self.max_sequences = min(max_sequences, lc.llama_max_parallel_sequences())
        # Prompts kept for reuse, each under a sequence id beyond the requests' ones.
        self.prefix_cache = min(prefix_cache, lc.llama_max_parallel_sequences() - self.max_sequences)
        self.step_tokens = 512
        n_seq = self.max_sequences + self.prefix_cache
        # Cells are counted alike in both layouts; a stream is n_ctx cells, used or not.
        self.kv_tokens = n_seq * n_ctx if streams else kv_tokens
        params = lc.llama_context_default_params()
        params.n_ctx = self.kv_tokens
        params.n_batch = params.n_ubatch = self.step_tokens
        params.n_seq_max = n_seq
        params.kv_unified = not streams
        params.n_threads = params.n_threads_batch = n_threads
        params.no_perf = True
        self._lora = None if lora is None else load_lora(llama.model, lora)
        self._lora_scale = lora_scale
        self._lora_on = False  # whether the context decodes with the adapter now
        self._ctx = lc.llama_init_from_model(llama.model, params)
        if not self._ctx:
            raise GeneratorError(f"llama.cpp could not create a context of {kv_tokens} tokens")
        self._memory = lc.llama_get_memory(self._ctx)
        self._vocab = lc.llama_model_get_vocab(llama.model)
        self._n_vocab = lc.llama_vocab_n_tokens(self._vocab)
        self._batch = lc.llama_batch_init(self.step_tokens, 0, self.max_sequences)
        self._free_ids = list(range(self.max_sequences))[::-1]  # pop() takes the lowest
        self._free_cells = self.kv_tokens  # neither reserved by a request nor holding a kept prompt
        self._kept: list[_Cached] = []  # least recently used first
        self._kept_ids = list(range(self.max_sequences, self.max_sequences + self.prefix_cache))
        self.reused_tokens = 0  # prompt tokens not computed again, since the start
        self._waiting: list[_Request] = []
        self._running: list[_Request] = []
        self._wake = threading.Condition()
        self._closed = False
        self._thread = threading.Thread(target=self._loop, name="llama-batch", daemon=True)
        self._thread.start()

    def submit(
        self,
        prompt: list[int],
        params: SamplingParams,
        on_text: Callable[[str], None] | None = None,
        on_tokens: Callable[[list[int]], None] | None = None,
        adapter: bool = True,
    ) -> concurrent.futures.Future[list[Completion]]:
        """Queue a request; the future holds its ``params.n`` completions. Called from the decode
        thread: ``on_text`` (one sample only) with the text so far after every token,
        ``on_tokens`` with the tokens each sample has written after every step that added some.
        ``adapter=False`` decodes it with the base model even when the decoder has a LoRA."""
        request = _Request(
            prompt, params, concurrent.futures.Future(), on_text if params.n == 1 else None, on_tokens
        )
        request.adapter = adapter and self._lora is not None
        samples = request.samples
        request.cells = samples * self.n_ctx if self.streams else len(prompt) + samples * params.max_tokens
        if not prompt:
            request.future.set_exception(GeneratorError("empty prompt"))
        elif len(prompt) + params.max_tokens > self.n_ctx:
            request.future.set_exception(
                GeneratorError(
                    f"{len(prompt)} prompt tokens + {params.max_tokens} answer tokens exceed the "
                    f"context of {self.n_ctx} (MUCODE_N_CTX)"
                )
            )
        elif request.cells > self.kv_tokens or samples > self.max_sequences:
            request.future.set_exception(
                GeneratorError(
                    f"{len(prompt)} prompt tokens + {samples} x {params.max_tokens} answer tokens do "
                    f"not fit in llama.cpp's KV cache ({self.kv_tokens} tokens, "
                    f"{self.max_sequences} sequences): raise MUCODE_KV_TOKENS or MUCODE_PARALLEL"
                )
            )
        else:
            with self._wake:
                if self._closed:
                    request.future.set_exception(GeneratorError("the generator is closed"))
                else:
                    self._waiting.append(request)
                    self._wake.notify()
        return request.future

    def close(self) -> None:
        with self._wake:
            self._closed = True
            self._wake.notify()
        self._thread.join()
        self._lc.llama_batch_free(self._batch)
        self._lc.llama_free(self._ctx)

    # The decode loop, on its own thread from here on.

    def _loop(self) -> None:
        while True:
            with self._wake:
                while not self._closed and not self._waiting and not self._running:
                    self._wake.wait()
                if self._closed:
                    break
                self._admit()
            try:
                self._step()
            except Exception as exc:  # every waiting caller must hear of it
                for request in list(self._running):
                    self._finish(request, error=exc)
        for request in self._waiting + self._running:
            self._settle(request.future, GeneratorError("the generator is closed"))

    def _admit(self) -> None:
        """Start waiting requests in arrival order while their cells and sequences are free (a
        large request is not overtaken, so it cannot starve)."""
        while self._waiting:
            request = self._waiting[0]
            if request.future.cancelled():
                self._waiting.pop(0)
                continue
            kept_cells = sum(self._kept_cells(kept.tokens) for kept in self._kept)
            if request.samples > len(self._free_ids) or request.cells > self._free_cells + kept_cells:
                return
            source = self._longest_kept(request.prompt, request.adapter)
            # Kept prompts give way to requests, the one this request would reuse last.
            for victim in sorted(self._kept, key=lambda kept: kept is source):  # stable: LRU first
                if request.cells <= self._free_cells:
                    break
                self._forget(victim)
                source = None if victim is source else source
            self._waiting.pop(0)
            self._free_cells -= request.cells
            for k in range(request.samples):
                seq = _Sequence(self._free_ids.pop(), self._sampler(request.params, k))
                if self.draft_tokens and request.params.temperature == 0:
                    seq.history = array("i", request.prompt)
                request.sequences.append(seq)
            if source is not None:
                self._reuse(request, source)
            self._running.append(request)

    def _longest_kept(self, prompt: list[int], adapter: bool) -> _Cached | None:
        """The kept prompt, computed the same way, sharing the most leading tokens with ``prompt``
        (at least MIN_REUSE)."""
        best, shared = None, MIN_REUSE - 1
        for kept in self._kept:
            if kept.adapter != adapter:
                continue
            n = common_prefix(kept.tokens, prompt)
            if n > shared:
                best, shared = kept, n
        return best

    def _kept_cells(self, tokens: list[int]) -> int:
        return self.n_ctx if self.streams else len(tokens)

    def _reuse(self, request: _Request, source: _Cached) -> None:
        """Start the request's sequences from the kept prompt's cells. The prompt's last token is
        always computed: its logits give the first sample."""
        shared = min(common_prefix(source.tokens, request.prompt), len(request.prompt) - 1)
        lc, memory = self._lc, self._memory
        if self.streams:  # (streams copy whole; the other samples get the prompt once computed)
            first = request.sequences[0].seq_id
            lc.llama_memory_seq_cp(memory, source.seq_id, first, -1, -1)
            lc.llama_memory_seq_rm(memory, first, shared, -1)
        else:
            for seq in request.sequences:
                lc.llama_memory_seq_cp(memory, source.seq_id, seq.seq_id, 0, shared)
        request.fed = shared
        self.reused_tokens += shared
        self._kept.remove(source)
        self._kept.append(source)

    def _keep(self, request: _Request) -> None:
        """Keep a request's prompt, now computed, for later requests, in place of kept prompts it
        begins with."""
        prompt = request.prompt
        if not self.prefix_cache or len(prompt) < MIN_REUSE:
            return
        for kept in [kept for kept in self._kept if kept.adapter == request.adapter]:
            shared = common_prefix(kept.tokens, prompt)
            if shared == len(prompt):
                return  # already kept (whole or as the start of a longer one)
            if shared == len(kept.tokens):
                self._forget(kept)  # this prompt serves every request that one would
        cells = self._kept_cells(prompt)
        while self._kept and (len(self._kept_ids) == 0 or self._free_cells < cells):
            self._forget(self._kept[0])
        if self._free_cells < cells:
            return
        kept = _Cached(list(prompt), self._kept_ids.pop(), request.adapter)
        # The first sequence holds just the prompt now: its first answer token is fed next step.
        self._lc.llama_memory_seq_cp(self._memory, request.sequences[0].seq_id, kept.seq_id, -1, -1)
        self._free_cells -= cells
        self._kept.append(kept)

    def _forget(self, kept: _Cached) -> None:
        # Cells that a running request also holds stay until it finishes; the count of free cells
        # charges every holder for all of its cells, so it never promises more than there is.
        self._lc.llama_memory_seq_rm(self._memory, kept.seq_id, -1, -1)
        self._kept.remove(kept)
        self._kept_ids.append(kept.seq_id)
        self._free_cells += self._kept_cells(kept.tokens)

    def _sampler(self, params: SamplingParams, k: int) -> Any:
        lc = self._lc
        chain = lc.llama_sampler_chain_init(lc.llama_sampler_chain_default_params())
        if params.ignore_eos:
            ends = [t for t in range(self._n_vocab) if lc.llama_vocab_is_eog(self._vocab, t)]
            biases = (lc.llama_logit_bias * len(ends))(*(lc.llama_logit_bias(t, -1e9) for t in ends))
            lc.llama_sampler_chain_add(
                chain, lc.llama_sampler_init_logit_bias(self._n_vocab, len(ends), biases)
            )
        if params.temperature == 0:
            lc.llama_sampler_chain_add(chain, lc.llama_sampler_init_greedy())
        else:
            # The order llama-cpp-python's create_completion uses: top-p, temperature, draw.
            seed = lc.LLAMA_DEFAULT_SEED if params.seed is None else params.seed + k
            lc.llama_sampler_chain_add(chain, lc.llama_sampler_init_top_p(params.top_p, 1))
            lc.llama_sampler_chain_add(chain, lc.llama_sampler_init_temp(params.temperature))
            lc.llama_sampler_chain_add(chain, lc.llama_sampler_init_dist(seed))
        return chain

    def _step(self) -> None:
        for request in list(self._running):
            if request.future.cancelled():
                self._finish(request)
        # llama.cpp applies an adapter to a whole batch: requests with and without it decode in
        # passes of their own, the context's current setting first.
        for adapter in sorted({r.adapter for r in self._running}, key=lambda a: a != self._lora_on):
            self._decode([r for r in self._running if r.adapter == adapter], adapter)
        for request in list(self._running):
            if all(seq.finish_reason for seq in request.sequences):
                self._finish(request)

    def _decode(self, running: list[_Request], adapter: bool) -> None:
        """One decode pass over ``running``: a token for every sequence, then prompts."""
        lc = self._lc
        rows: list[tuple[int, int, list[int], bool]] = []  # token, position, sequences, output
        readers: list[tuple[int, _Request, list[_Sequence]]] = []  # output row -> who samples it
        computed: list[_Request] = []  # requests whose prompt this step completes
        drafts: list[tuple[int, _Request, _Sequence, list[int]]] = []  # and for drafted sequences

        def add(token: int, pos: int, seq_ids: list[int], output: bool) -> int:
            rows.append((token, pos, seq_ids, output))
            return len(rows) - 1

        for request in running:
            for seq in request.sequences:
                if request.fed < len(request.prompt) or seq.finish_reason is not None:
                    continue
                pos = len(request.prompt) + len(seq.tokens) - 1
                row = add(seq.tokens[-1], pos, [seq.seq_id], True)
                if seq.history is None:
                    readers.append((row, request, [seq]))
                    continue
                # Never past max_tokens (the cells reserved) nor the step's room.
                limit = min(
                    self.draft_tokens,
                    request.params.max_tokens - len(seq.tokens) - 1,
                    self.step_tokens - len(rows) - len(running),
                )
                guess = draft(seq.history, limit) if limit > 0 and not seq.alone else []
                seq.alone = False
                drafts.append((row, request, seq, guess))
                for offset, token in enumerate(guess, start=1):
                    add(token, pos + offset, [seq.seq_id], True)
        # Prompts fill what is left of the step, oldest request first; in streams, only the first
        # sample's (copied to the others once computed).
        for request in running:
            room = self.step_tokens - len(rows)
            if request.fed == len(request.prompt) or room == 0:
                continue
            chunk = request.prompt[request.fed : request.fed + room]
            ids = [seq.seq_id for seq in request.sequences[: 1 if self.streams else None]]
            for offset, token in enumerate(chunk):
                last = request.fed + offset == len(request.prompt) - 1
                row = add(token, request.fed + offset, ids, last)
            request.fed += len(chunk)
            if request.fed == len(request.prompt):
                readers.append((row, request, request.sequences))
                computed.append(request)
        if not rows:
            return
        at = self._fill(rows)
        if adapter != self._lora_on:
            set_lora(self._ctx, self._lora if adapter else None, self._lora_scale)
            self._lora_on = adapter
        status = lc.llama_decode(self._ctx, self._batch)
        if status != 0:
            raise GeneratorError(f"llama_decode failed with status {status}")
        for request in computed:
            self._keep(request)
            if self.streams:  # (the copies land at the next decode, before its tokens)
                for seq in request.sequences[1:]:
                    lc.llama_memory_seq_cp(self._memory, request.sequences[0].seq_id, seq.seq_id, -1, -1)
        for row, request, sequences in readers:
            for seq in sequences:
                token = lc.llama_sampler_sample(seq.sampler, self._ctx, at[row])
                self._advance(request, seq, token, self._logprob(at[row], token))
        for row, request, seq, guess in drafts:
            self._verify(at[row], request, seq, guess)
        reported = {id(r): r for _, r, _ in readers} | {id(r): r for _, r, _, _ in drafts}
        for request in reported.values():
            if request.on_tokens is not None:
                written = [len(seq.tokens) for seq in request.sequences]
                request.on_tokens(written * request.params.n if request.samples == 1 else written)

    def _fill(self, rows: list[tuple[int, int, list[int], bool]]) -> list[int]:
        """Put the rows in the batch by sequence id (stable: a sequence's rows stay in order, so
        a drafted sequence's outputs stay consecutive): with streams, llama.cpp decodes in one pass
        only a run of consecutive ids in increasing order. Returns each row's place."""
        batch = self._batch
        order = sorted(range(len(rows)), key=lambda k: rows[k][2][0])
        at = [0] * len(rows)
        for i, k in enumerate(order):
            at[k] = i
            token, pos, seq_ids, output = rows[k]
            batch.token[i] = token
            batch.pos[i] = pos
            batch.n_seq_id[i] = len(seq_ids)
            for j, seq_id in enumerate(seq_ids):
                batch.seq_id[i][j] = seq_id
            batch.logits[i] = output
        batch.n_tokens = len(rows)
        return at

    def _verify(self, index: int, request: _Request, seq: _Sequence, guess: list[int]) -> None:
        """Greedy verification: the model's token after the fed one, then after each drafted
        token while the draft agreed with it; the first disagreement is the model's own token.
        The token after the last kept one is fed next step, so the cache drops it and beyond.

        Verified rows come out of llama.cpp's multi-row kernels, whose sums differ from the
        one-row kernel's in the last bits: where the best two tokens are within
        ``NEAR_TIE`` logits the row is not trusted, and the next step decodes it alone, as
        decoding without a draft would (a step without a draft is that one row: trusted)."""
        kept: list[tuple[int, float]] = []  # token, log-probability
        for j in range(len(guess) + 1):
            if guess and self._near_tie(index + j):
                seq.alone = True
                break
            token = self._lc.llama_sampler_sample(seq.sampler, self._ctx, index + j)
            kept.append((token, self._logprob(index + j, token)))
            if j == len(guess) or token != guess[j]:
                break
        first = len(request.prompt) + len(seq.tokens)  # position of guess[0]
        self._lc.llama_memory_seq_rm(self._memory, seq.seq_id, first - 1 + len(kept), -1)
        for token, logprob in kept:
            self._advance(request, seq, token, logprob)
            if seq.finish_reason is not None:
                break

    def _logits(self, index: int) -> Any:
        return np.ctypeslib.as_array(self._lc.llama_get_logits_ith(self._ctx, index), shape=(self._n_vocab,))

    def _near_tie(self, index: int) -> bool:
        second, best = np.partition(self._logits(index), -2)[-2:]
        return bool(best - second < NEAR_TIE)

    def _logprob(self, index: int, token: int) -> float:
        return token_logprob(self._logits(index), token)

    def _advance(self, request: _Request, seq: _Sequence, token: int, logprob: float) -> None:
        params = request.params
        if self._lc.llama_vocab_is_eog(self._vocab, token) and not params.ignore_eos:
            seq.finish_reason = "stop"
            return
        seq.tokens.append(token)
        seq.logprob += logprob
        if seq.history is not None:
            seq.history.append(token)
        seq.text += self.llama.detokenize([token])
        if params.stop and cut_at_stop(seq.text.decode("utf-8", errors="ignore"), params.stop)[1]:
            seq.finish_reason = "stop"
        elif len(seq.tokens) >= params.max_tokens:
            seq.finish_reason = "length"
        elif request.on_text is not None:
            request.on_text(seq.text.decode("utf-8", errors="ignore"))

    def _finish(self, request: _Request, error: Exception | None = None) -> None:
        for seq in request.sequences:
            self._lc.llama_memory_seq_rm(self._memory, seq.seq_id, -1, -1)
            self._lc.llama_sampler_free(seq.sampler)
            self._free_ids.append(seq.seq_id)
        self._free_ids.sort(reverse=True)
        self._free_cells += request.cells
        self._running.remove(request)
        if self.streams:
            self._pack()
        if not self._running:
            # Back to an empty cache laid out from cell 0: where cells sit changes the order of
            # the attention sums, so this is what makes a seeded request on an idle server
            # reproducible (next to other requests it may differ in the last bits, and a sample
            # then in a near-tie; so may one that starts from a kept prompt).
            for kept in list(self._kept):
                self._forget(kept)
            self._lc.llama_memory_clear(self._memory, True)
        if error is not None:
            self._settle(request.future, error)
            return
        completions = []
        for seq in request.sequences:
            text, _ = cut_at_stop(seq.text.decode("utf-8", errors="ignore"), request.params.stop)
            completions.append(
                Completion(
                    text=text,
                    prompt_tokens=len(request.prompt),
                    completion_tokens=len(seq.tokens),
                    finish_reason=seq.finish_reason or "stop",
                    logprob=seq.logprob,
                )
            )
        self._settle(request.future, completions * request.params.n if request.samples == 1 else completions)

    def _pack(self) -> None:
        """Move the running sequence with the highest stream id into the lowest free one while
        that is lower, so that running sequences hold consecutive ids again. The copy lands at the
        next decode before anything is written there, so it reads what the source holds now."""
        running = [seq for request in self._running for seq in request.sequences]
        while running and self._free_ids:
            seq = max(running, key=lambda seq: seq.seq_id)
            if self._free_ids[-1] > seq.seq_id:
                return
            hole = self._free_ids.pop()
            self._lc.llama_memory_seq_cp(self._memory, seq.seq_id, hole, -1, -1)
            self._lc.llama_memory_seq_rm(self._memory, seq.seq_id, -1, -1)
            self._free_ids.append(seq.seq_id)
            self._free_ids.sort(reverse=True)
            seq.seq_id = hole

    @staticmethod
    def _settle(future: concurrent.futures.Future[list[Completion]], outcome: Any) -> None:
        """Resolve a future its caller may have cancelled meanwhile (from another thread)."""
        try:
            if isinstance(outcome, BaseException):
                future.set_exception(outcome)
            else:
                future.set_result(outcome)
        except concurrent.futures.InvalidStateError:
            pass
