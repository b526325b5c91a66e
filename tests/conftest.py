import os

import pytest
from click.testing import CliRunner

# Before anything imports huggingface_hub (which reads these once): no hub access in tests.
for _name in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "HF_DATASETS_OFFLINE"):
    os.environ[_name] = "1"
# The ledger of runs, for every process the tests start (modules copy os.environ at import): never the user's home.
os.environ["ADAPTKIT_LEDGER"] = os.path.join(__import__("tempfile").mkdtemp(prefix="adaptkit-ledger-"), "ledger.sqlite")

from adaptkit.cli import cli


@pytest.fixture(autouse=True)
def no_real_gpus(monkeypatch):
    """Tests see no GPU unless they say otherwise, whatever machine runs them."""
    monkeypatch.setenv("ADAPTKIT_FAKE_GPUS", "0")


@pytest.fixture(autouse=True)
def pipe_width(monkeypatch):
    """Output laid out as for a pipe, whatever terminal width (COLUMNS) the caller's shell or CI exported."""
    monkeypatch.delenv("COLUMNS", raising=False)
    monkeypatch.delenv("LINES", raising=False)


@pytest.fixture(autouse=True)
def own_ledger(monkeypatch, tmp_path_factory):
    """Each test its own ledger: runs another test recorded never become this test's evidence (advise reads them)."""
    monkeypatch.setenv("ADAPTKIT_LEDGER", str(tmp_path_factory.mktemp("ledger") / "ledger.sqlite"))


@pytest.fixture
def invoke():
    def run(*args, input=None):
        return CliRunner().invoke(cli, [str(a) for a in args], input=input)

    return run


@pytest.fixture(scope="session")
def _cache_root(tmp_path_factory):
    return tmp_path_factory.mktemp("adaptkit-cache")


@pytest.fixture(autouse=True)
def own_cache(monkeypatch, _cache_root):
    """adaptkit's cache (the base model's scores) lives in the test session's folder, not the user's home."""
    monkeypatch.setenv("ADAPTKIT_CACHE_DIR", str(_cache_root))


@pytest.fixture(autouse=True)
def offline(monkeypatch):
    """No hub access in tests: everything runs on the embedded model or tiny models built here."""
    for name in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "HF_DATASETS_OFFLINE"):
        monkeypatch.setenv(name, "1")
    monkeypatch.setenv("TOKENIZERS_PARALLELISM", "false")


def small_tokenizer(tokenizer, vocab_size: int = 2000):
    """The embedded BERT tokenizer's pipeline retrained on the project's example data with a 2,000-token vocabulary:
    a tiny model's output layer and logits are then 15x smaller than with BERT's 30,522 tokens (the tests that train
    causal LMs spend most of their time there), and the data still tokenizes into words."""
    import json
    from pathlib import Path

    texts = []
    for path in sorted((Path(__file__).parent.parent / "examples" / "data").glob("*.jsonl")):
        for line in path.read_text(encoding="utf-8").splitlines():
            texts += [v for v in json.loads(line).values() if isinstance(v, str)] if line.strip() else []
    return tokenizer.train_new_from_iterator(texts, vocab_size=vocab_size)


@pytest.fixture(scope="session")
def tiny_causal_lm(tmp_path_factory):
    """A randomly initialised 2-layer Llama with a small tokenizer of the embedded BERT kind (and a chat template), on disk."""
    pytest.importorskip("torch")
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    from adaptkit.models import embedded_minilm

    folder = tmp_path_factory.mktemp("tiny-llama")
    tokenizer = small_tokenizer(AutoTokenizer.from_pretrained(str(embedded_minilm())))
    tokenizer.eos_token, tokenizer.bos_token = tokenizer.sep_token, tokenizer.cls_token
    tokenizer.chat_template = (
        "{% for m in messages %}{{ m['role'] }}: {{ m['content'] }}{{ eos_token }}{% endfor %}"
        "{% if add_generation_prompt %}assistant:{% endif %}"
    )
    config = LlamaConfig(vocab_size=len(tokenizer), hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=512,
                         pad_token_id=tokenizer.pad_token_id, eos_token_id=tokenizer.sep_token_id,
                         bos_token_id=tokenizer.cls_token_id, tie_word_embeddings=True)
    import torch

    torch.manual_seed(0)
    LlamaForCausalLM(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


def check_resources(metrics: dict) -> dict:
    """Every training run's metrics.json says what it used beside what was predicted (issue: measured vs estimated)."""
    import math

    resources = metrics["resources"]
    assert {"device", "measured_peak_gb", "measured_as", "tokens", "tokens_per_second", "predicted_peak_gb", "error_pct",
            "predicted_tokens_per_second", "processes"} <= set(resources), sorted(resources)
    assert math.isfinite(resources["measured_peak_gb"]) and resources["measured_peak_gb"] > 0
    assert resources["predicted_peak_gb"] is None or resources["predicted_peak_gb"] > 0
    if resources["device"] == "cpu":  # a CPU's peak RSS is never compared with a GPU estimate
        assert resources["error_pct"] is None and "RSS" in resources["measured_as"]
    return resources


# Test tiers. `make check` runs what trains nothing (-m "not train"); `make test` runs everything (what CI runs).
# A module here holds tests that train, launch processes or serve: its tests are marked `train` unless a test says
# `@pytest.mark.unit` itself. Tests elsewhere train nothing.
TRAINING_MODULES = {
    "test_api", "test_backends_rag", "test_compare", "test_design_commands", "test_export", "test_gpu_truth", "test_hostile",
    "test_hub", "test_lora_variants", "test_output", "test_predict_merge", "test_preference", "test_rag_retrieval",
    "test_readme", "test_rlvr", "test_run", "test_safety", "test_serve", "test_tracking", "test_training_fields", "test_training_free",
    "test_vendor_job", "test_own_data", "test_retriever_tuning", "test_images", "test_speech", "test_vision_language", "test_text_to_image",
    "test_quantized",
}


def pytest_collection_modifyitems(config, items):
    for item in items:
        module = item.module.__name__.rpartition(".")[2]
        if module in TRAINING_MODULES and item.get_closest_marker("unit") is None:
            item.add_marker(pytest.mark.train)
