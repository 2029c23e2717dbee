"""A fork of this repository in a temporary folder, changed as a README recipe says, and
run there: its own package, tests and tools, as a forker's clone would be."""
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Dict, List, Optional

REPO_ROOT = Path(__file__).resolve().parents[2]
#: What a fork needs to run its tests and tools (no venv, no git, no local state).
COPIED = ('connect_mongodb_example', 'localdev', 'tests', 'demo', 'pyproject.toml',
          'README.md', 'HOWTO.md')
FENCE = re.compile(r'^(?P<indent> *)```(?P<language>\w*)$')


def make_fork(destination: Path) -> Path:
    destination.mkdir(parents=True)
    for name in COPIED:
        source = REPO_ROOT / name
        if source.is_dir():
            shutil.copytree(source, destination / name,
                            ignore=shutil.ignore_patterns('__pycache__', '*.pyc'))
        else:
            shutil.copy2(source, destination / name)
    return destination


def recipe_blocks(title: str) -> List[str]:
    """The code blocks of the README's "Fork it" recipe `title`, in order, unindented."""
    text = (REPO_ROOT / 'README.md').read_text()
    section = text.split('\n## Fork it\n', 1)[1].split('\n## ', 1)[0]
    recipe = section.split(f'\n### {title}\n', 1)[1].split('\n### ', 1)[0]
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
