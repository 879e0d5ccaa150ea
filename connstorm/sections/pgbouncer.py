"""The ``[pgbouncer]`` section: the PgBouncer connstorm starts in front of PostgreSQL."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any, Literal

from pydantic import Field, model_validator
from pydantic.dataclasses import dataclass
from pydantic.json_schema import SkipJsonSchema

from connstorm.sections.base import (
    SECTION,
    SETTING_VALUE_SCHEMA,
    Bool,
    Float,
    Int,
    KeyProblem,
    SettingValue,
    Str,
)
from connstorm.sections.native import collect_settings

# PgBouncer 1.18's [pgbouncer] settings, and max_prepared_statements (1.21 and later,
# see binary); an unknown name is a typo, not a feature.
PGBOUNCER_SETTINGS = frozenset(
    """
    logfile pidfile listen_addr listen_port unix_socket_dir unix_socket_mode unix_socket_group
    user pool_mode max_client_conn default_pool_size min_pool_size reserve_pool_size
    reserve_pool_timeout max_db_connections max_user_connections server_round_robin
    ignore_startup_parameters disable_pqexec application_name_add_host conffile service_name
    job_name stats_period auth_type auth_hba_file auth_file auth_user auth_query auth_dbname
    syslog syslog_ident syslog_facility log_connections log_disconnections log_pooler_errors
    log_stats verbose admin_users stats_users server_reset_query server_reset_query_always
    server_check_delay server_check_query server_fast_close server_lifetime server_idle_timeout
    server_connect_timeout server_login_retry client_login_timeout autodb_idle_timeout
    dns_max_ttl dns_nxdomain_ttl dns_zone_check_period resolv_conf query_timeout
    query_wait_timeout cancel_wait_timeout client_idle_timeout idle_transaction_timeout
    suspend_timeout pkt_buf max_packet_size listen_backlog sbuf_loopcnt so_reuseport
    tcp_defer_accept tcp_socket_buffer tcp_keepalive tcp_keepcnt tcp_keepidle tcp_keepintvl
    tcp_user_timeout client_tls_sslmode client_tls_key_file client_tls_cert_file
    client_tls_ca_file client_tls_protocols client_tls_ciphers client_tls_ecdhcurve
    client_tls_dheparams server_tls_sslmode server_tls_ca_file server_tls_key_file
    server_tls_cert_file server_tls_protocols server_tls_ciphers peer_id
    max_prepared_statements
    """.split()  # noqa: SIM905 - a word list reads better than 90 quoted names
)
#: Settings connstorm owns: a scenario cannot override them without breaking the stack.
PGBOUNCER_MANAGED = frozenset(
    {"logfile", "pidfile", "listen_addr", "listen_port", "unix_socket_dir", "auth_type",
     "auth_file", "admin_users", "stats_users", "user", "conffile"}
)
POOL_MODES = ("session", "transaction", "statement")
_SERVER_FIELDS = ("pool_mode", "default_pool_size", "min_pool_size", "reserve_pool_size",
                  "reserve_pool_timeout", "max_client_conn", "max_db_connections",
                  "query_wait_timeout", "server_idle_timeout", "server_lifetime",
                  "client_idle_timeout")


#: Description of the settings connstorm passes on without typing them itself.
PASSED_ON = "PgBouncer setting, passed on as written."


def _pgbouncer_schema(schema: dict[str, Any]) -> None:
    properties = schema.setdefault("properties", {})
    for name in sorted(PGBOUNCER_SETTINGS - PGBOUNCER_MANAGED - set(properties)):
        properties[name] = {**SETTING_VALUE_SCHEMA,
                            "description": PASSED_ON}


@dataclass(frozen=True, config={**SECTION, "json_schema_extra": _pgbouncer_schema})
class PgBouncerConfig:
    """The ``[pgbouncer]`` section; names and units are PgBouncer's own.

    Any other setting of PgBouncer 1.18's ``[pgbouncer]`` section may be given
    too, except those connstorm manages (addresses, ports, files, users).
    """

    enabled: Bool = True
    """Start PgBouncer (functions with database = "pgbouncer" need it)."""
    binary: Str = ""
    """Which pgbouncer program: a path, or a version such as "1.24" (1.21+ is built from Debian 13's source when missing); empty: the installed one."""
    pool_mode: Literal["session", "transaction", "statement"] = "transaction"
    """When a server connection goes back to the pool: at disconnect, transaction end or query end."""
    default_pool_size: Int = Field(default=10, ge=1, le=100_000)
    """Server connections per database and user pair."""
    min_pool_size: Int = Field(default=0, ge=0, le=100_000)
    """Server connections kept open even when unused."""
    reserve_pool_size: Int = Field(default=0, ge=0, le=100_000)
    """Extra server connections allowed when a client waited reserve_pool_timeout."""
    reserve_pool_timeout: Float = Field(default=5.0, ge=0)
    """Seconds a client waits before the reserve pool is used."""
    max_client_conn: Int = Field(default=1000, ge=1, le=1_000_000)
    """Client connections PgBouncer accepts in all."""
    max_db_connections: Int = Field(default=0, ge=0, le=100_000)
    """Server connections per database, all pools together; 0 no limit."""
    query_wait_timeout: Int = Field(default=120, ge=0)
    """Seconds a client may wait for a server connection before it is refused."""
    server_idle_timeout: Int = Field(default=600, ge=0)
    """Seconds an unused server connection stays open."""
    server_lifetime: Int = Field(default=3600, ge=0)
    """Seconds after which an unused server connection is closed and reopened."""
    client_idle_timeout: Int = Field(default=0, ge=0)
    """Seconds after which an idle client is disconnected; 0 never."""
    settings: SkipJsonSchema[Mapping[str, SettingValue]] = dataclasses.field(default_factory=dict)
    """Every pgbouncer.ini setting of the section; filled in by connstorm."""

    @model_validator(mode="before")
    @classmethod
    def _native_settings(cls, data: Any) -> Any:
        return collect_settings(cls, data, typed=_SERVER_FIELDS, managed=PGBOUNCER_MANAGED,
                                allowed=PGBOUNCER_SETTINGS, what="PgBouncer")

    @model_validator(mode="after")
    def _min_within_pool(self) -> PgBouncerConfig:
        if self.min_pool_size > self.default_pool_size:
            raise KeyProblem("min_pool_size", f"must not exceed default_pool_size "
                                              f"({self.default_pool_size}), got {self.min_pool_size}")
        return self

    @property
    def server_connections(self) -> int:
        """The most server connections the pool opens, the reserve included."""
        total = self.default_pool_size + self.reserve_pool_size
        return min(total, self.max_db_connections) if self.max_db_connections else total
