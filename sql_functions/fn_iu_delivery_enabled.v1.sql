-- fn_iu_delivery_enabled v1: fail-closed reader of the gate 'iu_core.delivery_enabled'.
-- True only when dot_config holds exactly 'true' for the key; a missing key or any other
-- value (NULL-ish, 'TRUE ', 'yes', '1') reads as false.
CREATE OR REPLACE FUNCTION public.fn_iu_delivery_enabled()
RETURNS boolean
LANGUAGE sql
STABLE
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $function$
    SELECT coalesce(
        (SELECT c.value = 'true'
           FROM public.dot_config AS c
          WHERE c.key = 'iu_core.delivery_enabled'),
        false
    )
$function$;
