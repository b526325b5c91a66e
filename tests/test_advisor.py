"""The advisor as tables: which method wins, which gate fires, what combines."""

import pytest

from adaptkit.methods.catalogue import METHOD_IDS
from adaptkit.advisor.engine import advise
from adaptkit.advisor.profile import build_profile

BASE = {"task": "classification", "goal": "behavior", "weight_access": "open"}


def run(**answers):
    return advise(build_profile({**BASE, **answers}))


# (case, answers, expected top method)
TOP_CASES = [
    ("no data, closed API: prompt it", dict(weight_access="closed_api"), "prompt_engineering"),
    ("20 examples on a closed API: few-shot", dict(weight_access="closed_api", labeled_examples=20), "in_context_learning"),
    ("2k tickets, 7B on 24 GB: LoRA", dict(model_params_b=7, gpu_vram_gb=24, num_gpus=1, labeled_examples=2000), "lora_adapters"),
    ("vendor tuning with 2k examples: vendor SFT (LoRA)", dict(weight_access="closed_api_ft", labeled_examples=2000), "lora_adapters"),
    ("docs that change weekly, with citations: RAG",
     dict(task="qa", goal="knowledge", weight_access="closed_api", knowledge_changes_often=True, needs_citations=True), "rag"),
    ("refund agent: tool use", dict(task="agent", goal="actions", weight_access="closed_api", needs_actions_or_live_data=True), "tool_use"),
    ("live prices in answers: tool use", dict(task="qa", goal="knowledge", weight_access="closed_api", needs_actions_or_live_data=True), "tool_use"),
    ("100 tenants on a 13B model: soft prompts",
     dict(model_params_b=13, gpu_vram_gb=80, num_gpus=2, labeled_examples=1000, tasks_to_serve=100), "prefix_prompt_tuning"),
    ("300 examples on a 0.77B generator: prefix-tuning",
     dict(task="generation", model_params_b=0.77, gpu_vram_gb=16, num_gpus=1, labeled_examples=300), "prefix_prompt_tuning"),
    ("base model with 5k instructions: instruction tuning",
     dict(task="chat", goal="instruction_following", model_params_b=1, is_base_model=True, gpu_vram_gb=80, num_gpus=1, labeled_examples=5000),
     "instruction_tuning"),
    ("instruct model, instruction following: prompts", dict(task="chat", goal="instruction_following", model_params_b=8,
     gpu_vram_gb=24, num_gpus=1, labeled_examples=50), "prompt_engineering"),
    ("legal CPT on 1B tokens with 8 A100s: full fine-tuning",
     dict(task="generation", goal="domain_adaptation", model_params_b=7, gpu_vram_gb=80, num_gpus=8, labeled_examples=20000,
          unlabeled_corpus_tokens=1_000_000_000), "full_finetuning"),
    ("0.1B classifier with 50k labels: full fine-tuning",
     dict(model_params_b=0.11, gpu_vram_gb=16, num_gpus=1, labeled_examples=50000), "full_finetuning"),
    ("domain shift, modest data: LoRA", dict(goal="domain_adaptation", model_params_b=7, gpu_vram_gb=24, num_gpus=1,
     labeled_examples=3000), "lora_adapters"),
    ("2k preference pairs on 24 GB: DPO", dict(task="chat", goal="alignment", model_params_b=7, gpu_vram_gb=24, num_gpus=1,
     preference_pairs=2000), "dpo"),
    ("vendor preference tuning: DPO", dict(task="chat", goal="alignment", weight_access="closed_api_ft",
     vendor_offers_preference_tuning=True, preference_pairs=3000), "dpo"),
    ("100k comparisons, big budget, on-policy: RLHF",
     dict(task="chat", goal="alignment", model_params_b=7, gpu_vram_gb=80, num_gpus=8, preference_pairs=100000,
          budget_usd=500000, online_labeling=True, labeled_examples=20000), "rlhf"),
    ("few pairs: prompt the alignment", dict(task="chat", goal="alignment", model_params_b=7, gpu_vram_gb=24, num_gpus=1,
     preference_pairs=100), "prompt_engineering"),
    ("small corpus, low volume: docs in the prompt",
     dict(task="qa", goal="knowledge", weight_access="closed_api", corpus_tokens=50000), "prompt_engineering"),
    ("big stable corpus: RAG", dict(task="qa", goal="knowledge", weight_access="closed_api", corpus_tokens=50_000_000), "rag"),
]


@pytest.mark.parametrize("case, answers, expected", TOP_CASES, ids=[c[0] for c in TOP_CASES])
def test_top_method(case, answers, expected):
    advice = run(**answers)
    assert advice.recommendations, f"{case}: nothing recommended; ruled out {advice.ruled_out}"
    assert advice.recommendations[0].method == expected, [(r.method, r.score) for r in advice.recommendations]


def test_every_method_wins_some_case():
    assert {case[2] for case in TOP_CASES} == set(METHOD_IDS)


# (gate id, answers, methods it must rule out)
GATE_CASES = [
    ("G1-closed", dict(weight_access="closed_api", labeled_examples=5000, preference_pairs=5000),
     {"full_finetuning", "instruction_tuning", "rlhf", "dpo", "lora_adapters", "prefix_prompt_tuning"}),
    ("G1-vendor", dict(weight_access="closed_api_ft", labeled_examples=5000), {"full_finetuning", "instruction_tuning", "prefix_prompt_tuning"}),
    ("G1-vendor-pref", dict(weight_access="closed_api_ft", goal="alignment", preference_pairs=5000), {"dpo"}),
    ("G2-memory", dict(model_params_b=70, gpu_vram_gb=24, num_gpus=1, labeled_examples=5000),
     {"full_finetuning", "instruction_tuning", "lora_adapters", "prefix_prompt_tuning"}),
    ("G3-no-labels", dict(model_params_b=7, gpu_vram_gb=80, num_gpus=1), {"instruction_tuning", "prefix_prompt_tuning"}),
    ("G3-no-data-full", dict(model_params_b=7, gpu_vram_gb=80, num_gpus=4), {"full_finetuning", "lora_adapters"}),
    ("G3-no-pairs", dict(goal="alignment", model_params_b=7, gpu_vram_gb=80, num_gpus=1), {"dpo"}),
    ("G3-no-pairs-rl", dict(goal="alignment", model_params_b=7, gpu_vram_gb=80, num_gpus=1), {"rlhf"}),
    ("G4-nothing-to-call", dict(), {"tool_use"}),
    ("G5-changing-knowledge", dict(goal="knowledge", knowledge_changes_often=True, model_params_b=7, gpu_vram_gb=80, num_gpus=1,
     labeled_examples=5000), {"full_finetuning", "prefix_prompt_tuning", "dpo", "rlhf", "instruction_tuning"}),
    ("G5-answer-style", dict(goal="knowledge", needs_citations=True, model_params_b=7, gpu_vram_gb=80, num_gpus=1,
     labeled_examples=60), {"lora_adapters"}),
    ("G6-privacy", dict(weight_access="closed_api", privacy_on_prem=True), set(METHOD_IDS)),
    ("G8-no-gpu-private", dict(model_params_b=7, gpu_vram_gb=0, num_gpus=0, privacy_on_prem=True, labeled_examples=5000),
     {"lora_adapters", "full_finetuning", "prefix_prompt_tuning"}),
    ("G8-no-gpu-no-budget", dict(model_params_b=7, labeled_examples=5000, budget_usd=0), {"lora_adapters"}),
    ("G-frozen-backbone", dict(model_params_b=0.1, gpu_vram_gb=80, num_gpus=1, labeled_examples=50000, frozen_backbone_required=True),
     {"full_finetuning", "instruction_tuning"}),
    ("G7-speech", dict(task="generation", modality="speech_to_text", model_params_b=0.8, gpu_vram_gb=24, num_gpus=1,
     labeled_examples=2000, preference_pairs=2000), {"in_context_learning", "rag", "tool_use", "rlhf", "dpo", "prefix_prompt_tuning"}),
    ("G7-image-generation", dict(task="generation", modality="text_to_image", model_params_b=2.6, gpu_vram_gb=24, num_gpus=1,
     labeled_examples=500), {"in_context_learning", "rag", "tool_use", "rlhf", "instruction_tuning", "prefix_prompt_tuning"}),
    ("G7-vlm-soft-prompts", dict(task="qa", modality="image_text_to_text", model_params_b=7, gpu_vram_gb=80, num_gpus=1,
     labeled_examples=2000), {"prefix_prompt_tuning", "rlhf"}),
    ("G7-vlm-text-pipelines", dict(task="qa", modality="image_text_to_text", model_params_b=7, gpu_vram_gb=80, num_gpus=1,
     labeled_examples=2000), {"instruction_tuning", "rag"}),
    ("G3-no-images", dict(task="generation", modality="text_to_image", model_params_b=2.6, gpu_vram_gb=24, num_gpus=1,
     labeled_examples=2), {"full_finetuning", "lora_adapters", "dpo"}),
    ("G7-closed-media", dict(task="generation", modality="speech_to_text", weight_access="closed_api_ft", labeled_examples=2000),
     {"lora_adapters", "dpo"}),
]

# (case, answers, expected top method): multimodal profiles (issue 26)
MEDIA_CASES = [
    ("2k image questions, 7B VLM on 24 GB: LoRA", dict(task="qa", modality="image_text_to_text", model_params_b=7, gpu_vram_gb=24,
     num_gpus=1, labeled_examples=2000), "lora_adapters"),
    ("30 image chats on a closed VLM: few-shot with images", dict(task="chat", modality="image_text_to_text",
     weight_access="closed_api", labeled_examples=30), "in_context_learning"),
    ("image chats, vendor vision tuning: vendor LoRA", dict(task="chat", modality="image_text_to_text", weight_access="closed_api_ft",
     labeled_examples=3000), "lora_adapters"),
    ("VLM preference pairs: DPO", dict(task="chat", goal="alignment", modality="image_text_to_text", model_params_b=7,
     gpu_vram_gb=80, num_gpus=1, preference_pairs=3000), "dpo"),
    ("3k transcribed clips, Whisper on 24 GB: LoRA", dict(task="generation", modality="speech_to_text", model_params_b=0.8,
     gpu_vram_gb=24, num_gpus=1, labeled_examples=3000), "lora_adapters"),
    ("a closed speech API: prompt its spelling", dict(task="generation", modality="speech_to_text", weight_access="closed_api",
     labeled_examples=3000), "prompt_engineering"),
    ("5 photos of a subject, SD on 24 GB: LoRA (DreamBooth-style)", dict(task="generation", modality="text_to_image",
     model_params_b=1, gpu_vram_gb=24, num_gpus=1, labeled_examples=5), "lora_adapters"),
    ("500 captioned images, SDXL on 24 GB: LoRA", dict(task="generation", modality="text_to_image", model_params_b=2.6,
     gpu_vram_gb=24, num_gpus=1, labeled_examples=500), "lora_adapters"),
]


@pytest.mark.parametrize("case, answers, expected", MEDIA_CASES, ids=[c[0] for c in MEDIA_CASES])
def test_top_method_for_images_and_audio(case, answers, expected):
    advice = run(**answers)
    assert advice.recommendations and advice.recommendations[0].method == expected, \
        ([(r.method, r.score) for r in advice.recommendations], advice.ruled_out)


@pytest.mark.parametrize("gate, answers, ruled", GATE_CASES, ids=[c[0] for c in GATE_CASES])
def test_gate(gate, answers, ruled):
    advice = run(**answers)
    for method in ruled:
        assert method in advice.ruled_out, f"{gate} should rule out {method}"
        assert any(f"[{gate}]" in reason for reason in advice.ruled_out[method]), advice.ruled_out[method]


def test_every_gate_has_a_case():
    from adaptkit.advisor.rules import rules

    gates = {r.id for r in rules() if r.kind in ("gate", "memory")}
    assert gates == {case[0] for case in GATE_CASES}


def test_memory_steps_down_to_qlora():
    advice = run(model_params_b=30, gpu_vram_gb=24, num_gpus=1, labeled_examples=5000)
    lora = next(r for r in advice.recommendations if r.method == "lora_adapters")
    assert "4-bit base" in lora.feasibility
    assert any("fits only with" in line and "4-bit base" in line for line in lora.rationale)


def test_full_finetuning_shards_over_gpus():
    one = run(model_params_b=7, gpu_vram_gb=80, num_gpus=1, labeled_examples=200000)
    eight = run(model_params_b=7, gpu_vram_gb=80, num_gpus=8, labeled_examples=200000)
    assert "full_finetuning" not in eight.ruled_out
    full_one = next((r for r in one.recommendations if r.method == "full_finetuning"), None)
    assert full_one is not None and "pure bf16" in full_one.feasibility
    assert any("fits only with" in line for line in full_one.rationale) and full_one.score < eight_full(eight).score


def eight_full(advice):
    return next(r for r in advice.recommendations if r.method == "full_finetuning")


@pytest.mark.parametrize("case, answers, _", TOP_CASES + [(g, a, None) for g, a, _ in GATE_CASES])
def test_every_method_is_ranked_or_ruled_out(case, answers, _):
    advice = run(**answers)
    ranked = [r.method for r in advice.recommendations]
    assert sorted(ranked + list(advice.ruled_out)) == sorted(METHOD_IDS)
    for rec in advice.recommendations:
        assert rec.rationale and rec.sources
    for reasons in advice.ruled_out.values():
        assert reasons and all(reasons)


COMBINE_CASES = [
    ("knowledge plus format: RAG + LoRA", dict(task="qa", goal="knowledge", model_params_b=7, gpu_vram_gb=24, num_gpus=1,
     labeled_examples=800), ["rag", "lora_adapters"]),
    ("behavior plus changing facts: LoRA + RAG", dict(model_params_b=7, gpu_vram_gb=24, num_gpus=1, labeled_examples=2000,
     knowledge_changes_often=True), ["lora_adapters", "rag"]),
    ("support bot that also looks up orders", dict(task="chat", weight_access="closed_api", labeled_examples=30,
     needs_actions_or_live_data=True), ["tool_use", "prompt_engineering"]),
    ("base model to align: SFT first", dict(task="chat", goal="alignment", model_params_b=7, is_base_model=True, gpu_vram_gb=24,
     num_gpus=1, labeled_examples=2000, preference_pairs=2000), ["dpo", "lora_adapters"]),
    ("one goal: nothing to combine", dict(model_params_b=7, gpu_vram_gb=24, num_gpus=1, labeled_examples=2000), []),
]


@pytest.mark.parametrize("case, answers, expected", COMBINE_CASES, ids=[c[0] for c in COMBINE_CASES])
def test_combine(case, answers, expected):
    assert run(**answers).combine == expected


def test_cheaper_method_wins_a_tie():
    advice = run(weight_access="closed_api", goal="behavior", labeled_examples=0)
    scores = [(r.score, r.method) for r in advice.recommendations]
    assert scores == sorted(scores, key=lambda s: -s[0])


def test_explanations_name_the_rules():
    advice = run(model_params_b=7, gpu_vram_gb=24, num_gpus=1, labeled_examples=2000)
    fired = {f.rule.id for f in advice.firings}
    assert {"P1-cost", "R-behavior-train", "G2-memory", "G3-no-pairs"} <= fired
    lora = next(f for f in advice.firings if f.rule.id == "R-behavior-train")
    assert lora.effects == ["+4 lora_adapters"] and "2,000 labeled examples" in lora.reason


# ---- Issue: the cases a domain expert would correct ----

@pytest.mark.parametrize("model, gpus, full_fits, lora_note", [
    ("mistralai/Mixtral-8x7B-v0.1", 1, False, "4-bit"),        # 46.7B: ~93 GB of bf16 weights alone
    ("someorg/Frankenmoe-8x7B-v2", 1, False, "4-bit"),         # not built in: read from the name
    ("Qwen/Qwen3-30B-A3B", 1, False, "fits"),                  # 30.5B total: LoRA in bf16 fits 80 GB, full FT does not
    ("mistralai/Mixtral-8x7B-Instruct-v0.1", 8, True, "fits"),  # 8 x 80 GB: sharded full FT fits
])
def test_mixture_of_experts_is_sized_by_its_total(model, gpus, full_fits, lora_note):
    from adaptkit.advisor.profile import resolve

    profile, notes = resolve({**BASE, "task": "chat", "model": model, "gpu_vram_gb": 80, "num_gpus": gpus, "labeled_examples": 5000})
    assert profile.model_params_b > 20 and profile.model_active_params_b < profile.model_params_b / 2
    advice = advise(profile)
    assert ("full_finetuning" not in advice.ruled_out) == full_fits, advice.ruled_out.get("full_finetuning")
    lora = next(r for r in advice.recommendations if r.method == "lora_adapters")
    assert lora_note in lora.feasibility


def resolved(**answers):
    from adaptkit.advisor.profile import resolve

    profile, notes = resolve({**BASE, **answers})
    return advise(profile, notes)


KNOWLEDGE = dict(task="qa", goal="knowledge")


# P8: the whole corpus goes in the prompt only when it fits the named model's window, with room for question and answer.
@pytest.mark.parametrize("answers, in_prompt", [
    (dict(weight_access="closed_api", corpus_tokens=50_000), True),                                # assumed 128k API window
    (dict(weight_access="closed_api", corpus_tokens=126_000), False),                              # no room left for the answer
    (dict(weight_access="closed_api", corpus_tokens=150_000, context_window_tokens=1_000_000), True),
    (dict(model="meta-llama/Llama-2-7b-chat-hf", gpu_vram_gb=24, corpus_tokens=60_000), False),    # 4k window
    (dict(model="Qwen/Qwen2.5-7B-Instruct", gpu_vram_gb=24, corpus_tokens=100_000), False),       # 32k window
    (dict(model="Qwen/Qwen2.5-7B-Instruct", gpu_vram_gb=24, corpus_tokens=20_000), True),
    (dict(model="meta-llama/Llama-3.1-8B-Instruct", gpu_vram_gb=80, corpus_tokens=110_000), True),  # 128k window
    (dict(model="meta-llama/Meta-Llama-3-8B-Instruct", gpu_vram_gb=80, corpus_tokens=20_000), False),  # 8k window
    (dict(model="acme/inhouse-7b", gpu_vram_gb=24, corpus_tokens=20_000), False),                  # window unknown: not assumed
    (dict(model="acme/inhouse-7b", gpu_vram_gb=24, corpus_tokens=20_000, context_window_tokens=65_536), True),
])
def test_corpus_in_prompt_needs_the_window(answers, in_prompt):
    advice = resolved(**KNOWLEDGE, **{"weight_access": "open", **answers})
    fired = any(f.rule.id == "P8-small-corpus" for f in advice.firings)
    assert fired == in_prompt
    assert (advice.recommendations[0].method == "prompt_engineering") == in_prompt, [r.method for r in advice.recommendations]
    if answers.get("model") == "acme/inhouse-7b" and "context_window_tokens" not in answers:
        assert any("context_window_tokens" in note for note in advice.notes)


# Exact computation, live data or side effects: tool use ranks first, prompt engineering its companion.
@pytest.mark.parametrize("answers", [
    dict(model_params_b=7, gpu_vram_gb=24, num_gpus=1, labeled_examples=2000, needs_exact_numbers=True),
    dict(model_params_b=7, gpu_vram_gb=80, num_gpus=1, labeled_examples=50_000, needs_exact_numbers=True, inference_volume="high"),
    dict(task="generation", model_params_b=13, gpu_vram_gb=80, num_gpus=2, labeled_examples=800, needs_actions_or_live_data=True),
    dict(task="extraction", weight_access="closed_api", labeled_examples=30, needs_exact_numbers=True),
    dict(task="chat", goal="instruction_following", model_params_b=8, gpu_vram_gb=24, num_gpus=1, labeled_examples=500,
         needs_exact_numbers=True),
    dict(task="chat", weight_access="closed_api_ft", labeled_examples=3000, needs_actions_or_live_data=True),
])
def test_exact_computation_and_live_data_go_to_a_tool(answers):
    advice = run(**answers)
    assert advice.recommendations[0].method == "tool_use", [(r.method, r.score) for r in advice.recommendations]
    assert advice.combine[:2] == ["tool_use", "prompt_engineering"]


# Changing or cited facts stay out of the weights, but hundreds of Q/A pairs can teach the answer style (RAFT).
@pytest.mark.parametrize("answers, lora_combined", [
    (dict(needs_citations=True, model_params_b=7, gpu_vram_gb=24, num_gpus=1, labeled_examples=800), True),
    (dict(knowledge_changes_often=True, model_params_b=8, gpu_vram_gb=80, num_gpus=1, labeled_examples=300), True),
    (dict(knowledge_changes_often=True, needs_citations=True, weight_access="closed_api_ft", labeled_examples=5000), True),
    (dict(needs_citations=True, model_params_b=7, gpu_vram_gb=24, num_gpus=1, labeled_examples=40), False),
    (dict(knowledge_changes_often=True, weight_access="closed_api", labeled_examples=2000), False),   # no training at all
])
def test_citations_allow_training_the_answer_style(answers, lora_combined):
    advice = run(**KNOWLEDGE, **answers)
    assert advice.recommendations[0].method == "rag"
    assert ("lora_adapters" in advice.combine) == lora_combined, (advice.combine, advice.ruled_out.get("lora_adapters"))
    for method in ("full_finetuning", "instruction_tuning", "dpo", "rlhf"):
        assert method in advice.ruled_out
    said = [e for f in advice.firings for e in f.effects if e.startswith("suggests combining")]
    assert all(m in advice.combine for e in said for m in e.removeprefix("suggests combining ").split(", "))


# Small models with plenty of labels for one task: full fine-tuning is the ceiling and ranks first.
@pytest.mark.parametrize("size, labels, vram, volume, goal", [
    (0.11, 10_000, 16, "low", "behavior"), (0.35, 30_000, 24, "high", "behavior"), (0.5, 200_000, 80, "medium", "behavior"),
    (1.24, 20_000, 80, "high", "behavior"), (0.5, 50_000, 24, "low", "domain_adaptation"), (1.0, 15_000, 40, "high", "behavior"),
])
def test_small_models_with_many_labels_fine_tune_fully(size, labels, vram, volume, goal):
    advice = run(model_params_b=size, gpu_vram_gb=vram, num_gpus=1, labeled_examples=labels, inference_volume=volume, goal=goal)
    assert advice.recommendations[0].method == "full_finetuning", [(r.method, r.score) for r in advice.recommendations]


@pytest.mark.parametrize("answers", [
    dict(model_params_b=7, gpu_vram_gb=80, num_gpus=1, labeled_examples=50_000),            # a large model: LoRA
    dict(model_params_b=0.5, gpu_vram_gb=24, num_gpus=1, labeled_examples=3_000),           # few labels: LoRA
    dict(model_params_b=0.5, gpu_vram_gb=24, num_gpus=1, labeled_examples=50_000, tasks_to_serve=20),  # many tenants: adapters
])
def test_full_fine_tuning_stays_second_outside_that_class(answers):
    assert run(**answers).recommendations[0].method != "full_finetuning"


# An instruction corpus drawn from many task families is one general model, not many tenants (FLAN).
@pytest.mark.parametrize("size, examples, families, gpus", [(13, 300_000, 60, 8), (7, 100_000, 40, 4), (1, 50_000, 120, 1)])
def test_instruction_corpora_are_not_tenants(size, examples, families, gpus):
    advice = run(task="chat", goal="instruction_following", is_base_model=True, model_params_b=size, gpu_vram_gb=80, num_gpus=gpus,
                 labeled_examples=examples, tasks_to_serve=families)
    assert advice.recommendations[0].method == "instruction_tuning", [(r.method, r.score) for r in advice.recommendations]
    assert not any(f.rule.id.startswith("P3-") for f in advice.firings)


def test_tenants_still_get_soft_prompts():
    advice = run(model_params_b=13, gpu_vram_gb=80, num_gpus=2, labeled_examples=1000, tasks_to_serve=100)
    assert advice.recommendations[0].method == "prefix_prompt_tuning"


# A rule's reason sits only next to the methods it is about.
@pytest.mark.parametrize("answers", [
    dict(goal="domain_adaptation", model_params_b=7, gpu_vram_gb=24, num_gpus=1, labeled_examples=3000),
    dict(goal="domain_adaptation", weight_access="closed_api"),
    dict(goal="actions", task="agent", weight_access="closed_api"),
])
def test_reasons_sit_next_to_their_methods(answers):
    advice = run(**answers)
    for rec in advice.recommendations:
        if rec.method != "lora_adapters":
            assert not any("LoRA adapts" in line for line in rec.rationale), (rec.method, rec.rationale)
        if rec.method == "prompt_engineering":
            assert not any("weights cannot hold" in line for line in rec.rationale), rec.rationale


def test_a_reason_for_an_unscored_method_fails_to_load():
    from pydantic import ValidationError

    from adaptkit.advisor.rules import Rule

    with pytest.raises(ValidationError, match="neither scores nor notes"):
        Rule(id="X", kind="score", title="t", reason="r", score={"rag": 1}, reasons={"tool_use": "x"})


# Closed models: prices asked or read from a dated table, output priced apart, and no argument from a ruled-out method.
@pytest.mark.parametrize("answers, words, absent", [
    (dict(weight_access="closed_api", labeled_examples=200, inference_volume="high", api_model="gpt-4o-mini-2024-07-18"),
     ["$0.15 / $0.6 per 1M"], ["LoRA run"]),
    (dict(weight_access="closed_api", labeled_examples=200, inference_volume="medium", usd_per_1m_input_tokens=3,
          usd_per_1m_output_tokens=15), ["$3 / $15 per 1M"], ["LoRA run", "assumed"]),
    (dict(weight_access="closed_api", labeled_examples=500, inference_volume="medium"),
     ["$0.5 per 1M input tokens assumed", "4x the input price"], ["LoRA run"]),
    (dict(weight_access="closed_api_ft", labeled_examples=500, inference_volume="high", api_model="gpt-4.1-mini"),
     ["vendor tuning job", "$5 per 1M training tokens", "checked 2025-06"], ["LoRA run"]),
    (dict(model_params_b=7, gpu_vram_gb=24, num_gpus=1, labeled_examples=500, inference_volume="high"),
     ["LoRA run on your 500 examples"], []),
])
def test_cost_talk(answers, words, absent):
    advice = resolved(**answers)
    icl = next(r for r in advice.recommendations if r.method == "in_context_learning")
    text = " ".join(icl.rationale)
    assert "demonstrations add" in text
    for word in words:
        assert word in text, text
    for word in absent:
        assert word not in text, text


def test_known_api_model_prices_are_dated_notes():
    from adaptkit.advisor.profile import resolve

    profile, notes = resolve({**BASE, "weight_access": "closed_api", "api_model": "claude-3-5-haiku-latest"})
    assert profile.usd_per_1m_input_tokens == 0.8 and profile.usd_per_1m_output_tokens == 4
    assert any("checked 2025-06" in n for n in notes)
    profile, _ = resolve({**BASE, "weight_access": "closed_api", "api_model": "gpt-4o", "usd_per_1m_input_tokens": 2})
    assert profile.usd_per_1m_input_tokens == 2 and profile.usd_per_1m_output_tokens == 10


RLVR = {"task": "generation", "goal": "behavior", "weight_access": "open", "model": "Qwen/Qwen2.5-1.5B-Instruct",
        "labeled_examples": 2000, "budget_usd": 2000, "gpu_vram_gb": 24, "num_gpus": 1}


@pytest.mark.parametrize("extra, rlhf_open", [
    ({"verifiable_reward": True}, True),  # checkable answers with reference answers: GRPO on reward functions
    ({}, False),  # no pairs, nothing checkable
    ({"verifiable_reward": True, "labeled_examples": 0}, False),  # checkable, but no prompts with reference answers
])
def test_verifiable_rewards_need_no_pairs(extra, rlhf_open):
    advice = advise(build_profile({**RLVR, **extra}))
    ranked = [r.method for r in advice.recommendations]
    fired = {f.rule.id for f in advice.firings}
    assert "dpo" in advice.ruled_out  # DPO still needs pairs
    if rlhf_open:
        assert "rlhf" in ranked[:3] and "R-rlvr" in fired and "R-rlhf-budget" not in fired
        from adaptkit.recipe.emit import recipe_for

        recipe, _ = recipe_for(advice, method="rlhf")
        assert recipe["rlhf"]["reward_functions"][0]["function"] == "numeric" and "reward_model" not in recipe["rlhf"]
        assert recipe["data"]["train"].endswith("arithmetic_train.jsonl")
    else:
        assert any("[G3-no-pairs-rl]" in reason for reason in advice.ruled_out["rlhf"])


def test_rl_memory_gate_counts_no_reward_model_with_reward_functions():
    tight = {**RLVR, "model": "Qwen/Qwen2.5-7B-Instruct", "gpu_vram_gb": 80}

    def peak(answers) -> float:
        rl = next(r for r in advise(build_profile(answers)).recommendations if r.method == "rlhf")
        return float(rl.feasibility.split("~")[1].split("/")[0])
    with_rewards = peak({**tight, "verifiable_reward": True})
    with_pairs = peak({**tight, "preference_pairs": 20000, "goal": "alignment", "budget_usd": 200000})
    assert with_rewards < with_pairs - 10  # the 7B reward model (15 GB in 16 bits) is not in memory


@pytest.mark.parametrize("extra, method_open, algorithm", [
    ({"feedback_labels": 5000}, True, "kto"),  # unpaired ratings: KTO
    ({"feedback_labels": 50}, False, None),  # too few to learn from
    ({"preference_pairs": 2000}, True, "dpo"),
    ({"preference_pairs": 2000, "is_base_model": True, "labeled_examples": 0}, True, "orpo"),  # a base model: one stage
])
def test_preference_data_decides_the_algorithm(extra, method_open, algorithm):
    from adaptkit.recipe.emit import recipe_for

    answers = {"task": "chat", "goal": "alignment", "weight_access": "open", "model": "Qwen/Qwen2.5-0.5B-Instruct",
               "gpu_vram_gb": 24, "num_gpus": 1, **extra}
    advice = advise(build_profile(answers))
    if not method_open:
        assert any("[G3-no-pairs]" in reason for reason in advice.ruled_out["dpo"])
        return
    ranked = [r.method for r in advice.recommendations]
    assert ranked.index("dpo") <= 1
    recipe, notes = recipe_for(advice, method="dpo")
    assert recipe["preference"]["algorithm"] == algorithm
    if algorithm == "kto":
        assert recipe["data"]["train"].endswith("feedback_train.jsonl") and "KTO" in " ".join(f.reason for f in advice.firings)
    if algorithm == "orpo":
        assert any("one stage" in n for n in notes) and not any("instruction-tune it first" in n for n in notes)
