"""export --format gguf: llama.cpp's own converter and quantizer on a trained run, an Ollama Modelfile with the run's
chat template, and the GGUF scored with llama.cpp on the run's eval rows beside the trained model. The base is a tiny
Llama whose SentencePiece tokenizer is trained here (llama.cpp's converter reads SentencePiece models as they are)."""

import json
import re
from pathlib import Path

import pytest
from click.testing import CliRunner

from adaptkit.cli import cli

ROOT = Path(__file__).resolve().parent.parent
pytestmark = pytest.mark.train
# the gguf extra (llama-cpp-python compiles llama.cpp: about 4 minutes on 2 cores) is kept out of the default install;
# the dev extra, and so CI, installs it
pytest.importorskip("llama_cpp", reason="export --format gguf needs the gguf extra: pip install 'adaptkit[gguf]'")
pytest.importorskip("sentencepiece", reason="the tiny SentencePiece Llama needs the gguf extra")


def _invoke(*args):
    return CliRunner().invoke(cli, [str(a) for a in args])


@pytest.fixture(scope="module")
def sentencepiece_llama(tmp_path_factory):
    """A randomly initialised 2-layer Llama with a 700-piece SentencePiece BPE tokenizer trained on the example data."""
    import sentencepiece
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    folder = tmp_path_factory.mktemp("sp-llama")
    texts = []
    for name in ("instructions_train.jsonl", "instructions_eval.jsonl"):
        for line in (ROOT / "examples" / "data" / name).read_text().splitlines():
            row = json.loads(line)
            texts += [row["prompt"], row["response"]]
    corpus = folder / "corpus.txt"
    corpus.write_text("\n".join(texts))
    sentencepiece.SentencePieceTrainer.train(input=str(corpus), model_prefix=str(folder / "sp"), vocab_size=700, model_type="bpe",
                                             byte_fallback=True, unk_id=0, bos_id=1, eos_id=2, pad_id=-1, minloglevel=2)
    model_dir = folder / "model"
    model_dir.mkdir()
    (folder / "sp.model").rename(model_dir / "tokenizer.model")
    (model_dir / "tokenizer_config.json").write_text(json.dumps({"tokenizer_class": "LlamaTokenizer", "bos_token": "<s>",
                                                                 "eos_token": "</s>", "unk_token": "<unk>"}))
    tokenizer = AutoTokenizer.from_pretrained(str(model_dir))
    config = LlamaConfig(vocab_size=len(tokenizer), hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
                         num_key_value_heads=4, max_position_embeddings=256, bos_token_id=1, eos_token_id=2, tie_word_embeddings=False)
    LlamaForCausalLM(config).save_pretrained(str(model_dir))
    tokenizer.save_pretrained(str(model_dir))
    return model_dir


@pytest.fixture(scope="module")
def sft_run(sentencepiece_llama, tmp_path_factory):
    run = tmp_path_factory.mktemp("gguf") / "answers"
    result = _invoke("run", "lora_sft", f"model={sentencepiece_llama}", f"output_dir={run}", "training.max_steps=30",
                     "training.batch_size=8", "training.max_length=96", "training.learning_rate=0.01", "data.max_rows=64",
                     "training.generate_eval=16")
    assert result.exit_code == 0, result.output
    return run


def test_a_gguf_export_answers_as_the_trained_model(sft_run, tmp_path):
    out = tmp_path / "gguf"
    result = _invoke("export", sft_run, "--format", "gguf", "--quant", "f16", "-o", out, "--json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report == json.loads((out / "export_report.json").read_text()) and report["runtime"] == "llama.cpp"
    assert report["metric"] in report["trained"] and report["rows"] > 0 and (out / "model-f16.gguf").is_file()
    # f16 keeps what a 64-wide float32 model computes to the greedy token: the same answers, the same score
    assert report["agreement"] >= 0.9 and abs(report["difference"]) <= 0.02 and report["within_threshold"]
    modelfile = (out / "Modelfile").read_text()
    assert "FROM ./model-f16.gguf" in modelfile and 'PARAMETER stop "</s>"' in modelfile
    template = re.search(r'TEMPLATE """(.*)"""', modelfile, flags=re.S).group(1)
    assert template == "{{ if .System }}{{ .System }}\n\n{{ .Prompt }}{{ else }}{{ .Prompt }}{{ end }}"  # the run's format
    import llama_cpp

    metadata = llama_cpp.Llama(str(out / "model-f16.gguf"), verbose=False).metadata
    assert metadata["general.architecture"] == "llama" and metadata["llama.block_count"] == "2"
    assert "adaptkit: the prompt/response format" in metadata["tokenizer.chat_template"]  # llama.cpp's chat formats it too


def test_a_4bit_gguf_is_smaller_and_checked(sft_run, tmp_path):
    f16, q4 = tmp_path / "f16", tmp_path / "q4"
    small = _invoke("export", sft_run, "--format", "gguf", "--quant", "q4_k_m", "-o", q4, "--json")
    assert small.exit_code == 0, small.output
    report = json.loads(small.stdout)
    assert (q4 / "model-q4_k_m.gguf").is_file() and report["within_threshold"] == (-report["difference"] <= 0.01)
    wide = json.loads(_invoke("export", sft_run, "--format", "gguf", "--quant", "f16", "-o", f16, "--json").stdout)
    assert report["exported"]["size_mb"] < wide["exported"]["size_mb"]
    text = _invoke("export", sft_run, "--format", "gguf", "--quant", "q4_k_m", "--max-drop", "0", "-o", tmp_path / "strict")
    said = json.loads((tmp_path / "strict" / "export_report.json").read_text())
    assert ("more than --max-drop 0" in text.output) == (said["difference"] < 0)


def test_gguf_refusals_are_one_line(sft_run, tmp_path, monkeypatch):
    assert "GGUF takes f16, q8_0, q4_k_m" in _invoke("export", sft_run, "--format", "gguf", "--quant", "int8", "-o", tmp_path / "a").stderr
    monkeypatch.setenv("ADAPTKIT_LLAMA_CPP", str(tmp_path))
    missing = _invoke("export", sft_run, "--format", "gguf", "-o", tmp_path / "b")
    assert missing.exit_code == 2 and "no convert_hf_to_gguf.py there" in missing.stderr
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()


def test_a_tokenizer_llama_cpp_does_not_know_says_so(tiny_causal_lm, tmp_path):
    """The tests' tiny Llama has a retrained BERT-style tokenizer: llama.cpp's converter refuses it, in one line that
    says why and what converts, and nothing is written."""
    run = tmp_path / "run"
    made = _invoke("run", "lora_sft", f"model={tiny_causal_lm}", f"output_dir={run}", "training.max_steps=2", "training.batch_size=4",
                   "training.max_length=64", "data.max_rows=16", "training.generate_eval=0")
    assert made.exit_code == 0, made.output
    said = _invoke("export", run, "--format", "gguf", "-o", tmp_path / "gguf")
    assert said.exit_code == 2 and "llama.cpp does not know this model's tokenizer" in said.stderr, said.output
    assert "Traceback" not in said.output and not (tmp_path / "gguf").exists()
