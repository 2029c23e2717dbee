"""Several real runners (instances) against one Connect emulation, as when an extension is
scaled out: each its own `cextrun` with its own INSTANCE_ID, started, killed and started
again independently.

    async with RunnerFleet(emulator, log_path=...) as fleet:
        await fleet.start_all(3)
        await fleet.kill('2'); await fleet.start('2')
"""
import asyncio
from pathlib import Path
from typing import Dict, List, Mapping, Optional

from localdev.connect_emulator import ConnectEmulator
from localdev.connect_emulator.protocol import BACKGROUND
from localdev.runner_process import RunnerExited, RunnerProcess

DEFAULT_READY_TIMEOUT = 60.0


class RunnerNotReady(TimeoutError):
    """A runner did not complete its setup in time."""


class RunnerFleet:
    def __init__(
        self,
        emulator: ConnectEmulator,
        *,
        log_path: Path,
        cwd: Path,
        debug: bool = False,
        env: Optional[Mapping[str, str]] = None,
    ):
        self.emulator = emulator
        self.log_path = Path(log_path)
        self.cwd = Path(cwd)
        self.debug = debug
        self.env = dict(env or {})
        #: The running runners by name (the name is the INSTANCE_ID's suffix).
        self.runners: Dict[str, RunnerProcess] = {}

    def instance_id(self, name: str) -> str:
        return self.emulator.runner_environment(name)['INSTANCE_ID']

    async def start(self, name: str, ready_timeout: float = DEFAULT_READY_TIMEOUT) -> RunnerProcess:
        """Start runner `name`; return once its background worker is set up."""
        if name in self.runners:
            raise ValueError(f'runner {name} is already running')
        runner = RunnerProcess(
            env={**self.emulator.runner_environment(name), **self.env},
            cwd=self.cwd, log_path=self.log_path, debug=self.debug,
        )
        await runner.start()
        self.runners[name] = runner
        await self._until_ready(name, runner, ready_timeout)
        return runner

    async def start_all(
        self, count: int, ready_timeout: float = DEFAULT_READY_TIMEOUT,
    ) -> List[RunnerProcess]:
        """Start those of runners '1' .. 'count' not running yet, together (their start-ups
        overlap); all of them, the ones already running included."""
        starts = [asyncio.ensure_future(self.start(str(number), ready_timeout))
                  for number in range(1, count + 1) if str(number) not in self.runners]
        try:
            await asyncio.gather(*starts)
            return [self.runners[str(number)] for number in range(1, count + 1)]
        except BaseException:
            # No start may go on after a failure: the caller stops what is running.
            for start in starts:
                start.cancel()
            await asyncio.gather(*starts, return_exceptions=True)
            raise

    async def kill(self, name: str) -> None:
        """SIGKILL runner `name` and all its processes (see `RunnerProcess.kill`)."""
        await self.runners.pop(name).kill()

    async def stop_all(self) -> None:
        runners = list(self.runners.values())
        self.runners.clear()
        await asyncio.gather(*(runner.stop() for runner in runners))

    async def __aenter__(self) -> 'RunnerFleet':
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.stop_all()

    async def _until_ready(self, name: str, runner: RunnerProcess, timeout: float) -> None:
        """Until the runner's background worker is set up; fail at once if it exits."""
        ready = asyncio.ensure_future(self.emulator.channel.workers.wait_instance(
            BACKGROUND, self.instance_id(name)))
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
                f'runner {name} exited with code {exited.result()} before it was ready; '
                f'see {runner.log_path}',
            )
        raise RunnerNotReady(
            f'runner {name} was not set up within {timeout:g}s; see {runner.log_path}',
        )
