"""benchmarks/profile_step.py's alternation of two configurations (the timing itself needs a GPU to mean much)."""

from __future__ import annotations

from conftest import load_benchmark


def test_two_configurations_are_timed_alternately_in_both_orders():
    """Each round times every trainer's steps, the order reversed every other round, so that neither
    configuration always runs first (an order effect of up to 15% on an H100); warm-ups come first."""
    profile = load_benchmark("profile_step")
    calls = []

    class Trainer:
        def __init__(self, name):
            self.name = name

        def train_step(self):
            calls.append(self.name)

    times, warmups = profile.time_alternately([Trainer("a"), Trainer("b")], steps=2, warmup=1, rounds=3)
    a_first, b_first = ["a", "a", "b", "b"], ["b", "b", "a", "a"]
    assert calls == ["a", "b", *a_first, *b_first, *a_first]  # the warm-ups, then three rounds
    assert [len(t) for t in times] == [3, 3] and all(t >= 0 for row in times for t in row)
    assert len(warmups) == 2
