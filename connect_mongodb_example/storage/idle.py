"""How long a storage connection may rest unused before it is closed, one setting for every
backend: the SQL pool, the MongoDB driver's pool and the Data API's keep-alive connections.

Each runner has several processes (background, interactive and webapp workers) and Connect
may run several runners: connections kept for the life of a process would add up to
instances x processes x pool size even while no event comes. Closing the resting ones lets
the count follow the load; a connection is reopened on demand.
"""
from connect_mongodb_example.variables import ConfigReader, Variable

STORAGE_IDLE_SECONDS = Variable(
    'STORAGE_IDLE_SECONDS',
    'Seconds a storage connection may rest unused before it is closed (SQL and MongoDB pools, '
    'Data API keep-alive), 0 to 86400; 0 keeps them open for the life of the process.',
    default='30',
)


def idle_seconds(reader: ConfigReader) -> float:
    """`STORAGE_IDLE_SECONDS`, checked; 0 means connections are never closed for resting."""
    return reader.seconds(STORAGE_IDLE_SECONDS, minimum=0, maximum=86400)
