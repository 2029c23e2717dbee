"""The README's configuration table is the user's reference: it must match the code."""
import re
from pathlib import Path

from connect_mongodb_example.settings import all_variables

README = Path(__file__).resolve().parent.parent / 'README.md'
ROW = re.compile(r'^\| `(?P<name>[A-Z0-9_]+)` \| (?P<default>`[^`]*`|) \| (?P<secure>yes|no) \|')


def documented_variables():
    rows = {}
    for line in README.read_text().splitlines():
        match = ROW.match(line)
        if match:
            rows[match['name']] = (match['default'].strip('`'), match['secure'] == 'yes')
    return rows


def test_every_variable_is_documented_with_its_default_and_secure_flag():
    declared = {variable.name: (variable.default, variable.secure) for variable in all_variables()}
    assert documented_variables() == declared
