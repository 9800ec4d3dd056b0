from sidecar.backoff import Backoff


def test_waits_grow_exponentially_up_to_the_cap_with_jitter_below_each_step() -> None:
    longest = Backoff(initial=1, maximum=30, jitter=lambda: 1.0)
    assert [longest.next() for _ in range(7)] == [1, 2, 4, 8, 16, 30, 30]
    shortest = Backoff(initial=1, maximum=30, jitter=lambda: 0.0)
    assert [shortest.next() for _ in range(3)] == [0.5, 1, 2]


def test_reset_starts_over() -> None:
    backoff = Backoff(jitter=lambda: 1.0)
    for _ in range(5):
        backoff.next()
    backoff.reset()
    assert backoff.next() == 1


def test_real_jitter_stays_within_the_step() -> None:
    backoff = Backoff(initial=4, maximum=4)
    waits = [backoff.next() for _ in range(200)]
    assert all(2 <= wait <= 4 for wait in waits)
    assert len(set(waits)) > 100  # spread out, so cut-off sites do not call back together
