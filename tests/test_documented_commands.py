"""Every shell command README.md and HOWTO.md show runs as written, or is listed in NOT_RUN
with the reason it cannot run offline.

Commands are taken from the ```sh blocks (every line), the ```console blocks (the lines
after `$ `) and the inline code of the text that starts like one (`make ...`,
`.venv/bin/...`, `python -m ...`). The runnable ones run from the repository root, in the
project's environment: `make` gets PYTHON and POETRY_PYTHON set to the interpreters that
built .venv and .tools, so that it never rebuilds the environment the suite runs in. Where
a command names the PostgreSQL database `events`, a database of its own stands in for it,
so that parallel runs do not collide.
"""
import os
import re
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Dict, List, Optional, Tuple

import httpx
import psycopg2
import pytest

from tests.support.postgres import LOCAL_SERVER_URL, drop_database, free_port, server_answers

ROOT = Path(__file__).resolve().parent.parent
DOCS = ('README.md', 'HOWTO.md', *sorted(
    str(path.relative_to(ROOT)) for path in (ROOT / 'docs').glob('*.md')))
BLOCK = re.compile(r'^ *```(\w*)\n(.*?)^ *```', re.MULTILINE | re.DOTALL)  # list items indent
SHELL_TAGS = {'sh': 'every line', 'console': 'lines after "$ "'}
# What a command looks like, to catch one shown in a block that is not tagged as shell.
COMMAND_START = re.compile(r'^(\$ |make |\.venv/|python|docker |git |createdb |cp |set -a)')
# Inline code that is a command to type, as opposed to a name (`make demo` is both).
INLINE_COMMAND = re.compile(r'`((?:make |\.venv/bin/|python3? -[mc] )[^`\n]*)`')

# Commands that run here: each is run by the test named.
RUN = {
    r'make demo': 'test_make_demo_runs_as_documented',
    r'\.venv/bin/python -m localdev\.demo --help': 'test_the_demo_help_runs',
    r'createdb -h 127\.0\.0\.1 -U postgres events': 'test_the_postgresql_demo_runs',
    r"make demo ARGS='--set DATABASE_URL=postgresql://postgres@127\.0\.0\.1:5432/events'":
        'test_the_postgresql_demo_runs',
    r'python3 -c "from urllib\.parse import quote_plus as q; print\(q\(\'p@ss:word\'\)\)"':
        'test_the_url_quoting_command_runs',
    r'\.venv/bin/python -m localdev\.dataapi_server --port \d+ --api-key \S+':
        'test_the_data_api_server_starts_as_documented',
}
# Commands that do not, and why.
NOT_RUN = {
    r'make test': 'the suite itself',
    r'make clean': 'removes the environment this suite runs in; tests/test_makefile.py runs '
                   'it on a copy',
    r'make demo ARGS=--keep-running':
        'serves until Ctrl+C; tests/e2e/test_demo_keep_running.py runs the demo so on a copy '
        'of the events, then stops it',
    r'EVENTS_PAGE_SCREENSHOT=\S+ \.venv/bin/pytest tests/e2e/test_web_e2e\.py':
        'rewrites the committed screenshot (make test runs that test without the variable)',
    r'make install': 'builds the environment this suite runs in (`make test` runs it first)',
    r"make demo ARGS='\.\.\.'": 'a placeholder for the options below it',
    r'make PYTHON=python3\.12 demo': 'builds .venv with another Python; tests/test_makefile.py '
                                     'checks the PYTHON choice on a copy',
    r'\.venv/bin/python -m localdev\.demo': 'what `make demo` runs (see above)',
    r'(\.venv/bin/)?python -m localdev\.variables_table --write':
        'rewrites README.md; tests/test_readme.py checks README holds what it writes',
    r'\.venv/bin/python -m localdev\.bench\.(reads|scaleout|connections|lifecycle)( .*)?':
        'minutes of both cores; tests/localdev/test_bench_reads.py, test_bench_scaleout.py, '
        'test_bench_connections.py and test_bench_lifecycle.py run them small',
    r'\.venv/bin/python -m localdev\.bench( .*)?':
        'the write benchmark, minutes of both cores; tests/reliability/test_bench_smoke.py '
        'runs it quick',
    r'make bench( .*)?': 'a minute or more of both cores; tests/reliability/test_bench_smoke.py '
                         'runs the quick benchmark',
    r'docker compose .*': 'needs a Docker engine',
    r'cp \.connect_mongodb_example_dev\.env\.example \.connect_mongodb_example_dev\.env':
        'a step of the docker compose setup; it would overwrite a real env file '
        '(tests/test_deployment.py checks the example)',
    r'set -a; \. \./\.connect_mongodb_example_dev\.env; set \+a':
        'needs the env file with a Connect API key',
    r'\.venv/bin/cextrun .*': 'connects to a real Connect environment',
    r'TEST_POSTGRES_URL=\S+ MONGODB_URI=\S+ make test': 'needs the docker compose databases',
    r'git (tag|push) .*': 'publishes a release',
    r'git (mv|grep) .*': 'renames the package in place, once, in a fork',
}


def documented_commands() -> List[Tuple[str, str]]:
    """(where, command) for every command of the docs' shell blocks, in order."""
    commands = []
    for doc in DOCS:
        text = (ROOT / doc).read_text()
        for match in BLOCK.finditer(text):
            tag, body = match.groups()
            if tag not in SHELL_TAGS:
                continue
            line = text.count('\n', 0, match.start()) + 1
            body = body.replace('\\\n', ' ')
            for command in body.splitlines():
                command = command.strip()
                if tag == 'console':
                    if not command.startswith('$ '):
                        continue
                    command = command[2:]
                command = re.sub(r'\s+#.*$', '', command).strip()
                if command and not command.startswith('#'):
                    commands.append((f'{doc}:{line}', ' '.join(command.split())))
        prose = BLOCK.sub(lambda block: '\n' * block.group(0).count('\n'), text)
        for match in INLINE_COMMAND.finditer(prose):
            line = prose.count('\n', 0, match.start()) + 1
            commands.append((f'{doc}:{line}', ' '.join(match.group(1).split())))
    return commands


def runner_of(command: str) -> Optional[str]:
    return next((test for pattern, test in RUN.items() if re.fullmatch(pattern, command)), None)


def reason_not_run(command: str) -> Optional[str]:
    return next((why for pattern, why in NOT_RUN.items() if re.fullmatch(pattern, command)),
                None)


def commands_run_by(test: str) -> List[str]:
    commands = list(dict.fromkeys(
        command for _, command in documented_commands() if runner_of(command) == test))
    assert commands, f'the docs no longer show a command {test} runs: remove it from RUN'
    return commands


def test_every_documented_command_is_run_or_says_why_not():
    unclassified = [
        f'{where}: {command}' for where, command in documented_commands()
        if runner_of(command) is None and reason_not_run(command) is None
    ]
    assert unclassified == [], 'run these in a test, or add them to NOT_RUN with the reason'
    assert [command for _, command in documented_commands()].count('make demo') >= 2


def test_every_reason_not_to_run_is_for_a_documented_command():
    """A NOT_RUN entry whose command the docs no longer show would excuse a later one."""
    commands = [command for _, command in documented_commands()]
    stale = [pattern for pattern in NOT_RUN
             if not any(re.fullmatch(pattern, command) for command in commands)]
    assert stale == [], 'the docs no longer show these: remove them from NOT_RUN'


def test_commands_are_only_in_blocks_tagged_as_shell():
    """A command in an untagged block would escape the other tests."""
    for doc in DOCS:
        for match in BLOCK.finditer((ROOT / doc).read_text()):
            tag, body = match.groups()
            if tag in SHELL_TAGS or tag in ('json', 'python'):
                continue
            commands = [line for line in body.splitlines()
                        if COMMAND_START.match(line.strip())]
            assert commands == [], f'{doc}: tag this block ```sh or ```console'


# --- running them ---------------------------------------------------------------------


def project_environment() -> Dict[str, str]:
    """For `make`: the interpreters that built .venv and .tools, so nothing is rebuilt."""
    if Path(sys.prefix).resolve() != (ROOT / '.venv').resolve():
        pytest.skip("the suite does not run from the project's .venv, which `make` would build")
    env = {name: value for name, value in os.environ.items()
           if name not in ('MAKEFLAGS', 'MAKELEVEL', 'MFLAGS', 'ARGS')}
    env['PYTHON'] = sys.executable
    tools_python = ROOT / '.tools' / 'bin' / 'python'
    if tools_python.exists():
        env['POETRY_PYTHON'] = str(tools_python)
    return env


def run_shell(script: str, timeout: float = 280) -> subprocess.CompletedProcess:
    """`script` in bash from the repository root. Past `timeout`, SIGTERM to its whole
    process group first (the demo then stops its runner), SIGKILL only if that fails."""
    with subprocess.Popen(
        ['bash', '-euo', 'pipefail', '-c', script], cwd=ROOT, env=project_environment(),
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True,
    ) as shell:
        try:
            stdout, stderr = shell.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(shell.pid, signal.SIGTERM)
            try:
                shell.communicate(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(shell.pid, signal.SIGKILL)
                shell.communicate()
            raise
    return subprocess.CompletedProcess(shell.args, shell.returncode, stdout, stderr)


def table_rows(stdout: str) -> List[List[str]]:
    return [line.split() for line in stdout.splitlines() if line.startswith('PR-')]


@pytest.mark.e2e
@pytest.mark.timeout(300)
def test_make_demo_runs_as_documented():
    [command] = commands_run_by('test_make_demo_runs_as_documented')

    completed = run_shell(command)

    assert completed.returncode == 0, completed.stdout + completed.stderr
    assert '8 of 8 events stored in sql (sqlite:///.demo/events.sqlite3).' in completed.stdout
    # The seeded history goes first; then the delivered events, all done.
    rows = [row for row in table_rows(completed.stdout) if row[5] != 'seeded']
    assert len(rows) == 8
    assert all(row[5].rstrip(',') == 'done' for row in rows)
    # The uninstall is purged and the history past its retention deleted by the job.
    assert 'deleted 6: 3 purged, 3 past retention' in completed.stdout
    # The transcript in HOWTO.md shows the same table.
    howto = (ROOT / 'HOWTO.md').read_text()
    header = next(line for line in completed.stdout.splitlines() if line.startswith('event '))
    assert f'\n{header}\n' in howto
    for row in rows[:3]:
        assert ' '.join(row) in {' '.join(line.split()) for line in howto.splitlines()}


def test_the_demo_help_runs():
    [command] = commands_run_by('test_the_demo_help_runs')

    completed = run_shell(command, timeout=60)

    assert completed.returncode == 0, completed.stderr
    assert completed.stdout.startswith('usage: python -m localdev.demo')
    for option in ('--events', '--variables', '--set', '--keep-running'):
        assert option in completed.stdout


@pytest.mark.e2e
@pytest.mark.postgres
@pytest.mark.timeout(300)
def test_the_postgresql_demo_runs():
    """HOWTO's two lines, with a database of this test's own in place of `events`."""
    # README shows the second line alone, after saying that the first must come before it.
    commands = sorted(commands_run_by('test_the_postgresql_demo_runs'),
                      key=lambda command: not command.startswith('createdb '))
    assert [command.split()[0] for command in commands] == ['createdb', 'make']
    if not server_answers(LOCAL_SERVER_URL):
        pytest.skip('needs the PostgreSQL server on 127.0.0.1:5432 that the docs name')
    database = f'documented_{uuid.uuid4().hex[:12]}'
    script = '\n'.join(re.sub(r'\bevents\b(?=\'?$)', database, command) for command in commands)
    assert script.count(database) == 2, script
    try:
        completed = run_shell(script)

        assert completed.returncode == 0, completed.stdout + completed.stderr
        assert '8 of 8 events stored in sql (postgresql://postgres@127.0.0.1:5432/' \
               f'{database})' in completed.stdout
        url = LOCAL_SERVER_URL.rsplit('/', 1)[0] + f'/{database}'
        with psycopg2.connect(url) as connection, connection.cursor() as cursor:
            cursor.execute('SELECT count(*), sum(delivery_count) FROM connect_events')
            # 8 events (9 deliveries), less the 3 of the installation uninstalled and purged.
            assert cursor.fetchone() == (5, 5)
        connection.close()
    finally:
        drop_database(LOCAL_SERVER_URL, LOCAL_SERVER_URL.rsplit('/', 1)[0] + f'/{database}')


def test_the_url_quoting_command_runs():
    [command] = commands_run_by('test_the_url_quoting_command_runs')

    completed = run_shell(command, timeout=60)

    assert (completed.returncode, completed.stdout) == (0, 'p%40ss%3Aword\n'), completed.stderr


def test_the_data_api_server_starts_as_documented():
    """It serves until stopped: started with a free port in place of the documented one,
    asked for a document with the documented key, then stopped."""
    [command] = commands_run_by('test_the_data_api_server_starts_as_documented')
    port = free_port()
    key = re.search(r'--api-key (\S+)', command).group(1)
    server = subprocess.Popen(
        re.sub(r'--port \d+', f'--port {port}', command).split(), cwd=ROOT,
        env=project_environment(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
    )
    try:
        deadline = time.monotonic() + 60
        while True:
            assert server.poll() is None, server.stderr.read()
            try:
                response = httpx.post(
                    f'http://127.0.0.1:{port}/app/local/endpoint/data/v1/action/findOne',
                    headers={'apiKey': key},
                    json={'dataSource': 'mongodb-atlas', 'database': 'd', 'collection': 'c',
                          'filter': {}},
                )
                break
            except httpx.TransportError:
                assert time.monotonic() < deadline, 'the server did not answer within 60s'
                time.sleep(0.1)
        assert response.status_code == 200, response.text
        assert response.json() == {'document': None}
    finally:
        server.terminate()
        server.wait(timeout=30)
        server.stderr.close()
