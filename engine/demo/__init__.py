"""``salescycle demo``: the whole sales cycle through the real engine, on a simulated clock,
with simulated people and reps answering over HTTP."""

from engine.demo.figures import demo_figures
from engine.demo.run import DEFAULT_START, DemoOptions, DemoRun, run_demo

__all__ = [
    # running it
    "DemoOptions",
    "DemoRun",
    "DEFAULT_START",
    "run_demo",
    # what it did
    "demo_figures",
]
