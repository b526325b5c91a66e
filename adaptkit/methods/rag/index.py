"""The RAG index: read a folder of documents into a persistent index of chunks and embeddings, and retrieve from it.

The index is one unit on disk: `index_dir/CURRENT` names a version folder (chunks.jsonl, embeddings.npy of unit
vectors, manifest.json with each file's hash, the counts and the hashes of the other two files). An update writes
a new version beside the old one and switches CURRENT atomically at the end, so an interrupted update leaves the
previous index as it was; a version whose files disagree with its manifest is rebuilt, with a message.
Files embedded by an update that did not finish are kept in `index_dir/partial/` and reused by the next one.
Chunks are cut at word boundaries to a token budget counted with the embedding model's own tokenizer, so no chunk
runs past what the model reads. Retrieval ranks by embeddings (FAISS when installed, else a numpy product: the same
top-k), by BM25 over the same chunks (bm25s), or both fused by reciprocal rank (Cormack et al., SIGIR 2009), and a
cross-encoder can re-score the fused candidates. The embedding and cross-encoder models load on first use only.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import re
import stat
from pathlib import Path
from typing import Callable

from adaptkit._files import remove_tree, write_atomic
from adaptkit.errors import InputError

SUFFIXES = (".txt", ".md", ".pdf")
BATCH_CHUNKS = 256  # chunks embedded per batch; each finished file is saved, so an interrupted ingest resumes
LEGACY = ("chunks.jsonl", "embeddings.npy", "manifest.json")  # the single-folder layout of earlier versions


class SkipFile(Exception):
    """A document that cannot be read: named in the ingest report and skipped."""


def read_document(path: Path) -> str:
    if path.suffix.lower() == ".pdf":
        try:
            from pypdf import PdfReader
        except ImportError:
            raise InputError(f"{path}: reading .pdf needs pypdf (pip install pypdf), or convert it to .txt") from None
        try:
            return "\n".join(page.extract_text() or "" for page in PdfReader(str(path)).pages)
        except Exception as exc:  # a damaged or encrypted PDF: skip it by name
            raise SkipFile(f"not a readable PDF ({exc.__class__.__name__})") from None
    try:
        return path.read_bytes().decode("utf-8-sig", errors="replace")
    except OSError as exc:
        raise SkipFile(f"cannot read it ({exc.strerror or exc.__class__.__name__})") from None


def chunk_tokens(text: str, size: int, overlap: int, count: Callable[[list[str]], list[int]]) -> list[str]:
    """Cut `text` into pieces of at most `size` tokens (by `count`, the tokenizer's count per word), at word boundaries,
    neighbours sharing about `overlap` tokens of whole words. The pieces keep the text's own spacing and line breaks.
    A single word longer than `size` is a piece of its own."""
    spans = [(m.start(), m.end()) for m in re.finditer(r"\S+", text)]
    if not spans:
        return []
    counts = count([text[a:b] for a, b in spans])
    pieces, start = [], 0
    while True:
        end, used = start, 0
        while end < len(spans) and (end == start or used + counts[end] <= size):
            used += counts[end]
            end += 1
        pieces.append(text[spans[start][0]:spans[end - 1][1]])
        if end >= len(spans):
            return pieces
        back, shared = end, 0
        while back > start + 1 and shared + counts[back - 1] <= overlap:
            back -= 1
            shared += counts[back]
        start = back


def check_corpus(corpus: Path) -> Path:
    """The folder a corpus's file names are relative to: the corpus folder, or a single document's folder."""
    if corpus.is_dir():
        return corpus
    if corpus.is_file() and corpus.suffix.lower() in SUFFIXES:
        return corpus.parent
    raise InputError(f"rag.corpus: {corpus} is not a folder or a {', '.join(SUFFIXES)} file")


def corpus_files(corpus: Path) -> tuple[list[Path], list[tuple[str, str]]]:
    """The corpus's documents (one, where it is a file), and what was skipped and why: links that leave the folder,
    special files."""
    if check_corpus(corpus) != corpus:
        return [corpus], []
    root = corpus.resolve()
    files, skipped = [], []
    for folder, dirs, names in os.walk(corpus, followlinks=False):
        for name in sorted(dirs):
            if (Path(folder) / name).is_symlink():
                skipped.append((str((Path(folder) / name).relative_to(corpus)), "a link to a folder (not followed)"))
        for name in sorted(names):
            path = Path(folder) / name
            if path.suffix.lower() not in SUFFIXES:
                continue
            where = str(path.relative_to(corpus))
            if path.is_symlink():
                target = path.resolve()
                if root not in target.parents:
                    skipped.append((where, "a link to a file outside the corpus (not followed)"))
                    continue
            try:
                mode = path.stat().st_mode
            except OSError:
                skipped.append((where, "a broken link"))
                continue
            if not stat.S_ISREG(mode):
                skipped.append((where, "not a regular file"))
                continue
            files.append(path)
    return sorted(files), skipped


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def model_fingerprint(name: str) -> str | None:
    """A local model folder's weights, by their names, sizes and modification times: a model retrained in the same
    folder (a tuned retriever) is a new model whose embeddings are not reused. None for a hub id."""
    folder = Path(name).expanduser()
    if not folder.is_dir():
        return None
    files = sorted(p for p in folder.rglob("*") if p.is_file() and p.suffix in (".safetensors", ".bin", ".json"))
    listing = [(str(p.relative_to(folder)), p.stat().st_size, p.stat().st_mtime_ns) for p in files]
    return _sha256(json.dumps(listing).encode())[:16]


class StoredIndex:
    """Chunks and their embeddings on disk, with the settings they were made with: read, checked, updated, saved."""

    def __init__(self, folder: Path, embedding_model: str):
        self.folder = Path(folder)
        self.embedding_model = embedding_model
        self._encoder = None
        self.chunks: list[dict] = []
        self.vectors = None
        self.manifest: dict = {}

    def encoder(self):
        """The embedding model: loaded by the runner's Index (methods/rag/runner.py); a dry run never loads it."""
        raise NotImplementedError

    def token_counts(self, words: list[str]) -> list[int]:
        """Tokens per word by the embedding model's own tokenizer (no special tokens)."""
        tokenizer = self.encoder().tokenizer
        return [len(ids) for ids in tokenizer(words, add_special_tokens=False)["input_ids"]] if words else []

    def input_limit(self) -> int:
        """Tokens of a chunk the embedding model reads: its max_seq_length less its special tokens."""
        encoder = self.encoder()
        return int(encoder.max_seq_length) - encoder.tokenizer.num_special_tokens_to_add()

    def embed(self, texts: list[str]):
        import numpy as np

        if not texts:
            return np.zeros((0, self.encoder().get_sentence_embedding_dimension()), dtype="float32")
        return self.encoder().encode(texts, normalize_embeddings=True, convert_to_numpy=True, show_progress_bar=False,
                                     batch_size=64).astype("float32")

    def current(self) -> Path | None:
        pointer = self.folder / "CURRENT"
        if not pointer.is_file():
            return None
        name = pointer.read_text(encoding="utf-8").strip()
        return self.folder / name if re.fullmatch(r"v\d{6}", name) else None

    def load(self) -> str | None:
        """Read the current version and check it; returns why it cannot be used (None when it is sound or absent)."""
        import numpy as np

        self.chunks, self.vectors, self.manifest = [], None, {}
        version = self.current()
        if version is None:
            if (self.folder / "CURRENT").exists():
                return "CURRENT does not name a version"
            return "it has the layout of an earlier adaptkit" if (self.folder / "manifest.json").is_file() else None
        try:
            manifest = json.loads((version / "manifest.json").read_text(encoding="utf-8"))
            chunk_bytes = (version / "chunks.jsonl").read_bytes()
            vector_bytes = (version / "embeddings.npy").read_bytes()
        except (OSError, ValueError) as exc:
            return f"{version.name} cannot be read ({exc.__class__.__name__})"
        if _sha256(chunk_bytes) != manifest.get("chunks_sha256") or _sha256(vector_bytes) != manifest.get("embeddings_sha256"):
            return f"the files of {version.name} do not match its manifest"
        chunks = [json.loads(line) for line in chunk_bytes.decode("utf-8").splitlines()]
        vectors = np.load(io.BytesIO(vector_bytes), allow_pickle=False)
        if not (len(chunks) == manifest.get("count") == vectors.shape[0]):
            return f"{version.name} holds {len(chunks)} chunks and {vectors.shape[0]} vectors; its manifest says {manifest.get('count')}"
        self.chunks, self.vectors, self.manifest = chunks, vectors, manifest
        return None

    def _partial(self, settings: dict, digest: str) -> Path:
        key = _sha256(json.dumps({**settings, "sha256": digest}, sort_keys=True).encode())[:32]
        return self.folder / "partial" / f"{key}.npz"

    def ingest(self, corpus: Path, size: int, overlap: int, max_mb: float,
               progress: Callable[[int, int], None] | None = None) -> dict:
        """Bring the index up to date with the folder; return what was embedded, reused, removed and skipped."""
        import numpy as np

        base = check_corpus(corpus)
        files, skipped = corpus_files(corpus)
        if not files:
            raise InputError(f"rag.corpus: no .txt, .md or .pdf files in {corpus}")
        total_mb = sum(p.stat().st_size for p in files) / 1e6
        if total_mb > max_mb:
            raise InputError(f"rag.corpus: {total_mb:,.0f} MB of documents in {corpus} is over rag.max_corpus_mb={max_mb:g}: "
                             "raise it (ingest embeds in batches and resumes where it stopped) or index a smaller folder")
        problem = self.load()
        stats = {"embedded_files": 0, "reused_files": 0, "removed_files": 0}
        if problem:
            stats["rebuilt"] = f"the index in {self.folder} was rebuilt: {problem}"
        settings = {"embedding_model": self.embedding_model, "model_files": model_fingerprint(self.embedding_model), "chunk_size": size,
                    "chunk_overlap": overlap, "chunk_unit": "tokens"}
        same_settings = all(self.manifest.get(k) == v for k, v in settings.items())
        old = self.manifest.get("files", {}) if same_settings else {}
        by_source: dict[str, list[int]] = {}
        for position, chunk in enumerate(self.chunks):
            by_source.setdefault(chunk["source"], []).append(position)
        parts: dict[str, tuple[list[dict], object]] = {}  # source -> (chunks, vectors)
        files_meta, waiting, waiting_count = {}, [], 0
        todo = []
        for path in files:
            source = str(path.relative_to(base))
            try:
                text = read_document(path)
            except SkipFile as why:
                skipped.append((source, str(why)))
                continue
            digest = _sha256(text.encode())
            files_meta[source] = {"sha256": digest}
            if source in old and old[source]["sha256"] == digest and source in by_source:
                positions = by_source[source]
                parts[source] = ([self.chunks[p] for p in positions], self.vectors[positions])
                stats["reused_files"] += 1
                continue
            saved = self._partial(settings, digest)
            if saved.is_file():
                try:
                    with np.load(saved, allow_pickle=False) as data:
                        chunks = [{"source": source, "chunk": i, "text": t} for i, t in enumerate(json.loads(str(data["texts"])))]
                        parts[source] = (chunks, data["vectors"])
                    stats["embedded_files"] += 1
                    continue
                except (OSError, ValueError, KeyError):
                    saved.unlink(missing_ok=True)
            if not todo and size > self.input_limit():  # checked once, before anything is embedded
                raise InputError(f"rag.chunk_size={size} tokens is over the {self.input_limit()} tokens {self.embedding_model} reads "
                                 "(the rest of each chunk would be ignored): lower it")
            todo.append((source, digest, chunk_tokens(text, size, overlap, self.token_counts)))
        total = sum(len(pieces) for _, _, pieces in todo)
        done = 0
        for number, (source, digest, pieces) in enumerate(todo):
            waiting.append((source, digest, pieces))
            waiting_count += len(pieces)
            if waiting_count < BATCH_CHUNKS and number < len(todo) - 1:
                continue
            vectors = self.embed([piece for _, _, batch in waiting for piece in batch])
            start = 0
            for name, file_digest, batch in waiting:
                block = vectors[start:start + len(batch)]
                start += len(batch)
                parts[name] = ([{"source": name, "chunk": i, "text": t} for i, t in enumerate(batch)], block)
                self._save_partial(settings, file_digest, batch, block)
                stats["embedded_files"] += 1
            done += waiting_count
            waiting, waiting_count = [], 0
            if progress:
                progress(done, total)
        stats["removed_files"] = len(set(old) - set(files_meta))
        order = [source for source in sorted(parts) if len(parts[source][0])]
        if not order:
            raise InputError(f"rag.corpus: no text could be read from the {len(files)} file(s) in {corpus}"
                             + (f" (skipped: {'; '.join(f'{w}: {y}' for w, y in skipped[:3])})" if skipped else ""))
        self.chunks = [chunk for source in order for chunk in parts[source][0]]
        self.vectors = np.vstack([np.asarray(parts[source][1], dtype="float32") for source in order])
        changed = problem or not same_settings or stats["embedded_files"] or stats["removed_files"] or set(files_meta) != set(old)
        if changed:  # an unchanged corpus keeps its version: nothing to write
            self.manifest = {**settings, "files": files_meta}
            self.save()
        stats.update(chunks=len(self.chunks), files=len(files_meta), skipped=[f"{where}: {why}" for where, why in skipped])
        return stats

    def _save_partial(self, settings: dict, digest: str, texts: list[str], vectors) -> None:
        import numpy as np

        target = self._partial(settings, digest)
        target.parent.mkdir(parents=True, exist_ok=True)
        buffer = io.BytesIO()
        np.savez(buffer, texts=np.array(json.dumps(texts)), vectors=np.asarray(vectors, dtype="float32"))
        write_atomic(target, buffer.getvalue())

    def save(self) -> None:
        """Write a new version beside the current one, then switch CURRENT to it in one atomic step."""
        import numpy as np

        self.folder.mkdir(parents=True, exist_ok=True)
        current = self.current()
        number = int(current.name[1:]) + 1 if current else 1
        version = self.folder / f"v{number:06d}"
        staging = self.folder / f".{version.name}.tmp"
        for leftover in (staging, version):
            if leftover.exists():
                remove_tree(leftover)
        staging.mkdir()
        chunk_bytes = "".join(json.dumps(c) + "\n" for c in self.chunks).encode("utf-8")
        buffer = io.BytesIO()
        np.save(buffer, np.ascontiguousarray(self.vectors, dtype="float32"), allow_pickle=False)
        vector_bytes = buffer.getvalue()
        manifest = {**self.manifest, "count": len(self.chunks), "chunks_sha256": _sha256(chunk_bytes),
                    "embeddings_sha256": _sha256(vector_bytes)}
        for name, data in (("chunks.jsonl", chunk_bytes), ("embeddings.npy", vector_bytes),
                           ("manifest.json", (json.dumps(manifest, indent=2) + "\n").encode())):
            with open(staging / name, "wb") as handle:
                handle.write(data)
                handle.flush()
                os.fsync(handle.fileno())
        os.rename(staging, version)
        write_atomic(self.folder / "CURRENT", version.name + "\n")
        self.manifest = manifest
        for path in self.folder.iterdir():  # older versions, unfinished ones, the earlier layout, finished partials
            if path != version and (re.fullmatch(r"\.?v\d{6}(\.tmp)?", path.name) or path.name in LEGACY or path.name == "partial"):
                remove_tree(path)

    def dense(self, questions: list[str], depth: int) -> list[list[tuple[int, float]]]:
        """Chunk positions and cosine similarities, best first, `depth` per question."""
        queries = self.embed(questions)
        depth = min(depth, len(self.chunks))
        try:
            import faiss

            index = faiss.IndexFlatIP(self.vectors.shape[1])
            index.add(self.vectors)
            scores, positions = index.search(queries, depth)
        except ImportError:
            import numpy as np

            similarity = queries @ self.vectors.T
            positions = np.argsort(-similarity, axis=1, kind="stable")[:, :depth]
            scores = np.take_along_axis(similarity, positions, axis=1)
        return [[(int(p), float(s)) for p, s in zip(row_p, row_s)] for row_p, row_s in zip(positions, scores)]


def index_status(folder: Path) -> str:
    """For --dry-run: is there an index, and is it sound? Loads no model."""
    index = StoredIndex(folder, "")
    problem = index.load()
    if problem:
        return f"damaged ({problem}): the run rebuilds it"
    if not index.manifest:
        return "none yet: the run builds it"
    return f"{index.manifest['count']} chunks from {len(index.manifest.get('files', {}))} files, verified"
