"""The comparison runner: repeats with rotated order, ``--verify``, billed endpoints, Zipf."""

from __future__ import annotations

import signal

from eventstore_core.compare import runner
from eventstore_core.compare.facts import estimate_billed_usd, load_prices
from eventstore_core.compare.runner import RunOptions, run_comparison
from eventstore_core.compare.stats import Zipf, latency_summary, per_interval_rates
from eventstore_core.compare.targets import is_billed, memory_target, sqlite_target
from eventstore_core.compare.verify import parse_junit, run_suite
from eventstore_core.compare.workloads import QUICK

TINY = QUICK.scaled(0.05)


def test_repeats_keep_the_median_and_the_spread_of_each_figure() -> None:
    results = run_comparison([memory_target(), sqlite_target()], RunOptions(TINY, repeat=2))
    for entry in results["backends"]:
        assert len(entry["runs"]) == 2
        workload = entry["workloads"][0]
        assert workload["repeats"] == 2
        assert workload["spread"]["events_per_s"] >= 0.0
        assert entry["sound"]


def test_a_run_after_an_interrupted_one_measures_everything_even_with_sigint_ignored() -> None:
    # What a run that Ctrl-C ended leaves behind; a process whose SIGINT is ignored (a
    # background job) takes the path that does not install the handler.
    runner._INTERRUPTED.set()
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        results = run_comparison([memory_target()], RunOptions(TINY))
    finally:
        signal.signal(signal.SIGINT, previous)
    assert results["interrupted"] is False
    (entry,) = results["backends"]
    assert entry["workloads"], "a stale interruption flag skipped every workload"
    assert entry["sound"]


def test_the_verify_option_runs_the_conformance_suite_and_counts_it() -> None:
    counts = run_suite("memory://verify-check", select="capabilities")
    assert counts.get("error") is None
    assert counts["passed"] > 0
    assert counts["failed"] == 0


def test_junit_counts_tell_declared_shortfalls_from_skips_and_failures() -> None:
    text = """<testsuites><testsuite>
      <testcase classname="suite.test_a" name="test_ok"/>
      <testcase classname="suite.test_a" name="test_short"><skipped type="pytest.xfail"/></testcase>
      <testcase classname="suite.test_a" name="test_skip"><skipped type="pytest.skip"/></testcase>
      <testcase classname="suite.test_b" name="test_bad"><failure message="x"/></testcase>
    </testsuite></testsuites>"""
    counts = parse_junit(text)
    assert {k: counts[k] for k in ("passed", "failed", "skipped", "xfailed")} == {
        "passed": 1,
        "failed": 1,
        "skipped": 1,
        "xfailed": 1,
    }
    assert counts["failures"] == ["suite.test_b.test_bad"]


def test_only_dynamodb_beyond_loopback_counts_as_billed() -> None:
    assert is_billed("dynamodb://events?region=eu-west-1")
    assert is_billed("dynamodb://events?endpoint_url=https://dynamodb.eu-west-1.amazonaws.com")
    assert not is_billed("dynamodb://events?endpoint_url=http://127.0.0.1:8000")
    assert not is_billed("dynamodb://events?endpoint_url=http://localhost:8000")
    assert not is_billed("postgresql://db.example.com/app")
    # The worst case of a quick run is priced before it starts, in dollars, not infinity.
    assert 0 < estimate_billed_usd(QUICK, load_prices()) < 1.0


def test_zipf_is_seeded_and_skewed_towards_the_first_ranks() -> None:
    first = [Zipf(8, 1.1, seed=3).sample() for _ in range(1)]
    sampler_a, sampler_b = Zipf(8, 1.1, seed=3), Zipf(8, 1.1, seed=3)
    draws = [sampler_a.sample() for _ in range(2000)]
    assert draws == [sampler_b.sample() for _ in range(2000)]
    assert first[0] == draws[0]
    assert draws.count(0) > draws.count(7) * 4
    assert abs(draws.count(0) / 2000 - Zipf(8, 1.1, seed=0).share_of_top()) < 0.05


def test_percentiles_are_observed_values_and_series_count_per_second() -> None:
    summary = latency_summary([0.001 * i for i in range(1, 101)])
    assert summary["p50"] == 50.0
    assert summary["p99"] == 99.0
    assert summary["max"] == 100.0
    assert per_interval_rates([0.1, 0.2, 0.6, 1.2], [1, 1, 2, 5], interval=0.5) == [4.0, 4.0]
