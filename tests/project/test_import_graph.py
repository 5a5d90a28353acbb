"""The import graph of gatekeeper/, consent_db/ and workers/: no module imports itself through others.

Imports made only for type checkers (under `if TYPE_CHECKING:`) are left out: they never run.
Imports inside functions count, as import-linter counts them: a circle closed at call time is
still a circle. The import-linter contracts in pyproject.toml say which way imports go; this
checks that no circle is left anywhere, between any modules, whatever those contracts name.
"""

from __future__ import annotations

import tomllib
from collections.abc import Mapping, Set
from pathlib import Path

import grimp

PACKAGES = ("gatekeeper", "consent_db", "workers")
PYPROJECT = Path(__file__).resolve().parents[2] / "pyproject.toml"


def _graph() -> grimp.ImportGraph:
    return grimp.build_graph(*PACKAGES, exclude_type_checking_imports=True, cache_dir=None)


def _imports(graph: grimp.ImportGraph) -> dict[str, set[str]]:
    """Each module's direct imports of modules in the graph."""
    modules = set(graph.modules)
    return {m: graph.find_modules_directly_imported_by(m) & modules for m in sorted(modules)}


def circles(imports: Mapping[str, Set[str]]) -> list[list[str]]:
    """The groups of two or more modules that import one another through each other (Tarjan's
    strongly connected components, without recursion), each sorted, sorted by their first module.

    A module that imports itself is no circle.
    """
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    for root in sorted(imports):
        if root in index:
            continue
        work = [(root, iter(sorted(imports[root])))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            module, pending = work[-1]
            step = next(pending, None)
            if step is not None:
                if step not in index:
                    index[step] = low[step] = len(index)
                    stack.append(step)
                    on_stack.add(step)
                    work.append((step, iter(sorted(imports.get(step, ())))))
                elif step in on_stack:
                    low[module] = min(low[module], index[step])
                continue
            work.pop()
            if work:
                parent = work[-1][0]
                low[parent] = min(low[parent], low[module])
            if low[module] == index[module]:
                group = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    group.append(member)
                    if member == module:
                        break
                if len(group) > 1:
                    found.append(sorted(group))
    return sorted(found)


def _describe(graph: grimp.ImportGraph, group: list[str], imports: Mapping[str, Set[str]]) -> str:
    lines = [" <-> ".join(group)]
    for importer in group:
        for imported in sorted(imports[importer] & set(group) - {importer}):
            where = graph.get_import_details(importer=importer, imported=imported)
            numbers = ", ".join(f"l.{detail['line_number']}" for detail in where)
            lines.append(f"    {importer} -> {imported} ({numbers})")
    return "\n".join(lines)


def test_circles_are_found_and_a_module_importing_itself_is_not_one() -> None:
    imports = {
        "app.cli": {"app.cli", "app.cli_review", "app.runtime"},
        "app.cli_review": {"app.cli"},
        "app.runtime": {"app.queue"},
        "app.queue": {"app.runtime"},
        "app.services": {"app.queue"},
    }
    assert circles(imports) == [["app.cli", "app.cli_review"], ["app.queue", "app.runtime"]]
    assert circles({"a": {"b"}, "b": {"c"}, "c": set()}) == []


def test_no_module_imports_itself_through_others() -> None:
    graph = _graph()
    imports = _imports(graph)
    assert "gatekeeper.runtime" in imports and "workers" in imports and "consent_db.session" in imports
    found = circles(imports)
    assert not found, "import circles:\n" + "\n".join(_describe(graph, group, imports) for group in found)


def _words(contract: dict[str, object], *keys: str) -> set[str]:
    named = " ".join(" ".join(contract.get(key, [])) for key in keys)  # type: ignore[arg-type]
    return set(named.replace("|", " ").replace(":", " ").split())


def test_every_command_line_module_is_covered_by_the_import_contracts() -> None:
    """The command line is one package: the contracts across the code name it whole (every module
    in it included), and its own contract declares each of its modules in a layer (exhaustive)."""
    modules = set(_graph().modules)
    cli_modules = {m.removeprefix("gatekeeper.cli.") for m in modules if m.startswith("gatekeeper.cli.")}
    assert {"__main__", "common", "files", "gate", "people"} <= cli_modules
    assert not [m for m in modules if m.startswith("gatekeeper.cli_")], "a command module outside the package"
    contracts = tomllib.loads(PYPROJECT.read_text())["tool"]["importlinter"]["contracts"]
    for name in (
        "Nothing imports the web layer",
        "Layers: entry points -> web app and workers -> runtime -> domains -> building blocks -> data",
        "The runtime is given its job sender: it never imports workers or the command line",
    ):
        [contract] = [c for c in contracts if c["name"] == name]
        assert "gatekeeper.cli" in _words(contract, "layers", "source_modules", "forbidden_modules"), name
        assert contract.get("as_packages", True), name
    [own] = [c for c in contracts if c["name"].startswith("Command line: one module per domain")]
    assert own["containers"] == ["gatekeeper.cli"] and own["exhaustive"] is True
    declared = _words(own, "layers")
    assert cli_modules <= declared, f"missing {sorted(cli_modules - declared)}"


# Beside the layers: read by every layer above policy and consent_db, they import neither.
BESIDE_THE_LAYERS = {"gatekeeper", "gatekeeper.config", "gatekeeper.errors"}


def test_every_package_of_the_application_has_its_place_in_the_layers() -> None:
    """A new domain package (or building block) must be placed in the layers contract, so that
    nothing it imports can go upwards unnoticed."""
    modules = set(_graph().modules)
    top = {".".join(m.split(".")[:2]) for m in modules if m.startswith("gatekeeper")}
    contracts = tomllib.loads(PYPROJECT.read_text())["tool"]["importlinter"]["contracts"]
    [layers] = [c for c in contracts if c["name"].startswith("Layers: entry points")]
    named = _words(layers, "layers")
    placed = {m for m in top if m in named or any(n.startswith(m + ".") for n in named)}
    assert {"gatekeeper.people", "gatekeeper.consent", "gatekeeper.photos", "gatekeeper.publishing"} <= placed
    assert top - placed - BESIDE_THE_LAYERS == set(), "not placed in the layers contract"
