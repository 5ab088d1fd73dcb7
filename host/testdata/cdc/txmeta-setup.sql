-- Transaction metadata cases: two tables, one row each for the snapshot.
CREATE TABLE public.orders (id integer PRIMARY KEY, status text);
CREATE TABLE public.items (id integer PRIMARY KEY, qty integer);
INSERT INTO public.orders VALUES (1, 'new');
INSERT INTO public.items VALUES (1, 5);
