INSERT INTO public.kinds VALUES
 (3, 3, 0.1, 1e300, -0.001, 1e-5, 'x', 'y', '\x', '2000-01-01', '00:00:00', '23:59:59.999',
  '23:59:59.999999', '00:00:00-05', '2000-01-01 00:00:00', '1999-12-31 23:59:59.999999',
  '1970-01-01 00:00:00+00', 'P1Y', '[]', 'sad', '{happy}', '::1', '2001:db8::/32', '{}', '{}');
BEGIN;
UPDATE public.kinds SET small = 8, span = '30 days' WHERE id = 1;
DELETE FROM public.kinds WHERE id = 2;
COMMIT;
