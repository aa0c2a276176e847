"""The tree tells the pipeline: no import cycles, no stage importing a later one (DESIGN.md).

Reads lossart's own sources and the add-on's (top-level `blender_addon/`, which lossart imports as
`lossart.addon`) with `ast` (module-level and function-level imports alike: a lazy import that
dodges a cycle is still a cycle) and checks them against the stage order.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent / "lossart"
ADDON_FOLDER = "blender_addon"

#: Stages in pipeline order; a module may import its own stage or an earlier one.
STAGES = (
    # what lossart and the add-on share (copied into the extension zip): imports only itself
    ("format", ("lossart.format",)),
    ("core", ("lossart", "lossart.errors", "lossart.atomic", "lossart.progress", "lossart.runs",
              "lossart.locks", "lossart.checks", "lossart.swap", "lossart.interrupts", "lossart.lazy",
              "lossart.options", "lossart.frame_selection")),
    ("data", ("lossart.data",)),
    ("models", ("lossart.models",)),
    ("geometry", ("lossart.geometry",)),
    ("evaluation", ("lossart.evaluation", "lossart.devices", "lossart.precision")),
    ("training", ("lossart.training",)),
    ("curvature", ("lossart.curvature",)),
    ("alignment", ("lossart.alignment",)),
    ("grid", ("lossart.grid",)),
    ("terrain", ("lossart.terrain",)),
    ("render", ("lossart.render",)),
    ("view", ("lossart.view",)),
    ("analyses", ("lossart.analyses",)),
    ("demo", ("lossart.commands", "lossart.pipeline", "lossart.stages", "lossart.demo",
              "lossart.subjects")),
    ("cli", ("lossart.cli", "lossart.__main__")),
)
#: The Blender extension: imports only itself and the format; the render stage and later may
#: read it (the render job's type, the extension's folder), the mesh layer never.
ADDON = "lossart.addon"
ADDON_IMPORTS = ("lossart.format",)
ADDON_READERS_FROM = "render"
#: Copied into the zip as they are: relative imports only (no `lossart.` inside them).
SHIPPED = ("lossart.format", ADDON)


def module_name(path: Path) -> str:
    if path.is_relative_to(ROOT.parent / ADDON_FOLDER):
        inside = path.relative_to(ROOT.parent / ADDON_FOLDER).with_suffix("").parts
        parts = [*ADDON.split("."), *inside]
    else:
        parts = list(path.relative_to(ROOT.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def all_modules() -> dict[str, Path]:
    # lossart/addon is a link to blender_addon/: read the add-on once, from where it lives
    files = [p for p in ROOT.rglob("*.py") if not p.is_relative_to(ROOT / "addon")]
    addon = ROOT.parent / ADDON_FOLDER
    files += addon.rglob("*.py") if addon.is_dir() else []
    return {module_name(p): p for p in sorted(files)}


def resolve(name: str, modules: dict[str, Path]) -> str | None:
    """The lossart module an import names (a module, else its package), or None if external."""
    while name:
        if name in modules:
            return name
        name = name.rpartition(".")[0]
    return None


def imports_of(mod: str, path: Path, modules: dict[str, Path]) -> set[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    package = mod if path.name == "__init__.py" else mod.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(tree):
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")
                anchor = anchor[: len(anchor) - (node.level - 1)]
                base = ".".join(anchor + ([base] if base else []))
            # `from pkg import sub` names the submodule when there is one, else pkg itself
            names = [
                f"{base}.{a.name}" if f"{base}.{a.name}" in modules else base for a in node.names
            ]
        for name in names:
            target = resolve(name, modules)
            if target and target != mod and not mod.startswith(target + "."):
                found.add(target)
    return found


def stage_of(mod: str) -> int | None:
    best, rank = -1, None
    for i, (_, prefixes) in enumerate(STAGES):
        for prefix in prefixes:
            # the package itself ("lossart") names only its __init__, not everything under it
            inside = prefix != "lossart" and mod.startswith(prefix + ".")
            if (mod == prefix or inside) and len(prefix) > best:
                best, rank = len(prefix), i
    return rank


@pytest.fixture(scope="module")
def graph() -> dict[str, set[str]]:
    modules = all_modules()
    return {mod: imports_of(mod, path, modules) for mod, path in modules.items()}


def test_every_module_has_a_stage(graph):
    loose = [m for m in graph if not m.startswith(ADDON) and stage_of(m) is None]
    assert not loose, f"modules outside the stage order (add them to STAGES): {loose}"


def test_no_stage_imports_a_later_one(graph):
    names = [s for s, _ in STAGES]
    readers_from = names.index(ADDON_READERS_FROM)
    bad = []
    for mod, targets in graph.items():
        for target in sorted(targets):
            if mod.startswith(ADDON):
                if not target.startswith((ADDON, *ADDON_IMPORTS)):
                    bad.append(f"{mod} -> {target} (the add-on imports only itself and the format)")
                continue
            if target.startswith(ADDON):
                if stage_of(mod) < readers_from:
                    bad.append(f"{mod} -> {target} (only {ADDON_READERS_FROM} and later read the add-on)")
                continue
            if stage_of(target) > stage_of(mod):
                bad.append(
                    f"{mod} ({names[stage_of(mod)]}) -> {target} ({names[stage_of(target)]})"
                )
    assert not bad, "imports against the stage order:\n" + "\n".join(bad)


def test_shipped_code_imports_relatively():
    """The format and the add-on run inside the extension zip, where no `lossart` exists."""
    bad = []
    for mod, path in all_modules().items():
        if not mod.startswith(SHIPPED):
            continue
        for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and not node.level:
                names = [node.module or ""]
            bad += [f"{mod}: import {n}" for n in names if n.split(".")[0] in ("lossart", "torch")]
    assert not bad, "absolute lossart/torch imports in code the zip carries:\n" + "\n".join(bad)


def test_the_add_on_is_the_top_level_folder():
    """DESIGN.md's layout: blender_addon/ at the top, reached inside lossart as lossart.addon."""
    assert (ROOT.parent / ADDON_FOLDER / "blender_manifest.toml").is_file()
    assert (ROOT / "addon").resolve() == (ROOT.parent / ADDON_FOLDER).resolve()
    assert not (ROOT / "blender").exists()
    # the wheel installs one top-level package, the add-on inside it (setuptools follows the link)
    setuptools = pytest.importorskip("setuptools")
    found = setuptools.find_packages(str(ROOT.parent), include=["lossart*"])
    assert "lossart.addon" in found and "lossart.format" in found
    assert {p.split(".")[0] for p in found} == {"lossart"}


#: Names every entry point must have by convention (Blender's register/unregister, `main`).
CONVENTIONAL = {"register", "unregister", "main"}


def test_no_public_name_is_defined_twice():
    """One name, one job: a public function or class is defined in one module only."""
    where: dict[str, list[str]] = {}
    for mod, path in all_modules().items():
        for node in ast.parse(path.read_text(), filename=str(path)).body:
            if isinstance(node, ast.FunctionDef | ast.ClassDef) and not node.name.startswith("_"):
                where.setdefault(node.name, []).append(mod)
    twice = {n: m for n, m in where.items() if len(m) > 1 and n not in CONVENTIONAL}
    assert not twice, f"public names defined in more than one module: {twice}"


#: The one table of run and bundle kinds; their names appear nowhere else as literals.
KINDS_TABLE = "lossart.format.kinds"


def kind_literals(tree: ast.AST) -> list[tuple[int, str]]:
    """(line, name) of run-kind names written as literals where a kind is meant: compared with
    something called kind, passed as `kind=`, stored under "kind", or a default of get("kind")."""
    from lossart.format.kinds import RUN_KINDS

    def names(node: ast.AST | None) -> list[str]:
        elts = node.elts if isinstance(node, ast.Tuple | ast.List | ast.Set) else [node]
        return [e.value for e in elts if isinstance(e, ast.Constant) and e.value in RUN_KINDS]

    found = []
    for node in ast.walk(tree):
        hits: list[str] = []
        if isinstance(node, ast.Compare):
            sides = [node.left, *node.comparators]
            if any("kind" in ast.unparse(s) for s in sides):
                hits = [n for s in sides for n in names(s)]
        elif isinstance(node, ast.keyword) and node.arg == "kind":
            hits = names(node.value)
        elif isinstance(node, ast.Dict):
            hits = [n for k, v in zip(node.keys, node.values)
                    if isinstance(k, ast.Constant) and k.value == "kind" for n in names(v)]
        elif isinstance(node, ast.Call) and node.args and isinstance(node.args[0], ast.Constant):
            if node.args[0].value == "kind":
                hits = [n for a in node.args[1:] for n in names(a)]
        found += [(node.lineno, n) for n in hits]
    return found


def test_run_kinds_live_in_one_table():
    """No run-kind string literal outside lossart/format/kinds.py (the add-on included)."""
    bad = [
        f"{mod}:{line}: {name!r}"
        for mod, path in all_modules().items()
        if mod != KINDS_TABLE
        for line, name in kind_literals(ast.parse(path.read_text(), filename=str(path)))
    ]
    assert not bad, "run kinds written outside the kinds table:\n" + "\n".join(bad)


def test_the_kind_checker_sees_literals():
    src = (
        "if meta.kind == 'curve': pass\n"
        "x = m.get('kind', 'plane3')\n"
        "y = {'kind': 'around'}\n"
        "z = f(kind='trajectory')\n"
        "w = {'curve': 1, 'segment': 2}\n"  # a path named curve, not a kind
    )
    assert [n for _, n in kind_literals(ast.parse(src))] == ["curve", "plane3", "around", "trajectory"]


def test_runs_are_created_then_gridded_in_one_place():
    """A command that makes a run folder and grids it goes through grid.run_grid.create_then_grid
    (rank 0 creates, the others wait for its error line), never its own copy of that dance."""
    bad = []
    for mod, path in all_modules().items():
        for fn in ast.walk(ast.parse(path.read_text(), filename=str(path))):
            if not isinstance(fn, ast.FunctionDef) or fn.name == "create_then_grid":
                continue
            called = {
                (c.func.attr if isinstance(c.func, ast.Attribute) else getattr(c.func, "id", ""))
                for c in ast.walk(fn) if isinstance(c, ast.Call)
            }
            creates = any(n.startswith("create_") and n.endswith("_run") for n in called)
            if creates and called & {"grid_run", "broadcast"}:
                bad.append(f"{mod}.{fn.name}")
    assert not bad, f"create-then-grid written again (use create_then_grid): {bad}"


def declared_flags() -> dict[str, tuple[str, set[str]]]:
    """Config classes whose options are declared (lossart.options): name -> (module, flags)."""
    import importlib

    from lossart.options import declared, flag_of

    found = {}
    for mod, path in all_modules().items():
        if "option(" not in path.read_text() or mod.startswith(ADDON):
            continue
        for node in ast.parse(path.read_text()).body:
            if isinstance(node, ast.ClassDef):
                cls = getattr(importlib.import_module(mod), node.name, None)
                try:
                    opts = declared(cls)
                except TypeError:  # not a dataclass
                    continue
                if opts:
                    found[node.name] = (mod, {flag_of(f.name, o) for f, o in opts})
    return found


def test_declared_options_have_one_range():
    """An option declared on a config (range, help, flag) is not range-checked or flagged again:
    its module calls no check_number on its flags, and a parser function that generates its
    flags adds none of them by hand."""
    configs = declared_flags()
    assert "GridConfig" in configs
    modules = all_modules()
    bad = []
    for name, (mod, flags) in configs.items():
        for node in ast.walk(ast.parse(modules[mod].read_text())):
            if isinstance(node, ast.Call) and getattr(node.func, "id", "") == "check_number":
                arg = node.args[0] if node.args else None
                if isinstance(arg, ast.Constant) and arg.value in flags:
                    bad.append(f"{mod}:{node.lineno}: check_number({arg.value!r})")
        for other, path in modules.items():
            for fn in ast.walk(ast.parse(path.read_text())):
                if not isinstance(fn, ast.FunctionDef):
                    continue
                calls = [c for c in ast.walk(fn) if isinstance(c, ast.Call)]
                generates = any(getattr(c.func, "id", "") == "add_option_flags"
                                and any(getattr(a, "id", "") == name for a in c.args) for c in calls)
                if not generates:
                    continue
                for c in calls:
                    if getattr(c.func, "attr", "") == "add_argument" and c.args:
                        arg = c.args[0]
                        if isinstance(arg, ast.Constant) and arg.value in flags:
                            bad.append(f"{other}.{fn.name}: add_argument({arg.value!r}) again")
    assert not bad, "option ranges written twice:\n" + "\n".join(bad)


#: Modules whose range checks still name flags, each with the reason; empty once they move.
RANGES_PENDING: dict[str, str] = {}  # modules still to declare their ranges (none)


def _flag_text(node: ast.AST | None) -> str | None:
    """The leading text of a string or f-string argument (where a message names a flag)."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value
    if isinstance(node, ast.JoinedStr) and node.values and isinstance(node.values[0], ast.Constant):
        return str(node.values[0].value)
    return None


def range_checks_naming_flags(tree: ast.AST, flags: set[str]) -> list[tuple[int, str]]:
    """`check_number("--x", ...)` anywhere, and `LossartError("--x ...: expected ...")` for a
    declared option's flag: a range written beside its declaration, in the CLI's words."""
    found = []
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call) or not node.args:
            continue
        name = node.func.attr if isinstance(node.func, ast.Attribute) else getattr(node.func, "id", "")
        text = _flag_text(node.args[0]) or ""
        if name == "check_number" and text.startswith("--"):
            found.append((node.lineno, text))
        elif name == "LossartError" and text.startswith("--"):
            flag = text.split()[0].rstrip(":")
            whole = ast.unparse(node.args[0])
            if flag in flags and "expected" in whole:
                found.append((node.lineno, flag))
    return found


def test_no_range_is_written_twice():
    """The library's range checks are the declared options' (lossart.options): no module outside
    the CLI checks a range under a flag's name, so no option's range is written in two places."""
    flags = set().union(*(f for _, f in declared_flags().values()))
    assert {"--lr", "--select-frames", "--floor", "--points"} <= flags
    bad = []
    for mod, path in all_modules().items():
        if mod in ("lossart.cli", *RANGES_PENDING) or mod.startswith(ADDON):
            continue
        for line, flag in range_checks_naming_flags(ast.parse(path.read_text()), flags):
            bad.append(f"{mod}:{line}: {flag}")
    assert not bad, "ranges checked under a flag's name (declare them, name the field):\n" + "\n".join(bad)


def test_the_range_checker_sees_both_spellings():
    tree = ast.parse(
        'check_number("--k", k, 1)\n'
        'raise LossartError(f"--lr {lr}: expected a number > 0")\n'
        'raise LossartError(f"--out {p}: is a folder")\n'
        'raise LossartError(f"lr {lr}: expected a number > 0")\n'
    )
    assert range_checks_naming_flags(tree, {"--lr", "--out"}) == [(1, "--k"), (2, "--lr")]


def test_every_declared_option_generates_its_flag():
    """Each config's declared options (those with a flag) are flags of the command line, made by
    add_option_flags from the declaration (its actions remember the option), not by hand."""
    import argparse

    from lossart.cli import build_parser
    from lossart.options import cli_options

    generated: set[tuple[str, str]] = set()

    def walk(parser: argparse.ArgumentParser) -> None:
        for action in parser._actions:
            if hasattr(action, "lossart_option"):
                generated.add(action.lossart_option)
            if isinstance(action, argparse._SubParsersAction):
                for sub in action.choices.values():
                    walk(sub)

    walk(build_parser())
    configs = declared_flags()
    assert {"TrainConfig", "CurveConfig", "CurveSpec", "GridConfig", "TerrainConfig",
            "HessianConfig", "AlignConfig", "PathSampling"} <= set(configs)  # fmt: skip
    missing = []
    for name, (mod, _) in configs.items():
        import importlib

        cls = getattr(importlib.import_module(mod), name)
        missing += [f"{name}.{o}" for o in cli_options(cls) if (name, o) not in generated]
    assert not missing, f"declared options without a generated flag: {missing}"


def test_the_grid_driver_stays_short():
    """`_grid_run` is the one driver of a grid (the issue: under 60 lines): the merging and
    checking live in GridConfig's declared options and resolve_options, not in it."""
    tree = ast.parse((ROOT / "grid" / "run_grid.py").read_text())
    (fn,) = [n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name == "_grid_run"]
    assert fn.end_lineno - fn.lineno + 1 < 60


def test_one_thread_policy():
    """torch's thread count is set in lossart.devices only (cpu_threads, set_process_threads)."""
    bad = [
        f"{mod}:{node.lineno}"
        for mod, path in all_modules().items()
        if mod != "lossart.devices"
        for node in ast.walk(ast.parse(path.read_text(), filename=str(path)))
        if isinstance(node, ast.Attribute) and node.attr == "set_num_threads"
    ]
    assert not bad, f"torch threads set outside lossart.devices: {bad}"


def test_no_import_cycles(graph):
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    cycles: list[list[str]] = []

    def visit(v: str) -> None:  # Tarjan's strongly connected components
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                cycles.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    assert not cycles, f"import cycles: {cycles}"


def test_the_checker_sees_cycles_and_late_imports(tmp_path):
    """The walker itself: a planted cycle and a backwards import are found."""
    pkg = tmp_path / "lossart"
    (pkg / "grid").mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "grid" / "__init__.py").write_text("")
    (pkg / "grid" / "a.py").write_text("def f():\n    from lossart.grid import b\n")
    (pkg / "grid" / "b.py").write_text("from . import a\nimport lossart.cli\n")
    (pkg / "cli.py").write_text("")
    global ROOT
    saved, ROOT = ROOT, pkg
    try:
        modules = all_modules()
        g = {m: imports_of(m, p, modules) for m, p in modules.items()}
    finally:
        ROOT = saved
    assert g["lossart.grid.a"] == {"lossart.grid.b"}
    assert g["lossart.grid.b"] == {"lossart.grid.a", "lossart.cli"}
    assert stage_of("lossart.cli") > stage_of("lossart.grid.b")
    assert stage_of("lossart.somewhere_new") is None  # a module outside the order is noticed
