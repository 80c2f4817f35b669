-- fn_iu_gate_classes v2: the one place that names the gates of SPEC 3.1/3.2 and their class.
-- 'governable': an operator may open it through fn_iu_gate_open for a bounded, approved window.
-- 'never-flip': nothing in this package ever writes it. A key absent from this list is unknown,
-- and unknown means deny. Every fn_iu_gate_* function and the gate-protocol downgrade guard read
-- the classes from here. v2 is the same list as an SQL function the planner inlines where it is
-- called (SECURITY INVOKER and no SET clause: it reads nothing, so it needs neither), so a
-- reader or fn_iu_gate_state no longer pays for a separate function call to look a gate up.
CREATE OR REPLACE FUNCTION public.fn_iu_gate_classes()
RETURNS TABLE (gate_key text, gate_class text)
LANGUAGE sql
STABLE
AS $function$
    VALUES ('iu_core.composer_enabled', 'governable'),
           ('iu_core.structure_ops_enabled', 'governable'),
           ('iu_core.delivery_enabled', 'governable'),
           ('iu_core.three_axis_auto_refresh_enabled', 'governable'),
           ('queue.job_substrate.enabled', 'governable'),
           ('queue.dlq.replay_enabled', 'governable'),
           ('iu_core.operator_runtime_enabled', 'governable'),
           ('iu_enact.allow_no_review_decision', 'never-flip'),
           ('iu_core.vector_sync_enabled', 'never-flip')
$function$;
