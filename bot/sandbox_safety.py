"""Sandbox safety: the sandbox lets anyone act as any demo person, so it stays on loopback.

What callers may rely on: `check_binding` refuses (SandboxRefused) an API host that is not
loopback unless ONEGRID_ALLOW_NON_LOOPBACK_SANDBOX is set; a name that does not resolve is not
taken to be loopback.
"""

from __future__ import annotations

import ipaddress
import socket

from onegrid.settings import Settings


class SandboxRefused(RuntimeError):
    """Sandbox mode may not start with these settings; the message says why and what to set."""


def is_loopback_host(host: str) -> bool:
    """True when every address `host` names is a loopback address (127.0.0.0/8, ::1)."""
    host = host.strip().strip("[]")
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        pass
    try:
        infos = socket.getaddrinfo(host, None)
    except OSError:
        return False  # a name we cannot resolve is not known to be loopback
    addresses = {info[4][0].split("%")[0] for info in infos}
    return bool(addresses) and all(ipaddress.ip_address(a).is_loopback for a in addresses)


def check_binding(settings: Settings) -> None:
    """Raise SandboxRefused when the API host is not loopback and no flag allows it."""
    if is_loopback_host(settings.api_host) or settings.allow_non_loopback_sandbox:
        return
    raise SandboxRefused(
        f"Sandbox mode refuses to listen on {settings.api_host}: anyone who reaches that address "
        "could act as any demo person. Use ONEGRID_API_HOST=127.0.0.1, or set "
        "ONEGRID_BOT_TOKEN to run the real bot, or ONEGRID_SANDBOX=off to run without a bot; "
        "set ONEGRID_ALLOW_NON_LOOPBACK_SANDBOX=true only on a network you trust."
    )
