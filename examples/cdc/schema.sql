-- The demo's application tables: users and their orders.
DROP TABLE IF EXISTS public.orders, public.users CASCADE;
CREATE TABLE public.users (
  id         integer PRIMARY KEY,
  email      text NOT NULL,
  name       text,
  country    char(2),
  created_at timestamptz NOT NULL DEFAULT now()
);
CREATE TABLE public.orders (
  id         serial PRIMARY KEY,
  user_id    integer NOT NULL REFERENCES public.users (id),
  amount     numeric(10,2) NOT NULL,
  status     text NOT NULL DEFAULT 'new',
  created_at timestamptz NOT NULL DEFAULT now()
);
INSERT INTO public.users (id, email, name, country) VALUES
  (1, 'ada@example.com', 'Ada', 'GB'),
  (2, 'linus@example.com', 'Linus', 'FI'),
  (3, 'grace@example.com', 'Grace', 'US');
INSERT INTO public.orders (user_id, amount, status) VALUES
  (1, 120.50, 'paid'), (2, 35.00, 'new'), (1, 9.99, 'shipped');
