"""Server TLS from PEM files, re-read on SIGHUP without dropping the process.

grpc asks for the certificate configuration at every new handshake; after
`reload()` it gets the files' new contents, so rotated certificates apply to
new connections while established ones carry on.
"""

from __future__ import annotations

import ssl
import threading
from dataclasses import dataclass
from pathlib import Path

import grpc


class TLSConfigError(ValueError):
    """Certificate files that cannot be used; the message names the file."""


@dataclass(frozen=True)
class TLSFiles:
    cert: str
    key: str
    client_ca: str | None = None  # set: clients must present a certificate signed by it (mTLS)


def _read(path: str, what: str) -> bytes:
    try:
        data = Path(path).read_bytes()
    except OSError as err:
        raise TLSConfigError(f"cannot read {what} {path}: {err.strerror or err}") from None
    if b"-----BEGIN " not in data:
        raise TLSConfigError(f"{what} {path} is not PEM")
    return data


class ReloadableServerCredentials:
    """`grpc.ServerCredentials` whose certificates `reload()` replaces."""

    def __init__(self, files: TLSFiles) -> None:
        self._files = files
        self._guard = threading.Lock()
        self._pending: grpc.ServerCertificateConfiguration | None = None
        initial = self._configuration()
        self.credentials = grpc.dynamic_ssl_server_credentials(
            initial, self._fetch, require_client_authentication=files.client_ca is not None
        )

    def _configuration(self) -> grpc.ServerCertificateConfiguration:
        files = self._files
        pair = (_read(files.key, "TLS key"), _read(files.cert, "TLS certificate"))
        try:  # catch a key that does not match its certificate now, not at every handshake
            ssl.create_default_context(ssl.Purpose.CLIENT_AUTH).load_cert_chain(files.cert, files.key)
        except ssl.SSLError as err:
            raise TLSConfigError(f"TLS certificate {files.cert} and key {files.key} do not fit: {err}") from None
        client_ca = _read(files.client_ca, "client CA") if files.client_ca else None
        return grpc.ssl_server_certificate_configuration([pair], root_certificates=client_ca)

    def reload(self) -> None:
        """Re-read the files now (errors keep the certificates in force)."""
        configuration = self._configuration()
        with self._guard:
            self._pending = configuration

    def _fetch(self) -> grpc.ServerCertificateConfiguration | None:
        with self._guard:
            configuration, self._pending = self._pending, None
        return configuration
