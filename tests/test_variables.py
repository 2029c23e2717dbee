import pytest

from connect_mongodb_example.errors import ConfigurationError
from connect_mongodb_example.variables import ConfigReader, Variable

SIZE = Variable('POOL_SIZE', 'Connections.', default='8')
NAME = Variable('NAME', 'A name.', aliases=('OLD_NAME',))
SECRET_URL = Variable('SECRET_URL', 'A URL with a password.', secure=True)


def test_default_used_when_unset_or_blank():
    assert ConfigReader({}).integer(SIZE, minimum=1, maximum=10) == 8
    assert ConfigReader({'POOL_SIZE': '  '}).integer(SIZE, minimum=1, maximum=10) == 8


def test_own_name_wins_over_alias():
    assert ConfigReader({'NAME': 'new', 'OLD_NAME': 'old'}).text(NAME) == 'new'
    assert ConfigReader({'OLD_NAME': 'old'}).text(NAME) == 'old'


def test_required_names_the_variable_and_its_aliases():
    with pytest.raises(ConfigurationError, match='NAME: is required; set NAME or OLD_NAME'):
        ConfigReader({}).text(NAME, required=True)


@pytest.mark.parametrize(('raw', 'problem'), [
    ('eight', "must be a whole number between 1 and 10, got 'eight'"),
    ('0', 'must be between 1 and 10, got 0'),
    ('11', 'must be between 1 and 10, got 11'),
])
def test_malformed_numbers_name_the_variable(raw, problem):
    with pytest.raises(ConfigurationError) as error:
        ConfigReader({'POOL_SIZE': raw}).integer(SIZE, minimum=1, maximum=10)
    assert error.value.variable == 'POOL_SIZE'
    assert str(error.value) == f'POOL_SIZE: {problem}'


def test_an_error_names_the_alias_that_was_set():
    with pytest.raises(ConfigurationError, match='^OLD_NAME: must be one of a, b'):
        ConfigReader({'OLD_NAME': 'c'}).choice(NAME, ('a', 'b'))


def test_names_keeps_order_and_drops_repeats():
    reader = ConfigReader({'NAME': 'b, a ,B,,'})
    assert reader.names(NAME, ('a', 'b', 'c')) == ('b', 'a')


def test_names_rejects_unknown_and_empty():
    with pytest.raises(ConfigurationError, match="NAME: unknown name 'x'; choose from a, b"):
        ConfigReader({'NAME': 'a,x'}).names(NAME, ('a', 'b'))
    with pytest.raises(ConfigurationError, match='NAME: must name at least one of a, b'):
        ConfigReader({'NAME': ' , '}).names(NAME, ('a', 'b'))


def test_url_errors_never_echo_a_secure_value():
    reader = ConfigReader({'SECRET_URL': 'ftp://user:hunter2@host/db'})
    with pytest.raises(ConfigurationError) as error:
        reader.url(SECRET_URL, schemes=('postgresql',))
    assert 'hunter2' not in str(error.value)
    assert str(error.value) == (
        'SECRET_URL: must be a URL starting with postgresql://, got (value hidden)'
    )


def test_url_needs_a_host():
    with pytest.raises(ConfigurationError, match='SECRET_URL: must include a host name'):
        ConfigReader({'SECRET_URL': 'postgresql:///db'}).url(SECRET_URL, schemes=('postgresql',))


def test_declaration_is_what_variables_decorator_expects():
    assert SECRET_URL.declaration() == {'name': 'SECRET_URL', 'initial_value': '', 'secure': True}


def test_an_unparsable_url_is_a_configuration_error():
    with pytest.raises(ConfigurationError, match='SECRET_URL: is not a valid URL, got '
                                                 r'\(value hidden\)'):
        ConfigReader({'SECRET_URL': 'postgresql://[db:5432/x'}).url(
            SECRET_URL, schemes=('postgresql',))
