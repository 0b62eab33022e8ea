"""Enumerations of the ``text`` columns that CHECK constraints restrict to a fixed set.

Each value is exactly the text stored in the database (the migrations' CHECK constraints
list the same values; a test compares them). Being :class:`enum.StrEnum`, members compare
equal to their text: ``OrderStatus.CLOSED == "closed"``.
"""

from __future__ import annotations

from enum import StrEnum

__all__ = [
    "AccountType",
    "CatalogKind",
    "ConsentType",
    "DeadLetterReason",
    "DealEntry",
    "DealType",
    "FeedbackStatus",
    "HeartbeatStatus",
    "MarginMode",
    "OrderStatus",
    "OrderType",
    "ReportStatus",
    "ReportType",
    "RiskSeverity",
    "SignalAction",
    "SignalStatus",
]


class AccountType(StrEnum):
    """``mt5_user_accounts.account_type``: the kind of MT5 trading account."""

    DEMO = "demo"
    REAL = "real"
    CONTEST = "contest"


class DeadLetterReason(StrEnum):
    """``mt5_ingest_dead_letters.reason``: why the Data Bridge could not store something."""

    UNDECODABLE = "undecodable"
    UNAUTHORIZED = "unauthorized"
    ACCOUNT_MISMATCH = "account_mismatch"
    KIND_MISMATCH = "kind_mismatch"
    CHECK_VIOLATION = "check_violation"
    REFUSED = "refused"
    MAX_DELIVER = "max_deliver"


class MarginMode(StrEnum):
    """``mt5_user_accounts.margin_mode``: MQL5 ``ENUM_ACCOUNT_MARGIN_MODE``, lower case.

    Netting and exchange accounts hold one position per symbol; hedging accounts may hold
    opposite positions of one symbol at once.
    """

    NETTING = "netting"
    EXCHANGE = "exchange"
    HEDGING = "hedging"


class HeartbeatStatus(StrEnum):
    """``mt5_ea_heartbeat.status``: the EA's connectivity as it reports it."""

    ONLINE = "online"
    OFFLINE = "offline"
    DEGRADED = "degraded"


class OrderType(StrEnum):
    """``mt5_trade_orders.order_type``: MQL5 ``ENUM_ORDER_TYPE``, lower case."""

    BUY = "buy"
    SELL = "sell"
    BUY_LIMIT = "buy_limit"
    SELL_LIMIT = "sell_limit"
    BUY_STOP = "buy_stop"
    SELL_STOP = "sell_stop"
    BUY_STOP_LIMIT = "buy_stop_limit"
    SELL_STOP_LIMIT = "sell_stop_limit"
    CLOSE_BY = "close_by"


class DealType(StrEnum):
    """``mt5_trade_orders.deal_type``: MQL5 ``ENUM_DEAL_TYPE``, lower case."""

    BUY = "buy"
    SELL = "sell"
    BALANCE = "balance"
    CREDIT = "credit"
    CHARGE = "charge"
    CORRECTION = "correction"
    BONUS = "bonus"
    COMMISSION = "commission"
    COMMISSION_DAILY = "commission_daily"
    COMMISSION_MONTHLY = "commission_monthly"
    COMMISSION_AGENT_DAILY = "commission_agent_daily"
    COMMISSION_AGENT_MONTHLY = "commission_agent_monthly"
    INTEREST = "interest"
    BUY_CANCELED = "buy_canceled"
    SELL_CANCELED = "sell_canceled"
    DIVIDEND = "dividend"
    DIVIDEND_FRANKED = "dividend_franked"
    TAX = "tax"


class DealEntry(StrEnum):
    """``mt5_trade_orders.deal_entry``: MQL5 ``ENUM_DEAL_ENTRY``, lower case."""

    IN = "in"
    OUT = "out"
    INOUT = "inout"
    OUT_BY = "out_by"


class OrderStatus(StrEnum):
    """``mt5_trade_orders.status``: the order's or position's state after the event."""

    PENDING = "pending"
    OPEN = "open"
    CLOSED = "closed"
    CANCELLED = "cancelled"
    REJECTED = "rejected"


class SignalAction(StrEnum):
    """``mt5_trading_signals.action``: what the EA is asked to do (upper case, as in the
    seed's examples)."""

    BUY = "BUY"
    SELL = "SELL"
    CLOSE = "CLOSE"
    MODIFY = "MODIFY"


class SignalStatus(StrEnum):
    """``mt5_trading_signals.status``: ``pending`` → ``sent`` → ``executed``/``rejected``,
    or ``expired``/``cancelled``."""

    PENDING = "pending"
    SENT = "sent"
    EXECUTED = "executed"
    REJECTED = "rejected"
    EXPIRED = "expired"
    CANCELLED = "cancelled"


class FeedbackStatus(StrEnum):
    """``mt5_signal_executions.feedback_status``: where the result stands in the ML loop."""

    AWAITING_CLOSE = "awaiting_close"
    PENDING = "pending"
    INCLUDED_IN_TRAINING = "included_in_training"
    EXCLUDED = "excluded"


class RiskSeverity(StrEnum):
    """``mt5_risk_events.severity``."""

    INFO = "info"
    WARNING = "warning"
    HIGH = "high"
    CRITICAL = "critical"


class ConsentType(StrEnum):
    """``mt5_user_consents.consent_type``: what a user agreed to (GDPR)."""

    TERMS_OF_SERVICE = "terms_of_service"
    PRIVACY_POLICY = "privacy_policy"
    DATA_PROCESSING = "data_processing"
    MARKETING = "marketing"
    ML_TRAINING = "ml_training"
    DATA_SHARING = "data_sharing"


class ReportType(StrEnum):
    """``mt5_compliance_reports.report_type``."""

    MONTHLY_TRADING = "monthly_trading"
    BEST_EXECUTION = "best_execution"
    TRANSACTION_REPORTING = "transaction_reporting"
    RISK_SUMMARY = "risk_summary"
    GDPR_EXPORT = "gdpr_export"
    AUDIT_VERIFICATION = "audit_verification"


class ReportStatus(StrEnum):
    """``mt5_compliance_reports.status``."""

    DRAFT = "draft"
    FINAL = "final"
    SUBMITTED = "submitted"
    SUPERSEDED = "superseded"


class CatalogKind(StrEnum):
    """``mt5_timeseries_catalog.kind``."""

    HYPERTABLE = "hypertable"
    AGGREGATE = "aggregate"
