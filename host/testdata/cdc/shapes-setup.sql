-- Types Debezium maps specially: bits, hstore, ltree, geometric, ranges, network and others.
CREATE EXTENSION IF NOT EXISTS hstore;
CREATE EXTENSION IF NOT EXISTS ltree;
CREATE TABLE public.shapes (
  id integer PRIMARY KEY,
  b1 bit(1), b3 bit(3), b12 bit(12), vb varbit(20),
  h hstore, lt ltree,
  pt point, bx box, ci circle, li line, ls lseg, pa path, pg polygon,
  r4 int4range, r8 int8range, nr numrange, tr tsrange, tzr tstzrange, dr daterange,
  mac macaddr, mac8 macaddr8, oid_col oid, ch char(3)
);
INSERT INTO public.shapes VALUES (1, B'1', B'101', B'101100111000', B'1011',
  'a=>1, b=>"x y"', 'top.science.astronomy',
  '(1.5,2.25)', '((0,0),(2,3))', '<(1,1),2.5>', '{1,-1,0}', '[(0,0),(1,1)]', '[(0,0),(1,1),(2,0)]', '((0,0),(1,1),(2,0))',
  '[1,10)', '[5,)', '(1.5,2.5]', '[2024-01-01 10:00,2024-01-02 00:00)', '[2024-01-01 10:00+00,2024-01-02 00:00+00)', '[2024-01-01,2024-02-01)',
  '08:00:2b:01:02:03', '08:00:2b:01:02:03:04:05', 12345, 'ab');
INSERT INTO public.shapes (id) VALUES (2);
