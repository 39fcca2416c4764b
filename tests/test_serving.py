"""Generation served under load (``GenerationCase(concurrency=...)``): the continuous-batching scheduler,
the steady-state window the meter measures (a fake clock and a scripted batch), the batch on a real tiny
Llama, and a pytest session giving one record per concurrency level."""

from __future__ import annotations

import json
import types

import pytest

from pytest_energy.cases.generation.serving import Request, Unrun, serve
from pytest_energy.core.facts import CaseFacts, ServingFacts, case_from_dict
from pytest_energy.core.figures import serving_figures
from pytest_energy.core.record import Record
from pytest_energy.measure import meter as meter_module
from pytest_energy.measure.meter import END, START, Meter, StepRounds
from pytest_energy.measure.sources.base import Channel
from pytest_energy.testing.records import CARBON

# Concurrency 2, four requests asking for 2, 4, 3 and 2 tokens. Pass by pass (tokens made, sequences busy):
#   1 prefill A, B (2, 2): the batch is full        -> the steady state starts after pass 1
#   2 decode (2, 2): A has its 2 tokens and leaves; C, D wait
#   3 prefill C (1, 2)
#   4 decode (2, 2)
#   5 decode (2, 2): B and C leave, only D waits    -> the batch starts to drain after pass 5
#   6 prefill D (1, 1)
#   7 decode (1, 1): D leaves
LENGTHS = [2, 4, 3, 2]
SCRIPT = [("prefill", 2, 2), ("decode", 2, 2), ("prefill", 1, 2), ("decode", 2, 2), ("decode", 2, 2),
          ("prefill", 1, 1), ("decode", 1, 1)]


def requests(lengths=LENGTHS):
    return [Request(number, number, tokens) for number, tokens in enumerate(lengths)]


class Script:
    """A decoder that runs no model: each pass takes a second of a fake clock and ``3 J x sequences + 1 J``
    of a fake channel's energy, so every window's joules are known."""

    def __init__(self, clock, channel):
        self.clock, self.channel = clock, channel
        self.busy = 0
        self.admitted, self.released = [], []

    def _pass(self, sequences):
        self.clock.now += 1.0
        self.channel.joules += 3.0 * sequences + 1.0

    def admit(self, newcomers):
        self.admitted.append([r.number for r in newcomers])
        self.busy += len(newcomers)
        self._pass(len(newcomers))

    def decode(self):
        self._pass(self.busy)

    def release(self, finished):
        self.released.append(sorted(r.number for r in finished))
        self.busy -= len(finished)


class FakeChannel(Channel):
    kind, method, device = "gpu", "counter", "gpu:0"

    def __init__(self):
        self.joules = 0.0

    def read(self):
        return self.joules


def test_the_scheduler_refills_a_freed_slot_at_the_next_pass_and_marks_fill_and_drain():
    clock, channel = types.SimpleNamespace(now=0.0), FakeChannel()
    script = Script(clock, channel)
    marks = []
    served = serve(script, requests(), 2, on_pass=lambda p: marks.append(("pass", p.kind, p.tokens)),
                   on_fill=lambda: marks.append("fill"), on_drain=lambda: marks.append("drain"))
    assert [(p.kind, p.tokens, p.busy) for p in served.passes] == SCRIPT
    assert script.admitted == [[0, 1], [2], [3]] and script.released == [[0], [1, 2], [3]]
    assert (served.fill, served.drain) == (1, 5)
    assert served.output_tokens == sum(LENGTHS) == 11
    assert served.steady_tokens == 2 + 1 + 2 + 2  # passes 2 to 5
    # Each mark follows its pass: the fill after pass 1, the drain after pass 5.
    assert marks.index("fill") == 1 and marks.index("drain") == 6


def test_one_request_at_a_time_is_steady_from_its_first_token_to_the_last():
    served = serve(Script(types.SimpleNamespace(now=0.0), FakeChannel()), requests([3, 2]), 1)
    assert [p.kind for p in served.passes] == ["prefill", "decode", "decode", "prefill", "decode"]
    assert (served.fill, served.drain) == (1, 5) and served.steady_tokens == 4


def test_the_steady_state_is_a_window_the_meter_measures_between_the_fill_and_the_drain(monkeypatch):
    clock, channel = types.SimpleNamespace(now=100.0), FakeChannel()
    # The meter reads the time at each edge: the fake clock's, moved on by the scripted passes.
    monkeypatch.setattr(meter_module, "time", types.SimpleNamespace(perf_counter=lambda: clock.now))
    meter = Meter([channel], synchronize=lambda: None)
    plan = serve(Unrun(), requests(), 2)  # the schedule, known before the run
    marks = StepRounds(meter, meter.edge(START), planned=plan.output_tokens, rounds=2, warmup=0, min_window=0.0,
                       marked=True)
    serve(Script(clock, channel), requests(), 2, on_pass=lambda p: marks.step(p.tokens),
          on_fill=lambda: marks.open_rounds(plan.steady_tokens), on_drain=marks.close_rounds)
    taken = marks.taken(meter.edge(END), 1, None)
    # The rounds run from the end of pass 1 (the batch full) to the end of pass 5 (it starts to drain).
    assert taken.edges[0].at == 101.0 and taken.edges[-1].at == 105.0 and taken.drain_end.at == 107.0
    assert taken.iterations == [3, 4]  # two rounds: passes 2-3 and 4-5
    assert taken.warmup_iterations == 2 and taken.drain_iterations == 2
    measured = meter.account(taken)
    # Passes 2-5 ran 2, 1 (a prefill of C), 2 and 2 sequences: 7 + 4 + 7 + 7 = 25 J; the ramp 7 J, the drain
    # 4 + 4 J.
    assert sum(r.gross_joules for r in measured.rounds) == pytest.approx(25.0)
    assert measured.warmup.gross_joules == pytest.approx(7.0) and measured.drain.gross_joules == pytest.approx(8.0)
    assert measured.drain.iterations == 2 and measured.drain.seconds == pytest.approx(2.0)

    facts = ServingFacts(2, 4, (2, 4), plan.output_tokens, len(plan.passes), plan.fill, plan.drain)
    record = Record.from_rounds(measured.rounds, measured.components, carbon=CARBON, warmup_round=measured.warmup,
                                drain_round=measured.drain, name="t::concurrency=2", nodeid="t", form="block",
                                warmup_iterations=taken.warmup_iterations, fingerprint={}, timestamp="",
                                unit="output token",
                                case=CaseFacts("generation", "text-generation", 2, 2, 4, True, serving=facts))
    figures = serving_figures(record)
    assert figures.steady_joules_per_output_token == pytest.approx(25.0 / 7)  # window joules / its tokens
    assert figures.steady_tokens == 7 and figures.steady_seconds == pytest.approx(4.0)
    assert figures.steady_tokens_per_second == pytest.approx(7 / 4)
    assert figures.whole_run_joules_per_output_token == pytest.approx((7.0 + 25.0 + 8.0) / 11)
    assert record.total_gross_joules == pytest.approx(40.0) and record.duration_seconds == pytest.approx(7.0)
    # The record reads back from its JSON with its drain window and serving facts.
    again = Record.from_dict(json.loads(json.dumps(record.to_dict())))
    assert again.drain_round == record.drain_round and again.case.serving == facts
    assert record.to_dict()["figures"]["serving"]["steady_joules_per_output_token"] == pytest.approx(25.0 / 7)


def test_a_block_that_closes_its_rounds_at_its_last_step_has_no_drain_window(monkeypatch):
    clock, channel = types.SimpleNamespace(now=0.0), FakeChannel()
    monkeypatch.setattr(meter_module, "time", types.SimpleNamespace(perf_counter=lambda: clock.now))
    meter = Meter([channel], synchronize=lambda: None)
    marks = StepRounds(meter, meter.edge(START), planned=5, rounds=1, warmup=0, min_window=0.0, marked=True)
    serve(Script(clock, channel), requests([3, 2]), 1, on_pass=lambda p: marks.step(p.tokens),
          on_fill=lambda: marks.open_rounds(4), on_drain=marks.close_rounds)
    taken = marks.taken(meter.edge(END), 1, None)
    assert taken.drain_end is None and taken.iterations == [4] and taken.edges[-1].at == 5.0


def test_serving_facts_read_back_from_json():
    facts = CaseFacts("generation", "text-generation", 8, 3, 64, True,
                      serving=ServingFacts(8, 64, (4, 16), 640, 90, 1, 80, "continuous"))
    import dataclasses

    assert case_from_dict(json.loads(json.dumps(dataclasses.asdict(facts)))) == facts


def test_served_declarations_are_checked():
    from pytest_energy.cases import GenerationCase

    rows = [{"prompt": "a", "continuation": "b"}]
    with pytest.raises(ValueError, match="concurrency"):
        GenerationCase(model="m", dataset=rows, concurrency=[0, 4])
    with pytest.raises(ValueError, match="concurrency"):
        GenerationCase(model="m", dataset=rows, concurrency=[4, 4])
    with pytest.raises(ValueError, match="twice its concurrency"):
        GenerationCase(model="m", dataset=rows, inferences=10, concurrency=[1, 8])
    with pytest.raises(ValueError, match="min_new_tokens"):
        GenerationCase(model="m", dataset=rows, max_new_tokens=4, min_new_tokens=5, concurrency=[1])


def test_a_cache_of_another_kind_is_refused_in_one_line():
    from pytest_energy.cases.generation.serving import ServingError, _layers

    sliding = types.SimpleNamespace(layers=[types.SimpleNamespace(is_sliding=True, keys=None, values=None)])
    with pytest.raises(ServingError, match="leave concurrency out"):
        _layers(sliding)


# -- on a real model -------------------------------------------------------------------------------------
torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")


def test_the_batch_writes_what_each_request_alone_would_and_keeps_its_cache_short():
    from test_generation import PROMPTS, tiny_llama

    from pytest_energy.cases.generation.causal import generate_fixed
    from pytest_energy.cases.generation.serving import CacheBatch, requests_for

    model, tokenizer = tiny_llama([t for row in PROMPTS for t in row.values()])
    prompts = [tokenizer(row["prompt"] + " and" * (i % 3))["input_ids"] for i, row in enumerate(PROMPTS)]
    queue = requests_for(10, len(PROMPTS), 3, 9)
    assert sorted({r.new_tokens for r in queue}) == [3, 4, 5, 6, 7, 8, 9]  # spread over the range
    lengths = []

    class Watched(CacheBatch):
        def decode(self):
            super().decode()
            lengths.append(self._cache.get_seq_length())

    with torch.inference_mode():
        batch = Watched(model, lambda r: prompts[r.index], tokenizer.pad_token_id)
        served = serve(batch, queue, 4)
        for request in queue:
            alone = generate_fixed(model, {"input_ids": torch.tensor([prompts[request.index]]),
                                           "attention_mask": torch.ones(1, len(prompts[request.index]),
                                                                        dtype=torch.long)}, request.new_tokens)
            assert batch.tokens[request.number] == alone[0].tolist(), request
    assert served.output_tokens == sum(r.new_tokens for r in queue)
    # Finished rows' columns are cut: the cache never holds more than the longest prompt and answer.
    assert max(lengths) <= max(len(p) for p in prompts) + 9


CASES = '''
from models import llama
from pytest_energy.cases import GenerationCase

PROMPTS = [{"prompt": "the weather in alderley is grey", "continuation": "expect grey skies in alderley"},
           {"prompt": "the weather in alderley is", "continuation": "grey"}]
served = GenerationCase(model=llama, dataset=PROMPTS, inferences=12, max_new_tokens=8, min_new_tokens=3,
                        concurrency=[1, 4], rounds=2, warmup=1)
'''


@pytest.mark.slow
def test_a_served_case_gives_one_record_per_level_with_its_steady_state(tmp_path):
    from test_cases import run_session
    from test_generation import MODELS

    from pytest_energy.cases.generation.serving import Unrun, requests_for

    session = run_session(tmp_path, {"models.py": MODELS, "test_served_here.py": CASES}, "--energy",
                          "--energy-json", "out.json", "--energy-min-window", "0.05",
                          env={"HF_ENDPOINT": "http://10.255.255.1"})
    assert session.outcomes["served"] == "passed", session.lines[-30:]
    records = {r["label"]: r for r in json.loads((tmp_path / "out.json").read_text())["records"]}
    assert sorted(records) == ["concurrency=1", "concurrency=4"]
    queue = requests_for(12, 2, 3, 8)
    for level in (1, 4):
        record = records[f"concurrency={level}"]
        plan = serve(Unrun(), queue, level)
        serving, figures = record["case"]["serving"], record["figures"]["serving"]
        assert record["unit"] == "output token" and record["case"]["batch_size"] == level
        assert serving["concurrency"] == level and serving["requests"] == 12 and serving["new_tokens"] == [3, 8]
        assert (serving["fill_pass"], serving["drain_pass"]) == (plan.fill, plan.drain)
        assert "ML.ENERGY" in serving["steady_state"] and "continuous batching" in serving["batching"]
        # The rounds hold the steady state's tokens; the ramp and the drain are windows of their own.
        assert record["iterations"] == figures["steady_tokens"] == plan.steady_tokens
        drained = record["drain_round"]["iterations"] if record["drain_round"] else 0
        assert record["warmup_iterations"] + record["iterations"] + drained == plan.output_tokens == 66
        assert figures["steady_joules_per_output_token"] == pytest.approx(record["per_iteration_gross_joules"])
        assert figures["steady_tokens_per_second"] == pytest.approx(plan.steady_tokens / figures["steady_seconds"])
        assert figures["whole_run_joules_per_output_token"] == pytest.approx(record["total_gross_joules"] / 66)
        assert record["proxies"]["tokens_out"] == 66
        assert record["quality"]["rougeL"]["examples"] == 2
    assert records["concurrency=4"]["drain_round"]["iterations"] > 0  # requests of unequal length drain


def test_without_energy_a_served_case_serves_once_and_checks_its_quality_budget():
    from test_generation import PROMPTS, tiny_llama

    from pytest_energy.cases import GenerationCase
    from pytest_energy.cases.base import QualityBudgetError

    texts = [t for row in PROMPTS for t in row.values()]
    unmeasured = types.SimpleNamespace(enabled=False, profile=None)  # the fixture without --energy
    for budget, passes in ((0.0, True), (0.99, False)):
        case = GenerationCase(model=lambda: tiny_llama(texts), dataset=PROMPTS, inferences=8, max_new_tokens=4,
                              concurrency=[1, 4], quality={"rougeL": budget})
        [(name, run)] = case.tests("served")
        assert name == "served"
        if passes:
            run(unmeasured)
        else:
            with pytest.raises(QualityBudgetError, match="rougeL"):
                run(unmeasured)
