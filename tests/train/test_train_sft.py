"""Stage-2 SFT on tiny random models: LoRA/QLoRA/full, packing correctness, outputs, bad input, resume."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from helpers_train import encoded_rows, tiny_recipe
from tests.tiny import make_tiny_model_dir

from fintune.errors import FintuneError
from fintune.train.collate import IGNORE, PackingCollator, PaddingCollator, answer_only_loss
from fintune.train.sft import check_sequence_length, encode_rows, prepare_model, run_training

os.environ.setdefault("HF_HUB_OFFLINE", "1")


@pytest.fixture(scope="module")
def tiny_dirs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("tiny")
    return {arch: make_tiny_model_dir(root, arch) for arch in ("llama", "qwen2", "gpt_neox")}


@pytest.mark.parametrize("arch", ["llama", "qwen2", "gpt_neox"])
def test_packed_and_unpacked_losses_agree(tiny_dirs: dict[str, Path], arch: str) -> None:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = AutoModelForCausalLM.from_pretrained(tiny_dirs[arch], attn_implementation="sdpa")
    rows = encoded_rows(AutoTokenizer.from_pretrained(tiny_dirs[arch]), n=6)
    packed = PackingCollator(pad_token_id=3, max_seq_length=128, pad_to_multiple_of=1)(rows)
    rounded = PackingCollator(pad_token_id=3, max_seq_length=128)(rows)  # default: width rounded up to 64
    padded = PaddingCollator(pad_token_id=3)(rows)
    assert rounded["input_ids"].shape[1] % 64 == 0 and packed["input_ids"].shape[1] % 64 != 0
    assert packed["input_ids"].numel() < padded["input_ids"].numel()  # fewer tokens computed
    assert (packed["labels"] != IGNORE).sum() == (padded["labels"] != IGNORE).sum()
    reference = model(**padded).loss  # transformers' own loss on the plain padded batch
    assert answer_only_loss(model, packed).item() == pytest.approx(reference.item(), rel=1e-5)
    assert answer_only_loss(model, rounded).item() == pytest.approx(reference.item(), rel=1e-5)
    assert answer_only_loss(model, padded).item() == pytest.approx(reference.item(), rel=1e-5)
    # packing must isolate examples: a corrupted neighbour cannot change another example's loss
    one = PackingCollator(3, 128)([rows[0], rows[1]])
    other = PackingCollator(3, 128)([rows[0], {**rows[1], "input_ids": [5] * len(rows[1]["input_ids"])}])
    only_first = {k: v.clone() for k, v in one.items()}
    first_len = len(rows[0]["input_ids"])
    for batch in (only_first, other):
        batch["labels"][:, first_len:] = IGNORE
    other["labels"] = only_first["labels"]
    assert answer_only_loss(model, only_first).item() == pytest.approx(answer_only_loss(model, other).item(),
                                                                        rel=1e-5)


@pytest.mark.parametrize("arch", ["llama", "qwen2", "gpt_neox"])
def test_lora_moves_adapter_not_base(tiny_dirs: dict[str, Path], arch: str, tmp_path: Path) -> None:
    recipe = tiny_recipe(tiny_dirs[arch], max_steps=3, save_steps=3)
    model, tokenizer, lineage = prepare_model(recipe)
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    summary = run_training(recipe, model, tokenizer, encoded_rows(tokenizer), None, tmp_path / "run", False,
                           "train", dict(lineage))
    after = dict(model.named_parameters())
    lora_b = [n for n in before if "lora_B" in n]
    base = [n for n in before if "lora_" not in n]
    assert lora_b and all(not torch.equal(before[n], after[n]) for n in lora_b)
    assert all(torch.equal(before[n], after[n]) for n in base)
    assert summary["global_step"] == 3 and 0 < summary["trainable_params"] < summary["all_params"]
    run = tmp_path / "run"
    for name in ("adapter_config.json", "adapter_model.safetensors", "tokenizer.json", "manifest.json",
                 "metrics.jsonl", "loss_curve.png"):
        assert (run / name).exists(), name
    manifest = json.loads((run / "manifest.json").read_text())
    assert manifest["base_model"] == str(tiny_dirs[arch]) and manifest["seed"] == 7
    assert manifest["recipe"]["lora_r"] == 4 and manifest["versions"]["peft"]
    logged = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert sum("loss" in r for r in logged) == 3


def test_eval_and_best_checkpoint_and_inference_merge(tiny_dirs: dict[str, Path], tmp_path: Path) -> None:
    from fintune.models import load_for_inference, merge_run

    recipe = tiny_recipe(tiny_dirs["llama"], max_steps=4, eval_steps=2, save_steps=2,
                         load_best_model_at_end=True, gradient_checkpointing=True)
    model, tokenizer, lineage = prepare_model(recipe)
    assert model.base_model.model.model.gradient_checkpointing
    rows = encoded_rows(tokenizer)
    summary = run_training(recipe, model, tokenizer, rows, rows[:3], tmp_path / "run", False, "train",
                           dict(lineage, labels=["negative", "neutral", "positive"]))
    assert summary["best_model_checkpoint"].startswith(str(tmp_path / "run" / "checkpoints" / "checkpoint-"))
    logged = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert sum("eval_loss" in r for r in logged) == 2
    peft_model, _, info = load_for_inference(str(tmp_path / "run"))
    assert info.kind == "adapter" and info.labels == ["negative", "neutral", "positive"]
    merged_dir = merge_run(tmp_path / "run", tmp_path / "merged")
    assert not (merged_dir / "adapter_config.json").exists()
    merged, _, _ = load_for_inference(str(merged_dir))
    batch = PaddingCollator(tokenizer.pad_token_id)(rows[:2])
    batch.pop("labels")
    with torch.no_grad():
        assert torch.allclose(peft_model(**batch).logits, merged(**batch).logits, atol=1e-4)


def test_qlora_on_cpu(tiny_dirs: dict[str, Path], tmp_path: Path) -> None:
    pytest.importorskip("bitsandbytes")
    recipe = tiny_recipe(tiny_dirs["llama"], method="qlora", max_steps=2, save_steps=2,
                         bnb_4bit_compute_dtype="float32")
    model, tokenizer, lineage = prepare_model(recipe)
    assert any(type(m).__name__ == "Linear4bit" for m in model.modules())
    summary = run_training(recipe, model, tokenizer, encoded_rows(tokenizer), None, tmp_path / "q", False,
                           "train", dict(lineage))
    assert summary["global_step"] == 2 and summary["train_loss"] > 0
    assert (tmp_path / "q" / "adapter_model.safetensors").exists()


def test_full_finetune_moves_base(tiny_dirs: dict[str, Path], tmp_path: Path) -> None:
    recipe = tiny_recipe(tiny_dirs["qwen2"], method="full", max_steps=2, save_steps=2, learning_rate=1e-3)
    model, tokenizer, lineage = prepare_model(recipe)
    before = model.model.layers[0].self_attn.q_proj.weight.detach().clone()
    run_training(recipe, model, tokenizer, encoded_rows(tokenizer), None, tmp_path / "f", False, "train",
                 dict(lineage))
    assert not torch.equal(before, model.model.layers[0].self_attn.q_proj.weight)
    assert (tmp_path / "f" / "model.safetensors").exists()


def test_bad_inputs_fail_before_training(tiny_dirs: dict[str, Path], tmp_path: Path) -> None:
    with pytest.raises(FintuneError, match="model not found"):
        prepare_model(tiny_recipe(tmp_path / "nope"))
    with pytest.raises(FintuneError, match=r"target_modules.*modules that exist: \[.*q_proj"):
        prepare_model(tiny_recipe(tiny_dirs["llama"], target_modules=["qkv_fused"]))
    model, tokenizer, _ = prepare_model(tiny_recipe(tiny_dirs["llama"]))
    with pytest.raises(FintuneError, match="exceeds the model's context length 256"):
        check_sequence_length(tiny_recipe(tiny_dirs["llama"], max_seq_length=1024), model)
    with pytest.raises(FintuneError, match="no examples"):
        encode_rows([], tokenizer, 64, "train.parquet")
    long_prompt = tokenizer.apply_chat_template([{"role": "user", "content": "stock " * 80}], tokenize=False,
                                                add_generation_prompt=True)
    row = {"id": "x1", "prompt": long_prompt, "completion": "positive " * 30 + "<|im_end|>\n"}
    with pytest.raises(FintuneError, match="row 0 \\(id x1\\)"):
        encode_rows([row], tokenizer, 16, "train.parquet")


_RESUME_SCRIPT = """
import sys, time
sys.path[:0] = {paths!r}
from helpers_train import encoded_rows, tiny_recipe
from transformers import TrainerCallback
from fintune.train.sft import prepare_model, run_training

class Slow(TrainerCallback):
    def on_step_end(self, args, state, control, **kw):
        time.sleep({sleep})

recipe = tiny_recipe({model!r}, max_steps=8, save_steps=2, save_total_limit=10)
model, tok, lin = prepare_model(recipe)
import fintune.train.callbacks as cb
orig = cb.FintuneTrainer.__init__
def init(self, *a, **k):
    k["callbacks"] = [*k.get("callbacks", []), Slow()]
    orig(self, *a, **k)
cb.FintuneTrainer.__init__ = init
s = run_training(recipe, model, tok, encoded_rows(tok, n=16), None, {out!r}, {resume}, "train", dict(lin))
import json
print("FINAL", json.dumps([r["loss"] for r in s["history"] if "loss" in r]))
"""


def _run_script(model: Path, out: Path, resume: bool, sleep: float) -> subprocess.Popen:
    here = Path(__file__).resolve()
    paths = [str(here.parent), str(here.parents[2] / "src"), str(here.parents[2])]
    code = _RESUME_SCRIPT.format(paths=paths, model=str(model), out=str(out), resume=resume, sleep=sleep)
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    return subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True, env=env)


def _final(proc: subprocess.Popen) -> list[float]:
    out, _ = proc.communicate(timeout=300)
    assert proc.returncode == 0, out[-2000:]
    return json.loads(next(line for line in out.splitlines() if line.startswith("FINAL")).split(" ", 1)[1])


def test_resume_after_sigkill_matches_uninterrupted(tiny_dirs: dict[str, Path], tmp_path: Path) -> None:
    victim = _run_script(tiny_dirs["llama"], tmp_path / "killed", False, 0.3)
    recipe = tiny_recipe(tiny_dirs["llama"], max_steps=8, save_steps=2, save_total_limit=10)
    model, tok, lineage = prepare_model(recipe)  # the uninterrupted reference, in this process
    history = run_training(recipe, model, tok, encoded_rows(tok, n=16), None, tmp_path / "ref", False, "train",
                           dict(lineage))["history"]
    reference = [r["loss"] for r in history if "loss" in r]
    ckpts = tmp_path / "killed" / "checkpoints"
    deadline = time.time() + 240
    while not (ckpts / "checkpoint-4").exists() and time.time() < deadline and victim.poll() is None:
        time.sleep(0.1)
    assert victim.poll() is None, "training finished before it could be killed"
    os.kill(victim.pid, signal.SIGKILL)
    victim.wait()
    assert not (ckpts / "checkpoint-8").exists()
    resumed = _final(_run_script(tiny_dirs["llama"], tmp_path / "killed", True, 0.0))
    assert len(reference) == 8 and len(resumed) == 8  # the history of the killed steps comes from the checkpoint
    assert resumed[-1] == pytest.approx(reference[-1], rel=1e-5)
    assert resumed == pytest.approx(reference, rel=1e-5)


def test_bf16_autocast_run_hooks_lora_sum_and_records_precision(tiny_dirs: dict[str, Path], tmp_path: Path) -> None:
    from peft.tuners.lora import LoraLayer

    recipe = tiny_recipe(tiny_dirs["llama"], max_steps=2, save_steps=2, bf16=True, fp32_matmul_precision="auto")
    before = torch.backends.mkldnn.matmul.fp32_precision
    model, tokenizer, lineage = prepare_model(recipe)
    summary = run_training(recipe, model, tokenizer, encoded_rows(tokenizer), None, tmp_path / "run", False,
                           "train", dict(lineage))
    layers = [m for m in model.modules() if isinstance(m, LoraLayer)]
    assert layers and all(m.get_base_layer()._forward_hooks for m in layers)  # base output kept float32
    assert summary["bf16"] is True and summary["fp32_matmul_precision"] in ("ieee", "bf16", "tf32")
    manifest = json.loads((tmp_path / "run" / "manifest.json").read_text())
    assert manifest["training"]["fp32_matmul_precision"] == summary["fp32_matmul_precision"]
    assert torch.backends.mkldnn.matmul.fp32_precision == before  # the setting does not leak out of the run


def test_compiled_decoder_layers_train_like_eager(tiny_dirs: dict[str, Path], tmp_path: Path) -> None:
    """``torch_compile: true`` compiles the blocks in place: same losses as eager, same adapter keys on disk."""
    from safetensors.torch import load_file

    runs = {}
    for compiled in (False, True):
        recipe = tiny_recipe(tiny_dirs["llama"], max_steps=3, save_steps=3, torch_compile=compiled)
        model, tokenizer, lineage = prepare_model(recipe)
        out = tmp_path / f"compiled-{compiled}"
        summary = run_training(recipe, model, tokenizer, encoded_rows(tokenizer), None, out, False, "train",
                               dict(lineage))
        runs[compiled] = ([r["loss"] for r in summary["history"] if "loss" in r],
                          load_file(str(out / "adapter_model.safetensors")), summary["compiled_layers"])
    (eager, eager_weights, n_eager), (fast, fast_weights, n_fast) = runs[False], runs[True]
    assert n_eager == 0 and n_fast == 2  # the tiny llama has two decoder layers
    assert fast == pytest.approx(eager, rel=1e-3)
    assert fast_weights.keys() == eager_weights.keys()
    assert all(torch.allclose(fast_weights[k], eager_weights[k], atol=1e-4) for k in eager_weights)


def test_group_by_length_uses_the_length_grouped_sampler(tiny_dirs: dict[str, Path], tmp_path: Path) -> None:
    from transformers.trainer_pt_utils import LengthGroupedSampler

    from fintune.train.callbacks import FintuneTrainer
    from fintune.train.sft import _ListDataset, build_training_arguments

    recipe = tiny_recipe(tiny_dirs["llama"], packing=False, group_by_length=True)
    model, tokenizer, _ = prepare_model(recipe)
    args = build_training_arguments(recipe, tmp_path, has_eval=False)
    trainer = FintuneTrainer(model=model, args=args, train_dataset=_ListDataset(encoded_rows(tokenizer)),
                             data_collator=PaddingCollator(tokenizer.pad_token_id))
    assert isinstance(trainer._get_train_sampler(), LengthGroupedSampler)
    recipe = tiny_recipe(tiny_dirs["llama"], packing=False)
    args = build_training_arguments(recipe, tmp_path, has_eval=False)
    trainer = FintuneTrainer(model=model, args=args, train_dataset=_ListDataset(encoded_rows(tokenizer)),
                             data_collator=PaddingCollator(tokenizer.pad_token_id))
    assert not isinstance(trainer._get_train_sampler(), LengthGroupedSampler)


def test_report_to_tensorboard_writes_events(tiny_dirs: dict[str, Path], tmp_path: Path) -> None:
    pytest.importorskip("tensorboard")  # in the dev extra, so CI runs it
    recipe = tiny_recipe(tiny_dirs["llama"], max_steps=2, save_steps=2, report_to="tensorboard")
    model, tokenizer, lineage = prepare_model(recipe)
    run_training(recipe, model, tokenizer, encoded_rows(tokenizer), None, tmp_path / "run", False, "train",
                 dict(lineage))
    events = list((tmp_path / "run").rglob("events.out.tfevents.*"))
    assert events and events[0].stat().st_size > 0


def test_missing_tracking_backend_is_a_one_line_error(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    import importlib.util

    from fintune.train.sft import build_training_arguments

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "wandb" else real(name, *a))
    recipe = tiny_recipe(tmp_path, report_to=["wandb"])
    with pytest.raises(FintuneError, match="report_to.*wandb is not installed"):
        build_training_arguments(recipe, tmp_path, has_eval=False)
