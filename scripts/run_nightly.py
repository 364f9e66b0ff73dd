"""Run the nightly pipeline for every active tenant outside the Dagster daemon (contract §2).

    python scripts/run_nightly.py [--tenant ID ...] [--limit N] [--dry-run] [--from-manifest RUN_ID] [--date YYYY-MM-DD]
"""
import sys

from nightly_pipeline.nightly import main

if __name__ == "__main__":
    sys.exit(main())
