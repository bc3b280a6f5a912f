"""Fixtures of the export tests: a tiny random Llama and a LoRA run on it (nonzero B, so merging changes weights)."""

from __future__ import annotations

from pathlib import Path

import pytest
from export_helpers import make_run
from tests.tiny import make_tiny_model_dir

PHRASEBANK_LICENSE = "Creative Commons Attribution-NonCommercial-ShareAlike 3.0 Unported (CC BY-NC-SA 3.0)."


@pytest.fixture(autouse=True, scope="module")
def _one_torch_thread():
    """One torch thread: tiny forwards on a shared 2-core box are faster without spinning workers."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory) -> Path:
    """A random tiny Llama saved with its tokenizer."""
    return make_tiny_model_dir(tmp_path_factory.mktemp("export-model"), seed=3)


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory, tiny_model) -> Path:
    """A LoRA run whose data carried PhraseBank's non-commercial license and TFNS's MIT license."""
    return make_run(tmp_path_factory.mktemp("export-run"), tiny_model,
                    {"/data/financial_phrasebank": PHRASEBANK_LICENSE, "/data/twitter_financial_news_sentiment": "MIT."})
