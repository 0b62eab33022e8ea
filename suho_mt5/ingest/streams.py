"""The bus contract (``config/nats-subjects.yaml``) and its idempotent declaration.

:data:`DEFAULT_CONTRACT` is the contract the package ships; :func:`load_contract` reads a
YAML file of the same shape; :func:`setup_streams` creates or updates every stream and
durable consumer so that running it twice, or on a server already set up, changes nothing.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Final

from suho_mt5.errors import ConfigError, StreamSetupError

__all__ = [
    "DEFAULT_CONTRACT",
    "BusContract",
    "ConsumerSpec",
    "StreamSpec",
    "consumer_config",
    "load_contract",
    "setup_streams",
]


@dataclass(frozen=True)
class StreamSpec:
    """One JetStream stream."""

    name: str
    subjects: tuple[str, ...]
    storage: str = "file"
    retention: str = "limits"
    max_age_seconds: float = 0
    duplicate_window_seconds: float = 120
    max_msgs_per_subject: int = -1


@dataclass(frozen=True)
class ConsumerSpec:
    """One durable pull consumer."""

    stream: str
    durable: str
    filter_subject: str
    ack_wait_seconds: float = 60
    max_deliver: int = 10
    max_ack_pending: int = 20000


@dataclass(frozen=True)
class BusContract:
    """Streams and consumers; :attr:`bridge` is the consumer the Data Bridge reads."""

    streams: tuple[StreamSpec, ...]
    consumers: tuple[ConsumerSpec, ...]
    subjects: Mapping[str, str] = field(default_factory=dict)

    @property
    def bridge(self) -> ConsumerSpec:
        return next(c for c in self.consumers if c.stream == "MT5_ACCOUNTS")

    def with_bridge(self, **changes: Any) -> BusContract:
        """The contract with the bridge consumer's settings changed (tests, operators)."""
        consumers = tuple(
            replace(c, **changes) if c is self.bridge else c for c in self.consumers
        )
        return replace(self, consumers=consumers)


DEFAULT_CONTRACT: Final = BusContract(
    subjects={
        "account": "mt5.account.<tenant>.<account_id>.<kind>",
        "signal": "mt5.signal.<tenant>.<account_id>",
        "command": "mt5.command.<tenant>.<account_id>",
        "config": "mt5.config.<tenant>.<account_id>",
        "market": "mt5.market.<symbol>",
    },
    streams=(
        StreamSpec("MT5_ACCOUNTS", ("mt5.account.>",), max_age_seconds=604800,
                   duplicate_window_seconds=120),
        StreamSpec("MT5_SIGNALS", ("mt5.signal.>",), max_age_seconds=86400,
                   duplicate_window_seconds=3600),
        StreamSpec("MT5_COMMANDS", ("mt5.command.>", "mt5.config.>"), max_age_seconds=86400,
                   duplicate_window_seconds=120),
        StreamSpec("MT5_MARKET", ("mt5.market.>",), max_age_seconds=3600,
                   duplicate_window_seconds=60, max_msgs_per_subject=100),
    ),
    consumers=(
        ConsumerSpec("MT5_ACCOUNTS", "suho-bridge", "mt5.account.>", ack_wait_seconds=60,
                     max_deliver=10, max_ack_pending=20000),
    ),
)


def _build(cls: type[Any], item: Mapping[str, Any], where: str) -> Any:
    try:
        if "subjects" in item and isinstance(item["subjects"], list):
            item = {**item, "subjects": tuple(item["subjects"])}
        return cls(**item)
    except TypeError as exc:
        raise ConfigError(f"{where}: {exc}") from exc


def load_contract(path: str | Path) -> BusContract:
    """The contract in the YAML file at ``path`` (shape of ``config/nats-subjects.yaml``)."""
    import yaml  # the ingest extra; only needed when a file is given

    try:
        data = yaml.safe_load(Path(path).read_text())
    except (OSError, yaml.YAMLError) as exc:
        raise ConfigError(f"cannot read the bus contract {path}: {exc}") from exc
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping with streams and consumers")
    streams = tuple(
        _build(StreamSpec, s, f"{path}: stream {i}") for i, s in enumerate(data["streams"])
    )
    consumers = tuple(
        _build(ConsumerSpec, c, f"{path}: consumer {i}")
        for i, c in enumerate(data["consumers"])
    )
    return BusContract(streams, consumers, dict(data.get("subjects") or {}))


def _stream_config(spec: StreamSpec) -> Any:
    from nats.js.api import RetentionPolicy, StorageType, StreamConfig

    return StreamConfig(
        name=spec.name,
        subjects=list(spec.subjects),
        storage=StorageType(spec.storage),
        retention=RetentionPolicy(spec.retention),
        max_age=spec.max_age_seconds,
        duplicate_window=spec.duplicate_window_seconds,
        max_msgs_per_subject=spec.max_msgs_per_subject,
    )


def consumer_config(spec: ConsumerSpec) -> Any:
    """The nats-py ``ConsumerConfig`` of a durable pull consumer."""
    from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy

    return ConsumerConfig(
        durable_name=spec.durable,
        deliver_policy=DeliverPolicy.ALL,
        ack_policy=AckPolicy.EXPLICIT,
        ack_wait=spec.ack_wait_seconds,
        max_deliver=spec.max_deliver,
        max_ack_pending=spec.max_ack_pending,
        filter_subject=spec.filter_subject,
    )


async def setup_streams(js: Any, contract: BusContract = DEFAULT_CONTRACT) -> list[str]:
    """Create or update every stream and consumer of ``contract``; one line per object.

    ``js`` is a nats-py ``JetStreamContext``. A stream that exists is updated to the
    contract (its messages are kept); a consumer that exists is updated in place.
    """
    from nats.js.errors import BadRequestError, NotFoundError

    done: list[str] = []
    for spec in contract.streams:
        config = _stream_config(spec)
        try:
            await js.stream_info(spec.name)
        except NotFoundError:
            await js.add_stream(config)
            done.append(f"stream {spec.name}: created")
            continue
        try:
            await js.update_stream(config)
        except BadRequestError as exc:
            raise StreamSetupError(f"stream {spec.name} cannot be updated: {exc}") from exc
        done.append(f"stream {spec.name}: up to date")
    for cons in contract.consumers:
        try:
            await js.add_consumer(cons.stream, config=consumer_config(cons))
        except BadRequestError as exc:
            raise StreamSetupError(
                f"consumer {cons.stream}/{cons.durable} cannot be created or updated: {exc}"
            ) from exc
        done.append(f"consumer {cons.stream}/{cons.durable}: ready")
    return done
