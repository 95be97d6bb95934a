import time

import numpy as np
import pytest

from vfl.errors import PeerError, PeerTimeoutError, ProtocolError
from vfl.net.codec import decode
from vfl.parties import InProcessChannel, simulate

ROLES = {"bank": "guest", "partner": "host"}


def test_each_party_runs_its_role_with_its_own_data():
    def guest(ctx, x):
        ctx.send("partner", "x", x)
        return ctx.recv("partner", "x_doubled")

    def host(ctx, factor):
        ctx.send("bank", "x_doubled", ctx.recv("bank", "x") * factor)
        return ctx.role

    out = simulate({"bank": (guest, {"x": np.arange(3.0)}), "partner": (host, {"factor": 2})}, ROLES)
    np.testing.assert_array_equal(out["bank"], [0.0, 2.0, 4.0])
    assert out["partner"] == "host"


def test_same_tag_in_different_jobs_and_steps_never_mixes():
    channel = InProcessChannel(["bank", "partner"])

    def guest(ctx):
        ctx.child("epoch", 1).send("partner", "z", 1)
        ctx.child("epoch", 2).send("partner", "z", 2)
        ctx.send("partner", "z", 0)

    def host(ctx):
        # read in the opposite order of sending: scopes keep them apart
        return [ctx.recv("bank", "z"), ctx.child("epoch", 2).recv("bank", "z"),
                ctx.child("epoch", 1).recv("bank", "z")]

    out = simulate({"bank": (guest, {}), "partner": (host, {})}, ROLES, job_id="job-a", channel=channel)
    assert out["partner"] == [0, 2, 1]

    # a second job on the same channel: its messages do not satisfy the first job's keys
    def guest_b(ctx):
        ctx.send("partner", "z", "from b")

    def host_b(ctx):
        return ctx.recv("bank", "z")

    out = simulate({"bank": (guest_b, {}), "partner": (host_b, {})}, ROLES, job_id="job-b", channel=channel)
    assert out["partner"] == "from b"

    def host_a_again(ctx):
        return ctx.recv("bank", "z", timeout=0.2)

    with pytest.raises(PeerTimeoutError):
        simulate({"bank": (lambda ctx: None, {}), "partner": (host_a_again, {})}, ROLES,
                 job_id="job-a", channel=InProcessChannel(["bank", "partner"]))


def test_a_role_that_never_sends_times_out_naming_peer_and_tag():
    def guest(ctx):
        return ctx.child("epoch", 3).recv("partner", "z_h")

    def host(ctx):
        return None  # never sends

    start = time.monotonic()
    with pytest.raises(PeerTimeoutError) as err:
        simulate({"bank": (guest, {}), "partner": (host, {})}, ROLES, job_id="j1", timeout=0.5)
    assert time.monotonic() - start < 5
    msg = str(err.value)
    assert "'partner'" in msg and "'z_h'" in msg and "epoch/3" in msg and "j1" in msg


def test_a_failing_party_releases_its_peer_and_its_error_is_raised():
    def guest(ctx):
        return ctx.recv("partner", "never", timeout=30)

    def host(ctx):
        raise ValueError("host data broken")

    start = time.monotonic()
    with pytest.raises(ValueError, match="host data broken"):
        simulate({"bank": (guest, {}), "partner": (host, {})}, ROLES)
    assert time.monotonic() - start < 5


def test_peer_failure_reaches_waiting_party_as_peer_error():
    channel = InProcessChannel(["bank", "partner"])
    channel.fail_party("partner", "process killed")
    with pytest.raises(PeerError, match="partner.*process killed"):
        channel.recv("bank", "partner", "k", timeout=5)


def test_unknown_peer_is_a_protocol_error():
    def guest(ctx):
        ctx.send("mallory", "x", 1)

    with pytest.raises(ProtocolError, match="'mallory' is not a peer"):
        simulate({"bank": (guest, {}), "partner": (lambda ctx: None, {})}, ROLES)


def test_taps_see_every_message_as_wire_bytes():
    seen = []
    channel = InProcessChannel(["bank", "partner"], taps=[lambda s, r, k, p: seen.append((s, r, k, decode(p)))])

    def guest(ctx):
        ctx.broadcast("hello", {"a": 1})

    def host(ctx):
        return ctx.recv("bank", "hello")

    simulate({"bank": (guest, {}), "partner": (host, {})}, ROLES, job_id="j", channel=channel)
    assert seen == [("bank", "partner", "j/-/hello", {"a": 1})]
    assert channel.bytes_sent["bank"] > 0


def test_progress_events_reach_the_watcher():
    events = []

    def guest(ctx):
        ctx.child("train").progress(1, 2, loss=0.5)

    simulate({"bank": (guest, {}), "partner": (lambda ctx: None, {})}, ROLES, on_progress=events.append)
    assert [(e.party, e.step, e.done, e.total, e.info) for e in events] == [("bank", "train", 1, 2, {"loss": 0.5})]
