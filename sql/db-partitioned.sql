-- esmed database schema, partitioned layout: the same tables, columns, functions and grants as
-- sql/db.sql, with smpp_tx_queue and smpp_rx_queue range-partitioned by UTC day of
-- insert_timestamp, for high volume: old history goes by dropping whole days (see
-- esmed-partitions.sql), and a queue's indexes stay the size of the days kept.
--
-- Load once into an empty database instead of db.sql, as a superuser (or the database owner
-- with CREATEROLE):
--   psql -v ON_ERROR_STOP=1 -d esmed -f sql/db-partitioned.sql
-- Applications' SQL (the older daemon's INSERTs and SELECTs) works unchanged on both layouts.

\set partitioned true
\ir db.sql
