"""Secrets are masked in one place, whatever form a message quotes them in."""
import pytest

from connect_mongodb_example.redaction import Redactor, redact_url, url_password


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


def test_url_password_is_read_without_parsing():
    assert url_password('mongodb://u:p%40ss@h:1/db') == 'p%40ss'
    assert url_password('mongodb://h:1/db') == ''
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
