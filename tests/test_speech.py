"""Speech recognition: the demo's tone-coded digits, checked before any weights load, trained (LoRA or all weights),
scored by WER and CER against the model before training, transcribed by predict and over OpenAI's
/v1/audio/transcriptions, merged, exported as a script that agrees with adaptkit run, and sized by the estimator."""

import json
import wave
from pathlib import Path

import pytest

from tests.helpers_media import advised_recipe, refused, regenerates, rows, rows_from, write
from tests.test_export import run_without_adaptkit
from tests.test_serve import running

ROOT = Path(__file__).resolve().parent.parent
AUDIO = ROOT / "examples" / "audio"
QUICK = ["training.max_steps=12", "training.eval_every=12", "training.save_every=12", "training.generate_eval=8"]


def wav(path: Path, seconds: float, rate: int = 16_000) -> Path:
    with wave.open(str(path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(rate)
        out.writeframes(b"\x00\x01" * int(seconds * rate))
    return path


@pytest.mark.unit
def test_the_demo_clips_are_what_their_script_writes(tmp_path):
    regenerates(AUDIO, "make_tones.py", tmp_path, "eval/clip_0000.wav")


@pytest.mark.unit
def test_whisper_is_sized_from_its_config():
    from transformers import WhisperConfig, WhisperForConditionalGeneration

    from adaptkit.estimator.architectures import from_config

    tiny = WhisperConfig(vocab_size=51865, d_model=384, encoder_layers=4, decoder_layers=4, encoder_attention_heads=6,
                         decoder_attention_heads=6, encoder_ffn_dim=1536, decoder_ffn_dim=1536)  # openai/whisper-tiny's shape
    demo = WhisperConfig(**json.loads((AUDIO / "whisper-demo" / "config.json").read_text()))
    for config, frames in ((tiny, 1500), (demo, 50)):
        arch = from_config(config.to_dict())
        assert arch.total_params == sum(p.numel() for p in WhisperForConditionalGeneration(config).parameters())
        assert arch.input_tokens == frames


@pytest.mark.unit
def test_the_dry_run_shows_the_clips_and_sizes_the_encoder_frames(invoke):
    result = invoke("run", "whisper_lora", "--dry-run", "--json")
    assert result.exit_code == 0, result.output
    plan = json.loads(result.stdout)
    assert plan["data"]["audio"] == {"clips": 200, "seconds": [0.8, 0.8], "total_minutes": 2.67, "sample_rate": 16000, "window_s": 1.0}
    assert plan["memory"]["setup"]["seq_len"] == 50  # the encoder's frames for its 1 s window
    assert "audio: 200 clips of 0.8-0.8 s" in invoke("run", "whisper_lora", "--dry-run").output


@pytest.mark.unit
def test_bad_clips_are_one_line_each_before_any_weights_load(invoke, tmp_path):
    good = rows_from(AUDIO / "train.jsonl", "audio", 6)
    (tmp_path / "notes.wav").write_text("not a recording")
    cases = [
        ({"audio": "gone.wav", "text": "one"}, "row 7: no such audio file", "relative to the data file"),
        ({"audio": "notes.wav", "text": "one"}, "row 7: cannot read", "save it as 16-bit WAV"),
        ({"audio": str(wav(tmp_path / "phone.wav", 0.5, 8_000)), "text": "one"}, "sampled at 8,000 Hz; the model reads 16,000 Hz", "ffmpeg"),
        ({"audio": str(wav(tmp_path / "long.wav", 2.5)), "text": "one"}, "lasts 2.5 s, longer than the model's 1 s window", "shorter clips"),
        ({"audio": good[0]["audio"], "text": " "}, "have no text in `text`", "row 7"),
    ]
    for bad, said, also in cases:
        train = write(tmp_path / "train.jsonl", good + [bad])
        message = refused(invoke, "whisper_lora", f"data.train={train}", out=tmp_path / "out")
        assert said in message and also in message


@pytest.mark.unit
def test_advise_on_clips_with_transcripts_writes_a_speech_recipe(invoke, tmp_path):
    recipe = advised_recipe(invoke, AUDIO / "train.jsonl", tmp_path / "speech.yaml")
    assert recipe["task"] == "speech_recognition" and recipe["model"] == "openai/whisper-tiny"
    assert recipe["data"]["audio_column"] == "audio" and recipe["lora"]["target_modules"] == ["q_proj", "v_proj"]


@pytest.mark.unit
def test_an_error_rate_ranks_lower_first():
    from adaptkit.methods.registry import registry

    lora = registry()["lora_adapters"]
    assert lora.primary({"eval": {"wer": 0.25, "primary_metric": "wer"}}) == ("neg_wer", -0.25)
    from adaptkit.runners.report import learning_warnings

    said = learning_warnings({"eval": {"wer": 0.9, "primary_metric": "wer", "base": {"wer": 0.5}}}, [])
    assert any("is not below the base" in line for line in said)
    assert not learning_warnings({"eval": {"wer": 0.1, "primary_metric": "wer", "base": {"wer": 0.5}}}, [])
    from adaptkit.methods.bakeoff import _base_delta

    assert _base_delta({"eval": {"wer": 0.1, "base": {"wer": 0.5}}}, "neg_wer")["base_value"] == -0.5  # compared as it is ranked


def test_the_demo_trains_transcribes_serves_and_exports_a_script_that_agrees(invoke, tmp_path):
    from tests.conftest import check_resources

    out = tmp_path / "run_out"
    result = invoke("run", "whisper_lora", *QUICK, f"output_dir={out}", "--json")
    assert result.exit_code == 0, result.output
    metrics = json.loads(result.stdout)
    e = metrics["eval"]
    assert metrics["task"] == "speech_recognition" and e["primary_metric"] == "wer" and e["rows"] == 8
    assert e["base"]["kind"].startswith("the model before training") and set(e["delta"]) == {"wer", "cer"}
    check_resources(metrics)
    samples = rows(out / "samples.jsonl")
    assert len(samples) == 8 and {"audio", "reference", "prediction", "base"} <= set(samples[0])

    predicted = invoke("predict", out, AUDIO / "eval.jsonl", "-o", tmp_path / "p.jsonl", "--json")
    assert predicted.exit_code == 0, predicted.output
    assert set(json.loads(predicted.stdout)["scores"]) >= {"wer", "cer"}
    one = invoke("predict", out, AUDIO / "eval" / "clip_0000.wav")
    assert one.exit_code == 0, one.output
    said = json.loads(one.stdout)["prediction"]
    assert said == rows(tmp_path / "p.jsonl")[0]["prediction"]

    from openai import OpenAI

    from adaptkit.runners.serve import Served, create_app

    served = Served([str(out)])
    with running(create_app(served, max_request_kb=25_600)) as port:
        client = OpenAI(base_url=f"http://127.0.0.1:{port}/v1", api_key="unused", max_retries=0)
        with open(AUDIO / "eval" / "clip_0000.wav", "rb") as clip:
            assert client.audio.transcriptions.create(model="run_out", file=clip).text == said
        import httpx

        bad = httpx.post(f"http://127.0.0.1:{port}/v1/audio/transcriptions", data={"model": "run_out"},
                         files={"file": ("x.wav", b"not audio")})
        assert bad.status_code == 400 and "cannot read" in bad.json()["error"]["message"]
        long = httpx.post(f"http://127.0.0.1:{port}/v1/audio/transcriptions", data={"model": "run_out"},
                          files={"file": ("long.wav", wav(tmp_path / "long.wav", 2.5).read_bytes())})
        assert long.status_code == 400 and "longer than the model's 1 s window" in long.json()["error"]["message"]  # not cut silently
        chat = httpx.post(f"http://127.0.0.1:{port}/v1/chat/completions", json={"model": "run_out", "messages": [{"role": "user", "content": "hi"}]})
        assert chat.status_code == 400 and "/v1/audio/transcriptions" in chat.json()["error"]["message"]

    script = tmp_path / "train.py"
    assert invoke("export", "whisper_lora", *QUICK, f"output_dir={tmp_path / 'script_out'}", "-o", script).exit_code == 0
    from_script = run_without_adaptkit(script, tmp_path)
    assert from_script["eval"]["loss"] == pytest.approx(e["loss"], rel=1e-6)
    assert from_script["eval"]["wer"] == pytest.approx(e["wer"]) and from_script["eval"]["cer"] == pytest.approx(e["cer"])
    assert from_script["train"]["final_loss"] == pytest.approx(metrics["train"]["final_loss"], rel=1e-6)

    merged = tmp_path / "merged"
    assert invoke("merge", out, "-o", merged).exit_code == 0
    from transformers import AutoModelForSpeechSeq2Seq, AutoProcessor

    assert AutoModelForSpeechSeq2Seq.from_pretrained(merged) is not None and AutoProcessor.from_pretrained(merged) is not None


def test_all_weights_learn_the_digits(invoke, tmp_path):
    result = invoke("run", "whisper_lora", "method=full_finetuning", "lora=", "training.learning_rate=0.002", "training.max_steps=60",
                    f"output_dir={tmp_path / 'full'}", "--json")
    assert result.exit_code == 0, result.output
    e = json.loads(result.stdout)["eval"]
    assert e["base"]["wer"] >= 0.99 and e["wer"] < e["base"]["wer"]  # it transcribes more of the held-out digits than before


def test_lora_without_targets_on_whisper_is_one_line_before_its_weights_load(invoke, tmp_path):
    result = invoke("run", "whisper_lora", "lora.target_modules=null", "lora.modules_to_save=null", f"output_dir={tmp_path / 'out'}")
    assert result.exit_code == 2 and "set lora.target_modules (Whisper: [q_proj, v_proj])" in result.stderr
    assert not (tmp_path / "out").exists()
