"""A running emulation (TLS on 127.0.0.1) and an HTTPS client that trusts it."""
from typing import AsyncIterator

import httpx
import pytest

from localdev.connect_emulator import ConnectEmulator
from localdev.connect_emulator.server import RUNNER_API_KEY


@pytest.fixture
async def emulator() -> AsyncIterator[ConnectEmulator]:
    async with ConnectEmulator(variables={'DATABASE_URL': 'sqlite:////tmp/unused.sqlite3'}) as em:
        yield em


@pytest.fixture
async def api(emulator) -> AsyncIterator[httpx.AsyncClient]:
    """A client of the emulated REST API, as the runner authenticates."""
    async with httpx.AsyncClient(
        base_url=f'https://{emulator.address}/public/v1',
        verify=emulator.certificates.client_context(),
        headers={'Authorization': RUNNER_API_KEY},
        trust_env=False,
    ) as client:
        yield client
