-- The device (PLC, DCS, controller) of its gateway that a tag is read from (owner: ledger sync):
-- a device that does not answer raises one DEVICE_COMM alarm on its gateway, not a FAULT per tag.
ALTER TABLE tags ADD COLUMN device text;
