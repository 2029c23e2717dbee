"""The benchmark's Data API server process: its output is read to the end."""
import asyncio
import logging
import sys

from localdev.bench.dataapi import drain

# Far more than a pipe holds (64 KiB on Linux): the writer blocks until it is read.
WRITER = 'import sys\nfor n in range(20000):\n    print(f"line {n:05d} " + "x" * 40)\n'


async def test_drain_reads_a_chatty_process_to_the_end(caplog):
    process = await asyncio.create_subprocess_exec(
        sys.executable, '-c', WRITER, stdout=asyncio.subprocess.PIPE,
    )
    with caplog.at_level(logging.DEBUG, logger='localdev.bench.dataapi'):
        await asyncio.wait_for(drain(process.stdout), 60)

    assert await asyncio.wait_for(process.wait(), 60) == 0
    lines = [record.getMessage() for record in caplog.records]
    assert len(lines) == 20000
    assert lines[-1] == 'Data API server: line 19999 ' + 'x' * 40
