"""The package's shape: the task's core directly in qeu_vlm/ (at most 3,000 lines, importing no sub-package), the rest
in the agreed sub-packages, recipes as plain data, no import circle, nothing outside the research imports it, no line
over 120."""
import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "qeu_vlm"


def _imports(path: Path) -> set[str]:
    """Every qeu_vlm module a file imports, at any depth (a lazy import inside a function counts too)."""
    here = path.relative_to(PACKAGE.parent).with_suffix("").parts
    out = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = here[:len(here) - node.level]
                parts = base + tuple((node.module or "").split(".")) if node.module else base
                mods = [".".join(parts)] if node.module else [".".join(base + (a.name,)) for a in node.names]
            else:
                mods = [node.module or ""]
            out |= {m for m in mods if m.startswith("qeu_vlm")}
        elif isinstance(node, ast.Import):
            out |= {a.name for a in node.names if a.name.startswith("qeu_vlm")}
    return out


def _graph() -> dict:
    modules = {".".join(p.relative_to(PACKAGE.parent).with_suffix("").parts).removesuffix(".__init__"): p
               for p in PACKAGE.rglob("*.py")}
    return {m: {i for i in _imports(p) if i in modules and i != m} for m, p in modules.items()}


def test_no_import_circle():
    graph, state = _graph(), {}

    def visit(m, path):
        if state.get(m) == "done":
            return
        assert state.get(m) != "open", "import circle: " + " -> ".join(path + [m])
        state[m] = "open"
        for n in sorted(graph[m]):
            visit(n, path + [m])
        state[m] = "done"

    for m in sorted(graph):
        visit(m, [])


CORE = {"domain", "data", "prompts", "conversation", "batching", "presets", "families", "backend", "model", "training",
        "generation", "vllm_engine", "answer", "metrics", "plots", "config", "files", "colab"}
SUBPACKAGES = {"twin": {"synth", "render", "figure"}, "offline": {"tiny_model", "random_models", "pretrain"},
               "tools": {"steps", "main_job", "baseline", "planner", "report", "publish", "cli", "notebook_runner",
                         "vision_warmup"},
               "recipes": None,                                   # one file per recipe, any name
               "research": {"learn", "hooks", "localization", "probe", "pooling_probe"}}


def _core_files() -> list[Path]:
    return [p for p in PACKAGE.glob("*.py") if p.stem not in ("__init__", "__main__")]


def test_every_module_sits_in_an_agreed_folder():
    assert {p.stem for p in _core_files()} == CORE
    folders = {p.name for p in PACKAGE.iterdir() if p.is_dir() and (p / "__init__.py").exists()}
    assert folders == set(SUBPACKAGES)
    for folder, modules in SUBPACKAGES.items():
        found = {p.stem for p in (PACKAGE / folder).glob("*.py")} - {"__init__"}
        assert modules is None or found == modules, folder
    assert not [p for p in PACKAGE.rglob("*.py") if len(p.relative_to(PACKAGE).parts) > 2], "one level deep at most"


def test_the_core_imports_no_sub_package_but_plain_recipes():
    graph = _graph()
    core = {f"qeu_vlm.{m}" for m in CORE} | {"qeu_vlm"}
    reached = {i for m in core for i in graph[m] if i not in core}
    recipes = {m for m in reached if m.startswith("qeu_vlm.recipes.")}
    assert reached - recipes == set(), "the core imports tooling"
    # a recipe the core reads is plain data: it imports nothing of the package, so the core's closure stays the core
    assert {m: graph[m] for m in recipes if graph[m]} == {}


def test_the_core_is_at_most_3000_lines():
    lines = sum(len(p.read_text().splitlines()) for p in _core_files() + [PACKAGE / "__init__.py"])
    assert lines <= 3000, lines


def test_recipes_are_plain_data():
    """No logic in a recipe: dataclasses, dicts and constants; a function at most returns one constructor call."""
    for path in (PACKAGE / "recipes").glob("*.py"):
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.Lambda):
                raise AssertionError(f"{path.name}: a lambda")
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                body = [s for s in node.body if not (isinstance(s, ast.Expr) and isinstance(s.value, ast.Constant))]
                assert len(body) == 1 and isinstance(body[0], ast.Return) and isinstance(body[0].value, ast.Call), \
                    f"{path.name}: {node.name} is more than a constructor"
        imports = [n for n in ast.walk(tree) if isinstance(n, (ast.Import, ast.ImportFrom))]
        assert all(isinstance(n, ast.ImportFrom) and n.module in ("dataclasses", "__future__") for n in imports), \
            f"{path.name}: a recipe imports only dataclasses"


def test_nothing_outside_the_research_imports_it():
    graph = _graph()
    outside = {m for m in graph if not m.startswith("qeu_vlm.research") and m != "qeu_vlm.__main__"}
    assert {m for m in outside if any(i.startswith("qeu_vlm.research") for i in graph[m])} == set()
    assert "qeu_vlm.research.learn" in graph["qeu_vlm.__main__"]      # the learn command is the research's own


def test_no_line_over_120_characters():
    root = PACKAGE.parent
    files = list(PACKAGE.rglob("*.py")) + list(root.glob("tests/*.py")) + list(root.glob("benchmarks/*.py")) \
        + list(PACKAGE.rglob("*.html"))
    long = [f"{p.name}:{n}" for p in files
            for n, line in enumerate(p.read_text().splitlines(), 1) if len(line) > 120]
    assert long == []
