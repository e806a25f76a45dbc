r"""The house rules of the code's structure, read from the source with
:mod:`ast` (nothing is imported): no module of align_gnn over 500 lines, no
function of align_gnn or train_gat.py over 120 lines, and imports that run
one way, down: the graph of align_gnn's modules importing each other (lazy
imports inside functions included) has no circle."""
import ast
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PACKAGE = REPO / 'align_gnn'
MAX_MODULE_LINES = 500
MAX_FUNCTION_LINES = 120


def modules() -> dict:
    r"""Every module of align_gnn by dotted name (a package by its own)."""
    out = {}
    for path in sorted(PACKAGE.rglob('*.py')):
        parts = path.relative_to(REPO).with_suffix('').parts
        if parts[-1] == '__init__':
            parts = parts[:-1]
        out['.'.join(parts)] = path
    return out


def imports(path: Path, names) -> set:
    r"""The modules of :obj:`names` that the module at :obj:`path` imports:
    :obj:`from a.b import c` counts as :obj:`a.b.c` where that is a
    module, else as :obj:`a.b`."""
    out = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            out |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0:
            for alias in node.names:
                child = f'{node.module}.{alias.name}'
                out.add(child if child in names else node.module)
    return out & set(names)


def circle(graph: dict) -> list:
    r"""A circle of :obj:`graph` (a list of names), or :obj:`[]`."""
    state = {}

    def visit(name, path):
        state[name] = 'open'
        for other in sorted(graph[name]):
            if state.get(other) == 'open':
                return path[path.index(other):] + [other]
            if other not in state:
                found = visit(other, path + [other])
                if found:
                    return found
        state[name] = 'done'
        return []

    for name in sorted(graph):
        if name not in state:
            found = visit(name, [name])
            if found:
                return found
    return []


def test_modules_are_short():
    long = {str(path.relative_to(REPO)): lines
            for path in modules().values()
            if (lines := len(path.read_text().splitlines())) > MAX_MODULE_LINES}
    assert not long, f'modules over {MAX_MODULE_LINES} lines: {long}'


def test_functions_are_short():
    long = {}
    for path in [*modules().values(), REPO / 'train_gat.py']:
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                lines = node.end_lineno - node.lineno + 1
                if lines > MAX_FUNCTION_LINES:
                    long[f'{path.relative_to(REPO)}:{node.name}'] = lines
    assert not long, f'functions over {MAX_FUNCTION_LINES} lines: {long}'


def test_imports_have_no_circle():
    names = modules()
    graph = {name: imports(path, names) - {name}
             for name, path in names.items()}
    assert graph['align_gnn.config'], 'the import graph came out empty'
    assert circle(graph) == []


def test_circle_finds_a_circle():
    assert circle({'a': {'b'}, 'b': {'c'}, 'c': {'a'}}) == ['a', 'b', 'c',
                                                            'a']
    assert circle({'a': {'b', 'c'}, 'b': {'c'}, 'c': set()}) == []
