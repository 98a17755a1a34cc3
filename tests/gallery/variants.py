"""The broken variants: one realistic bug each, in a built-in adapter or in the core.

Each variant is a small subclass of a built-in adapter (``MemoryEventStore`` unless said
otherwise) that changes one hook the way a real bug would, or a patch of the core applied in
the subprocess that runs the suite against it. :data:`VARIANTS` describes them: the bug, the
test expected to catch it (the first to fail, under ``-x``), and which suite modules to run
(all by default).
"""

from __future__ import annotations

import asyncio
import bisect
import dataclasses
import threading
import weakref
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any, Literal

import orjson
from commit_holds import hold_at_seam
from eventstore_conformance import HoldCommit
from eventstore_memory import MemoryEventStore

from eventstore_core import serialization, store, validation
from eventstore_core.adapter import (
    ANY,
    MAX_NAME_LENGTH,
    STREAM_EXISTS,
    AppendResult,
    EventFilter,
    ExpectedVersion,
    InvalidEventError,
    ParsedUrl,
    Position,
    PreparedEvent,
    RecordedEvent,
    Refused,
    Snapshot,
    StoreOptions,
    Written,
    expected_range,
)
from eventstore_core.subscription import Subscription

Base = Literal["memory", "sqlite", "postgres"]


@dataclasses.dataclass(frozen=True)
class Variant:
    """One broken adapter of the gallery."""

    name: str
    """Also its URL scheme, ``broken-<name>``."""
    bug: str
    """The bug, in one line."""
    store: str
    """The store class: a name in this module, or ``module:name``."""
    caught_by: str
    """The test expected to fail first: its name, or a prefix ending in ``*``."""
    base: Base = "memory"
    modules: tuple[str, ...] = ()
    """Suite modules to run (``test_read_all``...); empty: the whole suite."""
    keyword: str = ""
    """A ``-k`` expression narrowing those modules, e.g. to leave out a test too heavy for
    the gallery's short timeout on a loaded machine (the control runs the same)."""
    patch: Callable[[], None] | None = None
    """A change to the core, applied in the subprocess before the tests run."""
    hold: HoldCommit | None = None
    """The variant's hold-commit hook, if its harness would provide one."""
    broken: bool = True
    """False for the controls: the unbroken adapters, which must pass the same run."""

    @property
    def scheme(self) -> str:
        """The URL scheme the variant is registered under."""
        return f"broken-{self.name}"

    @property
    def entry_point(self) -> str:
        """The entry point's value: ``module:Class``."""
        return self.store if ":" in self.store else f"gallery.variants:{self.store}"


# -- helpers -----------------------------------------------------------------------------------


class _PartlyPrivate:
    """The shared memory log, except for the parts given here: private to one connection."""

    def __init__(self, shared: Any, **private: Any) -> None:
        self._shared = shared
        self.__dict__.update(private)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._shared, name)


# -- idempotency -------------------------------------------------------------------------------


class IdsPerConnection(MemoryEventStore):
    """Remembers the event ids it wrote itself, not those of the store."""

    def __init__(self, url: ParsedUrl, options: StoreOptions) -> None:
        super().__init__(url, options)
        self._log = _PartlyPrivate(self._log, ids={}, batch_bounds={})  # type: ignore[assignment]


# -- validation (the core) ---------------------------------------------------------------------


def _narrow_names(*, controls: Callable[[str], bool], dollar: bool) -> None:
    """Replace the core's name check by a narrower one (the fast path goes too)."""

    def validate_name(value: object, what: str) -> str:
        if not isinstance(value, str):
            raise InvalidEventError(f"{what} must be a str", field=what)
        if not value or len(value) > MAX_NAME_LENGTH:
            raise InvalidEventError(f"{what} must have 1 to 255 characters", field=what)
        if dollar and value.startswith("$"):
            raise InvalidEventError(f"{what} starts with '$'", field=what)
        if any(controls(ch) for ch in value):
            raise InvalidEventError(f"{what} contains a control character", field=what)
        return value

    validation._is_plain_name = lambda value: False  # type: ignore[assignment]
    validation.validate_name = validate_name
    store.validate_name = validate_name  # type: ignore[attr-defined]


def ascii_controls_only() -> None:
    """Only ASCII controls (below U+0020) are refused: DEL and C1 controls slip through."""
    _narrow_names(controls=lambda ch: ord(ch) < 0x20, dollar=True)


def dollar_ids_allowed() -> None:
    """The ``$`` prefix, reserved for system streams, is not checked."""
    _narrow_names(
        controls=lambda ch: ord(ch) < 0x20 or 0x7F <= ord(ch) < 0xA0 or 0xD800 <= ord(ch) < 0xE000,
        dollar=False,
    )


def empty_batch_allowed() -> None:
    """``append(stream, [])`` is taken as a no-op instead of refused."""
    original = validation.prepare_batch

    def prepare_batch(events: Any, **limits: Any) -> list[PreparedEvent]:
        if isinstance(events, list | tuple) and not events:
            return []
        return original(events, **limits)

    store.prepare_batch = prepare_batch  # type: ignore[attr-defined]


def non_json_as_text() -> None:
    """Values JSON cannot represent are stored as their ``str()`` instead of refused."""

    def dumps(value: Any) -> bytes:
        return orjson.dumps(value, default=str)

    serialization.dumps = dumps


class EmptyBatchNoOp(MemoryEventStore):
    """With :func:`empty_batch_allowed`: an empty append "succeeds" at the current version."""

    async def _append(
        self, stream_id: str, events: Sequence[PreparedEvent], expected_version: ExpectedVersion
    ) -> Written | Refused:
        if not events:
            version = len(self._log.streams.get(stream_id, ()))
            return AppendResult(version, Position((max(1, len(self._log.partitions[0])),)))
        return await super()._append(stream_id, events, expected_version)


# -- expected versions -------------------------------------------------------------------------


class ExpectedVersionOffByOne(MemoryEventStore):
    """Compares an exact expected version with the version the append will *have*: a stream at
    version n-1 passes ``expected_version=n``."""

    async def _append(
        self, stream_id: str, events: Sequence[PreparedEvent], expected_version: ExpectedVersion
    ) -> Written | Refused:
        if isinstance(expected_version, int):
            version = len(self._log.streams.get(stream_id, ()))
            if version + 1 == expected_version:
                expected_version = version
        return await super()._append(stream_id, events, expected_version)


class StreamExistsAsAny(MemoryEventStore):
    """Treats ``STREAM_EXISTS`` as ``ANY``: appends to a stream that does not exist."""

    async def _append(
        self, stream_id: str, events: Sequence[PreparedEvent], expected_version: ExpectedVersion
    ) -> Written | Refused:
        if expected_version is STREAM_EXISTS:
            expected_version = ANY
        return await super()._append(stream_id, events, expected_version)


class BatchEventByEvent(MemoryEventStore):
    """Writes a batch one event at a time (one round trip each): concurrent batches interleave."""

    async def _append(
        self, stream_id: str, events: Sequence[PreparedEvent], expected_version: ExpectedVersion
    ) -> Written | Refused:
        written: Written | Refused = Refused(0)
        for index, event in enumerate(events):
            if index:
                await asyncio.sleep(0)  # the next event's round trip
            written = await super()._append(
                stream_id, [event], expected_version if index == 0 else ANY
            )
            if isinstance(written, Refused):
                return written
        return written


# -- reading -----------------------------------------------------------------------------------


class FilterAfterLimit(MemoryEventStore):
    """Takes a page of ``limit`` events, then filters it: a short page ends the read early."""

    async def _read_all_page(
        self, after: Position | None, filter: EventFilter | None, limit: int
    ) -> Sequence[RecordedEvent]:
        page = await super()._read_all_page(after, None, limit)
        if filter is None:
            return page
        return [e for e in page if filter.matches(e.stream_id, e.type)]


class OrderedByStream(MemoryEventStore):
    """Returns each page ordered by stream and version instead of commit order."""

    async def _read_all_page(
        self, after: Position | None, filter: EventFilter | None, limit: int
    ) -> Sequence[RecordedEvent]:
        page = await super()._read_all_page(after, filter, limit)
        return sorted(page, key=lambda e: (e.stream_id, e.version))


class CategoryByPrefix(MemoryEventStore):
    """Matches a category filter with ``startswith``: ``Order`` also matches ``Orders-1``."""

    async def _read_all_page(
        self, after: Position | None, filter: EventFilter | None, limit: int
    ) -> Sequence[RecordedEvent]:
        if filter is None or filter.categories is None:
            return await super()._read_all_page(after, filter, limit)
        types = filter.event_types
        start = 0 if after is None else after.parts[0]
        page: list[RecordedEvent] = []
        for event in self._log.partitions[0][start:]:
            if any(event.stream_id.startswith(c) for c in filter.categories) and (
                types is None or event.type in types
            ):
                page.append(event)
                if len(page) == limit:
                    break
        return page


class SequenceBeforeCommit(MemoryEventStore):
    """Draws global positions from a counter, then commits after an await (a round trip);
    reads return whatever has committed, past positions still in flight.

    The classic skip of a ``bigserial`` log without a gate: a reader that has seen position 8
    never gets 7 if 7 commits later. ``_hold_commit`` is the seam its test harness provides.
    """

    _hold_commit: Callable[[str], Any] | None = None

    def __init__(self, url: ParsedUrl, options: StoreOptions) -> None:
        super().__init__(url, options)
        log: Any = self._log
        if not hasattr(log, "counter"):
            log.counter = 0  # positions drawn
            log.committed = []  # committed events, in position order
            log.keys = []  # their positions (for bisect)

    async def _append(
        self, stream_id: str, events: Sequence[PreparedEvent], expected_version: ExpectedVersion
    ) -> Written | Refused:
        log: Any = self._log
        stream = log.streams.setdefault(stream_id, [])
        version = len(stream)
        existing = [log.ids[e.id] for e in events if e.id in log.ids]
        lo, hi = expected_range(expected_version)
        if existing or not lo <= version <= hi:
            return Refused(version, existing, log.batch_bounds)
        first = log.counter + 1
        log.counter += len(events)  # the sequence is drawn now...
        now = datetime.now(UTC)
        recorded = [
            RecordedEvent(
                stream_id,
                version + i,
                Position((first + i - 1,)),
                e.id,
                e.type,
                serialization.loads(e.data),
                serialization.loads(e.metadata),
                e.correlation_id,
                e.causation_id,
                now,
            )
            for i, e in enumerate(events, start=1)
        ]
        stream.extend(recorded)
        for event in recorded:
            log.ids[event.id] = event
            log.batch_bounds[event.id] = (version + 1, version + len(events))
        hold = self._hold_commit(stream_id) if self._hold_commit is not None else None
        if hold is not None:
            await hold
        await asyncio.sleep(0)  # ...and the commit happens a round trip later
        for event in recorded:
            index = bisect.bisect(log.keys, event.position.parts[0])
            log.keys.insert(index, event.position.parts[0])
            log.committed.insert(index, event)
        for notifier in log.notifiers:
            if notifier is not self._notifier:
                notifier.notify()
        return AppendResult(version + len(events), recorded[-1].position)

    async def _read_all_page(
        self, after: Position | None, filter: EventFilter | None, limit: int
    ) -> Sequence[RecordedEvent]:
        log: Any = self._log
        start = bisect.bisect(log.keys, 0 if after is None else after.parts[0])
        page: list[RecordedEvent] = []
        for event in log.committed[start:]:
            if filter is None or filter.matches(event.stream_id, event.type):
                page.append(event)
                if len(page) == limit:
                    break
        return page


# -- subscriptions -----------------------------------------------------------------------------


class _SkipsFirstLiveEvent(Subscription):
    _skipped = False

    async def __anext__(self) -> RecordedEvent:
        while True:
            was_live = self.is_live
            event = await super().__anext__()
            if was_live and not self._skipped:
                self._skipped = True  # an off-by-one when switching from catch-up to live
                continue
            return event


class _NeverLive(Subscription):
    @property
    def is_live(self) -> bool:
        return False


class SkipsFirstLiveEvent(MemoryEventStore):
    """Its subscriptions drop the first event after catching up."""

    def subscribe(self, *args: Any, **kwargs: Any) -> Subscription:
        subscription = super().subscribe(*args, **kwargs)
        subscription.__class__ = _SkipsFirstLiveEvent
        return subscription


class NeverLive(MemoryEventStore):
    """Its subscriptions never set ``is_live``."""

    def subscribe(self, *args: Any, **kwargs: Any) -> Subscription:
        subscription = super().subscribe(*args, **kwargs)
        subscription.__class__ = _NeverLive
        return subscription


class LostWakeUp(MemoryEventStore):
    """Its commits wake its own subscriptions only: others on the same store wait for the
    fallback poll (a NOTIFY never sent)."""

    def __init__(self, url: ParsedUrl, options: StoreOptions) -> None:
        super().__init__(url, options)
        self._log = _PartlyPrivate(self._log, notifiers=weakref.WeakSet())  # type: ignore[assignment]


# -- checkpoints, snapshots --------------------------------------------------------------------


class CheckpointNotOverwritten(MemoryEventStore):
    """Saves a checkpoint only if none is saved under that name (an INSERT without upsert)."""

    async def _save_checkpoint(self, name: str, position: Position) -> None:
        self._log.checkpoints.setdefault(name, position)


class OlderSnapshotWins(MemoryEventStore):
    """Saves every snapshot, whatever its version: the last saved wins, even an older one."""

    async def _save_snapshot(self, snapshot: Snapshot, data: bytes) -> None:
        self._log.snapshots[snapshot.stream_id] = Snapshot(
            snapshot.stream_id, snapshot.version, snapshot.type, serialization.loads(data)
        )


# -- resources ---------------------------------------------------------------------------------


class TaskLeftAfterClose(MemoryEventStore):
    """Starts a heartbeat task at open that close() never cancels."""

    async def _open(self) -> None:
        self._heartbeat = asyncio.get_running_loop().create_task(self._beat())

    async def _beat(self) -> None:
        await asyncio.Event().wait()  # a heartbeat that never ends on its own


class DriverThreadLeftRunning(MemoryEventStore):
    """Opens a connection thread, as a driver does (aiosqlite's are not daemons), that close()
    never stops: without the suite's exit guard the test process would never exit."""

    async def _open(self) -> None:
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._stop.wait, name="gallery-driver-thread")
        self._thread.start()


# -- the gallery -------------------------------------------------------------------------------

#: The stalled-subscriber test appends 8 MB under tracemalloc: on SQLite, on a loaded machine,
#: it can outlast the gallery's 8 s timeout and fail before the test a variant names.
_NOT_THE_8_MB_TEST = "not test_a_stalled_subscriber_does_not_buffer_without_bound"

_ALL = [
    Variant(
        "ids-per-connection",
        "event ids remembered per connection, not per store",
        "IdsPerConnection",
        "test_a_retry_through_another_connection_returns_the_original_result",
        modules=("test_idempotency",),
    ),
    Variant(
        "ascii-controls-only",
        "only ASCII control characters refused (DEL, C1 accepted)",
        "MemoryEventStore",
        "test_append_rejects_an_invalid_stream_id[del]",
        patch=ascii_controls_only,
        modules=("test_validation",),
    ),
    Variant(
        "older-snapshot-wins",
        "an older snapshot saved later replaces a newer one",
        "OlderSnapshotWins",
        "test_an_older_snapshot_saved_later_never_replaces_a_newer_one",
        modules=("test_snapshots_and_checkpoints",),
    ),
    Variant(
        "postgres-without-gate",
        "PostgreSQL without its skip-free snapshot gate",
        "gallery.broken_postgres:PostgresWithoutGate",
        "test_no_reader_skips_events_committed_after_later_ones",
        base="postgres",
        modules=("test_out_of_order_commits",),
        hold=hold_at_seam,
    ),
    Variant(
        "sequence-before-commit",
        "a sequence drawn before commit, read past positions in flight",
        "SequenceBeforeCommit",
        "test_no_reader_skips_events_committed_after_later_ones",
        modules=("test_out_of_order_commits",),
        hold=hold_at_seam,
    ),
    Variant(
        "expected-version-off-by-one",
        "an exact expected version off by one",
        "ExpectedVersionOffByOne",
        "test_an_exact_expected_version_conflicts_when_it_differs[3]",
        modules=("test_append",),
    ),
    Variant(
        "stream-exists-as-any",
        "STREAM_EXISTS treated as ANY",
        "StreamExistsAsAny",
        "test_stream_exists_conflicts_with_a_new_stream",
        modules=("test_append",),
    ),
    Variant(
        "batch-event-by-event",
        "a batch written event by event",
        "BatchEventByEvent",
        "test_concurrent_batches_with_any_stay_whole_and_contiguous",
        modules=("test_concurrency",),
    ),
    Variant(
        "filter-after-limit",
        "a filter applied after the page limit",
        "FilterAfterLimit",
        "test_a_filter_matching_sparse_events_still_reads_them_all",
        modules=("test_read_all",),
    ),
    Variant(
        "ordered-by-stream",
        "read_all ordered by stream instead of commit order",
        "OrderedByStream",
        "test_read_all_follows_commit_order_across_streams",
        modules=("test_read_all",),
    ),
    Variant(
        "category-by-prefix",
        "a category filter matching by prefix, without the '-' rule",
        "CategoryByPrefix",
        "test_read_all_filters_by_category",
        modules=("test_read_all",),
    ),
    Variant(
        "skips-first-live-event",
        "the first live event skipped",
        "SkipsFirstLiveEvent",
        "test_a_subscription_catches_up_then_delivers_new_events",
        modules=("test_subscriptions",),
    ),
    Variant(
        "never-live",
        "is_live never set",
        "NeverLive",
        "test_is_live_turns_true_once_caught_up",
        modules=("test_subscriptions",),
    ),
    Variant(
        "lost-wake-up",
        "a lost wake-up: other connections' subscribers wait for the fallback poll",
        "LostWakeUp",
        "test_events_from_another_connection_arrive_live_without_the_fallback_poll",
        modules=("test_subscriptions",),
    ),
    Variant(
        "checkpoint-not-overwritten",
        "a checkpoint that is not overwritten",
        "CheckpointNotOverwritten",
        "test_saving_a_checkpoint_again_overwrites_it",
        modules=("test_snapshots_and_checkpoints",),
    ),
    Variant(
        "task-left-after-close",
        "a task left running after close",
        "TaskLeftAfterClose",
        "test_closing_the_store_leaves_no_task_behind",
        modules=("test_resources",),
    ),
    Variant(
        "reader-left-open",
        "SQLite: a reader connection (and its thread) left open at close",
        "gallery.broken_sqlite:ReaderLeftOpen",
        "test_opening_and_closing_repeatedly_leaks_no_connection_or_thread",
        base="sqlite",
        modules=("test_resources",),
        keyword=_NOT_THE_8_MB_TEST,
    ),
    Variant(
        "driver-thread-left-running",
        "a driver's (non-daemon) connection thread left running after close",
        "DriverThreadLeftRunning",
        "test_the_first_event_of_a_stream_has_version_one",
        modules=("test_append",),
    ),
    Variant(
        "dollar-ids-allowed",
        "'$'-prefixed stream ids allowed",
        "MemoryEventStore",
        "test_append_rejects_an_invalid_stream_id[dollar-prefix]",
        patch=dollar_ids_allowed,
        modules=("test_validation",),
    ),
    Variant(
        "empty-batch-allowed",
        "an empty batch allowed",
        "EmptyBatchNoOp",
        "test_append_rejects_an_empty_batch",
        patch=empty_batch_allowed,
        modules=("test_validation",),
    ),
    Variant(
        "non-json-as-text",
        "non-JSON data stored as text",
        "MemoryEventStore",
        "test_append_rejects_data_that_is_not_json[object]",
        patch=non_json_as_text,
        modules=("test_validation",),
    ),
    # The controls: the unbroken adapters must pass exactly the runs above.
    Variant("memory", "(control) the memory adapter", "MemoryEventStore", "", broken=False),
    Variant(
        "sqlite",
        "(control) the SQLite adapter",
        "eventstore_sqlite:SQLiteEventStore",
        "",
        base="sqlite",
        modules=("test_resources",),
        keyword=_NOT_THE_8_MB_TEST,
        broken=False,
    ),
    Variant(
        "postgres",
        "(control) the PostgreSQL adapter",
        "eventstore_postgres:PostgresEventStore",
        "",
        base="postgres",
        modules=("test_out_of_order_commits",),
        hold=hold_at_seam,
        broken=False,
    ),
]

#: Every variant (and control), by name.
VARIANTS: dict[str, Variant] = {variant.name: variant for variant in _ALL}


def caught_as_expected(variant: Variant, test: str) -> bool:
    """Whether ``test`` is the one ``variant.caught_by`` names (a trailing ``*``: a prefix)."""
    expected = variant.caught_by
    if expected.endswith("*"):
        return test.startswith(expected[:-1])
    return test == expected
