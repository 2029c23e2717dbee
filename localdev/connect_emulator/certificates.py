"""A throwaway certificate authority, so the runner talks TLS to the emulation unchanged.

The runner only speaks wss:// and https:// to Connect; rather than weaken its checks, the
emulation gets a certificate from a CA made for this run, and the runner is told to trust
that CA (SSL_CERT_FILE for the websocket and httpx, REQUESTS_CA_BUNDLE for requests).
"""
import ssl
from dataclasses import dataclass
from pathlib import Path

import trustme

#: The names the server certificate is valid for: the runner connects to 127.0.0.1.
SERVER_NAMES = ('127.0.0.1', 'localhost')
CA_FILE_NAME = 'connect-emulator-ca.pem'


@dataclass(frozen=True)
class LocalCertificates:
    ca_file: Path
    server_context: ssl.SSLContext
    _ca: trustme.CA

    def client_context(self) -> ssl.SSLContext:
        """A client context trusting only this CA (for tests talking to the emulation)."""
        context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH)
        self._ca.configure_trust(context)
        return context


def create_certificates(directory: Path) -> LocalCertificates:
    """A new CA and server certificate; the CA bundle is written to `directory`."""
    ca = trustme.CA(organization_name='Local Connect emulation')
    server_cert = ca.issue_cert(*SERVER_NAMES)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_cert.configure_cert(context)
    ca_file = Path(directory) / CA_FILE_NAME
    ca.cert_pem.write_to_path(str(ca_file))
    return LocalCertificates(ca_file=ca_file, server_context=context, _ca=ca)
