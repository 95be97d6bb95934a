"""A job's mailbox: bounded per peer and per job, failing with the peer and the tag."""

from __future__ import annotations

import pytest

from vfl.errors import MailboxFullError
from vfl.parties.config import MailboxConfig
from vfl.parties.mailbox import Mailbox


def test_the_default_bounds_refuse_the_probes_two_300_mb_messages_before_they_arrive():
    limits = MailboxConfig()
    box = Mailbox("partner", limits.peer_bytes, limits.job_bytes)
    box.admit("bank", "job/-/junk-1", 300_000_000)  # sizes are declared before the bytes stream in
    with pytest.raises(MailboxFullError, match=r"peer 'bank'.*'job/-/junk-2'.*bytes per peer"):
        box.admit("bank", "job/-/junk-2", 300_000_000)
    with pytest.raises(MailboxFullError, match="peer 'bank'"):  # every later wait fails, too
        box.get("bank", "job/-/x", 0.1)


def test_reading_frees_room_and_the_job_bound_counts_every_peer():
    box = Mailbox("partner", peer_bytes=100, job_bytes=150)
    for _ in range(5):  # read as fast as they come: never over the bound
        box.put("bank", "k", b"x" * 80)
        assert box.get("bank", "k", 0.1) == b"x" * 80
    box.put("bank", "a", b"x" * 80)
    with pytest.raises(MailboxFullError, match=r"peer 'other'.*'b'.*150 bytes per job"):
        box.put("other", "b", b"x" * 80)  # 80 of 100 for 'other', but 160 of 150 in the job


def test_a_duplicate_or_broken_message_gives_its_room_back():
    box = Mailbox("partner", peer_bytes=100)
    assert box.put("bank", "k", b"x" * 60, message_id="m")
    box.admit("bank", "k", 30)
    box.release("bank", 30)  # the stream broke off
    assert box.get("bank", "k", 0.1) == b"x" * 60
    assert box.put("bank", "k", b"x" * 60, message_id="m") is False  # a retry: dropped, not counted
    assert box.put("bank", "k", b"x" * 90)  # would not fit if the duplicate still counted
