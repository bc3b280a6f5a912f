"""Reference system S2: Llama-3.1-8B vs DeepSeek-R1-Distill-Llama-8B forecasters, compared on six metrics.

Both shipped 8B recipes run unchanged except for the model (``--set model_name_or_path=<tiny Llama>``) and
size-reducing overrides (steps, batch, sequence length, float32 on CPU); the data is pointed to the way the recipes
say (``FINTUNE_FORECASTER_DATA``), here a ``save_to_disk`` copy of rows shaped like the published FinGPT Dow30 set
(train/test splits, columns prompt/answer/period/label/symbol, the Llama-2-wrapped system prompt). Each arm is a
tiny random Llama whose tokenizer carries the official chat template of its 8B model (Llama-3.1-Instruct, R1-distill;
``tests/prompts/templates``), so ``template: auto`` renders exactly as it would for the real models. The recipes
have no ``deepspeed`` key (``accelerate launch --config_file`` brings it), so nothing is removed. Chain per arm:
``fintune data`` -> ``fintune train`` -> ``fintune eval --mode generate``; then ``fintune compare A B``.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from tests.tiny import make_tokenizer, tiny_config

from fintune.cli import main
from fintune.data.fingpt import B_INST, B_SYS, E_INST, E_SYS
from fintune.data.forecaster import SYSTEM_PROMPT

ROOT = Path(__file__).resolve().parents[2]
RECIPES = {"llama": ROOT / "recipes" / "llama-3.1-8b" / "forecaster_lora.yaml",
           "r1": ROOT / "recipes" / "deepseek-r1-distill-llama-8b" / "forecaster_lora.yaml"}
TEMPLATES = {"llama": "llama-3.1-8b-instruct.jinja", "r1": "deepseek-r1-distill-llama-8b.jinja"}
CPU = ["dtype=float32", "bf16=false", "per_device_train_batch_size=4", "per_device_eval_batch_size=4",
       "gradient_accumulation_steps=1", "logging_steps=2", "max_steps=6", "eval_steps=3", "save_steps=3",
       "max_seq_length=512", "learning_rate=5.0e-3", "warmup_ratio=0.0"]
MOVES = [("Up by 1-2%", "up by 1-2%"), ("Down by 2-3%", "down by 2-3%"), ("Up by more than 5%", "up by more than 5%"),
         ("Down by 0-1%", "down by 0-1%")]


def _tiny_llama(root: Path, arm: str) -> Path:
    """A tiny random Llama (1024-token context: the FinGPT system prompt is long) with the arm's chat template."""
    import torch
    from transformers import AutoModelForCausalLM

    out = root / f"tiny-{arm}"
    tok = make_tokenizer()
    tok.chat_template = (ROOT / "tests" / "prompts" / "templates" / TEMPLATES[arm]).read_text(encoding="utf-8")
    tok.model_max_length = 1024
    config = tiny_config("llama", len(tok), tok)
    config.max_position_embeddings = 1024
    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    model.generation_config.pad_token_id = tok.pad_token_id
    model.save_pretrained(str(out))
    tok.save_pretrained(str(out))
    return out


def _fingpt_rows(path: Path) -> Path:
    """Published-shape FinGPT rows (weekly, two tickers), saved with the Hub dataset's train/test splits."""
    import datetime as dt

    import datasets

    splits: dict[str, list[dict]] = {"train": [], "test": []}
    start = dt.date(2023, 5, 7)
    for week in range(12):
        for k, sym in enumerate(("AAPL", "MSFT")):
            a, b = start + dt.timedelta(weeks=week), start + dt.timedelta(weeks=week + 1)
            text, label = MOVES[(week + k) % len(MOVES)]
            prev = a - dt.timedelta(weeks=1)
            user = (f"[Company Introduction]:\n\n{sym} is a leading entity in the Technology sector.\n\nFrom "
                    f"{prev} to {a}, {sym}'s stock price increased. Company news during this period "
                    f"are listed below:\n\n[Headline]: {sym} reports record quarterly revenue\n\nBased on all the "
                    f"information before {a}, make your prediction of the {sym} stock price movement for next week "
                    f"({a} to {b}).")
            answer = f"[Prediction & Analysis]:\nPrediction: {text}\nAnalysis: Revenue growth drives the {sym} move."
            row = {"prompt": B_INST + B_SYS + SYSTEM_PROMPT + E_SYS + user + E_INST, "answer": answer,
                   "period": f"{a} to {b}", "label": label, "symbol": sym}
            splits["train" if week < 10 else "test"].append(row)
    datasets.DatasetDict({k: datasets.Dataset.from_list(v) for k, v in splits.items()}).save_to_disk(str(path))
    return path


def _sets(items: list[str]) -> list[str]:
    return [a for item in items for a in ("--set", item)]


def _manifest(path: Path) -> dict:
    return json.loads((path / "manifest.json").read_text())


@pytest.mark.slow  # two tiny LoRA trainings and generations
def test_reference_system_s2_llama3_vs_r1_distill_six_metric_compare(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture) -> None:
    monkeypatch.setenv("FINTUNE_FORECASTER_DATA", str(_fingpt_rows(tmp_path / "dow30")))
    runs = {}
    for arm, recipe in RECIPES.items():
        tiny, data, run = _tiny_llama(tmp_path, arm), tmp_path / f"{arm}-data", tmp_path / f"{arm}-run"
        assert main(["data", str(recipe), "--out", str(data), *_sets([f"model_name_or_path={tiny}"])]) == 0
        md = _manifest(data)
        assert md["template"] == "auto" and md["counts"]["test"] == 4 and md["counts"]["validation"] >= 1
        assert main(["train", str(recipe), "--out", str(run), *_sets([
            f"model_name_or_path={tiny}", f"data.prepared={data}", *CPU])]) == 0
        mr = _manifest(run)
        assert mr["data_dir"] == str(data) and mr["base_model"] == str(tiny) and mr["recipe"]["method"] == "lora"
        logged = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
        assert [r["step"] for r in logged if "eval_loss" in r] == [3, 6]  # eval_steps from the recipe
        assert main(["eval", str(run), "--data", str(data), "--mode", "generate", "--max-new-tokens", "24",
                     "--bootstrap-samples", "50", "--out", str(run / "eval"), "--no-progress"]) == 0
        me = _manifest(run / "eval")
        assert me["parent_run"] == str(run) and me["mode"] == "generate"
        metrics = json.loads((run / "eval" / "metrics.json").read_text())
        assert metrics["format"] == "forecaster" and metrics["speed"]["includes_thinking_tokens"] is True
        assert metrics["thinking"]["unit"] == "tokens" and metrics["thinking"]["outputs"] == 4
        runs[arm] = run
    # the prompts are the official templates' own renderings (tiny tokenizers carry the 8B chat templates)
    from fintune.data.prepare import read_prepared

    assert "<|start_header_id|>system<|end_header_id|>" in read_prepared(tmp_path / "llama-data")["test"][0]["prompt"]
    # (whether the row's own system prompt survives re-rendering is S1's golden test, not repeated here)
    assert read_prepared(tmp_path / "r1-data")["test"][0]["prompt"].endswith("<｜Assistant｜>")

    capsys.readouterr()
    assert main(["compare", str(runs["llama"]), str(runs["r1"]), "--bootstrap-samples", "50"]) == 0
    table = capsys.readouterr().out
    rows = [line for line in table.splitlines() if line.startswith("| ")]
    names = ["1. training loss", "2. evaluation loss", "3. evaluation speed", "4. direction accuracy", "5. MSE",
             "6. ROUGE-1", "6. ROUGE-2", "6. ROUGE-L", "thinking before the answer"]
    assert [next(n for n in names if r.startswith(f"| {n}")) for r in rows[1:]] == names
    assert rows[0] == "| metric | `llama-run` | `r1-run` | `r1-run` - `llama-run` [95% paired CI] |"
    for name in names[:4]:  # losses, speed and direction accuracy have a value for both arms
        cells = next(r for r in rows if r.startswith(f"| {name}")).split(" | ")[1:3]
        assert all(c.strip() not in ("-", "- (n=0)") for c in cells), (name, cells)
    assert "(step 6)" in table and "thinking tokens counted" in table
