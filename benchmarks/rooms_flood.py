"""Does one team's flood slow another team down? A quiet team's p99, alone and beside a flood.

    python benchmarks/rooms_flood.py [--rate 500] [--duration 10] [--rounds 3] [--race-window-ms 20]

Starts `bankapp serve` on a free loopback port with an admin token, makes a
room of two teams (`POST /admin/rooms`: `flood` and `quiet`), and measures
the quiet team's deposit latency (one client, one deposit after another,
`/teams/quiet/accounts/.../deposit`) twice per round: alone, then while the
`flood` team's clients send deposits at `--rate` requests a second (open
loop: each sender keeps its own schedule, whatever the answers). Every
deposit holds its thread for `--race-window-ms`, so the flood asks for more
threads than its share (`bankapp.rooms.share`: a share each, the spare lent,
one share kept free); past its share the flood is answered 503 `team-share`
at once. It prints, per round, the quiet p50/p99 alone and flooded, their
ratio, and what the flood got (answered 200, refused 503, achieved rate);
then the median p99 ratio of the rounds. Goal (issue 24): under 2x.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import threading
import time

import requests

from bankapp.server.processes import ServerProcess

TOKEN = "rooms-flood-benchmark"
ADMIN = {"Authorization": f"Bearer {TOKEN}"}


def percentile(samples: list[float], share: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))] if ordered else float("nan")


def quiet_run(url: str, seconds: float) -> list[float]:
    """One client of the quiet team, deposit after deposit, for `seconds`: each latency in ms."""
    times: list[float] = []
    deadline = time.monotonic() + seconds
    with requests.Session() as session:
        while time.monotonic() < deadline:
            started = time.perf_counter()
            response = session.post(url + "/teams/quiet/accounts/acc-01/deposit", json={"amount": 1}, timeout=10)
            times.append((time.perf_counter() - started) * 1000)
            assert response.status_code == 200, response.text
            time.sleep(0.01)
    return times


class Flood:
    """`senders` threads, together `rate` deposits a second to the flood team, each on its own schedule."""

    def __init__(self, url: str, rate: float, senders: int):
        self.url, self.rate, self.senders = url, rate, senders
        self.stop = threading.Event()
        self.answers: dict[int, int] = {}
        self.lock = threading.Lock()
        self.threads = [threading.Thread(target=self._send, args=(i,), daemon=True) for i in range(senders)]

    def _send(self, index: int) -> None:
        interval = self.senders / self.rate
        due = time.monotonic() + index * interval / self.senders
        with requests.Session() as session:
            while not self.stop.is_set():
                time.sleep(max(0.0, due - time.monotonic()))
                due += interval
                account = f"acc-{index % 8:02d}"  # eight accounts: the flood waits on its threads, not one lock
                try:
                    status = session.post(
                        self.url + f"/teams/flood/accounts/{account}/deposit", json={"amount": 1}, timeout=10
                    ).status_code
                except requests.RequestException:
                    status = 0
                with self.lock:
                    self.answers[status] = self.answers.get(status, 0) + 1

    def __enter__(self) -> Flood:
        self.started = time.monotonic()
        for thread in self.threads:
            thread.start()
        return self

    def __exit__(self, *exc_info) -> None:
        self.stop.set()
        for thread in self.threads:
            thread.join(timeout=15)
        self.seconds = time.monotonic() - self.started


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rate", type=float, default=500, help="the flood's deposits per second [%(default)s]")
    parser.add_argument("--duration", type=float, default=10, help="seconds of each measurement [%(default)s]")
    parser.add_argument("--rounds", type=int, default=3, help="rounds of alone, then flooded [%(default)s]")
    parser.add_argument("--senders", type=int, default=48, help="the flood's client threads [%(default)s]")
    parser.add_argument("--race-window-ms", default="20", help="how long each deposit holds its thread")
    args = parser.parse_args(argv)
    flags = ("--admin-token", TOKEN, "--race-window-ms", args.race_window_ms, "--guard", "lock")
    ratios = []
    with ServerProcess(*flags) as server:
        made = requests.post(server.url + "/admin/rooms", json={"teams": ["flood", "quiet"]}, headers=ADMIN, timeout=10)
        made.raise_for_status()
        print(f"room: teams flood and quiet; quiet deposits alone vs beside {args.rate:g} flood deposits/s")
        print(f"{'round':>5}  {'alone p50':>9}  {'alone p99':>9}  {'flood p50':>9}  {'flood p99':>9}  ratio  flood got")
        for index in range(1, args.rounds + 1):
            alone = quiet_run(server.url, args.duration)
            with Flood(server.url, args.rate, args.senders) as flood:
                flooded = quiet_run(server.url, args.duration)
            ratio = percentile(flooded, 0.99) / percentile(alone, 0.99)
            ratios.append(ratio)
            got = flood.answers
            sent = sum(got.values())
            print(
                f"{index:>5}  {percentile(alone, 0.5):>7.1f}ms  {percentile(alone, 0.99):>7.1f}ms  "
                f"{percentile(flooded, 0.5):>7.1f}ms  {percentile(flooded, 0.99):>7.1f}ms  {ratio:>5.2f}  "
                f"{sent / flood.seconds:.0f}/s sent: {got.get(200, 0)} answered, {got.get(503, 0)} refused 503, "
                f"{sent - got.get(200, 0) - got.get(503, 0)} other"
            )
        room = requests.get(server.url + "/admin/rooms", headers=ADMIN, timeout=10).json()
        share = next(team["share"] for team in room["teams"] if team["name"] == "flood")
        print(f"flood's share: {share['share']} of {share['budget']} threads; borrowed {share['borrowed']} times")
    print(f"median p99 ratio, flooded / alone: {statistics.median(ratios):.2f} (goal: under 2)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
