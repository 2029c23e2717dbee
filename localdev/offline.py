"""The real runner against the Connect emulation, ready to take events.

    async with offline_runner(variables=..., cwd=REPO_ROOT, log_path=...) as emulator:
        deliveries = await emulator.deliver_all(events)

On exit the runner is stopped (its whole process group) and then the emulation.
"""
import asyncio
from contextlib import asynccontextmanager
from pathlib import Path
from typing import AsyncIterator, Mapping, Optional

from localdev.connect_emulator import ConnectEmulator
from localdev.runner_process import RunnerExited, RunnerProcess

REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_READY_TIMEOUT = 60.0


class RunnerNotReady(TimeoutError):
    """The runner did not complete its setup in time."""


@asynccontextmanager
async def offline_runner(
    *,
    variables: Optional[Mapping[str, str]] = None,
    log_path: Path,
    cwd: Path = REPO_ROOT,
    ready_timeout: float = DEFAULT_READY_TIMEOUT,
    debug: bool = False,
) -> AsyncIterator[ConnectEmulator]:
    async with ConnectEmulator(
        variables=variables, log_level='DEBUG' if debug else 'INFO',
    ) as emulator:
        runner = RunnerProcess(
            env=emulator.runner_environment(), cwd=cwd, log_path=log_path, debug=debug,
        )
        await runner.start()
        try:
            await wait_until_ready(emulator, runner, ready_timeout)
            yield emulator
        finally:
            await runner.stop()


async def wait_until_ready(
    emulator: ConnectEmulator, runner: RunnerProcess, timeout: float,
) -> None:
    """Until the runner has completed its setup; fail at once if it exits instead."""
    ready = asyncio.ensure_future(emulator.wait_ready())
    exited = asyncio.ensure_future(runner.wait())
    try:
        done, _ = await asyncio.wait(
            {ready, exited}, timeout=timeout, return_when=asyncio.FIRST_COMPLETED,
        )
    finally:
        ready.cancel()
        exited.cancel()
    if ready in done:
        return
    if exited in done:
        raise RunnerExited(
            f'the runner exited with code {exited.result()} before it was ready; '
            f'see {runner.log_path}',
        )
    raise RunnerNotReady(
        f'the runner was not set up within {timeout:g}s; see {runner.log_path}',
    )
