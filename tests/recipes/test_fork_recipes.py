"""The README's "Fork it" recipes, carried out as written on a copy of the repository, whose
own tests and code then run in a separate Python process."""
import inspect
import json
import re
from typing import Dict, Iterable, List

from connect_mongodb_example.event_record import build_record
from connect_mongodb_example.extension import PURCHASE_REQUEST
from connect_mongodb_example.settings import load_settings
from connect_mongodb_example.storage.base import EventStore
from connect_mongodb_example.storage.registry import close_all, stores_for
from tests.support.backends import backend_targets
from tests.support.fork import (
    PytestRun,
    insert_after,
    insert_before,
    last_migration,
    make_fork,
    recipe_blocks,
    recipe_text,
    run_in_fork,
    run_tests,
)

PACKAGE = 'connect_mongodb_example'
CUSTOMER_ID = 'TA-0-7251-3930-7482'  # tests/support/requests.py
CONTRACT = ('tests/storage/test_backend_contract.py',
            'tests/storage/test_backend_contract_reads.py',
            'tests/storage/test_backend_contract_lifecycle.py')
WEB = ('tests/test_webapp.py', 'tests/test_web_inputs.py', 'tests/test_web_export.py')
#: Target id -> whether this machine may lack its server (its tests then skip).
TARGETS = {param.id: bool(param.marks) for param in backend_targets()}
#: The tests besides the contract that look at every field of a record: they derive what
#: they expect from the declarations, so a fork's new field passes them unchanged.
EVERY_FIELD = ('tests/test_event_record.py', 'tests/storage/test_mongodb.py',
               'tests/storage/test_dataapi.py', 'tests/storage/test_multi_backend.py')


def succeeded(result) -> str:
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return result.stdout


def last_line(result) -> str:
    return succeeded(result).strip().splitlines()[-1]


def target_of(test: str, targets: Iterable[str]) -> str:
    """Which of `targets` a test parametrised by the `store` or `web` fixture ran on ('' for
    none): the first part of its parameters' id."""
    ids = re.search(r'\[(.*)\]$', test)
    return next((target for target in sorted(targets, key=len, reverse=True)
                 if ids and (ids[1] == target or ids[1].startswith(f'{target}-'))), '')


def assert_passed_on_every_target(run: PytestRun, targets: Dict[str, bool]) -> None:
    """Each of `targets` (name -> whether this machine may lack its server) ran the same
    tests, which all passed, or were all skipped for want of the server."""
    found: Dict[str, Dict[str, List[str]]] = {}  # target -> outcome -> tests
    for test, outcome in run.outcomes.items():
        target = target_of(test, targets)
        test = test.replace(f'[{target}]', '').replace(f'[{target}-', '[')
        found.setdefault(target, {}).setdefault(outcome, []).append(test)
    assert set(found) - {''} == set(targets), sorted(found)
    failed = [test for test, outcome in run.outcomes.items()
              if outcome != 'passed' and outcome != 'skipped']
    assert not failed, run.report()
    first = sorted(sum(found[next(iter(targets))].values(), []))
    assert first, run.report()
    for target, may_be_absent in targets.items():
        assert sorted(sum(found[target].values(), [])) == first, target
        outcomes = set(found[target])
        assert outcomes == {'passed'} or (may_be_absent and outcomes == {'skipped'}), (
            target, found[target])


def servers_here(targets: Dict[str, bool]) -> Dict[str, bool]:
    """The targets that need no server (those `-m 'not postgres'` keeps)."""
    return {target: False for target, may_be_absent in targets.items() if not may_be_absent}


async def test_add_a_field_to_the_record(tmp_path, postgres_url, purchase_request):
    # Databases written before the change, by the code as it is.
    old_databases = [f'sqlite:///{tmp_path}/old.sqlite3', postgres_url]
    for url in old_databases:
        [store] = stores_for(load_settings({'DATABASE_URL': url}))
        await store.save(build_record(purchase_request(), PURCHASE_REQUEST))
    await close_all()

    field, migration = recipe_blocks('Add a field to the record')
    fork = make_fork(tmp_path / 'fork')
    insert_after(fork / PACKAGE / 'event_record.py', '    account_id: ', field)
    insert_after(fork / PACKAGE / 'storage' / 'sql_schema.py', '    (6, _count_deletes),',
                 migration)

    # Every backend stores and reads back every declared field, the new one included, and
    # passes the whole contract; so do the tests that look at every field.
    tests = run_tests(fork, *CONTRACT, *EVERY_FIELD)
    assert tests.result.returncode == 0, tests.report()
    assert_passed_on_every_target(tests, TARGETS)
    assert {target_of(test, TARGETS) for test in tests.ids('passed')
            if 'every_stored_field' in test} >= set(servers_here(TARGETS))
    # The web application's tests pass too (it lists and exports the new field), on the
    # backends that need no server: how each backend reads it is the contract's part.
    web = run_tests(fork, *WEB, '-m', 'not postgres')
    assert web.result.returncode == 0, web.report()
    assert_passed_on_every_target(web, {**servers_here(TARGETS), 'fake': False})
    migrated = run_in_fork(fork, '-m', 'tests.recipes.in_fork_field',
                           env={'OLD_DATABASES': json.dumps(old_databases)})
    expected = [['pending', None], ['approved', CUSTOMER_ID]]
    assert json.loads(last_line(migrated)) == {
        'sqlite': expected, 'postgresql': expected,
        # A page of the Events page's API lists it, read from the new column.
        'listed': {'sqlite': CUSTOMER_ID, 'postgresql': CUSTOMER_ID},
    }


def test_add_a_column_to_the_page(tmp_path, sqlite_url):
    [field, migration] = recipe_blocks('Add a field to the record')
    [column] = recipe_blocks('Add a column to the page')
    fork = make_fork(tmp_path / 'fork')
    insert_after(fork / PACKAGE / 'event_record.py', '    account_id: ', field)
    insert_after(fork / PACKAGE / 'storage' / 'sql_schema.py', last_migration(fork), migration)
    insert_after(fork / PACKAGE / 'event_views.py', "    'account_id',", column)

    # The web application's tests pass with the new column, on the backends that need no
    # server (the column changes what is listed, not how a backend reads).
    web = run_tests(fork, *WEB, '-m', 'not postgres')
    assert web.result.returncode == 0, web.report()
    assert_passed_on_every_target(web, {**servers_here(TARGETS), 'fake': False})

    shown = json.loads(last_line(run_in_fork(
        fork, '-m', 'tests.recipes.in_fork_column', env={'DATABASE_URL': sqlite_url})))
    assert shown == {
        'columns': [['request_id', 'Request'], ['status', 'Status'], ['updated', 'Updated'],
                    ['asset_id', 'Asset'], ['product_id', 'Product'], ['account_id', 'Account'],
                    ['customer_id', 'Customer'], ['delivery_count', 'Deliveries'],
                    ['last_received_at', 'Last received']],
        'listed': CUSTOMER_ID,
    }
    # The page itself has no column of its own to change (tests/e2e/test_web_fork_e2e.py
    # shows the new one in a browser, through the runner).
    static = fork / PACKAGE / 'static'
    assert 'account_id' not in (static / 'events.js').read_text() + (
        static / 'index.html').read_text()


def test_the_backend_recipe_names_every_method_a_backend_implements():
    """What `EventStore` declares abstract, with each parameter, as the recipe lists it."""
    recipe = recipe_text('Add a storage backend')
    for name in sorted(EventStore.__abstractmethods__):
        parameters = [parameter for parameter in
                      inspect.signature(getattr(EventStore, name)).parameters
                      if parameter != 'self']
        listed = re.search(rf'`{re.escape(name)}\(([^`]*)\)`', recipe)
        assert listed, f'the recipe does not list `{name}(...)`'
        assert listed[1].replace(',', ' ').split() == parameters, name


def test_add_a_storage_backend(tmp_path):
    import_line, registration, howto_table = recipe_blocks('Add a storage backend')
    fork = make_fork(tmp_path / 'fork')
    storage = fork / PACKAGE / 'storage'
    sample = fork / 'tests' / 'support' / 'sample_backend.py'
    (storage / 'memory.py').write_text(sample.read_text())
    insert_after(storage / '__init__.py', 'from connect_mongodb_example.storage.dataapi ',
                 import_line)
    insert_after(storage / '__init__.py', '        DataApiEventStore,', registration)
    succeeded(run_in_fork(fork, '-m', 'localdev.variables_table', '--write'))
    insert_before(fork / 'HOWTO.md', 'To run the runner on your machine instead of in a container',
                  howto_table + '\n')

    # The contract suites and the web application's tests run on it as on SQLite: the same
    # tests, all passed.
    suites = run_tests(fork, *CONTRACT, *WEB, '-k', 'memory or sql-sqlite')
    assert suites.result.returncode == 0, suites.report()
    assert_passed_on_every_target(suites, {'sql-sqlite': False, 'memory': False})
    assert {test.split('::')[0] for test in suites.ids('passed')
            if target_of(test, ['memory'])} == {
        path[:-3].replace('/', '.') for path in (*CONTRACT, *WEB)}

    # The docs name it: its variable (README), its table in HOWTO.md, which the extension
    # accepts (tests/test_deployment.py); and its settings are read like the others'.
    docs = run_tests(fork, 'tests/test_deployment.py', 'tests/test_readme.py',
                     'tests/test_settings.py', 'tests/test_variables.py',
                     'tests/storage/test_registry.py')
    assert docs.result.returncode == 0, docs.report()
    assert set(docs.outcomes.values()) <= {'passed', 'skipped'}, docs.report()
    assert docs.outcomes['tests.test_deployment::'
                         'test_howto_local_variables_are_accepted_by_the_extension[memory]'] \
        == 'passed'
    readme = (fork / 'README.md').read_text()
    assert '| `MEMORY_STORE_NAME` | `events` | no | Name of the in-memory store' in readme
    assert '`sql`, `mongodb`, `dataapi`, `memory`.' in readme


def test_handle_another_event_type(tmp_path, sqlite_url):
    declaration, handler, definition = recipe_blocks('Handle another event type')
    fork = make_fork(tmp_path / 'fork')
    extension = fork / PACKAGE / 'extension.py'
    insert_before(extension, '@variables(', declaration + '\n\n')
    insert_after(extension, '        return await self.store_event(PURCHASE_REQUEST, request)',
                 '\n' + handler)

    insert_before(fork / 'tests' / 'test_validation.py',
                  '    # The object is the installation itself', definition)

    # The extension's tests pass with the new handler, the eaas-core validators (which
    # know Connect's event types and their statuses) included.
    modules = ('tests/test_extension.py', 'tests/test_validation.py',
               'tests/test_event_handling.py', 'tests/test_installation_events.py')
    tests = run_tests(fork, *modules)
    assert tests.result.returncode == 0, tests.report()
    assert set(tests.outcomes.values()) <= {'passed', 'skipped'}, tests.report()
    assert {test.split('::')[0] for test in tests.ids('passed')} == {
        path[:-3].replace('/', '.') for path in modules}

    outcome = json.loads(last_line(run_in_fork(
        fork, '-m', 'tests.recipes.in_fork_event_type', env={'DATABASE_URL': sqlite_url})))
    assert sorted(outcome['events'], key=lambda declared: declared['method']) == [
        {'method': 'handle_asset_change_request_processing',
         'event_type': 'asset_change_request_processing',
         'statuses': ['pending', 'approved', 'failed', 'inquiring']},
        {'method': 'handle_asset_purchase_request_processing',
         'event_type': 'asset_purchase_request_processing',
         'statuses': list(PURCHASE_REQUEST.statuses)},
        {'method': 'handle_installation_status_change',
         'event_type': 'installation_status_change',
         'statuses': ['installed', 'uninstalled']},
    ]
    done, refused, purchase = outcome['results']
    assert done == ['success', None]
    assert refused[0] == 'fail'
    assert "status 'scheduled'" in refused[1]
    assert purchase == ['success', None]  # purchase requests do have a scheduled status
    assert outcome['stored'] == [
        ['PR-2222-3333-4444-001', 'pending', 'asset_change_request_processing'],
        ['PR-1234-5678-9012-001', 'scheduled', 'asset_purchase_request_processing'],
    ]
