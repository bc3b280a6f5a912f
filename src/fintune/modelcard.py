"""Model cards that carry the data licenses: ``README.md`` with YAML front matter, written next to an exported model.

Every run manifest records ``licenses`` (data folder -> the license its ``PROVENANCE.md`` states). ``fintune merge``
and ``fintune export`` copy them into the card (``license``, ``base_model``, ``datasets``, ``tags`` in the front
matter, one row per data source in the body) and warn on stderr when a non-commercial license applies.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

import yaml

from fintune.run import RunManifest

_UNSTATED = re.compile(r"^\s*(no license|not stated|none stated|unknown)", re.IGNORECASE)
_NON_COMMERCIAL = re.compile(r"\bNC\b|BY-NC|non[- ]?commercial", re.IGNORECASE)
_SPDX = (  # (pattern in the stated license text, Hugging Face license id); the most specific first
    (re.compile(r"CC[- ]BY[- ]NC[- ]SA[- ]3\.0", re.I), "cc-by-nc-sa-3.0"),
    (re.compile(r"CC[- ]BY[- ]NC[- ]SA[- ]4\.0", re.I), "cc-by-nc-sa-4.0"),
    (re.compile(r"CC[- ]BY[- ]NC[- ]4\.0", re.I), "cc-by-nc-4.0"),
    (re.compile(r"CC[- ]BY[- ]SA[- ]3\.0", re.I), "cc-by-sa-3.0"),
    (re.compile(r"CC[- ]BY[- ]3\.0", re.I), "cc-by-3.0"),
    (re.compile(r"CC[- ]BY[- ]4\.0", re.I), "cc-by-4.0"),
    (re.compile(r"\bApache[- ]2\.0\b", re.I), "apache-2.0"),
    (re.compile(r"\bMIT\b"), "mit"),
)


def license_id(text: str) -> str:
    """The Hugging Face license id a stated license text names (``other`` when none is recognised or the text says
    no license is stated -- "No license file ships ... (the repo's MIT license covers its code)" is not MIT)."""
    if _UNSTATED.search(text):
        return "other"
    for pattern, spdx in _SPDX:
        if pattern.search(text):
            return spdx
    return "other"


def non_commercial(licenses: dict[str, str]) -> dict[str, str]:
    """The sources among ``licenses`` (folder -> stated license) whose license forbids commercial use."""
    return {src: text for src, text in licenses.items() if _NON_COMMERCIAL.search(text)}


def warn_non_commercial(licenses: dict[str, str], what: str) -> bool:
    """Print one line on stderr when a non-commercial license applies to ``what``; True when it did."""
    nc = non_commercial(licenses)
    if nc:
        names = ", ".join(f"{Path(src).name} ({license_id(text)})" for src, text in sorted(nc.items()))
        print(f"warning: {what} was trained on non-commercial data: {names}; commercial use is not allowed",
              file=sys.stderr)
    return bool(nc)


def model_card(manifest: RunManifest | None, base_model: str, title: str, extra_tags: tuple[str, ...] = (),
               body: str = "") -> str:
    """The ``README.md`` text: YAML front matter (license, base_model, datasets, tags, ``model_cutoff`` when the
    recipe set one) + data/licence table."""
    licenses = dict(manifest.licenses) if manifest is not None else {}
    ids = sorted({license_id(t) for t in licenses.values()})
    front: dict[str, object] = {
        "license": ids[0] if len(ids) == 1 else "other",
        "base_model": base_model,
        "datasets": sorted(Path(src).name for src in licenses),
        "tags": ["fintune", "finance", *extra_tags],
    }
    cutoff = manifest.model_cutoff if manifest is not None else None
    if cutoff:
        front["model_cutoff"] = cutoff
    if len(ids) > 1:
        front["license_name"] = "mixed-data-licenses"
        front["license_details"] = "; ".join(ids)
    nc = non_commercial(licenses)
    if nc:
        front["tags"].append("non-commercial")  # type: ignore[union-attr]
    spec = manifest.task_spec if manifest is not None else None
    lines = ["---", yaml.safe_dump(front, sort_keys=False, allow_unicode=True).rstrip(), "---", "", f"# {title}", "",
             f"Fine-tuned with fintune from `{base_model}`."]
    if spec is not None:
        lines += ["", f"Task: `{spec.task}`, answer format: `{spec.format}`, labels: "
                      f"{', '.join(f'`{x}`' for x in spec.labels or []) or 'none'}, template: `{spec.template}`."]
    if cutoff:
        lines += ["", f"Base model pretraining cutoff: {cutoff} (recipe `model_cutoff`). A backtest of a period "
                      "before this date is not out of sample for the base model: it may have read about it."]
    lines += ["", "## Training data and licenses", ""]
    if licenses:
        lines += ["| data source | license (as its PROVENANCE.md states) |", "|---|---|"]
        lines += [f"| {Path(src).name} | {text.replace('|', '/')} |" for src, text in sorted(licenses.items())]
    else:
        lines.append("No data license was recorded for this run (its data folders carry no PROVENANCE.md).")
    if nc:
        lines += ["", "**Non-commercial:** data under a non-commercial license went into these weights "
                      f"({', '.join(sorted(Path(s).name for s in nc))}); the model may not be used commercially."]
    if body:
        lines += ["", body.rstrip()]
    return "\n".join(lines) + "\n"
