// Writes demo/databases/shop.sqlite, the demo's database: `npx tsx scripts/make-demo-database.ts`.
// Deterministic (no clock, no randomness), so the committed file changes only when this does.
import { writeFileSync } from 'node:fs';
import initSqlJs from 'sql.js';

const SQL = await initSqlJs();
const db = new SQL.Database();
db.run(`
CREATE TABLE customers (
  id INTEGER PRIMARY KEY,
  name TEXT NOT NULL,
  email TEXT NOT NULL,
  city TEXT,
  password_hash TEXT NOT NULL,
  created_at TEXT NOT NULL
);
CREATE TABLE products (id INTEGER PRIMARY KEY, name TEXT NOT NULL, category TEXT NOT NULL, price REAL NOT NULL);
CREATE TABLE orders (
  id INTEGER PRIMARY KEY,
  customer_id INTEGER NOT NULL REFERENCES customers(id),
  ordered_at TEXT NOT NULL,
  status TEXT NOT NULL
);
CREATE TABLE order_items (
  order_id INTEGER NOT NULL REFERENCES orders(id),
  product_id INTEGER NOT NULL REFERENCES products(id),
  quantity INTEGER NOT NULL,
  unit_price REAL NOT NULL,
  PRIMARY KEY (order_id, product_id)
);
CREATE TABLE api_tokens (id INTEGER PRIMARY KEY, customer_id INTEGER NOT NULL, token TEXT NOT NULL);
CREATE INDEX orders_by_customer ON orders(customer_id);
CREATE VIEW order_totals AS
  SELECT o.id AS order_id, c.name AS customer, o.ordered_at, o.status, SUM(i.quantity * i.unit_price) AS total
  FROM orders o JOIN customers c ON c.id = o.customer_id JOIN order_items i ON i.order_id = o.id
  GROUP BY o.id;
`);
const cities = ['Lisbon', 'Oslo', 'Austin', 'Kyoto', 'Nairobi', 'Lyon'];
const names = [
  'Ada',
  'Grace',
  'Alan',
  'Edsger',
  'Barbara',
  'Ken',
  'Margaret',
  'Dennis',
  'Frances',
  'Donald',
  'Radia',
  'John',
];
names.forEach((name, i) => {
  db.run('INSERT INTO customers VALUES (?, ?, ?, ?, ?, ?)', [
    i + 1,
    name,
    `${name.toLowerCase()}@example.com`,
    cities[i % cities.length] ?? null,
    `$argon2id$v=19$m=65536,t=3,p=4$demo${i}$not-a-real-hash`,
    `2026-0${(i % 9) + 1}-1${i % 9}T09:00:00Z`,
  ]);
  db.run('INSERT INTO api_tokens VALUES (?, ?, ?)', [i + 1, i + 1, `demo-token-${i + 1}-never-shown`]);
});
const products = [
  ['Keyboard', 'hardware', 79.0],
  ['Monitor', 'hardware', 219.0],
  ['USB-C cable', 'accessories', 12.5],
  ['Desk lamp', 'accessories', 34.0],
  ['Notebook', 'stationery', 4.2],
  ['Fountain pen', 'stationery', 58.0],
] as const;
for (const [i, [name, category, price]] of products.entries()) {
  db.run('INSERT INTO products VALUES (?, ?, ?, ?)', [i + 1, name, category, price]);
}
for (let order = 1; order <= 40; order++) {
  const customer = ((order * 7) % names.length) + 1;
  const status = ['paid', 'shipped', 'delivered', 'refunded'][order % 4] as string;
  db.run('INSERT INTO orders VALUES (?, ?, ?, ?)', [
    order,
    customer,
    `2026-${String((order % 10) + 1).padStart(2, '0')}-0${(order % 9) + 1}`,
    status,
  ]);
  for (let line = 0; line < (order % 3) + 1; line++) {
    const product = ((order + line * 5) % products.length) + 1;
    db.run('INSERT INTO order_items VALUES (?, ?, ?, ?)', [
      order,
      product,
      ((order + line) % 4) + 1,
      products[product - 1]?.[2] ?? 0,
    ]);
  }
}
writeFileSync(new URL('../demo/databases/shop.sqlite', import.meta.url), db.export());
