"""Write the speech recogniser's demo data: short clips of spoken digits in a tone code (each digit word is a pair
of tones, as telephone keypads sound, at a slightly shifted pitch and speed in every clip, over noise) with their
transcripts ("three seven"). A model has to hear which tones come in which order to transcribe them. Each row of
train.jsonl / eval.jsonl names its clip (relative to the file) and its transcript; clips are 16 kHz mono WAV.

Also writes `whisper-demo/`: a small Whisper initialised from a config with a fixed seed, its byte-level BPE
tokenizer trained here on the ten digit words, and a feature extractor with a 1 s window (no pretrained speech model
can be downloaded offline), so `adaptkit run whisper_lora` trains for real on a fresh checkout. For real speech set
model=openai/whisper-tiny (or any Whisper checkpoint) and use 16 kHz clips of up to 30 s.

    python examples/audio/make_tones.py            # rewrites the clips, both files and the model
"""

from __future__ import annotations

import json
import math
import random
import sys
import wave
from pathlib import Path

HERE = Path(__file__).resolve().parent
RATE = 16_000
SECONDS = 0.8  # every clip's length
WORDS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")
TONES = ((697, 1209), (697, 1336), (697, 1477), (770, 1209), (770, 1336), (770, 1477), (852, 1209), (852, 1336), (852, 1477),
         (941, 1336))  # a keypad's pair of tones for each digit
TRAIN, EVAL = 160, 40
SEED = 20261205
SPECIAL = ("<|endoftext|>", "<|startoftranscript|>", "<|en|>", "<|transcribe|>", "<|translate|>", "<|notimestamps|>")


def clip(digits: list[int], rng: random.Random) -> list[float]:
    """One clip: the digits' tone pairs, each 0.12-0.16 s with short gaps, pitch and speed shifted a little, over noise."""
    samples = [0.0] * int(RATE * SECONDS)
    at = rng.randint(0, int(RATE * 0.05))
    shift = 1 + rng.uniform(-0.03, 0.03)
    for digit in digits:
        length = int(RATE * rng.uniform(0.12, 0.16))
        low, high = TONES[digit]
        for i in range(length):
            t = i / RATE
            envelope = min(1.0, t / 0.01, (length / RATE - t) / 0.01)
            if at + i < len(samples):
                samples[at + i] += 0.35 * envelope * (math.sin(2 * math.pi * low * shift * t) + math.sin(2 * math.pi * high * shift * t))
        at += length + int(RATE * rng.uniform(0.03, 0.06))
    return [max(-1.0, min(1.0, s + rng.gauss(0, 0.03))) for s in samples]


def write_wav(path: Path, samples: list[float]) -> None:
    with wave.open(str(path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(1)  # 8-bit: the demo's clips stay small; adaptkit reads 8, 16 and 32-bit PCM
        out.setframerate(RATE)
        out.writeframes(bytes(int(round(s * 127)) + 128 for s in samples))


def write_split(name: str, count: int, rng: random.Random, out: Path) -> int:
    folder = out / name
    folder.mkdir(parents=True, exist_ok=True)
    rows = []
    for number in range(count):
        digits = [rng.randrange(10) for _ in range(rng.randint(1, 3))]
        path = folder / f"clip_{number:04d}.wav"
        write_wav(path, clip(digits, rng))
        rows.append({"audio": f"{name}/{path.name}", "text": " ".join(WORDS[d] for d in digits)})
    (out / f"{name}.jsonl").write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")
    return count


def write_model(out: Path) -> None:
    """A small Whisper from a config, seeded, with a tokenizer of the digit words and a 1 s feature window."""
    import torch
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import (WhisperConfig, WhisperFeatureExtractor, WhisperForConditionalGeneration, WhisperProcessor,
                              WhisperTokenizer)

    bpe = Tokenizer(models.BPE())
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    bpe.decoder = decoders.ByteLevel()
    bpe.train_from_iterator([" ".join(WORDS)] * 20, trainers.BpeTrainer(vocab_size=300, special_tokens=list(SPECIAL),
                                                                        initial_alphabet=pre_tokenizers.ByteLevel.alphabet()))
    saved = json.loads(bpe.to_str())["model"]
    merges = [tuple(m.split()) if isinstance(m, str) else tuple(m) for m in saved["merges"]]
    tokenizer = WhisperTokenizer(vocab=saved["vocab"], merges=merges, pad_token="<|endoftext|>")
    tokenizer.add_special_tokens({"additional_special_tokens": list(SPECIAL[1:])})
    features = WhisperFeatureExtractor(feature_size=80, chunk_length=1, sampling_rate=RATE)
    start = tokenizer.convert_tokens_to_ids("<|startoftranscript|>")
    torch.manual_seed(SEED)
    config = WhisperConfig(vocab_size=len(tokenizer), d_model=64, encoder_layers=2, decoder_layers=2, encoder_attention_heads=4,
                           decoder_attention_heads=4, encoder_ffn_dim=128, decoder_ffn_dim=128, num_mel_bins=80,
                           max_source_positions=features.nb_max_frames // 2, max_target_positions=32, decoder_start_token_id=start,
                           pad_token_id=tokenizer.pad_token_id, eos_token_id=tokenizer.eos_token_id, bos_token_id=tokenizer.eos_token_id)
    model = WhisperForConditionalGeneration(config)
    model.generation_config.decoder_start_token_id = start
    model.generation_config.forced_decoder_ids = None
    model.generation_config.max_length = 32
    model.save_pretrained(out / "whisper-demo")
    WhisperProcessor(feature_extractor=features, tokenizer=tokenizer).save_pretrained(out / "whisper-demo")


def main(out: Path = HERE) -> None:
    rng = random.Random(SEED)
    train = write_split("train", TRAIN, rng, out)
    held_out = write_split("eval", EVAL, rng, out)
    if "--data-only" not in sys.argv:
        write_model(out)
    print(f"wrote {train} training and {held_out} held-out clips of spoken digits to {out}")


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 and not sys.argv[1].startswith("--") else HERE)
