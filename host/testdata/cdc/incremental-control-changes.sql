-- Started, then paused and the orders table dropped from it, in the signal's transaction: the
-- first chunk is read; the pause and the stop apply at the next chunk.
BEGIN;
INSERT INTO debezium_signal VALUES ('sig-1', 'execute-snapshot', '{"data-collections": ["public.items", "public.orders"], "type": "incremental", "additional-conditions": [{"data-collection": "public.items", "filter": "qty > 20"}]}');
INSERT INTO debezium_signal VALUES ('sig-2', 'pause-snapshot', '{"type": "incremental"}');
INSERT INTO debezium_signal VALUES ('sig-3', 'stop-snapshot', '{"data-collections": ["public.orders"], "type": "incremental"}');
COMMIT;
SELECT pg_sleep(2);
-- While paused: streamed, and read by a later chunk.
UPDATE items SET qty = 555 WHERE id = 9;
BEGIN;
INSERT INTO debezium_signal VALUES ('sig-4', 'resume-snapshot', '{"type": "incremental"}');
INSERT INTO debezium_signal VALUES ('sig-5', 'log', '{"message": "resumed by the test"}');
COMMIT;
