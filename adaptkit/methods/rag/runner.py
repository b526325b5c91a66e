"""Retrieval-augmented generation, the run: build or update the index (methods/rag/index.py), retrieve for every
question, answer with citations through the backend, and score retrieval (recall@k, MRR per ranking), answers and the
closed-book base."""

from __future__ import annotations

import json
import re
from pathlib import Path

from adaptkit._files import write_atomic
from adaptkit.errors import InputError
from adaptkit.methods.base import RunOptions, RunResult
from adaptkit.methods.rag.index import StoredIndex
from adaptkit.models import resolve_model
from adaptkit.recipe.schema import Recipe, fill
from adaptkit.runners.data import Rows


class Index(StoredIndex):
    """The index with its embedding model (sentence-transformers, loaded on first use)."""

    def encoder(self):
        if self._encoder is None:
            from sentence_transformers import SentenceTransformer

            self._encoder = SentenceTransformer(resolve_model(self.embedding_model), device="cpu")
        return self._encoder


class Retriever:
    """Dense, BM25 and fused rankings over one index's chunks, and the optional cross-encoder on top."""

    def __init__(self, index: Index, block):
        self.index, self.block = index, block
        self._bm25 = None

    def bm25(self, questions: list[str], depth: int) -> list[list[tuple[int, float]]]:
        """BM25 (bm25s, English stop words, Snowball stemming when PyStemmer is installed); chunks sharing no word are left out."""
        try:
            import bm25s
        except ImportError:
            raise InputError("rag.retrieval: BM25 needs bm25s (pip install bm25s), or set rag.retrieval=dense") from None
        try:
            import Stemmer

            stemmer = Stemmer.Stemmer("english")
        except ImportError:
            stemmer = None
        if self._bm25 is None:
            self._bm25 = bm25s.BM25()
            self._bm25.index(bm25s.tokenize([c["text"] for c in self.index.chunks], stopwords="en", stemmer=stemmer,
                                            show_progress=False), show_progress=False)
        depth = min(depth, len(self.index.chunks))
        tokens = bm25s.tokenize(questions, stopwords="en", stemmer=stemmer, show_progress=False)
        positions, scores = self._bm25.retrieve(tokens, k=depth, show_progress=False, n_threads=1)
        return [[(int(p), float(s)) for p, s in zip(row_p, row_s) if s > 0] for row_p, row_s in zip(positions, scores)]

    def fuse(self, *rankings: list[list[tuple[int, float]]]) -> list[list[tuple[int, float]]]:
        """Reciprocal rank fusion: each chunk scores the sum of 1 / (rrf_k + rank) over the rankings it is in."""
        fused = []
        for rows in zip(*rankings):
            scores: dict[int, float] = {}
            for ranking in rows:
                for rank, (position, _) in enumerate(ranking, 1):
                    scores[position] = scores.get(position, 0.0) + 1.0 / (self.block.rrf_k + rank)
            fused.append(sorted(scores.items(), key=lambda item: (-item[1], item[0])))
        return fused

    def rerank(self, questions: list[str], ranked: list[list[tuple[int, float]]]) -> list[list[tuple[int, float]]]:
        """The cross-encoder's scores for the first `candidates` of each ranking, best first."""
        from sentence_transformers import CrossEncoder

        model = CrossEncoder(resolve_model(self.block.reranker), device="cpu")
        pairs = [(q, self.index.chunks[p]["text"]) for q, row in zip(questions, ranked) for p, _ in row[:self.block.candidates]]
        scores = iter(model.predict(pairs, show_progress_bar=False, batch_size=32).tolist() if pairs else [])
        out = []
        for row in ranked:
            rescored = [(p, float(next(scores))) for p, _ in row[:self.block.candidates]]
            out.append(sorted(rescored, key=lambda item: (-item[1], item[0])))
        return out

    def rankings(self, questions: list[str]) -> dict[str, list[list[tuple[int, float]]]]:
        """Every ranking this recipe can compare; the one it uses is under its `retrieval` (or `reranked`)."""
        depth = self.block.candidates
        out = {"dense": self.index.dense(questions, depth)}
        try:
            out["bm25"] = self.bm25(questions, depth)
        except InputError:  # bm25s missing: a dense recipe still runs, without the comparison
            if self.block.retrieval != "dense":
                raise
        if "bm25" in out:
            out["hybrid"] = self.fuse(out["dense"], out["bm25"])
        if self.block.reranker:
            out["reranked"] = self.rerank(questions, out[self.block.retrieval])
        return out


def _contains(expected: str, answer: str) -> bool:
    norm = lambda t: re.sub(r"[^a-z0-9$.% ]", " ", t.lower()).split()  # noqa: E731
    return " ".join(norm(expected)) in " ".join(norm(answer))


def _scores(questions: list[dict], ranked: list[list[tuple[int, float]]], chunks: list[dict], column: str, k: int) -> dict:
    """File-level recall@k and MRR@k: a question is answered by the first retrieved chunk from its gold file."""
    hits, reciprocal = 0, 0.0
    for question, row in zip(questions, ranked):
        sources = [chunks[p]["source"] for p, _ in row[:k]]
        rank = next((i for i, s in enumerate(sources, 1) if s == question[column]), None)
        hits += rank is not None
        reciprocal += 1 / rank if rank else 0.0
    return {"recall_at_k": round(hits / len(questions), 4), "mrr": round(reciprocal / len(questions), 4)}


def _closed_book(recipe: Recipe, backend, questions: list[dict], replies: list[dict]) -> dict:
    """The answers scored by the recipe's scorer against the expected ones, and the base: the same model asked the
    same questions with no sources (closed book), scored the same way."""
    from adaptkit.runners.scoring import delta, plain, task_scorer

    block, b = recipe.rag, recipe.backend
    pairs = [(q, r) for q, r in zip(questions, replies) if isinstance(q.get(block.answer_column), str) and q[block.answer_column]]
    if not pairs:
        return {}
    scorer = task_scorer(recipe)
    asked = [q[block.question_column] for q, _ in pairs]
    expected = [q[block.answer_column] for q, _ in pairs]
    metrics = scorer([r["content"] for _, r in pairs], expected, requests=asked)
    bare = backend.map(lambda question: backend.chat([{"role": "user", "content": question}], b.max_new_tokens, b.temperature), asked)
    base = plain(scorer([r["content"] for r in bare], expected, requests=asked))
    return {**metrics, "base": {**base, "kind": recipe.definition.base},
            "delta": delta(metrics, base)}


def run_rag(recipe: Recipe, data: Rows, options: RunOptions) -> RunResult:
    """Ingest, rank every question by each retrieval, optionally generate with citations; write retrievals.jsonl."""
    block, questions, out = recipe.rag, data.rows, options.out
    index = Index(Path(block.index_dir), block.embedding_model)
    stats = index.ingest(Path(block.corpus), block.chunk_size, block.chunk_overlap, block.max_corpus_mb, options.progress)
    texts = [q[block.question_column] for q in questions]
    rankings = Retriever(index, block).rankings(texts)
    used = "reranked" if block.reranker else block.retrieval
    results = [[(index.chunks[p], s) for p, s in row[:block.top_k]] for row in rankings[used]]
    compared = {name: _scores(questions, ranked, index.chunks, block.source_column, block.top_k) for name, ranked in rankings.items()}
    rows = []
    for question, retrieved in zip(questions, results):
        gold = question[block.source_column]
        sources = [chunk["source"] for chunk, _ in retrieved]
        rows.append({"question": question[block.question_column], "gold_source": gold,
                     "rank": next((i for i, s in enumerate(sources, 1) if s == gold), None),
                     "retrieved": [{"source": c["source"], "chunk": c["chunk"], "score": round(s, 4)} for c, s in retrieved]})
    metrics = {**compared[used], "retrieval": used, "k": block.top_k, "questions": len(questions), "by_retrieval": compared}
    if block.generate:
        from adaptkit.runners.backends import make_backend

        backend = make_backend(recipe)

        def answer(pair):
            question, retrieved = pair
            sources = "\n".join(f"[{i}] ({c['source']}) {c['text']}" for i, (c, _) in enumerate(retrieved, 1))
            prompt = fill(block.prompt, sources=sources, question=question[block.question_column])
            return backend.chat([{"role": "user", "content": prompt}], recipe.backend.max_new_tokens, recipe.backend.temperature)

        replies = backend.map(answer, list(zip(questions, results)))
        cited = contained = 0
        for row, reply, question in zip(rows, replies, questions):
            row["answer"] = reply["content"]
            citations = [int(n) for n in re.findall(r"\[(\d+)\]", reply["content"])]
            cited += bool(citations) and all(1 <= n <= block.top_k for n in citations)
            if block.answer_column and question.get(block.answer_column):
                contained += _contains(question[block.answer_column], reply["content"])
        metrics["answers_with_valid_citations"] = cited / len(questions)
        if block.answer_column:
            metrics["answer_contains_expected"] = contained / len(questions)
            metrics.update(_closed_book(recipe, backend, questions, replies))
    write_atomic(out / "retrievals.jsonl", "".join(json.dumps(r) + "\n" for r in rows))
    return RunResult({"method": recipe.method, "task": recipe.task, "index": stats, "eval": metrics}, artifacts=["retrievals.jsonl"])
