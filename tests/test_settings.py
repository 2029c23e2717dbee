import pytest

from connect_mongodb_example.errors import ConfigurationError
from connect_mongodb_example.settings import (
    Settings,
    all_variables,
    load_settings,
    variable_declarations,
)
from connect_mongodb_example.storage.sql import SqlSettings


def test_no_configuration_means_embedded_sqlite():
    settings = load_settings({})
    assert settings == Settings(
        storage_timeout=10.0,
        retry_countdown=30,
        backend_settings=(('sql', SqlSettings('sqlite:///data/events.sqlite3', 8)),),
    )


def test_none_config_is_the_same_as_empty():
    assert load_settings(None) == load_settings({})


def test_equal_configuration_gives_equal_hashable_settings():
    config = {'DATABASE_URL': 'postgresql://u:p@db/events', 'DATABASE_POOL_SIZE': '4'}
    assert hash(load_settings(config)) == hash(load_settings(dict(config)))


@pytest.mark.parametrize(('config', 'variable'), [
    ({'STORAGE_BACKENDS': 'sql,cassandra'}, 'STORAGE_BACKENDS'),
    ({'STORAGE_TIMEOUT_SECONDS': 'soon'}, 'STORAGE_TIMEOUT_SECONDS'),
    ({'RETRY_COUNTDOWN_SECONDS': '5'}, 'RETRY_COUNTDOWN_SECONDS'),
    ({'DATABASE_URL': 'mysql://db/events'}, 'DATABASE_URL'),
    ({'DATABASE_URL': 'sqlite://events.db'}, 'DATABASE_URL'),
    ({'DATABASE_URL': 'sqlite:///:memory:'}, 'DATABASE_URL'),
    ({'DATABASE_URL': 'postgresql:///events'}, 'DATABASE_URL'),
    ({'DATABASE_URL': 'postgresql://u:p@db:port/events'}, 'DATABASE_URL'),
    ({'DATABASE_URL': 'postgresql://u:p@[db/events'}, 'DATABASE_URL'),
    ({'DATABASE_POOL_SIZE': '0'}, 'DATABASE_POOL_SIZE'),
    ({'STORAGE_IDLE_SECONDS': '-1'}, 'STORAGE_IDLE_SECONDS'),
    ({'STORAGE_IDLE_SECONDS': 'never'}, 'STORAGE_IDLE_SECONDS'),
])
def test_misconfiguration_names_the_variable(config, variable):
    with pytest.raises(ConfigurationError) as error:
        load_settings(config)
    assert error.value.variable == variable
    assert str(error.value).startswith(f'{variable}: ')


def test_sqlite_two_slashes_explains_the_in_memory_trap():
    with pytest.raises(ConfigurationError, match='three slashes'):
        load_settings({'DATABASE_URL': 'sqlite://events.db'})


def test_every_variable_is_declared_once_with_a_string_initial_value():
    declarations = variable_declarations()
    names = [item['name'] for item in declarations]
    assert len(names) == len(set(names))
    assert all(isinstance(item['initial_value'], str) for item in declarations)
    assert {'STORAGE_BACKENDS', 'DATABASE_URL'} <= set(names)


def test_secrets_are_flagged_secure_and_api_key_is_not_reused():
    variables = {variable.name: variable for variable in all_variables()}
    assert variables['DATABASE_URL'].secure
    assert 'API_KEY' not in variables
    assert not any('API_KEY' in variable.aliases for variable in variables.values())
