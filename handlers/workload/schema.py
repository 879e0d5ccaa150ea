"""The workload's tables and seed data, installed by the stack when PostgreSQL is up.

The Stack calls :func:`install` as the application role (the owner of database
``app``) right after the server is ready. It is idempotent (``IF NOT EXISTS``,
``ON CONFLICT DO NOTHING``), so a restarted stack or an existing server keeps its
data, and fast: ``generate_series`` seeds 1,000 products and accounts in a few
milliseconds, because ``connstorm repro`` starts several stacks in a row.

On AWS, run it once from anywhere that reaches the database::

    python -c "from handlers.workload.schema import install; install(DSN, 1000)"
"""

from __future__ import annotations

import psycopg

#: Product categories, for ``GET /items?category=...``.
CATEGORIES = ("books", "games", "garden", "kitchen", "music", "outdoor", "tools", "toys")
#: Accounts seeded: enough for orders to spread over many rows.
MIN_ACCOUNTS = 100

DDL = """
CREATE TABLE IF NOT EXISTS accounts (
    id         bigint PRIMARY KEY,
    email      text NOT NULL UNIQUE,
    name       text NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
);
CREATE TABLE IF NOT EXISTS products (
    id          bigint PRIMARY KEY,
    sku         text NOT NULL UNIQUE,
    name        text NOT NULL,
    category    text NOT NULL,
    price_cents integer NOT NULL CHECK (price_cents >= 0),
    stock       integer NOT NULL CHECK (stock >= 0)
);
CREATE INDEX IF NOT EXISTS products_category_id ON products (category, id);
CREATE TABLE IF NOT EXISTS orders (
    id          bigserial PRIMARY KEY,
    account_id  bigint NOT NULL REFERENCES accounts (id),
    status      text NOT NULL DEFAULT 'placed',
    total_cents bigint NOT NULL CHECK (total_cents >= 0),
    created_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS orders_account_id ON orders (account_id);
CREATE TABLE IF NOT EXISTS order_items (
    order_id    bigint NOT NULL REFERENCES orders (id) ON DELETE CASCADE,
    product_id  bigint NOT NULL REFERENCES products (id),
    quantity    integer NOT NULL CHECK (quantity > 0),
    price_cents integer NOT NULL CHECK (price_cents >= 0),
    PRIMARY KEY (order_id, product_id)
);
"""

SEED_PRODUCTS = """
INSERT INTO products (id, sku, name, category, price_cents, stock)
SELECT i, 'SKU-' || lpad(i::text, 8, '0'), 'Product ' || i,
       (%(categories)s::text[])[1 + (i - 1) %% cardinality(%(categories)s::text[])],
       100 + (i * 7919) %% 99900, 1000000
FROM generate_series(1, %(n)s) AS i
ON CONFLICT (id) DO NOTHING
"""

SEED_ACCOUNTS = """
INSERT INTO accounts (id, email, name)
SELECT i, 'user' || i || '@example.com', 'User ' || i
FROM generate_series(1, %(n)s) AS i
ON CONFLICT (id) DO NOTHING
"""


def accounts_for(products: int) -> int:
    """How many accounts a stack with ``products`` products gets."""
    return max(MIN_ACCOUNTS, products)


def install(app_dsn: str, products: int) -> None:
    """Create the schema if missing and seed ``products`` products (and accounts).

    Runs in one transaction, so a failure leaves nothing half made. Raises
    ``ValueError`` for a negative count and ``psycopg.Error`` when the server
    refuses (the Stack reports it with the server's log).
    """
    if products < 0:
        raise ValueError(f"products must be >= 0, got {products}")
    with psycopg.connect(app_dsn, connect_timeout=10) as conn, conn.cursor() as cur:
        # Two stacks never share a database, but an existing server might be
        # installed twice at once: serialise on an advisory lock.
        cur.execute("SELECT pg_advisory_xact_lock(4242004)")
        cur.execute(DDL)
        cur.execute(SEED_PRODUCTS, {"n": products, "categories": list(CATEGORIES)})
        cur.execute(SEED_ACCOUNTS, {"n": accounts_for(products)})
