"""Retriever tuning (rag.tune): the embedded MiniLM fine-tuned on question-passage pairs with in-batch and hard
negatives (sentence-transformers' trainer), retrieval scored with the base and the tuned encoder on held-out
questions, the tuned model saved where a RAG recipe can use it; pairs from a model where the user has none."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.helpers_http import ChatHandler, serving

ROOT = Path(__file__).parent.parent
QUICK = ["rag.tune.epochs=1", "rag.tune.batch_size=8"]


def run_json(invoke, *args):
    result = invoke("run", "rag_tuned", *args, "--json")
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def test_the_tuned_encoder_is_scored_against_the_base_and_reused_by_rag(invoke, tmp_path):
    out = tmp_path / "tuned"
    metrics = run_json(invoke, f"output_dir={out}", f"rag.index_dir={tmp_path / 'index'}", *QUICK)
    scored = metrics["eval"]
    assert scored["base"]["kind"].startswith("the base encoder") and set(scored["delta"]) == {"recall_at_k", "recall_at_1", "mrr"}
    assert scored["delta"]["mrr"] == pytest.approx(scored["mrr"] - scored["base"]["mrr"], abs=1e-6)
    trained = scored["retriever"]
    assert trained["pairs"] == trained["questions"] == 36 and trained["steps"] >= 1 and trained["final_loss"] > 0
    from sentence_transformers import SentenceTransformer

    assert SentenceTransformer(str(out / "retriever"), device="cpu").encode(["where is my parcel"]).shape == (1, 384)
    # the RAG recipe with the tuned model: the same chunks, so the same dense ranking as the tuned run measured
    again = invoke("run", "rag", f"rag.embedding_model={out / 'retriever'}", f"rag.index_dir={tmp_path / 'index2'}",
                   f"output_dir={tmp_path / 'rag'}", "data.eval=examples/rag/questions_paraphrased.jsonl", "rag.chunk_size=128",
                   "rag.chunk_overlap=32", "rag.retrieval=dense", "--json")
    assert again.exit_code == 0, again.output
    assert json.loads(again.stdout)["eval"]["mrr"] == pytest.approx(scored["mrr"], abs=1e-4)


def test_inverse_cloze_pairs_come_from_the_corpus_and_a_library_run_prints_nothing(tmp_path, capfd):
    import adaptkit

    result = adaptkit.run("rag_tuned", [f"output_dir={tmp_path / 'ict'}", f"rag.index_dir={tmp_path / 'index'}", "rag.tune.train=",
                                        "rag.tune.synthetic=ict", "rag.tune.synthetic_per_file=2", *QUICK])
    trained = result.eval["retriever"]
    assert trained["questions"] == 0 and trained["synthetic"] == trained["pairs"] >= 10
    printed = capfd.readouterr()
    assert printed.out == "" and printed.err == "", printed


class Writer(ChatHandler):
    """A scripted model that writes a question for a passage: its first sentence, as a question."""

    seen: list = []

    def answer(self, prompt: str) -> str:
        Writer.seen.append(prompt)
        return "What about " + prompt.split("Passage:", 1)[1].strip().split(".")[0].strip().lower() + "?"


def test_a_model_writes_the_pairs_where_the_user_has_none(invoke, tmp_path):
    Writer.seen = []
    with serving(Writer) as url:
        metrics = run_json(invoke, f"output_dir={tmp_path / 'gen'}", f"rag.index_dir={tmp_path / 'index'}", "rag.tune.train=",
                           "rag.tune.synthetic=model", "rag.tune.synthetic_per_file=1", "backend.kind=openai", f"backend.base_url={url}",
                           "backend.model=writer", f"backend.cache_dir={tmp_path / 'cache'}", *QUICK)
    trained = metrics["eval"]["retriever"]
    assert trained["synthetic"] == trained["pairs"] == 14 == len(Writer.seen)  # one chunk of each of the 14 files
    assert all("Write one question" in prompt for prompt in Writer.seen)


def test_training_questions_repeated_in_eval_are_refused(invoke, tmp_path):
    result = invoke("run", "rag_tuned", "data.eval=examples/rag/questions.jsonl", f"output_dir={tmp_path / 'x'}")
    assert result.exit_code == 2 and "36 of the 36 eval rows are also in the training data" in result.stderr
    assert not (tmp_path / "x").exists()
    dry = invoke("run", "rag_tuned", "data.eval=examples/rag/questions.jsonl", "--dry-run", "--json")
    assert json.loads(dry.stdout)["data"]["leakage"].startswith("36 of 36 eval questions also in rag.tune.train")


def test_a_training_question_about_no_corpus_file_is_one_line(invoke, tmp_path):
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps({"question": "Where do penguins live?", "source": "zoo.md"}) + "\n" +
                   json.dumps({"question": "How do returns work?", "source": "returns.md"}) + "\n")
    result = invoke("run", "rag_tuned", f"rag.tune.train={bad}", f"output_dir={tmp_path / 'x'}", f"rag.index_dir={tmp_path / 'i'}")
    assert result.exit_code == 2 and "rag.tune.train: 1 source(s) name no file of rag.corpus: 'zoo.md' (row 1)" in result.stderr
    assert "Traceback" not in result.output
