"""Dense vs BM25 vs hybrid retrieval on the demo corpus, side by side, in one run.

    python benchmarks/rag_retrieval.py [--k 1 3 5] [--chunk-size 128]

Indexes examples/rag/docs (14 policy documents) the way the `rag` recipe does (token-counted chunks, the embedded
all-MiniLM-L6-v2) and ranks two question sets with each retrieval: the demo questions, worded like the documents,
and paraphrased ones written to share few words with them (`word overlap` is the share of a question's content
words, stemmed, that occur in the file holding its answer). A question counts as found at k when a chunk of its
gold file is in the top k; MRR is over the top `candidates` chunks. Prints a Markdown table.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

SETS = {"demo questions": ROOT / "examples/rag/questions.jsonl",
        "paraphrased (low word overlap)": ROOT / "examples/rag/questions_paraphrased.jsonl"}


def overlap(questions: list[dict], docs: Path) -> float:
    import bm25s
    import Stemmer

    stemmer = Stemmer.Stemmer("english")
    words = lambda text: set(bm25s.tokenize([text], stopwords="en", stemmer=stemmer, return_ids=False, show_progress=False)[0])  # noqa: E731
    shares = []
    for q in questions:
        asked = words(q["question"])
        shares.append(len(asked & words((docs / q["source"]).read_text())) / max(1, len(asked)))
    return sum(shares) / len(shares)


def found(ranked, chunks, questions, k: int) -> tuple[float, float]:
    hits, reciprocal = 0, 0.0
    for question, row in zip(questions, ranked):
        sources = [chunks[p]["source"] for p, _ in row]
        rank = next((i for i, s in enumerate(sources, 1) if s == question["source"]), None)
        hits += rank is not None and rank <= k
        reciprocal += 1 / rank if rank else 0.0
    return hits / len(questions), reciprocal / len(questions)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--k", type=int, nargs="+", default=[1, 3])
    parser.add_argument("--chunk-size", type=int, default=128)
    parser.add_argument("--chunk-overlap", type=int, default=32)
    args = parser.parse_args()

    from adaptkit.methods.base import EMBEDDED
    from adaptkit.methods.rag.recipe import RAGBlock
    from adaptkit.methods.rag.runner import Index, Retriever

    docs = ROOT / "examples/rag/docs"
    with tempfile.TemporaryDirectory() as folder:
        block = RAGBlock(corpus=str(docs), index_dir=folder, chunk_size=args.chunk_size, chunk_overlap=args.chunk_overlap)
        index = Index(Path(folder), EMBEDDED)
        stats = index.ingest(docs, block.chunk_size, block.chunk_overlap, block.max_corpus_mb)
        retriever = Retriever(index, block)
        header = ["questions", "n", "word overlap", "retrieval", *[f"recall@{k}" for k in args.k], "MRR"]
        lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
        results = {}
        for name, path in SETS.items():
            questions = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
            rankings = retriever.rankings([q["question"] for q in questions])
            share = overlap(questions, docs)
            for retrieval in ("dense", "bm25", "hybrid"):
                scores = [found(rankings[retrieval], index.chunks, questions, k) for k in args.k]
                results[name, retrieval] = scores
                lines.append(f"| {name} | {len(questions)} | {share:.0%} | {retrieval} | "
                             + " | ".join(f"{recall:.3f}" for recall, _ in scores) + f" | {scores[0][1]:.3f} |")
    print(f"corpus: {stats['files']} files, {stats['chunks']} chunks of <= {args.chunk_size} tokens "
          f"(overlap {args.chunk_overlap}); embeddings: all-MiniLM-L6-v2; fusion: reciprocal rank, k={block.rrf_k}\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
