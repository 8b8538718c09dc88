"""Command line: `python -m gpuslots run|devices ...`.

    python -m gpuslots run --kind train --gpus 2 --share 8 -- python -m model train ...
    python -m gpuslots devices
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from gpuslots.run import job_name, run
from gpuslots.slots import LockFolderError, visible_gpus


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m gpuslots", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    r = sub.add_parser("run", help="run a command bound to a slot of one GPU (CUDA_VISIBLE_DEVICES)")
    r.add_argument("--kind", default="job", help="rule kind, as in the config's gpu_share (for messages)")
    r.add_argument("--job", default="", help="what the job makes (the rules pass their output), named in the "
                                             "messages of jobs waiting for its GPU (default: the command)")
    r.add_argument("--gpus", default="auto",
                   help="devices handed out: a count, or auto (those visible); 0 runs the command unbound")
    r.add_argument("--share", type=int, default=1, help="jobs of this kind per device (default 1)")
    r.add_argument("--units", type=int, default=None,
                   help="slots per device, a multiple of every share in use (default: --share)")
    r.add_argument("--dir", type=Path, default=None,
                   help="lock folder shared by every run on the machine (default $GPUSLOTS_DIR, else "
                        "/tmp/gpuslots; inside a SLURM allocation a subfolder per allocation)")
    r.add_argument("--timeout", type=float, default=None,
                   help="give up (exit status 75) after waiting this many seconds for a device")
    r.add_argument("--no-retry-alone", dest="retry_alone", action="store_false",
                   help="after an out-of-memory failure while sharing, fail instead of rerunning once alone")
    r.add_argument("cmd", nargs=argparse.REMAINDER, help="-- COMMAND [ARGS...]")
    sub.add_parser("devices", help="print the GPUs visible without torch, one per line")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.command == "devices":
        for gpu in visible_gpus():
            print(gpu)
        return 0
    command = args.cmd[1:] if args.cmd[:1] == ["--"] else args.cmd
    if not command:
        _parser().error("run: give the command after `--`, e.g. -- python -m model train ...")
    if args.gpus == "auto":
        gpus = len(visible_gpus())
    elif args.gpus.isdigit():
        gpus = int(args.gpus)
    else:
        _parser().error(f"--gpus must be a count or auto, not {args.gpus!r}")
    try:
        return run(command, args.kind, gpus, args.share, args.units, args.dir, args.retry_alone, args.timeout,
                   args.job)
    except ValueError as err:
        _parser().error(str(err))
    except LockFolderError as err:
        print(f"gpuslots: {err}", file=sys.stderr)
        return 1
    except TimeoutError as err:
        print(f"gpuslots: {args.kind} {args.job or job_name(command)}: {err}", file=sys.stderr)
        return 75


if __name__ == "__main__":
    sys.exit(main())
