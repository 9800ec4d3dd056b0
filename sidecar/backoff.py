"""Exponential backoff with jitter: many sites cut off at once do not all call back at once."""

import random
from collections.abc import Callable


class Backoff:
    def __init__(
        self,
        initial: float = 1.0,
        maximum: float = 30.0,
        factor: float = 2.0,
        jitter: Callable[[], float] = random.random,
    ) -> None:
        self.initial = initial
        self.maximum = maximum
        self.factor = factor
        self.jitter = jitter
        self.attempt = 0

    def next(self) -> float:
        """The next wait: the exponential step, capped, then a random half of it taken off."""
        step = min(self.maximum, self.initial * self.factor**self.attempt)
        self.attempt += 1
        return step * (0.5 + self.jitter() / 2)

    def reset(self) -> None:
        self.attempt = 0
