"""Command line for the three-body simulator.

python -m components.three_body simulate --x2 X Y [--t-max T] [--out FILE]
python -m components.three_body simulate --x2-file FILE --out FILE.npy [--t-max T]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import IO

import numpy as np

from components.three_body.simulate import (
    T_MAX_DEFAULT,
    InvalidX2Error,
    Status,
    simulate,
    time_grid,
    validate_x2,
)

CSV_HEADER = "t,x1x,x1y,x2x,x2y,x3x,x3y"
_PROGRESS_DELAY = 2.0  # seconds before progress shows, so short runs stay quiet
_PROGRESS_INTERVAL = 1.0


def _parsers() -> tuple[argparse.ArgumentParser, argparse.ArgumentParser]:
    """The root parser and its `simulate` subparser, whose usage line input errors should show."""
    parser = argparse.ArgumentParser(prog="python -m components.three_body", description=__doc__.split("\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    sim = commands.add_parser(
        "simulate",
        help="integrate from rest with x1 = (1, 0) and x3 = -x1 - x2",
        description="Integrate the Breen et al. three-body setup and write positions on the t = k/256 grid.",
    )
    source = sim.add_mutually_exclusive_group(required=True)
    source.add_argument("--x2", nargs=2, type=float, metavar=("X", "Y"), help="one initial position of body 2")
    source.add_argument(
        "--x2-file", type=Path, metavar="FILE", help="initial positions, one 'x y' per line; # starts a comment"
    )
    sim.add_argument("--t-max", type=float, default=T_MAX_DEFAULT, help="last output time (default %(default)s)")
    sim.add_argument("--out", type=Path, help="output file: .npy for an array, CSV otherwise; stdout CSV if omitted")
    return parser, sim


def _read_x2_file(path: Path) -> tuple[np.ndarray, list[int]]:
    """Parse 'x y' lines, returning the points and their 1-based line numbers."""
    points: list[tuple[float, float]] = []
    line_numbers: list[int] = []
    with path.open() as handle:
        for number, line in enumerate(handle, start=1):
            fields = line.split("#", 1)[0].split()
            if not fields:
                continue
            if len(fields) != 2:
                raise ValueError(f"line {number}: expected 'x y', got {line.strip()!r}")
            try:
                points.append((float(fields[0]), float(fields[1])))
            except ValueError:
                raise ValueError(f"line {number}: not two numbers: {line.strip()!r}") from None
            line_numbers.append(number)
    if not points:
        raise ValueError("no initial positions found")
    return np.array(points), line_numbers


def _progress_printer(stream: IO[str]) -> Callable[[int, int], None]:
    """Report percent done on stream at most once a second, once a run has lasted a while."""
    start = time.monotonic()
    last_shown = start

    def show(done: int, total: int) -> None:
        nonlocal last_shown
        now = time.monotonic()
        if now - start >= _PROGRESS_DELAY and (now - last_shown >= _PROGRESS_INTERVAL or done == total):
            stream.write(f"simulating: {100 * done / total:6.2f}% of output points after {now - start:.0f} s\n")
            stream.flush()
            last_shown = now

    return show


def _write_atomically(path: Path, write: Callable[[IO[bytes]], None]) -> None:
    """Write through a temporary file in the same directory so a failure leaves no partial output."""
    temporary: Path | None = None
    try:
        with tempfile.NamedTemporaryFile(dir=path.parent, prefix=f".{path.name}.", delete=False) as handle:
            temporary = Path(handle.name)
            write(handle)
        os.replace(temporary, path)
    except BaseException:
        if temporary is not None:
            temporary.unlink(missing_ok=True)
        raise


def _write_csv(stream: IO[bytes] | IO[str], rows: np.ndarray) -> None:
    np.savetxt(stream, rows, fmt="%.17g", delimiter=",", header=CSV_HEADER, comments="")


def _rows(times: np.ndarray, positions: np.ndarray) -> np.ndarray:
    """(..., T, 3, 2) positions -> (..., T, 7) rows of t and the six coordinates."""
    flat = positions.reshape(*positions.shape[:-2], 6)
    t = np.broadcast_to(times[:, None], (*flat.shape[:-1], 1))
    return np.concatenate([t, flat], axis=-1)


def main(argv: list[str] | None = None) -> int:
    parser, sim = _parsers()
    args = parser.parse_args(argv)
    try:
        times = time_grid(args.t_max)
    except ValueError as error:
        sim.error(f"--t-max: {error}")
    if args.out is not None and not args.out.parent.is_dir():
        sim.error(f"--out: directory {args.out.parent} does not exist")

    if args.x2 is not None:
        x2 = np.array([args.x2])
        try:
            validate_x2(x2)
        except InvalidX2Error as error:
            sim.error(f"--x2 {args.x2[0]} {args.x2[1]} {error.reason}")
        result = simulate(x2, args.t_max)
        if not result.converged[0]:
            print(f"error: simulation did not converge ({Status(result.status[0]).name.lower()})", file=sys.stderr)
            return 1
        rows = _rows(times, result.positions[0])
        if args.out is None:
            _write_csv(sys.stdout, rows)
        elif args.out.suffix == ".npy":
            _write_atomically(args.out, lambda handle: np.save(handle, rows))
        else:
            _write_atomically(args.out, lambda handle: _write_csv(handle, rows))
        return 0

    if args.out is None or args.out.suffix != ".npy":
        sim.error("--x2-file needs --out FILE.npy")
    try:
        x2, line_numbers = _read_x2_file(args.x2_file)
    except (OSError, UnicodeDecodeError, ValueError) as error:
        sim.error(f"--x2-file {args.x2_file}: {error}")
    try:
        validate_x2(x2)
    except InvalidX2Error as error:
        x, y = x2[error.row]
        sim.error(f"--x2-file {args.x2_file} line {line_numbers[error.row]}: x2 = ({x}, {y}) {error.reason}")
    result = simulate(x2, args.t_max, progress=_progress_printer(sys.stderr))
    rows = _rows(times, result.positions)
    rows[~result.converged] = np.nan
    _write_atomically(args.out, lambda handle: np.save(handle, rows))
    failures = {
        Status(code).name.lower(): int(count)
        for code, count in enumerate(np.bincount(result.status, minlength=len(Status)))
        if code != Status.CONVERGED and count
    }
    detail = f" ({', '.join(f'{name}={count}' for name, count in failures.items())})" if failures else ""
    converged = int(result.converged.sum())
    print(f"simulations={len(x2)} converged={converged} failed={len(x2) - converged}{detail}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
