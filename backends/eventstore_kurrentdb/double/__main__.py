"""``python -m eventstore_kurrentdb.double``: run the KurrentDB protocol double."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal
import sys
from pathlib import Path

from eventstore_kurrentdb.double._log import DEFAULT_ID_CACHE_BYTES, DEFAULT_MAX_APPEND_SIZE
from eventstore_kurrentdb.double._server import BANNER, HOST, DoubleConfig, KurrentDBDouble


def _parse(argv: list[str]) -> DoubleConfig:
    parser = argparse.ArgumentParser(
        prog="python -m eventstore_kurrentdb.double", description=BANNER
    )
    parser.add_argument("--port", type=int, default=2113, help="insecure port (0: any free one)")
    parser.add_argument("--no-insecure", action="store_true", help="serve the TLS port only")
    parser.add_argument("--tls-port", type=int, default=None, help="TLS port (needs cert and key)")
    parser.add_argument("--certfile", type=Path, default=None)
    parser.add_argument("--keyfile", type=Path, default=None)
    parser.add_argument(
        "--id-cache-bytes",
        type=int,
        default=DEFAULT_ID_CACHE_BYTES,
        help="memory of the idempotency cache (the server's CommittedEventsMemCacheLimit)",
    )
    parser.add_argument(
        "--max-append-size",
        type=int,
        default=DEFAULT_MAX_APPEND_SIZE,
        help="largest append in bytes (MaxAppendSize; 1 MiB up to KurrentDB 25.0)",
    )
    parser.add_argument(
        "--no-append-records",
        action="store_true",
        help="answer AppendRecords with UNIMPLEMENTED, as KurrentDB before 26.1 does",
    )
    args = parser.parse_args(argv)
    if args.tls_port is not None and (args.certfile is None or args.keyfile is None):
        parser.error("--tls-port needs --certfile and --keyfile")
    return DoubleConfig(
        port=None if args.no_insecure else args.port,
        tls_port=args.tls_port,
        certfile=args.certfile,
        keyfile=args.keyfile,
        id_cache_bytes=args.id_cache_bytes,
        max_append_size=args.max_append_size,
        append_records=not args.no_append_records,
    )


async def _main(config: DoubleConfig) -> None:
    double = KurrentDBDouble(config)
    await double.start()
    listening = []
    if double.port is not None:
        listening.append(f"insecure {HOST}:{double.port}")
    if double.tls_port is not None:
        listening.append(f"TLS {HOST}:{double.tls_port}")
    print(BANNER, file=sys.stderr)
    # The last line is machine-readable: launchers wait for it to learn the ports.
    print(f"listening: {', '.join(listening)}", flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    await double.stop(grace=0.5)


def main(argv: list[str] | None = None) -> None:
    """Entry point of ``python -m eventstore_kurrentdb.double``."""
    asyncio.run(_main(_parse(sys.argv[1:] if argv is None else argv)))


if __name__ == "__main__":
    main()
