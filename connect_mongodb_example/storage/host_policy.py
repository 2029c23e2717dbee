"""Which hosts may receive a key over plain http."""
import ipaddress
import socket

LOOPBACK_HOSTS = frozenset({'localhost', '127.0.0.1', '::1'})


def is_private_host(host: str) -> bool:
    """Loopback, or a single-label name (a docker compose or Kubernetes service): names that
    public DNS never resolves, so the unencrypted key stays on the machine or its private
    network. Other IP addresses and dotted names need https."""
    host = host.lower()
    if host in LOOPBACK_HOSTS:
        return True
    try:
        # What the resolver reads as IPv4, however written: 0x08080808 and 8.8.2056 are
        # 8.8.8.8, not service names.
        return ipaddress.IPv4Address(socket.inet_aton(host)).is_loopback
    except OSError:
        pass
    return host.replace('-', '').replace('_', '').isalnum() and not host.isdigit()
