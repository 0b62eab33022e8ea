"""The bus contract (``config/nats-subjects.yaml``) and its idempotent declaration.

:data:`DEFAULT_CONTRACT` is the contract the package ships; :func:`load_contract` reads a
YAML file of the same shape; :func:`setup_streams` creates or updates every stream and
durable consumer so that running it twice, or on a server already set up, changes nothing.
On a NATS cluster each stream is kept in ``replicas`` copies (3 by default on a cluster of
at least 3 nodes: one node may die without losing or stopping anything).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field, replace
from functools import partial
from pathlib import Path
from typing import Any, Final, TypeVar

from suho_mt5._nats import cluster_size, default_replicas
from suho_mt5.errors import ConfigError, StreamSetupError

__all__ = [
    "DEFAULT_CONTRACT",
    "MAX_REPLICAS",
    "BusContract",
    "ConsumerSpec",
    "Declared",
    "StreamSpec",
    "cluster_size",
    "consumer_config",
    "default_replicas",
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


#: JetStream keeps at most five copies of a stream.
MAX_REPLICAS: Final = 5


@dataclass(frozen=True)
class Declared:
    """One stream or consumer :func:`setup_streams` declared, and its copies in the cluster.

    ``state``: ``created``, ``up to date`` or ``replicas 1 -> 3`` for a stream, ``ready`` for
    a consumer.
    """

    kind: str
    name: str
    state: str
    replicas: int

    def __str__(self) -> str:
        copies = "replica" if self.replicas == 1 else "replicas"
        return f"{self.kind} {self.name}: {self.state} ({self.replicas} {copies})"


def _check_replicas(replicas: int, nodes: int | None) -> None:
    if not 1 <= replicas <= MAX_REPLICAS:
        raise StreamSetupError(
            f"--replicas {replicas}: JetStream keeps 1 to {MAX_REPLICAS} copies of a stream")
    if nodes is not None and replicas > nodes:
        where = ("a single NATS server, not a cluster" if nodes == 1
                 else f"a NATS cluster of {nodes} nodes")
        raise StreamSetupError(
            f"--replicas {replicas}: the server is {where}, so it cannot keep {replicas} "
            f"copies of a stream (at most {nodes})")


def _stream_config(spec: StreamSpec, replicas: int) -> Any:
    from nats.js.api import RetentionPolicy, StorageType, StreamConfig

    return StreamConfig(
        name=spec.name,
        subjects=list(spec.subjects),
        storage=StorageType(spec.storage),
        retention=RetentionPolicy(spec.retention),
        max_age=spec.max_age_seconds,
        duplicate_window=spec.duplicate_window_seconds,
        max_msgs_per_subject=spec.max_msgs_per_subject,
        num_replicas=replicas,
    )


def consumer_config(spec: ConsumerSpec, replicas: int | None = None) -> Any:
    """The nats-py ``ConsumerConfig`` of a durable pull consumer (``replicas``: its copies
    in a cluster; None: as many as its stream)."""
    from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy

    return ConsumerConfig(
        durable_name=spec.durable,
        deliver_policy=DeliverPolicy.ALL,
        ack_policy=AckPolicy.EXPLICIT,
        ack_wait=spec.ack_wait_seconds,
        max_deliver=spec.max_deliver,
        max_ack_pending=spec.max_ack_pending,
        filter_subject=spec.filter_subject,
        num_replicas=replicas,
    )


def _reason(exc: Exception) -> str:
    return str(getattr(exc, "description", None) or exc or type(exc).__name__)


_T = TypeVar("_T")


class _Patience:
    """Retries JetStream requests that time out or find no leader, until a deadline.

    A NATS cluster that just lost a node still names the dead node as the leader of the
    streams it led for a few seconds, and requests to those streams time out until a new
    leader is elected; every request here is idempotent (an identical create is a no-op),
    so asking again is safe.
    """

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.deadline = 0.0

    async def __call__(self, what: str, request: Callable[[], Awaitable[_T]]) -> _T:
        import asyncio

        from nats.errors import NoRespondersError
        from nats.errors import TimeoutError as NatsTimeout
        from nats.js.errors import ServiceUnavailableError

        loop = asyncio.get_running_loop()
        if not self.deadline:
            self.deadline = loop.time() + self.seconds
        while True:
            try:
                return await request()
            except (NatsTimeout, NoRespondersError, ServiceUnavailableError) as exc:
                if loop.time() > self.deadline:
                    raise StreamSetupError(
                        f"JetStream did not answer {what} within {self.seconds:.0f} s "
                        f"({type(exc).__name__}): is a majority of the cluster's nodes up?"
                    ) from exc
            await asyncio.sleep(0.2)

    async def led(self, js: Any, name: str) -> Any:
        """The stream's info once it has a leader (at once outside a cluster)."""

        async def info() -> Any:
            got = await js.stream_info(name)
            if got.cluster is not None and not got.cluster.leader:
                from nats.js.errors import ServiceUnavailableError

                raise ServiceUnavailableError(description="the stream elects its leader")
            return got

        return await self(f"for stream {name}", info)


async def setup_streams(js: Any, contract: BusContract = DEFAULT_CONTRACT, *,
                        replicas: int | None = None,
                        patience: float = 30.0) -> list[Declared]:
    """Create or update every stream and consumer of ``contract``; one :class:`Declared`
    per object (``str()`` of it is a line for a terminal).

    ``js`` is a nats-py ``JetStreamContext``. A stream that exists is updated to the
    contract (its messages are kept); a consumer that exists is updated in place.

    ``replicas``: the copies of each stream (and of its consumers) the cluster keeps; more
    than the server's :func:`cluster_size` is refused with a :class:`StreamSetupError`.
    Without it, :func:`default_replicas` of the cluster size for a new stream, and an
    existing stream keeps more copies than that if it has them (only an explicit
    ``replicas`` lowers the count). On a cluster that is electing leaders (a node just
    died or came back), requests are repeated for up to ``patience`` seconds.
    """
    from nats.js.errors import BadRequestError, NotFoundError

    nodes = cluster_size(getattr(js, "_nc", None))  # the context's client (nats-py)
    if replicas is not None:
        _check_replicas(replicas, nodes)
    wanted = replicas if replicas is not None else default_replicas(nodes)
    ask = _Patience(patience)
    done: list[Declared] = []
    copies: dict[str, int] = {}
    for spec in contract.streams:
        try:
            info = await ask.led(js, spec.name)
        except NotFoundError:
            info = None
        had = info.config.num_replicas or 1 if info is not None else 0
        now = wanted if replicas is not None or info is None else max(had, wanted)
        config = _stream_config(spec, now)
        try:
            if info is None:
                await ask(f"creating stream {spec.name}", partial(js.add_stream, config))
            else:
                await ask(f"updating stream {spec.name}", partial(js.update_stream, config))
        except BadRequestError as exc:
            doing = "created" if info is None else "updated"
            raise StreamSetupError(f"stream {spec.name} cannot be {doing} with {now} "
                                   f"replica(s): {_reason(exc)}") from exc
        if now != had:
            await ask.led(js, spec.name)  # its copies elect a leader before it takes more
        copies[spec.name] = now
        state = ("created" if info is None else
                 "up to date" if now == had else f"replicas {had} -> {now}")
        done.append(Declared("stream", spec.name, state, now))
    for cons in contract.consumers:
        count = copies.get(cons.stream)
        config = consumer_config(cons, count)
        try:
            await ask(f"declaring consumer {cons.stream}/{cons.durable}",
                      partial(js.add_consumer, cons.stream, config=config))
        except BadRequestError as exc:
            raise StreamSetupError(
                f"consumer {cons.stream}/{cons.durable} cannot be created or updated: "
                f"{_reason(exc)}") from exc
        done.append(Declared("consumer", f"{cons.stream}/{cons.durable}", "ready", count or 1))
    return done
