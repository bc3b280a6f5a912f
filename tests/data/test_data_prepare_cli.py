"""`fintune data` end to end: prepared parquet + manifest, template auto, one-line errors, atomic --out."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from fintune.cli import main
from fintune.data.prepare import COLUMNS, prepare_data, prepared_examples, read_prepared
from fintune.errors import FintuneError
from fintune.recipe import load_recipe

CHATML = ("{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endfor %}"
          "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}")


def _write_csv(path: Path, n: int = 40) -> Path:
    labels = ["negative", "neutral", "positive", "neutral"]
    lines = ["id,text,label,day,sym"]
    for i in range(n):
        lines.append(f"r{i},\"Company {i} reports results, item {i} {'x' * (i % 7)}\",{labels[i % 4]},"
                     f"2021-{1 + i % 12:02d}-{1 + i % 27:02d},{'abc' if i % 2 else 'xyz'}")
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def _recipe(tmp_path: Path, body: str, model: str = "/nonexistent-model") -> Path:
    path = tmp_path / "recipe.yaml"
    path.write_text(f"model_name_or_path: {model}\n" + body, encoding="utf-8")
    return path


def _tiny_recipe(tmp_path: Path, csv: Path, extra: str = "",
                 split: str = "{method: chronological, test_size: 0.25, val_size: 0.2}") -> Path:
    return _recipe(tmp_path, f"""
data:
  task: sentiment
  sources:
    - {{name: csv, path: {csv}, id_column: id, date_column: day, ticker_column: sym}}
  split: {split}
  template: chatml
{extra}""")


def test_cli_end_to_end(tmp_path, capsys):
    csv = _write_csv(tmp_path / "d.csv")
    out = tmp_path / "prepared"
    assert main(["data", str(_tiny_recipe(tmp_path, csv)), "--out", str(out)]) == 0
    assert "wrote" in capsys.readouterr().out
    assert sorted(p.name for p in out.iterdir()) == ["leakage.json", "manifest.json", "test.parquet",
                                                     "train.parquet", "validation.parquet"]
    manifest = json.loads((out / "manifest.json").read_text())
    counts = manifest["counts"]
    assert sum(counts.values()) == 40 and all(counts.values())
    assert manifest["stage"] == "data" and manifest["template"] == "chatml"
    assert manifest["data_sha256"][str(csv)] and manifest["recipe"]["data"]["task"] == "sentiment"
    assert sum(sum(v.values()) for v in manifest["label_counts"].values()) == 40
    rows = read_prepared(out)
    assert set(rows["train"][0]) == set(COLUMNS)
    train_max = max(r["date"] for r in rows["train"])
    assert train_max < min(r["date"] for r in rows["validation"])
    assert max(r["date"] for r in rows["validation"]) < min(r["date"] for r in rows["test"])
    row = rows["test"][0]
    assert row["prompt"].endswith("<|im_start|>assistant\n")
    assert row["completion"] == f"{row['label']}<|im_end|>\n"
    assert row["messages"][-1] == {"role": "assistant", "content": row["label"]}
    assert row["ticker"] in ("ABC", "XYZ")
    assert [e.id for e in prepared_examples(out, "test")] == [r["id"] for r in rows["test"]]


def test_cli_refuses_non_empty_out_and_keeps_it_on_error(tmp_path, capsys):
    csv = _write_csv(tmp_path / "d.csv")
    out = tmp_path / "prepared"
    out.mkdir()
    (out / "keep.txt").write_text("old")
    recipe = _tiny_recipe(tmp_path, csv)
    assert main(["data", str(recipe), "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "--overwrite" in err
    csv.write_text(csv.read_text() + "r99,broken row,bullish,2021-01-01,abc\n")
    assert main(["data", str(recipe), "--out", str(out), "--overwrite"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and f"{csv}:42 column 'label'" in err and "unknown label 'bullish'" in err
    assert [p.name for p in out.iterdir()] == ["keep.txt"]
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".prepared")]


def test_cli_set_override_and_bad_recipe(tmp_path, capsys):
    csv = _write_csv(tmp_path / "d.csv")
    recipe = _tiny_recipe(tmp_path, csv)
    out = tmp_path / "o"
    assert main(["data", str(recipe), "--out", str(out), "--set", "data.split.method=stratified",
                 "--set", "data.split.val_size=0"]) == 0
    assert json.loads((out / "manifest.json").read_text())["counts"] == {"train": 30, "validation": 0, "test": 10}
    assert main(["data", str(recipe), "--out", str(tmp_path / "o2"), "--set", "data.split.methd=random"]) == 2
    assert "did you mean" in capsys.readouterr().err


def test_template_auto_needs_a_tokenizer(tmp_path, capsys):
    csv = _write_csv(tmp_path / "d.csv")
    recipe = _tiny_recipe(tmp_path, csv)
    assert main(["data", str(recipe), "--out", str(tmp_path / "o"), "--set", "data.template=auto"]) == 2
    err = capsys.readouterr().err
    assert "data.template" in err and "local model" in err


def test_template_auto_with_local_tokenizer(tmp_path):
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.WordLevel({"[UNK]": 0, "<|im_start|>": 1, "<|im_end|>": 2}, unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="[UNK]", eos_token="<|im_end|>")
    fast.chat_template = CHATML
    model_dir = tmp_path / "tiny-model"
    fast.save_pretrained(model_dir)
    csv = _write_csv(tmp_path / "d.csv", 12)
    recipe = _recipe(tmp_path, f"""
data:
  sources: [{{name: csv, path: {csv}}}]
  split: {{method: random, test_size: 0.25}}
  template: auto
""", model=str(model_dir))
    out = prepare_data(load_recipe(recipe), tmp_path / "o")
    row = read_prepared(out)["train"][0]
    assert row["prompt"].startswith("<|im_start|>user\nInstruction: What is the sentiment")
    assert row["completion"] == f"{row['label']}<|im_end|>\n"


def test_format_must_fit_task(tmp_path):
    csv = _write_csv(tmp_path / "d.csv")
    recipe = load_recipe(_tiny_recipe(tmp_path, csv), ["data.format=ner"])
    with pytest.raises(FintuneError, match="does not fit data.task 'sentiment'"):
        prepare_data(recipe, tmp_path / "o")


def test_duplicate_ids_across_sources(tmp_path):
    csv = _write_csv(tmp_path / "d.csv")
    recipe = _recipe(tmp_path, f"""
data:
  sources: [{{name: csv, path: {csv}, id_column: id}}, {{name: csv, path: {csv}, id_column: id}}]
  template: none
""")
    with pytest.raises(FintuneError, match=r"id 'r0' also comes from data.sources\[0\]"):
        prepare_data(load_recipe(recipe), tmp_path / "o")


@pytest.mark.shared
def test_real_tfns_predefined_drop_leaked(shared_data, tmp_path):
    recipe = _recipe(tmp_path, f"""
data:
  sources: [{{name: tfns, path: {shared_data / "twitter_financial_news_sentiment"}}}]
  split: {{method: predefined, val_size: 0.1}}
  drop_leaked: true
  template: llama3
""")
    out = prepare_data(load_recipe(recipe), tmp_path / "o")
    manifest = json.loads((out / "manifest.json").read_text())
    leak = json.loads((out / "leakage.json").read_text())
    dropped = manifest["leakage"]["dropped"]
    assert dropped["train"] == 0 and dropped["test"] == len(leak["leaked_ids"]["test"]) > 0
    assert manifest["counts"]["test"] == 2388 - dropped["test"]
    assert manifest["counts"]["train"] + manifest["counts"]["validation"] == 9543 - dropped["validation"]
    # nothing left in test that also sits in train
    rows = read_prepared(out)
    train_texts = {r["text"] for r in rows["train"]}
    assert not any(r["text"] in train_texts for r in rows["test"])


@pytest.mark.shared
@pytest.mark.parametrize(("task", "fmt", "source"), [
    ("headlines", "headlines", "name: gold, path: {d}/gold_commodity_news_headlines, limit: 120"),
    ("sentiment", "label", "name: gold, path: {d}/gold_commodity_news_headlines, limit: 200"),
    ("ner", "ner", "name: finner, path: {d}/fin_ner_sec_filings"),
    ("pretrain", "text", "name: financebench, path: {d}/financebench_sec_excerpts"),
])
def test_real_other_tasks_via_cli(shared_data, tmp_path, capsys, task, fmt, source):
    split = {"ner": "predefined", "pretrain": "predefined", "sentiment": "stratified"}.get(task, "random")
    recipe = _recipe(tmp_path, f"""
data:
  task: {task}
  format: {fmt}
  sources: [{{{source.format(d=shared_data)}}}]
  split: {{method: {split}, test_size: 0.25}}
  template: chatml
""")
    out = tmp_path / "o"
    assert main(["data", str(recipe), "--out", str(out)]) == 0
    rows = read_prepared(out)
    manifest = json.loads((out / "manifest.json").read_text())
    if task == "ner":
        assert manifest["counts"] == {"train": 1164, "validation": 0, "test": 303}
        with_entities = next(r for r in rows["train"] if r["extra"]["entities"])
        first = with_entities["extra"]["entities"][0]
        assert f"{first['text']}, {first['type']}" in with_entities["completion"]
    elif task == "sentiment":
        assert sum(manifest["counts"].values()) == 200
        assert manifest["warnings"] == [
            "gold: left out 1968 headlines with Price Sentiment 'none' (not about the gold price); declare 'none' "
            "in data.labels to keep them"]
        assert "left out 1968" in capsys.readouterr().err
    elif task == "headlines":
        assert sum(manifest["counts"].values()) == 120
        groups = {s: {r["extra"]["group_id"] for r in rows[s]} for s in ("train", "test")}
        assert not groups["train"] & groups["test"]
        assert rows["test"][0]["completion"] in ("yes<|im_end|>\n", "no<|im_end|>\n")
    else:
        assert manifest["counts"] == {"train": 86, "validation": 0, "test": 43}
        assert rows["train"][0]["completion"] == "" and rows["train"][0]["label"] is None


def test_multi_task_mix_renders_each_source_in_its_format(tmp_path):
    csv = _write_csv(tmp_path / "d.csv", 20)
    conll = tmp_path / "ner.txt"
    conll.write_text("".join(f"Acme NNP - I-ORG\nlent VBD - O\nto TO - O\nJohn NNP - I-PER\nDoe{i} NNP - I-PER\n\n"
                             for i in range(10)), encoding="utf-8")
    recipe = _recipe(tmp_path, f"""
data:
  task: sentiment
  sources:
    - {{name: csv, path: {csv}}}
    - {{name: finner, path: {conll}, task: ner}}
  split: {{method: stratified, test_size: 0.2}}
  template: chatml
""")
    out = prepare_data(load_recipe(recipe), tmp_path / "o")
    rows = [r for split in read_prepared(out).values() for r in split]
    ner = [r for r in rows if r["source"] == "finner"]
    senti = [r for r in rows if r["source"] == "csv"]
    assert len(ner) == 10 and len(senti) == 20
    assert all(r["completion"].startswith("Acme, ORG\nJohn Doe") for r in ner)
    assert all(r["extra"]["fintune_format"] == "ner" for r in ner)
    assert all(r["completion"] == f"{r['label']}<|im_end|>\n" and "fintune_task" not in r["extra"] for r in senti)
    manifest = json.loads((out / "manifest.json").read_text())
    assert [(s["name"], s["task"], s["format"]) for s in manifest["sources"]] == [
        ("csv", "sentiment", "label"), ("finner", "ner", "ner")]
    # stratified on source + label: both sources on both sides
    assert {r["source"] for r in read_prepared(out)["test"]} == {"csv", "finner"}
    with pytest.raises(FintuneError, match=r"data.sources\[1\].format 'label' does not fit"):
        prepare_data(load_recipe(recipe, ["data.sources.1.format=label"]), tmp_path / "o2")



def _train_matches(report: dict) -> set[str]:
    return {m["matches"] for key, v in report["across"].items() if key.endswith("_vs_train") for m in v["samples"]}


def test_leakage_report_describes_the_truncated_train_split(tmp_path):
    csv = _write_csv(tmp_path / "d.csv")
    lines = csv.read_text(encoding="utf-8").splitlines()  # 10 exact copies of texts, so some leak across splits
    lines += [f"dup{i},\"Company {i} reports results, item {i} {'x' * (i % 7)}\",neutral,2021-01-01,abc"
              for i in range(30, 40)]
    csv.write_text("\n".join(lines) + "\n", encoding="utf-8")
    recipe = _tiny_recipe(tmp_path, csv, split="{method: random, test_size: 0.4, seed: 1}")
    full, small = tmp_path / "full", tmp_path / "small"
    assert main(["data", str(recipe), "--out", str(full)]) == 0
    assert main(["data", str(recipe), "--out", str(small), "--set", "data.max_train_examples=3"]) == 0
    train_ids = {r["id"] for r in read_prepared(small)["train"]}
    assert len(train_ids) == 3
    assert _train_matches(json.loads((full / "leakage.json").read_text())) - train_ids  # leaks outside the 3 rows
    # ...are not reported for the truncated set: every leak it names is into a train row that was written
    assert _train_matches(json.loads((small / "leakage.json").read_text())) <= train_ids
