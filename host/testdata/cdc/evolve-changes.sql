INSERT INTO public.evolve VALUES (2, 'b', 'hidden', 2);
ALTER TABLE public.evolve ADD COLUMN note varchar(20) DEFAULT 'none';
INSERT INTO public.evolve (id, code, secret) VALUES (3, 'c', 'hidden');
UPDATE public.evolve SET note = 'changed' WHERE id = 1;
ALTER TABLE public.evolve DROP COLUMN qty;
INSERT INTO public.evolve (id, code, note) VALUES (4, 'd', 'last');
DELETE FROM public.evolve WHERE id = 2;
