"""A password pasted into a URL without percent-encoding never shows: not in the storage
view, not in a 503 body, not in a log line.

An unencoded / ? or # ends the host part early (urllib, libpq and pymongo all read the rest
of the password as the host or the path), so such URLs are refused, naming the variable; an
unencoded @ alone is read as meant (urllib splits at the last @) and masked whole.
"""
import logging

import pytest
from connect.eaas.core.testing.testclient import WebAppTestClient

from connect_mongodb_example.errors import ConfigurationError
from connect_mongodb_example.settings import load_settings
from connect_mongodb_example.storage.dataapi import DataApiEventStore
from connect_mongodb_example.storage.mongodb import MongoEventStore
from connect_mongodb_example.storage.registry import close_all
from connect_mongodb_example.storage.sql import SqlEventStore
from connect_mongodb_example.variables import ConfigReader
from connect_mongodb_example.webapp import EventsWebApplication

INSTALLATION = {'id': 'EIN-1111-1111-1111'}
# Every piece of the passwords below that a wrong cut could show.
PASSWORD_PIECES = ('Raw', 'Pw', 'Tok9x', 'Qm', 'Hash7')
CUT = [
    ('sql', 'DATABASE_URL', 'postgresql://postgres:Raw@Pw/Tok9x@127.0.0.1:1/db'),
    ('sql', 'DATABASE_URL', 'postgresql://postgres:Raw?Qm@127.0.0.1:1/db'),
    ('sql', 'DATABASE_URL', 'postgresql://postgres:Raw#Hash7@127.0.0.1:1/db'),
    ('mongodb', 'MONGODB_URI', 'mongodb://reader:Raw@Pw/Tok9x@127.0.0.1:1/?authSource=admin'),
    ('mongodb', 'MONGODB_URI', 'mongodb+srv://reader:Raw/Tok9x@cluster0.example.net/'),
    ('dataapi', 'DATA_API_URL', 'https://ops:Raw/Tok9x@dataapi.example.net/'),
]
STORES = {'sql': SqlEventStore, 'mongodb': MongoEventStore, 'dataapi': DataApiEventStore}
# Until the storage branches implement the lifecycle methods, their stores cannot be made.


def shows_password(text: str) -> list:
    return [piece for piece in PASSWORD_PIECES if piece in text]


@pytest.mark.parametrize(('backend', 'variable', 'url'), CUT)
def test_a_url_cut_by_an_unencoded_character_is_refused_naming_the_variable(
    backend, variable, url,
):
    config = {variable: url, 'DATA_API_KEY': 'k'}
    with pytest.raises(ConfigurationError) as caught:
        STORES[backend].parse_settings(ConfigReader(config))
    assert caught.value.variable == variable
    assert 'percent-encode' in str(caught.value)
    assert shows_password(str(caught.value)) == []


@pytest.mark.parametrize(('backend', 'variable', 'url'), CUT)
def test_the_whole_configuration_is_refused_without_the_password(backend, variable, url):
    config = {'STORAGE_BACKENDS': backend, variable: url, 'DATA_API_KEY': 'k'}
    with pytest.raises(ConfigurationError) as caught:
        load_settings(config)
    assert str(caught.value).startswith(f'{variable}: has an @ after its host part')
    assert shows_password(str(caught.value)) == []


def test_a_url_that_is_not_secure_is_quoted_masked():
    """DATA_API_URL is not a secure variable, so its refusals quote it: never its password."""
    with pytest.raises(ConfigurationError) as caught:
        DataApiEventStore.parse_settings(ConfigReader(
            {'DATA_API_URL': 'ftp://ops:Raw/Tok9x@dataapi.example.net/', 'DATA_API_KEY': 'k'}))
    assert str(caught.value) == ("DATA_API_URL: must be a URL starting with https:// or "
                                 "http://, got 'ftp://ops:***@dataapi.example.net/'")


def test_an_unencoded_at_alone_is_read_as_meant():
    settings = SqlEventStore.parse_settings(ConfigReader(
        {'DATABASE_URL': 'postgresql://postgres:Raw@Pw@127.0.0.1:1/db'}))
    assert settings.url == 'postgresql://postgres:Raw@Pw@127.0.0.1:1/db'


def test_an_at_written_as_percent_40_in_a_query_is_accepted():
    settings = SqlEventStore.parse_settings(ConfigReader(
        {'DATABASE_URL': 'postgresql://app:pw@127.0.0.1:1/db?application_name=me%40corp'}))
    assert settings.url.endswith('me%40corp')


# -- the web application (stores must be concrete: runs once the storage branches merged) --

def web_get(config: dict, *paths: str) -> list:
    with WebAppTestClient(EventsWebApplication) as client:
        try:
            return [client.get(path, installation=INSTALLATION, config=config)
                    for path in paths]
        finally:
            client.portal.call(close_all)


def test_the_web_app_shows_a_store_with_an_unencoded_at_without_its_password(caplog):
    """PostgreSQL on a port nothing listens on: the storage view and a 503 name the host,
    and no piece of the password."""
    caplog.set_level(logging.DEBUG)
    config = {'STORAGE_BACKENDS': 'sql',
              'DATABASE_URL': 'postgresql://postgres:Raw@Pw@127.0.0.1:1/db'}
    storage, events = web_get(config, '/api/storage', '/api/events')
    [backend] = storage.json()['backends']
    assert backend['description'] == 'sql (postgresql://postgres:***@127.0.0.1:1/db)'
    assert backend['reachable'] is False
    assert events.status_code == 503
    assert 'sql (postgresql://postgres:***@127.0.0.1:1/db)' in events.json()['detail']
    warnings = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert any('postgresql://postgres:***@127.0.0.1:1/db' in line for line in warnings)
    assert shows_password(storage.text + events.text + caplog.text) == []


def test_the_web_app_refuses_a_cut_url_without_its_password(caplog):
    caplog.set_level(logging.DEBUG)
    config = {'STORAGE_BACKENDS': 'sql',
              'DATABASE_URL': 'postgresql://postgres:Raw@Pw/Tok9x@127.0.0.1:1/db'}
    responses = web_get(config, '/api/storage', '/api/events')
    for response in responses:
        assert response.status_code == 503
        assert response.json()['detail'].startswith(
            'configuration problem: DATABASE_URL: has an @ after its host part')
    assert shows_password(''.join(r.text for r in responses) + caplog.text) == []
