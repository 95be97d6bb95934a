"""Make the example's data: the bank's table as Parquet, the partner's as a SQL table.

    python examples/prepare_data.py --partner-db mysql+pymysql://user:password@127.0.0.1/partner

Raw UCI credit card data from ../shared/data (5% of feature values blanked, so preprocessing has
work to do), 20% of each side's customers unknown to the other so PSI has work to do. The partner's
table goes to any SQLAlchemy URL (MySQL/MariaDB in the walkthrough; `sqlite:///examples/work/partner.db` needs no server).
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from vfl import demo, demo_data
from vfl.connectors import write_table

HERE = Path(__file__).resolve().parent


def prepare(work: Path, partner_db: str, data_dir: Path | None = None) -> dict[str, int]:
    """Write work/bank.parquet and the partner's `customers` table; return the row counts."""
    data_dir = data_dir or demo.find_shared_data()
    if data_dir is None:
        raise SystemExit("no ../shared/data/UCI_Credit_Card.csv found; pass --data-dir")
    guest, host = demo_data.split_uci(Path(data_dir) / "UCI_Credit_Card.csv", missing_rate=0.05, seed=0)
    guest, host = demo.partial_overlap(guest, host, seed=7)
    work.mkdir(parents=True, exist_ok=True)
    write_table(guest, str(work / "bank.parquet"))
    write_table(host, f"{partner_db}?table=customers")  # replaces the table if it exists
    return {"bank_rows": len(guest), "partner_rows": len(host)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--partner-db", default=os.environ.get("PARTNER_DB_URL"),
                        help="SQLAlchemy URL of the partner's database (default: $PARTNER_DB_URL)")
    parser.add_argument("--data-dir", type=Path, default=None, help="folder of UCI_Credit_Card.csv")
    parser.add_argument("--work", type=Path, default=HERE / "work")
    args = parser.parse_args()
    if not args.partner_db:
        parser.error("give --partner-db or set PARTNER_DB_URL")
    print(prepare(args.work, args.partner_db, args.data_dir))


if __name__ == "__main__":
    main()
