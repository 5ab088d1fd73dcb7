CREATE TABLE public.measurements (id integer, city text, at date, PRIMARY KEY (id, at)) PARTITION BY RANGE (at);
CREATE TABLE public.measurements_2024 PARTITION OF public.measurements FOR VALUES FROM ('2024-01-01') TO ('2025-01-01');
CREATE TABLE public.measurements_2025 PARTITION OF public.measurements FOR VALUES FROM ('2025-01-01') TO ('2026-01-01');
INSERT INTO public.measurements VALUES (1, 'oslo', '2024-05-01'), (2, 'rome', '2025-05-01');
