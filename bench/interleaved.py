"""Time variants of one operation against a floor, interleaved slice by slice, for the in-memory benchmarks.

On a shared, loaded machine the speed of the same code changes from one
second to the next, so a floor measured a second apart from what it is the
floor of says little. Here every variant runs over the same numbered inputs
in small slices (``slice_size`` operations), the variants one after another
for each slice, their order rotated slice by slice; each slice gives each
variant's ratio to the floor of the same slice, measured a few milliseconds
apart. A ratio printed is the median of those paired ratios, by the clock
(``perf_counter``) and by this thread's CPU time (``thread_time``: the time
the process was not scheduled is left out of both).
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

# A variant runs inputs [start, stop) of its own prepared list.
Run = Callable[[int, int], None]


@dataclass
class Samples:
    wall: list[float] = field(default_factory=list)
    """Seconds per slice."""
    cpu: list[float] = field(default_factory=list)


def run_interleaved(
    variants: Mapping[str, Run], count: int, *, slice_size: int = 50, samples: dict[str, Samples] | None = None
) -> dict[str, Samples]:
    """Run every variant over inputs 0..count in slices; add each slice's times to ``samples``."""
    samples = samples if samples is not None else {}
    names = list(variants)
    for index, start in enumerate(range(0, count, slice_size)):
        stop = min(start + slice_size, count)
        turn = index % len(names)
        for name in names[turn:] + names[:turn]:
            wall, cpu = time.perf_counter(), time.thread_time()
            variants[name](start, stop)
            cpu, wall = time.thread_time() - cpu, time.perf_counter() - wall
            sample = samples.setdefault(name, Samples())
            sample.wall.append(wall / (stop - start))
            sample.cpu.append(cpu / (stop - start))
    return samples


def report(samples: Mapping[str, Samples], labels: Mapping[str, str], floor: str) -> None:
    """Each variant's median µs/op and its median paired ratio to ``floor``, by the clock and by CPU time."""
    base = samples[floor]
    print(f"{'':50s} {'µs/op':>8s} {'ratio (clock)':>14s} {'ratio (CPU)':>12s}")
    for name, label in labels.items():
        sample = samples[name]
        by_clock = statistics.median(v / f for v, f in zip(sample.wall, base.wall, strict=True))
        by_cpu = statistics.median(v / f for v, f in zip(sample.cpu, base.cpu, strict=True) if f > 0)
        print(
            f"({name}) {label:46s} {statistics.median(sample.wall) * 1e6:8.1f} "
            f"{by_clock:13.2f}x {by_cpu:11.2f}x"
        )
