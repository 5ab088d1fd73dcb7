DROP TABLE IF EXISTS items, orders, debezium_signal;
CREATE TABLE items (id int PRIMARY KEY, name text NOT NULL, qty int);
INSERT INTO items SELECT g, 'item-' || g, g * 10 FROM generate_series(1, 10) g;
CREATE TABLE orders (code text PRIMARY KEY, item int NOT NULL);
INSERT INTO orders SELECT 'o-' || g, g FROM generate_series(1, 6) g;
CREATE TABLE debezium_signal (id varchar(42) PRIMARY KEY, type varchar(32) NOT NULL, data varchar(2048));
