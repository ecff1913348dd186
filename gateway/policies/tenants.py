"""The configuration's rules for profiles: which tenant may write where, and the hash key.

The bridge between `gateway.config` (the operator's settings) and `gateway.profiles.policy`
(what loading a profile checks), so the profiles package stays free of configuration types.
"""

from __future__ import annotations

import logging

from gateway.config import GatewaySettings
from gateway.profiles.policy import LoadPolicy, Tenant, ephemeral_policy

log = logging.getLogger(__name__)


def profile_policy(settings: GatewaySettings) -> LoadPolicy:
    """The LoadPolicy of a running gateway: built once, reused by every hot reload."""
    key = settings.privacy.hash_key
    base = ephemeral_policy() if key is None else LoadPolicy(key.get_secret_value().encode())
    influx = settings.influx
    return LoadPolicy(
        hash_key=base.hash_key,
        hash_key_is_ephemeral=base.hash_key_is_ephemeral,
        tenants={
            name: Tenant(name, frozenset(t.databases), frozenset(t.retention_policies))
            for name, t in settings.tenants.items()
        },
        default_database=(influx.bucket if influx.api == "v2" else influx.database),
        distinct_tag_and_field_names=influx.api == "v3",
    )


def warn_about_ephemeral_key(policy: LoadPolicy, hashing_profiles: list[str]) -> None:
    """Hashes made with a random key cannot be compared across restarts: say so once."""
    if policy.hash_key_is_ephemeral and hashing_profiles:
        log.warning(
            "[privacy] hash_key is not set: profiles %s hash personal data with a random key "
            "for this run only, so the same value gets another hash after a restart; set "
            "[privacy] hash_key_file for stable hashes",
            ", ".join(hashing_profiles),
        )
