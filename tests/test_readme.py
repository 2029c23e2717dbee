"""The README's configuration table is the user's reference: it is generated from the
variables' declarations (localdev/variables_table.py) and must match them."""
from connect_mongodb_example.settings import all_variables
from localdev.variables_table import README, documented, row, table


def test_the_variables_table_is_the_one_generated_from_the_declarations():
    assert documented(README.read_text()) == table(), (
        'README.md is out of date: run python -m localdev.variables_table --write')


def test_a_row_shows_default_secure_flag_description_and_aliases():
    by_name = {variable.name: variable for variable in all_variables()}
    assert row(by_name['MONGODB_DATABASE']) == (
        '| `MONGODB_DATABASE` | `connect_events` | no | Database of the events '
        '(tutorial alias `DB`). |')
    assert row(by_name['DATABASE_URL']).startswith(
        '| `DATABASE_URL` | `sqlite:///data/events.sqlite3` | yes | SQL database')
