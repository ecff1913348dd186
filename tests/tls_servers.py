"""A private mosquitto with a TLS listener, optional mutual TLS and optional passwords.

Built on tests/servers.Mosquitto: the same generated configuration, readiness wait and clean
stop, with the listener's TLS options and the password file appended. With mosquitto's default
`per_listener_settings false`, certfile/keyfile/cafile/require_certificate belong to the
listener declared last (the only one), and allow_anonymous/password_file are global; a later
line wins over the `allow_anonymous true` servers.Mosquitto writes.

`mosquitto_passwd` hashes the passwords (there is no plain-text password file in mosquitto 2);
it ships in Debian's mosquitto package, but a test that needs it checks `have_mosquitto_passwd()`
and skips that part, naming the missing tool, if it is absent.
"""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Mapping, Sequence
from pathlib import Path

from tests.servers import Mosquitto, ServerNotInstalledError, find_binary
from tests.tls import KeyPair

MOSQUITTO_PASSWD_MISSING = (
    "mosquitto_passwd not found (Debian package mosquitto): broker passwords not tested"
)


def have_mosquitto_passwd() -> bool:
    return shutil.which("mosquitto_passwd") is not None


def write_password_file(path: Path, users: Mapping[str, str]) -> Path:
    """A mosquitto password file with hashed passwords for `users` (name -> password)."""
    if not have_mosquitto_passwd():
        raise ServerNotInstalledError(MOSQUITTO_PASSWD_MISSING)
    path.unlink(missing_ok=True)
    path.touch(mode=0o600)
    for user, password in users.items():
        # -b takes the password as an argument: fine for made-up test credentials.
        subprocess.run(["mosquitto_passwd", "-b", str(path), user, password], check=True)
    return path


class SecureMosquitto(Mosquitto):
    """mosquitto with a TLS listener (`server` certificate) and/or a password file.

    `ca` is the CA the broker trusts for client certificates; `require_certificate` turns on
    mutual TLS. `passwords` (user -> password) makes a password file; with
    `allow_anonymous=False` every client must log in, with True only named users are checked.
    """

    def __init__(
        self,
        workdir: Path,
        *,
        server: KeyPair | None = None,
        ca: Path | None = None,
        require_certificate: bool = False,
        passwords: Mapping[str, str] | None = None,
        allow_anonymous: bool = True,
        host: str = "127.0.0.1",
        port: int | None = None,
        extra_conf: str = "",
    ) -> None:
        super().__init__(workdir, host, port, extra_conf=extra_conf)
        if require_certificate and (server is None or ca is None):
            raise ValueError("mutual TLS needs the server key pair and the client CA")
        self.server = server
        self.ca = ca
        self.require_certificate = require_certificate
        self.passwords = dict(passwords or {})
        self.allow_anonymous = allow_anonymous
        self._user_extra_conf = extra_conf

    @property
    def tls(self) -> bool:
        return self.server is not None

    @property
    def password_file(self) -> Path:
        return self.workdir / "passwords"

    def _write_config(self) -> list[str]:
        lines: list[str] = []
        if self.server is not None:
            lines += [f"certfile {self.server.cert}", f"keyfile {self.server.key}"]
            lines += ["tls_version tlsv1.2"]  # the minimum; TLS 1.3 clients still get 1.3
            if self.ca is not None:
                lines.append(f"cafile {self.ca}")
            lines.append(f"require_certificate {str(self.require_certificate).lower()}")
        if self.passwords:
            write_password_file(self.password_file, self.passwords)
            lines.append(f"password_file {self.password_file}")
        lines.append(f"allow_anonymous {str(self.allow_anonymous).lower()}")
        self.extra_conf = "\n".join(lines) + "\n" + self._user_extra_conf
        return super()._write_config()

    def client_args(
        self,
        *,
        ca: Path | None = None,
        client: KeyPair | None = None,
        username: str | None = None,
        password: str | None = None,
    ) -> list[str]:
        """mosquitto_pub/mosquitto_sub options to reach this broker (TLS with `ca`)."""
        args = ["-h", self.host, "-p", str(self.port)]
        if ca is not None:
            args += ["--cafile", str(ca)]
        if client is not None:
            args += ["--cert", str(client.cert), "--key", str(client.key)]
        if username is not None:
            args += ["-u", username]
        if password is not None:
            args += ["-P", password]
        return args

    def publish(
        self, topic: str, payloads: Sequence[str], *client_args: str, timeout_s: float = 20.0
    ) -> None:
        """Publish each payload with QoS 1 through mosquitto_pub, one line per message."""
        subprocess.run(
            [find_binary("mosquitto_pub"), *client_args, "-q", "1", "-t", topic, "-l"],
            input="\n".join(payloads) + "\n",
            text=True,
            check=True,
            capture_output=True,
            timeout=timeout_s,
        )
