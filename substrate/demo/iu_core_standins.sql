-- DEMO STAND-INS, NOT IU CORE.
--
-- IU Core owns the 15 functions the command catalog targets (SPEC 3.3); this package never
-- creates them. `substrate proof` (substrate/demo/proof.py, run by `make demo`) loads this file
-- into its own scratch database, never into the database it was pointed at, so the original
-- design's proof can run where IU Core is absent (docs/runtime.md). Each stand-in has the exact
-- signature of the registry in seeds/registry.py and says in its COMMENT that it is a stand-in.
-- One answers: fn_iu_collection_healthcheck returns {"healthy": true, "stand_in": ...}, for the
-- proof's plan, apply and verify of dot_iu_healthcheck. Every other one does nothing but refuse
-- to run (SQLSTATE 0A000), so a command that should have been refused can never pass for done.
-- Never load this into a real database.

CREATE FUNCTION public.fn_iu_collection_add_piece(p_collection_id uuid, p_piece_id uuid, p_position integer)
RETURNS jsonb
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $standin$
BEGIN
  RAISE EXCEPTION 'IU Core stand-in fn_iu_collection_add_piece called: a demo stand-in, not IU Core'
    USING ERRCODE = '0A000';
END
$standin$;
COMMENT ON FUNCTION public.fn_iu_collection_add_piece(uuid, uuid, integer) IS 'DEMO STAND-IN for IU Core (substrate/demo/iu_core_standins.sql), loaded only into the scratch database of substrate proof: not IU Core.';

CREATE FUNCTION public.fn_iu_collection_compose(p_collection_id uuid, p_title text)
RETURNS jsonb
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $standin$
BEGIN
  RAISE EXCEPTION 'IU Core stand-in fn_iu_collection_compose called: a demo stand-in, not IU Core'
    USING ERRCODE = '0A000';
END
$standin$;
COMMENT ON FUNCTION public.fn_iu_collection_compose(uuid, text) IS 'DEMO STAND-IN for IU Core (substrate/demo/iu_core_standins.sql), loaded only into the scratch database of substrate proof: not IU Core.';

CREATE FUNCTION public.fn_iu_collection_healthcheck()
RETURNS jsonb
LANGUAGE sql
STABLE
SET search_path = pg_catalog, pg_temp
AS $standin$
  SELECT pg_catalog.jsonb_build_object('healthy', true,
                                       'stand_in', 'DEMO STAND-IN, not IU Core')
$standin$;
COMMENT ON FUNCTION public.fn_iu_collection_healthcheck() IS 'DEMO STAND-IN for IU Core (substrate/demo/iu_core_standins.sql), loaded only into the scratch database of substrate proof: not IU Core.';

CREATE FUNCTION public.fn_iu_collection_remove_piece(p_collection_id uuid, p_piece_id uuid)
RETURNS jsonb
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $standin$
BEGIN
  RAISE EXCEPTION 'IU Core stand-in fn_iu_collection_remove_piece called: a demo stand-in, not IU Core'
    USING ERRCODE = '0A000';
END
$standin$;
COMMENT ON FUNCTION public.fn_iu_collection_remove_piece(uuid, uuid) IS 'DEMO STAND-IN for IU Core (substrate/demo/iu_core_standins.sql), loaded only into the scratch database of substrate proof: not IU Core.';

CREATE FUNCTION public.fn_iu_collection_render(p_collection_id uuid)
RETURNS jsonb
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $standin$
BEGIN
  RAISE EXCEPTION 'IU Core stand-in fn_iu_collection_render called: a demo stand-in, not IU Core'
    USING ERRCODE = '0A000';
END
$standin$;
COMMENT ON FUNCTION public.fn_iu_collection_render(uuid) IS 'DEMO STAND-IN for IU Core (substrate/demo/iu_core_standins.sql), loaded only into the scratch database of substrate proof: not IU Core.';

CREATE FUNCTION public.fn_iu_collection_reorder(p_collection_id uuid, p_piece_ids uuid[])
RETURNS jsonb
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $standin$
BEGIN
  RAISE EXCEPTION 'IU Core stand-in fn_iu_collection_reorder called: a demo stand-in, not IU Core'
    USING ERRCODE = '0A000';
END
$standin$;
COMMENT ON FUNCTION public.fn_iu_collection_reorder(uuid, uuid[]) IS 'DEMO STAND-IN for IU Core (substrate/demo/iu_core_standins.sql), loaded only into the scratch database of substrate proof: not IU Core.';

CREATE FUNCTION public.fn_iu_collection_validate(p_collection_id uuid)
RETURNS jsonb
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $standin$
BEGIN
  RAISE EXCEPTION 'IU Core stand-in fn_iu_collection_validate called: a demo stand-in, not IU Core'
    USING ERRCODE = '0A000';
END
$standin$;
COMMENT ON FUNCTION public.fn_iu_collection_validate(uuid) IS 'DEMO STAND-IN for IU Core (substrate/demo/iu_core_standins.sql), loaded only into the scratch database of substrate proof: not IU Core.';

CREATE FUNCTION public.fn_iu_piece_delete_soft(p_piece_id uuid)
RETURNS jsonb
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $standin$
BEGIN
  RAISE EXCEPTION 'IU Core stand-in fn_iu_piece_delete_soft called: a demo stand-in, not IU Core'
    USING ERRCODE = '0A000';
END
$standin$;
COMMENT ON FUNCTION public.fn_iu_piece_delete_soft(uuid) IS 'DEMO STAND-IN for IU Core (substrate/demo/iu_core_standins.sql), loaded only into the scratch database of substrate proof: not IU Core.';

CREATE FUNCTION public.fn_iu_piece_merge(p_piece_ids uuid[], p_review_decision_id uuid)
RETURNS jsonb
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $standin$
BEGIN
  RAISE EXCEPTION 'IU Core stand-in fn_iu_piece_merge called: a demo stand-in, not IU Core'
    USING ERRCODE = '0A000';
END
$standin$;
COMMENT ON FUNCTION public.fn_iu_piece_merge(uuid[], uuid) IS 'DEMO STAND-IN for IU Core (substrate/demo/iu_core_standins.sql), loaded only into the scratch database of substrate proof: not IU Core.';

CREATE FUNCTION public.fn_iu_piece_restore(p_piece_id uuid)
RETURNS jsonb
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $standin$
BEGIN
  RAISE EXCEPTION 'IU Core stand-in fn_iu_piece_restore called: a demo stand-in, not IU Core'
    USING ERRCODE = '0A000';
END
$standin$;
COMMENT ON FUNCTION public.fn_iu_piece_restore(uuid) IS 'DEMO STAND-IN for IU Core (substrate/demo/iu_core_standins.sql), loaded only into the scratch database of substrate proof: not IU Core.';

CREATE FUNCTION public.fn_iu_piece_split(p_piece_id uuid, p_review_decision_id uuid)
RETURNS jsonb
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $standin$
BEGIN
  RAISE EXCEPTION 'IU Core stand-in fn_iu_piece_split called: a demo stand-in, not IU Core'
    USING ERRCODE = '0A000';
END
$standin$;
COMMENT ON FUNCTION public.fn_iu_piece_split(uuid, uuid) IS 'DEMO STAND-IN for IU Core (substrate/demo/iu_core_standins.sql), loaded only into the scratch database of substrate proof: not IU Core.';

CREATE FUNCTION public.fn_iu_route_dead_letter_replay(p_dead_letter_id bigint)
RETURNS jsonb
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $standin$
BEGIN
  RAISE EXCEPTION 'IU Core stand-in fn_iu_route_dead_letter_replay called: a demo stand-in, not IU Core'
    USING ERRCODE = '0A000';
END
$standin$;
COMMENT ON FUNCTION public.fn_iu_route_dead_letter_replay(bigint) IS 'DEMO STAND-IN for IU Core (substrate/demo/iu_core_standins.sql), loaded only into the scratch database of substrate proof: not IU Core.';

CREATE FUNCTION public.fn_iu_route_deliver(p_route_code text)
RETURNS jsonb
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $standin$
BEGIN
  RAISE EXCEPTION 'IU Core stand-in fn_iu_route_deliver called: a demo stand-in, not IU Core'
    USING ERRCODE = '0A000';
END
$standin$;
COMMENT ON FUNCTION public.fn_iu_route_deliver(text) IS 'DEMO STAND-IN for IU Core (substrate/demo/iu_core_standins.sql), loaded only into the scratch database of substrate proof: not IU Core.';

CREATE FUNCTION public.fn_iu_structure_op_apply(p_op jsonb)
RETURNS jsonb
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $standin$
BEGIN
  RAISE EXCEPTION 'IU Core stand-in fn_iu_structure_op_apply called: a demo stand-in, not IU Core'
    USING ERRCODE = '0A000';
END
$standin$;
COMMENT ON FUNCTION public.fn_iu_structure_op_apply(jsonb) IS 'DEMO STAND-IN for IU Core (substrate/demo/iu_core_standins.sql), loaded only into the scratch database of substrate proof: not IU Core.';

CREATE FUNCTION public.fn_iu_structure_op_rollback(p_op_id uuid)
RETURNS jsonb
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $standin$
BEGIN
  RAISE EXCEPTION 'IU Core stand-in fn_iu_structure_op_rollback called: a demo stand-in, not IU Core'
    USING ERRCODE = '0A000';
END
$standin$;
COMMENT ON FUNCTION public.fn_iu_structure_op_rollback(uuid) IS 'DEMO STAND-IN for IU Core (substrate/demo/iu_core_standins.sql), loaded only into the scratch database of substrate proof: not IU Core.';
