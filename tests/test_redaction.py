"""Secrets are masked in one place, whatever form a message quotes them in."""
import pytest

from connect_mongodb_example.redaction import (
    Redactor,
    host_part_is_cut,
    redact_url,
    url_password,
)


@pytest.mark.parametrize(('url', 'shown'), [
    ('postgresql://app:s3cr:et@db:5432/events', 'postgresql://app:***@db:5432/events'),
    ('postgresql://db:5432/events', 'postgresql://db:5432/events'),
    ('mongodb+srv://u:p%40ss@cluster0.example.net/', 'mongodb+srv://u:***@cluster0.example.net/'),
    ('sqlite:////var/lib/events.sqlite3', 'sqlite:////var/lib/events.sqlite3'),
    ('postgresql://app@db/events?password=hunter2&sslmode=require',
     'postgresql://app@db/events?password=***&sslmode=***'),
])
def test_redact_url_hides_passwords(url, shown):
    assert redact_url(url) == shown


# Passwords pasted as generated, not percent-encoded: the user part runs to the last @.
UNENCODED = [
    # (url, shown, what redact_url masks (url_password), the host part is cut)
    ('postgresql://postgres:Raw@Pw/Tok9x@127.0.0.1:1/db',
     'postgresql://postgres:***@127.0.0.1:1/db', 'Raw@Pw/Tok9x', True),
    ('postgresql://u:p@ss@db:5432/events', 'postgresql://u:***@db:5432/events', 'p@ss', False),
    ('postgresql://u:a/b@db/events', 'postgresql://u:***@db/events', 'a/b', True),
    ('postgresql://u:pa:ss:w@db/events', 'postgresql://u:***@db/events', 'pa:ss:w', False),
    # Past a ? or #, the last @ may be in a query value: nothing after it is shown.
    ('postgresql://u:ab?c@db/events', 'postgresql://***', 'ab?c', True),
    ('postgresql://u:ab#c@db/events', 'postgresql://***', 'ab#c', True),
    ('mongodb://u:pw@db/?appName=me@corp', 'mongodb://***', 'pw@db/?appName=me', True),
    ('postgresql://db/events?password=ab@cd', 'postgresql://***', 'db/events?password=ab', True),
    # The user name itself is cut: masked with the rest.
    ('postgresql://u/x:pw@db/events', 'postgresql://***@db/events', 'u/x:pw', True),
    # An @ in a user name (Azure's user@server) is not a secret.
    ('postgresql://adm@srv:pw@db/events', 'postgresql://adm@srv:***@db/events', 'pw', False),
]


@pytest.mark.parametrize(('url', 'shown', 'masked', 'cut'), UNENCODED)
def test_unencoded_passwords_are_masked_up_to_the_last_at(url, shown, masked, cut):
    assert redact_url(url) == shown
    assert url_password(url) == masked
    assert host_part_is_cut(url) is cut


@pytest.mark.parametrize(('url', 'shown'), [
    ('postgresql://u:pw@[::1]:5432/events', 'postgresql://u:***@[::1]:5432/events'),
    ('postgresql://u:p/w@[fe80::1%25eth0]:5432/db', 'postgresql://u:***@[fe80::1%25eth0]:5432/db'),
    ('postgresql://[::1]:5432/events', 'postgresql://[::1]:5432/events'),
    ('postgresql://app@db/events', 'postgresql://app@db/events'),
    ('postgresql://app:@db/events', 'postgresql://app@db/events'),
    ('sqlite:///data/events.sqlite3', 'sqlite:///data/events.sqlite3'),
    ('sqlite:////var/lib/me@home/events.sqlite3', 'sqlite:////var/lib/me@home/events.sqlite3'),
    ('postgresql://u:pw@db/events#anchor', 'postgresql://u:***@db/events#***'),
    ('postgresql://u:pw@db/events?hunter2', 'postgresql://u:***@db/events?***'),
    ('u:pw@db:5432/events', 'u:***@db:5432/events'),  # no scheme: still masked
    ('not a url', 'not a url'),
    ('http://[::1', 'http://[::1'),  # what urlsplit refuses is still shown, never raised
])
def test_ipv6_hosts_missing_users_and_paths(url, shown):
    assert redact_url(url) == shown


def test_only_an_at_after_the_host_part_cuts_it():
    assert not host_part_is_cut('postgresql://u:p%2Fw%40x@db/events?sslmode=require')
    assert not host_part_is_cut('sqlite:///data/events.sqlite3')
    assert host_part_is_cut('postgresql://db/events?application_name=me@corp')


def test_url_password_is_read_without_parsing():
    assert url_password('mongodb://u:p%40ss@h:1/db') == 'p%40ss'
    assert url_password('mongodb://h:1/db') == ''
    assert url_password('mongodb://user@h:1/db') == ''
    assert url_password('not a url') == ''


@pytest.mark.parametrize('quoted', [
    'key\\with"quote',  # as given
    'key\\\\with"quote',  # as a str or bytes repr escapes the backslash
])
def test_redactor_masks_a_secret_however_it_is_quoted(quoted):
    redact = Redactor('key\\with"quote')
    assert redact(f'error: {quoted}!') == 'error: ***!'


def test_redactor_masks_url_decoded_passwords_and_ignores_empty_ones():
    redact = Redactor('mongodb://u:p%40ss@h/', 'p%40ss', '')
    assert redact('auth failed for p@ss at mongodb://u:p%40ss@h/') == 'auth failed for *** at ***'
    assert redact('nothing secret') == 'nothing secret'
