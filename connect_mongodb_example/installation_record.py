"""What the extension keeps of each installation: its status, and when its events go.

Connect tells the extension of every install and uninstall (`installation_status_change`);
each backend keeps the latest status of each installation beside its events, so that the
data lifecycle job (purges after an uninstall) and the Events page know it.
"""
from dataclasses import dataclass
from datetime import datetime
from typing import Optional

INSTALLED, UNINSTALLED = 'installed', 'uninstalled'
INSTALLATION_STATUSES = (INSTALLED, UNINSTALLED)


@dataclass(frozen=True)
class InstallationRecord:
    """One installation's latest status, as every backend keeps it.

    `changed_at` orders the changes: Connect may deliver a change more than once and out of
    order, and the stored record is always the one that changed last.
    """

    installation_id: str
    #: INSTALLED or UNINSTALLED.
    status: str
    #: When the installation reached `status`, by Connect's clock.
    changed_at: datetime
    #: The account that installed the extension (the installation's `owner`).
    account_id: Optional[str] = None
    environment_id: Optional[str] = None
    #: Set when an uninstall is to be followed by a purge: from then on the installation's
    #: events are deleted. None when nothing is due (installed, or kept after uninstall).
    purge_after: Optional[datetime] = None
    #: When the purge due at `purge_after` finished.
    purged_at: Optional[datetime] = None
