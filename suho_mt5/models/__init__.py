"""SQLAlchemy 2.0 models of the suho-mt5 schema.

One mapped class per table, matching the Alembic migrations exactly (names, types,
nullability, keys, foreign keys, indexes; a test and :func:`suho_mt5.check_drift` hold
them to it), read-only classes over the aggregates' tenant views, and :data:`metadata`
for Alembic's ``target_metadata``.

=============================  ==========================  ====================
table / view                   class                       module
=============================  ==========================  ====================
mt5_user_accounts              :class:`UserAccount`        ``accounts``
mt5_account_balance_history    :class:`BalanceHistory`     ``market``
mt5_broker_quotes              :class:`BrokerQuote`        ``market``
mt5_ea_heartbeat               :class:`Heartbeat`          ``market``
mt5_trade_orders               :class:`TradeOrder`         ``trading``
mt5_trading_signals            :class:`TradingSignal`      ``trading``
mt5_signal_executions          :class:`SignalExecution`    ``trading``
mt5_audit_log                  :class:`AuditEvent`         ``compliance``
mt5_risk_events                :class:`RiskEvent`          ``compliance``
mt5_user_consents              :class:`UserConsent`        ``compliance``
mt5_compliance_reports         :class:`ComplianceReport`   ``compliance``
mt5_audit_chain_heads          :class:`AuditChainHead`     ``compliance``
mt5_gdpr_subject_keys          :class:`GdprSubjectKey`     ``compliance``
mt5_account_settings           :class:`AccountSetting`     ``compliance``
mt5_timeseries_catalog         :class:`TimeseriesCatalogEntry`  ``catalog``
mt5_ingest_dead_letters        :class:`DeadLetter`         ``ingest``
mt5_balance_hourly (view)      :class:`BalanceHourly`      ``aggregates``
mt5_pnl_daily (view)           :class:`PnlDaily`           ``aggregates``
mt5_pnl_weekly (view)          :class:`PnlWeekly`          ``aggregates``
mt5_quotes_ohlc_1m (view)      :class:`QuoteOhlc1m`        ``aggregates``
mt5_quotes_ohlc_1h (view)      :class:`QuoteOhlc1h`        ``aggregates``
mt5_quotes_ohlc_1d (view)      :class:`QuoteOhlc1d`        ``aggregates``
=============================  ==========================  ====================

Use them in a :func:`~suho_mt5.db.tenant_session`, which scopes every transaction to one
tenant (see ``docs/models.md``).

>>> sorted(metadata.tables)[:2]
['mt5_account_balance_history', 'mt5_account_settings']
>>> hypertables()["mt5_broker_quotes"].chunk_time_interval
'1 day'
"""

from __future__ import annotations

from suho_mt5.models import _tenant_fill  # noqa: F401  (registers the TenantSession hook)
from suho_mt5.models.accounts import UserAccount
from suho_mt5.models.aggregates import (
    BalanceHourly,
    PnlDaily,
    PnlWeekly,
    QuoteOhlc1d,
    QuoteOhlc1h,
    QuoteOhlc1m,
    ReadOnlyModelError,
    ReadOnlyView,
)
from suho_mt5.models.base import (
    Base,
    ColumnstoreSpec,
    HypertableSpec,
    TextEnum,
    hypertable_spec,
    metadata,
    view_metadata,
)
from suho_mt5.models.catalog import TimeseriesCatalogEntry
from suho_mt5.models.compliance import (
    AccountSetting,
    AuditChainHead,
    AuditEvent,
    ComplianceReport,
    GdprSubjectKey,
    RiskEvent,
    UserConsent,
)
from suho_mt5.models.enums import (
    AccountType,
    CatalogKind,
    ConsentType,
    DeadLetterReason,
    DealEntry,
    DealType,
    FeedbackStatus,
    HeartbeatStatus,
    MarginMode,
    OrderStatus,
    OrderType,
    ReportStatus,
    ReportType,
    RiskSeverity,
    SignalAction,
    SignalStatus,
)
from suho_mt5.models.ingest import DeadLetter
from suho_mt5.models.market import BalanceHistory, BrokerQuote, Heartbeat
from suho_mt5.models.trading import SignalExecution, TradeOrder, TradingSignal

__all__ = [
    "AccountSetting",
    "AccountType",
    "AuditChainHead",
    "AuditEvent",
    "BalanceHistory",
    "BalanceHourly",
    "Base",
    "BrokerQuote",
    "CatalogKind",
    "ColumnstoreSpec",
    "ComplianceReport",
    "ConsentType",
    "DeadLetter",
    "DeadLetterReason",
    "DealEntry",
    "DealType",
    "FeedbackStatus",
    "GdprSubjectKey",
    "Heartbeat",
    "HeartbeatStatus",
    "HypertableSpec",
    "MarginMode",
    "OrderStatus",
    "OrderType",
    "PnlDaily",
    "PnlWeekly",
    "QuoteOhlc1d",
    "QuoteOhlc1h",
    "QuoteOhlc1m",
    "ReadOnlyModelError",
    "ReadOnlyView",
    "ReportStatus",
    "ReportType",
    "RiskEvent",
    "RiskSeverity",
    "SignalAction",
    "SignalExecution",
    "SignalStatus",
    "TextEnum",
    "TimeseriesCatalogEntry",
    "TradeOrder",
    "TradingSignal",
    "UserAccount",
    "UserConsent",
    "hypertable_spec",
    "hypertables",
    "metadata",
    "view_metadata",
]


def hypertables() -> dict[str, HypertableSpec]:
    """The hypertable settings the models declare, by table name."""
    specs = (hypertable_spec(table) for table in metadata.sorted_tables)
    return {spec.table: spec for spec in specs if spec is not None}
