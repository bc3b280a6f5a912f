"""The shipped accelerate configs parse with accelerate's own loader; the launch line is what accelerate expects."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from fintune import device
from fintune.errors import FintuneError
from fintune.train import distributed as D

ROOT = Path(__file__).resolve().parents[2]
EXPECTED = {"ddp": "MULTI_GPU", "zero2": "DEEPSPEED", "zero3": "DEEPSPEED", "fsdp": "FSDP"}


def _launch_env(name: str) -> dict[str, str]:
    """The environment `accelerate launch` would give the training processes for a shipped config."""
    from accelerate.commands.launch import _validate_launch_command, launch_command_parser
    from accelerate.utils.launch import prepare_deepspeed_cmd_env, prepare_multi_gpu_env

    cmd = D.launch_command(name, "recipe.yaml", num_processes=2)
    args, defaults, _ = _validate_launch_command(launch_command_parser().parse_args(cmd[2:]))
    if args.use_deepspeed:
        args.deepspeed_fields_from_accelerate_config = ",".join(defaults.deepspeed_config)
        return prepare_deepspeed_cmd_env(args)[1]
    return prepare_multi_gpu_env(args)


@pytest.mark.parametrize("name", D.SHIPPED_CONFIGS)
def test_shipped_config_parses(name: str) -> None:
    cfg = D.load_accelerate_config(name)
    assert cfg["distributed_type"] == EXPECTED[name]
    assert cfg["num_machines"] == 1 and cfg["compute_environment"] == "LOCAL_MACHINE"
    if name.startswith("zero"):
        assert cfg["deepspeed_json"]["zero_optimization"]["stage"] == int(name[-1])
        assert cfg["deepspeed_config"]["zero3_init_flag"] is (name == "zero3")
    if name == "fsdp":
        assert cfg["fsdp_config"]["fsdp_sharding_strategy"] == "FULL_SHARD"
        assert cfg["fsdp_config"]["fsdp_auto_wrap_policy"] == "TRANSFORMER_BASED_WRAP"


@pytest.mark.parametrize("name", D.SHIPPED_CONFIGS)
def test_launch_command_parses_with_accelerate(name: str) -> None:
    from accelerate.commands.launch import launch_command_parser

    cmd = D.launch_command(name, "recipes/x.yaml", num_processes=4, overrides=["lora_r=8"])
    assert cmd[:2] == ["accelerate", "launch"]
    args = launch_command_parser().parse_args(cmd[2:])
    assert Path(args.config_file) == ROOT / "configs" / "accelerate" / f"{name}.yaml"
    assert args.module and args.training_script == "fintune"
    assert args.training_script_args == ["train", "recipes/x.yaml", "--set", "lora_r=8"]
    assert args.num_processes == 4
    line = D.launch_command_line(name, "my recipe.yaml")
    assert line.endswith("-m fintune train 'my recipe.yaml'")


@pytest.mark.parametrize(("name", "expected"), [("ddp", "uint8"), ("zero2", "uint8"), ("zero3", "bfloat16"),
                                                ("fsdp", "bfloat16")])
def test_quant_storage_follows_accelerate_env(name: str, expected: str) -> None:
    env = _launch_env(name)
    assert device.quant_storage_dtype_for(env, "bfloat16") == expected
    assert device.quant_storage_dtype_for(env, "auto") == expected
    if expected != "uint8":
        assert device.quant_storage_dtype_for(env, "float16") == "float16"


def test_quant_storage_single_process_and_bad_dtype() -> None:
    assert device.launch_kind({}) == "single"
    assert device.quant_storage_dtype_for({}, "bfloat16") == "uint8"
    assert device.quant_storage_dtype_for({"WORLD_SIZE": "2"}, "bfloat16") == "uint8"
    assert device.launch_kind({"ACCELERATE_USE_DEEPSPEED": "true", "ACCELERATE_DEEPSPEED_ZERO_STAGE": "3"}) == "zero3"
    with pytest.raises(FintuneError, match="dtype 'int8'"):
        device.quant_storage_dtype_for("fsdp", "int8")


def test_bad_config_is_one_line_error(tmp_path: Path) -> None:
    with pytest.raises(FintuneError, match="not found"):
        D.resolve_config("zero4")
    bad = tmp_path / "ds.yaml"
    bad.write_text("compute_environment: LOCAL_MACHINE\ndistributed_type: DEEPSPEED\n"
                   "deepspeed_config:\n  deepspeed_config_file: nowhere/ds.json\n")
    with pytest.raises(FintuneError, match="nowhere/ds.json not found"):
        D.load_accelerate_config(bad)
    with pytest.raises(FintuneError, match="num_processes 0"):
        D.launch_command("ddp", "r.yaml", num_processes=0)


def test_accelerate_launch_runs_fintune_on_cpu() -> None:
    accelerate = Path(sys.executable).with_name("accelerate")
    if not accelerate.exists():
        pytest.skip("accelerate console script not installed beside this python")
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src") + os.pathsep + os.environ.get("PYTHONPATH", "")}
    cmd = [str(accelerate), "launch", "--config_file", str(D.resolve_config("ddp")), "--cpu",
           "--num_processes", "1", "-m", "fintune", "plan", "--help"]
    proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "--budget" in proc.stdout


@pytest.mark.parametrize("name", ["zero2", "zero3"])
def test_shipped_deepspeed_json_passes_deepspeeds_own_parser(name: str, tmp_path: Path) -> None:
    """The JSON accelerate hands to DeepSpeed, its "auto" values filled the way Trainer fills them, then parsed by
    ``deepspeed.runtime.config.DeepSpeedConfig`` (pydantic: unknown keys and bad stages are rejected)."""
    pytest.importorskip("deepspeed", reason="deepspeed not installed (pip install 'fintune[dist]')")
    from deepspeed.runtime.config import DeepSpeedConfig
    from pydantic import ValidationError
    from transformers import LlamaConfig, LlamaForCausalLM, TrainingArguments
    from transformers.integrations.deepspeed import HfTrainerDeepSpeedConfig

    raw = D.load_accelerate_config(name)["deepspeed_json"]
    hf = HfTrainerDeepSpeedConfig(json.loads(json.dumps(raw)))
    args = TrainingArguments(output_dir=str(tmp_path), per_device_train_batch_size=2, gradient_accumulation_steps=4,
                             use_cpu=True, report_to="none")
    model = LlamaForCausalLM(LlamaConfig(hidden_size=64, intermediate_size=128, num_hidden_layers=1,
                                         num_attention_heads=4, num_key_value_heads=2, vocab_size=100))
    hf.trainer_config_process(args)
    hf.trainer_config_finalize(args, model, 10)
    parsed = DeepSpeedConfig(hf.config)
    assert parsed.zero_optimization_stage == int(name[-1])
    assert parsed.train_micro_batch_size_per_gpu == 2 and parsed.gradient_accumulation_steps == 4
    # ZeRO-3 must gather full 16-bit weights on save, or the final adapter would be empty placeholders
    assert parsed.zero_config.gather_16bit_weights_on_model_save is (name == "zero3")
    typo = json.loads(json.dumps(hf.config))
    typo["zero_optimization"]["overlap_comn"] = True
    with pytest.raises(ValidationError):
        DeepSpeedConfig(typo)
