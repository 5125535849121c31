"""``cbecsim policies``: list, show and quote the policy library from the command line.

Plain argparse. :func:`register` adds the ``policies`` command to the main ``cbecsim``
parser; :func:`main` builds a parser with just that command, so the module also runs
standalone::

    python -m cbecsim.policies.cli policies duty --dest US --origin CN --mode parcel \\
        --value 25 --currency USD --date 2025-06-01 --category charging --json

Exit codes: 0 success; 2 bad input or a question the library cannot answer, reported as
``error: ...`` on stderr without a traceback.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Sequence

from . import PolicyError, list_regime_sets, load_regime_set, quote_duty
from ._library import destinations, known_currencies
from ._schema import MODES, POSTAL_ELECTIONS, ParcelFee, RegimeEntry, percent_text

__all__ = ["register", "main"]

EXIT_OK, EXIT_USAGE = 0, 2


def _error(message: str) -> int:
    for line in str(message).splitlines() or [""]:
        print(f"error: {line}", file=sys.stderr)
    return EXIT_USAGE


# --------------------------------------------------------------------------------------
# policies list
# --------------------------------------------------------------------------------------


def _cmd_list(args: argparse.Namespace) -> int:
    infos = list_regime_sets()
    if args.json:
        rows = [
            {
                "name": i.name,
                "destination": i.destination,
                "from": i.start.isoformat(),
                "to": i.end.isoformat() if i.end else None,
                "entries": i.entries,
                "status": i.status,
                "member_state": i.member_state,
                "description": i.description,
            }
            for i in infos
        ]
        print(json.dumps(rows, indent=2))
        return EXIT_OK
    from rich import box
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table

    console = Console(file=sys.stdout)
    if not console.is_terminal:
        # Piped output: rich would assume 80 columns and fold every cell.
        console = Console(file=sys.stdout, width=160)
    table = Table(title="cbecsim policy library: regime sets", title_justify="left", box=box.SIMPLE_HEAD)
    table.add_column("set", no_wrap=True)
    table.add_column("dest", no_wrap=True)
    table.add_column("from .. to (excl.)", no_wrap=True)
    table.add_column("entries", justify="right", no_wrap=True)
    table.add_column("status", no_wrap=True)
    table.add_column("description", overflow="fold", ratio=1)
    for i in infos:
        status = i.status + (f" ({i.member_state})" if i.member_state else "")
        dates = f"{i.start} .. {i.end or 'open'}"
        table.add_row(i.name, i.destination, dates, str(i.entries), status, escape(i.description))
    console.print(table)
    return EXIT_OK


# --------------------------------------------------------------------------------------
# policies show NAME
# --------------------------------------------------------------------------------------


def _entry_lines(entry: RegimeEntry) -> list[str]:
    origins = "all (fallback)" if entry.origins == "all" else ", ".join(entry.origins)
    categories = "all (fallback)" if entry.categories == "all" else ", ".join(entry.categories)
    lines = [
        f"- {entry.id}: {entry.start} to {entry.end or 'open'} (end excluded)",
        f"    origins {origins}; modes {', '.join(entry.modes)}; categories {categories}",
    ]
    if entry.de_minimis is not None:
        dm = entry.de_minimis
        state = "applies" if dm.applies else "does NOT apply"
        lines.append(f"    de minimis: {dm.currency} {dm.threshold:g} (values at or under), {state}"
                     + (f" - {dm.note}" if dm.note else ""))
    for layer in entry.ad_valorem:
        scope = f" [{', '.join(layer.categories)} only]" if layer.categories else ""
        assumed = " (assumed)" if layer.assumed else ""
        lines.append(f"    ad valorem: {layer.basis} {percent_text(layer.rate)}{assumed}{scope}"
                     + (f" - {layer.note}" if layer.note else ""))
    if entry.ad_valorem:
        lines.append(f"    ad valorem total (layers for all categories): "
                     f"{percent_text(sum(layer.rate for layer in entry.ad_valorem if not layer.categories))}")
    if entry.specific_per_item is not None:
        lines.append(
            f"    specific duty: {entry.specific_per_item.currency} {entry.specific_per_item.amount:g} per item"
        )
    if entry.postal_options is not None:
        for option in entry.postal_options.options:
            # PostalOption._fields_for_method guarantees the fields each method reads.
            if option.method == "ad_valorem":
                assert option.rate is not None
                text = f"{percent_text(option.rate)} of value"
            elif option.method == "ad_valorem_from_layers":
                text = f"{option.layers_prefix} rate x value"
            elif option.method == "per_package":
                text = f"{option.currency} {option.amount:g} per postal package"
            else:
                assert option.bands is not None
                text = f"per postal package by {option.layers_prefix} rate band: " + ", ".join(
                    f"{option.currency} {b.amount:g}"
                    + (
                        f" up to {percent_text(b.max_rate)}" + ("" if b.inclusive else " (excl.)")
                        if b.max_rate is not None
                        else " above"
                    )
                    for b in option.bands
                )
            lines.append(f"    postal option ({option.label}): {text}" + (f" - {option.note}" if option.note else ""))
        po = entry.postal_options
        lines.append(
            f"    postal election (default): {po.default_election}"
            + (f" - {po.election_note}" if po.election_note else "")
        )
    if entry.low_value_duty is not None:
        low = entry.low_value_duty
        limit = f"of {low.currency} {low.limit:g} or less" if low.inclusive else f"under {low.currency} {low.limit:g}"
        scope = "IOSS sellers only" if low.ioss_only else "whatever the VAT scheme"
        lines.append(
            f"    fixed duty: {low.currency} {low.amount_per_heading:g} per tariff sub-heading on parcels "
            f"{limit} ({scope})" + (f" - {low.note}" if low.note else "")
        )
    if entry.value_bands is not None:
        vb = entry.value_bands
        for band in vb.bands:
            minus = f" minus {vb.currency} {band.deduction:g}" if band.deduction else ""
            lines.append(
                f"    value band up to {vb.currency} {band.max_value:g}: {percent_text(band.rate)} of value{minus}"
            )
    for rule in entry.vat:
        limit = f", values up to {rule.currency} {rule.max_value:g}" if rule.max_value is not None else ""
        where = {"checkout": "at checkout", "point_of_sale": "at the point of sale", "import": "at import"}[
            rule.collected
        ]
        base = {
            "value": "value",
            "value_plus_duty": "value + duty",
            "value_plus_duty_tax_inclusive": "(value + duty) / (1 - rate), tax-inclusive",
        }[rule.base]
        recoverable = ", recoverable" if rule.recoverable else ""
        sellers = {True: ", IOSS sellers", False: ", non-IOSS sellers", None: ""}[rule.ioss]
        lines.append(
            f"    {rule.name}: {percent_text(rule.rate)} collected {where} on {base}{limit}{recoverable}{sellers}"
            + (f" - {rule.note}" if rule.note else "")
        )
    for fee in entry.fees:
        limit = f", values up to {fee.currency} {fee.max_value:g}" if fee.max_value is not None else ""
        lines.append(f"    fee: {fee.name} {fee.currency} {fee.amount:g} per {fee.per}{limit}")
    if entry.duty_drawback_rate is not None:
        lines.append(
            f"    duty drawback: {percent_text(entry.duty_drawback_rate)} of the duty on exported or destroyed goods"
        )
    lines.append(f"    primary source: {entry.primary_source or 'not given'}")
    lines.append(f"    source: {entry.source}")
    announced = f"; announced {entry.announced}" if entry.announced else ""
    lines.append(f"    confidence: {entry.confidence}; checked {entry.checked}{announced}")
    if entry.note:
        lines.append(f"    note: {entry.note}")
    return lines


def _cmd_show(args: argparse.Namespace) -> int:
    regime_set = load_regime_set(args.name)
    if args.json:
        print(json.dumps(regime_set.model_dump(mode="json", by_alias=True), indent=2))
        return EXIT_OK
    member = f", member state {regime_set.member_state}" if regime_set.member_state else ""
    print(
        f"{regime_set.name}: {regime_set.destination}{member}, {regime_set.start} to "
        f"{regime_set.end or 'open'} (end excluded), status {regime_set.status}, "
        f"{len(regime_set.entries)} entries"
    )
    if regime_set.description:
        print(regime_set.description)
    if regime_set.coverage_note:
        print(f"coverage: {regime_set.coverage_note}")
    for entry in regime_set.entries:
        print("\n".join(_entry_lines(entry)))
    for fee in regime_set.parcel_fees:
        print("\n".join(_fee_lines(fee)))
    return EXIT_OK


def _fee_lines(fee: ParcelFee) -> list[str]:
    origins = "all" if fee.origins == "all" else ", ".join(fee.origins)
    lines = [
        f"- parcel fee {fee.id}: {fee.start} to {fee.end or 'open'} (end excluded)",
        f"    origins {origins}; modes {', '.join(fee.modes)}; charged on parcels not exempt under de minimis",
    ]
    for label, money in (("entry fee", fee.entry_fee_per_parcel), ("broker fee", fee.broker_fee_per_parcel)):
        if money is not None:
            lines.append(f"    {label}: {money.currency} {money.amount:g} per parcel")
    lines.append(f"    primary source: {fee.primary_source or 'not given'}")
    lines.append(f"    source: {fee.source}")
    lines.append(f"    confidence: {fee.confidence}; checked {fee.checked}")
    if fee.note:
        lines.append(f"    note: {fee.note}")
    return lines


# --------------------------------------------------------------------------------------
# policies duty
# --------------------------------------------------------------------------------------


def _parse_value(text: str) -> float:
    try:
        return float(text)
    except ValueError:
        raise PolicyError(f"--value must be a number, got {text!r}") from None


def _parse_count(text: str, flag: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise PolicyError(f"{flag} must be a whole number >= 1, got {text!r}") from None


def _cmd_duty(args: argparse.Namespace) -> int:
    sets = [name.strip() for name in args.sets.split(",") if name.strip()] if args.sets else None
    if args.postal_method is not None and str(args.mode).strip().lower() != "postal":
        raise PolicyError(f"--postal-method applies to --mode postal only, got --mode {args.mode}")
    quote = quote_duty(
        dest=args.dest,
        origin=args.origin,
        mode=args.mode,
        value=_parse_value(args.value),
        currency=args.currency,
        date=args.date,
        category=args.category,
        headings=_parse_count(args.headings, "--headings"),
        regime_sets=sets,
        items=None if args.items is None else _parse_count(args.items, "--items"),
        ioss=args.ioss,
        postal_method=args.postal_method,
    )
    if args.json:
        print(json.dumps(quote.to_dict()))
        return EXIT_OK
    c = quote.currency
    parcel = f"parcel of {quote.items} items" if quote.items != 1 else "parcel of 1 item"
    print(
        f"{quote.destination} {quote.mode} from {quote.origin}"
        + (f", category {quote.category}" if quote.category else "")
        + f", {quote.date}, {parcel}, value {c} {quote.value:,.2f}"
        + (f", {quote.headings} tariff sub-headings" if quote.headings != 1 else "")
        + ("" if quote.ioss else ", seller not IOSS-registered")
        + (f", postal method {quote.postal_method}" if quote.postal_method else "")
    )
    print(f"  {'':<6}{'per parcel':>16}{'per unit':>16}")
    for label, amount in (("duty", quote.duty), ("VAT", quote.vat), ("fees", quote.fees), ("total", quote.total)):
        print(f"  {label:<6}{c} {amount:>12,.2f}{c:>4} {amount / quote.items:>11,.2f}")
    print(f"rule: {quote.rule}")
    print(f"primary source: {quote.primary_source}")
    print(
        f"source: {quote.source} (confidence {quote.confidence}, checked {quote.checked}"
        + (f", announced {quote.announced}" if quote.announced else "")
        + ")"
    )
    if quote.note:
        print(f"note: {quote.note}")
    for line in quote.breakdown:
        rate = f" at {percent_text(line.rate)}" if line.rate is not None else ""
        print(f"  [{line.kind}] {line.basis}{rate}: {c} {line.amount:,.2f}" + (f" - {line.note}" if line.note else ""))
    return EXIT_OK


# --------------------------------------------------------------------------------------
# Parser
# --------------------------------------------------------------------------------------


def _guarded(handler):
    """Run a handler, turning library errors into ``error: ...`` lines and exit code 2."""

    def run(args: argparse.Namespace) -> int:
        try:
            return handler(args)
        except PolicyError as exc:
            return _error(str(exc))

    run.__name__ = handler.__name__
    run.__doc__ = handler.__doc__
    return run


def register(subparsers) -> argparse.ArgumentParser:
    """Add the ``policies`` command (``list``, ``show``, ``duty``) to an argparse subparsers object.

    Each leaf parser sets ``handler`` (``args.handler(args) -> int``) with
    ``set_defaults``; errors are printed as ``error: ...`` and return 2.

    Returns
    -------
    argparse.ArgumentParser
        The ``policies`` parser.
    """
    policies = subparsers.add_parser(
        "policies",
        help="browse the policy library and quote duty, VAT and fees on one item",
        description="The policy library: dated customs regimes (de minimis, duty layers, postal "
        "options, VAT, fees) shipped as data, each entry with its source, the date it "
        "was checked and a confidence grade (H/M/L as in FACTS.md).",
    )
    commands = policies.add_subparsers(dest="policies_command", metavar="SUBCOMMAND", required=True)

    list_parser = commands.add_parser(
        "list",
        help="table of the regime sets",
        description="List every regime set: destination, dates covered (end excluded), number "
        "of entries, status (default sets are used when none are named; variant = "
        "e.g. one EU member state; example = unconfirmed figures) and description.",
    )
    list_parser.add_argument("--json", action="store_true", help="print a JSON array instead of a table")
    list_parser.set_defaults(handler=_guarded(_cmd_list))

    show_parser = commands.add_parser(
        "show",
        help="the entries of one regime set, with sources",
        description="Print every entry of regime set NAME: dates, origins, modes, categories, "
        "de minimis, duty layers, postal options, VAT, fees, per-parcel entry fees, "
        "primary source (EO / FR document / CSMS / OJ / DOF / DOU), secondary "
        "sources, confidence, the date checked and the date announced.",
    )
    show_parser.add_argument("name", metavar="NAME", help="regime set name, e.g. us_2025 (see 'policies list')")
    show_parser.add_argument("--json", action="store_true", help="print the validated set as JSON")
    show_parser.set_defaults(handler=_guarded(_cmd_show))

    duty_parser = commands.add_parser(
        "duty",
        help="duty, VAT and fees on one parcel, per parcel and per unit",
        description="Quote the customs duty, VAT and fees on ONE parcel of --items units worth "
        "--value in all on --date, per parcel and per unit, and say which rule "
        "applied. US postal items: the carrier elects one duty method for all its "
        "parcels (--postal-method; default the entry's default election, ad_valorem).",
    )
    duty_parser.add_argument(
        "--dest",
        required=True,
        metavar="CODE",
        help=f"destination: {', '.join(destinations())} (GB is accepted for UK)",
    )
    duty_parser.add_argument(
        "--origin", required=True, metavar="ISO", help="two-letter ISO code of the country the goods ship from, e.g. CN"
    )
    duty_parser.add_argument(
        "--mode",
        required=True,
        metavar="MODE",
        help="parcel = direct B2C by courier/express (valued at the transaction "
        "price); postal = direct B2C by post (US rules differ); bulk = B2B "
        "import to an overseas warehouse at the declared import value, "
        f"never de minimis. One of: {', '.join(MODES)}",
    )
    duty_parser.add_argument(
        "--value",
        required=True,
        metavar="AMOUNT",
        help="customs value of the whole parcel, net of VAT, in --currency (>= 0)",
    )
    duty_parser.add_argument(
        "--currency",
        default="USD",
        metavar="CUR",
        help="currency of --value and of the amounts printed (default USD); library "
        "amounts in other currencies are converted at the monthly average rate "
        "of --date (Federal Reserve G.5; ECB for RON). Known: " + ", ".join(known_currencies()),
    )
    duty_parser.add_argument(
        "--date", required=True, metavar="YYYY-MM-DD", help="day of import; must fall inside the regime sets' coverage"
    )
    duty_parser.add_argument(
        "--category",
        metavar="NAME",
        help="product category: charging (HTSUS 8504.40.95; US Section 301 List 3, 25%%), "
        "audio (8518.30.20; List 4A, 7.5%%) or batteries (8507.60.00, MFN 3.4%%; "
        "Section 301 7.5%%, 25%% from 2026-01-01); without it category-specific "
        "layers are not applied and the rule says so",
    )
    duty_parser.add_argument(
        "--items",
        metavar="K",
        help="units in the parcel (default: one per sub-heading, --headings); "
        "per-unit figures are the parcel's spread over them",
    )
    duty_parser.add_argument(
        "--headings",
        default="1",
        metavar="H",
        help="distinct tariff sub-headings in the parcel, 1..K (EU fixed duty EUR 3 "
        "each: 1 T-shirt + 1 watch = 2, 5 T-shirts = 1); default 1",
    )
    duty_parser.add_argument(
        "--ioss",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="the seller is registered in the EU's Import One-Stop Shop (default); "
        "--no-ioss: VAT is collected at import",
    )
    duty_parser.add_argument(
        "--postal-method",
        metavar="METHOD",
        choices=POSTAL_ELECTIONS,
        help="--mode postal only: the carrier's duty method, one of "
        f"{', '.join(POSTAL_ELECTIONS)} (cheapest_per_parcel is a bound: a "
        "carrier elects one method for all its parcels); default the entry's "
        "default election",
    )
    duty_parser.add_argument(
        "--sets",
        metavar="NAMES",
        help="comma-separated regime sets to use instead of the destination's "
        "default sets, e.g. eu_2025,eu_2026_it or us_2026_s122_15pct_example",
    )
    duty_parser.add_argument(
        "--json",
        action="store_true",
        help="print exactly one JSON object (duty, vat, fees, total, duty_per_unit, "
        "currency, rule, source, primary_source, breakdown, ...) instead of text",
    )
    duty_parser.set_defaults(handler=_guarded(_cmd_duty))
    return policies


class _OneLineErrorParser(argparse.ArgumentParser):
    """Argument errors as a single ``error: ...`` line (exit 2), like library errors."""

    def error(self, message: str):  # noqa: D401 - argparse API
        self.exit(EXIT_USAGE, f"error: {message} (see '{self.prog} --help')\n")


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``policies ...`` standalone; returns the exit code."""
    parser = _OneLineErrorParser(
        prog="python -m cbecsim.policies.cli",
        description="The cbecsim policy library on its own (the same command as 'cbecsim policies').",
    )
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    register(commands)
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # --help (0) or an argument error (2, already printed)
        return int(exc.code) if isinstance(exc.code, int) else EXIT_USAGE
    return args.handler(args)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
