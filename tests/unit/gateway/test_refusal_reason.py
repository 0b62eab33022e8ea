"""What the EA's GOODBYE says when the bus refuses a publish (``refusal_reason``): the
server's own reason, short, and never the exception's text (which may quote a URL with its
credentials)."""

from __future__ import annotations

import nats.errors
from nats.js.errors import APIError, ServiceUnavailableError

from suho_mt5.gateway._bus import refusal_reason
from suho_mt5.gateway._common import detail


def test_a_store_out_of_space_is_named_with_its_jetstream_code() -> None:
    exc = ServiceUnavailableError(code=503, description="insufficient resources",
                                  err_code=10023)
    assert refusal_reason(exc, 5.0) == "insufficient resources (10023)"
    assert refusal_reason(APIError(code=503, description="jetstream not enabled"), 5.0) \
        == "jetstream not enabled"


def test_a_server_that_does_not_answer_is_named_by_the_wait() -> None:
    assert refusal_reason(nats.errors.TimeoutError(), 5.0) == "no PubAck in 5 s"
    assert refusal_reason(TimeoutError(), 1.5) == "no PubAck in 1.5 s"
    assert refusal_reason(nats.errors.NoRespondersError(), 5.0) == "no JetStream responders"


def test_other_failures_give_their_kind_and_no_text() -> None:
    secret = "nats://gw:hunter2@10.0.0.7:4222"
    reason = refusal_reason(ConnectionRefusedError(f"connect to {secret} refused"), 5.0)
    assert reason == "ConnectionRefusedError"
    assert "hunter2" not in reason


def test_every_reason_fits_the_goodbye_detail() -> None:
    for exc in (nats.errors.TimeoutError(), nats.errors.NoRespondersError(),
                ServiceUnavailableError(code=503, description="insufficient resources",
                                        err_code=10023)):
        text = "cannot publish to the bus: " + refusal_reason(exc, 5.0)
        assert detail(text) == text
