-- What the application does while Headwater streams.
INSERT INTO public.users (id, email, name, country) VALUES (4, 'barbara@example.com', 'Barbara', 'US');
UPDATE public.users SET name = 'Ada Lovelace' WHERE id = 1;
INSERT INTO public.orders (user_id, amount) VALUES (4, 250.00);
UPDATE public.orders SET status = 'paid' WHERE id = 2;
DELETE FROM public.orders WHERE id = 3;
DELETE FROM public.users WHERE id = 3;
