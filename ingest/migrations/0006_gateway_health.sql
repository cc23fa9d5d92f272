-- The agent's retained heartbeat per gateway: buffer depth and age, device comm states, poll
-- latency, clock offset (owner: ingest; JSON as the agent sends it, see gateway_agent/agent.py).
ALTER TABLE gateways
    ADD COLUMN health    jsonb,
    ADD COLUMN health_at timestamptz;
