INSERT INTO public.measurements VALUES (3, 'lima', '2024-07-01');
INSERT INTO public.measurements VALUES (4, 'kyiv', '2025-07-01');
UPDATE public.measurements SET city = 'bern' WHERE id = 1;
-- moves the row to the other partition
UPDATE public.measurements SET at = '2025-02-01' WHERE id = 3;
DELETE FROM public.measurements WHERE id = 2;
