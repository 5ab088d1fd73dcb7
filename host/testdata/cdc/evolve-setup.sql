-- Schema changes while streaming, a column left out, a key chosen by message.key.columns.
DROP TABLE IF EXISTS public.evolve CASCADE;
CREATE TABLE public.evolve (
  id      integer PRIMARY KEY,
  code    text NOT NULL,
  secret  text,
  qty     integer
);
INSERT INTO public.evolve VALUES (1, 'a', 'hidden', 1);
