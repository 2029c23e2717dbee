"""The real runner against the Connect emulation, ready to take events.

    async with offline_runner(variables=..., cwd=REPO_ROOT, log_path=...) as emulator:
        deliveries = await emulator.deliver_all(events)

On exit the runner is stopped (its whole process group) and then the emulation. With
`instances`, that many runners share the work, as when an extension is scaled out; `env`
adds environment variables of the runners (PYTHONPATH to load another extension).
"""
from contextlib import asynccontextmanager
from pathlib import Path
from typing import AsyncIterator, Mapping, Optional

from localdev.connect_emulator import ConnectEmulator
from localdev.runner_fleet import DEFAULT_READY_TIMEOUT, RunnerFleet, RunnerNotReady

REPO_ROOT = Path(__file__).resolve().parent.parent

__all__ = ['DEFAULT_READY_TIMEOUT', 'REPO_ROOT', 'RunnerNotReady', 'offline_runner']


@asynccontextmanager
async def offline_runner(
    *,
    variables: Optional[Mapping[str, str]] = None,
    log_path: Path,
    cwd: Path = REPO_ROOT,
    ready_timeout: float = DEFAULT_READY_TIMEOUT,
    debug: bool = False,
    instances: int = 1,
    api_latency: float = 0.0,
    env: Optional[Mapping[str, str]] = None,
) -> AsyncIterator[ConnectEmulator]:
    async with ConnectEmulator(
        variables=variables, log_level='DEBUG' if debug else 'INFO', api_latency=api_latency,
    ) as emulator, RunnerFleet(
        emulator, log_path=log_path, cwd=cwd, debug=debug, env=env,
    ) as fleet:
        await fleet.start_all(instances, ready_timeout)
        yield emulator
