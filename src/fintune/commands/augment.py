"""``fintune augment --input SEED --eval TEST --out DIR [--teacher smollm2-135m | openai:MODEL]``."""

from __future__ import annotations

import argparse
import json
from typing import Any

from fintune.cliargs import (
    add_overwrite_argument,
    non_negative_float,
    non_negative_int,
    positive_int,
    probability,
)
from fintune.data.augment import AugmentParams, run_augment
from fintune.data.augment_teacher import make_teacher
from fintune.models import load_for_inference  # torch: loaded only when a local teacher really generates


def register(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Add the ``augment`` verb."""
    p = sub.add_parser(
        "augment", help="expand a labelled set with teacher paraphrases and per-label new samples (guarded)",
        description="Paraphrases keep the label; new samples balance the classes. Outputs that are empty, "
                    "unparsable, change the label (verifier), near-duplicate each other, the seed set or any eval "
                    "split are rejected and counted. Teacher responses are cached, so reruns resume.")
    p.add_argument("--input", required=True,
                   help="seed set: Example JSONL, or a `fintune data` directory (its train split)")
    p.add_argument("--eval", dest="eval_paths", action="append", default=[], metavar="PATH",
                   help="eval split(s) for the contamination check: JSONL or a `fintune data` dir (repeatable; "
                        "default: the --input dir's validation/test)")
    p.add_argument("--out", required=True, help="output directory")
    p.add_argument("--teacher", default="smollm2-135m",
                   help="local model (name, dir or local:NAME; default the embedded smollm2-135m) or openai:MODEL "
                        "(base URL from FINTUNE_TEACHER_BASE_URL, key from FINTUNE_TEACHER_API_KEY)")
    p.add_argument("--paraphrases", type=non_negative_int, default=1, help="paraphrase requests per seed example (default 1)")
    p.add_argument("--new-per-label", type=non_negative_int, default=None,
                   help="new-sample requests per label (default: enough to balance every label to the largest)")
    p.add_argument("--verifier", choices=("classifier", "teacher", "none"), default="classifier",
                   help="label check of each output (default: a classifier fitted on the seed set)")
    p.add_argument("--near-dup-threshold", type=probability, default=0.9, help="char 5-gram Jaccard (default 0.9)")
    p.add_argument("--no-contamination-check", action="store_true",
                   help="skip the eval-split near-duplicate check (recorded in the manifest)")
    p.add_argument("--seed", type=non_negative_int, default=0)
    p.add_argument("--max-seed", type=positive_int, default=None, help="use only the first N seed examples (quick runs)")
    p.add_argument("--temperature", type=non_negative_float, default=0.7)
    p.add_argument("--max-new-tokens", type=positive_int, default=96)
    p.add_argument("--concurrency", type=positive_int, default=4, help="endpoint: parallel requests (default 4)")
    p.add_argument("--rpm", type=non_negative_float, default=60.0, help="endpoint: requests per minute, 0 = no limit (default 60)")
    p.add_argument("--max-retries", type=non_negative_int, default=5, help="endpoint: retries with exponential backoff")
    p.add_argument("--cache", default=None, help="response cache dir (default OUT.cache beside --out)")
    add_overwrite_argument(p)
    return p


def load_teacher_model(name_or_path: str) -> tuple[Any, Any]:
    """A local teacher's (model, tokenizer) through :func:`fintune.models.load_for_inference` (a fintune run with
    its adapter, a model alias, a directory or a hub id), in eval mode on the CPU."""
    model, tokenizer, _info = load_for_inference(name_or_path)
    return model, tokenizer


def run(args: argparse.Namespace) -> int:
    """Run ``fintune augment``."""
    endpoint = {"concurrency": args.concurrency, "requests_per_minute": args.rpm, "max_retries": args.max_retries} \
        if args.teacher.startswith("openai:") else {}
    teacher = make_teacher(args.teacher, temperature=args.temperature, max_new_tokens=args.max_new_tokens,
                           loader=load_teacher_model, **endpoint)
    params = AugmentParams(paraphrases=args.paraphrases, new_per_label=args.new_per_label, seed=args.seed,
                           verifier=args.verifier, near_duplicate_threshold=args.near_dup_threshold,
                           contamination_check=not args.no_contamination_check)
    result = run_augment(args.input, args.out, teacher, args.eval_paths, params, cache_dir=args.cache,
                         max_seed=args.max_seed, overwrite=args.overwrite)
    c = result.counts
    print(f"kept {c['kept']} of {c['requested']} teacher outputs ({c['from_cache']} from cache) -> {args.out}")
    print("rejected " + json.dumps({k: v for k, v in c["rejected_by_reason"].items() if v}))
    print(f"labels before {c['labels_seed']} after {c['labels_after']}")
    return 0
