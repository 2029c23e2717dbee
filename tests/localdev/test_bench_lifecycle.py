"""The data lifecycle benchmark at a small size: the rows it loads are there, the export
returns exactly the stored events, and the purge removes the target installation's events
and no other's. No timing thresholds: the verdicts it prints are not checked."""
import re

import pytest

from localdev.bench import lifecycle, reads_data
from localdev.bench.stored_counts import stored_counts

EVENTS = 900  # three parts of each format: the Link rel="next" is followed
ROW = re.compile(r'^(sqlite|postgresql)\s+(csv|ndjson)\s+(\d+)\s+(\d+)\s+(\d+)\s')


@pytest.fixture(params=['sqlite', pytest.param('postgresql', marks=pytest.mark.postgres)])
def backend_url(request):
    return request.param, request.getfixturevalue(
        'sqlite_url' if request.param == 'sqlite' else 'postgres_url')


async def test_the_export_is_whole_and_the_purge_takes_the_target_only(backend_url):
    backend, url = backend_url

    result = await lifecycle.bench_backend(backend, url, EVENTS, lifecycle.FORMATS,
                                           baseline_seconds=0.3)

    # Loaded: the target's events, and the others' interleaved (none empty).
    assert result.before[lifecycle.TARGET] == EVENTS
    others_loaded = reads_data.total_rows(EVENTS) - EVENTS
    assert sum(result.before[name] for name in lifecycle.OTHERS) == others_loaded
    assert all(result.before[name] for name in lifecycle.OTHERS)
    # Exported: every stored event once, over several parts, in both formats.
    assert [item.walk.format for item in result.exports] == list(lifecycle.FORMATS)
    for item in result.exports:
        assert item.stored == EVENTS
        assert item.walk.rows == item.walk.announced == EVENTS
        assert item.walk.parts > 1
    # Purged: the target holds nothing, by the store's count and row by row; every other
    # installation holds what it held plus what was written meanwhile.
    assert result.counts[lifecycle.TARGET] == (0, 0, 0)
    written = 0
    for name in lifecycle.OTHERS:
        expected, by_store, by_sql = result.counts[name]
        assert expected == by_store == by_sql
        written += expected - result.before[name]
    assert written == len(result.write[0].seconds) + len(result.write[1].seconds) > 0
    assert set(stored_counts(url)) == set(lifecycle.OTHERS)
    assert result.intact
    # The calls were measured on both sides of the comparison.
    assert result.page[0].seconds
    assert result.page[1].seconds
    assert 'purged 1 installation' in result.purge_output


def test_the_quick_run_reports_a_row_per_export_and_call(capsys):
    assert lifecycle.main(['--quick', '--backends', 'sqlite', '--events', '300']) == 0

    out = capsys.readouterr().out
    exports = [ROW.match(line).groups() for line in out.splitlines() if ROW.match(line)]
    assert [(row[0], row[1]) for row in exports] == [('sqlite', 'csv'), ('sqlite', 'ndjson')]
    assert all(row[2] == row[3] == '300' for row in exports)
    assert re.search(r'^sqlite .* page .* (PASS|FAIL)$', out, re.MULTILINE)
    assert re.search(r'^sqlite .* write .* (PASS|FAIL)$', out, re.MULTILINE)
    assert 'holds 0 (store) / 0 (SQL)' in out


def test_the_defaults_are_the_issue_counts():
    options = lifecycle.parse_args([])
    assert options.events == 1_000_000
    assert reads_data.total_rows(options.events) == 1_500_000
    assert options.formats == ['csv', 'ndjson']
    assert options.backends == ['sqlite', 'postgresql']
    assert lifecycle.parse_args(['--quick']).events == lifecycle.QUICK_EVENTS
