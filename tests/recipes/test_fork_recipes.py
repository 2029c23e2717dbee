"""The README's "Fork it" recipes, carried out as written on a copy of the repository, whose
own tests and code then run in a separate Python process."""
import json

from connect_mongodb_example.event_record import build_record
from connect_mongodb_example.extension import PURCHASE_REQUEST
from connect_mongodb_example.settings import load_settings
from connect_mongodb_example.storage.registry import close_all, stores_for
from tests.support.fork import (
    insert_after,
    insert_before,
    last_migration,
    make_fork,
    recipe_blocks,
    run_in_fork,
)

PACKAGE = 'connect_mongodb_example'
CUSTOMER_ID = 'TA-0-7251-3930-7482'  # tests/support/requests.py


def succeeded(result) -> str:
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return result.stdout


def last_line(result) -> str:
    return succeeded(result).strip().splitlines()[-1]


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

    # Every backend stores and reads back every declared field, the new one included.
    contract = run_in_fork(fork, '-m', 'pytest', '-q', '-p', 'no:cacheprovider', '--no-cov',
                           'tests/storage/test_backend_contract.py', '-k', 'every_stored_field')
    assert '4 passed' in last_line(contract), contract.stdout
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


def test_add_a_storage_backend(tmp_path):
    import_line, registration = recipe_blocks('Add a storage backend')
    fork = make_fork(tmp_path / 'fork')
    storage = fork / PACKAGE / 'storage'
    sample = fork / 'tests' / 'support' / 'sample_backend.py'
    (storage / 'memory.py').write_text(sample.read_text())
    insert_after(storage / '__init__.py', 'from connect_mongodb_example.storage.dataapi ',
                 import_line)
    insert_after(storage / '__init__.py', '        DataApiEventStore,', registration)

    contract = run_in_fork(fork, '-m', 'pytest', '-q', '-p', 'no:cacheprovider', '--no-cov',
                           'tests/storage/test_backend_contract.py', '-k', 'memory')
    assert '5 passed' in last_line(contract), contract.stdout
    # Its variable documented by regenerating the table (which tests/test_readme.py checks).
    succeeded(run_in_fork(fork, '-m', 'localdev.variables_table', '--write'))
    readme = (fork / 'README.md').read_text()
    assert '| `MEMORY_STORE_NAME` | `events` | no | Name of the in-memory store' in readme
    assert '`sql`, `mongodb`, `dataapi`, `memory`.' in readme


def test_handle_another_event_type(tmp_path, sqlite_url):
    declaration, handler = recipe_blocks('Handle another event type')
    fork = make_fork(tmp_path / 'fork')
    extension = fork / PACKAGE / 'extension.py'
    insert_before(extension, '@variables(', declaration + '\n\n')
    insert_after(extension, '        return await self.store_event(PURCHASE_REQUEST, request)',
                 '\n' + handler)

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
