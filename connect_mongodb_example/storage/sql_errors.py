"""Which SQL driver errors mean that DATABASE_URL (or its user's grants) must change.

A wrong password, an unknown user or database, or a missing privilege never passes on its
own, unlike a server that is restarting: the server's answer tells them apart. Errors
raised on an open connection carry the SQLSTATE; at connection time psycopg2 has none
(libpq reports the server's FATAL message only), so the message is matched as well.
"""
import re
from typing import Optional

from connect_mongodb_example.errors import first_line

# 28xxx invalid authorization specification, 3D000 invalid catalog name (no such database).
CONFIGURATION_SQLSTATE_CLASSES = ('28', '3D')
# insufficient privilege (e.g. no CREATE on the schema, no INSERT on the table).
CONFIGURATION_SQLSTATES = frozenset({'42501'})
# What PostgreSQL (in English, its default), libpq and PgBouncer say when connecting fails for
# one of the reasons above. PgBouncer answers a wrong password or an unknown user with "SASL
# authentication failed" (SCRAM) and, without a wildcard database, "no such database: name".
CONFIGURATION_MESSAGES = re.compile(
    r'password authentication failed'
    r'|SASL authentication failed'
    r'|no such (user|database):'
    r'|authentication failed for user'
    r'|(role|database) ".*" does not exist'
    r'|no pg_hba\.conf entry'
    r'|pg_hba\.conf rejects connection'
    r'|no password supplied'
    r'|permission denied'
    r'|must be owner of',
    re.IGNORECASE,
)


def driver_error(error: BaseException) -> BaseException:
    """The psycopg2 error that peewee wrapped (peewee keeps it as `orig`)."""
    return getattr(error, 'orig', None) or error.__cause__ or error.__context__ or error


def configuration_problem(error: BaseException) -> Optional[str]:
    """The server's answer when `error` says the configuration is wrong, else None."""
    cause = driver_error(error)
    code = getattr(cause, 'pgcode', None) or ''
    message = first_line(cause)
    if (code.startswith(CONFIGURATION_SQLSTATE_CLASSES) or code in CONFIGURATION_SQLSTATES
            or CONFIGURATION_MESSAGES.search(str(cause))):
        # libpq prefixes "connection to server at ... failed: FATAL:  "; keep the reason.
        return re.sub(r'\s+', ' ', message.split('FATAL:', 1)[-1]).strip()
    return None
