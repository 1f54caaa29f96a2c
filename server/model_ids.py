"""The model ids the server answers as, for clients whose settings screen has a model field and
nothing else: ``mucode`` (the default search), its presets (``mucode-fast``, ``mucode-thorough``
and those the operator adds with ``MUCODE_PRESETS``), search options after a colon on any of them
(``mucode:n=8,turns=4``), and the generator itself under a familiar id such as
``qwen2.5-coder-0.5b-instruct`` (plain chat, no search) — never a path of this host.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import PurePosixPath
from typing import Any

from pydantic import ValidationError

from mucode.engine.generators.base import Generator
from mucode.engine.options import SolveOptions

from .errors import APIError
from .protocol.chat import MUCODE_MODEL, ModelCard, ModelList
from .settings import ServerSettings

# Quantisation and format tags at the end of a weights file's name: not part of the model's name.
_TAGS = re.compile(
    r"[-_.](?:i?q\d(?:_[a-z0-9]+)*|bf16|fp16|f16|fp32|f32|gguf|awq|gptq|int[48])$", re.IGNORECASE
)


def familiar_id(model: str) -> str:
    """``/root/.cache/.../qwen2.5-coder-0.5b-instruct-q4_k_m.gguf`` → ``qwen2.5-coder-0.5b-instruct``;
    ``Qwen/Qwen2.5-Coder-7B-Instruct`` → ``qwen2.5-coder-7b-instruct``."""
    name = PurePosixPath(model.rstrip("/")).name
    name = re.sub(r"\.gguf$", "", name, flags=re.IGNORECASE)
    while (shorter := _TAGS.sub("", name)) != name:
        name = shorter
    return name.lower()


@dataclass(frozen=True)
class ModelChoice:
    card: ModelCard
    options: SolveOptions | None  # the search's options; None: plain chat with the generator


def presets(settings: ServerSettings) -> dict[str, SolveOptions]:
    """``mucode`` first (the server's defaults), then the named presets."""
    return {MUCODE_MODEL: SolveOptions(), **settings.all_presets()}


def model_list(generator: Generator | None, settings: ServerSettings) -> ModelList:
    """The presets and, once it has loaded, the generator."""
    cards = [_preset_card(name, options) for name, options in presets(settings).items()]
    if generator is not None:
        cards.append(_generator_card(generator))
    return ModelList(data=cards)


def _preset_card(name: str, options: SolveOptions) -> ModelCard:
    return ModelCard(id=name, options=options.model_dump(exclude_unset=True))


def _generator_card(generator: Generator) -> ModelCard:
    return ModelCard(id=familiar_id(generator.model), root=PurePosixPath(generator.model.rstrip("/")).name)


def resolve(model_id: str, generator: Generator | None, settings: ServerSettings) -> ModelChoice:
    """What ``model_id`` asks for, or a 404 in OpenAI's words (a 422 for bad options)."""
    name, colon, suffix = model_id.partition(":")
    known = presets(settings)
    if name in known:
        options = known[name]
        if colon:
            given = _suffix_options(model_id, suffix)
            options = options.model_copy(update=given)
            options.__pydantic_fields_set__ |= set(given)
        card = _preset_card(model_id, options)
        return ModelChoice(card, options)
    if generator is not None and model_id in (familiar_id(generator.model), generator.model):
        return ModelChoice(_generator_card(generator), None)
    raise APIError(
        404,
        f"the model `{model_id}` does not exist; see GET /v1/models",
        param="model",
        type="not_found_error",
        code="model_not_found",
    )


def _suffix_options(model_id: str, suffix: str) -> dict[str, Any]:
    """``n=8,turns=4,selection=pt`` checked as SolveOptions fields."""
    given: dict[str, str] = {}
    for part in filter(None, suffix.split(",")):
        key, equals, value = part.partition("=")
        if not equals:
            raise APIError(
                422, f"`{model_id}`: options after ':' are key=value pairs, got `{part}`", param="model"
            )
        given[key.strip()] = value.strip()
    try:
        checked = SolveOptions.model_validate(given)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise APIError(422, f"`{model_id}`: {where}: {first['msg']}", param="model") from None
    return checked.model_dump(include=set(given))
