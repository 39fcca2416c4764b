"""Decoder-only models: prefill and decode apart, text-generation and zero-shot classification cases,
LoRA fine-tunes. Real transformers Llama models built from tiny configs; the plugin-level tests run a
pytest subprocess, as tests/test_cases.py does (whose session helper they use)."""

from __future__ import annotations

import json

import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

from test_cases import run_session  # noqa: E402  (tests/ is on sys.path under pytest's default import mode)

from pytest_energy.cases import FineTuneCase, GenerationCase, get_task  # noqa: E402

PROMPTS = [{"prompt": f"the weather in {town} is {sky}", "continuation": f"expect {sky} skies in {town}"}
           for town in ("alderley", "brookfield", "carrow") for sky in ("grey", "clear")]


def tiny_llama(texts, layers=2):
    from pytest_energy.cases.generation.causal import causal_tokenizer

    tokenizer = causal_tokenizer(iter(texts), 200)
    config = transformers.LlamaConfig(hidden_size=32, intermediate_size=64, num_hidden_layers=layers,
                                      num_attention_heads=4, num_key_value_heads=2, vocab_size=len(tokenizer),
                                      max_position_embeddings=128, pad_token_id=tokenizer.pad_token_id,
                                      bos_token_id=tokenizer.eos_token_id, eos_token_id=tokenizer.eos_token_id)
    torch.manual_seed(0)
    return transformers.LlamaForCausalLM(config).eval(), tokenizer


@pytest.fixture(scope="module")
def llama():
    return tiny_llama([t for row in PROMPTS for t in row.values()])


def test_prefill_then_decode_is_greedy_generation_of_exactly_n_tokens(llama):
    from pytest_energy.cases.generation.causal import generate_fixed

    model, tokenizer = llama
    inputs = tokenizer([PROMPTS[0]["prompt"], PROMPTS[3]["prompt"] + " and more words"], return_tensors="pt",
                       padding=True)
    with torch.inference_mode():
        ours = generate_fixed(model, inputs, 9)
        theirs = model.generate(**inputs, max_new_tokens=9, min_new_tokens=9, do_sample=False,
                                pad_token_id=tokenizer.pad_token_id)[:, inputs["input_ids"].shape[1]:]
    assert ours.shape == (2, 9)
    assert torch.equal(ours, theirs)


def test_decode_crops_the_cache_so_one_prefill_serves_every_repeat(llama):
    from pytest_energy.cases.generation.causal import decode, prefill

    model, tokenizer = llama
    inputs = tokenizer([PROMPTS[1]["prompt"]], return_tensors="pt")
    with torch.inference_mode():
        state = prefill(model, inputs)
        first, second = decode(model, state, 6), decode(model, state, 6)
    assert state.cache.get_seq_length() == inputs["input_ids"].shape[1]
    assert torch.equal(first, second)


def test_zero_shot_scores_are_each_labels_log_likelihood(llama):
    from pytest_energy.cases.generation.causal import label_batch, label_scores

    model, tokenizer = llama
    batch = label_batch(tokenizer, ["the weather in carrow is"], ["grey", "clear skies"], 64)
    with torch.inference_mode():
        scores = label_scores(model, batch, 2)[0]
        for column, words in enumerate(["grey", "clear skies"]):
            head = tokenizer("the weather in carrow is")["input_ids"]
            tail = tokenizer(" " + words, add_special_tokens=False)["input_ids"]
            logits = model(input_ids=torch.tensor([head + tail])).logits.log_softmax(-1)[0]
            expected = sum(float(logits[len(head) - 1 + k, t]) for k, t in enumerate(tail))
            assert float(scores[column]) == pytest.approx(expected, abs=1e-4)


def test_lora_trains_only_adapters_and_says_so(llama, monkeypatch):
    from pytest_energy.cases import lora

    model, _ = tiny_llama(["a b c"])
    wrapped, facts = lora.adapt(model, {"r": 4, "target_modules": ["q_proj", "v_proj"]})
    assert facts["method"] == "LoRA" and facts["lora"]["task_type"] == "CAUSAL_LM"
    assert 0 < facts["parameters_trainable"] == lora.trainable(wrapped) < sum(p.numel() for p in wrapped.parameters())
    full, facts = lora.adapt(tiny_llama(["a b c"])[0], None)
    assert facts["method"] == "full fine-tune" and facts["parameters_trainable"] == lora.trainable(full)
    monkeypatch.setattr(lora.importlib.util, "find_spec", lambda name: None)
    _, facts = lora.adapt(tiny_llama(["a b c"])[0], {"r": 4})
    assert facts["method"] == "full fine-tune" and "peft is not installed" in facts["reason"]


def test_generation_case_fields_are_checked_at_declaration():
    with pytest.raises(ValueError, match="max_new_tokens must be >= 2"):
        GenerationCase(model="m", dataset=PROMPTS, max_new_tokens=1)
    with pytest.raises(ValueError, match="metric 'accuracy' does not apply"):
        GenerationCase(model="m", dataset=PROMPTS, metrics=["accuracy"])
    assert get_task("zero-shot-classification").extra["labels"] == {0: "negative", 1: "positive"}
    with pytest.raises(ValueError, match="lora must be"):
        FineTuneCase(model="m", task="text-generation", train=PROMPTS, eval=PROMPTS, steps=1, lora={"r": 0})


MODELS = '''
import torch, transformers
from pytest_energy.cases.generation.causal import causal_tokenizer

TEXTS = ["the weather in alderley is grey", "expect grey skies in alderley", "review: a fine film answer: positive",
         "is this review positive or negative? negative"]


def llama():
    tokenizer = causal_tokenizer(iter(TEXTS), 200)
    config = transformers.LlamaConfig(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
                                      num_key_value_heads=2, vocab_size=len(tokenizer), max_position_embeddings=128,
                                      pad_token_id=tokenizer.pad_token_id, bos_token_id=tokenizer.eos_token_id,
                                      eos_token_id=tokenizer.eos_token_id)
    torch.manual_seed(0)
    return transformers.LlamaForCausalLM(config), tokenizer
'''

CASES = '''
from models import llama
from pytest_energy.cases import Fallback, GenerationCase, InferenceCase

PROMPTS = [{"prompt": "the weather in alderley is grey", "continuation": "expect grey skies in alderley"},
           {"prompt": "the weather in alderley is", "continuation": "grey"}]
REVIEWS = [{"text": "a fine film", "label": 1}, {"text": "an awful film", "label": 0}]

generation = GenerationCase(model=llama, dataset=PROMPTS, inferences=8, max_new_tokens=5, rounds=2, warmup=1)
zero_shot = InferenceCase(model=llama, task="zero-shot-classification", dataset=REVIEWS, inferences=8, rounds=2,
                          warmup=1)
# More prompts than calls: rounds that fill the window go on past the case's 3 calls (warm-up included).
many_prompts = GenerationCase(model=llama, dataset=PROMPTS * 6, inferences=2, max_new_tokens=2, rounds=1, warmup=1)
stray = GenerationCase(model="no-such-org/no-such-llm", dataset=PROMPTS)
# 5 queries in batches of 2 after a warm-up batch: the third call's batch is cut to its first query.
cut = GenerationCase(model=llama, dataset=PROMPTS * 3, inferences=5, batch_size=2, max_new_tokens=3, rounds=2, warmup=1)
trained = GenerationCase(model="no-such-org/no-such-llm", dataset=PROMPTS, inferences=4, max_new_tokens=4, rounds=2,
                         warmup=0, fallback=Fallback("llama", PROMPTS * 4, steps=20, batch_size=4, learning_rate=1e-2))
'''


# The session measures 0.05 s windows, but the case whose rounds must go on past its calls to fill the
# window gets 1 s, as a user's marker gives it: its 3 calls take far less on any machine.
LONG_WINDOW = """
import pytest


def pytest_collection_modifyitems(items):
    for item in items:
        if item.name == "many_prompts":
            item.add_marker(pytest.mark.energy(min_window=1.0))
"""


@pytest.fixture(scope="module")
def measured(tmp_path_factory):
    folder = tmp_path_factory.mktemp("generation")
    session = run_session(folder, {"models.py": MODELS, "test_generation_here.py": CASES, "conftest.py": LONG_WINDOW},
                          "--energy",
                          "--energy-json", "out.json", "--energy-min-window", "0.05", env={"HF_ENDPOINT": "http://10.255.255.1"})
    # Two cases make [prefill] and [decode] records: key them by test and label.
    session.records = {"::".join(r["name"].split("::")[-2:]): r
                       for r in json.loads((folder / "out.json").read_text())["records"]}
    return session


@pytest.mark.slow
def test_generation_records_prefill_and_decode_apart(measured):
    assert measured.outcomes["generation"] == "passed", measured.lines[-30:]
    prefill, decode = measured.records["generation::prefill"], measured.records["generation::decode"]
    for record, phase in ((prefill, "prefill"), (decode, "decode")):
        assert record["label"] == phase and record["unit"] == "inference"
        assert record["case"]["generation"]["phase"] == phase and record["case"]["kind"] == "generation"
        assert record["proxies"]["flops_per_inference"] > 0
    # The decode record holds the prefill record's energy per query: it states the whole query.
    assert decode["case"]["generation"]["prefill_joules_per_query"] == prefill["per_iteration_gross_joules"]
    assert "generation" not in prefill["figures"]
    assert decode["figures"]["generation"]["joules_per_1000_queries"] == pytest.approx(
        1000 * (prefill["per_iteration_gross_joules"] + decode["per_iteration_gross_joules"]))
    # Eight queries of five tokens: prefill writes the first of each, decode the other four.
    assert prefill["proxies"]["tokens_out"] == 8 and decode["proxies"]["tokens_out"] == 32
    assert decode["proxies"]["tokens_in"] == 0 and prefill["proxies"]["tokens_in"] > 0
    summary = decode["figures"]["generation"]
    assert summary["decode_joules_per_token"] == pytest.approx(decode["per_iteration_gross_joules"] / 4)
    assert summary["joules_per_generated_token"] == pytest.approx(summary["joules_per_1000_queries"] / 1000 / 5)
    assert decode["figures"]["joules_per_output_token"] == pytest.approx(summary["decode_joules_per_token"])
    assert "joules_per_output_token" not in prefill["figures"]
    assert decode["quality"]["rougeL"]["examples"] == 2
    # The terminal report prints the whole query under the decode row.
    assert any("J + decode" in line and "J per generated token" in line for line in measured.lines)


def test_rounds_filling_the_window_cycle_the_prefilled_prompts_and_score_only_the_cases_calls(measured):
    assert measured.outcomes["many_prompts"] == "passed", measured.lines[-30:]
    for phase in ("prefill", "decode"):
        record = measured.records[f"many_prompts::{phase}"]
        assert record["case"]["inferences"] == 2 and record["figures"]["inferences_measured"] > 2
        assert all(r["seconds"] >= 1.0 for r in record["rounds"])  # the marker's window, over the option's
        assert record["proxies"]["tokens_out"] == 2  # 2 queries: 1 token each in prefill, 1 more in decode
        # The three calls' prompts are scored, whatever number of extra calls this machine's speed made.
        assert record["quality"]["rougeL"]["examples"] == 3


def test_a_generation_case_counts_exactly_its_queries(measured):
    assert measured.outcomes["cut"] == "passed", measured.lines[-30:]
    prefill, decode = measured.records["cut::prefill"], measured.records["cut::decode"]
    assert prefill["case"]["inferences"] == decode["case"]["inferences"] == 5
    assert prefill["proxies"]["tokens_out"] == 5 and decode["proxies"]["tokens_out"] == 5 * 2
    assert decode["figures"]["inferences_measured"] % 2 == 0  # every measured call decodes a whole batch
    assert decode["quality"]["rougeL"]["examples"] == 6  # the warm-up's 2 and the case's 5 (one twice)


def test_zero_shot_classification_is_an_inference_case_with_accuracy(measured):
    assert measured.outcomes["zero_shot"] == "passed", measured.lines[-30:]
    record = next(r for r in measured.records.values() if r["case"]["task"] == "zero-shot-classification")
    assert record["quality"]["accuracy"]["examples"] == 2
    # Each review is scored against both label words: two rows per inference.
    assert record["proxies"]["tokens_in_per_inference"] > 2 * 3


def test_a_stray_hub_llm_offline_fails_fast_and_a_fallback_trains_instead(measured):
    assert measured.outcomes["stray"] == "failed"
    assert measured.seconds["stray"] < 10
    assert any("model 'no-such-org/no-such-llm' cannot be loaded: HF_HUB_OFFLINE is set" in line
               for line in measured.errors("stray"))
    assert measured.outcomes["trained"] == "passed", measured.lines[-30:]
    model = measured.records["trained::decode"]["model"]
    assert model["source"] == "fallback" and model["ran"].startswith("fallback llama (decoder-only")


PROFILED = '''
from models import llama
from pytest_energy.cases import GenerationCase

PROMPTS = [{"prompt": "the weather in alderley is grey", "continuation": "expect grey skies in alderley"}]

generation = GenerationCase(model=llama, dataset=PROMPTS * 4, inferences=8, batch_size=4, max_new_tokens=3,
                            rounds=3, warmup=1)
served = GenerationCase(model=llama, dataset=PROMPTS * 4, inferences=4, max_new_tokens=3, concurrency=[2])
'''

SMALL_PROFILE = '''
from pytest_energy.core import profiles

# the protocol as it is, with counts a test can run: 3 queries x 2 runs
profiles.PROFILES["ai-energy-score"] = profiles.PROFILES["ai-energy-score"].with_counts(queries=3, runs=2)
'''


@pytest.mark.slow
def test_a_generation_case_runs_under_the_profile_and_says_so_and_a_served_one_is_skipped(tmp_path):
    session = run_session(tmp_path, {"models.py": MODELS, "conftest.py": SMALL_PROFILE, "test_profiled.py": PROFILED},
                          "--energy", "--energy-json", "out.json", "--energy-min-window", "0.01",
                          "--energy-profile", "ai-energy-score")
    assert session.outcomes == {"generation": "passed", "served": "skipped"}, session.lines[-30:]
    assert any("a case served under load is measured with the default profile" in line for line in session.lines)
    records = {r["name"].rsplit("::", 1)[-1]: r for r in json.loads((tmp_path / "out.json").read_text())["records"]}
    for phase in ("prefill", "decode"):
        case = records[phase]["case"]
        assert (case["profile"], case["batch_size"], case["rounds"], case["inferences"]) == ("ai-energy-score", 1, 2, 6)
        assert "float16" in case["profile_note"]  # text generation's precision, which a CPU cannot follow
    assert records["decode"]["figures"]["profile"]["name"] == "ai-energy-score"
