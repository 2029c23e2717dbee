"""How configuration variables are declared and read.

Every variable is declared once, as a `Variable`, next to the code that uses it. The same
declaration feeds `@variables` (what the Connect portal shows) and `ConfigReader`, which
turns the raw strings of `self.config` into checked values. Every problem is reported as a
`ConfigurationError` that names the variable, and the message never repeats a secure value.
"""
from dataclasses import dataclass
from typing import Dict, Iterable, Mapping, Optional, Tuple
from urllib.parse import urlsplit

from connect_mongodb_example.errors import ConfigurationError
from connect_mongodb_example.redaction import host_part_is_cut, redact_url

_KIND_NAMES = {int: 'a whole number', float: 'a number'}


@dataclass(frozen=True)
class Variable:
    name: str
    description: str
    default: str = ''
    secure: bool = False
    # Older names still accepted, so that installations made from the tutorial keep working.
    aliases: Tuple[str, ...] = ()

    def declaration(self) -> Dict[str, object]:
        """The entry `@variables` expects."""
        return {'name': self.name, 'initial_value': self.default, 'secure': self.secure}


class ConfigReader:
    """Reads typed values from the variables delivered by Connect (`self.config`)."""

    def __init__(self, config: Optional[Mapping[str, object]]):
        self._config = dict(config or {})

    def _lookup(self, var: Variable) -> Tuple[str, str]:
        """The name that was set (the variable's own name wins over an alias) and its value."""
        for name in (var.name, *var.aliases):
            value = self._config.get(name)
            if value is not None and str(value).strip() != '':
                return name, str(value).strip()
        return var.name, ''

    def is_set(self, var: Variable) -> bool:
        return self._lookup(var)[1] != ''

    def text(self, var: Variable, *, required: bool = False) -> str:
        name, value = self._lookup(var)
        if value:
            return value
        if required and not var.default:
            names = ' or '.join((var.name, *var.aliases))
            raise ConfigurationError(name, f'is required; set {names} in the extension settings')
        return var.default

    def integer(self, var: Variable, *, minimum: int, maximum: int) -> int:
        return int(self._number(var, int, minimum, maximum))

    def seconds(self, var: Variable, *, minimum: float, maximum: float) -> float:
        return float(self._number(var, float, minimum, maximum))

    def _number(self, var: Variable, kind: type, minimum: float, maximum: float) -> float:
        raw = self.text(var)
        name = self._lookup(var)[0]
        try:
            value = kind(raw)
        except ValueError:
            raise ConfigurationError(
                name, f'must be {_KIND_NAMES[kind]} between {minimum} and {maximum}, got {raw!r}',
            ) from None
        if not minimum <= value <= maximum:
            raise ConfigurationError(name, f'must be between {minimum} and {maximum}, got {raw}')
        return value

    def choice(self, var: Variable, choices: Iterable[str]) -> str:
        allowed = tuple(choices)
        value = self.text(var).lower()
        if value not in allowed:
            name = self._lookup(var)[0]
            raise ConfigurationError(name, f'must be one of {", ".join(allowed)}, got {value!r}')
        return value

    def names(self, var: Variable, allowed: Iterable[str]) -> Tuple[str, ...]:
        """A comma-separated list of distinct names taken from `allowed`, order kept."""
        known = tuple(allowed)
        name = self._lookup(var)[0]
        chosen = []
        for item in self.text(var).split(','):
            item = item.strip().lower()
            if not item:
                continue
            if item not in known:
                raise ConfigurationError(
                    name, f'unknown name {item!r}; choose from {", ".join(known)}',
                )
            if item not in chosen:
                chosen.append(item)
        if not chosen:
            raise ConfigurationError(name, f'must name at least one of {", ".join(known)}')
        return tuple(chosen)

    def url(self, var: Variable, *, schemes: Iterable[str], required: bool = True) -> str:
        """A URL with one of `schemes` and a host. Secure values are never echoed back."""
        value = self.text(var, required=required)
        if not value:
            return value
        name = self._lookup(var)[0]
        shown = '(value hidden)' if var.secure else repr(redact_url(value))
        try:
            parts = urlsplit(value)
        except ValueError:  # e.g. an unbalanced [ of an IPv6 address
            raise ConfigurationError(name, f'is not a valid URL, got {shown}') from None
        allowed = tuple(schemes)
        if parts.scheme.lower() not in allowed:
            raise ConfigurationError(
                name, f'must be a URL starting with {" or ".join(s + "://" for s in allowed)}, '
                      f'got {shown}',
            )
        if host_part_is_cut(value):
            # Read as written, part of the password would be taken for the host or the path,
            # and shown wherever the host is (libpq, urllib and pymongo all cut it there).
            raise ConfigurationError(
                name, 'has an @ after its host part: percent-encode / ? # @ and : in the user '
                      'name and password (urllib.parse.quote(password, safe="")) and any @ in '
                      f'the path or query (%40), got {shown}',
            )
        try:
            host = parts.hostname
        except ValueError:
            host = None
        if not host:
            raise ConfigurationError(name, f'must include a host name, got {shown}')
        return value

