INSERT INTO debezium_signal VALUES ('sig-ro', 'execute-snapshot', '{"data-collections": ["public.items"], "type": "incremental"}');
