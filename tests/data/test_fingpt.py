"""Import of published FinGPT-Forecaster rows (llama2-wrapped) and their conversion to other templates."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from fintune.data.fingpt import (
    B_INST,
    B_SYS,
    E_INST,
    E_SYS,
    example_messages,
    import_fingpt_rows,
    load_fingpt_source,
    read_fingpt_rows,
)
from fintune.data.forecaster import SYSTEM_PROMPT
from fintune.errors import FintuneError
from fintune.recipe import SourceConfig

USER = ("[Company Introduction]:\n\nApple Inc is a leading entity in the Technology sector. ...\n\n"
        "From 2023-05-07 to 2023-05-14, AAPL's stock price increased from 172.57 to 172.57. Company news during "
        "this period are listed below:\n\n[Headline]: Apple unveils ...\n[Summary]: ...\n\n"
        "[Basic Financials]:\n\nNo basic financial reported.\n\nBased on all the information before 2023-05-14, "
        "let's first analyze the positive developments and potential concerns for AAPL. Come up with 2-4 most "
        "important factors respectively and keep them concise. Most factors should be inferred from company "
        "related news. Then make your prediction of the AAPL stock price movement for next week (2023-05-14 to "
        "2023-05-21). Provide a summary analysis to support your prediction.")
ANSWER = ("[Positive Developments]:\n1. New products.\n\n[Potential Concerns]:\n1. Regulation.\n\n"
          "[Prediction & Analysis]:\nPrediction: Up by 1-2%\nAnalysis: Momentum should continue.")


def _row(**kw) -> dict:
    # built exactly like FinGPT's data.py gpt4_to_llama: B_INST + B_SYS + system + E_SYS + prompt + E_INST
    row = {"prompt": B_INST + B_SYS + SYSTEM_PROMPT + E_SYS + USER + E_INST, "answer": ANSWER,
           "period": "2023-05-14 to 2023-05-21", "label": "up by 1-2%", "symbol": "AAPL"}
    row.update(kw)
    return row


def test_row_becomes_forecaster_example() -> None:
    (ex,) = import_fingpt_rows([_row()])
    assert (ex.id, ex.label, ex.date, ex.ticker) == ("fingpt-AAPL-2023-05-14", "U2", "2023-05-14", "AAPL")
    assert ex.text == USER and ex.extra["system_prompt"] == SYSTEM_PROMPT  # byte for byte, final newline kept
    assert ex.extra["answer"] == ANSWER and ex.extra["week_end"] == "2023-05-21"
    msgs = example_messages(ex)
    assert [m["role"] for m in msgs] == ["system", "user", "assistant"]
    assert example_messages(ex, system_prompt="short")[0]["content"] == "short"


def test_bad_rows_name_row_and_field() -> None:
    with pytest.raises(FintuneError, match=r"<rows> row 2: field 'label' 'sideways'"):
        import_fingpt_rows([_row(), _row(label="sideways", period="2023-05-21 to 2023-05-28")])
    with pytest.raises(FintuneError, match="row 1: field 'prompt' is not a Llama-2"):
        import_fingpt_rows([_row(prompt=USER)])
    with pytest.raises(FintuneError, match="row 1: field 'answer' predicts U2 but 'label' is D5\\+"):
        import_fingpt_rows([_row(label="down by more than 5%")])
    with pytest.raises(FintuneError, match="row 1: missing or empty field"):
        import_fingpt_rows([_row(symbol="")])
    with pytest.raises(FintuneError, match="row 2: duplicate symbol/period"):
        import_fingpt_rows([_row(), _row()])


@pytest.mark.parametrize("suffix", [".jsonl", ".csv", ".parquet"])
def test_loader_reads_exported_files(tmp_path: Path, suffix: str) -> None:
    import pandas as pd

    rows = [_row(), _row(period="2023-05-21 to 2023-05-28", label="Down by more than 5%",
                         answer=ANSWER.replace("Up by 1-2%", "Down by more than 5%"))]
    path = tmp_path / f"dow30{suffix}"
    if suffix == ".jsonl":
        path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    elif suffix == ".csv":
        pd.DataFrame(rows).to_csv(path, index=False)
    else:
        pd.DataFrame(rows).to_parquet(path)
    assert len(read_fingpt_rows(path)) == 2
    examples = load_fingpt_source(SourceConfig(name="fingpt_forecaster", path=str(path)), "forecaster", None)
    assert [e.label for e in examples] == ["U2", "D5+"]
    assert examples[0].text == USER  # csv round trip keeps newlines


def test_convert_to_other_templates() -> None:
    templates = pytest.importorskip("fintune.prompts.templates")
    from fintune.data.fingpt import convert_fingpt_rows

    (chatml,) = convert_fingpt_rows([_row()], "chatml")
    assert "<<SYS>>" not in chatml["prompt"] and USER in chatml["prompt"]
    assert chatml["completion"].startswith(ANSWER) and chatml["label"] == "U2"
    (llama2,) = convert_fingpt_rows([_row()], "llama2")
    assert USER in llama2["prompt"] and hasattr(templates, "render_messages")


def test_save_to_disk_splits_are_tagged_and_hub_errors_are_one_line(tmp_path: Path,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    import datasets

    later = _row(period="2023-05-21 to 2023-05-28")
    datasets.DatasetDict({"train": datasets.Dataset.from_list([_row()]),
                          "test": datasets.Dataset.from_list([later])}).save_to_disk(str(tmp_path / "dow30"))
    examples = load_fingpt_source(SourceConfig(name="fingpt_forecaster", path=str(tmp_path / "dow30")),
                                  "forecaster", None)
    assert [e.extra["split"] for e in examples] == ["train", "test"]
    only = load_fingpt_source(SourceConfig(name="fingpt_forecaster", path=str(tmp_path / "dow30"),
                                           options={"split": "test"}), "forecaster", None)
    assert [e.id for e in only] == ["fingpt-AAPL-2023-05-21"] and "split" not in only[0].extra
    def unreachable(*args, **kwargs):  # what datasets raises offline, without touching the network in tests
        raise ConnectionError("Couldn't reach 'nobody-xyz/not-a-dataset' on the Hub (OfflineModeIsEnabled)\nmore")

    monkeypatch.setattr(datasets, "load_dataset", unreachable)
    with pytest.raises(FintuneError, match="cannot load the Hub dataset") as err:
        read_fingpt_rows("nobody-xyz/not-a-dataset")
    assert "\n" not in str(err.value)
