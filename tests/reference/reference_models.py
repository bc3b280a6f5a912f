"""Tiny random models of the reference systems' architectures, saved for ``from_pretrained``.

Like ``tests.tiny.make_tiny_model_dir`` (same tokenizer, same 2-layer size) but with a 1024-token context, so the
systems' real prompts (Llama 3's dated system header + the structured instruction; FinGPT's weekly prompts) fit,
and with the family's own chat template: Llama 3.2's (dated, ``strftime_now``) for S0, Qwen2.5's for S1.
"""

from __future__ import annotations

import sys
from pathlib import Path

from tests.tiny import make_tokenizer, tiny_config

PROMPTS_TESTS = Path(__file__).resolve().parents[1] / "prompts"
CONTEXT = 1024

# Llama 3.2 Instruct ships the Llama 3.1 template with one change: without a date_string it writes TODAY's date
# (strftime_now) instead of the fixed "26 Jul 2024".
FIXED_DATE_BLOCK = '{%- if not date_string is defined %}\n    {%- set date_string = "26 Jul 2024" %}\n{%- endif %}'
TODAY_DATE_BLOCK = ('{%- if not date_string is defined %}\n    {%- if strftime_now is defined %}\n'
                    '        {%- set date_string = strftime_now("%d %b %Y") %}\n    {%- else %}\n'
                    '        {%- set date_string = "26 Jul 2024" %}\n    {%- endif %}\n{%- endif %}')


def official_template(family: str) -> str:
    """The stored official template of a family (``llama3`` = Llama 3.1, ``chatml`` = Qwen2.5), see
    ``tests/prompts/templates/README.md``; ``llama3.2`` = Llama 3.1's with today's date."""
    if str(PROMPTS_TESTS) not in sys.path:
        sys.path.insert(0, str(PROMPTS_TESTS))
    from prompt_tokenizers import official_template as stored

    if family == "llama3.2":
        template = stored("llama3")
        assert FIXED_DATE_BLOCK in template
        return template.replace(FIXED_DATE_BLOCK, TODAY_DATE_BLOCK)
    return stored(family)


def make_reference_model_dir(tmp_path: str | Path, arch: str, template_family: str, seed: int = 0) -> Path:
    """A random tiny ``arch`` causal LM whose tokenizer carries ``template_family``'s chat template."""
    import torch
    from transformers import AutoModelForCausalLM

    out = Path(tmp_path) / f"tiny-{arch}-{template_family}"
    tokenizer = make_tokenizer()
    tokenizer.model_max_length = CONTEXT
    tokenizer.chat_template = official_template(template_family)
    config = tiny_config(arch, len(tokenizer), tokenizer)
    config.max_position_embeddings = CONTEXT
    torch.manual_seed(seed)
    model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    model.save_pretrained(str(out))
    tokenizer.save_pretrained(str(out))
    return out
