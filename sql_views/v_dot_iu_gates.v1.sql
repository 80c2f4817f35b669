-- v_dot_iu_gates v1: one row per gate of fn_iu_gate_classes(), as the gate readers see it
-- (docs/gates.md): the key, its class, its value in dot_config, whether it reads open, and its
-- latest window (by transition_id). The way the runtime, the gate operators and the auditors
-- read the gates: dot_config itself is shared with IU Core's other settings and stays closed
-- to them. Functions in a view run with the reader's privileges, so SELECT on this view comes
-- with EXECUTE on fn_iu_gate_state.
CREATE VIEW public.v_dot_iu_gates AS
SELECT s.gate_key,
       s.gate_class,
       s.value,
       s.reads_open,
       CASE WHEN s.action = 'open' THEN s.approval_id END AS approval_id,
       CASE WHEN s.action = 'open' THEN s.opened_at END AS window_opened_at,
       CASE WHEN s.action = 'open' THEN s.expires_at END AS window_expires_at,
       s.window_live,
       s.gate_class = 'governable' AND s.value = 'true' AND NOT s.reads_open AS orphaned,
       s.transition_id AS last_transition_id
  FROM public.fn_iu_gate_state(NULL) AS s
