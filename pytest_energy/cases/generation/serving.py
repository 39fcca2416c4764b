"""Serving under load: requests that arrive together, decoded as a batch that refills as its sequences
finish (continuous batching), and the steady state the ML.ENERGY benchmark measures.

:func:`serve` is the scheduler, free of any model: before each decode pass it admits waiting requests
into the batch's free slots (one prefill pass over the newcomers, which makes each one's first token),
then every sequence in the batch makes one token; a sequence that has made the tokens its request asks
for leaves, and its slot takes the next waiting request at the next pass. The steady state runs from
the pass after which the batch first holds ``concurrency`` sequences until the first pass that frees a
slot no waiting request can take (:data:`pytest_energy.core.facts.STEADY_STATE`).

:class:`CacheBatch` runs the passes on a causal LM: one key/value cache for the whole batch, its rows
padded on the left; a newcomer's prompt is prefilled on its own and its cache joined to the batch's,
and a finished row is taken out. It needs the plain per-layer key/value cache that transformers'
decoder-only models use (``DynamicCache``); a model with another kind (a sliding window, a state
space) is refused with one line. Importing this module is cheap: torch loads when a batch runs.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from typing import Any, Callable, Protocol, Sequence

from ..base import CaseFailure

#: How the case runner serves (a record's :attr:`~pytest_energy.core.facts.ServingFacts.batching`).
BATCHING = ("continuous batching in pytest-energy's case runner: one key/value cache for the batch, a newcomer's "
            "prompt prefilled on its own and joined to it, a finished sequence's row taken out")


class ServingError(CaseFailure):
    """A model this runner cannot serve in a batch; the message says why and what to do (the test fails
    with that one line)."""


@dataclass(frozen=True)
class Request:
    """One request: its place in the queue, the example it prompts with, the output tokens it asks for
    (it ends there: end-of-text does not stop it, so every run does the same work)."""

    number: int
    index: int
    new_tokens: int


@dataclass(frozen=True)
class Pass:
    """One forward pass of the server: ``prefill`` (newcomers, each making its first token) or
    ``decode`` (every sequence of the batch, one token each)."""

    kind: str
    tokens: int  # output tokens it made
    busy: int  # sequences in the batch during it


class Decoder(Protocol):
    """What runs the passes: a model (:class:`CacheBatch`), or a test's scripted stand-in."""

    def admit(self, requests: Sequence[Request]) -> None:
        """Prefill the newcomers into the batch; each makes its first token."""

    def decode(self) -> None:
        """One token for every sequence in the batch."""

    def release(self, requests: Sequence[Request]) -> None:
        """Take finished sequences out of the batch."""


class Unrun:
    """A decoder that runs nothing: :func:`serve` with it gives a run's schedule (its passes, fill and
    drain) before the run, as every request asks for a fixed number of tokens."""

    def admit(self, requests: Sequence[Request]) -> None:
        pass

    def decode(self) -> None:
        pass

    def release(self, requests: Sequence[Request]) -> None:
        pass


@dataclass
class Served:
    """What a run did: its passes, and the passes made when the steady state began (``fill``) and ended
    (``drain``); None where the batch never filled."""

    concurrency: int
    passes: list[Pass] = field(default_factory=list)
    fill: int | None = None
    drain: int | None = None

    @property
    def output_tokens(self) -> int:
        return sum(p.tokens for p in self.passes)

    @property
    def steady_tokens(self) -> int:
        """Output tokens made in the steady state (0 where there is none)."""
        if self.fill is None or self.drain is None:
            return 0
        return sum(p.tokens for p in self.passes[self.fill:self.drain])


def serve(decoder: Decoder, requests: Sequence[Request], concurrency: int, *,
          on_pass: Callable[[Pass], None] | None = None, on_fill: Callable[[], None] | None = None,
          on_drain: Callable[[], None] | None = None) -> Served:
    """Serve ``requests``, all arrived at once, ``concurrency`` at a time (module docstring).

    ``on_pass`` is called after each pass, then ``on_fill`` after the pass that first fills the batch
    and ``on_drain`` after the first pass that frees a slot no waiting request can take."""
    served = Served(concurrency)
    waiting = deque(requests)
    made: dict[int, int] = {}  # request number -> tokens made, for the sequences in the batch
    batch: dict[int, Request] = {}

    def passed(kind: str, tokens: int, busy: int) -> None:
        served.passes.append(Pass(kind, tokens, busy))
        if on_pass is not None:
            on_pass(served.passes[-1])

    def finish() -> None:
        done = [batch[n] for n in batch if made[n] >= batch[n].new_tokens]
        if not done:
            return
        decoder.release(done)
        for request in done:
            del batch[request.number], made[request.number]
        # Too few wait to fill the slots freed: one stays empty from here on.
        if len(batch) + len(waiting) < concurrency and served.drain is None and served.fill is not None:
            served.drain = len(served.passes)
            if on_drain is not None:
                on_drain()

    while waiting or batch:
        if waiting and len(batch) < concurrency:
            newcomers = [waiting.popleft() for _ in range(min(concurrency - len(batch), len(waiting)))]
            decoder.admit(newcomers)
            for request in newcomers:
                batch[request.number], made[request.number] = request, 1
            passed("prefill", len(newcomers), len(batch))
            if served.fill is None and len(batch) == concurrency:
                served.fill = len(served.passes)
                if on_fill is not None:
                    on_fill()
            finish()
        if batch:
            decoder.decode()
            for number in made:
                made[number] += 1
            passed("decode", len(batch), len(batch))
            finish()
    return served


def requests_for(count: int, examples: int, fewest: int, most: int) -> list[Request]:
    """``count`` requests cycling through ``examples``; each asks for between ``fewest`` and ``most``
    output tokens, spread evenly over the queue in a fixed shuffled order (every run alike)."""
    import random

    span = most - fewest + 1
    lengths = [fewest + (i * span) // count for i in range(count)] if span > 1 else [most] * count
    random.Random(0).shuffle(lengths)
    return [Request(number, number % examples, lengths[number]) for number in range(count)]


# -- the passes on a causal LM ----------------------------------------------------------------------------
def _layers(cache: Any) -> list[Any]:
    """The cache's layers holding ``keys`` and ``values`` (transformers 4.5x and later), or ServingError."""
    layers = getattr(cache, "layers", None)
    if not layers or any(getattr(layer, "is_sliding", False) or not hasattr(layer, "keys") for layer in layers):
        raise ServingError(f"the model's key/value cache ({type(cache).__name__}) is not one plain cache per layer: "
                           "GenerationCase(concurrency=...) serves decoder-only models with transformers' "
                           "DynamicCache; leave concurrency out for this model")
    return list(layers)


def _pad_left(tensor: Any, width: int, dim: int) -> Any:
    import torch

    missing = width - tensor.shape[dim]
    if missing <= 0:
        return tensor
    shape = list(tensor.shape)
    shape[dim] = missing
    return torch.cat([tensor.new_zeros(shape), tensor], dim=dim)


class CacheBatch:
    """The batch's sequences on a causal LM (module docstring). ``prompt(request)`` gives a request's
    prompt tokens; :attr:`tokens` collects what each request made, by its number."""

    def __init__(self, model: Any, prompt: Callable[[Request], list[int]], pad_token_id: int) -> None:
        self.model = model
        self.prompt = prompt
        self.pad = pad_token_id
        self.rows: list[Request] = []
        self.tokens: dict[int, list[int]] = {}
        self._cache: Any = None
        self._mask: Any = None  # (rows, cache length): 1 where a row's own token is cached
        self._last: Any = None  # (rows, 1): each row's latest token, the next decode pass's input

    def admit(self, requests: Sequence[Request]) -> None:
        import torch

        from .causal import prefill

        prompts = [self.prompt(request) for request in requests]
        width = max(len(p) for p in prompts)
        ids = torch.full((len(prompts), width), self.pad, dtype=torch.long)
        mask = torch.zeros((len(prompts), width), dtype=torch.long)
        for row, tokens in enumerate(prompts):
            ids[row, width - len(tokens):] = torch.tensor(tokens)
            mask[row, width - len(tokens):] = 1
        device = self.model.device
        state = prefill(self.model, {"input_ids": ids.to(device), "attention_mask": mask.to(device)})
        for request, token in zip(requests, state.first[:, 0].tolist()):
            self.tokens[request.number] = [token]
        if self._cache is None:
            _layers(state.cache)
            self._cache, self._mask, self._last = state.cache, state.mask, state.first
        else:  # join the newcomers' rows to the batch's, both padded on the left to one length
            length = max(self._mask.shape[1], width)
            for ours, theirs in zip(_layers(self._cache), _layers(state.cache)):
                ours.keys = torch.cat([_pad_left(ours.keys, length, -2), _pad_left(theirs.keys, length, -2)])
                ours.values = torch.cat([_pad_left(ours.values, length, -2), _pad_left(theirs.values, length, -2)])
            self._mask = torch.cat([_pad_left(self._mask, length, 1), _pad_left(state.mask, length, 1)])
            self._last = torch.cat([self._last, state.first])
        self.rows += list(requests)

    def decode(self) -> None:
        from .causal import cache_keyword

        position = self._mask.sum(-1, keepdim=True)  # each row's own tokens so far: the next one's position
        self._mask = _append_one(self._mask)
        out = self.model(input_ids=self._last, attention_mask=self._mask, position_ids=position, use_cache=True,
                         **{cache_keyword(self.model): self._cache})
        self._last = out.logits[:, -1].argmax(-1, keepdim=True)
        for request, token in zip(self.rows, self._last[:, 0].tolist()):
            self.tokens[request.number].append(token)

    def release(self, requests: Sequence[Request]) -> None:
        gone = {request.number for request in requests}
        keep = [row for row, request in enumerate(self.rows) if request.number not in gone]
        self.rows = [self.rows[row] for row in keep]
        if not keep:
            self._cache = self._mask = self._last = None
            return
        mask = self._mask[keep]
        # Columns no remaining row uses (padding, or the finished rows' tokens) are cut from the left.
        start = int((mask.sum(0) > 0).nonzero()[0])
        for layer in _layers(self._cache):
            layer.keys, layer.values = layer.keys[keep, :, start:], layer.values[keep, :, start:]
        self._mask, self._last = mask[:, start:], self._last[keep]


def _append_one(mask: Any) -> Any:
    import torch

    return torch.cat([mask, mask.new_ones((mask.shape[0], 1))], dim=1)
