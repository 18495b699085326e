"""Write the sample data the notebooks use, next to this script.

    python notebooks/data/make_sample_data.py [OUTPUT_FOLDER]

Makes ``shop.db`` (a small SQLite shop: customers, products, orders and a view) and
``files/`` (store sales as CSV per quarter, the product catalogue as Parquet, the stores
as JSON, returns as TSV, web events as gzip-compressed JSON lines). The data is made up
and the output is the same on every run: a fixed random seed, no clock, gzip without a
timestamp.
"""

from __future__ import annotations

import csv
import gzip
import io
import json
import random
import sqlite3
import sys
from datetime import date, datetime, timedelta
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

SEED = 20240601
REGIONS = ("EU", "US", "APAC")
FIRST_NAMES = (
    "Ada", "Alan", "Barbara", "Claude", "Dennis", "Edsger", "Frances", "Grace", "Guido", "Hedy",
    "Ivan", "Joan", "John", "Ken", "Katherine", "Linus", "Margaret", "Niklaus", "Radia", "Tim",
)  # fmt: skip
LAST_NAMES = (
    "Allen", "Backus", "Cerf", "Dijkstra", "Engelbart", "Floyd", "Hamilton", "Hopper", "Knuth",
    "Lamport", "Liskov", "Lovelace", "Perlman", "Ritchie", "Shannon", "Thompson", "Turing", "Wirth",
)  # fmt: skip
CATEGORIES = {
    "Coffee": ("Espresso beans", "Filter roast", "Decaf blend", "Cold brew pack", "Single origin"),
    "Tea": ("Green tea", "Earl grey", "Chai mix", "Mint infusion", "Oolong"),
    "Equipment": ("Pour-over kit", "Hand grinder", "Milk jug", "Scale", "Kettle"),
    "Bakery": ("Croissant", "Cinnamon roll", "Banana bread", "Bagel", "Muffin"),
}
STORES = (
    ("S01", "Lisbon", "EU"),
    ("S02", "Berlin", "EU"),
    ("S03", "Dublin", "EU"),
    ("S04", "Boston", "US"),
    ("S05", "Austin", "US"),
    ("S06", "Seattle", "US"),
    ("S07", "Singapore", "APAC"),
    ("S08", "Melbourne", "APAC"),
)


def products(rng: random.Random) -> list[dict[str, object]]:
    """The product catalogue shared by the database and the files."""
    rows: list[dict[str, object]] = []
    for category, names in CATEGORIES.items():
        for name in names:
            rows.append(
                {
                    "product_id": len(rows) + 1,
                    "name": name,
                    "category": category,
                    "unit_price": round(rng.uniform(2.0, 60.0), 2),
                    "in_stock": rng.random() > 0.15,
                }
            )
    return rows


def make_database(path: Path, rng: random.Random, catalogue: list[dict[str, object]]) -> None:
    """The shop: customers, products, orders, and a revenue-by-region view."""
    path.unlink(missing_ok=True)
    connection = sqlite3.connect(path)
    try:
        connection.executescript(
            """
            CREATE TABLE customers (
                customer_id INTEGER PRIMARY KEY,
                name TEXT NOT NULL,
                region TEXT NOT NULL,
                signup_date TEXT NOT NULL,
                referred_by INTEGER REFERENCES customers (customer_id)
            );
            CREATE TABLE products (
                product_id INTEGER PRIMARY KEY,
                name TEXT NOT NULL,
                category TEXT NOT NULL,
                unit_price REAL NOT NULL,
                in_stock INTEGER NOT NULL
            );
            CREATE TABLE orders (
                order_id INTEGER PRIMARY KEY,
                customer_id INTEGER NOT NULL REFERENCES customers (customer_id),
                product_id INTEGER NOT NULL REFERENCES products (product_id),
                quantity INTEGER NOT NULL,
                discount REAL,
                ordered_at TEXT NOT NULL,
                region TEXT NOT NULL,
                status TEXT NOT NULL
            );
            CREATE VIEW revenue_by_region AS
                SELECT o.region,
                       count(*) AS orders,
                       round(sum(o.quantity * p.unit_price * (1 - coalesce(o.discount, 0))), 2) AS revenue
                FROM orders AS o JOIN products AS p USING (product_id)
                WHERE o.status != 'returned'
                GROUP BY o.region;
            """
        )
        customers = []
        for customer_id in range(1, 121):
            name = f"{rng.choice(FIRST_NAMES)} {rng.choice(LAST_NAMES)}"
            signup = date(2023, 1, 1) + timedelta(days=rng.randrange(540))
            referred_by = rng.randrange(1, customer_id) if customer_id > 1 and rng.random() < 0.3 else None
            customers.append((customer_id, name, rng.choice(REGIONS), signup.isoformat(), referred_by))
        connection.executemany("INSERT INTO customers VALUES (?, ?, ?, ?, ?)", customers)
        connection.executemany(
            "INSERT INTO products VALUES (:product_id, :name, :category, :unit_price, :in_stock)", catalogue
        )
        orders = []
        start = datetime(2024, 1, 1, 8, 0)
        for order_id in range(1, 801):
            customer = rng.choice(customers)
            ordered_at = start + timedelta(minutes=rng.randrange(366 * 24 * 60))
            orders.append(
                (
                    order_id,
                    customer[0],
                    rng.randrange(1, len(catalogue) + 1),
                    rng.randint(1, 6),
                    rng.choice((None, None, None, 0.05, 0.1, 0.2)),
                    ordered_at.isoformat(sep=" ", timespec="seconds"),
                    customer[2],
                    rng.choices(("shipped", "pending", "returned"), weights=(80, 15, 5))[0],
                )
            )
        orders.sort(key=lambda row: str(row[5]))
        orders = [(index, *row[1:]) for index, row in enumerate(orders, start=1)]
        connection.executemany("INSERT INTO orders VALUES (?, ?, ?, ?, ?, ?, ?, ?)", orders)
        connection.commit()
        connection.execute("VACUUM")
    finally:
        connection.close()


def make_files(folder: Path, rng: random.Random, catalogue: list[dict[str, object]]) -> None:
    """Store sales per quarter (CSV), catalogue (Parquet), stores (JSON), returns (TSV), events."""
    (folder / "sales").mkdir(parents=True, exist_ok=True)
    (folder / "events").mkdir(parents=True, exist_ok=True)
    for quarter in range(1, 5):
        first = date(2024, 3 * quarter - 2, 1)
        rows = []
        for _ in range(60):
            product = rng.choice(catalogue)
            units = rng.randint(1, 40)
            rows.append(
                {
                    "day": (first + timedelta(days=rng.randrange(90))).isoformat(),
                    "store_id": rng.choice(STORES)[0],
                    "product_id": product["product_id"],
                    "units": units,
                    "revenue": round(units * float(product["unit_price"]), 2),  # type: ignore[arg-type]
                }
            )
        rows.sort(key=lambda row: (row["day"], row["store_id"]))
        buffer = io.StringIO()
        writer = csv.DictWriter(buffer, fieldnames=list(rows[0]), lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
        (folder / "sales" / f"2024-q{quarter}.csv").write_text(buffer.getvalue())

    table = pa.Table.from_pylist(catalogue)
    pq.write_table(table, folder / "products.parquet", compression="zstd")

    stores = [
        {
            "store_id": store_id,
            "city": city,
            "region": region,
            "opened": 2015 + index,
            "manager": None if index % 3 == 2 else f"{FIRST_NAMES[index]} {LAST_NAMES[index]}",
        }
        for index, (store_id, city, region) in enumerate(STORES)
    ]
    (folder / "stores.json").write_text(json.dumps(stores, indent=2) + "\n")

    returns = ["order_id\treason\trefund"]
    for order_id in sorted(rng.sample(range(1, 801), 25)):
        reason = rng.choice(("damaged", "wrong item", "late", "changed mind"))
        returns.append(f"{order_id}\t{reason}\t{round(rng.uniform(3, 90), 2)}")
    (folder / "returns.tsv").write_text("\n".join(returns) + "\n")

    for day in (date(2024, 6, 1), date(2024, 6, 2)):
        lines = []
        moment = datetime(day.year, day.month, day.day, 7, 0)
        for _ in range(150):
            moment += timedelta(seconds=rng.randrange(5, 300))
            event = {
                "ts": moment.isoformat() + "Z",
                "user": rng.randrange(1, 121),
                "event": rng.choices(("view", "add_to_cart", "purchase"), weights=(70, 20, 10))[0],
                "product_id": rng.randrange(1, len(catalogue) + 1),
            }
            lines.append(json.dumps(event))
        data = ("\n".join(lines) + "\n").encode()
        (folder / "events" / f"{day.isoformat()}.jsonl.gz").write_bytes(gzip.compress(data, mtime=0))


def main(output: Path) -> None:
    output.mkdir(parents=True, exist_ok=True)
    rng = random.Random(SEED)
    catalogue = products(rng)
    make_database(output / "shop.db", rng, catalogue)
    make_files(output / "files", rng, catalogue)


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).resolve().parent)
