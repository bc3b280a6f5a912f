"""``fintune augment``: expand a real labelled set with a teacher model, keeping only outputs that pass the guards.

Two kinds of requests go to the teacher (see :mod:`fintune.data.augment_teacher`): *paraphrases* of each seed example
(the label must survive) and *new* samples asked for per label, by default as many as it takes to balance the
classes. Every output then runs the guards in this order, and each rejection is counted by reason:

``malformed_response`` (endpoint body without a completion), ``empty``, ``unparsable`` (refusal, echo of the
instruction, too short or long, cut off mid-sentence), ``unchanged_copy`` (paraphrase equal to its source), ``contamination`` (near-duplicate of any eval split -- on by
default), ``near_duplicate_seed`` (adds nothing over the seed set), ``verifier_unparsable`` / ``label_changed`` (a
verifier -- a classifier trained on the seed set, or the teacher itself -- does not read the intended label), and
``near_duplicate_new`` (near-duplicate of an output kept earlier). Kept rows record their provenance (teacher, prompt
hash, seed, time, parent) in ``extra['augment']``.
"""

from __future__ import annotations

import hashlib
import random
import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fintune.artifacts import atomic_output_dir, check_output_dir, hash_paths, write_manifest
from fintune.data.augment_teacher import ResponseCache, Teacher, TeacherRequest
from fintune.data.leakage import ShingleIndex, jaccard, near_duplicate_pairs, normalize_text
from fintune.data.prepare import prepared_examples
from fintune.errors import FintuneError
from fintune.labels import SENTIMENT, normalize_label
from fintune.records import Example, iter_jsonl, record_from_dict, write_jsonl

REASONS = ("malformed_response", "empty", "unparsable", "unchanged_copy", "contamination", "near_duplicate_seed",
           "verifier_unparsable", "label_changed", "near_duplicate_new")
SYSTEM = "You are a careful financial writer. You reply with exactly one sentence and nothing else."
_REFUSAL = re.compile(r"\b(i'?m sorry|i cannot|i can'?t|as an ai|language model|i apologi[sz]e)\b", re.I)
_ECHO = re.compile(r"(rewrite this|reply with|financial news sentence|sentiment for investors|write one new)", re.I)
_SENTENCE_END = re.compile(r"[.!?][\"'”’)]?$")
_PREFIX = re.compile(r"^\s*(?:\d+[.)]|[-*•]|(?:here is|here's)[^:]*:|(?:rewritten|new|paraphrased)?\s*"
                     r"(?:sentence|headline|text|paraphrase|rewrite)\s*:)\s*", re.I)


@dataclass
class AugmentParams:
    """What to ask the teacher for and how strictly to filter.

    Attributes:
        paraphrases: paraphrase requests per seed example.
        new_per_label: new-sample requests per label; None = as many as balance every label to the largest one.
        seed: seeds every request (and so the cache keys) and the few-shot picks.
        verifier: ``classifier`` (TF-IDF + logistic regression fitted on the seed set), ``teacher`` or ``none``.
        near_duplicate_threshold: character 5-gram Jaccard similarity at or above which two texts are
            near-duplicates (the definition of :mod:`fintune.data.leakage`).
        contamination_check: drop outputs that near-duplicate any eval split (default on).
        few_shot: seed examples of the label shown in each new-sample request.
        min_chars / max_chars: outputs outside this length are unparsable.
    """

    paraphrases: int = 1
    new_per_label: int | None = None
    seed: int = 0
    verifier: str = "classifier"
    near_duplicate_threshold: float = 0.9
    contamination_check: bool = True
    few_shot: int = 3
    min_chars: int = 15
    max_chars: int = 400


@dataclass
class AugmentResult:
    """Kept rows (new Examples), every rejected output with its reason, and the counts for the manifest."""

    kept: list[Example]
    rejected: list[dict[str, Any]]
    counts: dict[str, Any] = field(default_factory=dict)


# ---------------------------------------------------------------- reading inputs


def read_labelled(path: str | Path, labels: Sequence[str], split: str = "train") -> list[Example]:
    """Examples from an Example JSONL file, or the ``split`` of a prepared dataset directory (``fintune data``).

    Every label must be in ``labels``; an unknown or missing one raises naming ``file:line`` (or the prepared split
    and row).
    """
    path = Path(path)
    if path.is_dir():
        rows = _prepared_split(path, split)
    else:
        rows = []
        for lineno, obj in iter_jsonl(path):
            rows.append((f"{path}:{lineno}", record_from_dict(Example, obj, f"{path}:{lineno}")))
        if not rows:
            raise FintuneError(f"{path}: no records", "the file is empty")
    out, seen = [], set()
    for where, ex in rows:
        ex.label = normalize_label(ex.label, labels, f"{where}: field 'label'")
        if ex.id in seen:
            raise FintuneError(f"{where}: duplicate id '{ex.id}'")
        seen.add(ex.id)
        out.append(ex)
    return out


def _prepared_split(directory: Path, split: str) -> list[tuple[str, Example]]:
    """Rows of one split of a prepared dataset directory written by ``fintune data``, with a place for errors."""
    return [(f"{directory / (split + '.parquet')}: row {i}", ex)
            for i, ex in enumerate(prepared_examples(directory, split))]


def read_eval_sets(paths: Sequence[str | Path], labels: Sequence[str]) -> dict[str, list[Example]]:
    """Eval splits to check against: a JSONL file (named by its stem) or a prepared dir (its validation and test,
    named ``validation`` / ``test``)."""
    out: dict[str, list[Example]] = {}
    for p in map(Path, paths):
        if p.is_dir():
            for split in ("validation", "test"):
                rows = _prepared_split(p, split)
                if rows:  # named by split; the directory name only disambiguates several prepared dirs
                    out[split if split not in out else f"{p.name}/{split}"] = [ex for _, ex in rows]
        else:
            out[p.stem] = read_labelled(p, labels)
    return out


# ---------------------------------------------------------------- prompts and output cleaning


def paraphrase_messages(example: Example) -> list[dict[str, str]]:
    """The chat messages asking for one paraphrase that keeps facts, numbers and sentiment."""
    return [{"role": "system", "content": SYSTEM},
            {"role": "user", "content": (
                f"Rewrite this financial news sentence with different wording. Keep every fact and number, and keep "
                f"its {example.label} sentiment for investors. Reply with the rewritten sentence only.\n\n"
                f"Sentence: {example.text}")}]


def new_sample_messages(label: str, shots: Sequence[Example]) -> list[dict[str, str]]:
    """The chat messages asking for one new sentence with ``label`` sentiment, shown a few seed examples."""
    listing = "\n".join(f"{i}. {ex.text}" for i, ex in enumerate(shots, start=1))
    return [{"role": "system", "content": SYSTEM},
            {"role": "user", "content": (
                f"Here are financial news sentences with {label} sentiment for investors:\n{listing}\n\n"
                f"Write one new sentence with {label} sentiment about a different company or event. "
                f"Reply with the sentence only.")}]


def clean_output(raw: str | None, params: AugmentParams, source_text: str | None = None,
                 needs_sentence_end: bool = False) -> tuple[str | None, str | None]:
    """``(text, None)`` for a usable output, else ``(None, reason)`` with a reason from :data:`REASONS`.

    The first non-empty line is the answer (list markers, "Sentence:"-style prefixes, quotes and a lone header line
    ending in ":" are stripped). Refusals, echoes of the instruction, too short/long lines and -- when
    ``needs_sentence_end`` (the examples it imitates end like sentences) -- answers cut off mid-sentence are
    unparsable.
    """
    if raw is None:
        return None, "malformed_response"
    lines = [_PREFIX.sub("", line).strip().strip("\"'“”‘’`").strip() for line in raw.strip().splitlines()]
    lines = [line for line in lines if line]
    if len(lines) > 1 and lines[0].endswith(":"):  # "Here is the rewritten sentence:" on its own line
        lines = lines[1:]
    if not lines:
        return None, "empty"
    text = " ".join(lines[0].split())
    if _REFUSAL.search(raw) or _ECHO.search(text) or not re.search(r"[A-Za-z]{2}", text) \
            or len(text.split()) < 3 or not params.min_chars <= len(text) <= params.max_chars \
            or text.endswith(":") or (needs_sentence_end and not _SENTENCE_END.search(text)):
        return None, "unparsable"
    if source_text is not None and normalize_text(text) == normalize_text(source_text):
        return None, "unchanged_copy"
    return text, None


# ---------------------------------------------------------------- verifiers and near-duplicates


class ClassifierVerifier:
    """TF-IDF word 1-2-grams + logistic regression fitted on the seed set; its 5-fold accuracy is reported."""

    name = "classifier"

    def __init__(self, seed_examples: Sequence[Example], seed: int = 0) -> None:
        from sklearn.feature_extraction.text import TfidfVectorizer
        from sklearn.linear_model import LogisticRegression
        from sklearn.model_selection import cross_val_score
        from sklearn.pipeline import make_pipeline

        counts = Counter(ex.label for ex in seed_examples)
        if len(counts) < 2 or min(counts.values()) < 2:
            raise FintuneError(f"classifier verifier: needs >= 2 seed examples of >= 2 labels, got {dict(counts)}",
                               "use --verifier teacher or --verifier none for tiny sets")
        texts, labels = [ex.text for ex in seed_examples], [ex.label for ex in seed_examples]

        def build() -> Any:
            return make_pipeline(TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True, min_df=1),
                                 LogisticRegression(max_iter=2000, class_weight="balanced", random_state=seed))

        folds = min(5, min(counts.values()))
        self.cv_accuracy = float(cross_val_score(build(), texts, labels, cv=folds).mean()) if folds >= 2 else None
        self.model = build().fit(texts, labels)

    def predict(self, texts: Sequence[str]) -> list[str | None]:
        """The label the classifier reads in each text."""
        return [str(y) for y in self.model.predict(list(texts))] if texts else []


class TeacherVerifier:
    """Asks the teacher to classify each text; an answer naming no single label is ``None`` (unparsable)."""

    name = "teacher"

    def __init__(self, teacher: Teacher, cache: ResponseCache, labels: Sequence[str], seed: int = 0) -> None:
        self.teacher, self.cache, self.labels, self.seed = teacher, cache, tuple(labels), seed
        self.cv_accuracy = None

    def predict(self, texts: Sequence[str]) -> list[str | None]:
        """The label the teacher reads in each text (None when its answer does not name exactly one label)."""
        choices = ", ".join(self.labels)
        requests = [TeacherRequest([{"role": "user", "content": (
            f"Classify the sentiment of this financial sentence for investors as one of: {choices}. "
            f"Answer with one word.\n\nSentence: {t}")}], self.seed) for t in texts]
        return [parse_label_answer(r.text or "", self.labels) for r in self.teacher.complete(requests, self.cache)]


def parse_label_answer(text: str, labels: Sequence[str]) -> str | None:
    """The one label named in ``text`` (whole word, case-insensitive), else None.

    More lenient than :func:`fintune.prompts.parse.parse_label` (which wants the first line to be exactly a label):
    a verifier answer like "The sentiment is positive." is usable, while one naming two labels stays ambiguous.
    """
    found = {lab for lab in labels if re.search(rf"\b{re.escape(lab)}\b", text, re.I)}
    return found.pop() if len(found) == 1 else None


def near_duplicates_of(queries: Sequence[str], refs: Sequence[str], threshold: float) -> dict[int, float]:
    """query index -> best similarity for queries that near-duplicate any ref.

    Same definition as the data-split leakage report (:mod:`fintune.data.leakage`: normalised character 5-gram
    Jaccard), so "contaminated" here means what "leaked" means there.
    """
    if not queries or not refs:
        return {}
    return {i: sim for i, _j, sim in near_duplicate_pairs(list(queries), list(refs), threshold)}


def greedy_unique(texts: Sequence[str], threshold: float) -> list[bool]:
    """Keep-mask: a text is dropped when it near-duplicates an earlier *kept* text (leakage's definition)."""
    from collections import defaultdict

    if not texts:
        return []
    index = ShingleIndex(list(texts), threshold)
    by_prefix: dict[str, list[int]] = defaultdict(list)
    keep = []
    for i in range(len(texts)):
        candidates = {j for g in index.prefixes[i] for j in by_prefix.get(g, ())}
        dup = any(jaccard(index.sets[i], index.sets[j]) >= threshold for j in candidates)
        keep.append(not dup)
        if not dup:  # only kept texts can make later ones duplicates
            for g in index.prefixes[i]:
                by_prefix[g].append(i)
    return keep


# ---------------------------------------------------------------- the pipeline


def _request_seed(seed: int, *parts: object) -> int:
    digest = hashlib.sha256("|".join(map(str, (seed, *parts))).encode()).hexdigest()
    return int(digest[:8], 16) % (2 ** 31)


def plan_requests(seed_examples: Sequence[Example], labels: Sequence[str], params: AugmentParams
                  ) -> list[dict[str, Any]]:
    """Every teacher request: ``{kind, label, parent, request}`` for paraphrases and per-label new samples."""
    jobs: list[dict[str, Any]] = []
    for ex in seed_examples:
        for k in range(params.paraphrases):
            jobs.append({"kind": "paraphrase", "label": ex.label, "parent": ex,
                         "request": TeacherRequest(paraphrase_messages(ex), _request_seed(params.seed, "p", ex.id, k))})
    by_label = {lab: [ex for ex in seed_examples if ex.label == lab] for lab in labels}
    largest = max(len(v) for v in by_label.values())
    for lab in labels:
        want = params.new_per_label if params.new_per_label is not None else largest - len(by_label[lab])
        if want and not by_label[lab]:
            raise FintuneError(f"augment: no seed example has label '{lab}' to show the teacher",
                               "add examples of every label or pass --new-per-label 0")
        for k in range(want):
            req_seed = _request_seed(params.seed, "n", lab, k)
            shots = random.Random(req_seed).sample(by_label[lab], min(params.few_shot, len(by_label[lab])))
            jobs.append({"kind": "new", "label": lab, "parent": None, "shots": [ex.text for ex in shots],
                         "request": TeacherRequest(new_sample_messages(lab, shots), req_seed)})
    return jobs


def augment_examples(seed_examples: Sequence[Example], eval_sets: dict[str, list[Example]], teacher: Teacher,
                     cache: ResponseCache, labels: Sequence[str] = SENTIMENT,
                     params: AugmentParams | None = None, progress: bool = True) -> AugmentResult:
    """Ask the teacher, run every guard, and return the kept rows with provenance plus all rejection counts."""
    params = params or AugmentParams()
    if params.verifier not in ("classifier", "teacher", "none"):
        raise FintuneError(f"augment: unknown verifier '{params.verifier}'", "choose classifier, teacher or none")
    if params.contamination_check and not any(eval_sets.values()):
        raise FintuneError("augment: the contamination check needs the eval split(s)",
                           "give --eval PATH (test/validation), or pass --no-contamination-check")
    for ex in seed_examples:
        normalize_label(ex.label, labels, f"seed example '{ex.id}': field 'label'")
    verifier: Any = None
    if params.verifier == "classifier":
        verifier = ClassifierVerifier(seed_examples, params.seed)
    elif params.verifier == "teacher":
        verifier = TeacherVerifier(teacher, cache, labels, params.seed)

    jobs = plan_requests(seed_examples, labels, params)
    responses = teacher.complete([j["request"] for j in jobs], cache, progress=progress)
    rejected: list[dict[str, Any]] = []
    reasons: Counter[str] = Counter()

    def reject(job: dict[str, Any], text: str | None, reason: str, **info: Any) -> None:
        reasons[reason] += 1
        rejected.append({"kind": job["kind"], "label": job["label"], "parent_id": job["parent"].id if job["parent"]
                         else None, "prompt_hash": job["hash"], "output": text, "reason": reason, **info})

    alive = []
    for job, resp in zip(jobs, responses, strict=True):
        job["hash"], job["created"], job["raw"] = resp.prompt_hash, resp.created, resp.text
        imitated = [job["parent"].text] if job["parent"] else job["shots"]
        text, why = clean_output(resp.text, params, job["parent"].text if job["parent"] else None,
                                 needs_sentence_end=all(_SENTENCE_END.search(t.strip()) for t in imitated))
        if why:
            reject(job, resp.text, why)
        else:
            job["text"] = text
            alive.append(job)

    seed_texts = [ex.text for ex in seed_examples]
    thr = params.near_duplicate_threshold
    contamination_by_split: Counter[str] = Counter()
    if params.contamination_check:
        survivors = []
        dups_by_split = {name: near_duplicates_of([j["text"] for j in alive], [ex.text for ex in rows], thr)
                         for name, rows in eval_sets.items()}
        for k, job in enumerate(alive):
            hits = [name for name, dups in dups_by_split.items() if k in dups]
            if hits:
                contamination_by_split.update(hits)
                reject(job, job["text"], "contamination", splits=hits)
            else:
                survivors.append(job)
        alive = survivors

    seed_dups = near_duplicates_of([j["text"] for j in alive], seed_texts, thr)
    for k, job in enumerate(alive):
        if k in seed_dups:
            reject(job, job["text"], "near_duplicate_seed", similarity=round(seed_dups[k], 4))
    alive = [job for k, job in enumerate(alive) if k not in seed_dups]

    if verifier is not None:
        readings = verifier.predict([j["text"] for j in alive])
        survivors = []
        for job, read in zip(alive, readings, strict=True):
            job["verifier_label"] = read
            if read is None:
                reject(job, job["text"], "verifier_unparsable")
            elif read != job["label"]:
                reject(job, job["text"], "label_changed", verifier_label=read)
            else:
                survivors.append(job)
        alive = survivors

    keep_mask = greedy_unique([j["text"] for j in alive], thr)
    kept: list[Example] = []
    for job, keep in zip(alive, keep_mask, strict=True):
        if not keep:
            reject(job, job["text"], "near_duplicate_new")
            continue
        parent = job["parent"]
        provenance = {"kind": job["kind"], "teacher": teacher.name, "prompt_hash": job["hash"],
                      "seed": job["request"].seed, "time": job["created"], "parent_id": parent.id if parent else None,
                      "verifier": params.verifier, "verifier_label": job.get("verifier_label")}
        kept.append(Example(id=f"aug-{job['hash'][:16]}", text=job["text"], label=job["label"],
                            date=parent.date if parent else None, ticker=parent.ticker if parent else None,
                            source="augment", extra={"augment": provenance}))

    seed_counts = Counter(ex.label for ex in seed_examples)
    kept_counts = Counter(ex.label for ex in kept)
    seed_eval_overlap = {name: len(near_duplicates_of([ex.text for ex in rows], seed_texts, thr))
                         for name, rows in eval_sets.items()}
    counts = {
        "requested": len(jobs),
        "requested_by_kind": dict(Counter(j["kind"] for j in jobs)),
        "from_cache": sum(r.cached for r in responses),
        "teacher_calls_made": sum(not r.cached for r in responses),
        "kept": len(kept),
        "kept_by_kind": dict(Counter(ex.extra["augment"]["kind"] for ex in kept)),
        "rejected": len(rejected),
        "rejected_by_reason": {r: reasons.get(r, 0) for r in REASONS},
        "contamination_check": params.contamination_check,
        "contamination_by_split": dict(contamination_by_split),
        "eval_sizes": {name: len(rows) for name, rows in eval_sets.items()},
        "seed_eval_near_duplicates": seed_eval_overlap,
        "labels_seed": {lab: seed_counts.get(lab, 0) for lab in labels},
        "labels_kept": {lab: kept_counts.get(lab, 0) for lab in labels},
        "labels_after": {lab: seed_counts.get(lab, 0) + kept_counts.get(lab, 0) for lab in labels},
        "verifier": params.verifier,
        "verifier_cv_accuracy": getattr(verifier, "cv_accuracy", None),
    }
    return AugmentResult(kept, rejected, counts)


def run_augment(input_path: str | Path, out: str | Path, teacher: Teacher, eval_paths: Sequence[str | Path] = (),
                params: AugmentParams | None = None, labels: Sequence[str] = SENTIMENT,
                cache_dir: str | Path | None = None, max_seed: int | None = None, overwrite: bool = False,
                progress: bool = True) -> AugmentResult:
    """Read the seed set (+ eval splits), augment, and write ``out`` atomically.

    ``out`` gets ``augmented.jsonl`` (kept rows), ``seed.jsonl`` (the seed rows used), ``train.jsonl`` (seed +
    kept), ``eval/<name>.jsonl`` (the eval splits checked), ``rejected.jsonl`` and ``manifest.json`` (counts,
    teacher, params). The response cache defaults to ``<out>.cache`` beside it, outside the atomic output, so a failed
    run keeps its teacher work and a rerun resumes.
    """
    params = params or AugmentParams()
    out = check_output_dir(out, overwrite, inputs=[input_path, *eval_paths, cache_dir])
    input_path = Path(input_path)
    seed_examples = read_labelled(input_path, labels)
    if max_seed is not None:
        seed_examples = seed_examples[:max_seed]
    eval_list = list(eval_paths) or ([input_path] if input_path.is_dir() else [])
    eval_sets = read_eval_sets(eval_list, labels) if params.contamination_check else {}
    cache = ResponseCache(cache_dir or out.with_name(out.name + ".cache"))
    result = augment_examples(seed_examples, eval_sets, teacher, cache, labels, params, progress)
    with atomic_output_dir(out, overwrite=overwrite, inputs=[input_path, *eval_paths, cache_dir]) as stage:
        write_jsonl(stage / "augmented.jsonl", result.kept)
        write_jsonl(stage / "seed.jsonl", seed_examples)
        write_jsonl(stage / "train.jsonl", [*seed_examples, *result.kept])
        for name, rows in eval_sets.items():
            write_jsonl(stage / "eval" / f"{name.replace('/', '__')}.jsonl", rows)
        write_jsonl(stage / "rejected.jsonl", result.rejected)
        inputs = [input_path, *map(Path, eval_list)] if eval_sets else [input_path]
        write_manifest(stage, "augment", seed=params.seed, data_hashes=hash_paths(inputs),
                       params={**params.__dict__, "max_seed": max_seed, "labels": list(labels)},
                       teacher=teacher.identity(), cache_dir=str(cache.directory), counts=result.counts)
    return result
