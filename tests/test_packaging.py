"""What a user installs: the wheel holds Warren's packages and nothing of the tests, every module
it imports comes from a dependency it declares, and the documented install command gives a
`warren` that runs, down to `warren demo` answering."""

import ast
import os
import queue
import re
import subprocess
import sys
import threading
import tomllib
import zipfile
from collections.abc import Iterator
from importlib.metadata import packages_distributions
from pathlib import Path

import httpx
import pytest

ROOT = Path(__file__).resolve().parent.parent
UV = ROOT / ".tools" / "bin" / "uv"
PROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())
SHIPPED: list[str] = PROJECT["tool"]["hatch"]["build"]["targets"]["wheel"]["packages"]
# PEP 508: a requirement starts with the distribution's name.
REQUIREMENT_NAME = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9._-]*[A-Za-z0-9])?")


def canonical(name: str) -> str:
    """A distribution's name as PEP 503 compares them: `PyJWT` is `pyjwt`, `mmdb_writer` is
    `mmdb-writer`."""
    return re.sub(r"[-_.]+", "-", name).lower()


def declared() -> set[str]:
    found = (REQUIREMENT_NAME.match(line) for line in PROJECT["project"]["dependencies"])
    return {canonical(match.group()) for match in found if match}


def imports(path: Path, text: str) -> Iterator[tuple[str, str]]:
    """Each absolute import's top-level module, with where it is (`file:line`)."""
    for node in ast.walk(ast.parse(text, str(path))):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names = [node.module]
        else:
            continue
        for name in names:
            yield name.partition(".")[0], f"{path}:{node.lineno}"


def test_every_module_shipped_code_imports_is_a_declared_dependency() -> None:
    providers = packages_distributions()
    wanted, missing = declared(), []
    for package in SHIPPED:
        for path in sorted((ROOT / package).rglob("*.py")):
            for module, where in imports(path.relative_to(ROOT), path.read_text()):
                if module in sys.stdlib_module_names or module in SHIPPED:
                    continue
                distributions = {canonical(d) for d in providers.get(module, [])}
                if not distributions & wanted:
                    missing.append(f"{where}: {module} ({', '.join(distributions) or 'unknown'})")
    assert not missing, "imported but not in [project] dependencies:\n" + "\n".join(missing)


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("dist")
    build = [str(UV), "build", "--wheel", "--quiet", "--python", python312(), "--out-dir", str(out)]
    subprocess.run([*build, str(ROOT)], check=True)
    (built,) = out.glob("warren-*.whl")
    return built


def test_the_wheel_holds_warrens_packages_and_nothing_of_the_tests(wheel: Path) -> None:
    with zipfile.ZipFile(wheel) as archive:
        names = archive.namelist()
        sources = {name: archive.read(name).decode() for name in names if name.endswith(".py")}
    tops = {name.partition("/")[0] for name in names}
    (metadata,) = tops - set(SHIPPED)
    assert metadata.endswith(".dist-info")
    assert set(SHIPPED) <= tops
    assert not [name for name in names if re.search(r"(^|/)(test_[^/]*|conftest)\.py$", name)]
    # No lab or fixture rides along: shipped code never reaches for the tests or pytest.
    test_imports = [
        where
        for name, text in sources.items()
        for module, where in imports(Path(name), text)
        if module in ("tests", "pytest", "hypothesis")
    ]
    assert not test_imports


def python312() -> str:
    """The interpreter the test environment was made from (pyenv's, on these machines)."""
    return str(Path(sys.base_prefix) / "bin" / f"python{sys.version_info[0]}.{sys.version_info[1]}")


def lines_of(process: subprocess.Popen[str]) -> "queue.Queue[str]":
    read: queue.Queue[str] = queue.Queue()

    def pump() -> None:
        assert process.stdout is not None
        for line in process.stdout:
            read.put(line)

    threading.Thread(target=pump, daemon=True).start()
    return read


def demo_port(read: "queue.Queue[str]", process: subprocess.Popen[str]) -> int:
    seen: list[str] = []
    while True:
        try:
            line = read.get(timeout=60)
        except queue.Empty:
            raise AssertionError(f"warren demo printed no banner: {seen}") from None
        seen.append(line)
        found = re.match(r"Warren demo: a gateway on 127\.0\.0\.1:(\d+) ", line)
        if found:
            return int(found.group(1))
        assert process.poll() is None, seen


@pytest.fixture(scope="module")
def installed(wheel: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The VPS install (docs/install.md): uv installs the wheel into a venv of its own under
    /opt, its command into /usr/local/bin, and on a machine without Python 3.12 fetches one
    into /opt too (here: the tests' own, since nothing can be downloaded)."""
    top = tmp_path_factory.mktemp("install")
    env = {
        **os.environ,
        "UV_TOOL_DIR": str(top / "opt" / "tools"),
        "UV_TOOL_BIN_DIR": str(top / "bin"),
        "UV_PYTHON_INSTALL_DIR": str(top / "opt" / "python"),
    }
    install = [str(UV), "tool", "install", "--python", python312(), str(wheel)]
    subprocess.run(install, env=env, check=True, capture_output=True)
    return top / "bin" / "warren"


def test_the_documented_install_gives_a_warren_that_runs(installed: Path) -> None:
    helped = subprocess.run([installed, "--help"], capture_output=True, text=True, check=True)
    for command in ("gateway", "portal", "sidecar", "site", "user", "demo", "health"):
        assert re.search(rf"│ {command} ", helped.stdout), helped.stdout
    version = subprocess.run([installed, "--version"], capture_output=True, text=True, check=True)
    assert version.stdout == f"warren {PROJECT['project']['version']}\n"


def test_warren_demo_starts_and_answers(installed: Path, tmp_path: Path) -> None:
    demo = subprocess.Popen(
        [installed, "demo"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        text=True,
        env={**os.environ, "TMPDIR": str(tmp_path)},  # its directory, logs and users.yaml
    )
    try:
        port = demo_port(lines_of(demo), demo)
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=10) as client:
            assert client.get("/", headers={"host": "app.localhost"}).status_code == 200
            # Sign-in is there too: an API client without a session is asked for one.
            assert client.get("/", headers={"host": "private.localhost"}).status_code == 401
    finally:
        demo.terminate()  # as `kill` would: the demo stops its gateway, portal and backend
        try:
            demo.wait(30)
        except subprocess.TimeoutExpired:
            demo.kill()
            demo.wait()
    assert demo.returncode == 0
