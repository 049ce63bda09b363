"""mitmproxy script for profiling inside mitmdump (used by `--profile`):
cProfile runs from the first request until shutdown and the stats are
written to the file named by the `bench_profile` option."""

from __future__ import annotations

import cProfile

from mitmproxy import ctx


class Profile:
    def __init__(self) -> None:
        self.profiler: cProfile.Profile | None = None

    def load(self, loader) -> None:
        loader.add_option("bench_profile", str, "", "Write cProfile stats here at shutdown.")

    def running(self) -> None:
        self.profiler = cProfile.Profile()
        self.profiler.enable()

    def done(self) -> None:
        if self.profiler is not None:
            self.profiler.disable()
            if ctx.options.bench_profile:
                self.profiler.dump_stats(ctx.options.bench_profile)


addons = [Profile()]
