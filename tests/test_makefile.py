"""The Makefile as a new user meets it: which Pythons it takes, what it rebuilds by itself,
what it passes to the demo and what `make clean` removes.

Each test runs make on a copy of the Makefile (and the files it depends on) in a temporary
folder, with a stand-in for Poetry where one is needed, so nothing is downloaded.
"""
import os
import re
import shutil
import subprocess
import sys
from importlib.metadata import metadata
from pathlib import Path
from typing import List

import pytest

ROOT = Path(__file__).resolve().parent.parent
MAKE = shutil.which('make')
PROJECT_FILES = ('Makefile', 'pyproject.toml', 'poetry.lock')

pytestmark = pytest.mark.skipif(MAKE is None, reason='make is not installed')


def supported_pythons() -> List[str]:
    match = re.search(r'^SUPPORTED_PYTHONS := (.+)$', (ROOT / 'Makefile').read_text(), re.M)
    assert match, 'the Makefile declares SUPPORTED_PYTHONS'
    return match.group(1).split()


def make(directory: Path, *arguments: str) -> subprocess.CompletedProcess:
    env = {name: value for name, value in os.environ.items()
           if name not in ('MAKEFLAGS', 'MAKELEVEL', 'PYTHON', 'POETRY_PYTHON', 'ARGS')}
    return subprocess.run(
        [MAKE, '--no-print-directory', *arguments], cwd=directory, env=env,
        capture_output=True, text=True, timeout=300, check=False,
    )


def identity(python: str) -> str:
    """What tells interpreters apart (a venv reports its creator's version and base)."""
    return subprocess.run(
        [python, '-c', 'import sys; print(*sys.version_info[:3], sys.base_prefix)'],
        capture_output=True, text=True, check=True,
    ).stdout


@pytest.fixture
def project(tmp_path) -> Path:
    directory = tmp_path / 'project'
    directory.mkdir()
    for name in PROJECT_FILES:
        shutil.copy2(ROOT / name, directory / name)
    return directory


def fake_python(directory: Path, version: str) -> Path:
    """A command that answers like an interpreter of `version` to the Makefile's check."""
    path = directory / f'python{version}'
    path.write_text(f'#!/bin/sh\necho {version}\n')
    path.chmod(0o755)
    return path


def test_the_supported_pythons_are_the_runners_and_the_packages():
    supported = supported_pythons()
    classifiers = metadata('connect-extension-runner').get_all('Classifier')
    runner = sorted(
        (m.group(1) for m in (re.fullmatch(r'Programming Language :: Python :: (3\.\d+)', c)
                              for c in classifiers) if m),
        key=lambda version: int(version.split('.')[1]),
    )
    assert supported == runner
    lowest, highest = supported[0], supported[-1]
    following = f'3.{int(highest.split(".")[1]) + 1}'
    assert f'python = ">={lowest},<{following}"' in (ROOT / 'pyproject.toml').read_text()
    assert f'Python {lowest} to {highest}' in (ROOT / 'README.md').read_text()


@pytest.mark.parametrize('version', ['3.13', '3.8'])
def test_an_unsupported_python_is_refused_before_anything_is_built(project, tmp_path, version):
    python = fake_python(tmp_path, version)

    completed = make(project, 'demo', f'PYTHON={python}')

    assert completed.returncode == 2
    assert f'PYTHON={python} is Python {version}; the extension runner supports Python ' \
           f'3.9 to 3.12. Run: make PYTHON=python3.' in completed.stderr
    assert completed.stderr.splitlines()[0].endswith(' demo')
    assert sorted(path.name for path in project.iterdir()) == sorted(PROJECT_FILES)


def test_a_python_that_cannot_run_is_refused_with_its_error(project):
    completed = make(project, 'test', 'PYTHON=no-such-python3')

    assert completed.returncode == 2
    assert 'PYTHON=no-such-python3 is a command that cannot run (' in completed.stderr
    assert 'not found' in completed.stderr
    assert sorted(path.name for path in project.iterdir()) == sorted(PROJECT_FILES)


def test_python_3_13_itself_is_refused():
    python = shutil.which('python3.13')
    if python is None or subprocess.run([python, '-c', ''], check=False,
                                        capture_output=True).returncode != 0:
        pytest.skip('no python3.13 runs here (the fake interpreters above stand in for it)')
    completed = make(ROOT, 'demo', f'PYTHON={python}')

    assert completed.returncode == 2
    assert 'is Python 3.13; the extension runner supports Python 3.9 to 3.12' in \
        completed.stderr


def test_poetry_needs_python_3_10_and_says_how_to_give_it_one(project, tmp_path):
    completed = make(project, 'install', f'PYTHON={sys.executable}',
                     f'POETRY_PYTHON={fake_python(tmp_path, "3.9")}')

    assert completed.returncode == 2
    assert 'Poetry 2.5.1 needs Python 3.10 or later' in completed.stderr
    assert 'make POETRY_PYTHON=/path/to/python3.12 install' in completed.stderr
    assert not (project / '.venv').exists()


def poetry_python() -> str:
    """An interpreter Poetry runs on (3.10+): this one, or on 3.9 another from PATH."""
    for python in (sys.executable, 'python3.12', 'python3.11', 'python3.10'):
        completed = subprocess.run(
            [python, '-c', 'import sys; print(sys.version_info >= (3, 10))'],
            capture_output=True, text=True, check=False,
        )
        if completed.stdout.strip() == 'True':
            return shutil.which(python) or python
    pytest.skip('no Python 3.10 or later for Poetry here')


@pytest.fixture
def fake_poetry(project) -> Path:
    """.tools made as the Makefile makes it, holding a stand-in for Poetry that records its
    arguments."""
    subprocess.run([poetry_python(), '-m', 'venv', '--without-pip', str(project / '.tools')],
                   check=True)
    completed = make(project, '.tools/.python', f'PYTHON={sys.executable}',
                     f'POETRY_PYTHON={poetry_python()}')
    assert completed.returncode == 0, completed.stderr
    assert 'Rebuilding' not in completed.stdout
    calls = project / 'poetry.calls'
    poetry = project / '.tools' / 'bin' / 'poetry'
    poetry.write_text(f'#!/bin/sh\necho "$*" >> {calls}\n')
    poetry.chmod(0o755)
    stamp = project / '.tools' / '.python'
    os.utime(stamp, (stamp.stat().st_mtime - 10,) * 2)
    return calls


def test_a_venv_made_by_another_python_is_rebuilt_with_the_one_asked_for(project, fake_poetry):
    # Left by another interpreter: a 3.13 one that the old Makefile let through, say.
    old_python = project / '.venv' / 'bin' / 'python'
    old_python.parent.mkdir(parents=True)
    old_python.write_text('#!/bin/sh\necho 3 13 0 /elsewhere\n')
    old_python.chmod(0o755)
    arguments = ('install', f'PYTHON={sys.executable}', f'POETRY_PYTHON={poetry_python()}')

    completed = make(project, *arguments)

    assert completed.returncode == 0, completed.stdout + completed.stderr
    assert 'Rebuilding .venv with ' in completed.stdout
    assert identity(str(old_python)) == identity(sys.executable)
    assert fake_poetry.read_text() == 'sync\n'

    again = make(project, *arguments)

    assert again.returncode == 0, again.stdout + again.stderr
    assert 'Rebuilding' not in again.stdout
    assert fake_poetry.read_text() == 'sync\n'  # nothing changed, nothing to do


def test_options_reach_the_demo_and_the_benchmark_through_args(project):
    for target, module in (('demo', 'localdev.demo'), ('bench', 'localdev.bench')):
        completed = make(project, '--dry-run', target, "ARGS=--set NAME='a b' --quick")

        assert completed.returncode == 0, completed.stderr
        assert f".venv/bin/python -m {module} --set NAME='a b' --quick" in \
            completed.stdout.splitlines()


def test_the_scale_out_bench_gets_only_the_options_it_knows(project):
    completed = make(project, '--dry-run', 'bench', 'ARGS=--backends sqlite --quick')

    assert completed.returncode == 0, completed.stderr
    lines = completed.stdout.splitlines()
    assert '.venv/bin/python -m localdev.bench --backends sqlite --quick' in lines
    assert '.venv/bin/python -m localdev.bench.scaleout --quick' in lines
    assert '.venv/bin/python -m localdev.bench.connections --quick' in lines


def test_clean_removes_what_the_commands_leave_and_nothing_tracked(project):
    for name in ('.venv/bin', '.tools/bin', 'data', '.demo', '.pytest_cache', '.ruff_cache',
                 'bench-results'):
        (project / name).mkdir(parents=True)
        (project / name / 'file').write_text('x')
    (project / '.coverage').write_text('x')

    completed = make(project, 'clean')

    assert completed.returncode == 0, completed.stderr
    assert sorted(path.name for path in project.iterdir()) == sorted(PROJECT_FILES)
