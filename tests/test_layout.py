"""The package's shape: no import circle, nothing on the main path imports the research, no line over 120."""
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


def test_nothing_on_the_main_path_imports_the_research():
    graph = _graph()
    core = {m for m in graph if not m.startswith("qeu_vlm.research") and m != "qeu_vlm.__main__"}
    assert {m for m in core if any(i.startswith("qeu_vlm.research") for i in graph[m])} == set()
    assert "qeu_vlm.research.learn" in graph["qeu_vlm.__main__"]      # the learn command is the research's own


def test_no_line_over_120_characters():
    root = PACKAGE.parent
    files = list(PACKAGE.rglob("*.py")) + list(root.glob("tests/*.py")) + list(root.glob("benchmarks/*.py"))
    long = [f"{p.name}:{n}" for p in files
            for n, line in enumerate(p.read_text().splitlines(), 1) if len(line) > 120]
    assert long == []
