"""Financial PhraseBank v1.0 (Malo et al. 2014): latin-1 ``sentence@label`` lines, four agreement levels.

The release is latin-1 (its PROVENANCE says so); a copy re-saved as UTF-8 is read as UTF-8. Strict UTF-8 is tried
first, latin-1 second (``encoding: auto``, the default), so neither is turned into mojibake; ``options.encoding``
forces one.

Rows are returned in FILE ORDER, which the FinGPT-compatible split (``split.method: fingpt``) relies on: FinGPT loads
the Hugging Face ``financial_phrasebank`` ``sentences_50agree`` rows in file order and calls
``train_test_split(seed=42)`` on them.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

from fintune.data.registry import check_options, option, read_text, require_path
from fintune.errors import FintuneError
from fintune.labels import SENTIMENT, normalize_label
from fintune.recipe import SourceConfig
from fintune.records import Example

AGREEMENT_FILES = {
    "50": "Sentences_50Agree.txt",
    "66": "Sentences_66Agree.txt",
    "75": "Sentences_75Agree.txt",
    "all": "Sentences_AllAgree.txt",
}


def phrasebank_file(path: str | Path, agreement: str = "50") -> Path:
    """The PhraseBank file for an agreement level inside a dataset folder (or ``path`` itself if a file)."""
    path = Path(path)
    if path.is_file():
        return path
    if agreement not in AGREEMENT_FILES:
        raise FintuneError(f"phrasebank: unknown agreement {agreement!r}", f"use one of {list(AGREEMENT_FILES)}")
    target = path / AGREEMENT_FILES[agreement]
    if not target.is_file():
        raise FintuneError(f"{target}: file not found", "point 'path' to the FinancialPhraseBank-v1.0 folder")
    return target


def load_phrasebank(path: str | Path, agreement: str = "50", labels: Sequence[str] = SENTIMENT,
                    label_map: Mapping[str, str] | None = None, encoding: str = "auto") -> list[Example]:
    """Read one PhraseBank file (``sentence@label`` per line) into Examples in file order.

    Args:
        path: the dataset folder (file picked by ``agreement``) or one ``Sentences_*.txt`` file.
        agreement: ``50``, ``66``, ``75`` or ``all``.
        labels: declared label set the raw labels are normalised to.
        label_map: raw label -> declared label, for custom label sets.
        encoding: ``auto`` (strict UTF-8, else latin-1, the release's encoding) or a codec name used as given.

    Raises:
        FintuneError: a line without ``@``, an empty sentence or an unknown label (naming ``file:line``).
    """
    file = phrasebank_file(path, agreement)
    # str.splitlines() also splits the one bare CR inside Sentences_AllAgree.txt, giving the documented 2264 rows.
    lines = read_text(file, encoding, legacy="latin-1").splitlines()
    tag = "fpb" + (agreement if Path(path).is_dir() else file.stem.split("_")[-1].lower().replace("agree", ""))
    examples = []
    for lineno, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        where = f"{file}:{lineno}"
        if "@" not in line:
            raise FintuneError(f"{where}: no '@' separating sentence and label",
                               "each line must be 'sentence@label'")
        sentence, raw_label = line.rsplit("@", 1)
        if not sentence.strip():
            raise FintuneError(f"{where}: empty sentence before '@'")
        label = normalize_label(raw_label.strip(), labels, where, label_map)
        examples.append(Example(id=f"{tag}-{len(examples):05d}", text=sentence.strip(), label=label,
                                source="phrasebank",
                                extra={"agreement": agreement, "line": lineno}))
    return examples


def load_phrasebank_source(cfg: SourceConfig, task: str, labels: tuple[str, ...] | None) -> list[Example]:
    """Registry entry: ``name: phrasebank`` (options: ``encoding``)."""
    check_options(cfg, ["encoding"])
    if task not in ("sentiment", "pretrain"):
        raise FintuneError(f"source 'phrasebank' has sentiment labels, not task '{task}'",
                           "use data.task: sentiment (or pretrain)")
    path = require_path(cfg, "FinancialPhraseBank-v1.0 folder or a Sentences_*.txt file")
    return load_phrasebank(path, cfg.agreement or "50", labels or SENTIMENT, cfg.label_map,
                           option(cfg, "encoding", "auto"))
