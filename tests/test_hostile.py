"""Malformed and hostile input across every command: each exits 2 with one line, no traceback, and writes nothing."""

import json
from pathlib import Path

import pytest

ROOT = Path(__file__).parent.parent
TICKETS = [json.loads(line) for line in (ROOT / "examples/data/support_tickets_train.jsonl").read_text().splitlines()[:40]]
BOMB = "a: &a [x, x, x, x, x, x, x, x, x]\n" + "".join(
    f"{n}: &{n} [{', '.join(['*' + p] * 9)}]\n" for p, n in zip("abcdefgh", "bcdefghi")) + "method: *i\n"
REQUIRED = ["--no-input", "--set", "task=classification", "--set", "goal=behavior", "--set", "weight_access=open"]


def config(**changes) -> str:
    base = {"model_type": "llama", "hidden_size": 64, "num_hidden_layers": 2, "num_attention_heads": 4, "intermediate_size": 128,
            "vocab_size": 1000}
    return json.dumps({**base, **changes})


FILES = {
    "emptymodel/notes.txt": "not a model\n",
    "bomb.yaml": BOMB,
    "dup.yaml": "method: lora_adapters\nmethod: dpo\n",
    "rec.yaml": "a: &a [1, *a]\n",
    "empty.yaml": "",
    "list.yaml": "- a\n- b\n",
    "latin1.yaml": b"method: caf\xe9\n",
    "bad.json": "{not json",
    "missing_col.jsonl": "".join(json.dumps(r if i != 3 else {"label": r["label"]}) + "\n" for i, r in enumerate(TICKETS)),
    "missing_prompt.jsonl": "".join(json.dumps({"prompt": "Hi", "response": "Hello"} if i != 2 else {"response": "x"}) + "\n"
                                    for i in range(6)),
    "sft.jsonl": "".join(json.dumps({"prompt": "Hi", "response": f"Hello {i}"}) + "\n" for i in range(6)),
    "extra.csv": "text,label\nmy card was charged twice,billing\nreset, my password please,account_access\n",
    "latin1.csv": b"text,label\ncaf\xe9 order,billing\nhi,account_access\n",
    "existing.yaml": "kept: true\n",
    "existing.py": "print('kept')\n",
    "afile": "a file\n",
    "cfg_zero/config.json": config(hidden_size=0),
    "cfg_neg/config.json": config(num_hidden_layers=-2),
    "cfg_huge/config.json": config(hidden_size=2_000_000_000, num_hidden_layers=100_000),
    "cfg_str/config.json": config(hidden_size="big"),
    "cfg_bool/config.json": config(vocab_size=True),
    "cfg_badjson/config.json": "{",
    "cfg_type/config.json": config(model_type="nope"),
    "adir/placeholder.txt": "x",
    "emptydir/.keep": "",
    "accel/ddp.yaml": "kept: true\n",
    **{f"bake/{method}.yaml": "kept: true\n" for method in ("full_finetuning", "instruction_tuning", "rlhf", "dpo", "lora_adapters",
                                                              "prefix_prompt_tuning", "in_context_learning", "prompt_engineering",
                                                              "rag", "tool_use")},
}

CASES = [
    # recipes validate: the file itself
    ("recipes", "validate", "bomb.yaml"), ("recipes", "validate", "dup.yaml"), ("recipes", "validate", "rec.yaml"),
    ("recipes", "validate", "empty.yaml"), ("recipes", "validate", "list.yaml"), ("recipes", "validate", "latin1.yaml"),
    ("recipes", "validate", "nope.yaml"), ("recipes", "validate", "lora_clss"), ("recipes", "validate", "adir/"),
    # values that parse but make no sense
    ("recipes", "validate", "lora_cls", "training.seed=-1"), ("recipes", "validate", "lora_cls", "training.seed=4294967296"),
    ("recipes", "validate", "lora_cls", "training.epochs=.inf"), ("recipes", "validate", "lora_cls", "training.epochs=.nan"),
    ("recipes", "validate", "lora_cls", "training.learning_rate=1e400"), ("recipes", "validate", "lora_cls", "training.batch_size=0"),
    ("recipes", "validate", "lora_cls", "training.batch_size=1e400"), ("recipes", "validate", "lora_cls", "training.max_length=1e400"),
    ("recipes", "validate", "lora_cls", "data.eval_fraction=0.9"), ("recipes", "validate", "rag", "rag.top_k=0"),
    ("recipes", "validate", "rag", "rag.max_corpus_mb=-1"), ("recipes", "validate", "tool_use", "tools.max_steps=-1"),
    ("recipes", "validate", "dpo", "preference.beta=.inf"), ("recipes", "validate", "rlhf", "rlhf.policy.kl_coef=.nan"),
    # the data
    ("recipes", "validate", "lora_cls", "data.train=missing.jsonl"), ("recipes", "validate", "lora_cls", "data.train=missing_col.jsonl"),
    ("recipes", "validate", "lora_cls", "data.train=extra.csv"), ("recipes", "validate", "lora_cls", "data.train=latin1.csv"),
    ("recipes", "validate", "lora_cls", "data.train=adir"), ("recipes", "validate", "lora_sft", "data.train=missing_prompt.jsonl"),
    # keys and overrides
    ("recipes", "validate", "lora_cls", "unknownkey=1"), ("recipes", "validate", "lora_cls", "training.nope=1"),
    ("recipes", "validate", "lora_cls", "method=nonsense"), ("recipes", "validate", "lora_cls", "=x"),
    ("recipes", "validate", "lora_cls", "noequals"), ("recipes", "validate", "lora_cls", "model="),
    ("recipes", "validate", "lora_cls", "data=[1, 2]"), ("recipes", "validate", "lora_cls", "training.epochs.x=1"),
    ("recipes", "validate", "prompt_engineering", "prompts.variants=[{name: a, template: 'Ticket {txt}'}]"),
    ("recipes", "validate", "icl", "icl.example_template=In {text} out {lable}"),
    ("recipes", "validate", "rag", "rag.prompt=Q {question} S {source}"),
    # run --dry-run
    ("run", "bomb.yaml", "--dry-run"), ("run", "dup.yaml", "--dry-run"), ("run", "lora_cls", "--dry-run", "training.epochs=.inf"),
    ("run", "lora_cls", "--dry-run", "data.train=missing_col.jsonl"), ("run", "lora_cls", "--dry-run", "data.train=extra.csv"),
    ("run", "lora_sft", "--dry-run", "data.train=missing_prompt.jsonl"), ("run", "dpo", "--dry-run", "data.train=sft.jsonl"),
    ("run", "rag", "--dry-run", "rag.corpus=missing"), ("run", "rag", "--dry-run", "rag.index_dir=o", "output_dir=o"),
    ("run", "tool_use", "--dry-run", "tools.table=missing.csv"),
    # run: refused before anything is written
    ("run", "lora_cls", "output_dir=/proc/adaptkit-x"), ("run", "lora_cls", "output_dir=afile/below"), ("run", "lora_cls", "output_dir=afile"),
    ("run", "lora_cls", "output_dir=o", "training.precision=bf16-mixed"), ("run", "lora_cls", "output_dir=o", "model=./missing-model"),
    ("run", "lora_cls", "--overwrite", "--resume"), ("run", "lora_cls", "--stage", "policy"), ("run", "rag", "--resume"),
    ("run", "lora_cls", "--resume", "output_dir=emptydir"), ("run", "lora_cls", "output_dir=adir"),
    ("run", "lora_cls", "output_dir=adir", "--overwrite"),
    ("run", "tool_use", "tools.custom=[{function: 'x.py:f'}]", "output_dir=o"),
    ("run", "prompt_engineering", "prompts.scorer=m:f", "output_dir=o"),
    ("run", "lora_cls", "--num-processes", "0"), ("run", "lora_cls", "--accelerate-config", "missing.yaml"), ("run",),
    ("run", "lora_cls", "--bogus"),
    # advise
    ("advise", "--answers", "bomb.yaml"), ("advise", "--answers", "dup.yaml"), ("advise", "--answers", "nope.yaml"),
    ("advise", "--answers", "adir"), ("advise", "--answers", "bad.json"), ("advise", "--set", "x"), ("advise", "--no-input"),
    ("advise", *REQUIRED, "--set", "labeled_examples=1e400"), ("advise", *REQUIRED, "--set", "budget_usd=nan"),
    ("advise", *REQUIRED, "--set", "gpu_vram_gb=inf"), ("advise", *REQUIRED, "--set", "task=poetry"),
    ("advise", *REQUIRED, "--set", "model_params_b=-7B"), ("advise", *REQUIRED, "--set", "nonsense_key=1"),
    ("advise", *REQUIRED, "--set", "num_gpus=2.5"), ("advise", *REQUIRED, "--set", "latency_slo_ms=.inf"),
    ("advise", *REQUIRED, "--emit-recipe", "existing.yaml"), ("advise", *REQUIRED, "--save-answers", "adir"),
    ("advise", *REQUIRED, "--emit-recipe", "afile/r.yaml"),
    ("advise", *REQUIRED, "--save-answers", "new.yaml", "--emit-recipe", "existing.yaml"),
    ("advise", *REQUIRED, "--set", "labeled_examples=2k", "--bake-off", "bake"),
    # estimate
    ("estimate", "--params", "7B", "--tokens", "1e400"), ("estimate", "--params", "0"), ("estimate", "--params", "-7B"),
    ("estimate", "--params", "abc"), ("estimate", "--params", "1e400"), ("estimate", "--model", "cfg_zero"),
    ("estimate", "--model", "cfg_neg"), ("estimate", "--model", "cfg_huge"), ("estimate", "--model", "cfg_str"),
    ("estimate", "--model", "cfg_bool"), ("estimate", "--model", "cfg_badjson"), ("estimate", "--model", "cfg_type"),
    ("estimate", "--params", "7B", "--gpu-memory-gb", "0"), ("estimate", "--params", "7B", "--requests-per-day", "inf"),
    ("estimate", "--params", "7B", "--gpu", "NOPE"), ("estimate", "--model", "not-a-model-anywhere"), ("estimate",),
    ("estimate", "--params", "7B", "--model", "x"), ("estimate", "--params", "7B", "--usd-per-1m-input", "-1"),
    ("estimate", "--params", "7B", "--batch-size", "0"),
    # export
    ("export", "lora_cls", "--format", "accelerate", "-o", "afile"), ("export", "lora_cls", "-o", "existing.py"),
    ("export", "rag"), ("export", "lora_cls", "-o", "adir"), ("export", "lora_cls", "--format", "trl"),
    ("export", "lora_cls", "--format", "accelerate", "-o", "accel"), ("export", "lora_cls", "-o", "afile/sub/x.py"),
    # compare
    ("compare", "lora_cls", "--target", "acc=0.9"), ("compare", "lora_cls", "--target", "accuracy=inf"),
    ("compare", "lora_cls", "--target", "accuracy"), ("compare", "lora_cls", "--output-dir", "afile"),
    # recipes, hardware, methods
    ("recipes", "copy", "lora_cls", "existing.yaml"), ("recipes", "copy", "lora_cls", "afile/x.yaml"),
    ("recipes", "show", "nope"), ("recipes", "copy", "nope", "x.yaml"), ("hardware", "--bogus"), ("methods", "extra"),
    # issue 25: paths the system refuses, devices, absurd sizes, a folder that is not a model
    ("run", "a" * 300 + ".yaml"), ("recipes", "validate", "b" * 300 + ".yaml"), ("advise", "--answers", "/dev/zero"),
    ("estimate", "--params", "7B", "--seq-len", "1000000000000"), ("run", "lora_cls", "--dry-run", "training.max_length=1000000000000"),
    ("estimate", "--params", "7B", "--method", "lora_adapters", "--lora-targets", ","),
    ("run", "lora_cls", "model=./emptymodel", "--dry-run"), ("run", "lora_cls", "model=./emptymodel"),
    ("estimate", "--method", "qlora", "--params", "7B"),
]


@pytest.fixture
def sandbox(tmp_path, monkeypatch):
    """A working folder with the hostile files, and an empty home."""
    for name, content in FILES.items():
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content) if isinstance(content, bytes) else path.write_text(content)
    (tmp_path / "home").mkdir()
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.chdir(tmp_path)
    return tmp_path


def contents(folder: Path) -> dict:
    return {str(p.relative_to(folder)): p.read_bytes() if p.is_file() else None for p in sorted(folder.rglob("*"))}


def test_there_are_about_a_hundred_cases():
    assert len(CASES) >= 100 and len(set(CASES)) == len(CASES)


@pytest.mark.parametrize("args", CASES, ids=lambda args: " ".join(args)[:60])
def test_bad_input_is_one_line_exit_2_and_writes_nothing(invoke, sandbox, args):
    before = contents(sandbox)
    result = invoke(*args)
    lines = result.stderr.strip().splitlines()
    assert result.exit_code == 2, result.output
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    assert "Traceback" not in result.output and len(lines[0]) < 400, result.stderr
    assert contents(sandbox) == before


def test_outputs_in_new_nested_folders_are_created(invoke, sandbox):
    """A file the user names in folders that do not exist yet gets them; nothing that exists is touched."""
    for args, made in [(("advise", *REQUIRED, "--emit-recipe", "out/deep/r.yaml"), "out/deep/r.yaml"),
                       (("export", "lora_cls", "-o", "scripts/a/train.py"), "scripts/a/train.py"),
                       (("recipes", "copy", "lora_cls", "mine/recipes/lora.yaml"), "mine/recipes/lora.yaml")]:
        result = invoke(*args)
        assert result.exit_code == 0, result.output
        assert (sandbox / made).is_file()


def test_a_csv_with_a_byte_order_mark_reads_like_any_other(invoke, tmp_path):
    rows = "".join(f"{r['text'].replace(',', ' ')},{r['label']}\n" for r in TICKETS)
    (tmp_path / "bom.csv").write_bytes(b"\xef\xbb\xbf" + f"text,label\n{rows}".encode())
    result = invoke("recipes", "validate", "lora_cls", f"data.train={tmp_path / 'bom.csv'}", "data.eval=")
    assert result.exit_code == 0 and "40 train" in result.stdout, result.output


def test_compare_fails_when_every_recipe_failed(invoke, tmp_path):
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "metrics.json").write_text("{not json")
    empty = tmp_path / "empty"
    empty.mkdir()
    result = invoke("compare", broken, empty, "--output-dir", tmp_path / "c")
    assert result.exit_code == 1 and "every recipe failed" in result.stderr and "Traceback" not in result.output
    assert "cannot read its metrics.json" in result.stdout and "not a finished run" in result.stdout


def test_a_damaged_run_folder_is_one_line_before_anything_loads(invoke, tmp_path, monkeypatch):
    """A run folder whose files are damaged or missing, binary stdin, merge onto a link: exit 2, one line, no
    `unexpected`; and the weights a run writes follow the umask."""
    import shutil

    monkeypatch.chdir(tmp_path)
    ok = tmp_path / "ok"
    assert invoke("run", "lora_cls", f"output_dir={ok}", "training.max_steps=2", "data.max_rows=32").exit_code == 0
    from adaptkit._files import file_mode

    assert (ok / "adapter_model.safetensors").stat().st_mode & 0o777 == file_mode()
    damage = {"config": lambda f: (f / "adapter_config.json").write_text("{not json"),
              "cut": lambda f: (f / "adapter_model.safetensors").write_bytes((f / "adapter_model.safetensors").read_bytes()[:100]),
              "type": lambda f: (f / "adapter_config.json").write_text(
                  (f / "adapter_config.json").read_text().replace('"peft_type": "LORA"', '"peft_type": "NOPE"')),
              "gone": lambda f: (f / "adapter_model.safetensors").unlink()}
    for name, harm in damage.items():
        folder = tmp_path / name
        shutil.copytree(ok, folder)
        harm(folder)
        for args in (("predict", folder, "-"), ("merge", folder, "-o", tmp_path / f"merged-{name}")):
            result = invoke(*args, input='{"text": "hi"}\n')
            lines = result.stderr.strip().splitlines()
            assert result.exit_code == 2 and len(lines) == 1 and "unexpected" not in lines[0], (name, args, result.stderr)
    binary = invoke("predict", ok, "-", input=bytes(range(256)) * 4)
    assert binary.exit_code == 2 and "not UTF-8" in binary.stderr
    (tmp_path / "link").symlink_to(tmp_path / "elsewhere")
    linked = invoke("merge", ok, "-o", tmp_path / "link")
    assert linked.exit_code == 2 and "symbolic link" in linked.stderr and not (tmp_path / "elsewhere").exists()

