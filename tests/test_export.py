"""adaptkit export: a standalone script that reproduces adaptkit run without importing adaptkit."""

import json
import os
import subprocess
import sys

import pytest

pytest.importorskip("peft")

QUICK = ["training.max_steps=4", "data.max_rows=48"]


def run_without_adaptkit(script, tmp_path) -> dict:
    """Run an exported script with adaptkit made unimportable; return the metrics it wrote to script_out/."""
    poison = tmp_path / "poison" / "adaptkit"
    poison.mkdir(parents=True)
    (poison / "__init__.py").write_text("raise ImportError('the exported script imported adaptkit')\n")
    env = {**os.environ, "PYTHONPATH": str(poison.parent), "HF_HUB_OFFLINE": "1"}
    ran = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, env=env, cwd=tmp_path, timeout=600)
    assert ran.returncode == 0, ran.stderr[-2000:]
    return json.loads((tmp_path / "script_out" / "metrics.json").read_text())


def _trainer_figures(evaluation: dict) -> dict:
    """What the exported script reports too: the Trainer's figures, without adaptkit's base, delta and throughput."""
    return {k: v for k, v in evaluation.items() if k not in ("base", "delta", "primary_metric", "throughput", "interval")}


@pytest.mark.parametrize("recipe, extra", [("lora_cls", []), ("ia3_cls", []), ("full_cls", []), ("prompt_tuning_cls", []),
                                           ("lora_cls", ["data.eval=", "data.eval_fraction=0.2"])])  # a held-out share: the same rows
def test_exported_script_matches_adaptkit_run(invoke, tmp_path, recipe, extra):
    script = tmp_path / "train.py"
    exported = invoke("export", recipe, *QUICK, *extra, f"output_dir={tmp_path / 'script_out'}", "-o", script)
    assert exported.exit_code == 0, exported.output
    text = script.read_text()
    assert "import adaptkit" not in text and "from adaptkit" not in text
    from_script = run_without_adaptkit(script, tmp_path)
    result = invoke("run", recipe, *QUICK, *extra, f"output_dir={tmp_path / 'run_out'}", "--json")
    from_run = json.loads(result.stdout)
    assert from_script["eval"]["accuracy"] is not None
    assert from_script["eval"] == pytest.approx(_trainer_figures(from_run["eval"]), rel=1e-6)
    assert from_script["train"]["final_loss"] == pytest.approx(from_run["train"]["final_loss"], rel=1e-6)
    assert from_script["train"]["trainable_params"] == from_run["train"]["trainable_params"]


@pytest.mark.parametrize("extra", [["lora.use_dora=true", "lora.loraplus_lr_ratio=8"], ["lora.init=olora", "lora.use_rslora=true"]])
def test_exported_lora_variants_of_a_classifier_match(invoke, tmp_path, extra):
    script = tmp_path / "train.py"
    assert invoke("export", "lora_cls", *QUICK, *extra, f"output_dir={tmp_path / 'script_out'}", "-o", script).exit_code == 0
    from_script = run_without_adaptkit(script, tmp_path)
    from_run = json.loads(invoke("run", "lora_cls", *QUICK, *extra, f"output_dir={tmp_path / 'run_out'}", "--json").stdout)
    assert from_script["eval"] == pytest.approx(_trainer_figures(from_run["eval"]), rel=1e-6)
    assert from_script["train"]["trainable_params"] == from_run["train"]["trainable_params"]
    saved = [json.loads((tmp_path / folder / "adapter_config.json").read_text()) for folder in ("script_out", "run_out")]
    for config in saved:  # the run names the hub id of the embedded model; PEFT keeps target modules as a set
        config.pop("base_model_name_or_path")
        config["target_modules"] = sorted(config["target_modules"])
    assert saved[0] == saved[1] and not (tmp_path / "script_out" / "initial_adapter").exists()


@pytest.mark.parametrize("recipe, extra", [
    ("lora_sft", ["training.learning_rate=0.005"]),
    ("lora_sft", ["training.learning_rate=0.005", "lora.use_dora=true", "lora.use_rslora=true"]),
    ("lora_sft", ["training.learning_rate=0.005", "lora.loraplus_lr_ratio=16", "lora.init=pissa"]),
    ("instruction_tuning", ["training.learning_rate=0.003", "training.gradient_checkpointing=false"]),
    ("instruction_tuning", ["training.learning_rate=0.003", "training.precision=bf16", "training.optimizer=adafactor"]),
    ("dpo", ["training.learning_rate=0.002", "training.gradient_accumulation=1"]),
    ("kto", ["training.learning_rate=0.002", "training.gradient_accumulation=1"]),
    ("orpo", ["training.learning_rate=0.002", "training.gradient_accumulation=1"]),
    ("simpo", ["training.learning_rate=0.002", "training.gradient_accumulation=1"]),
    ("orpo", ["training.learning_rate=0.002", "training.gradient_accumulation=1", "preference.algorithm=cpo"]),
    ("rlhf", ["training.max_length=128", "rlhf.reward_model.max_steps=3", "rlhf.policy.max_steps=2", "rlhf.policy.max_completion_length=8",
              "rlhf.policy.eval_prompts=3", "rlhf.policy.batch_size=4"]),
    ("rlvr_math", ["training.max_length=96", "rlhf.policy.max_steps=2", "rlhf.policy.max_completion_length=8",
                   "rlhf.policy.eval_prompts=3", "rlhf.policy.batch_size=4", "rlhf.reward_functions=[{function: length_penalty, max_chars: 12}]"]),
])
def test_exported_causal_scripts_match_adaptkit_run(invoke, tmp_path, tiny_causal_lm, recipe, extra):
    common = [f"model={tiny_causal_lm}", "training.max_steps=3", "training.max_length=64", "data.max_rows=24", "training.generate_eval=0",
              *extra]
    script = tmp_path / "train.py"
    assert invoke("export", recipe, *common, f"output_dir={tmp_path / 'script_out'}", "-o", script).exit_code == 0
    from_script = run_without_adaptkit(script, tmp_path)
    from_run = json.loads(invoke("run", recipe, *common, f"output_dir={tmp_path / 'run_out'}", "--json").stdout)
    scored = {"exact_match", "token_f1", "rougeL", "chrf", "primary_metric", "generated_rows", "base", "delta", "throughput",
              "reference", "correct", "interval"}  # adaptkit run's answers, scored
    assert not scored & set(from_script["eval"])
    from_run["eval"] = {k: v for k, v in from_run["eval"].items() if k not in scored}  # the script reports the Trainer's figures
    unset = {k for k, v in from_run["eval"].items() if v is None}  # KTO has no pairwise accuracy
    assert unset == {k for k, v in from_script["eval"].items() if v is None}
    assert ({k: v for k, v in from_script["eval"].items() if k not in unset}
            == pytest.approx({k: v for k, v in from_run["eval"].items() if k not in unset}, rel=1e-5))
    if recipe not in ("rlhf", "rlvr_math"):  # the RL scripts report the evaluation only
        assert from_script["train"]["trainable_params"] == from_run["train"]["trainable_params"]


def test_qlora_script_loads_the_base_in_4_bits(invoke):
    text = invoke("export", "qlora_sft").stdout
    assert "'load_in_4bit': True" in text and "BitsAndBytesConfig" in text and "LoraConfig(task_type='CAUSAL_LM'" in text
    compile(text, "train.py", "exec")


def test_export_refuses_what_it_cannot_write_yet(invoke, tmp_path):
    result = invoke("export", "rag")
    assert result.exit_code == 2 and "rag trains nothing" in result.stderr
    target = tmp_path / "t.py"
    target.write_text("keep")
    again = invoke("export", "lora_cls", "-o", target)
    assert again.exit_code == 2 and "already exists" in again.stderr and target.read_text() == "keep"


@pytest.mark.parametrize("recipe", ["lora_cls", "full_cls", "lora_sft", "qlora_sft", "dpo", "rlhf", "rlvr_math"])
def test_accelerate_configs_parse(invoke, tmp_path, recipe):
    from accelerate.commands.config.config_args import load_config_from_file

    folder = tmp_path / "acc"
    result = invoke("export", recipe, "--format", "accelerate", "--gpus", "4", "--machines", "2", "-o", folder)
    assert result.exit_code == 0, result.output
    kinds = {}
    for name in ("single_gpu", "ddp", "fsdp", "deepspeed_zero3"):
        config = load_config_from_file(str(folder / f"{name}.yaml"))
        kinds[name] = (str(config.distributed_type), config.num_processes, config.mixed_precision)
    assert kinds["single_gpu"][1] == 1 and kinds["ddp"][1] == kinds["fsdp"][1] == 8
    assert "FSDP" in kinds["fsdp"][0] and "DEEPSPEED" in kinds["deepspeed_zero3"][0] and kinds["ddp"][2] == "bf16"
    launch = (folder / "LAUNCH.md").read_text()
    assert "--num_machines 2" in launch and "--machine_rank $RANK" in launch and f"-m adaptkit run {recipe}" in launch


@pytest.mark.parametrize("recipe, command", [("lora_sft", "sft"), ("instruction_tuning", "sft"), ("qlora_sft", "sft"), ("dpo", "dpo")])
def test_trl_config_parses_with_trls_own_parser(invoke, tmp_path, recipe, command):
    from trl import DPOConfig, ModelConfig, SFTConfig
    from trl.scripts.utils import DatasetMixtureConfig, TrlParser

    result = invoke("export", recipe, "--format", "trl", "-o", tmp_path / "trl.yaml")
    assert result.exit_code == 0, result.output
    text = (tmp_path / "trl.yaml").read_text()
    assert f"trl {command} --config" in text and "Not carried over" in text and "training.precision=auto" in text
    parser = TrlParser((DatasetMixtureConfig, DPOConfig if command == "dpo" else SFTConfig, ModelConfig))
    data, training, model = parser.parse_args_and_config(
        args=["--config", str(tmp_path / "trl.yaml"), "--use_cpu", "true", "--bf16", "false"])[:3]
    assert data.datasets[0].data_files.endswith(".jsonl")
    assert training.learning_rate > 0 and model.use_peft == (recipe != "instruction_tuning")
    if recipe == "qlora_sft":
        assert model.load_in_4bit and "messages" not in text.split("Not carried over")[1].split("\n")[0]


def test_trl_refuses_classification(invoke):
    result = invoke("export", "lora_cls", "--format", "trl")
    assert result.exit_code == 2 and "no TRL CLI equivalent" in result.stderr


def test_a_csv_recipe_exports_a_trl_config_that_loads_its_rows(invoke, tmp_path):
    """The TRL config named every local file's builder `json`, so TRL read a user's CSV as JSON and failed; and the
    export told the user to run the config with python."""
    from trl import ModelConfig, SFTConfig
    from trl.scripts.utils import DatasetMixtureConfig, TrlParser, get_dataset

    rows = tmp_path / "pairs.csv"
    rows.write_text("prompt,completion\n" + "".join(f"Where is order {i}?,It ships on day {i}.\n" for i in range(12)))
    result = invoke("export", "lora_sft", f"data.train={rows}", "data.eval=", "--format", "trl", "-o", tmp_path / "trl.yaml")
    assert result.exit_code == 0 and f"run it with: trl sft --config {tmp_path / 'trl.yaml'}" in result.stderr, result.output
    parser = TrlParser((DatasetMixtureConfig, SFTConfig, ModelConfig))
    data = parser.parse_args_and_config(args=["--config", str(tmp_path / "trl.yaml"), "--use_cpu", "true", "--bf16", "false"])[0]
    assert data.datasets[0].path == "csv"
    loaded = get_dataset(data)
    assert sum(len(split) for split in loaded.values()) == 12 and "completion" in loaded["train"].column_names
