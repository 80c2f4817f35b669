-- v_dot_iu_runtime_lease v1: every runtime lease and whether it is held now (docs/runtime.md):
-- held = a holder, not released or broken, and expires_at still ahead of clock_timestamp().
CREATE VIEW public.v_dot_iu_runtime_lease AS
SELECT l.lease_name,
       l.holder,
       l.epoch,
       l.acquired_at,
       l.renewed_at,
       l.expires_at,
       l.released_at,
       l.holder IS NOT NULL AND l.released_at IS NULL
           AND l.expires_at > pg_catalog.clock_timestamp() AS held,
       l.session_login
  FROM public.dot_iu_runtime_lease AS l
