-- More column types than the shared golden set, captured by the snapshot and by streaming.
DROP TABLE IF EXISTS public.kinds CASCADE;
DROP TYPE IF EXISTS public.mood;
CREATE TYPE public.mood AS ENUM ('sad', 'ok', 'happy');
CREATE TABLE public.kinds (
  id        bigint PRIMARY KEY,
  small     smallint NOT NULL,
  real_v    real,
  dbl       double precision,
  money_v   numeric(8,3),
  any_num   numeric,
  fixed     char(4),
  vc        varchar(10),
  raw       bytea,
  day       date,
  t0        time(0),
  t3        time(3),
  t6        time,
  ttz       timetz,
  ts3       timestamp(3),
  ts6       timestamp,
  tstz0     timestamptz(0),
  span      interval,
  doc       json,
  feeling   public.mood,
  moods     public.mood[],
  addr      inet,
  net       cidr,
  flags     boolean[],
  dates     date[]
);
INSERT INTO public.kinds VALUES
 (1, 7, 1.5, -2.25, 12345.678, -99.5, 'ab', 'hello', '\x00ff10', '2024-02-29', '13:14:15', '13:14:15.123',
  '13:14:15.123456', '13:14:15.5+02', '2024-02-29 13:14:15.123', '2024-02-29 13:14:15.123456',
  '2024-02-29 13:14:15+00', '1 year 2 months 3 days 04:05:06.5', '{"a": [1, 2]}', 'happy', '{sad,ok}',
  '192.168.0.1', '10.0.0.0/8', '{t,f,NULL}', '{2024-01-01,NULL}'),
 (2, -1, NULL, NULL, NULL, NULL, NULL, NULL, NULL, '1969-07-20', NULL, NULL, NULL, NULL, NULL,
  '1900-01-01 00:00:00', NULL, '-1 days', NULL, NULL, '{}', NULL, NULL, NULL, NULL);
