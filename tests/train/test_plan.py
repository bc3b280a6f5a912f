"""`fintune plan`: exact parameter counts from config.json alone, the memory model, budget search, OOM advice."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from fintune import cli
from fintune.errors import FintuneError
from fintune.recipe import validate_recipe_dict
from fintune.train import plan as P
from fintune.train.plan_advice import explain_oom

# meta-llama/Llama-3.2-3B config.json (the fields that decide shape and parameter count)
LLAMA32_3B = {
    "architectures": ["LlamaForCausalLM"], "model_type": "llama", "attention_bias": False, "mlp_bias": False,
    "hidden_act": "silu", "hidden_size": 3072, "intermediate_size": 8192, "num_hidden_layers": 28,
    "num_attention_heads": 24, "num_key_value_heads": 8, "head_dim": 128, "vocab_size": 128256,
    "tie_word_embeddings": True, "max_position_embeddings": 131072, "rms_norm_eps": 1e-05,
    "rope_theta": 500000.0, "bos_token_id": 128000, "eos_token_id": 128001, "torch_dtype": "bfloat16",
    "rope_scaling": {"factor": 32.0, "high_freq_factor": 4.0, "low_freq_factor": 1.0,
                     "original_max_position_embeddings": 8192, "rope_type": "llama3"},
}
ALL_PROJ = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]


def _config_dir(tmp_path: Path, config: dict) -> Path:
    d = tmp_path / "model"
    d.mkdir()
    (d / "config.json").write_text(json.dumps(config))
    return d


def _recipe(model_dir: Path, **keys: object):
    return validate_recipe_dict({"model_name_or_path": str(model_dir), **keys})


def _tiny_config(**overrides: object):
    from transformers import LlamaConfig

    cfg = dict(hidden_size=256, intermediate_size=688, num_hidden_layers=3, num_attention_heads=8,
               num_key_value_heads=2, vocab_size=1000, max_position_embeddings=512, tie_word_embeddings=False)
    return LlamaConfig(**{**cfg, **overrides})


def test_llama32_3b_counts_from_config_only(tmp_path: Path) -> None:
    recipe = _recipe(_config_dir(tmp_path, LLAMA32_3B), method="qlora", lora_r=16, target_modules=ALL_PROJ)
    result = P.plan(recipe, device="cuda")
    assert result["trainable_params"] == 24_313_856
    assert result["total_params"] == 3_237_063_680
    assert f"{result['trainable_percent']:.2f}" == "0.75"
    assert result["analytic_adapter_params"] == result["adapter_params"] == 24_313_856
    # the often-quoted 1.33% counts packed 4-bit storage as parameters; the plan says so
    assert f"{result['packed_4bit_trainable_percent']:.2f}" == "1.33"
    assert "packed two per uint8" in result["explanation"]
    assert not any(p.suffix == ".safetensors" for p in (tmp_path / "model").iterdir())


def test_meta_counts_match_a_real_model_and_the_analytic_formula() -> None:
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    cfg = _tiny_config()
    for targets in (["q_proj", "v_proj"], "all-linear"):
        counts = P.count_parameters(cfg, "lora", 8, targets)
        real = get_peft_model(AutoModelForCausalLM.from_config(cfg, dtype=torch.float32),
                              LoraConfig(r=8, target_modules=targets, task_type="CAUSAL_LM"))
        assert counts.trainable_params == sum(p.numel() for p in real.parameters() if p.requires_grad)
        assert counts.total_params == sum(p.numel() for p in real.parameters())
        assert counts.analytic_adapter_params == counts.adapter_params == counts.trainable_params
    assert P.count_parameters(cfg, "lora", 8, "all-linear").target_modules == sorted(ALL_PROJ)
    full = P.count_parameters(cfg, "full")
    assert full.trainable_params == full.total_params == full.base_params
    with pytest.raises(FintuneError, match="target_modules"):
        P.count_parameters(cfg, "lora", 8, ["no_such_proj"])


def _saved_activation_bytes(cfg, dtype, dropout: float, padded: bool, b: int, s: int) -> int:
    """Bytes of the distinct tensors autograd keeps for backward (parameters excluded)."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    torch.manual_seed(0)
    model = get_peft_model(AutoModelForCausalLM.from_config(cfg, dtype=dtype),
                           LoraConfig(r=8, target_modules="all-linear", lora_dropout=dropout))
    model.train()
    ids = torch.randint(0, cfg.vocab_size, (b, s))
    mask = torch.ones(b, s, dtype=torch.long)
    if padded:
        mask[0, -10:] = 0
    params = {p.untyped_storage().data_ptr() for p in model.parameters()}
    seen: dict[int, int] = {}

    def pack(t):
        storage = t.untyped_storage()
        if storage.data_ptr() not in params:
            seen[storage.data_ptr()] = storage.nbytes()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        model(input_ids=ids, attention_mask=mask, labels=ids)
    return sum(seen.values())


@pytest.mark.parametrize(("dtype", "dropout", "padded"), [("float32", 0.0, False), ("float32", 0.05, True),
                                                         ("bfloat16", 0.05, False)])
def test_activation_formula_matches_autograd_saved_tensors(dtype: str, dropout: float, padded: bool) -> None:
    import torch

    cfg = _tiny_config()
    b, s = 2, 128
    measured = _saved_activation_bytes(cfg, getattr(torch, dtype), dropout, padded, b, s)
    counts = P.count_parameters(cfg, "lora", 8, "all-linear")
    settings = P.TrainSettings(method="lora", batch_size=b, seq_len=s, weight_dtype=dtype, compute_dtype=dtype,
                               lora_r=8, lora_dropout=dropout, padding_mask=padded, device="cpu")
    terms = P.estimate_memory(P.model_shape(cfg), counts, settings)
    estimated = terms["activations"] + b * s * cfg.vocab_size * 4  # + the loss's saved fp32 log-softmax
    assert 0.95 <= estimated / measured <= 1.12, (estimated, measured)


def test_memory_terms_behave(tmp_path: Path) -> None:
    recipe = _recipe(_config_dir(tmp_path, LLAMA32_3B), target_modules=ALL_PROJ, per_device_train_batch_size=4,
                     max_seq_length=1024)
    lora = P.plan(recipe)
    qlora = P.plan(recipe.model_copy(update={"method": "qlora"}))
    gc = P.plan(recipe.model_copy(update={"gradient_checkpointing": True}))
    t = lora["memory_terms"]
    assert t["weights"] == 3_212_749_824 * 2  # bf16 checkpoint, dtype auto on cuda
    assert t["optimizer"] == 24_313_856 * 8 and t["gradients"] == t["adapter"] == 24_313_856 * 4
    assert t["logits"] == 4 * 1024 * 128256 * (2 + 12)
    quantizable = 3_212_749_824 - 128256 * 3072 - 57 * 3072  # all but embeddings (tied head) and 57 norms
    assert qlora["memory_terms"]["weights"] == pytest.approx(
        quantizable * (0.5 + 1 / 64 + 4 / (64 * 256)) + (3_212_749_824 - quantizable) * 4, abs=1)
    assert gc["memory_terms"]["activations"] < 0.2 * t["activations"]
    assert gc["estimated_peak_bytes"] == lora["estimated_peak_bytes_other_checkpointing"]
    assert lora["estimated_peak_bytes"] == sum(v for k, v in t.items() if k != "total")


def test_budget_search_finds_the_largest_fitting_batch(tmp_path: Path) -> None:
    recipe = _recipe(_config_dir(tmp_path, LLAMA32_3B), method="qlora", target_modules=ALL_PROJ,
                     per_device_train_batch_size=16, max_seq_length=512)
    budget = P.parse_bytes("16GB")
    shape, counts, settings = P.plan_inputs(recipe, "cuda")
    fit = P.fit_to_budget(shape, counts, settings, budget)
    best = fit["max_batch_size"]
    assert not fit["fits"] and 1 <= best < 16

    def peak(**kw: object) -> int:
        return P.estimate_memory(shape, counts, P.replace_settings(settings, **kw))["total"]

    assert peak(batch_size=best) <= budget < peak(batch_size=best + 1)
    n = fit["max_seq_length_at_batch_1"]
    assert n % 64 == 0 and peak(batch_size=1, seq_len=n) <= budget < peak(batch_size=1, seq_len=n + 64)
    assert fit["with_gradient_checkpointing"]["max_batch_size"] > best


def test_parse_bytes_and_errors(tmp_path: Path) -> None:
    assert P.parse_bytes("8GB") == 8 * 10**9
    assert P.parse_bytes("7.5GiB") == int(7.5 * 2**30)
    assert P.parse_bytes("512 MiB") == 512 * 2**20
    with pytest.raises(FintuneError, match="not a memory size"):
        P.parse_bytes("8 parsecs")
    with pytest.raises(FintuneError, match="not found"):
        P.plan(_recipe(tmp_path / "nowhere"))
    (tmp_path / "empty").mkdir()
    with pytest.raises(FintuneError, match="no config.json"):
        P.plan(_recipe(tmp_path / "empty"))
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "config.json").write_text('{"model_type": "no-such-arch"}')
    with pytest.raises(FintuneError, match="cannot be read"):
        P.plan(_recipe(bad))


def test_explain_oom_names_the_changes(tmp_path: Path) -> None:
    recipe = _recipe(_config_dir(tmp_path, LLAMA32_3B), target_modules=ALL_PROJ, per_device_train_batch_size=8,
                     max_seq_length=2048)
    exc = RuntimeError("CUDA out of memory. Tried to allocate 7.83 GiB. GPU 0 has a total capacity of 23.57 GiB "
                       "of which 1.2 GiB is free.")
    msg = explain_oom(recipe, exc)
    assert "\n" not in msg and "against 23.57 GiB" in msg
    assert "gradient_checkpointing: true" in msg
    assert "per_device_train_batch_size:" in msg and "gradient_accumulation_steps:" in msg
    assert "method: qlora" in msg and "max_seq_length" in msg


def test_cli_plan_json_and_text(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    model = _config_dir(tmp_path, LLAMA32_3B)
    recipe = tmp_path / "r.yaml"
    recipe.write_text(f"model_name_or_path: {model}\nmethod: qlora\n")
    assert cli.main(["plan", str(recipe), "--set", "lora_r=16", "--set", f"target_modules={ALL_PROJ}",
                     "--json", "--budget", "8GB"]) == 0
    out = json.loads(capsys.readouterr().out)
    for key in ("trainable_params", "total_params", "trainable_percent", "estimated_peak_bytes", "fit"):
        assert key in out
    assert out["trainable_params"] == 24_313_856
    assert cli.main(["plan", str(recipe), "--device", "cpu"]) == 0
    text = capsys.readouterr().out
    assert "0.75%" in text and "packed two per uint8" in text
    assert cli.main(["plan", str(recipe), "--budget", "lots"]) == 2
    assert "not a memory size" in capsys.readouterr().err


def test_sharding_makes_memory_per_device(tmp_path: Path) -> None:
    recipe = _recipe(_config_dir(tmp_path, LLAMA32_3B), target_modules=ALL_PROJ, per_device_train_batch_size=1,
                     max_seq_length=1024)
    one = P.plan(recipe)["memory_terms"]
    ddp = P.plan(recipe, num_processes=2)
    z2 = P.plan(recipe, config="zero2", num_processes=4)["memory_terms"]
    z3 = P.plan(recipe, config="zero3", num_processes=4)["memory_terms"]
    fsdp = P.plan(recipe, config="fsdp", num_processes=4)["memory_terms"]
    assert ddp["settings"]["sharding"] == "ddp" and ddp["settings"]["num_processes"] == 2
    # DDP replicates everything and adds its gradient buckets
    assert ddp["memory_terms"]["weights"] == one["weights"] and ddp["memory_terms"]["ddp_buckets"] == one["gradients"]
    # ZeRO-2: gradients and optimizer states / N, weights whole
    assert z2["weights"] == one["weights"] and z2["adapter"] == one["adapter"]
    assert z2["gradients"] == pytest.approx(one["gradients"] / 4, abs=1)
    assert z2["optimizer"] == pytest.approx(one["optimizer"] / 4, abs=1)
    # ZeRO-3 = FSDP FULL_SHARD: decoder weights / N, embeddings whole, two layers gathered
    decoder = 3_212_749_824 - 128256 * 3072 - 57 * 3072
    assert z3 == fsdp
    assert z3["weights"] == pytest.approx(one["weights"] - decoder * 2 + decoder * 2 / 4, abs=2)
    assert z3["gathered_weights"] == pytest.approx(2 * decoder * 2 / 28, abs=1)
    assert z3["adapter"] == pytest.approx(one["adapter"] / 4, abs=1)
    for k in ("activations", "logits", "backward_transient"):
        assert z3[k] == z2[k] == one[k]
    assert z3["total"] < z2["total"] < one["total"]


def test_parallel_layout_reads_accelerate_configs(tmp_path: Path) -> None:
    from fintune.train.distributed import current_layout, parallel_layout

    assert parallel_layout() == ("none", 1) and parallel_layout(None, 2) == ("ddp", 2)
    assert {n: parallel_layout(n) for n in ("ddp", "zero2", "zero3", "fsdp")} == {
        "ddp": ("ddp", 2), "zero2": ("zero2", 2), "zero3": ("zero3", 2), "fsdp": ("fsdp", 2)}
    assert parallel_layout("zero3", 1) == ("none", 1) and parallel_layout("fsdp", 8) == ("fsdp", 8)
    grad_op = tmp_path / "fsdp-grad-op.yaml"
    grad_op.write_text("compute_environment: LOCAL_MACHINE\ndistributed_type: FSDP\nnum_processes: 4\n"
                       "fsdp_config:\n  fsdp_sharding_strategy: SHARD_GRAD_OP\n")
    assert parallel_layout(grad_op) == ("zero2", 4)
    with pytest.raises(FintuneError, match="--num-processes 0"):
        parallel_layout(None, 0)
    env = {"WORLD_SIZE": "4", "ACCELERATE_USE_DEEPSPEED": "true", "ACCELERATE_DEEPSPEED_ZERO_STAGE": "2"}
    assert current_layout(env) == ("zero2", 4) and current_layout({}) == ("none", 1)
    assert current_layout({"WORLD_SIZE": "2", "ACCELERATE_USE_FSDP": "true"}) == ("fsdp", 2)


def test_cli_plan_per_device(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    recipe = tmp_path / "r.yaml"
    recipe.write_text(f"model_name_or_path: {_config_dir(tmp_path, LLAMA32_3B)}\nmax_seq_length: 512\n")
    assert cli.main(["plan", str(recipe), "--config", "zero3", "--num-processes", "4"]) == 0
    out = capsys.readouterr().out
    assert "processes   4 (zero3); memory is per device" in out and "gathered_weights" in out
    assert "ddp_buckets" not in out
    assert cli.main(["plan", str(recipe), "--config", "zero9"]) == 2
    assert "accelerate config zero9: not found" in capsys.readouterr().err
