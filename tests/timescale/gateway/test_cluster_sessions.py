"""An account's session owned cluster-wide (docs/gateway.md, "Several gateways: who owns an
account"): a connection on another gateway supersedes the first, the old gateway closes it
(``SUPERSEDED``) before the new one says WELCOME, and a claim the handover request missed is
found by the lease renewal. Two gateways in this process, on one nats-server."""

from __future__ import annotations

import asyncio
import statistics
import time
import uuid
from pathlib import Path

import nats
import pytest

from suho_mt5.gateway import Gateway
from suho_mt5.gateway._ownership import Claim
from suho_mt5.gateway.client import EAConnection, open_connection
from suho_mt5.protocol import CloseCode

from ._support import GatewayDb, gateway_process, metric, running_gateway, wait_for


def _url(gw: Gateway, transport: str) -> str:
    port = gw.ws_port if transport == "ws" else gw.tcp_port
    return f"{transport}://127.0.0.1:{port}"


async def _closed_at(conn: EAConnection) -> tuple[int | None, float]:
    code = await conn.wait_closed(10)
    return code, time.monotonic()


@pytest.mark.timeout(120)
def test_a_connection_on_another_gateway_supersedes_the_first(
    gw_db: GatewayDb, nats_url: str
) -> None:
    accounts = gw_db.accounts[765:775]

    async def scenario() -> list[float]:
        bounds: list[float] = []
        async with running_gateway(gw_db, nats_url) as gw1, \
                running_gateway(gw_db, nats_url) as gw2:
            pairs = [(gw1, gw2), (gw2, gw1)]
            for gw in (gw1, gw2):  # keys verified once: the bound is the handover's own
                for me in accounts:
                    await gw.authenticator.authenticate(me.account_id, me.api_key)
            for i, me in enumerate(accounts):
                old_gw, new_gw = pairs[i % 2]
                first = await open_connection(_url(old_gw, "tcp" if i % 4 < 2 else "ws"))
                await first.hello(me.account_id, me.api_key)
                assert me.account_id in old_gw.sessions
                closing = asyncio.create_task(_closed_at(first))
                second = await open_connection(_url(new_gw, "ws" if i % 4 < 2 else "tcp"))
                sent = time.monotonic()
                await second.hello(me.account_id, me.api_key)
                welcomed = time.monotonic()
                code, closed = await closing
                assert code == CloseCode.SUPERSEDED
                # The old session ended before the new one said WELCOME (its last frame is
                # on the bus when the new one reads the highest stored sequence).
                assert closed <= welcomed
                assert me.account_id not in old_gw.sessions
                assert me.account_id in new_gw.sessions
                bounds.append(closed - sent)
                await second.close()
                assert await wait_for(lambda a=me.account_id, g=new_gw: a not in g.sessions, 5)
            handed = sum(metric(g, "suho_gateway_handovers_total", result="closed")
                         for g in (gw1, gw2))
            assert handed == len(accounts)
            lost = sum(metric(g, "suho_gateway_ownership_lost_total", reason="superseded")
                       for g in (gw1, gw2))
            assert lost == len(accounts)
        return bounds

    bounds = asyncio.run(scenario())
    print(f"\nsupersede across gateways, HELLO on the new gateway -> the old connection "
          f"closed: median {statistics.median(bounds) * 1000:.1f} ms, "
          f"max {max(bounds) * 1000:.1f} ms over {len(bounds)} accounts")


@pytest.mark.timeout(60)
def test_a_claim_the_handover_missed_is_found_by_the_lease_renewal(
    gw_db: GatewayDb, nats_url: str
) -> None:
    """Another gateway's claim written while the request to close did not reach this one
    (a partition that healed, a lost request): the next renewal finds a newer revision and
    closes the session. The key is gone once the session ended, unless another owner
    wrote it."""
    me, other = gw_db.accounts[775], gw_db.accounts[776]
    lease = 1.5

    async def scenario() -> float:
        async with running_gateway(gw_db, nats_url, session_lease_s=lease) as gw:
            nc = await nats.connect(nats_url)
            try:
                kv = await nc.jetstream().key_value("MT5_SESSIONS")
                conn = await open_connection(_url(gw, "tcp"))
                await conn.hello(me.account_id, me.api_key)
                entry = await kv.get(me.account_id.hex)
                owner = Claim.decode(entry.value)
                assert owner is not None and owner.tenant == "tenant_gw"
                closing = asyncio.create_task(_closed_at(conn))
                # A gateway that has no responder (it is cut off): written as it would.
                await kv.put(me.account_id.hex,
                             Claim(uuid.uuid4().hex, "gateway@elsewhere:1", "tenant_gw").encode())
                written = time.monotonic()
                code, closed = await closing
                assert code == CloseCode.SUPERSEDED
                newer = Claim.decode((await kv.get(me.account_id.hex)).value)
                assert newer is not None and newer.name == "gateway@elsewhere:1", \
                    "the newer owner's key was deleted"
                # A session that ends normally deletes its key.
                plain = await open_connection(_url(gw, "ws"))
                await plain.hello(other.account_id, other.api_key)
                assert (await kv.get(other.account_id.hex)).value
                await plain.close()

                async def released() -> bool:
                    try:
                        await kv.get(other.account_id.hex)
                    except Exception:
                        return True
                    return False

                assert await wait_for(released, 5)
                assert metric(gw, "suho_gateway_ownership_lost_total",
                              reason="superseded") == 1
                return closed - written
            finally:
                await nc.close()

    found = asyncio.run(scenario())
    assert found < lease + 2
    print(f"\na claim the handover missed: the session closed {found:.2f} s after it was "
          f"written (renewal every {lease / 3:.2f} s)")


@pytest.mark.timeout(60)
def test_an_account_whose_gateway_died_is_claimed_at_once(
    gw_db: GatewayDb, nats_url: str, tmp_path: Path
) -> None:
    """The bucket still names the SIGKILLed gateway (its lease has not expired): the claim
    asks it to close, nobody answers (no responders), and the new session opens at once."""
    me = gw_db.accounts[777]

    async def scenario() -> float:
        with gateway_process(gw_db, nats_url, tmp_path) as dead:
            conn = await open_connection(dead.url("tcp"))
            await conn.hello(me.account_id, me.api_key)
            dead.kill()
            conn.abort()
        async with running_gateway(gw_db, nats_url) as gw:
            again = await open_connection(_url(gw, "ws"))
            sent = time.monotonic()
            await again.hello(me.account_id, me.api_key)
            took = time.monotonic() - sent
            assert metric(gw, "suho_gateway_handovers_total", result="gone") == 1
            await again.close()
        return took

    took = asyncio.run(scenario())
    print(f"\nclaim of an account whose gateway died: WELCOME after {took * 1000:.0f} ms")
