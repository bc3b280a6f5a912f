"""``fintune export`` from the CLI: Modelfile, model card + license warning, refusals as one-line errors."""

from __future__ import annotations

import re

import pytest
import yaml
from export_helpers import make_run

from fintune.cli import main
from fintune.run import read_run


def front_matter(text: str) -> dict:
    """The YAML front matter of a model card."""
    m = re.match(r"^---\n(.*?)\n---\n", text, re.S)
    assert m, text[:200]
    return yaml.safe_load(m.group(1))


def render_go(template: str, system: str | None, prompt: str) -> str:
    """Ollama's rendering of the Modelfile TEMPLATE for one turn (if/else on .System, cut at .Response)."""
    m = re.fullmatch(r"\{\{ if \.System \}\}(.*)\{\{ \.System \}\}(.*)\{\{ else \}\}(.*)\{\{ end \}\}"
                     r"\{\{ \.Prompt \}\}(.*)\{\{ \.Response \}\}(.*)", template, re.S)
    assert m, template
    head = f"{m[1]}{system}{m[2]}" if system else m[3]
    return head + prompt + m[4]


def test_ollama_export_writes_modelfile_card_and_warns(tiny_run, tmp_path, capsys):
    from transformers import AutoTokenizer

    out = tmp_path / "ollama"
    assert main(["export", str(tiny_run), "--format", "ollama", "--quant", "q8_0", "--out", str(out)]) == 0
    err = capsys.readouterr().err
    warnings = [line for line in err.splitlines() if line.startswith("warning:")]
    assert len(warnings) == 1 and "non-commercial" in warnings[0] and "financial_phrasebank" in warnings[0]
    assert "twitter_financial_news_sentiment" not in warnings[0]
    modelfile = (out / "Modelfile").read_text()
    assert "FROM ./run.q8_0.gguf" in modelfile and (out / "run.q8_0.gguf").is_file()
    assert 'PARAMETER stop "<|im_end|>"' in modelfile and "PARAMETER temperature 0" in modelfile
    system = re.search(r'SYSTEM """(.*?)"""', modelfile, re.S).group(1)
    assert system == "You are a financial analyst."
    template = re.search(r'TEMPLATE """(.*?)"""', modelfile, re.S).group(1)
    tok = AutoTokenizer.from_pretrained(str(tiny_run))
    messages = [{"role": "system", "content": system}, {"role": "user", "content": "Classify: Shares fell."}]
    assert render_go(template, system, "Classify: Shares fell.") == tok.apply_chat_template(
        messages, tokenize=False, add_generation_prompt=True)
    card = (out / "README.md").read_text()
    meta = front_matter(card)
    assert meta["license"] == "other" and meta["license_details"] == "cc-by-nc-sa-3.0; mit"
    assert meta["datasets"] == ["financial_phrasebank", "twitter_financial_news_sentiment"]
    assert "non-commercial" in meta["tags"] and "gguf" in meta["tags"]
    assert "CC BY-NC-SA 3.0" in card and "| twitter_financial_news_sentiment | MIT. |" in card
    manifest = read_run(out)
    assert manifest.stage == "export" and manifest.licenses == read_run(tiny_run).licenses


def test_merge_writes_card_with_licenses_and_warns(tiny_run, tmp_path, capsys):
    out = tmp_path / "merged"
    assert main(["merge", str(tiny_run), "--out", str(out)]) == 0
    assert sum("non-commercial" in line for line in capsys.readouterr().err.splitlines()) == 1
    meta = front_matter((out / "README.md").read_text())
    assert meta["base_model"] == read_run(tiny_run).base_model
    assert "financial_phrasebank" in meta["datasets"]
    assert read_run(out).licenses == read_run(tiny_run).licenses


def test_commercial_data_gives_spdx_license_and_no_warning(tmp_path, tiny_model, capsys):
    run = make_run(tmp_path, tiny_model, {"/data/twitter_financial_news_sentiment": "MIT."})
    out = tmp_path / "gguf"
    assert main(["export", str(run), "--quant", "f16", "--out", str(out)]) == 0
    assert "warning" not in capsys.readouterr().err
    meta = front_matter((out / "README.md").read_text())
    assert meta["license"] == "mit" and "non-commercial" not in meta["tags"]


def one_line_error(capsys) -> str:
    text = capsys.readouterr().err
    err = [line for line in text.splitlines() if "error:" in line]
    assert len(err) == 1 and "Traceback" not in text, text
    return err[0]


def test_refuses_existing_out_without_overwrite(tiny_run, tmp_path, capsys):
    out = tmp_path / "taken"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    assert main(["export", str(tiny_run), "--out", str(out)]) != 0
    assert "not empty" in one_line_error(capsys)
    assert (out / "keep.txt").read_text() == "mine"
    assert main(["export", str(tiny_run), "--out", str(tiny_run)]) != 0  # never the run itself
    assert "run" in one_line_error(capsys)


@pytest.mark.parametrize("flag,value,needle", [("--quant", "q4_k_m", "q8_0"), ("--format", "onnx", "ollama")])
def test_unsupported_quant_or_format_is_one_line(tiny_run, tmp_path, capsys, flag, value, needle):
    assert main(["export", str(tiny_run), flag, value, "--out", str(tmp_path / "o")]) != 0
    line = one_line_error(capsys)
    assert value in line and needle in line
    assert not (tmp_path / "o").exists()


def test_other_architecture_is_one_line(tmp_path, capsys):
    from tests.tiny import make_tiny_model_dir

    model = make_tiny_model_dir(tmp_path, arch="qwen2")
    assert main(["export", str(model), "--out", str(tmp_path / "o")]) != 0
    line = one_line_error(capsys)
    assert "Qwen2ForCausalLM" in line and "not supported" in line
