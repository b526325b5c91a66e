"""Retrieval-augmented generation: a persistent index of a folder of documents, retrieval measured against the
file that answers each question, and optionally answers with numbered citations from a backend."""

from __future__ import annotations

from pathlib import Path
from typing import Literal, Optional

from pydantic import Field, field_validator, model_validator

from adaptkit.methods.base import EMBEDDED, MethodDef, RecipeBase, Strict, input_path, placeholders
from adaptkit.methods.registry import register


class RetrieverTuning(Strict):
    """Fine-tune the embedding model on your questions before retrieving (sentence-transformers' trainer, in-batch and
    hard negatives): retrieval is scored with the base encoder and the tuned one on the same held-out questions."""

    train: Optional[str] = input_path("training questions, with the file that answers each (the questions file's columns), or "
                                      "with the passage itself (passage_column)", "data", default=None)
    passage_column: str = Field("passage", description="training questions: the passage that answers (else the best chunk of "
                                                       "the source file, by the base encoder, is the positive)")
    synthetic: Literal["none", "ict", "model"] = Field(
        "none", description="pairs made from the corpus as well: ict (a sentence of each chunk asks for the rest of it; the "
                            "inverse cloze task), model (the backend writes a question per chunk: cached and priced like any call)")
    synthetic_per_file: int = Field(8, ge=1, description="synthetic pairs made per corpus file, from its chunks")
    hard_negatives: int = Field(1, ge=0, le=10, description="per pair: the base encoder's best-ranked chunks from other files, "
                                                            "besides the other pairs of the batch (in-batch negatives)")
    epochs: float = Field(4.0, gt=0, le=100, description="passes over the pairs")
    learning_rate: float = Field(5e-5, gt=0, le=1, description="the encoder's learning rate")
    batch_size: int = Field(16, ge=2, description="pairs per batch: every other pair's passage is a negative (larger is harder)")

    @model_validator(mode="after")
    def _some_pairs(self):
        if self.train is None and self.synthetic == "none":
            raise ValueError("`rag.tune` needs training pairs: set `train` (a questions file) or `synthetic` (ict or model)")
        return self


class RAGBlock(Strict):
    corpus: str = input_path("a folder of .txt, .md and .pdf files, or one such file")
    index_dir: str = input_path("where the on-disk index lives (relative to the working folder); unchanged files are not re-embedded",
                                "output")
    chunk_size: int = Field(200, ge=16, description="tokens per chunk, counted with the embedding model's tokenizer; at most "
                            "what the model reads (all-MiniLM-L6-v2: 254 after its special tokens)")
    chunk_overlap: int = Field(40, ge=0, description="tokens shared by neighbouring chunks (whole words)")
    top_k: int = Field(3, ge=1, description="chunks retrieved per question")
    retrieval: Literal["hybrid", "dense", "bm25"] = Field(
        "hybrid", description="hybrid: BM25 and dense rankings fused by reciprocal rank; dense: embeddings only; bm25: words only")
    rrf_k: int = Field(60, ge=1, description="reciprocal rank fusion constant: a chunk scores 1/(rrf_k + rank) in each ranking")
    candidates: int = Field(50, ge=1, description="chunks each ranking passes to fusion and re-ranking")
    reranker: Optional[str] = input_path("a cross-encoder (sentence-transformers CrossEncoder) that re-scores the fused top "
                                         "`candidates`; none: no re-ranking", "model", default=None)
    max_corpus_mb: float = Field(200.0, gt=0, description="refuse a corpus larger than this (MB of files); ingest resumes if interrupted")
    embedding_model: str = input_path("sentence-transformers model (the embedded MiniLM offline)", "model", default=EMBEDDED)
    generate: bool = Field(False, description="also answer each question with the backend, citing the chunks")
    question_column: str = Field("question", description="questions file: the question")
    source_column: str = Field("source", description="questions file: the file that holds the answer")
    answer_column: Optional[str] = Field("answer", description="questions file: the expected answer (for answer metrics)")
    prompt: str = Field(
        "Answer the question using only the numbered sources below, and cite them like [1].\n\n{sources}\n\nQuestion: {question}",
        description="the generation prompt; {sources} and {question} are filled in")

    tune: Optional[RetrieverTuning] = Field(None, description="fine-tune the embedding model first; scored before and after; "
                                                              "the tuned model is saved in output_dir/retriever")

    _check_prompt = field_validator("prompt")(placeholders("sources", "question"))


class RagRecipe(RecipeBase):
    method: Literal["rag"] = Field(description="retrieval from your documents, cited")
    rag: Optional[RAGBlock] = Field(None, description="retrieval settings")

    REQUIRED = ("rag",)

    def check(self) -> None:
        if self.rag.chunk_overlap >= self.rag.chunk_size:
            raise ValueError(f"`rag.chunk_overlap` ({self.rag.chunk_overlap}) must be below `rag.chunk_size` ({self.rag.chunk_size})")
        if Path(self.rag.index_dir).expanduser().resolve() == Path(self.output_dir).expanduser().resolve():
            raise ValueError("`rag.index_dir` is `output_dir` itself: give the index a folder of its own (e.g. OUTPUT_DIR/index)")


CITED_ANSWER_TOKENS = 300  # a few sentences with their [n] marks; 64 tokens cut a cited answer off mid-sentence


def _emit(profile, context) -> dict:
    """The user's documents and questions when the answers name them, else the demo shop's; answers when a model can
    give them, with room for a cited answer."""
    corpus = profile.corpus_dir or context.demo("examples/rag/docs")
    if not profile.corpus_dir:
        context.notes.append("rag.corpus: the demo policy documents (set rag.corpus=FOLDER and data.eval=QUESTIONS for yours)")
    elif not profile.eval_data:
        context.notes.append("data.eval: the demo questions do not ask about your documents: write a questions file (question, "
                             "source = the file holding the answer, answer) and set data.eval=FILE")
    generate = profile.weight_access != "open" or bool(profile.model)
    if generate:
        context.notes.append(f"backend.max_new_tokens {CITED_ANSWER_TOKENS}: room for a cited answer of a few sentences")
    name = Path(profile.corpus_dir).name if profile.corpus_dir else "demo"
    return {"task": "question_answering", "model": profile.model or "sentence-transformers/all-MiniLM-L6-v2",
            "data": {"eval": profile.eval_data or context.demo("examples/rag/questions.jsonl")},
            "rag": {"corpus": corpus, "index_dir": f"runs/rag-index-{name}", "top_k": 3, "retrieval": "hybrid", "generate": generate},
            **({"backend": {"max_new_tokens": CITED_ANSWER_TOKENS}} if generate else {})}


register(MethodDef(
    id="rag", recipe=RagRecipe, tasks=("question_answering",), objective="serve", adapters=("none",),
    runner="adaptkit.methods.rag.runner:run_rag", data="adaptkit.methods.rag.data:check_questions", summary="adaptkit.methods.rag.dryrun:rag_summary",
    metrics=("recall_at_k",), needs_train=False, needs_eval="the questions file (question, source, answer)",
    needs_corpus="the .txt, .md and .pdf files answers come from",
    prompt_parts=("chunks",), serve_tokens=4096, emit=_emit, base="closed book: the same model, the question alone, no sources",
    scored=lambda recipe: f"the generated answers against `{recipe.rag.answer_column}`"
    if recipe.rag.generate and recipe.rag.answer_column else None, aliases=(("retrieval", ""),)))
