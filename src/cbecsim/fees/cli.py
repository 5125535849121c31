"""``cbecsim fees``: list, show and quote the fee library from the command line.

Plain argparse. :func:`register` adds the ``fees`` command to the main ``cbecsim`` parser;
:func:`main` builds a parser with just that command, so the module also runs standalone::

    python -m cbecsim.fees.cli fees quote amazon_us --category charging --price 120 --date 2025-06-01

Exit codes: 0 success; 2 bad input or a question the library cannot answer, reported as
one ``error: ...`` line on stderr without a traceback.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import math
import sys
from typing import Any, Sequence

from . import FeeError, fee_schedule, list_fee_schedules, parse_date, quote_sale
from ._library import fee_category_of
from ._schema import DatedEntry, FeeSchedule

__all__ = ["register", "main"]

EXIT_OK, EXIT_USAGE = 0, 2


def _error(message: str) -> int:
    for line in str(message).splitlines() or [""]:
        print(f"error: {line}", file=sys.stderr)
    return EXIT_USAGE


def _pct(rate: float) -> str:
    return f"{round(rate * 100, 6):g}%"


def _money(currency: str, amount: float) -> str:
    return f"{currency} {amount:,.2f}"


# --------------------------------------------------------------------------------------
# fees list
# --------------------------------------------------------------------------------------


def _coverage(start: dt.date, end: dt.date | None) -> str:
    return f"{start} .. {end or 'open'}"


def _cmd_list(args: argparse.Namespace) -> int:
    infos = list_fee_schedules()
    if args.json:
        rows = [
            {
                "name": i.name, "kind": i.kind, "marketplace": i.marketplace, "region": i.region,
                "currency": i.currency, "from": i.start.isoformat(),
                "to": i.end.isoformat() if i.end else None, "categories": list(i.categories),
                "size_tiers": list(i.size_tiers), "description": i.description,
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
    table = Table(title="cbecsim fee library: fee schedules", title_justify="left", box=box.SIMPLE_HEAD)
    table.add_column("schedule", no_wrap=True)
    table.add_column("marketplace", overflow="fold")
    table.add_column("region", no_wrap=True)
    table.add_column("currency", no_wrap=True)
    table.add_column("coverage (end excl.)", no_wrap=True)
    table.add_column("categories", overflow="fold", ratio=1)
    for i in infos:
        categories = ", ".join(i.categories) if i.categories else "any (payment fee only)"
        table.add_row(i.name, escape(i.marketplace), i.region, i.currency, _coverage(i.start, i.end),
                      escape(categories))
    console.print(table)
    return EXIT_OK


# --------------------------------------------------------------------------------------
# fees show NAME
# --------------------------------------------------------------------------------------


def _provenance(schedule: FeeSchedule, entry: DatedEntry) -> list[str]:
    lines = []
    for key in entry.source:
        src = schedule.sources.get(key)
        lines.append(f"        source: {src.title} ({src.publisher}), {src.url}, read {src.read}" if src
                     else f"        source: {key}")
    grade = f"        confidence {entry.confidence}; checked {entry.checked}"
    if entry.assumed:
        grade += "; ASSUMED (no source gave this figure)"
    lines.append(grade)
    if entry.derived:
        lines.append(f"        derived: {entry.derived}")
    if entry.note:
        lines.append(f"        note: {' '.join(entry.note.split())}")
    return lines


def _bound(value: float | None, currency: str) -> str:
    return "no bound" if value is None else f"{currency} {value:g}"


def _entry_text(label: str, entry: Any, currency: str) -> str:
    """One line describing a fee entry's figures."""
    span = f"{entry.start} to {entry.end or 'open'}"
    if label.endswith(".referral"):
        if entry.rule == "marginal":
            parts, low = [], 0.0
            for tier in entry.tiers:
                if tier.up_to is None:
                    portion = f"of any portion above {currency} {low:g}" if low else "of the price"
                elif low:
                    portion = f"of the portion from {currency} {low:g} up to {currency} {tier.up_to:g}"
                else:
                    portion = f"of the portion up to {currency} {tier.up_to:g}"
                parts.append(f"{_pct(tier.rate)} {portion}")
                low = tier.up_to or low
            how = "; ".join(parts) + " (marginal: each rate on its portion of the price)"
        else:
            parts, low = [], None
            for tier in entry.tiers:
                if tier.up_to is None:
                    parts.append(f"{_pct(tier.rate)} above {currency} {low:g}" if low else _pct(tier.rate))
                else:
                    parts.append(f"{_pct(tier.rate)} for prices up to {currency} {tier.up_to:g}")
                low = tier.up_to
            how = "; ".join(parts) + " (whole price: one rate on all of it)"
        return f"  - referral {span}: {how}; minimum {currency} {entry.minimum:.2f}"
    if label.endswith(".fulfilment"):
        bands = []
        low = None
        for band in entry.bands:
            if band.max_price is None:
                where = "all prices" if low is None else f"above {currency} {low:g}"
            else:
                where = f"price {'<=' if band.inclusive else '<'} {currency} {band.max_price:g}"
            bands.append(f"{where}: {currency} {band.fee:.2f}")
            low = band.max_price
        extra = f"; surcharge {_pct(entry.surcharge_rate)} on the fee" if entry.surcharge_rate else ""
        return f"  - fulfilment {span}: " + "; ".join(bands) + " per unit" + extra
    if label.startswith("storage"):
        months = ", ".join(str(m) for m in entry.peak_months)
        return (f"  - storage {span}: {currency} {entry.off_peak:g} per {entry.per} per month off-peak, "
                f"{currency} {entry.peak:g} in months {months}")
    if label.endswith(".inbound_placement"):
        return f"  - inbound placement {span}: {currency} {entry.per_unit:.2f} per unit received"
    if label.endswith(".returns_processing"):
        return f"  - returns processing {span}: {currency} {entry.per_unit:.2f} per unit returned"
    if label == "refund_admin":
        return (f"  - refund administration {span}: {_pct(entry.rate)} of the referral fee, at most "
                f"{currency} {entry.maximum:.2f}, kept on a full refund")
    if label == "payment":
        back = {None: "not known", True: "yes", False: "no"}[entry.refunded_on_return]
        return (f"  - payment {span}: {_pct(entry.rate)} of the price + {currency} {entry.fixed:.2f} per "
                f"transaction (refunded on a return: {back})")
    raise AssertionError(label)  # pragma: no cover - every entry kind is handled above


def _selected(schedule: FeeSchedule, category: str | None, day: dt.date | None):
    """``(label, entry)`` pairs of the schedule, filtered by fee category and day."""
    fee_category = None
    if category is not None and schedule.kind == "marketplace":
        fee_category = fee_category_of(schedule, category)
    for label, entry in schedule.entries():
        if fee_category is not None and label.startswith("categories.") and label.split(".")[1] != fee_category:
            continue
        if day is not None and not entry.in_force(day):
            continue
        yield label, entry


def _cmd_show(args: argparse.Namespace) -> int:
    schedule = fee_schedule(args.name)
    day = parse_date(args.date, "--date") if args.date else None
    selected = list(_selected(schedule, args.category, day))
    if args.json:
        data = {
            "name": schedule.name, "kind": schedule.kind, "marketplace": schedule.marketplace,
            "region": schedule.region, "currency": schedule.currency,
            "referral_base": schedule.referral_base, "default_size_tier": schedule.default_size_tier,
            "filters": {"category": args.category, "date": day.isoformat() if day else None},
            "entries": [{"fee": label, **entry.model_dump(mode="json", by_alias=True)} for label, entry in selected],
            "sources": {k: v.model_dump(mode="json") for k, v in schedule.sources.items()},
        }
        print(json.dumps(data, indent=2))
        return EXIT_OK
    c = schedule.currency
    print(f"{schedule.name}: {schedule.marketplace}, {schedule.region}, {c}, "
          f"{_coverage(schedule.start, schedule.end)} (end excluded)"
          + (f", default size tier {schedule.default_size_tier}" if schedule.default_size_tier else ""))
    if schedule.description:
        print(schedule.description)
    if schedule.kind == "marketplace":
        base = {"net_of_sales_tax": "the total sales price net of sales tax",
                "gross_of_vat": "the total sales price including VAT"}[schedule.referral_base]
        print(f"referral fee base: {base} (item + delivery + gift wrap)")
    filters = [f for f in (f"category {args.category}" if args.category else "",
                           f"in force on {day}" if day else "") if f]
    if filters:
        print("showing entries: " + ", ".join(filters))
    group = None
    for label, entry in selected:
        head = label.rsplit(".", 1)[0] if label.startswith(("categories.", "size_tiers.")) else label
        if head != group:
            group = head
            if head.startswith("categories."):
                name = head.split(".")[1]
                cat = schedule.categories[name]
                aliases = f" (aliases: {', '.join(cat.aliases)})" if cat.aliases else ""
                print(f"\ncategory {name}{aliases}: {' '.join(cat.description.split())}")
            elif head.startswith("size_tiers."):
                name = head.split(".")[1]
                tier = schedule.size_tiers[name]
                print(f"\nsize tier {name}: {tier.description}; reference unit {tier.unit_volume:g} "
                      f"{tier.volume_unit} [assumption: {tier.unit_note}]; storage class {tier.storage_class}")
            else:
                print(f"\n{head.replace('_', ' ')}:")
        print(_entry_text(label, entry, c))
        print("\n".join(_provenance(schedule, entry)))
    if not selected:
        print("no entries match")
    return EXIT_OK


# --------------------------------------------------------------------------------------
# fees quote NAME
# --------------------------------------------------------------------------------------


def _parse_price(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise FeeError(f"--price must be a number >= 0, got {text!r}") from None
    if not (math.isfinite(value) and value >= 0):
        raise FeeError(f"--price must be a number >= 0, got {text!r}")
    return value


def _parse_volume(text: str | None) -> float | None:
    if text is None:
        return None
    try:
        value = float(text)
    except ValueError:
        raise FeeError(f"--unit-volume must be a number > 0, got {text!r}") from None
    if not (math.isfinite(value) and value > 0):
        raise FeeError(f"--unit-volume must be a number > 0, got {text!r}")
    return value


def _cmd_quote(args: argparse.Namespace) -> int:
    price = _parse_price(args.price)
    day = parse_date(args.date, "--date") if args.date else dt.date.today()
    quote = quote_sale(args.name, args.category, price, day, args.size_tier,
                       unit_volume=_parse_volume(args.unit_volume))
    if args.json:
        print(json.dumps(quote.to_dict()))
        return EXIT_OK
    t = quote.terms
    c = t.currency
    if t.kind == "payment":
        what = "any category"
    else:
        what = f"category {t.category}"
        if t.category != t.requested_category:
            what += f" (from {t.requested_category})"
    print(f"{t.schedule} ({t.marketplace}), {what}"
          + (f", size tier {t.size_tier}" if t.size_tier else "") + f", {t.date}, price {_money(c, price)}")
    rows = [
        ("referral fee", quote.referral),
        ("fulfilment fee", quote.fulfilment),
        ("inbound placement", quote.inbound_placement),
        ("payment fee", quote.payment),
        ("per unit sold", quote.per_unit_sold),
    ]
    for label, amount in rows:
        print(f"  {label:<22}{c} {amount:>10,.2f}")
    if t.kind == "marketplace":
        month = "storage, " + t.date.strftime("%B")
        print(f"  {month:<22}{c} {quote.storage_this_month:>10,.4f} per unit-month "
              f"(a unit of {t.unit_volume:g} {t.unit_volume_unit})")
    if t.kind == "marketplace":
        print(f"  on a full refund: referral credited back {_money(c, quote.referral_refund)} "
              f"(refund administration fee {_money(c, quote.refund_admin)} kept); returns processing "
              f"{_money(c, quote.returns_processing)} per unit returned")
    else:
        back = {None: "not known (see the source notes)", True: "yes", False: "no"}[t.payment_fee_refunded_on_return]
        print(f"  on a full refund: payment fee given back: {back}")
    if t.kind == "marketplace":
        rule = ("marginal: each rate on its portion" if t.referral_rule == "marginal"
                else "whole price: one rate on all of it")
        parts = []
        for low, high, rate, amount in quote.referral_lines:
            base_amount = min(price, high) - low if t.referral_rule == "marginal" else price
            parts.append(f"{_pct(rate)} x {c} {base_amount:,.2f} = {c} {amount:,.2f}")
        line = " + ".join(parts) if parts else f"{c} 0.00"
        if quote.referral_minimum_applies:
            line += f", below the minimum {_money(c, t.referral_min)}, so the minimum applies"
        print(f"referral: {line} ({rule})")
        base = {"net_of_sales_tax": "net of sales tax", "gross_of_vat": "VAT included"}[t.referral_base]
        print(f"price basis: total sales price {base}")
    print("sources:")
    fields = ("referral_tiers", "fulfilment_fee_bands", "storage_per_unit_month", "inbound_placement_per_unit",
              "returns_processing_per_unit", "refund_admin_rate", "payment_fee_rate")
    for field in fields if t.kind == "marketplace" else ("payment_fee_rate",):
        print(f"  {field}: {t.sources[field]}")
    if t.assumed:
        print("assumed (no source gave the figure): " + ", ".join(t.assumed))
    return EXIT_OK


# --------------------------------------------------------------------------------------
# Parser
# --------------------------------------------------------------------------------------


def _guarded(handler):
    """Run a handler, turning library errors into ``error: ...`` lines and exit code 2."""

    def run(args: argparse.Namespace) -> int:
        try:
            return handler(args)
        except FeeError as exc:
            return _error(str(exc))

    run.__name__ = handler.__name__
    run.__doc__ = handler.__doc__
    return run


def register(subparsers) -> argparse.ArgumentParser:
    """Add the ``fees`` command (``list``, ``show``, ``quote``) to an argparse subparsers object.

    Each leaf parser sets ``handler`` (``args.handler(args) -> int``) with
    ``set_defaults``; errors are printed as ``error: ...`` and return 2.
    """
    fees = subparsers.add_parser(
        "fees",
        help="browse the fee library and quote the marketplace and payment fees of one sale",
        description="The fee library: dated marketplace and payment fees shipped as data "
                    "(Amazon US and DE referral fees by category, FBA fulfilment by size tier, "
                    "storage with its Q4 peak, inbound placement, returns processing, refund "
                    "administration; own-site card fees), each entry with its sources, the date "
                    "read and checked, and a confidence grade (H/M/L as in FACTS.md).",
    )
    commands = fees.add_subparsers(dest="fees_command", metavar="SUBCOMMAND", required=True)

    list_parser = commands.add_parser(
        "list", help="table of the fee schedules",
        description="List every fee schedule: marketplace, region, currency, the dates its "
                    "fees cover (end excluded) and its fee categories.",
    )
    list_parser.add_argument("--json", action="store_true", help="print a JSON array instead of a table")
    list_parser.set_defaults(handler=_guarded(_cmd_list))

    show_parser = commands.add_parser(
        "show", help="the fees of one schedule, each with its source",
        description="Print every fee entry of schedule NAME -- referral tiers and how they "
                    "apply, fulfilment by size tier and price band, storage, inbound placement, "
                    "returns processing, refund administration, payment -- with its dates, "
                    "sources (and the date each was read), confidence and notes. --category and "
                    "--date narrow the listing.",
    )
    show_parser.add_argument("name", metavar="NAME", help="schedule name, e.g. amazon_us (see 'fees list')")
    show_parser.add_argument("--category", metavar="C",
                             help="only this fee category (or an alias such as charging, audio)")
    show_parser.add_argument("--date", metavar="YYYY-MM-DD", help="only the entries in force on this day")
    show_parser.add_argument("--json", action="store_true", help="print the selected entries and sources as JSON")
    show_parser.set_defaults(handler=_guarded(_cmd_show))

    quote_parser = commands.add_parser(
        "quote", help="the per-unit fees of one sale",
        description="Quote the fees on ONE unit sold at --price: referral fee (tier by tier, "
                    "and whether the minimum applies), fulfilment fee of the size tier and price "
                    "band, inbound placement, payment fee, their sum per unit sold, storage per "
                    "unit-month for the month of --date, and what a full refund costs (refund "
                    "administration fee kept, returns processing); then the source of each fee.",
    )
    quote_parser.add_argument("name", metavar="NAME", help="schedule name, e.g. amazon_us (see 'fees list')")
    quote_parser.add_argument("--category", required=True, metavar="C",
                              help="fee category or alias, e.g. electronics_accessories, charging, audio, "
                                   "consumer_electronics, apparel (any text for payment schedules)")
    quote_parser.add_argument("--price", required=True, metavar="P",
                              help="total sales price of the unit in the schedule's currency (item + "
                                   "delivery + gift wrap; VAT included for amazon_de, net of sales tax "
                                   "for amazon_us)")
    quote_parser.add_argument("--date", metavar="YYYY-MM-DD", help="day of the sale (default: today)")
    quote_parser.add_argument("--size-tier", metavar="T",
                              help="size tier (default: the schedule's default_size_tier; see 'fees show')")
    quote_parser.add_argument("--unit-volume", metavar="V",
                              help="volume of one unit in the size tier's volume unit (ft3 for amazon_us, "
                                   "m3 for amazon_de) for the storage fee (default: the tier's reference unit)")
    quote_parser.add_argument("--json", action="store_true", help="print exactly one JSON object")
    quote_parser.set_defaults(handler=_guarded(_cmd_quote))
    return fees


class _OneLineErrorParser(argparse.ArgumentParser):
    """Argument errors as a single ``error: ...`` line (exit 2), like library errors."""

    def error(self, message: str):  # noqa: D401 - argparse API
        self.exit(EXIT_USAGE, f"error: {message} (see '{self.prog} --help')\n")


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``fees ...`` standalone; returns the exit code."""
    parser = _OneLineErrorParser(
        prog="python -m cbecsim.fees.cli",
        description="The cbecsim fee library on its own (the same command as 'cbecsim fees').",
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
