"""Hybrid retrieval: token-counted chunks, BM25 beside the dense ranking, reciprocal rank fusion, a cross-encoder."""

import json
from pathlib import Path

import pytest

from adaptkit.methods.rag.recipe import RAGBlock
from adaptkit.methods.rag.index import chunk_tokens
from adaptkit.methods.rag.runner import Index, Retriever

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "examples" / "rag" / "docs"


def test_chunks_stay_within_the_token_budget_at_word_boundaries():
    text = "alpha beta\ngamma  delta epsilon zeta eta theta iota kappa"
    pieces = chunk_tokens(text, 4, 1, lambda words: [1] * len(words))
    assert pieces[0] == "alpha beta\ngamma  delta"  # the text's own spacing and line break kept
    assert all(len(p.split()) <= 4 for p in pieces)
    assert [p.split()[0] for p in pieces[1:]] == [p.split()[-1] for p in pieces[:-1]]  # one word shared
    assert " ".join(pieces).split()[-1] == "kappa"
    assert chunk_tokens("   ", 4, 1, lambda words: [1] * len(words)) == []
    assert chunk_tokens("a " + "x" * 50 + " b", 4, 0, lambda words: [len(w) for w in words]) == ["a", "x" * 50, "b"]


def test_fusion_adds_reciprocal_ranks():
    retriever = Retriever(None, RAGBlock(corpus="d", index_dir="i", rrf_k=60))
    fused = retriever.fuse([[(1, 0.9), (2, 0.8)]], [[(2, 7.0), (3, 5.0)]])[0]
    assert [p for p, _ in fused] == [2, 1, 3]  # in both lists beats first in one
    assert fused[0][1] == pytest.approx(1 / 62 + 1 / 61) and fused[1][1] == pytest.approx(1 / 61)


@pytest.fixture(scope="module")
def index(tmp_path_factory):
    pytest.importorskip("sentence_transformers")
    from adaptkit.methods.base import EMBEDDED

    folder = tmp_path_factory.mktemp("index")
    built = Index(folder, EMBEDDED)
    built.ingest(DOCS, 64, 16, 200)
    return built


def test_real_chunks_fit_what_the_model_reads(index):
    tokenizer = index.encoder().tokenizer
    lengths = [len(tokenizer(c["text"], add_special_tokens=False)["input_ids"]) for c in index.chunks]
    assert max(lengths) <= 64 + 2 and len(index.chunks) > 14  # longer documents became several chunks
    assert index.input_limit() == 254  # MiniLM reads 256 tokens, 2 of them special


def test_bm25_finds_a_rare_word_and_hybrid_keeps_both_rankings(index):
    retriever = Retriever(index, RAGBlock(corpus=str(DOCS), index_dir="i"))
    ranked = retriever.rankings(["Reno repair centre diagnosis fee"])
    top = lambda name: index.chunks[ranked[name][0][0][0]]["source"]  # noqa: E731
    assert top("bm25") == "repairs.md" and top("hybrid") == "repairs.md"
    assert set(ranked) == {"dense", "bm25", "hybrid"}
    assert retriever.bm25(["zzzz qqqq"], 5) == [[]]  # no shared word: no BM25 candidates, not random ones


def test_a_cross_encoder_rescores_the_fused_candidates(index, tmp_path):
    from transformers import BertConfig, BertForSequenceClassification

    from adaptkit.models import resolve_model
    from adaptkit.methods.base import EMBEDDED
    from transformers import AutoTokenizer

    folder = tmp_path / "reranker"
    config = BertConfig(vocab_size=30522, hidden_size=32, num_hidden_layers=1, num_attention_heads=2, intermediate_size=64,
                        num_labels=1)
    BertForSequenceClassification(config).save_pretrained(folder)
    AutoTokenizer.from_pretrained(resolve_model(EMBEDDED)).save_pretrained(folder)
    retriever = Retriever(index, RAGBlock(corpus=str(DOCS), index_dir="i", reranker=str(folder), candidates=5))
    ranked = retriever.rankings(["How long is store credit valid?", "What does express shipping cost?"])
    assert all(len(row) == 5 for row in ranked["reranked"])
    for row, fused in zip(ranked["reranked"], ranked["hybrid"]):
        assert [s for _, s in row] == sorted((s for _, s in row), reverse=True)
        assert {p for p, _ in row} == {p for p, _ in fused[:5]}  # the same candidates, re-ordered


def test_the_run_reports_every_retrieval_side_by_side(invoke, tmp_path):
    pytest.importorskip("sentence_transformers")
    args = [f"output_dir={tmp_path / 'rag'}", f"rag.index_dir={tmp_path / 'index'}", "--json"]
    hybrid = json.loads(invoke("run", "rag", *args).stdout)["eval"]
    assert hybrid["retrieval"] == "hybrid" and set(hybrid["by_retrieval"]) == {"dense", "bm25", "hybrid"}
    assert hybrid["recall_at_k"] == hybrid["by_retrieval"]["hybrid"]["recall_at_k"]
    dense = json.loads(invoke("run", "rag", *args, "rag.retrieval=dense", "--overwrite").stdout)["eval"]
    assert dense["recall_at_k"] == hybrid["by_retrieval"]["dense"]["recall_at_k"]  # same index, same numbers


@pytest.mark.parametrize("override, words", [
    ("rag.chunk_size=300", "over the 254 tokens"),
    ("rag.chunk_overlap=200", "must be below `rag.chunk_size`"),
    ("rag.retrieval=sparse", "rag.retrieval"),
])
def test_chunk_settings_the_model_cannot_read_are_refused(invoke, tmp_path, override, words):
    pytest.importorskip("sentence_transformers")
    result = invoke("run", "rag", f"output_dir={tmp_path / 'rag'}", f"rag.index_dir={tmp_path / 'index'}", override)
    assert result.exit_code == 2 and words in result.stderr, result.output
    assert not (tmp_path / "rag").exists() and not (tmp_path / "index" / "CURRENT").exists()


def test_a_source_is_the_corpus_file_it_names_or_one_line():
    from adaptkit.errors import InputError
    from adaptkit.methods.rag.runner import gold_files

    files = ["hr/leave.md", "hr/expenses.txt", "it/leave.md", "it/laptops.md"]
    rows = [{"doc": "hr/leave.md"}, {"doc": "expenses.txt"}, {"doc": "./it/laptops.md"}, {"doc": "it\\leave.md"}]
    assert gold_files(rows, "doc", files, "data.eval") == ["hr/leave.md", "hr/expenses.txt", "it/laptops.md", "it/leave.md"]
    with pytest.raises(InputError, match=r"row 1: source 'leave.md' matches 2 files .*hr/leave.md, it/leave.md"):
        gold_files([{"doc": "leave.md"}], "doc", files, "data.eval")
    with pytest.raises(InputError, match=r"2 source\(s\) name no file of rag.corpus: 'leav.md' \(rows 1, 3\); '' \(row 2\)"):
        gold_files([{"doc": "leav.md"}, {"doc": None}, {"doc": "leav.md"}], "doc", files, "data.eval")


def test_questions_name_files_of_a_nested_corpus_by_their_own_names(invoke, tmp_path):
    """A user's corpus in subfolders and a questions file naming the files by their base names: each question finds
    its file (it scored 0 for every one, the names never matched); a typo is one line, not a silent miss."""
    pytest.importorskip("sentence_transformers")
    for name in ("returns.md", "shipping.md"):
        (tmp_path / "docs" / "policies").mkdir(parents=True, exist_ok=True)
        (tmp_path / "docs" / "policies" / name).write_text((DOCS / name).read_text())
    questions = [json.loads(line) for line in (ROOT / "examples" / "rag" / "questions.jsonl").read_text().splitlines()]
    questions = [q for q in questions if q["source"] in ("returns.md", "shipping.md")]
    (tmp_path / "qa.csv").write_text("query,doc\n" + "".join(f'"{q["question"]}",{q["source"]}\n' for q in questions))
    args = ["run", "rag", f"data.eval={tmp_path / 'qa.csv'}", f"rag.corpus={tmp_path / 'docs'}", "rag.question_column=query",
            "rag.source_column=doc", f"rag.index_dir={tmp_path / 'index'}", "rag.top_k=1"]
    result = json.loads(invoke(*args, f"output_dir={tmp_path / 'rag'}", "--json").stdout)
    assert result["eval"]["recall_at_k"] >= 0.8, result["eval"]
    (tmp_path / "qa.csv").write_text("query,doc\nWhat does express shipping cost?,shiping.md\n")
    failed = invoke(*args, f"output_dir={tmp_path / 'typo'}")
    assert failed.exit_code == 2 and "'shiping.md' (row 1)" in failed.stderr and "policies/returns.md" in failed.stderr, failed.output
    assert not (tmp_path / "typo").exists()


def test_a_top_k_that_takes_every_chunk_is_said(tmp_path):
    from adaptkit.runners.report import learning_warnings

    said = learning_warnings({"index": {"chunks": 3}, "eval": {"k": 3, "recall_at_k": 1.0}}, [])
    assert any("retrieves every one of the corpus's 3 chunks" in line for line in said)
    assert not learning_warnings({"index": {"chunks": 30}, "eval": {"k": 3, "recall_at_k": 1.0}}, [])


def test_one_file_is_a_corpus_and_its_passages_are_measured_by_answer(invoke, tmp_path):
    """A single manual as rag.corpus: indexed as one file; recall by file says nothing there (warned), and questions
    with their answers are scored by whether the answer is in the retrieved chunks."""
    pytest.importorskip("sentence_transformers")
    manual = tmp_path / "manual.txt"
    parts = ["Inspect", "Drain", "Replace", "Clean", "Tighten", "Check"]
    manual.write_text("\n\n".join(f"Section {n}. {verb} the part number {1000 + n} every {n + 2} months, using tool kit "
                                  f"{chr(65 + n)}." for n, verb in enumerate(parts * 4)))
    (tmp_path / "q.csv").write_text("question,source,answer\n" + "".join(
        f"How often do I service part number {1000 + n}?,manual.txt,every {n + 2} months\n" for n in range(0, 24, 5)))
    result = invoke("run", "rag", f"rag.corpus={manual}", f"data.eval={tmp_path / 'q.csv'}", "rag.chunk_size=24",
                    "rag.chunk_overlap=0", "rag.top_k=1", "rag.retrieval=bm25", f"rag.index_dir={tmp_path / 'index'}",
                    f"output_dir={tmp_path / 'rag'}", "--json")
    assert result.exit_code == 0, result.output
    metrics = json.loads(result.stdout)
    assert metrics["index"]["files"] == 1 and metrics["index"]["chunks"] > 5
    e = metrics["eval"]
    assert e["recall_at_k"] == 1.0 and 0 < e["answer_in_top_k"] <= 1.0
    assert any("the corpus is one file" in w for w in metrics["warnings"])
    assert invoke("run", "rag", f"rag.corpus={tmp_path / 'q.csv'}", f"data.eval={tmp_path / 'q.csv'}",
                  f"output_dir={tmp_path / 'no'}").exit_code == 2

