"""The choice between UDP and the TCP/443 fallback, on a clock the test moves."""

from sidecar.backoff import Backoff
from sidecar.transport import TransportChoice


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def choice(clock: Clock) -> TransportChoice:
    steady = Backoff(initial=60, maximum=600, jitter=lambda: 1.0)  # no randomness in the test
    return TransportChoice(fallback_after=12, retry_udp=60, clock=clock, backoff=steady)


def test_a_handshake_over_udp_keeps_udp() -> None:
    clock = Clock()
    made = choice(clock)
    made.new_session()
    clock.now += 1
    assert made.decide(handshake=clock.now) is None
    clock.now += 100  # long after: the session had its handshake, nothing waits
    assert made.decide(handshake=clock.now - 99) is None
    assert made.way == "udp"
    assert not made.needs_stream


def test_no_handshake_over_udp_in_time_moves_to_the_stream() -> None:
    clock = Clock()
    made = choice(clock)
    made.new_session()
    clock.now += 11
    assert made.decide(handshake=None) is None
    made.new_session()  # the link registered again: the wait keeps its start
    clock.now += 1
    assert made.decide(handshake=None) == "tcp"
    assert made.needs_stream


def test_an_old_handshake_does_not_count_for_a_new_session() -> None:
    clock = Clock()
    made = choice(clock)
    made.new_session()
    assert made.decide(handshake=clock.now) is None  # UDP worked
    clock.now += 300
    made.new_session()  # the tunnel died, the link registered again
    clock.now += 12
    assert made.decide(handshake=clock.now - 312) == "tcp"


def test_on_the_stream_udp_is_tried_again_and_kept_when_it_works() -> None:
    clock = Clock()
    made = choice(clock)
    made.new_session()
    clock.now += 12
    assert made.decide(None) == "tcp"
    made.new_session()
    clock.now += 1
    assert made.decide(clock.now) is None  # the stream's handshake
    clock.now += 59
    assert made.decide(clock.now - 59) == "udp"
    assert made.trying_udp
    assert made.needs_stream  # the stream stays while UDP is on trial
    made.new_session()
    clock.now += 2
    assert made.decide(clock.now) is None
    assert made.way == "udp"
    assert not made.needs_stream


def test_a_failed_try_goes_back_to_the_stream_and_waits_longer() -> None:
    clock = Clock()
    made = choice(clock)
    made.new_session()
    clock.now += 12
    assert made.decide(None) == "tcp"
    clock.now += 60
    assert made.decide(None) == "udp"
    made.new_session()
    clock.now += 12
    assert made.decide(None) == "tcp"
    clock.now += 60
    assert made.decide(None) is None  # the next try only after twice the wait
    clock.now += 60
    assert made.decide(None) == "udp"
