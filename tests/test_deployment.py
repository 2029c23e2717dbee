"""The deployment files, checked statically (no Docker engine is needed), and HOWTO.md
checked against them: Dockerfile, docker-compose.yml, the env example, the CI workflow.

The Compose Specification and GitHub workflow schemas are the ones check-jsonschema (a dev
dependency) ships: the tests need nothing outside the repository and the installed packages.
"""
import copy
import fnmatch
import hashlib
import json
import re
import shlex
import shutil
import subprocess
import sys
from importlib.metadata import metadata
from pathlib import Path
from typing import Any, Dict, List, Set, Tuple
from urllib.parse import unquote, urlsplit

import jsonschema
import pytest
import yaml
from check_jsonschema.builtin_schemas import get_builtin_schema
from connect.eaas.core.validation.validators.base import validate_docker_compose_yml

from connect_mongodb_example.settings import load_settings
from connect_mongodb_example.storage import BACKENDS

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.9 and 3.10
    import tomli as tomllib

ROOT = Path(__file__).resolve().parent.parent
COMPOSE_SCHEMA = 'vendor.compose-spec'  # check-jsonschema's copy of the Compose Specification
RUNNER_IMAGE = 'cloudblueconnect/connect-extension-runner'
PROJECT = 'connect_mongodb_example'
RUNNER_SERVICES = {f'{PROJECT}_dev', f'{PROJECT}_bash', f'{PROJECT}_test'}
ENV_FILE = f'.{PROJECT}_dev.env'
ENV_EXAMPLE = ROOT / f'{ENV_FILE}.example'
WORKFLOW = ROOT / '.github' / 'workflows' / 'ci.yml'
# Sections of HOWTO.md that describe these files; Troubleshooting is shared with others.
DEPLOYMENT_SECTIONS = (
    'Local development with docker compose', 'Deploying to Connect', 'Forking this template',
)
LOOPBACK = {'localhost', '127.0.0.1', '::1'}
# The FerretDB image declares its own HEALTHCHECK; every other dependency declares one here.
IMAGE_HEALTHCHECKS = {'ferretdb'}


def read_toml(path: Path) -> Dict[str, Any]:
    with path.open('rb') as handle:
        return tomllib.load(handle)


def runner_version() -> str:
    return read_toml(ROOT / 'pyproject.toml')['tool']['poetry']['group']['dev'][
        'dependencies']['connect-extension-runner']


def compose() -> Dict[str, Any]:
    return yaml.safe_load((ROOT / 'docker-compose.yml').read_text())


def services() -> Dict[str, Dict[str, Any]]:
    return compose()['services']


def dockerfile_instructions(path: Path = ROOT / 'Dockerfile') -> List[Tuple[str, str]]:
    """(KEYWORD, arguments) pairs, continuation lines joined, comments dropped."""
    instructions, pending = [], ''
    for line in path.read_text().splitlines():
        if not pending and (not line.strip() or line.lstrip().startswith('#')):
            continue
        pending += line.rstrip()
        if pending.endswith('\\'):
            pending = pending[:-1] + ' '
            continue
        keyword, _, arguments = pending.strip().partition(' ')
        instructions.append((keyword.upper(), ' '.join(arguments.split())))
        pending = ''
    return instructions


def howto_sections() -> Dict[str, str]:
    text = (ROOT / 'HOWTO.md').read_text()
    parts = re.split(r'^## (.+)$', text, flags=re.MULTILINE)
    return {title.strip(): body for title, body in zip(parts[1::2], parts[2::2])}


def deployment_text() -> str:
    sections = howto_sections()
    missing = [title for title in DEPLOYMENT_SECTIONS if title not in sections]
    assert not missing, f'HOWTO.md lacks the sections {missing}'
    return '\n'.join(sections[title] for title in DEPLOYMENT_SECTIONS)


def published_ports(service: Dict[str, Any]) -> Dict[int, int]:
    """Host port -> container port, from "127.0.0.1:15432:5432" entries."""
    mapping = {}
    for entry in service.get('ports', []):
        *_, host, container = str(entry).split(':')
        mapping[int(host)] = int(container)
    return mapping


def service_credentials(service: Dict[str, Any]) -> Tuple[str, str]:
    env = service.get('environment', {})
    if 'MONGO_INITDB_ROOT_USERNAME' in env:
        return env['MONGO_INITDB_ROOT_USERNAME'], env['MONGO_INITDB_ROOT_PASSWORD']
    return env.get('POSTGRES_USER', 'postgres'), env['POSTGRES_PASSWORD']


def assert_url_matches_compose(url: str, *, inside: bool) -> None:
    """A URL naming a compose service (inside the compose network) or a published port on
    loopback (from the host) must use that service's real port and credentials."""
    stack = services()
    parts = urlsplit(url)
    host = parts.hostname
    if inside:
        assert host in stack, f'{url}: no compose service {host!r}'
        name = host
        container_port = parts.port
    else:
        assert host in LOOPBACK, f'{url}: expected a loopback host'
        owners = [n for n, s in stack.items() if parts.port in published_ports(s)]
        assert owners, f'{url}: port {parts.port} is not published by any compose service'
        name = owners[0]
        container_port = published_ports(stack[name])[parts.port]
    exposed = set(published_ports(stack[name]).values())
    assert container_port in exposed, f'{url}: {name} listens on {sorted(exposed)}'
    if parts.username:
        expected = service_credentials(stack[name])
        assert (unquote(parts.username), unquote(parts.password or '')) == expected, (
            f'{url}: the credentials differ from those of the {name} service'
        )


# --- docker-compose.yml ---------------------------------------------------------------


def compose_validator() -> jsonschema.protocols.Validator:
    schema = get_builtin_schema(COMPOSE_SCHEMA)
    # The schema says "https://json-schema.org/draft-07/schema", a spelling jsonschema's own
    # lookup does not know; go by the draft it names.
    drafts = {'draft-07': jsonschema.Draft7Validator,
              'draft/2019-09': jsonschema.Draft201909Validator,
              'draft/2020-12': jsonschema.Draft202012Validator}
    named = [cls for draft, cls in drafts.items() if draft in schema.get('$schema', '')]
    validator_class = named[0] if named else jsonschema.validators.validator_for(schema)
    validator_class.check_schema(schema)
    return validator_class(schema)


def test_compose_file_follows_the_compose_specification():
    errors = sorted(compose_validator().iter_errors(compose()), key=str)
    assert [f'{list(e.absolute_path)}: {e.message}' for e in errors] == []


def test_compose_schema_rejects_a_broken_file():
    """A control: the same validation fails a compose file with a misspelt key."""
    broken = copy.deepcopy(compose())
    broken['services']['postgres']['healthchek'] = broken['services']['postgres'].pop(
        'healthcheck',
    )
    assert any(True for _ in compose_validator().iter_errors(broken))


def test_project_name_and_runner_services():
    data = compose()
    assert data['name'] == PROJECT
    assert set(data['services']) >= RUNNER_SERVICES
    for name in RUNNER_SERVICES:
        service = data['services'][name]
        # A bare `build: .` string crashes connect-eaas-core's validator.
        assert service['build'] == {'context': '.', 'dockerfile': 'Dockerfile'}, name
        assert (ROOT / service['build']['context'] / service['build']['dockerfile']).is_file()
        assert '.:/extension' in service['volumes'], name
        assert service['working_dir'] == '/extension', name
        assert 'image' not in service, name


def test_other_services_use_pinned_images():
    for name, service in services().items():
        if name in RUNNER_SERVICES:
            continue
        image = service.get('image', '')
        repository, _, tag = image.rpartition(':')
        assert repository, f'{name}: no image'
        assert tag not in ('', 'latest'), f'{name}: pin a tag, got {image!r}'
        assert re.match(r'\d', tag), f'{name}: {image!r} has no version in its tag'


def test_dev_and_bash_services_run_the_runner_with_the_env_file():
    stack = services()
    dev, bash = stack[f'{PROJECT}_dev'], stack[f'{PROJECT}_bash']
    assert dev['command'] == 'cextrun -d --no-rich-logging'
    assert dev['env_file'] == bash['env_file'] == [ENV_FILE]
    assert bash['command'] == '/bin/bash'
    assert bash['stdin_open'] is True
    assert bash['tty'] is True


def test_databases_have_health_checks_and_named_volumes():
    data = compose()
    stack = data['services']
    for name in ('postgres', 'mongo', 'documentdb'):
        probe = ' '.join(stack[name]['healthcheck']['test'])
        assert ('mongosh' in probe and 'ping' in probe) or 'pg_isready' in probe, name
    for name, service in stack.items():
        for volume in service.get('volumes', []):
            source = volume.split(':', 1)[0]
            if not source.startswith('.'):
                assert source in data['volumes'], f'{name}: undeclared volume {source}'
    assert set(data['volumes']) == {'postgres_data', 'mongo_data', 'documentdb_data'}


def test_dependencies_wait_for_healthy_services():
    stack = services()
    for name, service in stack.items():
        for dependency, rule in service.get('depends_on', {}).items():
            assert rule == {'condition': 'service_healthy'}, f'{name} -> {dependency}'
            assert 'healthcheck' in stack[dependency] or dependency in IMAGE_HEALTHCHECKS


def test_test_service_runs_lint_and_tests_against_the_compose_databases():
    service = services()[f'{PROJECT}_test']
    assert service['command'] == ['ruff check . && pytest']
    env = service['environment']
    assert_url_matches_compose(env['TEST_POSTGRES_URL'], inside=True)
    assert_url_matches_compose(env['MONGODB_URI'], inside=True)
    assert urlsplit(env['TEST_POSTGRES_URL']).hostname == 'postgres'
    assert urlsplit(env['MONGODB_URI']).hostname == 'mongo'
    assert set(service['depends_on']) == {'postgres', 'mongo'}


def test_ferretdb_serves_the_data_api_from_the_documentdb_service():
    stack = services()
    env = stack['ferretdb']['environment']
    backend = urlsplit(env['FERRETDB_POSTGRESQL_URL'])
    assert backend.hostname == 'documentdb'
    assert (backend.username, backend.password) == service_credentials(stack['documentdb'])
    port = int(env['FERRETDB_LISTEN_DATA_API_ADDR'].rsplit(':', 1)[1])
    assert port in published_ports(stack['ferretdb']).values()


def test_eaas_core_validator_accepts_the_compose_file():
    context = {'project_dir': str(ROOT), 'runner_version': runner_version()}
    items = validate_docker_compose_yml(context).items
    assert [item.message for item in items if item.level == 'ERROR'] == []


def test_eaas_core_validator_rejects_another_base_image(tmp_path):
    """A control: the validator does read the Dockerfile the services build."""
    shutil.copy(ROOT / 'docker-compose.yml', tmp_path)
    dockerfile = (ROOT / 'Dockerfile').read_text()
    (tmp_path / 'Dockerfile').write_text(
        dockerfile.replace(f'{RUNNER_IMAGE}:{runner_version()}', f'{RUNNER_IMAGE}:1.0'),
    )
    context = {'project_dir': str(tmp_path), 'runner_version': runner_version()}
    errors = [i.message for i in validate_docker_compose_yml(context).items if i.level == 'ERROR']
    assert len(errors) == len(RUNNER_SERVICES)
    assert all('Invalid base image' in message for message in errors)


# --- Dockerfile and .dockerignore ------------------------------------------------------


def test_dockerfile_ends_on_the_runner_version_the_project_is_tested_with():
    froms = [arguments for keyword, arguments in dockerfile_instructions() if keyword == 'FROM']
    assert froms, 'the Dockerfile has no FROM'
    assert froms[-1].split()[0] == f'{RUNNER_IMAGE}:{runner_version()}'
    assert metadata('connect-extension-runner')['Version'] == runner_version()


def test_dockerfile_installs_the_locked_dependencies_then_the_package():
    steps = dockerfile_instructions()
    runs = [arguments for keyword, arguments in steps if keyword == 'RUN']
    assert not any(re.search(r'poetry (update|lock|add)|pip install', run) for run in runs), (
        'the image must install exactly what poetry.lock says'
    )

    def index(keyword: str, pattern: str) -> int:
        for position, (word, arguments) in enumerate(steps):
            if word == keyword and re.search(pattern, arguments):
                return position
        raise AssertionError(f'no {keyword} matching {pattern!r}')

    manifests = index('COPY', r'^pyproject\.toml poetry\.lock ')
    dependencies = index('RUN', r'poetry install --no-root')
    readme = index('COPY', r'^README\.md ')
    package = index('COPY', rf'^{PROJECT} ')
    root = index('RUN', r'poetry install$')
    assert manifests < dependencies < readme < root
    assert dependencies < package < root
    assert read_toml(ROOT / 'pyproject.toml')['tool']['poetry']['readme'] == 'README.md'


def test_dockerfile_copies_only_files_the_build_context_keeps():
    ignored = [
        line.strip() for line in (ROOT / '.dockerignore').read_text().splitlines()
        if line.strip() and not line.startswith('#')
    ]
    for pattern in ('.git', '.venv', '.tools', '.*.env', 'data'):
        assert pattern in ignored, f'.dockerignore should exclude {pattern}'
    for keyword, arguments in dockerfile_instructions():
        if keyword != 'COPY':
            continue
        for source in arguments.split()[:-1]:
            assert (ROOT / source).exists(), f'COPY {source}: no such file'
            assert not any(fnmatch.fnmatch(source, p) for p in ignored), f'{source} is ignored'


def test_lock_is_fresh_for_whatever_poetry_the_runner_image_carries():
    """The image installs with its own Poetry. Every Poetry since 1.2 hashes a pyproject that
    has only [tool.poetry] this way, so this equality means none will call the lock stale."""
    pyproject = read_toml(ROOT / 'pyproject.toml')
    assert 'project' not in pyproject
    assert 'dependency-groups' not in pyproject
    poetry = pyproject['tool']['poetry']
    relevant = {key: poetry.get(key) for key in
                ('dependencies', 'source', 'extras', 'dev-dependencies')}
    if 'group' in poetry:
        relevant['group'] = poetry['group']
    content_hash = hashlib.sha256(json.dumps(relevant, sort_keys=True).encode()).hexdigest()
    lock = read_toml(ROOT / 'poetry.lock')
    assert lock['metadata']['content-hash'] == content_hash
    assert lock['metadata']['lock-version'].split('.')[0] == '2'


# --- env example -------------------------------------------------------------------------


def test_env_example_has_the_runner_settings_and_no_secret():
    values = {}
    for line in ENV_EXAMPLE.read_text().splitlines():
        if line.strip() and not line.startswith('#'):
            name, _, value = line.partition('=')
            values[name.strip()] = value.strip().strip('"')
    assert set(values) == {'API_KEY', 'ENVIRONMENT_ID', 'SERVER_ADDRESS'}
    assert values['API_KEY'] == ''
    assert values['ENVIRONMENT_ID'] == ''
    assert values['SERVER_ADDRESS'] == 'api.connect.cloudblue.com'
    text = ENV_EXAMPLE.read_text()
    assert not re.search(r'SU-\d{3}-\d{3}-\d{3}:\w+', text), 'a real-looking API key'
    assert not re.search(r'[A-Za-z0-9+/=_-]{32,}', text), 'a long token-like value'


@pytest.mark.skipif(not (ROOT / '.git').exists(), reason='not a git checkout')
def test_git_ignores_the_real_env_file_and_keeps_the_example():
    def ignored(name: str) -> bool:
        result = subprocess.run(
            ['git', 'check-ignore', '--no-index', '--quiet', name], cwd=ROOT, check=False,
        )
        return result.returncode == 0

    assert ignored(ENV_FILE)
    assert not ignored(ENV_EXAMPLE.name)


# --- GitHub workflow ---------------------------------------------------------------------


def workflow() -> Dict[str, Any]:
    data = yaml.safe_load(WORKFLOW.read_text())
    # YAML 1.1 reads the `on:` key as True; GitHub reads it as "on".
    data['on'] = data.pop(True, data.get('on'))
    return data


def test_workflows_follow_the_github_workflow_schema():
    """check-jsonschema's vendored schema; actionlint, the fuller checker, cannot be installed
    from the package registries this project uses (its build downloads a binary)."""
    paths = sorted(str(path) for path in WORKFLOW.parent.glob('*.y*ml'))
    result = subprocess.run(
        [sys.executable, '-m', 'check_jsonschema', '--builtin-schema',
         'vendor.github-workflows', *paths],
        capture_output=True, text=True, check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_workflow_tests_every_python_the_runner_supports():
    job = workflow()['jobs']['test']
    classifiers = metadata('connect-extension-runner').get_all('Classifier')
    supported = {
        match.group(1) for match in
        (re.fullmatch(r'Programming Language :: Python :: (3\.\d+)', c) for c in classifiers)
        if match
    }
    assert set(job['strategy']['matrix']['python-version']) == supported


def test_workflow_runs_make_test_with_pinned_actions():
    steps = workflow()['jobs']['test']['steps']
    actions = [step['uses'] for step in steps if 'uses' in step]
    assert 'actions/checkout@v4' in actions
    assert 'actions/setup-python@v5' in actions
    assert all(re.search(r'@v\d+$', action) for action in actions), actions
    runs = [step['run'].strip() for step in steps if 'run' in step]
    # make test last; before it only the system packages .ci/run installs too.
    assert runs[-1] == 'make test'
    assert all(re.fullmatch(r'sudo apt-get update -qq && sudo apt-get install -y -qq [a-z ]+', run)
               for run in runs[:-1]), runs


def test_workflow_fetches_nothing_beside_the_clone():
    """The suite needs only the repository and PyPI: no step downloads or reaches outside."""
    text = WORKFLOW.read_text()
    assert not re.search(r'\b(curl|wget)\b|\.\./', text), 'the workflow fetches files itself'


def test_workflow_gives_poetry_a_python_the_makefile_reads():
    """Poetry 2.5 needs Python 3.10+, even on the 3.9 job: the workflow hands the Makefile
    the interpreter it set up for Poetry, by the variable the Makefile reads."""
    steps = workflow()['jobs']['test']['steps']
    [test_step] = [step for step in steps if step.get('run', '').strip() == 'make test']
    python = test_step['env']['POETRY_PYTHON']
    [setup] = [step for step in steps if step.get('id') and step['id'] in python]
    version = tuple(int(part) for part in setup['with']['python-version'].split('.'))
    assert version >= (3, 10)
    assert 'POETRY_PYTHON ?=' in (ROOT / 'Makefile').read_text()


def test_workflow_services_back_the_integration_test_urls():
    data = workflow()
    job = data['jobs']['test']
    containers = job['services']
    assert containers['mongo']['image'] == services()['mongo']['image']
    assert containers['postgres']['image'] == services()['postgres']['image']
    for name, container in containers.items():
        assert '--health-cmd' in container['options'], name
    mongo = urlsplit(job['env']['MONGODB_URI'])
    postgres = urlsplit(job['env']['TEST_POSTGRES_URL'])
    assert job['env']['TEST_POSTGRES_URL'] == (
        'postgresql://postgres:postgres@localhost:5432/postgres'
    )
    mongo_env = containers['mongo']['env']
    assert (mongo.username, mongo.password) == (
        mongo_env['MONGO_INITDB_ROOT_USERNAME'], mongo_env['MONGO_INITDB_ROOT_PASSWORD'],
    )
    assert postgres.password == containers['postgres']['env']['POSTGRES_PASSWORD']
    assert f'{mongo.port}:27017' in containers['mongo']['ports']
    assert f'{postgres.port}:5432' in containers['postgres']['ports']


# --- HOWTO.md against the files --------------------------------------------------------

COMPOSE_COMMANDS = {'build', 'up', 'run', 'exec', 'logs', 'down', 'stop', 'start', 'restart',
                    'ps', 'pull', 'config'}
ONE_SERVICE_COMMANDS = {'run', 'exec'}
OPTIONS_WITH_VALUES = {'--tail', '-e', '--env', '--entrypoint', '-u', '--user', '-w'}


def compose_commands(text: str) -> List[List[str]]:
    commands = []
    for line in text.splitlines():
        line = line.strip().lstrip('$ ')
        if line.startswith('docker compose '):
            commands.append(shlex.split(line.split('#', 1)[0])[2:])
    return commands


def services_named_by(command: List[str]) -> Set[str]:
    subcommand, *rest = command
    assert subcommand in COMPOSE_COMMANDS, f'unknown docker compose {subcommand}'
    named, skip = [], False
    for argument in rest:
        if skip:
            skip = False
        elif argument.startswith('-'):
            skip = argument in OPTIONS_WITH_VALUES
        else:
            named.append(argument)
    return set(named[:1] if subcommand in ONE_SERVICE_COMMANDS else named)


def test_howto_compose_commands_name_real_services():
    text = (ROOT / 'HOWTO.md').read_text()
    commands = compose_commands(text)
    assert commands, 'HOWTO.md shows no docker compose command'
    named = set().union(*(services_named_by(command) for command in commands))
    assert named - set(services()) == set()
    for name in re.findall(rf'(?<![\w./-]){PROJECT}_[a-z]+\b(?![./])', text):
        assert name in services(), f'HOWTO.md names {name}, which is not a compose service'


def test_howto_shows_every_compose_service_and_the_steps_that_use_them():
    text = deployment_text()
    for name in services():
        assert f'`{name}`' in text, f'HOWTO.md does not mention the {name} service'
    named = set().union(*(services_named_by(command) for command in compose_commands(text)))
    assert named >= RUNNER_SERVICES, 'each runner service needs its docker compose command'
    for step in (f'cp {ENV_EXAMPLE.name} {ENV_FILE}', 'docker compose build',
                 f'docker compose up {PROJECT}_dev'):
        assert step in text, f'HOWTO.md lacks the step `{step}`'


def test_howto_urls_point_at_the_compose_services():
    text = deployment_text()
    urls = re.findall(r'\b(?:postgres(?:ql)?|mongodb|https?)://[^\s`\'")|]+', text)
    local = [url for url in urls if '.' not in (urlsplit(url).hostname or '.')
             or urlsplit(url).hostname in LOOPBACK]
    assert local, 'HOWTO.md gives no URL of the local stack'
    for url in local:
        assert_url_matches_compose(url, inside=urlsplit(url).hostname not in LOOPBACK)


def test_howto_names_files_that_exist():
    text = deployment_text()
    names = set(re.findall(r'`([\w./-]+\.(?:toml|json|ya?ml|md|py|lock|example)|Dockerfile)`',
                           text))
    assert names
    missing = sorted(name for name in names if not (ROOT / name).exists())
    assert missing == []


def local_variable_tables() -> Dict[str, Dict[str, str]]:
    """The variable tables of the compose section, by the backend they select."""
    section = howto_sections()['Local development with docker compose']
    tables: Dict[str, Dict[str, str]] = {}
    for block in re.split(r'\n(?!\|)', section):
        rows = dict(re.findall(r'^\| `([A-Z_]+)` \| `([^`]*)` \|', block, flags=re.MULTILINE))
        if 'STORAGE_BACKENDS' in rows:
            tables[rows['STORAGE_BACKENDS']] = rows
    return tables


def test_howto_has_a_variable_table_for_each_backend():
    assert set(local_variable_tables()) == set(BACKENDS)


@pytest.mark.parametrize('backend', list(BACKENDS))
def test_howto_local_variables_are_accepted_by_the_extension(backend):
    rows = local_variable_tables()[backend]
    for value in rows.values():
        if '://' in value:
            assert_url_matches_compose(value, inside=True)
    settings = load_settings(rows)
    assert [name for name, _ in settings.backend_settings] == [backend]
