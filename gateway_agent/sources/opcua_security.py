"""OPC-UA connection security: Basic256Sha256 with certificates, and a user whose password comes
from the environment (devices.yaml names the variable, never the secret)."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from asyncua import ua
from asyncua.client.client import Client
from asyncua.crypto import uacrypto
from asyncua.crypto.security_policies import SecurityPolicyBasic256Sha256
from asyncua.ua.status_codes import StatusCodes
from asyncua.ua.uaerrors import UaError, UaStatusCodeError
from cryptography import x509

from gateway_agent.errors import AgentError
from hazardwatch.ledger.models import OpcUaDevice, OpcUaSecurity

_MODES = {"Sign": ua.MessageSecurityMode.Sign, "SignAndEncrypt": ua.MessageSecurityMode.SignAndEncrypt}

_USER_REFUSED = frozenset({
    StatusCodes.BadUserAccessDenied,
    StatusCodes.BadIdentityTokenInvalid,
    StatusCodes.BadIdentityTokenRejected,
})  # fmt: skip
_CERTIFICATE_REFUSED = frozenset({
    StatusCodes.BadSecurityChecksFailed,
    StatusCodes.BadCertificateInvalid,
    StatusCodes.BadCertificateUntrusted,
    StatusCodes.BadCertificateUriInvalid,
    StatusCodes.BadCertificateTimeInvalid,
    StatusCodes.BadCertificateRevoked,
    StatusCodes.BadSecurityPolicyRejected,
})  # fmt: skip


class OpcUaConfigError(AgentError, ValueError):
    """A device's security settings cannot be used: a variable unset, a file missing or unreadable."""


@dataclass(frozen=True, slots=True)
class Credentials:
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    key_password: str | None = field(default=None, repr=False)


def credentials(device: OpcUaDevice, environ: Mapping[str, str]) -> Credentials:
    """The device's secrets from the environment; OpcUaConfigError names a variable that is unset."""
    key_env = device.security.private_key_password_env if device.security is not None else None
    return Credentials(
        username=device.username,
        password=_secret("password_env", device.password_env, environ),
        key_password=_secret("private_key_password_env", key_env, environ),
    )


def _secret(setting: str, name: str | None, environ: Mapping[str, str]) -> str | None:
    if name is None:
        return None
    value = environ.get(name)
    if value is None:
        raise OpcUaConfigError(f"environment variable {name} ({setting}) is not set")
    return value


async def secure(client: Client, device: OpcUaDevice, creds: Credentials) -> None:
    """Set the client's security policy, certificates and user before it connects."""
    security = device.security
    if security is not None:
        await asyncio.to_thread(_check_files, security)
        try:
            certificate = await uacrypto.load_certificate(security.certificate)
            client.application_uri = application_uri(certificate)
            await client.set_security(
                SecurityPolicyBasic256Sha256,
                security.certificate,
                security.private_key,
                creds.key_password,
                security.server_certificate,
                _MODES[security.mode],
            )
        except (ValueError, TypeError, OSError) as err:
            raise OpcUaConfigError(f"cannot load its certificates: {err}") from err
    if creds.username is not None:
        client.set_user(creds.username)
        client.set_password(creds.password or "")


def _check_files(security: OpcUaSecurity) -> None:
    files = {
        "certificate": security.certificate,
        "private_key": security.private_key,
        "server_certificate": security.server_certificate,
    }
    for setting, path in files.items():
        if not Path(path).is_file():
            raise OpcUaConfigError(f"{setting} {path} is not a file")


def application_uri(certificate: x509.Certificate) -> str:
    """The application URI an OPC-UA certificate names (its URI subject alternative name)."""
    try:
        names = certificate.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound as err:
        raise ValueError("the certificate has no subject alternative name with the application URI") from err
    uris = names.get_values_for_type(x509.UniformResourceIdentifier)
    if not uris:
        raise ValueError("the certificate has no application URI (a URI subject alternative name)")
    return str(uris[0])


def describe(err: Exception, device: OpcUaDevice) -> str:
    """Why a connection failed, in a plain sentence where the cause is known."""
    refused = _refusal(err, device)
    if refused is not None:
        return refused
    if isinstance(err, TimeoutError) and not str(err):
        return f"no answer within {device.timeout_s:g} s"
    return f"{type(err).__name__}: {err}"


def _refusal(err: Exception, device: OpcUaDevice) -> str | None:
    if isinstance(err, UaStatusCodeError):
        code = int(err.code) & 0xFFFF_0000
        name = ua.StatusCode(ua.UInt32(code)).name
        if code in _USER_REFUSED:
            return f"the server refused user {device.username or '(anonymous)'!r} ({name})"
        if code in _CERTIFICATE_REFUSED:
            return f"the server refused the connection's security ({name}): check the certificates"
    if isinstance(err, UaError) and "certificate mismatch" in str(err):
        return "the server's certificate is not the one configured as server_certificate"
    return None
