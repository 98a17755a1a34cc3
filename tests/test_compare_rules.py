"""The recommendation engine: requirements, thresholds, ties, exclusions, and the sentences.

The results here are built by hand (the engine reads only the results document), so each
test states exactly the figures its conclusion rests on.
"""

from __future__ import annotations

import inspect
import re
from typing import Any

import pytest

from eventstore_core.compare import facts
from eventstore_core.compare import rules as rules_module
from eventstore_core.compare.rules import evaluate

CAPS = {
    "concurrency": "multi-writer",
    "idempotency": "permanent",
    "global_order": "total",
    "live_subscriptions": "push",
    "max_event_bytes": 4_194_304,
    "max_append_events": 10_000,
    "shared_across_processes": True,
    "durable": True,
}

RULES: dict[str, Any] = {
    "noise": 0.1,
    "figures": {"hot_streams.events_per_s": {"label": "useful appends/s", "unit": "events/s"}},
    "profile": [
        {
            "id": "occ",
            "title": "OCC",
            "need": "no lost update",
            "require": {"concurrency": "multi-writer", "durable": True},
            "rank": "hot_streams.events_per_s",
            "better": "higher",
            "rate_figure": "hot_streams.events_per_s",
        }
    ],
}

BACKENDS = {
    "memory": {"traits": ["reference"]},
    "alpha": {"traits": ["server"]},
    "beta": {"traits": ["server"]},
    "gamma": {"traits": ["server"]},
}


def _entry(
    name: str,
    scheme: str,
    useful: float | None,
    *,
    caps: dict[str, Any] | None = None,
    sound: bool = True,
    status: str = "ok",
) -> dict[str, Any]:
    workloads = []
    if useful is not None:
        workloads.append(
            {
                "key": "hot_streams",
                "label": "hot",
                "figures": {"events_per_s": useful},
                "checks": [{"name": "no lost update", "passed": sound, "detail": "x"}],
                "sound": sound,
                "error": None,
                "skipped": None,
            }
        )
    return {
        "name": name,
        "scheme": scheme,
        "kind": "local-server",
        "status": status,
        "error": None if status == "ok" else "connection refused",
        "capabilities": caps or CAPS,
        "workloads": workloads,
        "sound": sound and bool(workloads),
    }


def _verdict(entries: list[dict[str, Any]], **thresholds: Any) -> Any:
    results = {"backends": [_entry("memory://", "memory", 10_000.0), *entries]}
    (verdict,) = evaluate(results, RULES, BACKENDS, [], **thresholds)
    return verdict


def test_the_best_figure_is_chosen_and_every_sentence_names_its_figure() -> None:
    verdict = _verdict([_entry("A", "alpha", 900.0), _entry("B", "beta", 300.0)])
    assert verdict.chosen == ["A"]
    assert [r.name for r in verdict.ranking] == ["A", "B"]
    assert verdict.sentences[0] == (
        "A ranks first on useful appends/s: 900 events/s on this machine, 0.09x memory://."
    )
    assert "B at 300 events/s on this machine, 0.03x memory://" in verdict.sentences[1]
    assert all("useful appends/s" in s or re.search(r"\d", s) for s in verdict.sentences)


def test_figures_within_the_noise_are_a_tie_not_a_winner() -> None:
    verdict = _verdict([_entry("A", "alpha", 1000.0), _entry("B", "beta", 950.0)])
    assert verdict.chosen == ["A", "B"]
    assert verdict.sentences[0].startswith("A tie on useful appends/s")


def test_a_measured_spread_wider_than_the_noise_widens_the_tie() -> None:
    a = _entry("A", "alpha", 1000.0)
    a["workloads"][0]["spread"] = {"events_per_s": 0.4}
    verdict = _verdict([a, _entry("B", "beta", 700.0)])
    assert verdict.chosen == ["A", "B"]
    assert verdict.noise == pytest.approx(0.4)


def test_the_reference_is_never_recommended_even_when_fastest() -> None:
    verdict = _verdict([_entry("A", "alpha", 500.0)])
    assert verdict.chosen == ["A"]
    assert ("memory://", "reference column (the library's own cost), never recommended") in (
        verdict.excluded
    )


def test_an_unsound_backend_is_excluded_with_the_failed_check() -> None:
    verdict = _verdict([_entry("A", "alpha", 5000.0, sound=False), _entry("B", "beta", 100.0)])
    assert verdict.chosen == ["B"]
    reasons = dict(verdict.excluded)
    assert reasons["A"].startswith("unsound: hot_streams: no lost update")


def test_an_unreachable_backend_is_listed_with_its_error_never_dropped() -> None:
    verdict = _verdict([_entry("A", "alpha", None, status="unreachable")])
    assert verdict.chosen == []
    assert dict(verdict.excluded)["A"] == "did not run: unreachable (connection refused)"
    assert "No backend measured here qualifies" in verdict.sentences[0]


def test_a_missing_capability_excludes_and_says_which() -> None:
    weak = CAPS | {"concurrency": "single-writer"}
    verdict = _verdict([_entry("A", "alpha", 900.0, caps=weak), _entry("B", "beta", 100.0)])
    assert verdict.chosen == ["B"]
    assert dict(verdict.excluded)["A"] == "concurrency is 'single-writer', 'multi-writer' required"


def test_the_users_rate_threshold_excludes_slower_backends() -> None:
    verdict = _verdict([_entry("A", "alpha", 900.0), _entry("B", "beta", 300.0)], rate=500.0)
    assert verdict.chosen == ["A"]
    assert dict(verdict.excluded)["B"] == (
        "below --rate 500: useful appends/s is 300 on this machine"
    )


def test_the_shipped_rules_name_no_backend_and_cover_the_nine_profiles() -> None:
    rules = facts.load_rules()
    backends = facts.load_backends()
    ids = [profile["id"] for profile in rules["profile"]]
    assert len(ids) == 9
    names = set(backends) | {"postgres", "dynamo", "kafka", "kurrent", "sqlite", "memory"}
    # The engine's code knows no backend (its docstring may say memory:// is the reference).
    engine = inspect.getsource(rules_module).split('"""', 2)[2]
    assert not [n for n in names if re.search(rf"\b{n}\b", engine.lower())]
    # A rule's logic is capabilities, traits and figures; only a trait may name a product.
    logic = ("require", "rank", "rate_figure", "p99_figure", "also")
    for profile in rules["profile"]:
        code = " ".join(str(profile.get(key, "")) for key in logic).lower()
        assert not [n for n in names if n in code], profile["id"]
        assert profile["rank"] in rules["figures"], profile["id"]
    # Every trait a rule requires is held by some backend (no rule that nothing can meet).
    held = {trait for entry in backends.values() for trait in entry.get("traits", [])}
    for profile in rules["profile"]:
        assert set(profile.get("traits", [])) <= held


def test_the_shipped_prices_are_dated_and_sourced() -> None:
    for price in facts.load_prices():
        assert re.fullmatch(r"\d{4}-\d{2}-\d{2}", price["as_of"])
        assert price["source"].startswith("https://")
        assert price["kind"] in ("published", "estimate")


def test_a_protocol_double_is_measured_but_never_recommended() -> None:
    double = _entry("Double", "gamma", 9000.0)
    double["kind"] = "double"
    verdict = _verdict([double, _entry("B", "beta", 100.0)])
    assert verdict.chosen == ["B"]
    assert dict(verdict.excluded)["Double"].startswith("a protocol double")
