BEGIN;
INSERT INTO debezium_signal VALUES ('sig-1', 'execute-snapshot', '{"data-collections": ["public.items"], "type": "incremental"}');
UPDATE items SET qty = 999 WHERE id = 2;
COMMIT;
