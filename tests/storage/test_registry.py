from connect_mongodb_example.storage.registry import close_all, get_store, in_use, release
from connect_mongodb_example.storage.sql import SqlEventStore, SqlSettings
from tests.support.delivery import open_stores


async def test_equal_settings_share_one_store(tmp_path):
    settings = SqlSettings(f'sqlite:///{tmp_path}/a.sqlite3', 2)
    first = get_store(SqlEventStore, settings)
    assert get_store(SqlEventStore, SqlSettings(settings.url, 2)) is first
    assert open_stores() == [first]


async def test_other_settings_get_another_store(tmp_path):
    first = get_store(SqlEventStore, SqlSettings(f'sqlite:///{tmp_path}/a.sqlite3', 2))
    second = get_store(SqlEventStore, SqlSettings(f'sqlite:///{tmp_path}/b.sqlite3', 2))
    assert first is not second
    assert len(open_stores()) == 2


async def test_close_all_closes_every_store_even_if_one_fails(fake_backend, caplog):
    from tests.support.fake_store import FakeSettings

    broken = get_store(fake_backend, FakeSettings('broken'))
    healthy = get_store(fake_backend, FakeSettings('healthy'))

    async def fail_to_close():
        raise RuntimeError('socket already gone')

    broken.close = fail_to_close
    await close_all()
    assert healthy.closed
    assert open_stores() == []
    assert 'Could not close the fake store' in caplog.text


async def test_release_closes_the_stores_but_keeps_them_and_spares_a_write(fake_backend):
    from tests.support.fake_store import FakeSettings

    idle = get_store(fake_backend, FakeSettings('idle'), owner='EIN-1')
    busy = get_store(fake_backend, FakeSettings('busy'), owner='EIN-2')
    other = get_store(fake_backend, FakeSettings('other'), owner='EIN-3')
    async with in_use([busy]):
        await release([idle, busy])
        assert not busy.closed  # a write is using it
    assert idle.closed
    assert not other.closed  # not asked for
    # Still the process's stores: the next use reconnects them.
    assert get_store(fake_backend, FakeSettings('idle'), owner='EIN-1') is idle
    assert len(open_stores()) == 3
