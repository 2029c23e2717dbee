"""The connections benchmark: how it tells which process holds a connection, and a small run
through a real runner (structure and outcomes only, never timing)."""
import os
import re
import socket
from contextlib import closing

import pytest

from localdev.bench import connections as bench_connections

#: `  0        1    0 (none)    3 (bg 1, web 2)    3 (bg 1, web 2)    6.7   12   0`
ROW = re.compile(r'^\s*([\d.]+)\s+(\d+)\s+(\d+) \(([^)]*)\)\s+(\d+) \(([^)]*)\)\s+'
                 r'(\d+) \(([^)]*)\)\s+([\d.]+)\s+(\d+)\s+(\d+)$')


def test_the_sockets_a_process_holds_to_a_port_are_counted():
    with closing(socket.socket()) as server:
        server.bind(('127.0.0.1', 0))
        server.listen()
        port = server.getsockname()[1]
        clients = [socket.create_connection(('127.0.0.1', port)) for _ in range(3)]
        accepted = [server.accept()[0] for _ in clients]
        try:
            inodes = bench_connections.socket_inodes(port)
            # The client ends only (their remote port is the server's): this process's three.
            assert len(inodes) == 3
            assert bench_connections.sockets_held(os.getpid(), inodes) == 3
            assert bench_connections.sockets_held(os.getppid(), inodes) == 0
        finally:
            for end in clients + accepted:
                end.close()


@pytest.mark.e2e
@pytest.mark.postgres
@pytest.mark.timeout(280)
def test_a_quiet_runner_holds_no_connection_unless_told_to_keep_them(capsys):
    assert bench_connections.main([
        '--instances', '1', '--idle', '0,1', '--load-seconds', '2', '--in-flight', '2',
    ]) == 0

    out = capsys.readouterr().out
    assert out.startswith('Machine: ')
    rows = [ROW.match(line).groups() for line in out.splitlines() if ROW.match(line)]
    assert [(float(r[0]), int(r[1])) for r in rows] == [(0, 1), (1, 1)]
    kept, closed = rows
    for row in rows:
        assert row[2] == '0'  # the start-up check's connection is closed in both
        assert int(row[4]) >= 1  # events were stored, and the Events page read
        assert 'bg ' in row[5]
        assert 'web ' in row[5]
        assert float(row[8]) > 0  # events per second
        assert int(row[9]) > 0  # reads
        assert row[10] == '0'  # nothing failed
    assert int(kept[6]) >= 1  # kept for the life of the process
    assert (closed[6], closed[7]) == ('0', 'none')
