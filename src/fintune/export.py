"""``fintune export``: a run (adapter merged into its base) as a GGUF file for llama.cpp / LM Studio, or for Ollama.

The conversion follows llama.cpp's ``convert_hf_to_gguf.py`` for the Llama architecture (SmolLM/SmolLM2, Llama
2/3 without rope scaling): tensor names from ``gguf.TensorNameMap``, the q/k projection rows permuted into GGML's
rotary layout (``LlamaModel.permute``), the BPE tokenizer as ``tokenizer.ggml.*`` (tokens, token types, merges,
special ids via ``gguf.SpecialVocab``) and the chat template. fintune adds what inference must repeat:
``fintune.task_spec`` (JSON), ``fintune.labels`` and ``fintune.answers`` (the exact answer text per label).

Quantization uses ``gguf.quants`` (numpy reference kernels): f32, f16, bf16, q8_0 and q4_0. K-quants
(q4_k_m ...) have no quantizer in the ``gguf`` package: run llama.cpp's ``llama-quantize`` on an f16 export.
"""

from __future__ import annotations

import json
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import gguf
import numpy as np

from fintune.artifacts import (
    atomic_output_dir,
    atomic_write_text,
    check_output_dir,
    sha256_file,
    write_manifest,
)
from fintune.errors import FintuneError
from fintune.modelcard import license_id, model_card, warn_non_commercial
from fintune.models import is_adapter_dir, load_for_inference, resolve_model
from fintune.prompts.tasks import answer_text
from fintune.prompts.templates import render_messages
from fintune.run import RunManifest, TaskSpec, read_run

FORMATS = ("gguf", "ollama")
QUANTS = ("f32", "f16", "bf16", "q8_0", "q4_0")
SUPPORTED_ARCHS = ("LlamaForCausalLM",)
_SENTINEL = {"system": "FINTUNESYSTEMSENTINEL", "user": "FINTUNEUSERSENTINEL", "assistant": "FINTUNEANSWERSENTINEL"}


@dataclass
class ExportResult:
    """What :func:`export_run` wrote."""

    out: Path
    gguf: Path
    modelfile: Path | None
    card: Path


def _check_quant(quant: str) -> Any:
    if quant not in QUANTS:
        raise FintuneError(f"--quant {quant}: not supported by the gguf package's quantizers",
                           f"use one of {', '.join(QUANTS)} (for k-quants run llama.cpp's llama-quantize "
                           "on an f16 export)")
    q = gguf.GGMLQuantizationType
    f = gguf.LlamaFileType
    return {"f32": (q.F32, f.ALL_F32), "f16": (q.F16, f.MOSTLY_F16), "bf16": (q.BF16, f.MOSTLY_BF16),
            "q8_0": (q.Q8_0, f.MOSTLY_Q8_0), "q4_0": (q.Q4_0, f.MOSTLY_Q4_0)}[quant]


def _source(run: Path) -> tuple[RunManifest | None, str]:
    """The run's manifest (None for a plain model directory) and the model whose config decides the architecture."""
    if is_adapter_dir(run):
        manifest = read_run(run, "train")
        return manifest, manifest.base_model
    if not (run / "config.json").exists():
        raise FintuneError(f"{run}: neither a LoRA run (adapter_config.json) nor a model directory (config.json)",
                           "give a run directory from fintune train or a directory from fintune merge")
    return (read_run(run) if (run / "manifest.json").exists() else None), str(run)


def check_architecture(config: Any, where: str) -> None:
    """One-line error unless ``config`` is an architecture (and rope variant) the exporter converts."""
    archs = list(getattr(config, "architectures", None) or [])
    if getattr(config, "model_type", None) != "llama" or (archs and archs[0] not in SUPPORTED_ARCHS):
        raise FintuneError(f"{where}: architecture {archs[0] if archs else config.model_type!r} is not supported "
                           "by fintune export", f"supported: {', '.join(SUPPORTED_ARCHS)} (SmolLM, Llama); use "
                           "`fintune merge` and llama.cpp's convert_hf_to_gguf.py for others")
    rope = getattr(config, "rope_scaling", None) or {}
    rope_type = rope.get("rope_type", rope.get("type", "default")) if isinstance(rope, dict) else "default"
    if rope_type not in (None, "default"):
        raise FintuneError(f"{where}: rope scaling '{rope_type}' is not supported by fintune export yet",
                           "use `fintune merge` and llama.cpp's convert_hf_to_gguf.py")


def _pre_tokenizer(tokenizer: Any) -> str:
    """llama.cpp's ``tokenizer.ggml.pre`` name for a byte-level BPE tokenizer, read from its pre-tokenizer."""
    spec = json.loads(tokenizer.backend_tokenizer.to_str())
    model = spec.get("model") or {}
    if model.get("type") != "BPE" or model.get("byte_fallback"):
        raise FintuneError(f"tokenizer {getattr(tokenizer, 'name_or_path', '')}: only byte-level BPE tokenizers "
                           "export (GPT-2 / SmolLM / Llama 3 style)", "use llama.cpp's convert_hf_to_gguf.py")
    pre = spec.get("pre_tokenizer") or {}
    steps = pre.get("pretokenizers") if pre.get("type") == "Sequence" else [pre]
    kinds = [s.get("type") for s in steps]
    if kinds == ["ByteLevel"] and steps[0].get("use_regex", True):
        return "gpt-2"
    if kinds == ["Digits", "ByteLevel"] and steps[0].get("individual_digits") and steps[1].get("use_regex", True):
        return "smollm"
    if kinds == ["Split", "ByteLevel"] and "\\p{N}{1,3}" in json.dumps(steps[0].get("pattern")):
        return "llama-bpe"
    raise FintuneError(f"tokenizer {getattr(tokenizer, 'name_or_path', '')}: pre-tokenizer {kinds} has no "
                       "known llama.cpp name", "use llama.cpp's convert_hf_to_gguf.py")


def _add_vocab(writer: Any, tokenizer: Any, vocab_size: int, workdir: Path) -> None:
    """Tokens, token types, merges and special ids, as ``convert_hf_to_gguf.py``'s ``_set_vocab_gpt2`` writes them."""
    pre = _pre_tokenizer(tokenizer)
    vocab = tokenizer.get_vocab()
    if max(vocab.values()) >= vocab_size:
        raise FintuneError(f"tokenizer has ids up to {max(vocab.values())} but the model embeds {vocab_size}",
                           "the tokenizer does not belong to this model")
    reverse = {i: t for t, i in vocab.items()}
    added = tokenizer.added_tokens_decoder
    tokens, types = [], []
    for i in range(vocab_size):
        if i not in reverse:
            tokens.append(f"[PAD{i}]")
            types.append(gguf.TokenType.UNUSED)
        elif i in added:
            tokens.append(reverse[i])
            types.append(gguf.TokenType.CONTROL if added[i].special else gguf.TokenType.USER_DEFINED)
        else:
            tokens.append(reverse[i])
            types.append(gguf.TokenType.NORMAL)
    writer.add_tokenizer_model("gpt2")
    writer.add_tokenizer_pre(pre)
    writer.add_token_list(tokens)
    writer.add_token_types(types)
    tokenizer.save_pretrained(str(workdir))
    gguf.SpecialVocab(workdir, load_merges=True, n_vocab=vocab_size).add_to_gguf(writer, quiet=True)


def _permute(w: np.ndarray, n_head: int) -> np.ndarray:
    """llama.cpp's ``LlamaModel.permute``: HF's rotate-half row order -> GGML's interleaved rotary pairs."""
    return w.reshape(n_head, 2, w.shape[0] // n_head // 2, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape)


def _add_tensors(writer: Any, model: Any, qtype: Any) -> None:
    cfg = model.config
    n_head, n_kv = cfg.num_attention_heads, cfg.num_key_value_heads or cfg.num_attention_heads
    names = gguf.get_tensor_name_map(gguf.MODEL_ARCH.LLAMA, cfg.num_hidden_layers)
    q = gguf.GGMLQuantizationType
    for hf_name, tensor in model.state_dict().items():
        if hf_name.endswith("rotary_emb.inv_freq") or (hf_name == "lm_head.weight" and cfg.tie_word_embeddings):
            continue
        name = names.get_name(hf_name, try_suffixes=(".weight", ".bias"))
        if name is None:
            raise FintuneError(f"tensor {hf_name}: no GGUF name for it in the llama architecture",
                               "is this a plain Llama model?")
        data = tensor.detach().float().cpu().numpy()
        if hf_name.endswith(("q_proj.weight", "q_proj.bias")):
            data = _permute(data, n_head)
        elif hf_name.endswith(("k_proj.weight", "k_proj.bias")):
            data = _permute(data, n_kv)
        want = qtype
        if data.ndim < 2:
            want = q.F32  # norms stay f32, as llama.cpp's converter keeps them
        elif want == q.Q4_0 and name in ("token_embd.weight", "output.weight"):
            want = q.Q8_0  # embeddings / output are the most sensitive: one step up, as llama-quantize does
        if want in (q.Q8_0, q.Q4_0) and data.shape[-1] % gguf.GGML_QUANT_SIZES[want][0]:
            want = q.F16  # rows not a multiple of the block size: llama.cpp falls back the same way
        if want == q.F32:
            writer.add_tensor(name, data.astype(np.float32))
        elif want == q.F16:
            writer.add_tensor(name, data.astype(np.float16))
        else:
            writer.add_tensor(name, gguf.quants.quantize(data, want), raw_dtype=want)


def _add_hparams(writer: Any, model: Any, name: str, ftype: Any) -> None:
    cfg = model.config
    head_dim = getattr(cfg, "head_dim", None) or cfg.hidden_size // cfg.num_attention_heads
    writer.add_name(name)
    writer.add_context_length(cfg.max_position_embeddings)
    writer.add_embedding_length(cfg.hidden_size)
    writer.add_block_count(cfg.num_hidden_layers)
    writer.add_feed_forward_length(cfg.intermediate_size)
    writer.add_head_count(cfg.num_attention_heads)
    writer.add_head_count_kv(cfg.num_key_value_heads or cfg.num_attention_heads)
    writer.add_rope_freq_base(float(getattr(cfg, "rope_theta", None)
                                    or (getattr(cfg, "rope_parameters", None) or {}).get("rope_theta", 10000.0)))
    writer.add_layer_norm_rms_eps(cfg.rms_norm_eps)
    writer.add_rope_dimension_count(head_dim)
    if head_dim != cfg.hidden_size // cfg.num_attention_heads:
        writer.add_key_length(head_dim)
        writer.add_value_length(head_dim)
    writer.add_vocab_size(cfg.vocab_size)
    writer.add_file_type(ftype)
    writer.add_quantization_version(gguf.GGML_QUANT_VERSION)


def _add_task(writer: Any, spec: TaskSpec) -> None:
    writer.add_string("fintune.task_spec", spec.model_dump_json())
    writer.add_string("fintune.format", spec.format)
    writer.add_string("fintune.template", spec.template)
    if spec.labels:
        writer.add_array("fintune.labels", list(spec.labels))
        writer.add_array("fintune.answers", [answer_text(lb, spec.format, {}) for lb in spec.labels])
    if spec.system_prompt:
        writer.add_string("fintune.system_prompt", spec.system_prompt)


def _go_literal(text: str, what: str) -> str:
    if "{{" in text or '"""' in text:
        raise FintuneError(f"--format ollama: the chat template's {what} contains '{{{{' or '\"\"\"'",
                           "use --format gguf and write the Modelfile by hand")
    return text


def modelfile(spec: TaskSpec, tokenizer: Any, gguf_name: str, context: int) -> str:
    """An Ollama Modelfile whose Go TEMPLATE renders exactly fintune's prompt for one system + user turn.

    The pieces around each turn come from fintune's own renderer (``render_messages``) with sentinel contents, so
    the TEMPLATE matches the chat template the run was trained with (ChatML, Llama 3, ...), default system prompt
    included (as ``SYSTEM``).
    """
    s = _SENTINEL
    full, completion = render_messages([{"role": "system", "content": s["system"]},
                                        {"role": "user", "content": s["user"]},
                                        {"role": "assistant", "content": s["assistant"]}],
                                       spec.template, tokenizer, spec.template_date or "26 Jul 2024")
    bare, _ = render_messages([{"role": "user", "content": s["user"]}], spec.template, tokenizer,
                              spec.template_date or "26 Jul 2024")
    if full.count(s["system"]) != 1 or full.count(s["user"]) != 1 or bare.count(s["user"]) != 1:
        raise FintuneError(f"--format ollama: template '{spec.template}' does not render each turn once",
                           "use --format gguf")
    before_sys, rest = full.split(s["system"])
    between, after_user = rest.split(s["user"])
    bare_prefix, bare_after = bare.split(s["user"])
    if bare_after != after_user:
        raise FintuneError(f"--format ollama: template '{spec.template}' ends the user turn differently without "
                           "a system prompt", "use --format gguf")
    system = spec.system_prompt
    if system is None and bare_prefix.startswith(before_sys) and bare_prefix.endswith(between) \
            and len(bare_prefix) > len(before_sys) + len(between):
        system = bare_prefix[len(before_sys):len(bare_prefix) - len(between)]  # the template's default system
    end = completion[len(s["assistant"]):] if completion.startswith(s["assistant"]) else ""
    stops = [x for x in dict.fromkeys([end.strip(), getattr(tokenizer, "eos_token", None)]) if x]
    template = ("{{ if .System }}" + _go_literal(before_sys, "system prefix") + "{{ .System }}"
                + _go_literal(between, "system suffix") + "{{ else }}" + _go_literal(bare_prefix, "user prefix")
                + "{{ end }}{{ .Prompt }}" + _go_literal(after_user, "user suffix") + "{{ .Response }}"
                + _go_literal(end, "end of turn"))
    lines = [f"# written by fintune export: task {spec.task}, format {spec.format}, labels "
             f"{', '.join(spec.labels or []) or '-'}", f"FROM ./{gguf_name}", f'TEMPLATE """{template}"""']
    if system:
        lines.append(f'SYSTEM """{_go_literal(system, "system prompt")}"""')
    lines += [f'PARAMETER stop "{x}"' for x in stops]
    lines += ["PARAMETER temperature 0", f"PARAMETER num_ctx {min(int(context), 8192)}"]
    return "\n".join(lines) + "\n"


def export_run(run: str | Path, out: str | Path, fmt: str = "gguf", quant: str = "f16",
               overwrite: bool = False) -> ExportResult:
    """Merge ``run``'s adapter into its base and write ``out/<name>.<quant>.gguf`` + model card (+ Modelfile).

    ``out`` is a directory (checked like every ``--out``: non-empty needs ``overwrite``, never the run itself);
    everything is built in a staging folder and renamed into place.
    """
    from transformers import AutoConfig

    run = Path(run)
    if fmt not in FORMATS:
        raise FintuneError(f"--format {fmt}: unknown format", f"use one of {', '.join(FORMATS)}")
    qtype, ftype = _check_quant(quant)
    if not run.exists():  # an alias (smollm2-135m) or a cached hub id: the plain model directory
        run = Path(resolve_model(str(run)))
    manifest, config_source = _source(run)
    check_output_dir(out, overwrite, runs=[run])
    check_architecture(AutoConfig.from_pretrained(resolve_model(config_source)), str(run))  # before the weights
    model, tokenizer, info = load_for_inference(str(run), dtype="float32")
    if info.kind == "adapter":
        model = model.merge_and_unload()
    check_architecture(model.config, str(run))
    spec = info.spec or TaskSpec(labels=["negative", "neutral", "positive"])
    name = run.resolve().name
    gguf_name = f"{name}.{quant}.gguf"
    licenses = dict(manifest.licenses) if manifest is not None else {}
    with atomic_output_dir(out, overwrite, runs=[run]) as staging, tempfile.TemporaryDirectory() as tmp:
        writer = gguf.GGUFWriter(str(staging / gguf_name), gguf.MODEL_ARCH_NAMES[gguf.MODEL_ARCH.LLAMA])
        _add_hparams(writer, model, name, ftype)
        ids = sorted({license_id(t) for t in licenses.values()})
        if ids:
            writer.add_license(ids[0] if len(ids) == 1 else "other")
        _add_task(writer, spec)
        _add_vocab(writer, tokenizer, model.config.vocab_size, Path(tmp))
        _add_tensors(writer, model, qtype)
        writer.write_header_to_file()
        writer.write_kv_data_to_file()
        writer.write_tensors_to_file(progress=False)
        writer.close()
        mf = None
        if fmt == "ollama":
            mf = atomic_write_text(staging / "Modelfile",
                                   modelfile(spec, tokenizer, gguf_name, model.config.max_position_embeddings))
        usage = (f"## Use\n\n```bash\nllama-cli -m {gguf_name}\n" + ("ollama create NAME -f Modelfile\n" if mf else "")
                 + "```\n\nPrompts must be rendered as fintune renders them (the chat template is in the GGUF); "
                 "the answer is one of the `fintune.answers` strings in its metadata.")
        atomic_write_text(staging / "README.md", model_card(manifest, info.base_model, f"{name} ({quant} GGUF)",
                                                            ("gguf", quant, *(["ollama"] if mf else [])), usage))
        write_manifest(staging, "export", recipe=manifest.recipe if manifest else None,
                       seed=manifest.seed if manifest else None, parent=str(run),
                       data_hashes=manifest.data_sha256 if manifest else None, licenses=licenses,
                       base_model=info.base_model, format=fmt, quant=quant, gguf=gguf_name,
                       gguf_sha256=sha256_file(staging / gguf_name), task_spec=spec.model_dump(mode="json"))
    warn_non_commercial(licenses, f"exported model {out}")
    out = Path(out)
    print(f"exported {run} -> {out / gguf_name} ({quant})", file=sys.stderr)
    return ExportResult(out, out / gguf_name, out / "Modelfile" if mf else None, out / "README.md")
