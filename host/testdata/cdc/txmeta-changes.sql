-- A key change inside a transaction, and a change of the moved row after it.
BEGIN;
UPDATE public.orders SET id = 2 WHERE id = 1;
UPDATE public.orders SET status = 'paid' WHERE id = 2;
COMMIT;
-- One transaction over both tables, with a delete.
BEGIN;
INSERT INTO public.orders VALUES (3, 'new');
INSERT INTO public.items VALUES (2, 1);
UPDATE public.items SET qty = 6 WHERE id = 1;
DELETE FROM public.orders WHERE id = 3;
COMMIT;
-- A transaction whose only change is a TRUNCATE (skipped by default).
TRUNCATE public.items;
-- A TRUNCATE among other changes.
BEGIN;
INSERT INTO public.items VALUES (3, 7);
TRUNCATE public.items;
INSERT INTO public.orders VALUES (4, 'new');
COMMIT;
-- A key change and a delete in one transaction.
INSERT INTO public.items VALUES (5, 1);
BEGIN;
UPDATE public.items SET id = 6 WHERE id = 5;
DELETE FROM public.orders WHERE id = 4;
COMMIT;
-- Single-statement transactions of each kind.
INSERT INTO public.orders VALUES (7, 'new');
UPDATE public.orders SET status = 'gone' WHERE id = 7;
DELETE FROM public.orders WHERE id = 7;
