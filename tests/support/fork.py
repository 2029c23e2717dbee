"""A fork of this repository in a temporary folder, changed as a README recipe says, and
run there: its own package, tests and tools, as a forker's clone would be."""
import os
import re
import shutil
import subprocess
import sys
import xml.etree.ElementTree as ElementTree
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Optional

REPO_ROOT = Path(__file__).resolve().parents[2]
#: What a clone does not have (.gitignore): environments, git, caches, local state, secrets.
#: Everything else is copied, since the fork's tests read the deployment files too.
NOT_COPIED = ('.git', '.venv', '.tools', '__pycache__', '*.py[cod]', '*.egg-info', 'dist',
              'build', '.pytest_cache', '.ruff_cache', '.coverage*', 'coverage.xml', 'htmlcov',
              'data', '*.sqlite3', '*.db', '*.db-wal', '*.db-shm', '.demo', 'bench-results',
              '.*.env')
#: JUnit's elements for what befell a test, as pytest names it.
OUTCOMES = {'failure': 'failed', 'error': 'error', 'skipped': 'skipped'}
FENCE = re.compile(r'^(?P<indent> *)```(?P<language>\w*)$')


def make_fork(destination: Path) -> Path:
    shutil.copytree(REPO_ROOT, destination, ignore=shutil.ignore_patterns(*NOT_COPIED))
    return destination


def recipe_text(title: str) -> str:
    """The README's "Fork it" recipe `title`, as written."""
    text = (REPO_ROOT / 'README.md').read_text()
    section = text.split('\n## Fork it\n', 1)[1].split('\n## ', 1)[0]
    return section.split(f'\n### {title}\n', 1)[1].split('\n### ', 1)[0]


def recipe_blocks(title: str) -> List[str]:
    """The code blocks of the README's "Fork it" recipe `title`, in order, unindented."""
    recipe = recipe_text(title)
    blocks: List[str] = []
    current: Optional[List[str]] = None
    indent = ''
    for line in recipe.splitlines():
        fence = FENCE.match(line)
        if fence and current is None:
            current, indent = [], fence['indent']
        elif fence and current is not None:
            blocks.append('\n'.join(current) + '\n')
            current = None
        elif current is not None:
            current.append(line[len(indent):] if line.startswith(indent) else line)
    return blocks


def last_migration(fork: Path) -> str:
    """The line of the newest migration in the fork's MIGRATIONS (sql_schema.py): the anchor
    after which a recipe appends its own."""
    schema = fork / 'connect_mongodb_example' / 'storage' / 'sql_schema.py'
    return [line for line in schema.read_text().splitlines()
            if re.match(r' {4}\(\d+, ', line)][-1]


def insert_after(path: Path, anchor: str, text: str, *, before: bool = False) -> None:
    """Insert `text` after (or before) the one line of `path` that starts with `anchor`."""
    lines = path.read_text().splitlines(keepends=True)
    matches = [index for index, line in enumerate(lines) if line.startswith(anchor)]
    assert len(matches) == 1, f'{path.name}: {len(matches)} lines start with {anchor!r}'
    lines.insert(matches[0] + (0 if before else 1), text)
    path.write_text(''.join(lines))


def insert_before(path: Path, anchor: str, text: str) -> None:
    """Insert `text` before the one line of `path` that starts with `anchor`."""
    insert_after(path, anchor, text, before=True)


def run_in_fork(fork: Path, *args: str, env: Optional[Dict[str, str]] = None,
                timeout: float = 240) -> subprocess.CompletedProcess:
    """`python *args` in the fork, which imports its own copy of the package (the current
    directory comes first on sys.path). The parent's coverage is kept out of it."""
    environment = {name: value for name, value in os.environ.items()
                   if not name.startswith(('COV_CORE', 'PYTEST_', 'PYTHONPATH'))}
    environment.update(env or {})
    return subprocess.run([sys.executable, *args], cwd=fork, env=environment, text=True,
                          capture_output=True, timeout=timeout, check=False)


@dataclass
class PytestRun:
    """What `pytest` did in a fork: its output, and the outcome of each test by node id
    ('passed', 'failed', 'error' or 'skipped')."""

    result: subprocess.CompletedProcess
    outcomes: Dict[str, str]

    def report(self) -> str:
        return self.result.stdout[-4000:] + self.result.stderr[-2000:]

    def ids(self, outcome: str) -> List[str]:
        return [test for test, found in self.outcomes.items() if found == outcome]


def run_tests(fork: Path, *args: str, timeout: float = 240) -> PytestRun:
    """`pytest *args` in the fork, without coverage; the outcomes are read from its JUnit
    report, so that a test that did not run cannot pass for one that did."""
    report = fork / 'pytest-report.xml'
    report.unlink(missing_ok=True)
    result = run_in_fork(fork, '-m', 'pytest', '-q', '-p', 'no:cacheprovider', '--no-cov',
                         f'--junitxml={report}', *args, timeout=timeout)
    outcomes: Dict[str, str] = {}
    if report.exists():
        for case in ElementTree.parse(report).iter('testcase'):
            node = '{}::{}'.format(case.get('classname'), case.get('name'))
            found = [child.tag for child in case if child.tag in OUTCOMES]
            outcomes[node] = OUTCOMES[found[0]] if found else 'passed'
    return PytestRun(result, outcomes)
