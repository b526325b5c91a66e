"""Retrieval-augmented generation, the run: build or update the index (methods/rag/index.py), retrieve for every
question, answer with citations through the backend, and score retrieval (recall@k, MRR per ranking), answers and the
closed-book base."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

from adaptkit._files import write_atomic
from adaptkit.errors import InputError
from adaptkit.methods.base import RunOptions, RunResult
from adaptkit.methods.rag.index import StoredIndex
from adaptkit.models import resolve_model
from adaptkit.recipe.schema import Recipe, fill
from adaptkit.runners.core import dataset_progress, quiet_transformers
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


def gold_files(rows: list[dict], column: str, files, where: str) -> list[str]:
    """Each row's source as the corpus file it names: its path under rag.corpus, or the end of exactly one such path
    (`leave.md` for hr/leave.md). Sources that name no file, or several, are one line: scored as misses, a typo in
    them would pass for bad retrieval."""
    tails: dict[str, set[str]] = {}
    for name in files:
        parts = Path(name).parts
        for start in range(len(parts)):
            tails.setdefault("/".join(parts[start:]), set()).add(name)
    golds, unknown, several = [], {}, {}
    for number, row in enumerate(rows, 1):
        said = str(row.get(column) or "").strip().replace("\\", "/")
        while said.startswith("./"):
            said = said[2:]
        found = tails.get(said, set())
        if len(found) == 1:
            golds.append(next(iter(found)))
            continue
        (several if found else unknown).setdefault(said, []).append(number)
    if several:
        said, numbers = next(iter(several.items()))
        raise InputError(f"{where} row {numbers[0]}: source {said!r} matches {len(tails[said])} files of rag.corpus "
                         f"({', '.join(sorted(tails[said])[:3])}): give its path under rag.corpus")
    if unknown:
        named = "; ".join(f"{said!r} (row{'s' if len(n) > 1 else ''} {', '.join(map(str, n[:3]))}{', ...' if len(n) > 3 else ''})"
                          for said, n in list(unknown.items())[:3])
        more = f" and {len(unknown) - 3} more" if len(unknown) > 3 else ""
        raise InputError(f"{where}: {len(unknown)} source(s) name no file of rag.corpus: {named}{more}; the corpus holds "
                         f"{len(files)} file(s), e.g. {', '.join(sorted(files)[:3])}: name each by its path under rag.corpus")
    return golds


def _scores(golds: list[str], ranked: list[list[tuple[int, float]]], chunks: list[dict], k: int,
            answers: list[str | None] | None = None) -> dict:
    """File-level recall@k and MRR@k: a question is answered by the first retrieved chunk from its gold file. Where
    questions carry their expected answer, also the share whose answer is in the text of their top k chunks (a
    passage-level measure: file-level recall cannot tell chunks of one long file apart)."""
    hits, reciprocal = 0, 0.0
    for gold, row in zip(golds, ranked):
        sources = [chunks[p]["source"] for p, _ in row[:k]]
        rank = next((i for i, s in enumerate(sources, 1) if s == gold), None)
        hits += rank is not None
        reciprocal += 1 / rank if rank else 0.0
    scores = {"recall_at_k": round(hits / len(golds), 4), "mrr": round(reciprocal / len(golds), 4)}
    asked = [(answer, row) for answer, row in zip(answers or [], ranked) if answer]
    if asked:
        found = sum(_contains(answer, " ".join(chunks[p]["text"] for p, _ in row[:k])) for answer, row in asked)
        scores["answer_in_top_k"] = round(found / len(asked), 4)
    return scores


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


RETRIEVER_DIR = "retriever"  # the tuned embedding model, in output_dir (SentenceTransformer(path) loads it)
SENTENCE = re.compile(r"(?<=[.!?])\s+")
QUESTION_PROMPT = ("Write one question a customer could ask that this passage answers. Reply with the question only.\n\n"
                   "Passage: {passage}")


def _pairs(recipe: Recipe, data: Rows, index: Index) -> list[dict]:
    """Training pairs for the encoder: (anchor question, positive passage), from the training questions (their passage,
    else the base encoder's best chunk of their source file) and from the corpus (ict, or questions a model wrote)."""
    import random

    block, tune = recipe.rag, recipe.rag.tune
    pairs = []
    rows = data.train
    if rows:
        ranked = index.dense([r[block.question_column] for r in rows], len(index.chunks))
        given = [isinstance(r.get(tune.passage_column), str) and r[tune.passage_column].strip() for r in rows]
        golds = iter(gold_files([r for r, g in zip(rows, given) if not g], block.source_column, index.manifest["files"], "rag.tune.train"))
        for row, ranking, passage in zip(rows, ranked, given):
            if passage:
                pairs.append({"anchor": row[block.question_column], "positive": row[tune.passage_column], "source": row.get(block.source_column)})
                continue
            gold = next(golds)
            best = next((p for p, _ in ranking if index.chunks[p]["source"] == gold), None)
            if best is None:  # a file of the corpus with no text in it
                raise InputError(f"rag.tune.train: source {gold!r} has no text to learn from (an empty file?): give the row a "
                                 f"{tune.passage_column} or another source")
            pairs.append({"anchor": row[block.question_column], "positive": index.chunks[best]["text"], "source": gold})
    if tune.synthetic != "none":
        rng = random.Random(recipe.training.seed)
        by_file: dict[str, list[dict]] = {}
        for chunk in index.chunks:
            by_file.setdefault(chunk["source"], []).append(chunk)
        picked = [c for chunks in by_file.values() for c in rng.sample(chunks, min(tune.synthetic_per_file, len(chunks)))]
        if tune.synthetic == "ict":  # inverse cloze task (Lee et al., 2019): a sentence asks for the rest of its chunk
            for chunk in picked:
                sentences = [s for s in SENTENCE.split(chunk["text"]) if len(s.split()) >= 5]
                if len(sentences) >= 2:
                    query = rng.choice(sentences)
                    pairs.append({"anchor": query, "positive": chunk["text"].replace(query, " ").strip(), "source": chunk["source"]})
        else:
            from adaptkit.runners.backends import make_backend

            backend = make_backend(recipe)
            replies = backend.map(lambda chunk: backend.chat([{"role": "user", "content": fill(QUESTION_PROMPT, passage=chunk["text"])}],
                                                             64, 0.0), picked)
            pairs += [{"anchor": reply["content"].strip(), "positive": chunk["text"], "source": chunk["source"]}
                      for chunk, reply in zip(picked, replies) if reply["content"].strip()]
    if len(pairs) < 2:
        raise InputError("rag.tune: fewer than 2 training pairs (add training questions, or synthetic=ict)")
    if tune.hard_negatives:  # the base encoder's best chunks from other files: near misses the tuned model must rank lower
        ranked = index.dense([p["anchor"] for p in pairs], min(len(index.chunks), 10 * tune.hard_negatives + 20))
        for pair, ranking in zip(pairs, ranked):
            others = [index.chunks[p]["text"] for p, _ in ranking if index.chunks[p]["source"] != pair["source"]]
            for n in range(tune.hard_negatives):
                pair[f"negative_{n + 1}"] = others[n] if n < len(others) else index.chunks[ranking[-1][0]]["text"]
    return pairs


def _tune(recipe: Recipe, data: Rows, index: Index, out: Path, show: bool) -> tuple[str, dict]:
    """Fine-tune the embedding model with MultipleNegativesRankingLoss (in-batch negatives, plus the hard ones) through
    sentence-transformers' trainer; saved in output_dir/retriever. Returns its path and what was trained."""
    import contextlib
    import sys
    import time

    from datasets import Dataset
    from sentence_transformers import SentenceTransformer, SentenceTransformerTrainer, SentenceTransformerTrainingArguments, losses
    from sentence_transformers.training_args import BatchSamplers

    tune = recipe.rag.tune
    pairs = _pairs(recipe, data, index)
    columns = ["anchor", "positive"] + [f"negative_{n + 1}" for n in range(tune.hard_negatives)]
    dataset = Dataset.from_dict({c: [p[c] for p in pairs] for c in columns})
    started = time.perf_counter()
    path = out / RETRIEVER_DIR
    with open(os.devnull, "w") as void, dataset_progress(show), contextlib.redirect_stdout(sys.stderr if show else void), \
            (contextlib.nullcontext() if show else contextlib.redirect_stderr(void)):  # a library run prints nothing
        model = SentenceTransformer(resolve_model(recipe.rag.embedding_model), device="cpu")
        args = SentenceTransformerTrainingArguments(
            output_dir=str(out / "retriever-checkpoints"), num_train_epochs=tune.epochs, learning_rate=tune.learning_rate,
            per_device_train_batch_size=min(tune.batch_size, len(pairs)), warmup_steps=0.1, seed=recipe.training.seed,
            batch_sampler=BatchSamplers.NO_DUPLICATES, save_strategy="no", report_to="none", logging_steps=5,
            disable_tqdm=not show, use_cpu=True)
        trainer = SentenceTransformerTrainer(model=model, args=args, train_dataset=dataset,
                                             loss=losses.MultipleNegativesRankingLoss(model))
        result = trainer.train()
        model.save_pretrained(str(path))  # its model card's bars too
    if (out / "retriever-checkpoints").exists():  # save_strategy no: only the Trainer's empty folder
        from adaptkit._files import remove_tree

        remove_tree(out / "retriever-checkpoints")
    kinds = {"questions": len(data.train), "synthetic": len(pairs) - len(data.train)}
    return str(path), {"pairs": len(pairs), **kinds, "hard_negatives": tune.hard_negatives, "steps": result.global_step,
                       "runtime_s": round(time.perf_counter() - started, 2), "final_loss": round(result.training_loss, 4),
                       "saved_to": str(path)}


def run_rag(recipe: Recipe, data: Rows, options: RunOptions) -> RunResult:
    """Ingest, rank every question by each retrieval, optionally generate with citations; write retrievals.jsonl. With
    rag.tune, the embedding model is fine-tuned first and retrieval is scored with the base and the tuned encoder."""
    quiet_transformers()  # no per-weight loading bars
    block, questions, out = recipe.rag, data.rows, options.out
    index = Index(Path(block.index_dir), block.embedding_model)
    stats = index.ingest(Path(block.corpus), block.chunk_size, block.chunk_overlap, block.max_corpus_mb, options.progress)
    texts = [q[block.question_column] for q in questions]
    golds = gold_files(questions, block.source_column, index.manifest["files"], "data.eval")
    answers = [q.get(block.answer_column) if block.answer_column and isinstance(q.get(block.answer_column), str) else None
               for q in questions]
    rankings = Retriever(index, block).rankings(texts)
    used = "reranked" if block.reranker else block.retrieval
    tuned = None
    if block.tune is not None:
        before = {name: {**_scores(golds, ranked, index.chunks, block.top_k, answers),
                         "recall_at_1": _scores(golds, ranked, index.chunks, 1)["recall_at_k"]}
                  for name, ranked in rankings.items()}
        path, trained = _tune(recipe, data, index, out, options.show_training)
        index_after = Index(out / RETRIEVER_DIR, path)  # the same chunks, embedded by the tuned model (kept in memory)
        index_after.chunks, index_after.vectors = index.chunks, index_after.embed([c["text"] for c in index.chunks])
        rankings = Retriever(index_after, block).rankings(texts)
        tuned = {"trained": trained, "before": before}
    results = [[(index.chunks[p], s) for p, s in row[:block.top_k]] for row in rankings[used]]
    compared = {name: _scores(golds, ranked, index.chunks, block.top_k, answers) for name, ranked in rankings.items()}
    rows = []
    for question, gold, retrieved in zip(questions, golds, results):
        sources = [chunk["source"] for chunk, _ in retrieved]
        rows.append({"question": question[block.question_column], "gold_source": gold,
                     "rank": next((i for i, s in enumerate(sources, 1) if s == gold), None),
                     "retrieved": [{"source": c["source"], "chunk": c["chunk"], "score": round(s, 4)} for c, s in retrieved]})
    metrics = {**compared[used], "retrieval": used, "k": block.top_k, "questions": len(questions), "by_retrieval": compared}
    if tuned is not None:
        from adaptkit.runners.scoring import delta

        at_1 = {name: _scores(golds, ranked, index.chunks, 1)["recall_at_k"] for name, ranked in rankings.items()}
        base = tuned["before"][used]
        metrics["recall_at_1"] = at_1[used]
        metrics["retriever"] = {**tuned["trained"], "base_by_retrieval": tuned["before"], "recall_at_1_by_retrieval": at_1}
        if not block.generate:  # the base of a tuned retriever is the base encoder (with answers, it is the closed book)
            metrics["base"] = {**base, "kind": f"the base encoder {block.embedding_model}, same questions and chunks"}
            metrics["delta"] = delta({k: metrics[k] for k in ("recall_at_k", "recall_at_1", "mrr")}, base)
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
    artifacts = ["retrievals.jsonl"] + ([RETRIEVER_DIR] if tuned else [])
    return RunResult({"method": recipe.method, "task": recipe.task, "index": stats, "eval": metrics}, artifacts=artifacts)
