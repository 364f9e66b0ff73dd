"""What sharing public facts between tenants saves: the same fleet night through Dagster, shared and not.

T tenants with K targets each (default 30 x 20), half of every tenant's targets the same companies
(shared by all tenants) and half its own, run as ``bench/night.py`` runs a fleet: each tenant's night
is ``dagster asset materialize`` of every asset for its partition in its own process, at most
SCHED_TENANT_CONCURRENCY (3) at once, against the sandbox (web, Tavily, Lusha, ZeroBounce, OpenAI,
Odoo) in a child process with its realistic latency and the vendors' per-key limits.

Each tenant's ICP names no industry and excludes every company of the world but its own K
(``exclude_uens``), so ``icp_candidates`` and ``daily_targets`` choose exactly the intended companies
by themselves. The night runs twice, each time in a fresh world of the same seed (the same ACRA rows,
sites, people and verdicts):

* shared: the product's default, every public fact (website found, site crawl, extraction, address
  verdict) fetched once by the fleet and reused by the other tenants;
* unshared: PUBLIC_FACTS_REUSE=false, every tenant searches, crawls, extracts and verifies for itself
  (its addresses in ZeroBounce batches of its own, no other run's verdict taken).

The report gives both nights and their ratio (shared / unshared): wall time, web requests at the
sandbox, paid vendor calls (Tavily queries and credits, Lusha requests and credits, ZeroBounce
addresses, batch and single calls, OpenAI calls and tokens), ZeroBounce batches against the least
possible ceil(addresses / 200), and the busiest rolling minute per vendor key as the sandbox counted
arrivals against the key's limit ("BREACH" when over it, or when the sandbox refused a call for it).
The floors of each night are ``bench/night.py``'s (bench/README.md). Aim: web requests and paid calls
at most 0.6 x the unshared night; no limit breached.

    .venv/bin/python bench/fleet.py              # 30 tenants x 20 targets (10 shared) at 3; both nights
    .venv/bin/python bench/fleet.py --quick      # 3 tenants x 4 targets (2 shared) at 3
    .venv/bin/python bench/fleet.py --tenants 12 --targets 20 --concurrency 3 --seed 3

The last line is one JSON object with every figure. Only loopback is contacted (see bench/night.py).
"""
from __future__ import annotations

import argparse
import json
import math
import random
import shutil
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from bench_support import allow_only_loopback
from night import (
    LIVE_SHARE,
    LUSHA_PER_MINUTE,
    MAX_ACRA_ROWS,
    OPENAI_TOKENS_PER_MINUTE,
    TAVILY_PER_MINUTE,
    ZEROBOUNCE_BATCH_SIZE,
    ZEROBOUNCE_BATCHES_PER_MINUTE,
    NightPlan,
    run_night,
)

TENANT_CONCURRENCY = 3
DEFAULT_TENANTS, DEFAULT_TARGETS = 30, 20
QUICK_TENANTS, QUICK_TARGETS = 3, 4
AIM_RATIO = 0.6
# More rows than the targets need, so the tenants' companies are a sample of a world, not all of it.
WORLD_MARGIN = 1.25
NIGHTS = (("shared", "true"), ("unshared", "false"))
RATIONALE_MODE = "text"


# -- choosing the companies ----------------------------------------------------------------------------------
def tenant_companies(live_uens: Sequence[str], tenants: int, targets: int, seed: int) -> list[list[str]]:
    """Per tenant, the UENs of its targets: the first ``targets // 2`` the same for every tenant, the
    rest its own; a seeded sample of the live companies."""
    shared = targets // 2
    own = targets - shared
    needed = shared + tenants * own
    if len(live_uens) < needed:
        raise SystemExit(f"the world has {len(live_uens)} live companies, the fleet needs {needed}")
    chosen = random.Random(seed).sample(sorted(live_uens), needed)
    common = chosen[:shared]
    return [common + chosen[shared + t * own: shared + (t + 1) * own] for t in range(tenants)]


def fleet_icps(tenants: int, targets: int, seed: int):
    """The ICP maker ``run_night`` calls with the world's staging rows: every tenant excludes every
    company but its own targets."""
    def icps(rows: Sequence[Any]) -> list[dict[str, Any]]:
        from nightly_pipeline.domain.acra import normalize_company

        records = [normalize_company(row) for row in rows]
        every = sorted(r.uen for r in records)
        mine = tenant_companies([r.uen for r in records if r.is_live], tenants, targets, seed)
        return [{"exclude_uens": sorted(set(every) - set(uens))} for uens in mine]

    return icps


def world_rows(tenants: int, targets: int) -> int:
    needed = targets // 2 + tenants * (targets - targets // 2)
    rows = math.ceil(needed * WORLD_MARGIN / LIVE_SHARE)
    if rows > MAX_ACRA_ROWS:
        raise SystemExit(f"{needed} companies need about {rows} ACRA rows; the generator makes at most "
                         f"{MAX_ACRA_ROWS}")
    return max(100, rows)


# -- the figures of one night --------------------------------------------------------------------------------
def _limit(busiest: int, limit: int, refused: int) -> dict[str, Any]:
    return {"busiest_minute": busiest, "limit": limit, "refused": refused,
            "breach": busiest > limit or refused > 0}


def night_figures(night: dict[str, Any]) -> dict[str, Any]:
    """What one night cost and how close it came to each key's limit, from what the sandbox served."""
    sandbox = night["sandbox"]
    tavily, lusha, zb, openai = sandbox["tavily"], sandbox["lusha"], sandbox["zerobounce"], sandbox["openai"]
    zb_calls = zb["calls_by_endpoint"]
    batches = sum(n for endpoint, n in zb_calls.items() if "batch" in endpoint or "sendfile" in endpoint)
    singles = sum(n for endpoint, n in zb_calls.items() if endpoint.rstrip("/").endswith("/validate"))
    addresses = zb["addresses_validated"]
    tokens = openai["prompt_tokens"] + openai["completion_tokens"]
    # Rationales are plain text and each tenant's own (its ICP, its scores); extraction is structured.
    rationale_calls = openai["calls_by_mode"].get(RATIONALE_MODE, 0)
    rationale_tokens = openai["tokens_by_mode"].get(RATIONALE_MODE, 0)
    return {
        "wall_s": round(night["night_s"], 1),
        "sequential_floor_s": night["sequential_floor_s"], "overlapped_floor_s": night["overlapped_floor_s"],
        "bound_by": night["bound_by"], "per_stage": night["per_stage"],
        "tenant_night": night["tenant_night"], "process_overhead_median_s": night["process_overhead_s"]["median"],
        "failed_tenants": night["failed_tenants"], "degraded_companies": night["degraded_companies"],
        "web_requests": sandbox["web"]["requests"], "web_hosts": sandbox["web"]["hosts"],
        "tavily": {"queries": sum(tavily["calls"].values()), "credits": sum(tavily["credits"].values()),
                   **_limit(tavily["max_requests_in_60s"], TAVILY_PER_MINUTE,
                            tavily["rejections"].get("429", 0))},
        "lusha": {"requests": lusha["requests"], "calls_by_endpoint": lusha["calls_by_endpoint"],
                  "credits": lusha["credits_total"],
                  **_limit(lusha["max_requests_in_60s"], LUSHA_PER_MINUTE, lusha["rate_limited"])},
        "zerobounce": {"addresses": addresses, "batch_calls": batches, "single_calls": singles,
                       "least_batches": math.ceil(addresses / ZEROBOUNCE_BATCH_SIZE),
                       "calls_by_endpoint": zb_calls,
                       **_limit(zb["max_batch_calls_in_60s"], ZEROBOUNCE_BATCHES_PER_MINUTE, zb["batch_refusals"])},
        "openai": {"calls": openai["calls"], "calls_by_mode": openai["calls_by_mode"],
                   "prompt_tokens": openai["prompt_tokens"], "completion_tokens": openai["completion_tokens"],
                   "tokens": tokens, "extraction_calls": openai["calls"] - rationale_calls,
                   "extraction_tokens": tokens - rationale_tokens, "rationale_calls": rationale_calls,
                   "rationale_tokens": rationale_tokens,
                   **_limit(openai["max_tokens_in_60s"], OPENAI_TOKENS_PER_MINUTE, openai["rate_limited"])},
    }


# Figures compared between the nights: (label, path in night_figures, counts towards the 0.6 aim).
COMPARED = (
    ("wall time s", ("wall_s",), False),
    ("web requests", ("web_requests",), True),
    ("Tavily queries", ("tavily", "queries"), True),
    ("Tavily credits", ("tavily", "credits"), True),
    ("Lusha requests", ("lusha", "requests"), True),
    ("Lusha credits", ("lusha", "credits"), True),
    ("ZeroBounce addresses", ("zerobounce", "addresses"), True),
    ("ZeroBounce batch calls", ("zerobounce", "batch_calls"), True),
    ("ZeroBounce single calls", ("zerobounce", "single_calls"), True),
    ("OpenAI calls", ("openai", "calls"), True),
    ("OpenAI tokens", ("openai", "tokens"), True),
    ("  of which extraction calls", ("openai", "extraction_calls"), True),
    ("  of which extraction tokens", ("openai", "extraction_tokens"), True),
    ("  of which rationale calls", ("openai", "rationale_calls"), False),
    ("  of which rationale tokens", ("openai", "rationale_tokens"), False),
)
LIMITS = (("Tavily requests", "tavily"), ("Lusha requests", "lusha"), ("ZeroBounce batch calls", "zerobounce"),
          ("OpenAI tokens", "openai"))


def _at(figures: dict[str, Any], path: tuple[str, ...]) -> Any:
    for key in path:
        figures = figures[key]
    return figures


def compare(shared: dict[str, Any], unshared: dict[str, Any]) -> dict[str, Any]:
    """Each compared figure of both nights, its ratio shared / unshared and whether it meets the aim."""
    rows = {}
    for label, path, aimed in COMPARED:
        a, b = _at(shared, path), _at(unshared, path)
        ratio = round(a / b, 2) if b else None
        rows[label] = {"shared": a, "unshared": b, "ratio": ratio,
                       "meets_aim": (ratio is None or ratio <= AIM_RATIO) if aimed else None}
    breaches = [f"{night}: {label}" for night, figures in (("shared", shared), ("unshared", unshared))
                for label, vendor in LIMITS if figures[vendor]["breach"]]
    return {"rows": rows, "breaches": breaches}


# -- report --------------------------------------------------------------------------------------------------
def _cell(value: Any, decimals: int = 1) -> str:
    if value is None:
        return "n/a"
    return f"{value:,.{decimals}f}" if isinstance(value, float) else f"{value:,}"


def print_report(result: dict[str, Any]) -> None:
    plan = result["plan"]
    print(f"\n== fleet: {plan['tenants']} tenants x {plan['targets']} targets ({plan['shared_targets']} the same "
          f"for every tenant), SCHED_TENANT_CONCURRENCY={plan['concurrency']}, seed {plan['seed']}, "
          f"{result['acra_rows']} ACRA rows; distinct companies {plan['distinct_companies']} of "
          f"{plan['tenants'] * plan['targets']} targets ==")
    comparison = result["comparison"]
    print(f"distinct companies / targets = {plan['company_ratio']}: the ratio if every company's facts were "
          f"fetched once for the fleet instead of once per tenant, and nothing else changed")
    print(f"{'':<30}{'shared':>12}{'unshared':>12}{'ratio':>8}  aim <= {AIM_RATIO}")
    for label, row in comparison["rows"].items():
        aim = {True: "ok", False: "MISSED", None: ""}[row["meets_aim"]]
        print(f"{label:<30}{_cell(row['shared']):>12}{_cell(row['unshared']):>12}{_cell(row['ratio'], 2):>8}  {aim}")
    for name in ("shared", "unshared"):
        night = result[name]
        zb = night["zerobounce"]
        print(f"{name}: ZeroBounce {zb['batch_calls']} batches for {zb['addresses']} addresses (least possible "
              f"{zb['least_batches']}); floors sequential {night['sequential_floor_s']} s, overlapped "
              f"{night['overlapped_floor_s']} s (bound by {night['bound_by']}); failed tenants "
              f"{night['failed_tenants']}, degraded companies {night['degraded_companies']}")
        limits = "; ".join(f"{label} {night[v]['busiest_minute']:,}/{night[v]['limit']:,}"
                           f"{' refused ' + str(night[v]['refused']) if night[v]['refused'] else ''}"
                           f"{' BREACH' if night[v]['breach'] else ''}" for label, v in LIMITS)
        print(f"{name}: busiest minute per key (arrivals / limit): {limits}")
    if comparison["breaches"]:
        print(f"!!! LIMIT BREACH: {', '.join(comparison['breaches'])} !!!")
    else:
        print("limits: no key went over its limit in either night")
    print("Lusha is not a public fact (each tenant's contacts are its own, bought with its credits): its ratio "
          "is not sharing's saving, and neither are the rationales'.")


# -- the run -------------------------------------------------------------------------------------------------
def _parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tenants", type=int, default=DEFAULT_TENANTS)
    parser.add_argument("--targets", type=int, default=DEFAULT_TARGETS, help="targets per tenant")
    parser.add_argument("--concurrency", type=int, default=TENANT_CONCURRENCY, help="SCHED_TENANT_CONCURRENCY")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--quick", action="store_true",
                        help=f"{QUICK_TENANTS} tenants x {QUICK_TARGETS} targets at concurrency {TENANT_CONCURRENCY}")
    args = parser.parse_args(argv)
    if args.quick:
        args.tenants, args.targets, args.concurrency = QUICK_TENANTS, QUICK_TARGETS, TENANT_CONCURRENCY
    if args.tenants < 2 or args.targets < 2 or args.concurrency < 1:
        parser.error("--tenants and --targets must be >= 2, --concurrency >= 1")
    return args


def main(argv: Sequence[str] | None = None) -> None:
    args = _parse_args(argv)
    allow_only_loopback("bench/fleet.py")
    from nightly_pipeline.settings import load_settings
    from nightly_pipeline.stages.crawl import DEFAULT_COMPANY_CONCURRENCY

    company_concurrency = max(DEFAULT_COMPANY_CONCURRENCY, load_settings().sched_company_concurrency)
    rows = world_rows(args.tenants, args.targets)
    shared_targets = args.targets // 2
    distinct = shared_targets + args.tenants * (args.targets - shared_targets)
    result: dict[str, Any] = {
        "plan": {"tenants": args.tenants, "targets": args.targets, "shared_targets": shared_targets,
                 "distinct_companies": distinct,
                 "company_ratio": round(distinct / (args.tenants * args.targets), 3),
                 "concurrency": args.concurrency, "seed": args.seed, "caps": "default"},
        "acra_rows": rows, "aim_ratio": AIM_RATIO}
    workdir = Path(tempfile.mkdtemp(prefix="bench-fleet-"))
    workdir.chmod(0o755)
    started = time.monotonic()
    nights: dict[str, dict[str, Any]] = {}
    try:
        for name, reuse in NIGHTS:
            plan = NightPlan(f"fleet-{name}", args.tenants, args.targets, args.concurrency, args.seed, "default",
                             company_concurrency)
            night = run_night(plan, workdir, icps=fleet_icps(args.tenants, args.targets, args.seed), acra_rows=rows,
                              extra_env={"PUBLIC_FACTS_REUSE": reuse})
            nights[name] = night
            result[name] = night_figures(night)
            print(f"{name} night: {result[name]['wall_s']} s, {result[name]['failed_tenants']} failed tenants",
                  flush=True)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    result["comparison"] = compare(result["shared"], result["unshared"])
    result["bench_s"] = round(time.monotonic() - started, 1)
    result["tenant_nights"] = {name: [{k: t[k] for k in ("tenant_id", "returncode", "process_s", "targets",
                                                          "shortlisted", "degradations", "spend")}
                                      for t in night["tenants"]] for name, night in nights.items()}
    print_report(result)
    print(json.dumps(result, default=str, sort_keys=True))


if __name__ == "__main__":
    main()
