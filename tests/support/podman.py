"""Podman as these machines run it, for the container tests: runc, cgroupfs and a file events
log through a containers.conf of our own (crun fails here on RLIMIT_NOFILE and hybrid cgroups),
and no registry: the image's base is built locally from Debian packages with mmdebstrap and the
Python 3.12 the tests run on, then kept in podman's storage under a tag that is the hash of what
built it, so a second run (or CI's next one) reuses it.
"""

import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

import pytest

from tests.support.ci import in_ci

ROOT = Path(__file__).resolve().parent.parent.parent
CONTAINERS_CONF = """\
[containers]
default_ulimits = ["nofile=20000:20000", "nproc=4096:4096"]

[engine]
runtime = "runc"
cgroup_manager = "cgroupfs"
events_logger = "file"
"""
SUITE = "bookworm"
# What python:3.12-slim-bookworm has beside Python: the libraries its modules link to.
LIBRARIES = (
    "ca-certificates", "libbz2-1.0", "libexpat1", "libffi8", "libncursesw6", "libnsl2",
    "libreadline8", "libsqlite3-0", "libssl3", "libtirpc3", "liblzma5", "libuuid1", "zlib1g",
)  # fmt: skip
BASE_REPOSITORY = "localhost/warren-test-base"
# Python's own test suite and caches are most of its size and none of its use.
PYTHON_EXCLUDES = ("*/__pycache__", "lib/python3.*/test", "lib/python3.*/idlelib", "*.a")
# CAs this machine adds to Debian's (a TLS-inspecting proxy's): the image's build trusts them too.
LOCAL_CAS = Path("/usr/local/share/ca-certificates")


def missing() -> str | None:
    if os.geteuid() != 0:
        return "needs root for podman's network namespaces and bind mounts"
    for tool in ("podman", "runc", "mmdebstrap", "docker-compose"):  # as their Debian packages
        if shutil.which(tool) is None:
            return f"needs {tool} (Debian package {tool}; ./dev test installs it)"
    return None


def require() -> None:
    reason = missing()
    if reason is None:
        return
    if in_ci():
        pytest.fail(f"CI must run the container tests, but this machine {reason}")
    pytest.skip(reason)


def environment() -> dict[str, str]:
    conf = Path(tempfile.gettempdir()) / "warren-tests-containers.conf"
    if not conf.exists() or conf.read_text() != CONTAINERS_CONF:
        conf.write_text(CONTAINERS_CONF)
    return {**os.environ, "CONTAINERS_CONF": str(conf)}


def run(*args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["podman", *args],
        env=environment(),
        input=stdin,
        capture_output=True,
        text=True,
        check=False,
        timeout=900,
    )


def podman(*args: str) -> str:
    """Its output; RuntimeError with its complaint when it fails."""
    done = run(*args)
    if done.returncode != 0:
        raise RuntimeError(f"podman {' '.join(args)}: {done.stderr.strip()[-3000:]}")
    return done.stdout


def logs(container: str) -> str:
    """What the container wrote, stdout and stderr interleaved."""
    done = subprocess.run(
        ["podman", "logs", container],
        env=environment(),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        check=False,
    )
    return done.stdout


def image_exists(image: str) -> bool:
    return run("image", "exists", image).returncode == 0


def _sources() -> Path:
    """The machine's own Debian mirror configuration, as apt uses it."""
    deb822 = Path("/etc/apt/sources.list.d/debian.sources")
    return deb822 if deb822.exists() else Path("/etc/apt/sources.list")


def base_image() -> str:
    """Debian bookworm with this interpreter's Python in /usr/local, as python:3.12-slim has
    it; built once per recipe."""
    python = Path(sys.base_prefix)
    local_cas = sorted(LOCAL_CAS.glob("*.crt"))
    recipe = "\n".join(
        [SUITE, *LIBRARIES, *PYTHON_EXCLUDES, str(python), sys.version, _sources().read_text()]
        + [path.read_text() for path in local_cas]
    )
    tag = f"{BASE_REPOSITORY}:{hashlib.sha256(recipe.encode()).hexdigest()[:16]}"
    if not image_exists(tag):
        _build_base(tag, python)
        _drop_other_bases(tag)
    return tag


def _build_base(tag: str, python: Path) -> None:
    excludes = " ".join(f"--exclude='{pattern}'" for pattern in PYTHON_EXCLUDES)
    copy_python = f'tar -C {python} {excludes} -c bin lib include | tar -C "$1/usr/local" -x'
    copy_cas = (
        f'cp {LOCAL_CAS}/*.crt "$1{LOCAL_CAS}/" 2>/dev/null; chroot "$1" update-ca-certificates'
    )
    with tempfile.TemporaryDirectory() as scratch:
        tarball = Path(scratch) / "base.tar"
        subprocess.run(
            [
                "mmdebstrap", "--variant=minbase", "--quiet", f"--include={','.join(LIBRARIES)}",
                f"--customize-hook={copy_python}", '--customize-hook=chroot "$1" ldconfig',
                f"--customize-hook={copy_cas}",
                SUITE, str(tarball), str(_sources()),
            ],
            stdin=subprocess.DEVNULL,
            check=True,
            timeout=900,
        )  # fmt: skip
        podman("import", "--change", 'CMD ["/usr/local/bin/python3"]', str(tarball), tag)


def _drop_other_bases(keep: str) -> None:
    for line in podman("images", "--format", "{{.Repository}}:{{.Tag}}", BASE_REPOSITORY).split():
        if line != keep:
            run("rmi", line)


def build_image(tag: str, base: str, version: str, revision: str) -> None:
    """docker/Dockerfile from the repository, as `docker compose build` builds it. The image it
    replaces goes (its layers were this tag's alone); the build's cached layers stay."""
    before = _image_id(tag)
    podman(
        "build", "--network", "host", "--layers", "--file", str(ROOT / "docker" / "Dockerfile"),
        "--build-arg", f"BASE={base}", "--build-arg", f"VERSION={version}",
        "--build-arg", f"REVISION={revision}", "--tag", tag, str(ROOT),
    )  # fmt: skip
    if before is not None and before != _image_id(tag):
        run("rmi", before)


def _image_id(image: str) -> str | None:
    if not image_exists(image):
        return None
    return podman("image", "inspect", "--format", "{{.Id}}", image).strip()


def remove(kind: str, names: Sequence[str]) -> None:
    if names:
        run(kind, "rm", "--force", *names)
