INSERT INTO public.shapes VALUES (3, B'0', B'010', B'000000000001', B'',
  '"k"=>NULL', 'a',
  '(-1,0)', '((1,1),(0,0))', '<(0,0),1>', '{0,1,-2}', '[(1,2),(3,4)]', '((0,0),(4,0),(4,4))', '((0,0),(0,1),(1,1),(1,0))',
  'empty', '(,100]', '[0,0]', '(,)', '[2024-03-01 00:00+02,infinity)', 'empty',
  'ff:ff:ff:ff:ff:ff', '00:00:00:00:00:00:00:01', 0, 'x');
UPDATE public.shapes SET b3 = B'111', h = 'c=>3', r4 = '[2,3)' WHERE id = 1;
DELETE FROM public.shapes WHERE id = 2;
UPDATE public.shapes SET h = 'zeta=>1, alpha=>2, mid=>3, b=>4, "key with space"=>"v"' WHERE id = 3;
