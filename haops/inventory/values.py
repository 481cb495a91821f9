"""Validators for every value that can reach a config file.

Each takes the raw YAML value and returns the clean value, or raises ValueError with a
message that says what is allowed. Anything that could smuggle a directive into a
config (newline, ';', '{', '}', '#', quotes, stray whitespace) fails a pattern here.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable
from typing import Any, TypeVar

NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_-]{0,31}$")
HOSTNAME = re.compile(r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$")
DNS_LABEL = re.compile(r"^[a-z0-9_]([a-z0-9-]{0,61}[a-z0-9])?$")
HTTP_PATH = re.compile(r"^/[A-Za-z0-9._~/%-]{0,200}$")
T = TypeVar("T")
AnyAddress = TypeVar("AnyAddress", bound=ipaddress.IPv4Address | ipaddress.IPv6Address)
TOKEN = re.compile(r"^[A-Za-z][A-Za-z0-9-]{0,63}$")
COOKIE = re.compile(r"^[A-Za-z][A-Za-z0-9_]{0,63}$")
# No '$' (variable expansion in keepalived and nginx), no '!' or '#' (comments), no quotes.
SECRET = re.compile(r"^[A-Za-z0-9*+,./:=?@^_~-]{1,128}$")
USER = re.compile(r"^[A-Za-z0-9._-]{1,32}$")
DEVICE = re.compile(r"^/dev(/(?!\.\.?(/|$))[A-Za-z0-9_.-]+)+$")  # no '.' or '..' segments
LAB_NAME = re.compile(r"^[a-z][a-z0-9-]{0,11}$")  # it names interfaces: at most 15 characters
INTERFACE = re.compile(r"^[A-Za-z0-9_.-]{1,15}$")
DURATION = re.compile(r"^(\d{1,9})(ms|s|m|h)$")
UNIT_MS = {"ms": 1, "s": 1000, "m": 60_000, "h": 3_600_000}


def _text(value: Any, what: str) -> str:
    if not isinstance(value, str):
        raise ValueError(f"must be {what}, got {show(value)}")
    return value


def show(value: Any) -> str:
    """A value as an error message quotes it: short, and plain about YAML's surprises."""
    if isinstance(value, bool):
        return "true/false (write it in quotes if you meant text)"
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    if value is None:
        return "nothing"
    shown = repr(value)
    return shown if len(shown) <= 60 else shown[:57] + "..."


def matching(pattern: re.Pattern[str], what: str) -> Any:
    """A validator for text that must match `pattern`; `what` describes it to the user."""

    def check(value: Any) -> str:
        text = _text(value, what)
        if not pattern.fullmatch(text):
            raise ValueError(f"must be {what}, got {show(value)}")
        return text

    return check


name = matching(NAME, "a name: a letter, then up to 31 letters, digits, '_' or '-'")
hostname = matching(HOSTNAME, "a host name: lowercase letters, digits and '-', up to 63")
http_path = matching(HTTP_PATH, "a URL path starting with '/' (letters, digits, . _ ~ / % -)")
header = matching(TOKEN, "an HTTP header name (letters, digits, '-')")
cookie = matching(COOKIE, "a cookie name (a letter, then letters, digits or '_')")
secret = matching(SECRET, "1-128 of: letters, digits and * + , . / : = ? @ ^ _ ~ -")
user = matching(USER, "a user name (letters, digits, '.', '_', '-')")
device = matching(DEVICE, "a device path under /dev")
lab_name = matching(LAB_NAME, "a lab name: a lowercase letter, then up to 11 letters, digits or '-'")
interface = matching(INTERFACE, "an interface name (up to 15 letters, digits, '.', '_', '-')")


def ssh_host(value: Any) -> str:
    """An IPv4 or IPv6 address or a DNS name to connect to."""
    text = _text(value, "an IP address or host name")
    if ":" in text:
        return str(ipv6(text))
    labels = text.split(".")
    if len(text) > 253 or not all(HOSTNAME.fullmatch(label.lower()) for label in labels):
        raise ValueError(f"must be an IP address or host name, got {show(value)}")
    return text


def local_path(value: Any) -> str:
    """A file on this machine (an SSH key): no control characters."""
    text = _text(value, "a file path")
    if not text or len(text) > 4096 or any(ord(c) < 32 for c in text):
        raise ValueError(f"must be a file path, got {show(value)}")
    return text


def parsed_as(what: str, parse: Callable[[str], T]) -> Callable[[Any], T]:
    """A check that `parse` accepts the text; its error says what was wanted."""
    def check(value: Any) -> T:
        text = _text(value, what)
        try:
            return parse(text)
        except ValueError:
            raise ValueError(f"must be {what}, got {show(value)}") from None

    return check


def _unscoped(address: AnyAddress) -> AnyAddress:
    """No '%zone' suffix: it names an interface, is free text to ipaddress, and belongs in no config."""
    if getattr(address, "scope_id", None) is not None:
        raise ValueError("scoped address")
    return address


ipv4 = parsed_as("an IPv4 address such as 10.213.0.11", ipaddress.IPv4Address)
# IPv6 in quotes: YAML may read some as numbers.
ip_address = parsed_as("an IPv4 or IPv6 address such as 10.213.0.11 or 'fd00:213::11'",
                       lambda text: _unscoped(ipaddress.ip_address(text)))
ipv6 = parsed_as("an IPv6 address such as 'fd00:213::11'", lambda text: _unscoped(ipaddress.IPv6Address(text)))
ipv6_network = parsed_as("an IPv6 network such as 'fd00:213:0:7::/64'", ipaddress.IPv6Network)
ipv4_network = parsed_as("an IPv4 network such as 10.213.0.0/24", ipaddress.IPv4Network)


def integer(low: int, high: int) -> Any:
    def check(value: Any) -> int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ValueError(f"must be a whole number from {low} to {high}, got {show(value)}")
        if not low <= value <= high:
            raise ValueError(f"must be from {low} to {high}, got {value}")
        return value

    return check


port = integer(1, 65535)
weight = integer(1, 100)


def boolean(value: Any) -> bool:
    if not isinstance(value, bool):
        raise ValueError(f"must be true or false, got {show(value)}")
    return value


def duration_ms(value: Any) -> int:
    """'500ms', '2s', '1m', '1h' or a bare number of seconds -> milliseconds."""
    if isinstance(value, int) and not isinstance(value, bool):
        milliseconds = value * 1000
    else:
        match = DURATION.fullmatch(_text(value, "a duration such as 500ms, 2s or 1m"))
        if not match:
            raise ValueError(f"must be a duration such as 500ms, 2s or 1m, got {show(value)}")
        milliseconds = int(match.group(1)) * UNIT_MS[match.group(2)]
    if not 1 <= milliseconds <= 86_400_000:
        raise ValueError(f"must be between 1ms and 24h, got {show(value)}")
    return milliseconds


def one_of(*choices: str) -> Any:
    def check(value: Any) -> str:
        if not isinstance(value, str) or value not in choices:
            raise ValueError(f"must be one of {', '.join(choices)}; got {show(value)}")
        return value

    return check


DRBD_VERSIONS = ("9", "8.4")


def drbd_version(value: Any) -> str:
    """9 or "9" (the default), or "8.4"; YAML reads a bare 8.4 as a number, which is taken too."""
    text = str(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else value
    if text not in DRBD_VERSIONS:
        raise ValueError(f'must be 9 (DRBD 9) or "8.4" (the DRBD module in stock Linux kernels); got {show(value)}')
    return str(text)


def zone_name(value: Any) -> str:
    text = _text(value, "a DNS zone name such as example.test").rstrip(".").lower()
    labels = text.split(".")
    if len(text) > 253 or len(labels) < 2 or not all(DNS_LABEL.fullmatch(label) for label in labels):
        raise ValueError(f"must be a DNS zone name such as example.test, got {show(value)}")
    return text


def record_name(value: Any) -> str:
    """A name relative to its zone: '@' for the apex, or dot-separated labels."""
    text = _text(value, "a record name such as www or '@'").lower()
    if text == "@":
        return text
    if len(text) > 200 or not all(DNS_LABEL.fullmatch(label) for label in text.split(".")):
        raise ValueError(f"must be a record name such as www, a.b or '@', got {show(value)}")
    return text


def seconds(value: Any) -> int:
    milliseconds = duration_ms(value)
    if milliseconds % 1000:
        raise ValueError(f"must be whole seconds, got {value!r}")
    return milliseconds // 1000


def ipv4_networks(value: Any) -> list[Any]:
    items = value if isinstance(value, list) else [value]
    return [ipv4_network(item) for item in items]


def ip_networks(value: Any) -> list[Any]:
    """IPv4 or IPv6 networks, one or a list."""
    items = value if isinstance(value, list) else [value]
    return [ipv6_network(item) if isinstance(item, str) and ":" in item else ipv4_network(item) for item in items]


def process_name(value: Any) -> str:
    """A process name as `killall` and `pidof` take it."""
    return matching(re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,14}$"), "a process name such as haproxy")(value)


SIZE = re.compile(r"^(\d{1,7})(M|G)$")


def size_mib(value: Any) -> int:
    """A size as MiB: a whole number of MiB, or text such as 512M or 2G."""
    if isinstance(value, int) and not isinstance(value, bool):
        mib = value
    else:
        match = SIZE.fullmatch(_text(value, "a size in MiB, or text such as 512M or 2G"))
        if not match:
            raise ValueError(f"must be a size such as 512M or 2G, got {show(value)}")
        mib = int(match.group(1)) * (1024 if match.group(2) == "G" else 1)
    if not 1 <= mib <= 4 * 1024 * 1024:
        raise ValueError(f"must be 1 MiB to 4 TiB, got {mib} MiB")
    return mib


def vm_spec(value: Any) -> Any:
    """A host's `vm`: {cpus: 1-64, memory: at least 128 MiB, disks: [extra disk sizes],
    nics: [an IPv4 address per extra network card], gateway: the default route's next hop}."""
    from haops.inventory.model import VmSpec

    if not isinstance(value, dict):
        raise ValueError(f"must be a mapping such as {{cpus: 1, memory: 512M, disks: [1G]}}, got {show(value)}")
    unknown = sorted(set(value) - {"cpus", "memory", "disks", "nics", "gateway"})
    if unknown:
        raise ValueError(f"has no {', '.join(unknown)}; it takes cpus, memory, disks, nics and gateway")
    cpus = value.get("cpus", 1)
    if isinstance(cpus, bool) or not isinstance(cpus, int) or not 1 <= cpus <= 64:
        raise ValueError(f"cpus must be a whole number 1-64, got {show(cpus)}")
    memory = size_mib(value.get("memory", 512))
    if memory < 128:
        raise ValueError(f"memory must be at least 128 MiB (a Debian guest boots in it), got {memory} MiB")
    disks = value.get("disks", [])
    if not isinstance(disks, list) or len(disks) > 8:
        raise ValueError(f"disks must be a list of at most 8 sizes such as [1G], got {show(disks)}")
    nics = value.get("nics", [])
    if not isinstance(nics, list) or len(nics) > 4:
        raise ValueError(f"nics must be a list of at most 4 IPv4 addresses such as [10.213.22.10], got {show(nics)}")
    gateway = value.get("gateway")
    return VmSpec(cpus, memory, tuple(size_mib(disk) for disk in disks), tuple(vm_address(nic, "nics") for nic in nics),
                  None if gateway is None else vm_address(gateway, "gateway"))


def vm_address(value: Any, key: str) -> ipaddress.IPv4Address:
    try:
        return ipaddress.IPv4Address(str(value))
    except ValueError:
        raise ValueError(f"{key}: {show(value)} is not an IPv4 address") from None
