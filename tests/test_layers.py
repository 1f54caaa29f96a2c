"""The layers the folders promise, enforced: sandbox (a leaf) -> problems -> engine -> {server,
training} -> cli, and a client that needs only the protocol models (docs/architecture.md).

Read from the source with ``ast``, so a forbidden import fails here even inside a function."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

from .helpers import ROOT, package_roots

# Each layer and the mucode packages it may import besides itself.
ALLOWED: dict[str, tuple[str, ...]] = {
    "mucode": (),  # the root package, and any new module until it is given a layer here
    "mucode.sandbox": (),
    "mucode.problems": ("mucode.sandbox",),
    "mucode.engine": ("mucode.sandbox", "mucode.problems"),
    "mucode.server": ("mucode.sandbox", "mucode.problems", "mucode.engine"),
    "mucode.training": ("mucode.sandbox", "mucode.problems", "mucode.engine"),
    # The SDK speaks the server's protocol models (and the engine/sandbox models they are made of).
    "mucode.clients": (
        "mucode.sandbox",
        "mucode.engine.options",
        "mucode.engine.trace",
        "mucode.server.protocol",
    ),
    "mucode.cli": (
        "mucode.sandbox",
        "mucode.problems",
        "mucode.engine",
        "mucode.server",
        "mucode.training",
        "mucode.clients",
    ),
}


def module_name(path: Path, roots: dict[str, str]) -> str:
    for name, folder in sorted(roots.items(), key=lambda item: -len(item[0])):
        base = ROOT / folder
        if path.is_relative_to(base):
            parts = list(path.relative_to(base).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            return ".".join([name, *parts])
    raise AssertionError(f"{path} is in no package")


def imports(source: str, module: str, is_package: bool) -> list[str]:
    """Every mucode module ``source`` imports, relative imports resolved."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = module.split(".")
                base = base[: len(base) - node.level + (1 if is_package else 0)]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            found.append(target)
    return [name for name in found if name == "mucode" or name.startswith("mucode.")]


def layer_of(module: str) -> str:
    return max((layer for layer in ALLOWED if module == layer or module.startswith(layer + ".")), key=len)


def within(name: str, package: str) -> bool:
    return name == package or name.startswith(package + ".")


def violations(module: str, targets: list[str]) -> list[str]:
    layer = layer_of(module)
    allowed = (layer, *ALLOWED[layer])
    bad = []
    for target in targets:
        # `mucode` itself (its version) is open to all; its subpackages are not.
        if target == "mucode" or any(within(target, ok) for ok in allowed):
            continue
        bad.append(f"{module} imports {target} ({layer} may import {', '.join(ALLOWED[layer]) or 'nothing'})")
    return bad


def all_violations() -> list[str]:
    roots = package_roots()
    bad = []
    for folder in roots.values():
        for path in (ROOT / folder).rglob("*.py"):
            if "__pycache__" in path.parts:
                continue
            module = module_name(path, roots)
            bad += violations(module, imports(path.read_text(), module, path.name == "__init__.py"))
    return bad


def test_every_package_imports_only_the_layers_below_it() -> None:
    assert all_violations() == []


def test_the_check_catches_a_forbidden_import() -> None:
    """Training that imports the server, the engine that imports training, a client that needs the
    server's app, the sandbox that imports anything: each is reported."""
    cases = {
        "mucode.training.rollouts": "from mucode.server.runtime import Runtime",
        "mucode.engine.search": "from mucode.training import evaluate",
        "mucode.clients.client": "from mucode.server.app import create_app",
        "mucode.sandbox.pool": "from ..problems import Problem",
        "mucode.server.services.solve": "import mucode.cli",
    }
    for module, line in cases.items():
        found = violations(module, imports(line, module, False))
        assert len(found) == 1, (module, line, found)
    assert (
        violations(
            "mucode.server.services.solve",
            imports("from ...engine import search", "mucode.server.services.solve", False),
        )
        == []
    )


def test_the_client_imports_without_the_servers_dependencies() -> None:
    """``import mucode.clients`` with fastapi, uvicorn, torch and transformers made unimportable."""
    blocked = ["fastapi", "starlette", "uvicorn", "torch", "transformers", "arq", "redis"]
    code = (
        "import sys\n"
        f"for name in {blocked!r}:\n"
        "    sys.modules[name] = None\n"
        "import mucode.clients\n"
        "print(mucode.clients.MucodeClient.__name__)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd="/")
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "MucodeClient"


def test_services_get_their_collaborators_instead_of_reaching_for_the_wiring() -> None:
    """Inside the server: routers -> services -> runtime pieces. A service that imported `deps`,
    `runtime` or a router would pull the app's wiring into code that must test without HTTP."""
    roots = package_roots()
    forbidden = ("mucode.server.deps", "mucode.server.runtime", "mucode.server.routers", "mucode.server.app")
    bad = []
    for path in (ROOT / roots["mucode.server"] / "services").rglob("*.py"):
        module = module_name(path, roots)
        for target in imports(path.read_text(), module, path.name == "__init__.py"):
            if any(within(target, f) for f in forbidden):
                bad.append(f"{module} imports {target}")
    assert bad == []
