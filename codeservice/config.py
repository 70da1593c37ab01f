"""The service's configuration: defaults, then ``CODESERVICE_*`` variables, then overrides."""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

from verifiers.contract import (
    DEFAULT_ISSUER,
    DEFAULT_LEEWAY_SECONDS,
    MAX_DEVICE_CREDENTIAL_LIFETIME_SECONDS,
)
from verifiers.contract import MAX_LIFETIME_SECONDS as MAX_TTL

from .errors import ConfigError
from .issuance import MIN_TTL
from .keystore import ALGORITHMS
from .usage_report import check_zone

ENV_PREFIX = "CODESERVICE_"

DEFAULTS: dict[str, Any] = {
    "ISSUER": DEFAULT_ISSUER,
    "CODE_TTL": 60,
    "KEYS_DIR": "keys",
    "KEY_PUBLISH_GRACE": 3600,
    "LEEWAY": DEFAULT_LEEWAY_SECONDS,
    "ENV": "production",
    "SECRET_KEY": None,
    "DATABASE_URL": None,
    "RATE_LIMITS": "on",
    # codeservice.protection: counters' storage (redis://... to share them across instances), budgets
    "RATE_LIMIT_STORAGE_URL": "memory://",
    "RATE_LIMIT_LOGIN": "10/minute",
    "RATE_LIMIT_REGISTER": "5/minute",
    "RATE_LIMIT_CODE": "60/minute",
    "RATE_LIMIT_VERIFY": "1200/minute",
    "SIGNING_ALG": "EdDSA",
    # codeservice.devices: a device credential's lifetime (at most 72 h), and the active devices a resident may have
    "DEVICE_CREDENTIAL_TTL": 86400,
    "DEVICES_PER_RESIDENT": 1,
    # The scenes issued codes are valid at, comma-separated: empty for every
    # installed scene (plug-ins included); a name that is not installed is refused at start.
    "SCOPES": "",
    "SENIOR_AGE": 60,
    "LOGIN_MAX_FAILURES": 5,
    "LOGIN_COOLDOWN": 900,
    "LOG_LEVEL": "INFO",
    # codeservice.usage_report: the zone whose calendar days the console and `usage report` count
    # (whole hours from UTC: the roll-up counts by UTC hour)
    "TIMEZONE": "Asia/Shanghai",
    # codeservice.observability: when set, /metrics wants `Authorization: Bearer <token>`
    "METRICS_TOKEN": None,
    # Reverse proxies in front of the service that set X-Forwarded-For/-Proto
    # (0: none). Rate limits count per client address, which only they know.
    "TRUSTED_PROXIES": 0,
}


def load_config(
    overrides: Mapping[str, Any] | None = None,
    environ: Mapping[str, str] = os.environ,
) -> dict[str, Any]:
    """``DEFAULTS``, then ``CODESERVICE_<NAME>`` for each default's name, then ``overrides``.

    Environment values are strings, converted to int where the default is an
    int. Raises ``ConfigError`` for a value that cannot be used.
    """
    config = dict(DEFAULTS)
    for name, default in DEFAULTS.items():
        var = ENV_PREFIX + name
        if var not in environ:
            continue
        value = environ[var]
        if isinstance(default, int):
            try:
                config[name] = int(value.strip())
            except ValueError:
                raise ConfigError(f"{var} must be an integer, got {value!r}") from None
        else:
            config[name] = value
    if overrides:
        config.update(overrides)
    _validate(config)
    return config


def _validate(config: Mapping[str, Any]) -> None:
    ttl = config["CODE_TTL"]
    if type(ttl) is not int or not MIN_TTL <= ttl <= MAX_TTL:
        raise ConfigError(
            f"CODE_TTL must be an integer from {MIN_TTL} to {MAX_TTL} seconds, got {ttl!r}"
        )
    for name in ("KEY_PUBLISH_GRACE", "LEEWAY", "TRUSTED_PROXIES"):
        if type(config[name]) is not int or config[name] < 0:
            raise ConfigError(f"{name} must be a non-negative integer, got {config[name]!r}")
    credential_ttl = config["DEVICE_CREDENTIAL_TTL"]
    if type(credential_ttl) is not int or not 1 <= credential_ttl <= MAX_DEVICE_CREDENTIAL_LIFETIME_SECONDS:
        raise ConfigError(
            f"DEVICE_CREDENTIAL_TTL must be an integer from 1 to {MAX_DEVICE_CREDENTIAL_LIFETIME_SECONDS} "
            f"seconds (72 h), got {credential_ttl!r}"
        )
    for name in ("SENIOR_AGE", "LOGIN_MAX_FAILURES", "LOGIN_COOLDOWN", "DEVICES_PER_RESIDENT"):
        if type(config[name]) is not int or config[name] < 1:
            raise ConfigError(f"{name} must be a positive integer, got {config[name]!r}")
    try:
        check_zone(str(config["TIMEZONE"]))
    except (ValueError, KeyError, OSError) as exc:  # ZoneInfoNotFoundError is a KeyError
        raise ConfigError(f"TIMEZONE must be an IANA time zone whole hours from UTC, got {config['TIMEZONE']!r}: "
                          f"{exc}") from None
    alg = config["SIGNING_ALG"]
    if alg not in ALGORITHMS:
        raise ConfigError(f"SIGNING_ALG must be one of {', '.join(ALGORITHMS)}, got {alg!r}")
