"""The TLS context of a connector: the system's trust store or `ca_file`, an optional client
certificate, and `tls_insecure` (no check of the server's name: for self-signed test brokers)."""

from __future__ import annotations

import ssl

from flowhost.connectors.config import ConnectorConfig
from flowhost.errors import ConfigurationError


def tls_context(config: ConnectorConfig) -> ssl.SSLContext | None:
    if not config.tls:
        return None
    try:
        context = ssl.create_default_context(cafile=config.ca_file)
        if config.cert_file is not None:
            context.load_cert_chain(config.cert_file, config.key_file)
    except (OSError, ssl.SSLError) as exc:
        raise ConfigurationError(f"connector {config.name}: TLS files: {exc}") from exc
    if config.tls_insecure:
        context.check_hostname = False
    return context
