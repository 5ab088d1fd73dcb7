-- 100,000 rows captured by the initial snapshot (read in chunks of snapshot.fetch.size).
DROP TABLE IF EXISTS public.wide CASCADE;
CREATE TABLE public.wide (
  id      integer PRIMARY KEY,
  name    text NOT NULL,
  amount  numeric(10,2),
  seen_at timestamptz,
  flag    boolean
);
INSERT INTO public.wide
SELECT g, 'user-' || g, (g % 100000) / 100.0,
       timestamptz '2024-01-01 00:00:00+00' + g * interval '1 second', g % 3 = 0
  FROM generate_series(1, 100000) g;
