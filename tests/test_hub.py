"""--push-to-hub: refused before training when it cannot work; the upload against a recording stand-in for HfApi."""

import json

import pytest

from adaptkit.runners import hub


def test_offline_fails_before_training(invoke, tmp_path):
    out = tmp_path / "run"
    result = invoke("run", "lora_cls", f"output_dir={out}", "--push-to-hub", "me/tickets")
    assert result.exit_code == 2 and "offline" in result.stderr
    assert not out.exists()


@pytest.mark.parametrize("repo, words", [("not a repo", "OWNER/NAME"), ("me/tickets", "needs a Hub token")])
def test_bad_repo_or_no_token_is_one_line(invoke, tmp_path, monkeypatch, repo, words):
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.delenv("HF_TOKEN", raising=False)
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))  # no stored login
    result = invoke("run", "lora_cls", f"output_dir={tmp_path / 'run'}", "--push-to-hub", repo)
    assert result.exit_code == 2 and words in result.stderr and not (tmp_path / "run").exists()


class Recorder:
    calls = []

    def __init__(self, token=None):
        self.token = token

    def create_repo(self, repo_id, **kwargs):
        Recorder.calls.append(("create_repo", repo_id, kwargs))

    def upload_folder(self, **kwargs):
        Recorder.calls.append(("upload_folder", kwargs["repo_id"], kwargs))

    def create_commit(self, repo_id, operations, **kwargs):
        Recorder.calls.append(("create_commit", repo_id, {"files": {op.path_in_repo: op.path_or_fileobj for op in operations}}))


def test_a_finished_run_is_uploaded_with_a_card_for_the_hub(invoke, tmp_path, monkeypatch):
    import huggingface_hub

    Recorder.calls = []
    monkeypatch.setattr(huggingface_hub, "HfApi", Recorder)
    monkeypatch.setattr(hub, "check_push", lambda repo: "hf_secret_token")
    out = tmp_path / "run"
    result = invoke("run", "lora_cls", f"output_dir={out}", "training.max_steps=2", "training.batch_size=8", "data.max_rows=32",
                    "--push-to-hub", "me/tickets", "--hub-license", "apache-2.0", "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["method"] == "lora_adapters"  # stdout stays the metrics
    assert "pushed" in result.stderr and "https://huggingface.co/me/tickets" in result.stderr
    kinds = [c[0] for c in Recorder.calls]
    assert kinds == ["create_repo", "upload_folder", "create_commit"]
    assert Recorder.calls[0][2]["private"] is True
    upload = Recorder.calls[1][2]
    assert upload["folder_path"] == str(out) and "checkpoint-*" in upload["ignore_patterns"] and "*.bin" in upload["ignore_patterns"]
    card = Recorder.calls[2][2]["files"]["README.md"].decode()
    assert card.startswith("---\nlicense: apache-2.0\n") and "base_model: sentence-transformers/all-MiniLM-L6-v2" in card
    assert "PeftModel.from_pretrained(base, 'me/tickets')" in card and str(out) not in card
    assert "sha256 " in card and "hf_secret_token" not in card + result.output
