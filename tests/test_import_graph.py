"""The package's import graph (imports inside functions included) has no cycles and flows one way, per
ARCHITECTURE.md: nothing downstream is imported upstream."""

from __future__ import annotations

import ast
from pathlib import Path

import fintune

ROOT = Path(fintune.__file__).parent


def _graph() -> dict[str, set[str]]:
    mods = {".".join(("fintune", *p.relative_to(ROOT).with_suffix("").parts)).removesuffix(".__init__"): p
            for p in ROOT.rglob("*.py")}

    def resolve(name: str) -> str:
        while name and name not in mods:
            name = name.rsplit(".", 1)[0] if "." in name else ""
        return name

    edges: dict[str, set[str]] = {m: set() for m in mods}
    for mod, path in mods.items():
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            names = []
            if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("fintune"):
                names = [f"{node.module}.{a.name}" for a in node.names]
            elif isinstance(node, ast.Import):
                names = [a.name for a in node.names if a.name.startswith("fintune")]
            edges[mod] |= {r for r in map(resolve, names) if r and r != mod}
    return edges


def _cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    out: list[list[str]] = []

    def visit(v: str) -> None:  # Tarjan's strongly connected components
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in edges[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in edges:
        if v not in index:
            visit(v)
    return out


_DOWNSTREAM = ("fintune.models", "fintune.train", "fintune.predict", "fintune.evaluate", "fintune.backtest",
               "fintune.report", "fintune.serve", "fintune.serve_asgi", "fintune.serve_openai", "fintune.analyze",
               "fintune.demo", "fintune.sweep", "fintune.export", "fintune.commands", "fintune.cli")
_CORE = ("fintune.errors", "fintune.redact", "fintune.yamlio", "fintune.recipe", "fintune.labels", "fintune.run",
         "fintune.records", "fintune.artifacts", "fintune.device", "fintune.model_ids", "fintune.prices")
LAYER_RULES: tuple[tuple[str, tuple[str, ...]], ...] = (
    # the shared contract and helpers every stage uses import no stage
    *((core, ("fintune.data", "fintune.prompts", *_DOWNSTREAM)) for core in _CORE),
    ("fintune.prompts", ("fintune.data", *_DOWNSTREAM)),
    # data knows nothing of models or training (a tokenizer, via prompts / model_ids, is the most it needs)
    ("fintune.data", _DOWNSTREAM),
    ("fintune.models", ("fintune.train", "fintune.predict", "fintune.evaluate", "fintune.backtest", "fintune.report",
                        "fintune.serve", "fintune.commands", "fintune.cli")),
    # backtest needs the Prediction schema and prices, never a model
    ("fintune.backtest", ("fintune.models", "fintune.train", "fintune.predict", "fintune.serve", "fintune.commands",
                          "fintune.cli")),
    # evaluate needs predictions and gold labels, not the trainer
    ("fintune.evaluate", ("fintune.train", "fintune.commands", "fintune.cli")),
    ("fintune.predict", ("fintune.train", "fintune.evaluate", "fintune.backtest", "fintune.report",
                         "fintune.commands", "fintune.cli")),
    ("fintune.train", ("fintune.backtest", "fintune.report", "fintune.serve",
                       "fintune.commands", "fintune.cli")),
)


def _under(module: str, package: str) -> bool:
    return module == package or module.startswith(package + ".")


def _layer_violations(edges: dict[str, set[str]],
                      rules: tuple[tuple[str, tuple[str, ...]], ...] = LAYER_RULES) -> list[str]:
    out = []
    for pkg, banned in rules:
        for mod, deps in edges.items():
            if not _under(mod, pkg):
                continue
            for dep in deps:
                hit = next((b for b in banned if _under(dep, b)), None)
                if hit:
                    out.append(f"{mod} imports {dep} (rule: {pkg} -> not {hit})")
    return sorted(out)


def test_no_import_cycles():
    edges = _graph()
    assert edges["fintune.predict.predictor"] >= {"fintune.models", "fintune.run"}  # the graph is really read
    assert _cycles(edges) == []


def test_the_cycle_finder_finds_a_cycle():
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_imports_flow_one_way():
    edges = _graph()
    assert edges["fintune.data.prepare"] >= {"fintune.model_ids", "fintune.run"}
    assert "fintune.models" in edges["fintune.commands.augment"]  # the command layer may import anything
    assert _layer_violations(edges) == []


def test_the_layer_check_finds_an_upstream_import():
    edges = {"fintune.data.x": {"fintune.models"}, "fintune.models": {"fintune.train.distributed"},
             "fintune.backtest.y": {"fintune.records"}, "fintune.run": set()}
    assert _layer_violations(edges) == [
        "fintune.data.x imports fintune.models (rule: fintune.data -> not fintune.models)",
        "fintune.models imports fintune.train.distributed (rule: fintune.models -> not fintune.train)"]


def _function_level_imports(source: str) -> list[tuple[int, str]]:
    """(line, module) of each ``fintune`` import inside a function body (nested functions counted once)."""
    found: dict[int, str] = {}
    for fn in ast.walk(ast.parse(source)):
        if isinstance(fn, (ast.FunctionDef, ast.AsyncFunctionDef)):
            for node in ast.walk(fn):
                if isinstance(node, ast.ImportFrom) and node.level == 0 and (node.module or "").startswith("fintune"):
                    found[node.lineno] = str(node.module)
                elif isinstance(node, ast.Import) and any(a.name.startswith("fintune") for a in node.names):
                    found[node.lineno] = node.names[0].name
    return sorted(found.items())


# Imports sit at the top of modules. The function-level `fintune` imports left (265 before issue 18), by reason:
# - commands/* (8): `fintune` builds its parser by importing every command module, so a verb's stage module (and
#   the numpy / pandas / gguf it brings) loads only when that verb runs;
# - predict/__init__.py, report/__init__.py (4): lazy re-exports (module __getattr__) keep the packages light;
# - predict/predictor.py (3): the torch backend (torch) loads on first use, so scoring-free users never import it;
# - numpy / pandas stages used from lighter modules (14): demo -> analyze, evaluate; report -> analyze,
#   evaluate.compare; sweep and walkforward -> evaluate, predict.predictor; train.best_metric -> evaluate;
#   data.prepare -> data.forecaster (pandas, only for forecaster sources);
# - transformers' Trainer classes (4): train.sft / train.pretrain -> train.callbacks, train.best_metric;
# - serve.py (1): left to the throughput work on the server.
# Moving any other one to the top adds no cycle (the graph above counts function-level imports already) and no
# heavy third-party import to a module that did not have it; lower this number when you move one, never raise it.
MAX_FUNCTION_LEVEL_IMPORTS = 34


def test_function_level_internal_imports_do_not_grow():
    found = [f"{path.relative_to(ROOT)}:{line} {module}" for path in sorted(ROOT.rglob("*.py"))
             for line, module in _function_level_imports(path.read_text(encoding="utf-8"))]
    assert len(found) <= MAX_FUNCTION_LEVEL_IMPORTS, "move these to the top of their module:\n" + "\n".join(found)


def test_the_import_counter_counts_function_level_ones_only():
    src = ("from fintune.run import TaskSpec\n\n\ndef f():\n    import json\n    from fintune.records import Example\n"
           "\n    def g():\n        import fintune.labels\n    if True:\n        from fintune import errors\n")
    assert _function_level_imports(src) == [(6, "fintune.records"), (9, "fintune.labels"), (11, "fintune")]
