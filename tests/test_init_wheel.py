"""``salescycle init`` works from an installed wheel, not only from a checkout.

The wheel is built from this repository and installed into a new virtual
environment that has no pip and no editable install: the project's dependencies are
made importable by a ``.pth`` file naming this interpreter's site-packages, whose own
``.pth`` files (the editable install among them) are not executed that way, so
``engine`` can only come from the wheel.
"""

from __future__ import annotations

import os
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest
from _support import REPO_ROOT

STARTER_FILES = [
    "config/stages.yaml",
    "config/crm.yaml",
    "config/settings.yaml",
    "examples/crm-contacts.csv",
]


def _clean_environment() -> dict[str, str]:
    """This process's environment without anything that would point Python at the checkout."""
    return {
        name: value
        for name, value in os.environ.items()
        if name not in ("PYTHONPATH", "PYTHONHOME", "PYTHONSTARTUP", "VIRTUAL_ENV")
        and not (name.startswith("SALESCYCLE_") and not name.startswith("SALESCYCLE_TEST_"))
    }


def _run(command: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        command,
        cwd=cwd,
        env=_clean_environment(),
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def _build_wheel(out: Path, cwd: Path) -> Path:
    build = _run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "--quiet",
            "-w",
            str(out),
            str(REPO_ROOT),
        ],
        cwd,
    )
    if build.returncode != 0:  # fall back to pypa/build when pip cannot build in place
        build = _run(
            [
                sys.executable,
                "-m",
                "build",
                "--wheel",
                "--no-isolation",
                "--outdir",
                str(out),
                str(REPO_ROOT),
            ],
            cwd,
        )
    assert build.returncode == 0, build.stdout + build.stderr
    [wheel] = out.glob("salescycle-*.whl")
    return wheel


@pytest.mark.slow
def test_init_from_an_installed_wheel(tmp_path: Path) -> None:
    outside = tmp_path / "elsewhere"  # a working folder outside the repository
    outside.mkdir()

    # Given a wheel built from this repository
    wheel = _build_wheel(tmp_path / "dist", outside)
    names = zipfile.ZipFile(wheel).namelist()
    for starter_file in STARTER_FILES:
        assert f"engine/_starter/{starter_file}" in names
    assert not any(name.startswith(("var/", "tests/", "engine/_starter/var/")) for name in names)

    # and installed into a fresh virtual environment without pip
    venv = tmp_path / "venv"
    created = _run([sys.executable, "-m", "venv", "--without-pip", str(venv)], outside)
    assert created.returncode == 0, created.stderr
    python = venv / "bin" / "python"
    site = _run(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"], outside
    ).stdout.strip()
    install = _run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--no-deps",
            "--quiet",
            "--target",
            site,
            str(wheel),
        ],
        outside,
    )
    assert install.returncode == 0, install.stdout + install.stderr
    dependencies = sysconfig.get_paths()["purelib"]
    (Path(site) / "salescycle-test-dependencies.pth").write_text(dependencies + "\n")

    where = _run([str(python), "-c", "import engine; print(engine.__file__)"], outside)
    assert where.returncode == 0, where.stderr
    assert Path(where.stdout.strip()).resolve().is_relative_to(venv.resolve()), where.stdout

    # When a workspace is created with the installed package
    target = tmp_path / "acme-sales"
    init = _run([str(python), "-m", "engine", "init", str(target)], outside)

    # Then it holds the starter workspace
    assert init.returncode == 0, init.stdout + init.stderr
    for starter_file in STARTER_FILES:
        assert (target / starter_file).is_file(), starter_file
        assert (target / starter_file).read_bytes() == (REPO_ROOT / starter_file).read_bytes()
    assert (target / "segments").is_dir()
    assert (target / "templates").is_dir()

    # and the installed package finds it valid
    check = _run([str(python), "-m", "engine", "check", "--workspace", str(target)], outside)
    assert check.returncode == 0, check.stdout + check.stderr
    assert "no problems" in check.stdout
