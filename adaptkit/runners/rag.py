"""Retrieval-augmented generation: ingest a folder into a persistent index, retrieve, cite, evaluate.

The index is a folder: chunks.jsonl, embeddings.npy (unit vectors) and manifest.json (each file's hash and its
chunks). Searching uses FAISS when it is installed and a numpy matrix product otherwise; both give the same
top-k. Re-ingesting embeds only files whose content changed.
"""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path

from adaptkit._files import write_atomic
from adaptkit.errors import InputError
from adaptkit.recipe.schema import Recipe
from adaptkit.runners.models import resolve_model

SUFFIXES = (".txt", ".md", ".pdf")


def read_document(path: Path) -> str:
    if path.suffix.lower() == ".pdf":
        try:
            from pypdf import PdfReader
        except ImportError:
            raise InputError(f"{path}: reading .pdf needs pypdf (pip install pypdf), or convert it to .txt") from None
        return "\n".join(page.extract_text() or "" for page in PdfReader(str(path)).pages)
    return path.read_text(encoding="utf-8", errors="replace")


def chunk_words(text: str, size: int, overlap: int) -> list[str]:
    """Split on whitespace into windows of `size` words that share `overlap` words with the previous one."""
    words = text.split()
    if not words:
        return []
    step = max(1, size - overlap)
    return [" ".join(words[start:start + size]) for start in range(0, max(1, len(words) - overlap), step)]


class Index:
    """Chunks and their embeddings on disk, with the settings they were made with."""

    def __init__(self, folder: Path, embedding_model: str):
        self.folder = Path(folder)
        self.embedding_model = embedding_model
        self._encoder = None
        self.chunks: list[dict] = []
        self.vectors = None
        self.manifest: dict = {}

    def encoder(self):
        if self._encoder is None:
            from sentence_transformers import SentenceTransformer

            self._encoder = SentenceTransformer(resolve_model(self.embedding_model), device="cpu")
        return self._encoder

    def embed(self, texts: list[str]):
        import numpy as np

        if not texts:
            return np.zeros((0, self.encoder().get_sentence_embedding_dimension()), dtype="float32")
        return self.encoder().encode(texts, normalize_embeddings=True, convert_to_numpy=True, show_progress_bar=False).astype("float32")

    def load(self) -> None:
        import numpy as np

        manifest = self.folder / "manifest.json"
        if manifest.is_file():
            self.manifest = json.loads(manifest.read_text(encoding="utf-8"))
            self.chunks = [json.loads(line) for line in (self.folder / "chunks.jsonl").read_text(encoding="utf-8").splitlines()]
            self.vectors = np.load(self.folder / "embeddings.npy")

    def ingest(self, corpus: Path, size: int, overlap: int) -> dict:
        """Bring the index up to date with the folder; return what was embedded, reused and removed."""
        import numpy as np

        if not corpus.is_dir():
            raise InputError(f"rag.corpus: {corpus} is not a folder")
        files = sorted(p for p in corpus.rglob("*") if p.is_file() and p.suffix.lower() in SUFFIXES)
        if not files:
            raise InputError(f"rag.corpus: no .txt, .md or .pdf files in {corpus}")
        self.load()
        settings = {"embedding_model": self.embedding_model, "chunk_size": size, "chunk_overlap": overlap}
        same_settings = all(self.manifest.get(k) == v for k, v in settings.items())
        old = self.manifest.get("files", {}) if same_settings else {}
        by_source: dict[str, list[int]] = {}
        for position, chunk in enumerate(self.chunks):
            by_source.setdefault(chunk["source"], []).append(position)
        chunks, vectors, stats = [], [], {"embedded_files": 0, "reused_files": 0, "removed_files": 0}
        new_texts, new_chunks = [], []
        files_meta = {}
        for path in files:
            source = str(path.relative_to(corpus))
            text = read_document(path)
            digest = hashlib.sha256(text.encode()).hexdigest()
            files_meta[source] = {"sha256": digest}
            if source in old and old[source]["sha256"] == digest and source in by_source:
                for position in by_source[source]:
                    chunks.append(self.chunks[position])
                    vectors.append(self.vectors[position])
                stats["reused_files"] += 1
                continue
            pieces = chunk_words(text, size, overlap)
            new_chunks.extend({"source": source, "chunk": i, "text": piece} for i, piece in enumerate(pieces))
            new_texts.extend(pieces)
            stats["embedded_files"] += 1
        stats["removed_files"] = len(set(old) - set(files_meta))
        fresh = self.embed(new_texts)
        self.chunks = chunks + new_chunks
        stacked = [np.asarray(v) for v in vectors] + list(fresh)
        self.vectors = np.vstack(stacked).astype("float32") if stacked else fresh
        self.manifest = {**settings, "files": files_meta}
        self.save()
        stats.update(chunks=len(self.chunks), files=len(files_meta))
        return stats

    def save(self) -> None:
        import numpy as np

        self.folder.mkdir(parents=True, exist_ok=True)
        write_atomic(self.folder / "chunks.jsonl", "".join(json.dumps(c) + "\n" for c in self.chunks))
        tmp = self.folder / ".embeddings.tmp.npy"
        np.save(tmp, self.vectors)
        tmp.replace(self.folder / "embeddings.npy")
        write_atomic(self.folder / "manifest.json", json.dumps(self.manifest, indent=2) + "\n")

    def search(self, questions: list[str], k: int) -> list[list[tuple[dict, float]]]:
        queries = self.embed(questions)
        k = min(k, len(self.chunks))
        try:
            import faiss

            index = faiss.IndexFlatIP(self.vectors.shape[1])
            index.add(self.vectors)
            scores, positions = index.search(queries, k)
        except ImportError:
            import numpy as np

            similarity = queries @ self.vectors.T
            positions = np.argsort(-similarity, axis=1)[:, :k]
            scores = np.take_along_axis(similarity, positions, axis=1)
        return [[(self.chunks[p], float(s)) for p, s in zip(row_p, row_s)] for row_p, row_s in zip(positions, scores)]


def _contains(expected: str, answer: str) -> bool:
    norm = lambda t: re.sub(r"[^a-z0-9$.% ]", " ", t.lower()).split()  # noqa: E731
    return " ".join(norm(expected)) in " ".join(norm(answer))


def run_rag(recipe: Recipe, questions: list[dict], backend_factory) -> dict:
    """Ingest, retrieve for every question, optionally generate; return metrics (and write retrievals.jsonl)."""
    block = recipe.rag
    out = Path(recipe.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    index = Index(Path(block.index_dir), block.embedding_model)
    stats = index.ingest(Path(block.corpus), block.chunk_size, block.chunk_overlap)
    texts = [q[block.question_column] for q in questions]
    results = index.search(texts, block.top_k)
    hits, reciprocal, rows = 0, 0.0, []
    for question, retrieved in zip(questions, results):
        gold = question[block.source_column]
        sources = [chunk["source"] for chunk, _ in retrieved]
        rank = next((i for i, s in enumerate(sources, 1) if s == gold), None)
        hits += rank is not None
        reciprocal += 1 / rank if rank else 0.0
        rows.append({"question": question[block.question_column], "gold_source": gold, "rank": rank,
                     "retrieved": [{"source": c["source"], "chunk": c["chunk"], "score": round(s, 4)} for c, s in retrieved]})
    metrics = {"recall_at_k": hits / len(questions), "mrr": reciprocal / len(questions), "k": block.top_k, "questions": len(questions)}
    if block.generate:
        backend = backend_factory()

        def answer(pair):
            question, retrieved = pair
            sources = "\n".join(f"[{i}] ({c['source']}) {c['text']}" for i, (c, _) in enumerate(retrieved, 1))
            prompt = block.prompt.format(sources=sources, question=question[block.question_column])
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
    write_atomic(out / "retrievals.jsonl", "".join(json.dumps(r) + "\n" for r in rows))
    return {"method": "rag", "task": recipe.task, "index": stats, "eval": metrics}
