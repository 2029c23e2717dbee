"""The data lifecycle job run by real OS processes on a real database (an SQLite file,
PostgreSQL, MongoDB): two at once, or one SIGKILLed midway and run again, leave what one clean
run leaves. Nothing of the job's progress lives outside the stores."""
import uuid
from typing import Dict, Iterator

import pytest
from connect.eaas.core.enums import ResultType
from pymongo import MongoClient

from tests.support.lifecycle_processes import (
    LIFECYCLE,
    assert_like_one_clean_run,
    finish,
    kill_at_batch,
    prepare,
    start_job,
    start_together,
)


@pytest.fixture(params=[
    'sqlite',
    pytest.param('postgresql', marks=pytest.mark.postgres),
    pytest.param('mongodb', marks=pytest.mark.mongodb),
])
def job_config(request) -> Iterator[Dict[str, str]]:
    """The variables of a database the processes share, with the lifecycle settings."""
    if request.param == 'sqlite':
        yield {'DATABASE_URL': request.getfixturevalue('sqlite_url'), **LIFECYCLE}
    elif request.param == 'postgresql':
        yield {'DATABASE_URL': request.getfixturevalue('postgres_url'), **LIFECYCLE}
    else:
        server = request.getfixturevalue('mongodb_server')
        collection = f'lifecycle_{uuid.uuid4().hex[:12]}'
        yield {'STORAGE_BACKENDS': 'mongodb', 'MONGODB_URI': server.uri,
               'MONGODB_DATABASE': 'connect_events_tests', 'MONGODB_COLLECTION': collection,
               **LIFECYCLE}
        with MongoClient(server.admin_uri) as admin:
            database = admin['connect_events_tests']
            for name in database.list_collection_names():
                if name.startswith(collection):
                    database.drop_collection(name)


async def test_one_clean_run(job_config, logger, report):
    expected = await prepare(job_config, logger)
    status, output, purged, retained = finish(start_job(job_config))
    assert status == ResultType.SUCCESS, output
    assert (purged, retained) == (expected.purge_deleted, expected.retention_deleted)
    await assert_like_one_clean_run(job_config, expected)
    report(purge_deleted=purged, retention_deleted=retained)


async def test_two_runs_at_once_share_the_deletes(job_config, logger, report):
    expected = await prepare(job_config, logger)
    jobs = [start_job(job_config, pause=0.01, wait=True) for _ in range(2)]
    start_together(jobs)
    results = [finish(job) for job in jobs]
    assert [status for status, *_ in results] == [ResultType.SUCCESS] * 2, results
    # Each counts only what it deleted: together, every event once.
    assert sum(purged for _, _, purged, _ in results) == expected.purge_deleted
    assert sum(retained for *_, retained in results) == expected.retention_deleted
    await assert_like_one_clean_run(job_config, expected)
    report(**{f'run{n}_deleted': purged + retained
              for n, (_, _, purged, retained) in enumerate(results)})


@pytest.mark.parametrize(('batch', 'pause'), [
    pytest.param(3, 0.0, id='killed-in-the-purge'),
    pytest.param(14, 0.005, id='killed-in-the-retention'),
])
async def test_a_run_killed_midway_is_finished_by_the_next(
    job_config, logger, report, batch, pause,
):
    expected = await prepare(job_config, logger)
    announced = kill_at_batch(start_job(job_config, pause=pause), batch)
    status, output, purged, retained = finish(start_job(job_config))
    assert status == ResultType.SUCCESS, output
    # The killed run deleted at most the batches it announced; the next one the rest.
    total = expected.purge_deleted + expected.retention_deleted
    assert total - 4 * announced <= purged + retained < total
    await assert_like_one_clean_run(job_config, expected)
    report(killed_after_batches=announced, deleted_by_the_next_run=purged + retained)
