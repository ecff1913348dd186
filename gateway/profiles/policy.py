"""What the gateway's configuration imposes on profiles when they load: tenants and the hash key.

Profiles are written by technicians, possibly of several agencies sharing one gateway; the
configuration is the operator's. Three rules cross that line and are checked when profiles load
(at start-up and at every hot reload, so a bad profile is refused and the old set stays):

- **Tenants.** `[tenants.<name>]` lists the destinations (v1 databases with optional retention
  policies, v2 buckets) an agency's profiles may write. A profile names its agency with
  `tenant:`; its `output.database` (or the configured default) must be one of the tenant's.
  The destination is a constant of the compiled profile: no topic segment or payload value can
  choose it (see `output.database` in schema.py).
- **The keyed hash** of `privacy: hash` fields (HMAC-SHA256 with `[privacy] hash_key`).
- **The engine's schema rules.** InfluxDB 3 (`[influx] api = "v3"`) refuses a line whose field
  has the name of a tag of the same table (measurement), so profiles writing one measurement of
  one database must keep tag and field names apart across files (schema.py already refuses it
  within one); InfluxDB 1.x and 2.x store both.

Pure: the caller builds a LoadPolicy from the settings (gateway/policies/tenants.py).
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

HASH_HEX_CHARS = 16
"""Hex digits kept of the HMAC: 64 bits, no collision among a town's plates in practice."""

OFFLINE_HASH_KEY = b"mh-gateway offline tools: golden vectors only, not secret"
"""The public key of `gateway profiles test/validate` and the golden vectors, so their hashed
values are reproducible. A running gateway never uses it (see gateway/policies/tenants.py)."""


@dataclass(frozen=True, slots=True)
class Tenant:
    name: str
    databases: frozenset[str]  # v1 databases / v2 buckets
    retention_policies: frozenset[str]  # v1; empty: any retention policy of those databases


@dataclass(frozen=True, slots=True)
class LoadPolicy:
    """`tenants` None: not checked (offline tools that have no configuration); an empty
    mapping: one agency, every destination allowed and a profile naming a tenant refused."""

    hash_key: bytes
    tenants: Mapping[str, Tenant] | None = None
    default_database: str | None = None  # where a profile without output.database writes
    hash_key_is_ephemeral: bool = False  # no key configured: random for this process
    distinct_tag_and_field_names: bool = False  # InfluxDB 3's rule ([influx] api = "v3")


OFFLINE_POLICY = LoadPolicy(hash_key=OFFLINE_HASH_KEY)


def ephemeral_policy() -> LoadPolicy:
    """A random hash key: hashes are stable within one process only (tests, embedding)."""
    return LoadPolicy(hash_key=secrets.token_bytes(32), hash_key_is_ephemeral=True)


def keyed_hash(key: bytes) -> Callable[[str], str]:
    """value -> truncated hex HMAC-SHA256: the same plate always gives the same text, and
    without the key nobody can test guesses against it (a plain hash of the few million
    possible plates is reversed by enumeration in seconds)."""

    def digest(value: str) -> str:
        return hmac.new(key, value.encode(), hashlib.sha256).hexdigest()[:HASH_HEX_CHARS]

    return digest


@dataclass(frozen=True, slots=True)
class Destination:
    """What check_tenancy needs to know about one compiled profile."""

    file: str
    tenant: str | None
    database: str | None
    retention_policy: str | None
    measurement: str = ""
    tag_names: frozenset[str] = frozenset()
    field_names: frozenset[str] = frozenset()


def check_tenancy(profiles: Sequence[Destination], policy: LoadPolicy) -> list[str]:
    """One problem per profile that writes outside its tenant, naming file, field and choices;
    and, when the engine needs them apart, per field named like a tag of its measurement."""
    problems = _tag_field_clashes(profiles, policy) if policy.distinct_tag_and_field_names else []
    tenants = policy.tenants
    if tenants is None:
        return problems
    for profile in profiles:
        problem = _tenancy_problem(profile, tenants, policy.default_database)
        if problem is not None:
            problems.append(f"{profile.file}: {problem}")
    return problems


def _tenancy_problem(
    profile: Destination, tenants: Mapping[str, Tenant], default_database: str | None
) -> str | None:
    configured = ", ".join(sorted(tenants)) or "none"
    if profile.tenant is None:
        if not tenants:
            return None
        return (
            f"tenant: required when the configuration has [tenants] sections; "
            f"name the agency that owns this profile (configured tenants: {configured})"
        )
    tenant = tenants.get(profile.tenant)
    if tenant is None:
        return (
            f"tenant: {profile.tenant!r} is not configured (configured tenants: {configured}); "
            f"add [tenants.{profile.tenant}] with its databases to the gateway configuration"
        )
    database = profile.database or default_database
    if database not in tenant.databases:
        field_name = "output.database" if profile.database else "output.database (default)"
        return (
            f"{field_name}: {database!r} is not a destination of tenant {tenant.name!r} "
            f"(allowed: {', '.join(sorted(tenant.databases))})"
        )
    rp = profile.retention_policy
    if rp is not None and tenant.retention_policies and rp not in tenant.retention_policies:
        return (
            f"output.retention_policy: {rp!r} is not allowed for tenant {tenant.name!r} "
            f"(allowed: {', '.join(sorted(tenant.retention_policies))})"
        )
    return None


def _tag_field_clashes(profiles: Sequence[Destination], policy: LoadPolicy) -> list[str]:
    """Fields named like a tag of the same measurement in the same database, in any profile."""
    tags: dict[tuple[str | None, str, str], str] = {}  # (database, measurement, tag) -> file
    for profile in profiles:
        table = (profile.database or policy.default_database, profile.measurement)
        for tag in profile.tag_names:
            tags.setdefault((*table, tag), profile.file)
    problems = []
    for profile in profiles:
        table = (profile.database or policy.default_database, profile.measurement)
        for field in sorted(profile.field_names):
            owner = tags.get((*table, field))
            if owner is not None:  # in another profile: schema.py refuses it within one
                problems.append(
                    f'{profile.file}: fields.{field}: InfluxDB 3 ([influx] api = "v3") refuses '
                    f"a field named like a tag of measurement {profile.measurement!r} (tag "
                    f"{field!r} in {owner}); rename the field or the tag"
                )
    return problems
