"""Two-process CPU training for real: ``torchrun`` and ``accelerate launch`` (DDP on gloo), FSDP, DeepSpeed.

One tiny Llama + LoRA recipe on real FPB rows (data prepared by the run itself, so the barrier is exercised). A
single-process reference with the same global batch (4 = 1 x 4) gives the loss curve every launch must match:
torchrun (2 x 2) for steps 1-4, then ``accelerate launch`` resuming that two-process checkpoint for steps 5-6.
``launch_audit.py`` wraps the CLI under torchrun and logs every file each rank writes.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from tests.tiny import make_tiny_model_dir

from fintune.cli import main
from fintune.recipe import load_recipe
from fintune.train.sft import train_sft

ROOT = Path(__file__).resolve().parents[2]
AUDIT = Path(__file__).with_name("launch_audit.py")
BIN = Path(sys.executable).parent
REF_STEPS = 6


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _env(**extra: str) -> dict[str, str]:
    path = os.pathsep.join([str(ROOT / "src"), str(ROOT), os.environ.get("PYTHONPATH", "")])
    return {**os.environ, "PYTHONPATH": path, "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false",
            "OMP_NUM_THREADS": "1", **extra}


def _launch(cmd: list[str], cwd: Path, timeout: int = 300, **env: str) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(cmd, cwd=cwd, env=_env(**env), capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0, (proc.stdout[-3000:], proc.stderr[-6000:])
    return proc


def _losses(run: Path) -> list[float]:
    return [r["loss"] for r in map(json.loads, (run / "metrics.jsonl").read_text().splitlines()) if "loss" in r]


def _summary_lines(stdout: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in stdout.splitlines() if line.startswith('{"global_step"')]


def _accelerate(*flags: str) -> list[str]:
    exe = BIN / "accelerate"
    if not exe.exists():
        pytest.skip("accelerate console script not installed beside this python")
    return [str(exe), "launch", *flags, "--num_processes", "2", "--main_process_port", str(_port())]


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory, shared_data: Path) -> dict[str, Any]:
    """Tiny Llama, the recipe (per-device batch 2, constant LR), and the single-process batch-4 reference."""
    root = tmp_path_factory.mktemp("mp")
    model = make_tiny_model_dir(root, "llama")
    raw = {"name": "tiny-ddp", "model_name_or_path": str(model), "dtype": "float32", "method": "lora",
           "lora_r": 4, "lora_alpha": 8, "lora_dropout": 0.0, "target_modules": ["q_proj", "v_proj"],
           "per_device_train_batch_size": 2, "learning_rate": 5e-3, "lr_scheduler_type": "constant",
           "warmup_ratio": 0.0, "max_steps": 4, "save_steps": 2, "max_seq_length": 128, "logging_steps": 1,
           "bf16": False, "seed": 3,
           "data": {"task": "sentiment", "format": "label", "template": "auto",
                    "sources": [{"name": "phrasebank", "path": str(shared_data / "financial_phrasebank"),
                                 "agreement": "all", "limit": 40}],
                    "split": {"method": "stratified", "test_size": 0.25, "val_size": 0.1, "seed": 3}}}
    recipe = root / "recipe.yaml"
    recipe.write_text(yaml.safe_dump(raw))
    ref = train_sft(load_recipe(str(recipe), ["per_device_train_batch_size=4", f"max_steps={REF_STEPS}"]),
                    out=root / "single")
    assert ref["world_size"] == 1 and ref["global_batch_size"] == 4
    return {"root": root, "recipe": recipe, "ref": _losses(root / "single")}


@pytest.fixture(scope="module")
def torchrun_run(setup: dict[str, Any]) -> dict[str, Any]:
    """``torchrun --nproc_per_node 2`` of ``fintune train`` (4 steps), every rank's writes audited."""
    root = setup["root"]
    run, audit = root / "ddp", root / "audit"
    audit.mkdir()
    cmd = [str(BIN / "torchrun"), "--nproc_per_node", "2", "--master_addr", "127.0.0.1", "--master_port",
           str(_port()), str(AUDIT), "train", str(setup["recipe"]), "--out", str(run)]
    proc = _launch(cmd, root, FINTUNE_AUDIT_ROOT=str(run), FINTUNE_AUDIT_DIR=str(audit))
    events = {r: [json.loads(line) for line in (audit / f"rank{r}.jsonl").read_text().splitlines()] for r in (0, 1)}
    return {"run": run, "proc": proc, "events": events}


def test_torchrun_two_processes(setup: dict[str, Any], torchrun_run: dict[str, Any]) -> None:
    run, proc, events = torchrun_run["run"], torchrun_run["proc"], torchrun_run["events"]
    # both ranks stepped, and each wrote its own RNG state into every checkpoint
    for r in (0, 1):
        assert f"rank {r}/2: 4 optimizer steps" in proc.stderr
    for step in (2, 4):
        ckpt = run / "checkpoints" / f"checkpoint-{step}"
        assert {p.name for p in ckpt.glob("rng_state_*.pth")} == {"rng_state_0.pth", "rng_state_1.pth"}
    assert not (run / "checkpoints" / ".staging").exists() and not (run / ".final").exists()
    # one summary line, one manifest recording the world size
    (summary,) = _summary_lines(proc.stdout)
    assert summary["world_size"] == 2 and summary["global_batch_size"] == 4 and summary["launch"] == "ddp"
    manifest = json.loads((run / "manifest.json").read_text())
    assert manifest["world_size"] == 2 and manifest["training"]["global_step"] == 4
    # the loss curve is the single-process run's with the same global batch
    assert _losses(run) == pytest.approx(setup["ref"][:4], rel=1e-4)
    # only rank 0 wrote run files (rank 1 only ran exist_ok mkdirs; its RNG file is written by torch's C++ writer)
    assert all(e["event"] == "os.mkdir" for e in events[1]), events[1]
    renamed = [Path(e["paths"][1]).relative_to(run) for e in events[0] if e["event"] == "os.rename" and e["paths"][1]]
    for name in ("manifest.json", "adapter_model.safetensors", "adapter_config.json", "metrics.jsonl", "data",
                 "loss_curve.png", "checkpoints/checkpoint-2", "checkpoints/checkpoint-4"):
        assert renamed.count(Path(name)) == 1, (name, renamed)
    written = [e["path"] for e in events[0] if e["event"] == "write"]
    assert len(written) == len(set(written)) or all(p.endswith("metrics.jsonl") for p in written
                                                    if written.count(p) > 1)


def test_accelerate_launch_resumes_two_process_checkpoint(setup: dict[str, Any], torchrun_run: dict[str, Any],
                                                           capsys: pytest.CaptureFixture[str]) -> None:
    run = setup["root"] / "ddp-resumed"
    shutil.copytree(torchrun_run["run"], run)
    cmd = [*_accelerate("--multi_gpu", "--num_machines", "1", "--mixed_precision", "no"), "-m", "fintune",
           "train", str(setup["recipe"]), "--out", str(run), "--resume", "--set", f"max_steps={REF_STEPS}"]
    proc = _launch(cmd, setup["root"])
    for r in (0, 1):
        assert f"rank {r}/2: {REF_STEPS} optimizer steps" in proc.stderr
    (summary,) = _summary_lines(proc.stdout)
    assert summary["world_size"] == 2 and summary["global_step"] == REF_STEPS
    assert json.loads((run / "manifest.json").read_text())["world_size"] == 2
    # steps 5-6 continue the exact single-process curve: model, optimizer, RNG and data order all restored
    assert _losses(run) == pytest.approx(setup["ref"], rel=1e-4)
    # the one adapter loads and scores through the normal eval path
    out = setup["root"] / "eval"
    assert main(["eval", str(run), "--data", str(run / "data"), "--out", str(out), "--limit", "6",
                 "--bootstrap-samples", "0", "--no-progress"]) == 0
    capsys.readouterr()
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["n"] == 6 and metrics["invalid_rate"] == 0.0
    for pred in map(json.loads, (out / "predictions.jsonl").read_text().splitlines()):
        assert set(pred["probabilities"]) == {"negative", "neutral", "positive"}
        assert sum(pred["probabilities"].values()) == pytest.approx(1.0, abs=1e-6)


@pytest.mark.slow
def test_fsdp_on_cpu_saves_full_weights(setup: dict[str, Any], torchrun_run: dict[str, Any]) -> None:
    """accelerate's FSDP plugin runs on gloo once ``sync_module_states`` is off (it asks for a GPU device id)."""
    from peft import PeftModel
    from safetensors.torch import load_file
    from transformers import AutoModelForCausalLM

    run = setup["root"] / "fsdp"
    cmd = [*_accelerate("--config_file", str(ROOT / "configs" / "accelerate" / "fsdp.yaml"), "--mixed_precision",
                        "no", "--fsdp_sync_module_states", "false", "--fsdp_cpu_ram_efficient_loading", "false"),
           "-m", "fintune", "train", str(setup["recipe"]), "--out", str(run), "--set", "max_steps=2"]
    proc = _launch(cmd, setup["root"])
    (summary,) = _summary_lines(proc.stdout)
    assert summary["launch"] == "fsdp" and summary["world_size"] == 2
    assert _losses(run) == pytest.approx(setup["ref"][:2], rel=1e-4)
    # full (gathered) adapter tensors, equal to DDP's after the same two steps, loadable without FSDP
    fsdp = load_file(run / "adapter_model.safetensors")
    ddp = load_file(torchrun_run["run"] / "checkpoints" / "checkpoint-2" / "adapter_model.safetensors")
    assert fsdp.keys() == ddp.keys()
    for k in ddp:
        assert fsdp[k].shape == ddp[k].shape and (fsdp[k] - ddp[k]).abs().max() < 1e-5, k
    base = AutoModelForCausalLM.from_pretrained(json.loads((run / "manifest.json").read_text())["base_model"])
    assert isinstance(PeftModel.from_pretrained(base, str(run)), PeftModel)


@pytest.mark.slow
def test_deepspeed_zero3_on_cpu(setup: dict[str, Any], torchrun_run: dict[str, Any]) -> None:
    """DeepSpeed picks its CPU accelerator here (gloo; it JIT-builds its shm comm op with g++ on first use)."""
    pytest.importorskip("deepspeed", reason="deepspeed not installed (pip install 'fintune[dist]')")
    if not shutil.which("g++") and not shutil.which("c++"):
        pytest.skip("DeepSpeed's CPU accelerator JIT-compiles deepspeed_shm_comm and no C++ compiler is on PATH")
    run = setup["root"] / "zero3"
    cmd = [*_accelerate("--config_file", str(ROOT / "configs" / "accelerate" / "zero3.yaml"), "--mixed_precision",
                        "no"), "-m", "fintune", "train", str(setup["recipe"]), "--out", str(run), "--set",
           "max_steps=2"]
    proc = _launch(cmd, ROOT, timeout=600)
    (summary,) = _summary_lines(proc.stdout)
    assert summary["launch"] == "zero3" and summary["world_size"] == 2
    assert _losses(run) == pytest.approx(setup["ref"][:2], rel=1e-4)
    from safetensors.torch import load_file

    # gathered full tensors (ZeRO-3 alone would leave empty placeholders), equal to DDP's after the same steps
    weights = load_file(run / "adapter_model.safetensors")
    ddp = load_file(torchrun_run["run"] / "checkpoints" / "checkpoint-2" / "adapter_model.safetensors")
    assert weights.keys() == ddp.keys()
    for k in ddp:
        assert weights[k].shape == ddp[k].shape and (weights[k] - ddp[k]).abs().max() < 1e-5, k
