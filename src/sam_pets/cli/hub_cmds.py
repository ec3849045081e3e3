"""``sam-pets download``: fetch Meta's SAM 2 / SAM 2.1 checkpoints into the per-user cache."""

from __future__ import annotations

import json
import sys


def register(sub) -> None:
    """Add the ``download`` subcommand to the ``sam-pets`` parser."""
    p = sub.add_parser(
        "download",
        help="download one of Meta's SAM 2 checkpoints (sha256-verified, resumable)",
        description="Fetch a released SAM 2 / SAM 2.1 checkpoint into the per-user cache "
        "($SAM_PETS_CACHE_DIR, else $XDG_CACHE_HOME/sam-pets, else ~/.cache/sam-pets). "
        "An interrupted download resumes when run again. The built-in 'pets' model needs "
        "no download.",
    )
    p.add_argument("name", nargs="?", help="checkpoint name (see --list), e.g. sam2.1_hiera_tiny")
    p.add_argument("--list", action="store_true", help="list the models and what is cached")
    p.add_argument("--json", action="store_true", help="with --list: machine-readable JSON")
    p.add_argument("--force", action="store_true", help="download again even when cached")
    p.add_argument("--timeout", type=float, default=30.0, metavar="S", help="network timeout")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=cmd_download)


def cmd_download(args) -> int:
    """Download one checkpoint, or list them all."""
    from sam_pets.cli import CliError

    if args.list:
        return _list(args.json)
    if not args.name:
        raise CliError("give a checkpoint NAME or --list")
    from sam_pets.model import hub
    from sam_pets.progress import run_job

    if args.name == hub.BUILTIN:
        print(f"'{hub.BUILTIN}' is built in: nothing to download ({hub.builtin_path()})")
        return 0
    try:
        res = run_job(hub.download(args.name, args.force, args.timeout), show=not args.quiet)
    except hub.DownloadError as e:
        raise CliError(str(e)) from None
    entry = hub.official(args.name)
    if res.verified:
        check = "sha256 verified"
    else:
        check = "sha256 NOT verified"
        print(
            f"warning: no sha256 is known for {entry.name}; the file's keys and shapes match "
            f"the {entry.config} config, but its content could not be verified",
            file=sys.stderr,
        )
    state = "downloaded" if res.fetched else "already cached"
    print(f"{entry.name}: {state}, {check}: {res.path}")
    return 0


def _list(as_json: bool) -> int:
    from sam_pets.model import hub
    from sam_pets.paths import cache_dir

    builtin = hub.builtin_path()
    rows = [
        {
            "name": hub.BUILTIN,
            "source": "built-in (Oxford-IIIT Pet)",
            "cached": builtin.is_file(),
            "path": str(builtin),
            "sha256": None,
        }
    ]
    for e in hub.OFFICIAL.values():
        path = hub.cached_path(e.name)
        version = "2.1" if e.name.startswith("sam2.1") else "2.0"
        rows.append(
            {
                "name": e.name,
                "source": f"Meta SAM {version}, ~{e.approx_mb} MB",
                "cached": path.is_file(),
                "path": str(path),
                "sha256": e.sha256,
            }
        )
    if as_json:
        print(json.dumps(rows, indent=2))
        return 0
    print(f"cache: {cache_dir()}")
    for r in rows:
        if r["name"] == hub.BUILTIN:
            state = "built in" if r["cached"] else "MISSING (incomplete install)"
        else:
            state = "cached" if r["cached"] else "not downloaded"
            if r["sha256"] is None:
                state += " (no known sha256: layout check only)"
        print(f"  {r['name']:<24}{r['source']:<28}{state}")
    return 0
