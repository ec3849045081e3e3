"""``sam-pets journal``: list or prune the Annotator's journal of committed objects."""

from __future__ import annotations

import json
import time

from sam_pets.cli._args import positive_float


def register(sub) -> None:
    """Add the ``journal`` subcommand to the ``sam-pets`` parser."""
    p = sub.add_parser(
        "journal",
        help="list or prune the Annotator's journal of committed objects",
        description="The Annotator writes every committed object of an image to a journal "
        "(in $SAM_PETS_DATA_DIR/journal, else ~/.local/share/sam-pets/journal), so a crash "
        "loses nothing; exporting an image removes its entry. This lists the entries or "
        "removes them.",
    )
    p.add_argument("action", choices=("list", "prune"), help="list the entries, or remove them")
    p.add_argument("keys", nargs="*", metavar="KEY", help="prune: only these entries")
    p.add_argument(
        "--older-than",
        type=positive_float,
        metavar="DAYS",
        help="prune: only entries not updated for DAYS days",
    )
    p.add_argument("--all", action="store_true", help="prune: every entry")
    p.add_argument("--json", action="store_true", help="list: machine-readable JSON")
    p.set_defaults(func=cmd_journal)


def cmd_journal(args) -> int:
    """List or prune journal entries."""
    from sam_pets.cli import CliError
    from sam_pets.data.journal import Journal, JournalError

    journal = Journal()
    if args.action == "list":
        rows = []
        for key in journal.keys():
            try:
                rec = journal.load(key)
            except JournalError as e:
                rows.append({"key": key, "error": str(e)})
                continue
            if rec is None:
                continue
            rows.append(
                {
                    "key": key,
                    "image": rec.info.get("name"),
                    "source": rec.info.get("source"),
                    "objects": rec.n_objects,
                    "updated": time.strftime("%Y-%m-%d %H:%M", time.localtime(rec.updated)),
                }
            )
        if args.json:
            print(json.dumps(rows, indent=1))
        else:
            print(f"journal: {journal.root} ({len(rows)} entries)")
            for r in rows:
                what = r.get("error") or f"{r['image']}: {r['objects']} objects, {r['updated']}"
                print(f"  {r['key']}  {what}")
        return 0
    chosen = [bool(args.keys), args.older_than is not None, args.all]
    if sum(chosen) != 1:
        raise CliError("prune needs exactly one of: KEY..., --older-than DAYS, --all")
    if args.keys:
        unknown = [k for k in args.keys if k not in journal.keys()]
        if unknown:
            raise CliError(f"no journal entry {', '.join(unknown)} (see `sam-pets journal list`)")
        gone = [k for k in args.keys if journal.prune(k)]
    elif args.all:
        gone = [k for k in journal.keys() if journal.prune(k)]
    else:
        gone = journal.prune_older(args.older_than)
    print(f"pruned {len(gone)} journal entries")
    return 0
