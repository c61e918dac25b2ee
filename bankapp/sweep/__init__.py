"""`bankapp sweep`: each guard across load, not at one point.

A compare row is one load level; a sweep measures every guard at several
(1, 2, 4, ... users, closed loop with Locust; or fixed arrival rates, open
loop), repeats each point to put a confidence interval on it, checks each
point with Little's law, and fits the Universal Scalability Law per guard to
tell contention (sigma) from coherency cost (kappa). See docs/sweeps.md.

Modules: `levels` (what the flags ask for, validated), `stats` (intervals,
Little's law), `usl` (the fit), `closed` (one Locust point), `openloop` (one
fixed-rate point), `runner` (the server, the guards, the repeats), `report`
(results.json, charts, a sentence per guard).
"""
